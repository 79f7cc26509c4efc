package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.batches;
import static io.pockettune.ingest.LogTestSupport.record;
import static io.pockettune.ingest.LogTestSupport.segments;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.ingest.LogTestSupport.BatchSpan;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Idempotent writes on real files: Kafka's producer-id, epoch and sequence rules.
 */
class IdempotentWriteTest {

    /** Small segments, so that a few dozen batches roll past the window of two segments. */
    private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(100);
    private static final String TOPIC = "events";

    @TempDir
    Path dir;

    @Test
    void writeIdempotent_retry_returnsTheOriginalOffsetAndAppendsNothing() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            assertEquals(new IdempotentWrite(0, false), write(log, 7, 0, 0, "a", "b", "c"));
            assertEquals(new IdempotentWrite(3, false), write(log, 7, 0, 3, "d"));
            assertEquals(new IdempotentWrite(0, true), write(log, 7, 0, 0, "a", "b", "c"));
            assertEquals(new IdempotentWrite(3, true), write(log, 7, 0, 3, "d"));
            assertEquals(4, log.endOffset(TOPIC, 0));
            assertEquals(List.of("a", "b", "c", "d"), values(log));
            assertEquals(new IdempotentWrite(4, false), write(log, 7, 0, 4, "e"));
        }
    }

    @Test
    void writeIdempotent_retryOfEachOfTheLastFiveBatches_isADuplicateAndAnOlderOneIsOutOfOrder() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            for (int seq = 0; seq < 8; seq++) {
                write(log, 1, 0, seq, "v" + seq);
            }
            for (int seq = 3; seq < 8; seq++) {
                assertEquals(new IdempotentWrite(seq, true), write(log, 1, 0, seq, "v" + seq), "sequence " + seq);
            }
            assertThrows(OutOfOrderSequenceException.class, () -> write(log, 1, 0, 2, "v2"));
            assertEquals(8, log.endOffset(TOPIC, 0));
        }
    }

    @Test
    void writeIdempotent_sameRangeStartButDifferentLength_isNotADuplicate() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            write(log, 1, 0, 0, "a", "b");
            assertThrows(OutOfOrderSequenceException.class, () -> write(log, 1, 0, 0, "a"));
            assertEquals(2, log.endOffset(TOPIC, 0));
        }
    }

    @Test
    void writeIdempotent_gapInSequence_isRejectedAndWritesNothing() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            write(log, 5, 2, 10, "a", "b");
            OutOfOrderSequenceException e = assertThrows(OutOfOrderSequenceException.class,
                    () -> write(log, 5, 2, 13, "c"));
            assertTrue(e.getMessage().contains("producer id 5") && e.getMessage().contains("sequence 13")
                    && e.getMessage().contains("sequence 12 was expected") && e.getMessage().contains("events-0"),
                    e.getMessage());
            assertEquals(2, log.endOffset(TOPIC, 0));
            assertEquals(new IdempotentWrite(2, false), write(log, 5, 2, 12, "c"));
        }
    }

    @Test
    void writeIdempotent_olderEpoch_isFenced() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            write(log, 3, 0, 0, "a");
            write(log, 3, 1, 0, "b");
            InvalidProducerEpochException e = assertThrows(InvalidProducerEpochException.class,
                    () -> write(log, 3, 0, 1, "c"));
            assertTrue(e.getMessage().contains("producer id 3") && e.getMessage().contains("events-0")
                    && e.getMessage().contains("epoch 0") && e.getMessage().contains("epoch 1"), e.getMessage());
            // A retry of the old epoch's batch is fenced too, not answered as a duplicate.
            assertThrows(InvalidProducerEpochException.class, () -> write(log, 3, 0, 0, "a"));
            assertEquals(2, log.endOffset(TOPIC, 0));
        }
    }

    @Test
    void writeIdempotent_newEpoch_mustStartAtSequenceZero() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            write(log, 3, 0, 0, "a", "b");
            assertThrows(OutOfOrderSequenceException.class, () -> write(log, 3, 1, 2, "c"));
            assertEquals(new IdempotentWrite(2, false), write(log, 3, 1, 0, "c"));
            assertEquals(new IdempotentWrite(3, false), write(log, 3, 1, 1, "d"));
            assertEquals(new IdempotentWrite(2, true), write(log, 3, 1, 0, "c"));
        }
    }

    @Test
    void writeIdempotent_sequenceWrapsAroundAfterMaxValue() throws IOException {
        int max = Integer.MAX_VALUE;
        try (EmbeddedLog log = open(SMALL)) {
            assertEquals(new IdempotentWrite(0, false), write(log, 9, 0, max - 1, "a", "b"));
            assertEquals(new IdempotentWrite(2, false), write(log, 9, 0, 0, "c"));
            assertEquals(new IdempotentWrite(3, false), write(log, 10, 0, max - 1, "a", "b", "c", "d"));
            assertThrows(OutOfOrderSequenceException.class, () -> write(log, 10, 0, 0, "e"));
            assertEquals(new IdempotentWrite(7, false), write(log, 10, 0, 2, "e"));
            assertEquals(new IdempotentWrite(3, true), write(log, 10, 0, max - 1, "a", "b", "c", "d"));
        }
        assertEquals(max, ProducerStateTable.lastSequence(max, 1));
        assertEquals(0, ProducerStateTable.lastSequence(max, 2));
        assertEquals(1, ProducerStateTable.lastSequence(max - 1, 4));
        assertEquals(0, ProducerStateTable.nextSequence(max));
    }

    @Test
    void writeIdempotent_unknownProducer_isAcceptedAtAnySequenceAndEpoch() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            assertEquals(new IdempotentWrite(0, false), write(log, 11, 4, 1000, "a"));
            assertEquals(new IdempotentWrite(1, false), write(log, 12, 0, 0, "b"));
            assertEquals(new IdempotentWrite(2, false), write(log, 11, 4, 1001, "c"));
        }
    }

    @Test
    void writeIdempotent_mixedWithPlainWrites_readsBackLikePlainAppends() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            List<List<LogRecord>> batches = LogTestSupport.randomBatches(new Random(3), 60);
            int seq = 0;
            for (int i = 0; i < batches.size(); i++) {
                List<LogRecord> batch = batches.get(i);
                if (i % 2 == 0) {
                    log.append(TOPIC, 0, batch);
                } else {
                    IdempotentWrite w = log.writeIdempotent(TOPIC, 0, batch, new ProducerBatch(1, (short) 0, seq));
                    log.awaitDurable(TOPIC, 0, w.baseOffset() + batch.size());
                    seq += batch.size();
                }
            }
            assertEquals(LogTestSupport.entries(batches), log.read(TOPIC, 0, 0, Integer.MAX_VALUE));
        }
        List<Integer> magics = new ArrayList<>();
        for (Path segment : segments(partitionDir())) {
            byte[] bytes = Files.readAllBytes(segment);
            for (BatchSpan span : batches(segment)) {
                magics.add((int) bytes[(int) span.start() + 16]);
            }
        }
        assertEquals(Stream.iterate(1, m -> 3 - m).limit(60).toList(), magics,
                "plain batches must stay version 1, idempotent ones version 2");
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(LogTestSupport.entries(LogTestSupport.randomBatches(new Random(3), 60)),
                    log.read(TOPIC, 0, 0, Integer.MAX_VALUE));
        }
    }

    @Test
    void writeIdempotent_afterRetentionDeletedTheOriginal_isStillADuplicate() throws IOException {
        LogConfig config = SMALL.withRetention(-1, 1);
        try (EmbeddedLog log = open(config)) {
            write(log, 1, 0, 0, "first");
            int seq = 0;
            while (segments(partitionDir()).size() < 3) {
                write(log, 2, 0, seq++, "filler " + seq);
            }
            assertTrue(log.enforceRetention() > 0);
            assertTrue(log.startOffset(TOPIC, 0) > 0, "the original must be gone");
            long end = log.endOffset(TOPIC, 0);
            assertEquals(new IdempotentWrite(0, true), write(log, 1, 0, 0, "first"));
            assertEquals(end, log.endOffset(TOPIC, 0));
            assertEquals(new IdempotentWrite(end, false), write(log, 1, 0, 1, "second"));
        }
    }

    @Test
    void writeIdempotent_failedWrite_leavesNoProducerState() throws IOException {
        try (EmbeddedLog log = open(LogConfig.defaults().withSegmentBytes(LogConfig.MIN_SEGMENT_BYTES))) {
            write(log, 8, 0, 0, "a");
            // The next batch rolls the segment; with the directory gone the roll cannot create the file.
            List<Path> files;
            try (Stream<Path> list = Files.list(partitionDir())) {
                files = list.toList();
            }
            for (Path f : files) {
                Files.delete(f);
            }
            Files.delete(partitionDir());
            assertThrows(IOException.class, () -> log.writeIdempotent(TOPIC, 0, List.of(record("b")),
                    new ProducerBatch(8, (short) 0, 1)));
            Files.createDirectories(partitionDir());
            assertEquals(new IdempotentWrite(1, false), write(log, 8, 0, 1, "b"), "the failed write must not count");
            assertEquals(new IdempotentWrite(1, true), write(log, 8, 0, 1, "b"));
        }
    }

    @Test
    void writeIdempotent_concurrentRetriesOfOneBatch_writeItOnce() throws Exception {
        int threads = 8;
        try (EmbeddedLog log = open(SMALL)) {
            ExecutorService pool = Executors.newFixedThreadPool(threads);
            try {
                for (int round = 0; round < 20; round++) {
                    int seq = round;
                    CountDownLatch start = new CountDownLatch(1);
                    List<Future<IdempotentWrite>> results = new ArrayList<>();
                    for (int t = 0; t < threads; t++) {
                        Callable<IdempotentWrite> retry = () -> {
                            start.await();
                            return write(log, 1, 0, seq, "r" + seq);
                        };
                        results.add(pool.submit(retry));
                    }
                    start.countDown();
                    int written = 0;
                    for (Future<IdempotentWrite> r : results) {
                        IdempotentWrite w = r.get();
                        assertEquals(round, w.baseOffset());
                        written += w.duplicate() ? 0 : 1;
                    }
                    assertEquals(1, written, "round " + round);
                }
            } finally {
                pool.shutdownNow();
            }
            assertEquals(20, log.endOffset(TOPIC, 0));
        }
    }

    @Test
    void maxProducerId_isTheLargestIdOfAnyPartitionOrMinusOne() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            log.createTopic("other", 3);
            assertEquals(-1, log.maxProducerId());
            log.append(TOPIC, 0, List.of(record("plain")));
            assertEquals(-1, log.maxProducerId());
            log.writeIdempotent("other", 2, List.of(record("a")), new ProducerBatch(40, (short) 0, 0));
            log.writeIdempotent(TOPIC, 0, List.of(record("b")), new ProducerBatch(7, (short) 0, 0));
            assertEquals(40, log.maxProducerId());
        }
    }

    @Test
    void writeIdempotent_badArguments_areRejectedWithoutWriting() throws IOException {
        try (EmbeddedLog log = open(SMALL)) {
            ProducerBatch producer = new ProducerBatch(1, (short) 0, 0);
            List<LogRecord> one = List.of(record("a"));
            List<LogRecord> oversized = List.of(new LogRecord(0, null, new byte[SMALL.segmentBytes()]));
            assertThrows(IllegalArgumentException.class, () -> log.writeIdempotent("nope", 0, one, producer));
            assertThrows(IllegalArgumentException.class, () -> log.writeIdempotent(TOPIC, 1, one, producer));
            assertThrows(IllegalArgumentException.class, () -> log.writeIdempotent(TOPIC, 0, List.of(), producer));
            assertThrows(IllegalArgumentException.class, () -> log.writeIdempotent(TOPIC, 0, oversized, producer));
            assertThrows(NullPointerException.class, () -> log.writeIdempotent(TOPIC, 0, one, null));
            assertEquals(0, log.endOffset(TOPIC, 0));
            assertEquals(new IdempotentWrite(0, false), write(log, 1, 0, 0, "a"), "nothing was recorded");
        }
    }

    private EmbeddedLog open(LogConfig config) throws IOException {
        EmbeddedLog log = EmbeddedLog.open(dir, config);
        log.createTopic(TOPIC, 1);
        return log;
    }

    private Path partitionDir() {
        return dir.resolve(TOPIC + "-0");
    }

    /** Writes one record per value as one idempotent batch and waits for it, as the listener does. */
    private static IdempotentWrite write(EmbeddedLog log, long producerId, int epoch, int baseSequence,
            String... values) throws IOException {
        List<LogRecord> records = Arrays.stream(values).map(LogTestSupport::record).toList();
        IdempotentWrite w = log.writeIdempotent(TOPIC, 0, records,
                new ProducerBatch(producerId, (short) epoch, baseSequence));
        log.awaitDurable(TOPIC, 0, w.baseOffset() + records.size());
        return w;
    }

    private static List<String> values(EmbeddedLog log) throws IOException {
        return log.read(TOPIC, 0, 0, Integer.MAX_VALUE).stream().map(LogTestSupport::value).toList();
    }
}
