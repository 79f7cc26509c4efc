package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One partition of a topic: the directory {@code <topic>-<partition>} with its
 * {@link LogSegment segments}, of which the last is the active one that takes appends.
 *
 * <p><b>Invariants.</b> Segments are ordered by base offset, and each one's offsets continue
 * exactly where the previous one's end. {@code nextOffset} (the end offset) is published only after
 * the batch below it is complete and durable per the flush policy: that is the moment a batch
 * counts as acknowledged, and readers see nothing beyond it, so a consumer never processes an event
 * that a crash could still take back. {@code recoveryPoint} is an offset below which everything is
 * known to be on stable storage: it advances with every batch under
 * {@link LogConfig.FlushPolicy#FSYNC_EACH_BATCH}, and otherwise when a segment rolls (the old
 * segment is forced first) and at clean close. It is saved in the {@link RecoveryCheckpoint} at each
 * roll and at close.
 *
 * <p><b>Recovery.</b> After an unclean shutdown, segments below the one holding the checkpointed
 * recovery point are trusted (they were forced before the checkpoint was written); that segment
 * and every later one are validated batch by batch ({@link LogSegment#recover()}). The first
 * invalid batch ends the partition: its segment is cut there and all later segments are deleted,
 * since offsets must stay contiguous. What survives is forced before the log accepts appends.
 * Guarantee: every batch acknowledged under FSYNC_EACH_BATCH survives, and so does every batch
 * acknowledged under OS unless the machine itself went down; nothing after a damaged batch does.
 * After a clean shutdown nothing is validated: indexes are checked for plausibility and the end
 * offset is found by walking batch headers from the last index entry.
 *
 * <p><b>Group commit.</b> An append has two phases. {@link #write} runs under the append lock: it
 * assigns offsets, writes the batch into the active segment and advances {@code writeOffset}; it
 * never waits for the device. {@link #awaitDurable} then waits until a force covers the batch.
 * Under FSYNC_EACH_BATCH the first waiter becomes the leader: it takes the sync lock, notes how far
 * the log is written, forces the file and publishes everything up to that point; appenders that
 * wrote meanwhile queue on the sync lock and usually find themselves covered when they get it, so N
 * concurrent appenders pay about two fsyncs, not N (the classic leader/follower group commit of
 * database write-ahead logs). Under INTERVAL a background thread of {@link EmbeddedLog} calls
 * {@link #sync} every interval and waiters are woken when it publishes. Under OS {@link #write}
 * publishes at once. A failed force is not retried: the page cache may have dropped the dirty pages
 * and a later successful force would prove nothing (the PostgreSQL "fsyncgate" lesson), so the
 * partition fails every waiter and refuses appends until the log is reopened and recovered.
 *
 * <p><b>Idempotent producers.</b> {@link #writeIdempotent} checks a batch's producer identity
 * against the partition's {@link ProducerStateTable} and writes it, or recognises it as a retry,
 * under the append lock, so check, write and record are one step; the table records a batch only
 * once it is written, so a write that fails and is rolled back leaves no trace in it. At open
 * the table is rebuilt from the batch headers of the last
 * {@link ProducerStateTable#SEGMENTS_REPLAYED_AT_OPEN} segments, after recovery has cut what did
 * not survive (see that class for the window this gives).
 *
 * <p><b>Retention.</b> {@link #enforceRetention} drops whole segments from the front (never the
 * active one): the segment array is replaced under the append lock, the files are unlinked at once
 * but kept open, and the channels are closed only after {@code fileDeleteDelayMs}, so readers that
 * picked up the old array finish their read (as Kafka's delayed {@code .deleted} files do).
 *
 * <p><b>Thread safety.</b> Appends are serialized by a per-partition lock, so partitions append
 * in parallel. Reads take no lock: they read {@code nextOffset} (volatile) first, then the
 * copy-on-write segment array, and look at no byte at or past that end offset. Opening and closing
 * are excluded from running concurrently with reads and appends by {@link EmbeddedLog}.
 */
final class PartitionLog implements Closeable {

    private static final Logger LOG = LoggerFactory.getLogger(PartitionLog.class);
    private static final Pattern SEGMENT_FILE = Pattern.compile("(\\d{20})\\" + LogSegment.LOG_SUFFIX);
    private static final Pattern INDEX_FILE = Pattern.compile("(\\d{20})\\" + LogSegment.INDEX_SUFFIX);
    private static final Pattern TIME_INDEX_FILE = Pattern.compile("(\\d{20})\\" + LogSegment.TIME_INDEX_SUFFIX);
    /** How long a segment removed by retention stays open for readers that still hold it. */
    static final long FILE_DELETE_DELAY_MS = 60_000;

    /** A segment removed by retention, waiting for its readers to finish. */
    private record Retired(LogSegment segment, long retiredAtMs) {
    }

    private final TopicPartition topicPartition;
    private final Path dir;
    private final LogConfig config;
    private final RecoveryCheckpoint checkpoint;
    private final int segmentsRecovered;
    private final ReentrantLock appendLock = new ReentrantLock();
    /** Held by the leader of a group commit while it forces the log. */
    private final ReentrantLock syncLock = new ReentrantLock();
    /** Guards publication (nextOffset, segments' visible sizes); waiters for durability wait on it. */
    private final Object published = new Object();
    private final List<Retired> retired = new ArrayList<>();
    /** Told after each publication, so that waiting readers wake up; set once by the owning log. */
    private volatile Runnable publishListener = () -> { };
    /** Forces made by group commits and interval flushes; for tests and metrics. */
    private final java.util.concurrent.atomic.AtomicLong syncs = new java.util.concurrent.atomic.AtomicLong();

    private volatile LogSegment[] segments;
    /** One past the last acknowledged (durable per policy, visible) record. */
    private volatile long nextOffset;
    /** One past the last written record; guarded by appendLock for writes. */
    private volatile long writeOffset;
    private volatile long recoveryPoint;
    /** Set when a failed append could not be undone or a force failed; then no appends are taken. */
    private volatile IOException failure;
    /** What failed, for {@link #failure()}: "forcing it to disk" or "undoing a failed append". */
    private volatile String failedAt;
    /** Guarded by appendLock. */
    private final ProducerStateTable producers;

    private PartitionLog(TopicPartition topicPartition, Path dir, LogConfig config, RecoveryCheckpoint checkpoint,
            List<LogSegment> segments, long nextOffset, int segmentsRecovered, ProducerStateTable producers) {
        this.topicPartition = topicPartition;
        this.dir = dir;
        this.config = config;
        this.checkpoint = checkpoint;
        this.segments = segments.toArray(new LogSegment[0]);
        this.nextOffset = nextOffset;
        this.writeOffset = nextOffset;
        this.recoveryPoint = nextOffset;
        this.segmentsRecovered = segmentsRecovered;
        this.producers = producers;
    }

    /** @return the directory name of a partition: {@code <topic>-<partition>} */
    static String dirName(TopicPartition tp) {
        return tp.topic() + "-" + tp.partition();
    }

    /** Creates the directory and first segment of a new, empty partition. */
    static PartitionLog create(Path dataDir, TopicPartition tp, LogConfig config, RecoveryCheckpoint checkpoint)
            throws IOException {
        Path dir = dataDir.resolve(dirName(tp));
        OwnerOnly.createDirectories(dir);
        LogSegment first = LogSegment.create(dir, 0, config.indexIntervalBytes(), config.channels(), config.cipher());
        return new PartitionLog(tp, dir, config, checkpoint, List.of(first), 0, 0, new ProducerStateTable(tp));
    }

    /**
     * Opens an existing partition, recovering it first if the log was not shut down cleanly (see
     * the class comment). Recovered data is forced before this returns.
     */
    static PartitionLog load(Path dataDir, TopicPartition tp, LogConfig config, RecoveryCheckpoint checkpoint,
            boolean cleanShutdown) throws IOException {
        Path dir = dataDir.resolve(dirName(tp));
        List<LogSegment> segments = new ArrayList<>();
        try {
            for (long base : segmentBases(dir)) {
                segments.add(LogSegment.open(dir, base, config.indexIntervalBytes(), config.channels(), config.cipher()));
            }
            if (segments.isEmpty()) {
                LOG.warn("{} has no segment; starting it empty at offset 0", dir);
                segments.add(LogSegment.create(dir, 0, config.indexIntervalBytes(), config.channels(), config.cipher()));
            }
            int firstToScan = cleanShutdown ? segments.size()
                    : floorIndex(segments.stream().mapToLong(LogSegment::baseOffset).toArray(), checkpoint.get(tp));
            List<LogSegment> scanned = new ArrayList<>();
            long next = -1;
            for (int i = 0; i < segments.size(); i++) {
                LogSegment segment = segments.get(i);
                boolean last = i == segments.size() - 1;
                if (next >= 0 && segment.baseOffset() != next) {
                    LOG.warn("Recovery of {}: segment {} starts at offset {} but the one before it ends at offset {}",
                            tp, segment, segment.baseOffset(), next);
                    deleteFrom(segments, i, tp, dir);
                    break;
                }
                boolean scan = i >= firstToScan;
                if (!scan && !segment.loadIndex()) {
                    LOG.warn("Index of {} is missing or damaged; rebuilding it from the log", segment);
                    scan = true;
                }
                if (!scan && last) {
                    OptionalLong tail = segment.walkTail();
                    if (tail.isPresent()) {
                        next = tail.getAsLong();
                    } else {
                        LOG.warn("The batches of {} do not end at the end of the file although the log was shut"
                                + " down cleanly; validating the segment", segment);
                        scan = true;
                    }
                }
                if (scan) {
                    LogSegment.Recovery r = segment.recover();
                    scanned.add(segment);
                    next = r.nextOffset();
                    if (r.truncatedBytes() > 0) {
                        LOG.warn("Recovery of {} cut {} bytes from segment {} at byte {} (next offset {}) because it"
                                + " found {}", tp, r.truncatedBytes(), segment, r.validBytes(), r.nextOffset(),
                                r.problem());
                        deleteFrom(segments, i + 1, tp, dir);
                        break;
                    }
                } else if (!last) {
                    next = -1;
                }
            }
            for (LogSegment segment : scanned) {
                segment.flush();
            }
            assert next >= 0 : "the last segment must have been walked or recovered";
            if (!scanned.isEmpty()) {
                LOG.info("Recovered {}: validated {} segment(s), end offset {}", tp, scanned.size(), next);
            }
            ProducerStateTable producers = new ProducerStateTable(tp);
            for (LogSegment segment : segments.subList(
                    Math.max(0, segments.size() - ProducerStateTable.SEGMENTS_REPLAYED_AT_OPEN), segments.size())) {
                segment.loadProducerState(producers);
            }
            return new PartitionLog(tp, dir, config, checkpoint, segments, next, scanned.size(), producers);
        } catch (IOException | RuntimeException e) {
            for (LogSegment segment : segments) {
                Utils.closeQuietly(segment, "segment " + segment);
            }
            throw e;
        }
    }

    TopicPartition topicPartition() {
        return topicPartition;
    }

    /** @return how many segments {@link #load} validated batch by batch; 0 after a clean shutdown */
    int segmentsRecovered() {
        return segmentsRecovered;
    }

    long startOffset() {
        return segments[0].baseOffset();
    }

    long endOffset() {
        return nextOffset;
    }

    /** @return an offset below which all data is on stable storage */
    long recoveryPoint() {
        return recoveryPoint;
    }

    /**
     * Appends one encoded batch as the next offsets and returns its base offset once it is
     * acknowledged: {@link #write} followed by {@link #awaitDurable}.
     */
    long append(ByteBuffer batch, int recordCount, long maxTimestamp) throws IOException {
        long base = write(batch, recordCount, maxTimestamp);
        awaitDurable(base + recordCount);
        return base;
    }

    /**
     * Writes one encoded batch as the next offsets without waiting for the device (see the class
     * comment). If writing fails, the partial batch is cut off again and the log stays usable; if
     * even that fails, the partition refuses further appends until the log is reopened.
     *
     * @return the batch's base offset; it is acknowledged once {@link #awaitDurable} for
     *     base + recordCount returns
     */
    long write(ByteBuffer batch, int recordCount, long maxTimestamp) throws IOException {
        appendLock.lock();
        try {
            checkFailure();
            long base = writeOffset;
            LogSegment active = segments[segments.length - 1];
            LogSegment.Mark mark = null;
            try {
                if (shouldRoll(active, batch.remaining(), base, recordCount)) {
                    active = roll(active, base);
                }
                RecordBatch.setBaseOffset(batch, base);
                mark = active.mark();
                active.append(batch, base, maxTimestamp);
            } catch (IOException e) {
                if (mark != null) {
                    try {
                        active.rollback(mark);
                    } catch (IOException | RuntimeException undo) {
                        e.addSuppressed(undo);
                        fail(e, "undoing a failed append");
                    }
                }
                if (failure != null) {
                    throw new IOException(failure(), e);
                }
                throw new IOException("could not append " + recordCount + " records to " + topicPartition + " in " + dir
                        + " (" + e + "); check free disk space and permissions, then retry", e);
            }
            writeOffset = base + recordCount;
            if (config.flushPolicy() == LogConfig.FlushPolicy.OS) {
                publish(active, active.size(), writeOffset);
            }
            return base;
        } finally {
            appendLock.unlock();
        }
    }

    /**
     * Like {@link #write}, for a batch that carries {@code producer} (encoded into it): the
     * producer's sequence is checked first (see {@link ProducerStateTable}); a retry of one of its
     * recent batches is not written and gets the original base offset; a written batch is
     * recorded in the producer state. Follow with {@link #awaitDurable} in both cases.
     *
     * @throws org.apache.kafka.common.errors.InvalidProducerEpochException if the producer's epoch
     *     is fenced
     * @throws org.apache.kafka.common.errors.OutOfOrderSequenceException if the sequence does not
     *     continue the producer's
     */
    IdempotentWrite writeIdempotent(ByteBuffer batch, int recordCount, long maxTimestamp, ProducerBatch producer)
            throws IOException {
        appendLock.lock();
        try {
            checkFailure();
            OptionalLong original = producers.check(producer, recordCount);
            if (original.isPresent()) {
                return new IdempotentWrite(original.getAsLong(), true);
            }
            long base = write(batch, recordCount, maxTimestamp);
            producers.append(producer, recordCount, base);
            return new IdempotentWrite(base, false);
        } finally {
            appendLock.unlock();
        }
    }

    /** @return the largest producer id in this partition's producer state, or -1 if there is none */
    long maxProducerId() {
        return producers.maxProducerId();
    }

    /**
     * Returns once every record below {@code end} is acknowledged: forced (leading a group commit
     * if needed) under FSYNC_EACH_BATCH, forced by the interval flusher under INTERVAL, at once
     * under OS.
     *
     * @throws IOException if a force failed; the partition then takes no more appends
     */
    void awaitDurable(long end) throws IOException {
        if (nextOffset >= end) {
            return;
        }
        if (config.flushPolicy() == LogConfig.FlushPolicy.FSYNC_EACH_BATCH) {
            sync(end);
            return;
        }
        synchronized (published) {
            while (nextOffset < end) {
                checkFailure();
                try {
                    published.wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.io.InterruptedIOException("interrupted while waiting for " + topicPartition
                            + " to force offset " + (end - 1) + "; the record may or may not be durable");
                }
            }
        }
    }

    /**
     * Forces everything written so far unless offsets below {@code target} are already durable,
     * then publishes it; {@code Long.MAX_VALUE} forces whatever is written. This is the group
     * commit leader step.
     */
    void sync(long target) throws IOException {
        if (nextOffset >= Math.min(target, writeOffset) && failure == null) {
            return;
        }
        syncLock.lock();
        try {
            if (nextOffset >= Math.min(target, writeOffset)) {
                return;
            }
            checkFailure();
            LogSegment active;
            int position;
            long written;
            appendLock.lock();
            try {
                active = segments[segments.length - 1];
                position = active.size();
                written = writeOffset;
            } finally {
                appendLock.unlock();
            }
            try {
                syncs.incrementAndGet();
                active.forceLog();
            } catch (IOException e) {
                fail(e, "forcing it to disk");
                throw new IOException("could not force " + topicPartition + " in " + dir + " to disk (" + e
                        + "), so records " + nextOffset + " to " + (written - 1) + " are not acknowledged and may be lost:"
                        + " close the log and open it again to recover the partition", e);
            }
            recoveryPoint = Math.max(recoveryPoint, written);
            publish(active, position, written);
        } finally {
            syncLock.unlock();
        }
    }

    long syncs() {
        return syncs.get();
    }

    /** Publishes offsets below {@code end}, which lie in {@code segment} up to byte {@code position}. */
    private void publish(LogSegment segment, int position, long end) {
        synchronized (published) {
            if (end > nextOffset) {
                segment.publish(position);
                nextOffset = end;
                published.notifyAll();
            } else {
                return;
            }
        }
        publishListener.run();
    }

    void setPublishListener(Runnable listener) {
        this.publishListener = listener;
    }

    /** Stops appends for good (until reopened) and wakes every waiter, which then fails. */
    private void fail(IOException e, String what) {
        if (failure == null) {
            failedAt = what;
            failure = e;
            LOG.error("{} in {} refuses appends from now on: {} failed ({}); close the log and open it again to recover it",
                    topicPartition, dir, what, e.toString());
        }
        synchronized (published) {
            published.notifyAll();
        }
    }

    /**
     * @return why this partition refuses appends, one sentence naming the partition, the error and
     *     what to do; null while it takes appends
     */
    String failure() {
        IOException f = failure;
        return f == null ? null : topicPartition + " refuses appends since " + failedAt + " failed (" + f
                + "); records from offset " + nextOffset + " on are not acknowledged: close the log and open it again"
                + " to recover the partition";
    }

    private void checkFailure() throws IOException {
        IOException f = failure;
        if (f != null) {
            throw new IOException(failure(), f);
        }
    }

    /**
     * @return the first record whose timestamp is at or after {@code timestamp}, or null if every
     *     record is older (see {@link TimeIndex} for the lookup)
     */
    LogEntry findByTimestamp(long timestamp) throws IOException {
        long end = nextOffset;
        LogSegment[] segs = segments;
        for (LogSegment segment : segs) {
            if (segment.baseOffset() >= end) {
                break;
            }
            if (segment.maxTimestamp() < timestamp) {
                continue;
            }
            long from = Math.max(segment.timeScanStart(timestamp), segs[0].baseOffset());
            List<LogEntry> chunk = new ArrayList<>();
            while (from < end) {
                chunk.clear();
                segment.read(from, end, 500, chunk);
                if (chunk.isEmpty()) {
                    break;
                }
                for (LogEntry e : chunk) {
                    if (e.timestamp() >= timestamp) {
                        return e;
                    }
                }
                from = chunk.get(chunk.size() - 1).offset() + 1;
            }
        }
        return null;
    }

    /**
     * Deletes whole segments from the front while they are older than the retention time (by their
     * newest record timestamp) or the partition would still hold at least the retention size
     * without them; never the active segment. Also closes segments retired long enough ago.
     *
     * @return the number of segments deleted
     */
    int enforceRetention(long nowMs) throws IOException {
        List<LogSegment> dropped = new ArrayList<>();
        appendLock.lock();
        try {
            LogSegment[] segs = segments;
            long total = 0;
            for (LogSegment s : segs) {
                total += s.size();
            }
            int drop = 0;
            while (drop < segs.length - 1) {
                LogSegment s = segs[drop];
                boolean expired = config.retentionMs() >= 0 && s.maxTimestamp() < nowMs - config.retentionMs();
                boolean oversize = config.retentionBytes() >= 0 && total - s.size() >= config.retentionBytes();
                if (!expired && !oversize) {
                    break;
                }
                total -= s.size();
                dropped.add(s);
                drop++;
            }
            if (drop > 0) {
                segments = Arrays.copyOfRange(segs, drop, segs.length);
            }
        } finally {
            appendLock.unlock();
        }
        IOException first = null;
        synchronized (retired) {
            for (LogSegment s : dropped) {
                LOG.info("Retention deleted segment {} of {} ({} bytes, newest record at {})", s, topicPartition,
                        s.size(), s.maxTimestamp());
                retired.add(new Retired(s, nowMs));
                try {
                    s.deleteFiles();
                } catch (IOException e) {
                    first = first == null ? e : first;
                }
            }
            for (var it = retired.iterator(); it.hasNext();) {
                Retired r = it.next();
                if (nowMs - r.retiredAtMs() >= FILE_DELETE_DELAY_MS) {
                    Utils.closeQuietly(r.segment(), "retired segment " + r.segment());
                    it.remove();
                }
            }
        }
        if (!dropped.isEmpty()) {
            Utils.flushDir(dir);
        }
        if (first != null) {
            throw new IOException("retention could not delete a segment file of " + topicPartition + " (" + first
                    + "); check the permissions of " + dir, first);
        }
        return dropped.size();
    }

    /**
     * @return the records from {@code from} on, at most {@code max} of them and none at or past the
     *     end offset as of the call
     * @throws IllegalArgumentException if {@code from} is outside [startOffset, endOffset]
     */
    List<LogEntry> read(long from, int max) throws IOException {
        long end = nextOffset;
        LogSegment[] segs = segments;
        long start = segs[0].baseOffset();
        if (from < start || from > end) {
            throw new IllegalArgumentException("offset " + from + " is out of range for " + topicPartition
                    + ", which holds offsets " + start + " up to (not including) " + end
                    + "; read from an offset between startOffset and endOffset");
        }
        List<LogEntry> out = new ArrayList<>((int) Math.min(max, Math.min(end - from, 1024)));
        long[] bases = Arrays.stream(segs).mapToLong(LogSegment::baseOffset).toArray();
        for (int i = floorIndex(bases, from); i < segs.length && out.size() < max && bases[i] < end; i++) {
            segs[i].read(from, end, max, out);
        }
        assert out.isEmpty() || out.get(0).offset() >= from : "read must start at the requested offset";
        return out;
    }

    /**
     * Erases records of this partition in place (see {@link LogSegment#erase}); durable on return.
     * Appends wait meanwhile, and so does retention, so no segment is deleted or rolled under it.
     *
     * @return the offsets erased; offsets already erased, or outside [startOffset, endOffset), are not
     */
    List<Long> erase(java.util.Set<Long> offsets) throws IOException {
        List<Long> erased = new ArrayList<>();
        appendLock.lock();
        try {
            checkFailure();
            LogSegment[] segs = segments;
            for (int i = 0; i < segs.length; i++) {
                long from = segs[i].baseOffset();
                long to = i + 1 < segs.length ? segs[i + 1].baseOffset() : Long.MAX_VALUE;
                // Only the segments that hold one of the offsets are walked.
                if (offsets.stream().anyMatch(o -> o >= from && o < to)) {
                    erased.addAll(segs[i].erase(offsets));
                }
            }
        } finally {
            appendLock.unlock();
        }
        return erased;
    }

    /** Forces the active segment and its indexes (rolled ones were forced when they rolled). */
    void flush() throws IOException {
        sync(Long.MAX_VALUE);
        appendLock.lock();
        try {
            checkFailure(); // a later force that succeeds proves nothing: the next open must recover
            try {
                segments[segments.length - 1].flush();
            } catch (IOException e) {
                fail(e, "forcing it to disk");
                throw e;
            }
            recoveryPoint = nextOffset;
        } finally {
            appendLock.unlock();
        }
    }

    /** Closes the files, including retired segments; does not flush. */
    @Override
    public void close() throws IOException {
        IOException first = null;
        List<LogSegment> all = new ArrayList<>(Arrays.asList(segments));
        synchronized (retired) {
            retired.forEach(r -> all.add(r.segment()));
            retired.clear();
        }
        synchronized (published) {
            published.notifyAll();
        }
        for (LogSegment segment : all) {
            try {
                segment.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return topicPartition.toString();
    }

    private boolean shouldRoll(LogSegment active, int batchSize, long base, int recordCount) {
        return active.size() > 0
                && (active.size() + (long) active.storedSize(batchSize) > config.segmentBytes()
                        || base + recordCount - active.baseOffset() > Integer.MAX_VALUE);
    }

    /** Forces the active segment, starts a new one at {@code base} and checkpoints the recovery point. */
    private LogSegment roll(LogSegment active, long base) throws IOException {
        try {
            active.flush();
        } catch (IOException e) {
            fail(e, "forcing it to disk");
            throw e;
        }
        publish(active, active.size(), base);
        LogSegment next = LogSegment.create(dir, base, config.indexIntervalBytes(), config.channels(), config.cipher());
        LogSegment[] rolled = Arrays.copyOf(segments, segments.length + 1);
        rolled[rolled.length - 1] = next;
        segments = rolled;
        recoveryPoint = base;
        checkpoint.update(topicPartition, base);
        LOG.debug("Rolled {} to a new segment at offset {}", topicPartition, base);
        return next;
    }

    /** @return the index of the last base at or below {@code offset}, or 0 if there is none */
    private static int floorIndex(long[] bases, long offset) {
        int i = Arrays.binarySearch(bases, offset);
        return i >= 0 ? i : Math.max(0, -i - 2);
    }

    /** @return the base offsets of the segments in {@code dir}, ascending; deletes orphaned index files */
    private static List<Long> segmentBases(Path dir) throws IOException {
        List<Long> bases = new ArrayList<>();
        List<Path> indexes = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
            for (Path file : files) {
                String name = file.getFileName().toString();
                Matcher log = SEGMENT_FILE.matcher(name);
                if (log.matches()) {
                    bases.add(Long.parseLong(log.group(1)));
                } else if (INDEX_FILE.matcher(name).matches() || TIME_INDEX_FILE.matcher(name).matches()) {
                    indexes.add(file);
                }
            }
        }
        bases.sort(null);
        for (Path index : indexes) {
            String name = index.getFileName().toString();
            if (!bases.contains(Long.parseLong(name.substring(0, 20)))) {
                LOG.info("Deleting index {} whose segment does not exist", index);
                Files.delete(index);
            }
        }
        return bases;
    }

    private static void deleteFrom(List<LogSegment> segments, int from, TopicPartition tp, Path dir) throws IOException {
        if (from >= segments.size()) {
            return;
        }
        while (segments.size() > from) {
            LogSegment segment = segments.remove(segments.size() - 1);
            LOG.warn("Recovery of {} deleted segment {} ({} bytes) because it lies behind the damage",
                    tp, segment, segment.size());
            segment.delete();
        }
        Utils.flushDir(dir);
    }
}
