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
 * Idempotent writes on real files: Kafka's producer-id, epoch and sequence rules, and the
 * de-duplication of retries across a clean close, a crash (an abandoned log) and a torn tail.
 */
class IdempotentWriteTest {

    /** Small segments, so that a few dozen batches roll past the window of two segments. */
    private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(100);
    private static final String TOPIC = "events";

    @TempDir
    Path dir;

    /** An idempotent batch a test wrote, to retry it later. */
    private record Sent(long producerId, int baseSequence, List<LogRecord> records, long baseOffset) {
    }

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

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void reopen_afterCleanOrUncleanShutdown_stillRecognisesRetries(boolean clean) throws IOException {
        EmbeddedLog log = open(SMALL);
        write(log, 21, 3, 0, "a", "b");
        write(log, 22, 0, 5, "c");
        write(log, 21, 3, 2, "d");
        if (clean) {
            log.close();
        } else {
            log.abandon();
        }
        try (EmbeddedLog reopened = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(clean ? 0 : 1, reopened.segmentsRecoveredAtOpen());
            assertEquals(new IdempotentWrite(0, true), write(reopened, 21, 3, 0, "a", "b"));
            assertEquals(new IdempotentWrite(3, true), write(reopened, 21, 3, 2, "d"));
            assertEquals(new IdempotentWrite(2, true), write(reopened, 22, 0, 5, "c"));
            assertThrows(InvalidProducerEpochException.class, () -> write(reopened, 21, 2, 0, "x"));
            assertThrows(OutOfOrderSequenceException.class, () -> write(reopened, 21, 3, 5, "x"));
            assertEquals(4, reopened.endOffset(TOPIC, 0));
            assertEquals(22, reopened.maxProducerId());
            assertEquals(new IdempotentWrite(4, false), write(reopened, 21, 3, 3, "e"));
        }
    }

    /** A crash that tears the last (idempotent) batch: recovery cuts it, and its retry is appended once. */
    @ParameterizedTest
    @ValueSource(ints = {1, 28, 29, 42, 43, -1})
    void reopen_afterTornVersion2Tail_appendsTheRetryOfTheLostBatchOnce(int keptBytes) throws IOException {
        EmbeddedLog log = open(SMALL);
        write(log, 4, 0, 0, "a");
        write(log, 4, 0, 1, "torn");
        log.abandon();
        List<Path> files = segments(partitionDir());
        Path last = files.get(files.size() - 1);
        List<BatchSpan> spans = batches(last);
        BatchSpan torn = spans.get(spans.size() - 1);
        long kept = keptBytes < 0 ? torn.end() - torn.start() - 1 : keptBytes;
        LogTestSupport.truncate(last, torn.start() + kept);

        try (EmbeddedLog reopened = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(1, reopened.endOffset(TOPIC, 0));
            assertEquals(new IdempotentWrite(0, true), write(reopened, 4, 0, 0, "a"));
            assertEquals(new IdempotentWrite(1, false), write(reopened, 4, 0, 1, "torn"));
            assertEquals(new IdempotentWrite(1, true), write(reopened, 4, 0, 1, "torn"));
            assertEquals(List.of("a", "torn"), values(reopened));
        }
    }

    @Test
    void reopen_rebuildsFromTheLastTwoSegmentsOnly() throws IOException {
        long secondToLast;
        try (EmbeddedLog log = open(SMALL)) {
            write(log, 100, 0, 0, "oldest");
            int other = 0;
            while (segments(partitionDir()).size() < 2) {
                write(log, 200, 0, other++, "filler " + other);
            }
            secondToLast = write(log, 101, 0, 0, "second to last").baseOffset();
            while (segments(partitionDir()).size() < 3) {
                write(log, 200, 0, other++, "filler " + other);
            }
            assertEquals(new IdempotentWrite(0, true), write(log, 100, 0, 0, "oldest"),
                    "while open, the table keeps every producer");
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(3, segments(partitionDir()).size());
            long end = log.endOffset(TOPIC, 0);
            assertEquals(new IdempotentWrite(secondToLast, true), write(log, 101, 0, 0, "second to last"),
                    "a batch in the second to last segment is in the window");
            assertEquals(new IdempotentWrite(end, false), write(log, 100, 0, 0, "oldest"),
                    "a producer whose batches left the window starts unknown and is accepted");
            assertEquals(List.of("oldest", "oldest"), values(log).stream().filter("oldest"::equals).toList());
        }
    }

