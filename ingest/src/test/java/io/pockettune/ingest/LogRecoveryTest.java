package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.batches;
import static io.pockettune.ingest.LogTestSupport.entries;
import static io.pockettune.ingest.LogTestSupport.randomBatches;
import static io.pockettune.ingest.LogTestSupport.record;
import static io.pockettune.ingest.LogTestSupport.segments;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.ingest.LogTestSupport.BatchSpan;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Crash recovery: a log is written and abandoned without a clean close once, then each test damages
 * a fresh copy of it the way a crash or a disk can, and checks that exactly the valid prefix
 * survives and that the log goes on from there.
 */
class LogRecoveryTest {

    private static final LogConfig CONFIG = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(128);
    private static final List<List<LogRecord>> BATCHES = randomBatches(new Random(7), 70);
    private static final List<LogEntry> ENTRIES = entries(BATCHES);

    @TempDir
    static Path template;

    @TempDir
    Path dir;

    @BeforeAll
    static void writeAndAbandon() throws IOException {
        EmbeddedLog log = EmbeddedLog.open(template, CONFIG);
        log.createTopic("events", 1);
        EmbeddedLogTest.appendAll(log, BATCHES);
        log.abandon();
        assertTrue(segments(template.resolve("events-0")).size() >= 5, "the workload must roll several segments");
    }

    static IntStream seeds() {
        return IntStream.range(0, 50);
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void recover_garbageOverTail_keepsBatchesBeforeIt(int seed) throws IOException {
        LogTestSupport.copyTree(template, dir);
        List<Path> segments = segments(partitionDir());
        Path last = segments.get(segments.size() - 1);
        Random random = new Random(seed);
        long position = random.nextInt((int) Files.size(last) + 1);
        writeGarbage(random, last, position);

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(1, log.segmentsRecoveredAtOpen(), "only the segment holding the recovery point is validated");
            assertSurvivors(log, survivors(segments, last, position));
        }
    }

