package io.pockettune.ingest;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.OptionalLong;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;

/**
 * The idempotent-producer state of one partition: for each producer id, its current epoch and the
 * sequence ranges and offsets of its last {@link #BATCHES_PER_PRODUCER} batches in the log. With it
 * the log recognises a producer's retry of a batch it already holds and answers with the original
 * offset instead of appending the batch again, and it refuses batches that would leave a gap in a
 * producer's sequence or that come from a fenced (older) epoch.
 *
 * <p><b>Rules</b> (Kafka's, from its {@code ProducerStateManager} and {@code ProducerAppendInfo}).
 * A batch carries (producerId, epoch, baseSequence) and covers the sequences baseSequence up to
 * lastSequence = baseSequence + recordCount - 1, where the sequence after Integer.MAX_VALUE is 0.
 * <ul>
 *   <li>An unknown producer id is accepted with any sequence: its state may have aged out of the
 *       window below, so nothing can be said about it.
 *   <li>An epoch below the known one is refused with {@link InvalidProducerEpochException}: a newer
 *       instance of the producer has fenced this one.
 *   <li>An epoch above the known one must start at sequence 0, or it is refused with
 *       {@link OutOfOrderSequenceException}; if accepted, it replaces the producer's state.
 *   <li>In the known epoch, a batch with exactly the sequence range of one of the cached batches
 *       is a duplicate: nothing is written and the caller gets that batch's base offset. Otherwise
 *       it must continue the latest batch's sequence, or it is refused with
 *       {@link OutOfOrderSequenceException}; so is a retry of a batch older than the cached ones.
 * </ul>
 * Five batches are kept because a Kafka producer keeps at most five requests in flight per
 * connection when idempotence is on, so a retry is always of one of its five latest batches.
 *
 * <p><b>Durability and its window.</b> The state is not written anywhere of its own: the batches
 * carry it (format version 2 of {@link RecordBatch}), and when a partition opens, cleanly or after
 * recovery, the state is rebuilt by replaying the batch headers of its last
 * {@link #SEGMENTS_REPLAYED_AT_OPEN} segments. Recovery has cut torn batches by then, so only
 * batches that survived count, and a batch lost in the crash is appended once when it is retried.
 * So retries of batches in the last two segments (at least one full segment, 64 MiB by default)
 * are recognised across a restart. That is enough: the batches a producer may retry after a crash
 * are the ones in flight when the process died, which are at the very tail of the log, and a
 * producer gives up on a batch after its delivery timeout (two minutes by default) anyway. Two
 * segments and not one, because right after a roll the active segment holds almost nothing. Not
 * more, because opening pays for every batch header replayed, and Kafka's alternative (periodic
 * snapshots of this table beside the segments) is a second file format to keep consistent with
 * the log. A producer whose last batch lies further back opens unknown and is accepted as is.
 *
 * <p><b>Cost.</b> At open, per partition: the headers of two segments, read in 4 KiB windows
 * ({@link LogSegment#loadProducerState}). With batches larger than a window that is one read per
 * batch; with smaller ones it amounts to reading the two segments sequentially, up to 128 MiB at
 * the default segment size, which is the same device I/O as reading each header alone since the
 * device reads whole pages. In memory: one entry per producer with up to five batches. While the
 * log is open, the table keeps every producer it has seen; it does not expire them (Kafka does,
 * after {@code producer.id.expiration.ms}). Retention deleting segments leaves the state of removed
 * offsets in place, which is harmless: a retry of such a batch is still recognised and answered
 * with its (now deleted) offset; at the next open the window is what retention left.
 *
 * <p>This class is not thread-safe: the partition calls it under its append lock, so the check of a
 * batch and the recording of it after the write are atomic with respect to other appends.
 * {@link #maxProducerId()} may be read from any thread.
 */
final class ProducerStateTable {

    /** How many of a producer's latest batches are remembered; Kafka's number. */
    static final int BATCHES_PER_PRODUCER = 5;
    /** How many segments, from the last, {@link PartitionLog} replays into the table at open. */
    static final int SEGMENTS_REPLAYED_AT_OPEN = 2;

    /** One batch of a producer: its sequence range and where it is in the log. */
    private record BatchMetadata(int firstSequence, int lastSequence, long baseOffset, int recordCount) {
    }

    /** A producer's epoch and its latest batches in that epoch, oldest first. */
    private static final class ProducerEntry {
        private final short epoch;
        private final ArrayDeque<BatchMetadata> batches = new ArrayDeque<>(BATCHES_PER_PRODUCER);