    /**
     * Batches from a few bytes to several header-read windows, so that the walk at open both finds
     * headers inside one window read and reads one window per large batch.
     */
    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void reopen_batchesOfAllSizes_rebuildsEveryProducersLastBatches(boolean clean) throws IOException {
        Random random = new Random(11);
        List<Sent> sent = new ArrayList<>();
        int[] next = new int[4];
        EmbeddedLog log = open(LogConfig.defaults());
        for (int i = 0; i < 300; i++) {
            int producer = random.nextInt(next.length);
            List<LogRecord> records = new ArrayList<>();
            for (int r = 0, n = 1 + random.nextInt(3); r < n; r++) {
                byte[] value = new byte[random.nextInt(4) == 0 ? random.nextInt(3 * LogSegment.HEADER_WINDOW_BYTES)
                        : random.nextInt(60)];
                random.nextBytes(value);
                records.add(new LogRecord(i, null, value));
            }
            if (i % 7 == 0) {
                log.append(TOPIC, 0, records);
                continue;
            }
            IdempotentWrite w = log.writeIdempotent(TOPIC, 0, records,
                    new ProducerBatch(producer, (short) 0, next[producer]));
            log.awaitDurable(TOPIC, 0, w.baseOffset() + records.size());
            sent.add(new Sent(producer, next[producer], records, w.baseOffset()));
            next[producer] += records.size();
        }
        if (clean) {
            log.close();
        } else {
            log.abandon();
        }
        try (EmbeddedLog reopened = EmbeddedLog.open(dir, LogConfig.defaults())) {
            long end = reopened.endOffset(TOPIC, 0);
            for (int producer = 0; producer < next.length; producer++) {
                long id = producer;
                List<Sent> own = sent.stream().filter(b -> b.producerId() == id).toList();
                for (Sent b : own.subList(own.size() - ProducerStateTable.BATCHES_PER_PRODUCER, own.size())) {
                    assertEquals(new IdempotentWrite(b.baseOffset(), true),
                            retry(reopened, id, b.baseSequence(), b.records()), "producer " + producer);
                }
            }
            assertEquals(end, reopened.endOffset(TOPIC, 0));
            assertEquals(next.length - 1, reopened.maxProducerId());
        }
    }