    @ParameterizedTest
    @MethodSource("seeds")
    void recover_garbageAnywhereWithoutCheckpoint_keepsBatchesBeforeItAndDeletesLaterSegments(int seed)
            throws IOException {
        LogTestSupport.copyTree(template, dir);
        Files.delete(dir.resolve(RecoveryCheckpoint.FILE_NAME));
        List<Path> segments = segments(partitionDir());
        Random random = new Random(1000 + seed);
        int damaged = random.nextInt(segments.size());
        Path segment = segments.get(damaged);
        long position = random.nextInt((int) Files.size(segment) + 1);
        writeGarbage(random, segment, position);

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(damaged + 1, log.segmentsRecoveredAtOpen(), "without a checkpoint every segment up to the"
                    + " damage is validated");
            assertEquals(segments.subList(0, damaged + 1), segments(partitionDir()), "later segments must be deleted");
            assertSurvivors(log, survivors(segments, segment, position));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 5, 12, 28, 29, 30, -1})
    void recover_shortLastBatch_dropsIt(int keptBytes) throws IOException {
        LogTestSupport.copyTree(template, dir);
        List<Path> segments = segments(partitionDir());
        Path last = segments.get(segments.size() - 1);
        List<BatchSpan> spans = batches(last);
        BatchSpan lastBatch = spans.get(spans.size() - 1);
        long kept = keptBytes < 0 ? lastBatch.end() - lastBatch.start() - 1 : keptBytes;
        LogTestSupport.truncate(last, lastBatch.start() + kept);

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(lastBatch.start(), Files.size(last), "the partial batch must be cut from the file");
            assertEquals(lastBatch.baseOffset(), log.endOffset("events", 0));
            assertSurvivors(log, survivors(segments, last, lastBatch.start()));
        }
    }

    @Test
    void recover_zeroFilledTail_keepsEveryBatch() throws IOException {
        LogTestSupport.copyTree(template, dir);
        List<Path> segments = segments(partitionDir());
        Path last = segments.get(segments.size() - 1);
        long size = Files.size(last);
        LogTestSupport.overwrite(last, size, new byte[4096]);

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(size, Files.size(last), "the zeros must be cut from the file");
            assertSurvivors(log, ENTRIES);
        }
    }

    @Test
    void recover_intactLog_keepsEverythingAndLaterOpenIsClean() throws IOException {
        LogTestSupport.copyTree(template, dir);
        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(1, log.segmentsRecoveredAtOpen());
            assertSurvivors(log, ENTRIES);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(0, log.segmentsRecoveredAtOpen());
            assertEquals(ENTRIES.size() + 1, log.endOffset("events", 0));
        }
    }

    @Test
    void recover_unreadableCheckpoint_validatesWholePartition() throws IOException {
        LogTestSupport.copyTree(template, dir);
        Files.writeString(dir.resolve(RecoveryCheckpoint.FILE_NAME), "not a checkpoint\n");
        int segmentCount = segments(partitionDir()).size();
        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(segmentCount, log.segmentsRecoveredAtOpen());
            assertSurvivors(log, ENTRIES);
        }
    }

    @Test
    void recover_segmentWithOffsetGap_isDeleted() throws IOException {
        LogTestSupport.copyTree(template, dir);
        Files.delete(dir.resolve(RecoveryCheckpoint.FILE_NAME));
        List<Path> segments = segments(partitionDir());
        Path second = segments.get(1);
        Files.delete(second);
        Files.delete(LogTestSupport.indexOf(second));

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(List.of(segments.get(0)), segments(partitionDir()), "segments after the gap must be deleted");
            assertSurvivors(log, survivors(segments, segments.get(0), Files.size(segments.get(0))));
        }
    }

    enum IndexDamage {
        DELETED, TRUNCATED_MID_ENTRY, ZERO_FILLED, RANDOM_BYTES, LAST_ENTRY_OFF_BY_ONE
    }

    @ParameterizedTest
    @EnumSource(IndexDamage.class)
    void open_damagedIndexAfterCleanClose_rebuildsIdenticalIndex(IndexDamage damage) throws IOException {
        LogTestSupport.copyTree(template, dir);
        EmbeddedLog.open(dir, CONFIG).close();
        Map<Path, byte[]> originals = new HashMap<>();
        Random random = new Random(damage.ordinal());
        for (Path segment : segments(partitionDir())) {
            Path index = LogTestSupport.indexOf(segment);
            byte[] original = Files.readAllBytes(index);
            originals.put(index, original);
            damage(damage, index, original, random);
        }
        assertTrue(originals.values().stream().anyMatch(b -> b.length >= 16), "some index must hold several entries");

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertTrue(log.segmentsRecoveredAtOpen() > 0, "damaged indexes must be rebuilt");
            for (int offset = 0; offset < ENTRIES.size(); offset++) {
                assertEquals(ENTRIES.get(offset), log.read("events", 0, offset, 1).get(0), "offset " + offset);
            }
        }
        for (Map.Entry<Path, byte[]> e : originals.entrySet()) {
            assertArrayEquals(e.getValue(), Files.readAllBytes(e.getKey()), e.getKey() + " must be rebuilt identically");
        }
    }

    @Test
    void read_indexEntryPointingAtWrongBatch_stillReturnsTheRightRecords() throws IOException {
        LogTestSupport.copyTree(template, dir);
        EmbeddedLog.open(dir, CONFIG).close();
        Path index = null;
        for (Path segment : segments(partitionDir())) {
            if (Files.size(LogTestSupport.indexOf(segment)) >= 16) {
                index = LogTestSupport.indexOf(segment);
                break;
            }
        }
        assertTrue(index != null, "some index must hold two entries");
        ByteBuffer entries = ByteBuffer.wrap(Files.readAllBytes(index));
        long base = Long.parseLong(index.getFileName().toString().substring(0, 20));
        long firstEntryOffset = base + entries.getInt(0);
        // Still strictly increasing and the last entry untouched, so opening accepts the index.
        LogTestSupport.overwrite(index, 4, ByteBuffer.allocate(4).putInt(entries.getInt(4) + 1).array());

        try (EmbeddedLog log = EmbeddedLog.open(dir, CONFIG)) {
            assertEquals(0, log.segmentsRecoveredAtOpen());
            assertEquals(ENTRIES.subList((int) firstEntryOffset, (int) firstEntryOffset + 3),
                    log.read("events", 0, firstEntryOffset, 3));
        }
    }

    private Path partitionDir() {
        return dir.resolve("events-0");
    }

    private static void writeGarbage(Random random, Path segment, long position) throws IOException {
        byte[] garbage = new byte[(int) (Files.size(segment) - position) + 1 + random.nextInt(64)];
        random.nextBytes(garbage);
        LogTestSupport.overwrite(segment, position, garbage);
    }

    private static void damage(IndexDamage damage, Path index, byte[] original, Random random) throws IOException {
        switch (damage) {
            case DELETED -> Files.delete(index);
            case TRUNCATED_MID_ENTRY -> LogTestSupport.truncate(index, Math.max(0, original.length - 3));
            case ZERO_FILLED -> Files.write(index, new byte[original.length]);
            case RANDOM_BYTES -> {
                byte[] bytes = new byte[original.length];
                random.nextBytes(bytes);
                Files.write(index, bytes);
            }
            case LAST_ENTRY_OFF_BY_ONE -> {
                if (original.length > 0) {
                    ByteBuffer b = ByteBuffer.wrap(original.clone());
                    b.putInt(original.length - 4, b.getInt(original.length - 4) + 1);
                    Files.write(index, b.array());
                }
            }
        }
    }

    /**
     * @return the entries of every batch that lies wholly before byte {@code position} of
     *     {@code damaged}, which is one of {@code segments}
     */
    private static List<LogEntry> survivors(List<Path> segments, Path damaged, long position) throws IOException {
        long end = 0;
        for (Path segment : segments) {
            for (BatchSpan span : batches(segment)) {
                if (segment.equals(damaged) && span.end() > position) {
                    return ENTRIES.subList(0, (int) end);
                }
                end = span.baseOffset() + span.count();
            }
            if (segment.equals(damaged)) {
                return ENTRIES.subList(0, (int) end);
            }
        }
        throw new AssertionError(damaged + " is not one of the segments");
    }

    /** Checks that the log holds exactly {@code expected} and appends at the right offset. */
    private static void assertSurvivors(EmbeddedLog log, List<LogEntry> expected) throws IOException {
        assertEquals(expected.size(), log.endOffset("events", 0));
        assertEquals(expected, log.read("events", 0, 0, Integer.MAX_VALUE));
        assertEquals(expected.size(), log.append("events", 0, List.of(record("after recovery"))));
        List<LogEntry> tail = log.read("events", 0, expected.size(), 10);
        assertEquals(1, tail.size());
        assertEquals("after recovery", LogTestSupport.value(tail.get(0)));
        List<LogEntry> all = new ArrayList<>(log.read("events", 0, 0, Integer.MAX_VALUE));
        assertEquals(expected.size() + 1, all.size());
    }
}