        private ProducerEntry(short epoch) {
            this.epoch = epoch;
        }
    }

    private final TopicPartition topicPartition;
    private final Map<Long, ProducerEntry> producers = new HashMap<>();
    private volatile long maxProducerId = -1;

    ProducerStateTable(TopicPartition topicPartition) {
        this.topicPartition = topicPartition;
    }

    /**
     * Checks an incoming batch of {@code recordCount} records against the rules of the class
     * comment. Changes nothing: call {@link #append} once the batch is written.
     *
     * @return the base offset of the original batch if this one is a duplicate of it, or empty if
     *     the batch is to be written
     * @throws InvalidProducerEpochException if the batch's epoch is older than the producer's
     * @throws OutOfOrderSequenceException if the batch's sequence does not continue the producer's
     */
    OptionalLong check(ProducerBatch batch, int recordCount) {
        assert recordCount > 0 : "a batch holds at least one record";
        ProducerEntry entry = producers.get(batch.producerId());
        if (entry == null) {
            return OptionalLong.empty();
        }
        if (batch.producerEpoch() < entry.epoch) {
            throw new InvalidProducerEpochException("producer id " + batch.producerId() + " sent a batch to "
                    + topicPartition + " with epoch " + batch.producerEpoch() + ", older than its current epoch "
                    + entry.epoch + "; a newer instance of this producer fenced this one, so close it");
        }
        if (batch.producerEpoch() > entry.epoch) {
            if (batch.baseSequence() != 0) {
                throw new OutOfOrderSequenceException("producer id " + batch.producerId() + " started epoch "
                        + batch.producerEpoch() + " on " + topicPartition + " at sequence " + batch.baseSequence()
                        + " (its previous epoch was " + entry.epoch + "); a new epoch must start at sequence 0");
            }
            return OptionalLong.empty();
        }
        int lastSequence = lastSequence(batch.baseSequence(), recordCount);
        for (BatchMetadata cached : entry.batches) {
            if (cached.firstSequence() == batch.baseSequence() && cached.lastSequence() == lastSequence) {
                return OptionalLong.of(cached.baseOffset());
            }
        }
        BatchMetadata latest = entry.batches.peekLast();
        if (latest != null && batch.baseSequence() != nextSequence(latest.lastSequence())) {
            throw new OutOfOrderSequenceException("producer id " + batch.producerId() + " (epoch " + entry.epoch
                    + ") sent sequence " + batch.baseSequence() + " to " + topicPartition + " where sequence "
                    + nextSequence(latest.lastSequence()) + " was expected; the batches in between were lost, so"
                    + " the producer must resend them in order or start a new epoch");
        }
        return OptionalLong.empty();
    }

    /**
     * Records a batch that is in the log at {@code baseOffset}: one that {@link #check} accepted
     * and that was written, or one found in a segment at open. A batch of an epoch older than the
     * producer's is ignored; a newer epoch replaces the producer's state.
     */
    void append(ProducerBatch batch, int recordCount, long baseOffset) {
        ProducerEntry entry = producers.get(batch.producerId());
        if (entry != null && batch.producerEpoch() < entry.epoch) {
            return;
        }
        if (entry == null || batch.producerEpoch() > entry.epoch) {
            entry = new ProducerEntry(batch.producerEpoch());
            producers.put(batch.producerId(), entry);
        }
        if (entry.batches.size() == BATCHES_PER_PRODUCER) {
            entry.batches.removeFirst();
        }
        entry.batches.addLast(new BatchMetadata(batch.baseSequence(), lastSequence(batch.baseSequence(), recordCount),
                baseOffset, recordCount));
        if (batch.producerId() > maxProducerId) {
            maxProducerId = batch.producerId();
        }
    }

    /** @return the largest producer id in the table, or -1 if it is empty */
    long maxProducerId() {
        return maxProducerId;
    }

    /** @return the number of producers in the table */
    int size() {
        return producers.size();
    }

    /** @return the sequence of the last of {@code recordCount} records from {@code baseSequence} on */
    static int lastSequence(int baseSequence, int recordCount) {
        long last = (long) baseSequence + recordCount - 1;
        return (int) (last % (Integer.MAX_VALUE + 1L));
    }

    /** @return the sequence after {@code sequence}: 0 after Integer.MAX_VALUE */
    static int nextSequence(int sequence) {
        return sequence == Integer.MAX_VALUE ? 0 : sequence + 1;
    }

    @Override
    public String toString() {
        return "ProducerStateTable[" + topicPartition + ", " + producers.size() + " producers]";
    }
}