    /**
     * Garbage over the tail of the last segment, as in {@link LogRecoveryTest}: exactly the batches
     * before it survive, each producer's surviving batches in the last two segments are recognised
     * as duplicates, and the retry of each producer's first lost batch is appended once.
     */
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})
    void reopen_afterGarbageOverTheTail_knowsExactlyTheSurvivingBatches(int seed) throws IOException {
        Random random = new Random(seed);
        List<Sent> sent = new ArrayList<>();
        int[] next = new int[3];
        EmbeddedLog log = open(SMALL);
        for (int i = 0; i < 60; i++) {
            int producer = random.nextInt(next.length);
            List<LogRecord> records = LogTestSupport.randomBatches(random, 1).get(0);
            IdempotentWrite w = log.writeIdempotent(TOPIC, 0, records,
                    new ProducerBatch(producer, (short) 0, next[producer]));
            log.awaitDurable(TOPIC, 0, w.baseOffset() + records.size());
            sent.add(new Sent(producer, next[producer], records, w.baseOffset()));
            next[producer] += records.size();
        }
        log.abandon();
        List<Path> files = segments(partitionDir());
        Path last = files.get(files.size() - 1);
        long position = random.nextInt((int) Files.size(last) + 1);
        byte[] garbage = new byte[(int) (Files.size(last) - position) + 1 + random.nextInt(64)];
        random.nextBytes(garbage);
        LogTestSupport.overwrite(last, position, garbage);

        try (EmbeddedLog reopened = EmbeddedLog.open(dir, SMALL)) {
            long end = reopened.endOffset(TOPIC, 0);
            assertEquals(sent.stream().filter(b -> b.baseOffset() < end).flatMap(b -> b.records().stream()).toList(),
                    reopened.read(TOPIC, 0, 0, Integer.MAX_VALUE).stream().map(LogEntry::record).toList());
            List<Path> kept = segments(partitionDir());
            String secondToLast = kept.get(Math.max(0, kept.size() - 2)).getFileName().toString();
            long windowStart = Long.parseLong(secondToLast.substring(0, 20));
            for (int producer = 0; producer < next.length; producer++) {
                long id = producer;
                List<Sent> own = sent.stream().filter(b -> b.producerId() == id).toList();
                List<Sent> survived = own.stream().filter(b -> b.baseOffset() < end).toList();
                List<Sent> inWindow = survived.stream().filter(b -> b.baseOffset() >= windowStart).toList();
                for (Sent b : inWindow.subList(Math.max(0, inWindow.size() - 5), inWindow.size())) {
                    assertEquals(new IdempotentWrite(b.baseOffset(), true),
                            retry(reopened, id, b.baseSequence(), b.records()), "producer " + producer);
                }
                if (survived.size() < own.size()) {
                    Sent lost = own.get(survived.size());
                    long at = reopened.endOffset(TOPIC, 0);
                    assertEquals(new IdempotentWrite(at, false), retry(reopened, id, lost.baseSequence(),
                            lost.records()), "producer " + producer);
                    assertEquals(new IdempotentWrite(at, true), retry(reopened, id, lost.baseSequence(),
                            lost.records()), "producer " + producer);
                }
            }
        }
    }

    private static IdempotentWrite retry(EmbeddedLog log, long producerId, int baseSequence, List<LogRecord> records)
            throws IOException {
        ProducerBatch producer = new ProducerBatch(producerId, (short) 0, baseSequence);
        IdempotentWrite w = log.writeIdempotent(TOPIC, 0, records, producer);
        log.awaitDurable(TOPIC, 0, w.baseOffset() + records.size());
        return w;
    }

    /**
     * A header that does not chain in a segment trusted after a clean close does not stop the log
     * from opening: the walk keeps what it found before it and the later segment.
     */
    @Test
    void reopen_damagedHeaderInTrustedSegment_opensWithTheStateAroundTheDamage() throws IOException {
        List<Long> bases = new ArrayList<>();
        try (EmbeddedLog log = open(SMALL)) {
            for (long producer = 0; segments(partitionDir()).size() < 3; producer++) {
                bases.add(write(log, producer, 0, 0, "batch of producer " + producer).baseOffset());
            }
        }
        Path middle = segments(partitionDir()).get(1);
        List<BatchSpan> spans = batches(middle);
        BatchSpan damaged = spans.get(1);
        LogTestSupport.overwrite(middle, damaged.start(), new byte[8]);
        long beforeDamage = spans.get(0).baseOffset();
        long afterDamage = spans.get(2).baseOffset();
        long inLastSegment = bases.get(bases.size() - 1);

        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(0, log.segmentsRecoveredAtOpen());
            long end = log.endOffset(TOPIC, 0);
            assertEquals(new IdempotentWrite(beforeDamage, true),
                    write(log, bases.indexOf(beforeDamage), 0, 0, "batch of producer " + bases.indexOf(beforeDamage)));
            assertEquals(new IdempotentWrite(inLastSegment, true),
                    write(log, bases.size() - 1, 0, 0, "batch of producer " + (bases.size() - 1)));
            assertEquals(new IdempotentWrite(end, false),
                    write(log, bases.indexOf(afterDamage), 0, 0, "batch of producer " + bases.indexOf(afterDamage)),
                    "the producers after the damage are not known");
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
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
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
