package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.entries;
import static io.pockettune.ingest.LogTestSupport.randomBatches;
import static io.pockettune.ingest.LogTestSupport.record;
import static io.pockettune.ingest.LogTestSupport.segments;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class EmbeddedLogTest {

    /** Small segments and a dense index, so a few hundred records roll many segments. */
    private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(100);

    @TempDir
    Path dir;

    @Test
    void append_acrossSegmentRolls_readsBackEveryRecord() throws IOException {
        List<List<LogRecord>> batches = randomBatches(new Random(1), 150);
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            long expectedBase = 0;
            for (List<LogRecord> batch : batches) {
                assertEquals(expectedBase, log.append("events", 0, batch));
                expectedBase += batch.size();
            }
            assertEquals(expectedBase, log.endOffset("events", 0));
            assertEquals(0, log.startOffset("events", 0));
            assertEquals(entries(batches), log.read("events", 0, 0, Integer.MAX_VALUE));
        }
        List<Path> segments = segments(dir.resolve("events-0"));
        assertTrue(segments.size() > 5, "expected many segments, got " + segments.size());
        for (Path segment : segments) {
            assertTrue(Files.size(segment) <= SMALL.segmentBytes(), segment + " exceeds the segment size");
        }
        List<LogEntry> all = entries(batches);
        assertTrue(all.stream().anyMatch(e -> e.key() == null), "workload must contain null keys");
        assertTrue(all.stream().anyMatch(e -> e.value().length == 0), "workload must contain empty values");
    }

    @Test
    void read_fromEveryOffset_returnsThatEntryAndItsSuccessors() throws IOException {
        List<LogEntry> expected = entries(randomBatches(new Random(2), 120));
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            appendAll(log, randomBatches(new Random(2), 120));
            for (int offset = 0; offset < expected.size(); offset++) {
                List<LogEntry> read = log.read("events", 0, offset, 5);
                assertEquals(expected.subList(offset, Math.min(offset + 5, expected.size())), read, "from " + offset);
            }
        }
        long indexBytes = 0;
        for (Path segment : segments(dir.resolve("events-0"))) {
            indexBytes += Files.size(LogTestSupport.indexOf(segment));
        }
        assertTrue(indexBytes > 0, "the index must have entries, else lookups were not exercised");
    }

    @Test
    void read_atEndOffset_returnsNothing() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            log.append("events", 0, List.of(record("a"), record("b")));
            assertEquals(List.of(), log.read("events", 0, 2, 10));
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {-1, 3})
    void read_offsetOutOfRange_throws(long offset) throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            log.append("events", 0, List.of(record("a"), record("b")));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.read("events", 0, offset, 10));
            assertTrue(e.getMessage().startsWith("offset " + offset + " is out of range for events-0"), e.getMessage());
        }
    }

    @Test
    void read_concurrentPartitions_areIndependent() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 2);
            assertEquals(0, log.append("events", 0, List.of(record("p0-a"))));
            assertEquals(0, log.append("events", 1, List.of(record("p1-a"), record("p1-b"))));
            assertEquals(1, log.append("events", 0, List.of(record("p0-b"))));
            assertEquals(List.of("p0-a", "p0-b"), values(log.read("events", 0, 0, 10)));
            assertEquals(List.of("p1-a", "p1-b"), values(log.read("events", 1, 0, 10)));
        }
    }

    @Test
    void open_afterCleanClose_keepsEverythingWithoutValidating() throws IOException {
        List<List<LogRecord>> batches = randomBatches(new Random(3), 80);
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            appendAll(log, batches);
        }
        assertTrue(Files.exists(dir.resolve(EmbeddedLog.CLEAN_SHUTDOWN_FILE)));
        long end = entries(batches).size();
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(0, log.segmentsRecoveredAtOpen());
            assertTrue(Files.notExists(dir.resolve(EmbeddedLog.CLEAN_SHUTDOWN_FILE)),
                    "the marker must be gone while the log is open, or a crash would look clean");
            assertEquals(end, log.endOffset("events", 0));
            assertEquals(entries(batches), log.read("events", 0, 0, Integer.MAX_VALUE));
            assertEquals(end, log.append("events", 0, List.of(record("next"))));
            assertEquals("next", LogTestSupport.value(log.read("events", 0, end, 1).get(0)));
        }
    }

    @Test
    void open_withDifferentSegmentSize_readsOldSegments() throws IOException {
        List<List<LogRecord>> batches = randomBatches(new Random(4), 60);
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            appendAll(log, batches);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, LogConfig.defaults())) {
            assertEquals(entries(batches), log.read("events", 0, 0, Integer.MAX_VALUE));
        }
    }

    @Test
    void createTopic_sameCountTwice_isIdempotent() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 3);
            log.append("events", 2, List.of(record("kept")));
            log.createTopic("events", 3);
            assertEquals(3, log.partitionCount("events"));
            assertEquals(1, log.endOffset("events", 2));
        }
    }

    @Test
    void createTopic_differentCount_throws() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 3);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> log.createTopic("events", 4));
            assertEquals("topic 'events' already exists with 3 partitions, not 4; use 3 (changing the partition count"
                    + " is not supported)", e.getMessage());
            assertEquals(3, log.partitionCount("events"));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"", ".", "..", "a b", "a/b", "über", "x\n"})
    void createTopic_illegalName_throws(String name) throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> log.createTopic(name, 1));
            assertTrue(e.getMessage().startsWith("topic name"), e.getMessage());
            assertEquals(Set.of(), log.topics());
        }
    }

    @Test
    void createTopic_tooLongName_throws() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.createTopic("t".repeat(250), 1));
            assertTrue(e.getMessage().contains("has 250 characters, more than 249"), e.getMessage());
        }
    }

    @Test
    void createTopic_zeroPartitions_throws() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertThrows(IllegalArgumentException.class, () -> log.createTopic("events", 0));
            assertEquals(Set.of(), log.topics());
        }
    }

    @Test
    void topics_afterReopen_keepNamesAndPartitionCounts() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("messages", 3);
            log.createTopic("notes-2", 1);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(List.of("messages", "notes-2"), new ArrayList<>(log.topics()));
            assertEquals(3, log.partitionCount("messages"));
            assertEquals(1, log.partitionCount("notes-2"));
        }
    }

    @Test
    void open_missingLowerPartitionDirectory_recreatesItEmpty() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 3);
            log.append("events", 2, List.of(record("x")));
        }
        Files.delete(dir.resolve("events-0").resolve(LogSegment.fileName(0, LogSegment.LOG_SUFFIX)));
        Files.delete(dir.resolve("events-0").resolve(LogSegment.fileName(0, LogSegment.INDEX_SUFFIX)));
        Files.delete(dir.resolve("events-0").resolve(LogSegment.fileName(0, LogSegment.TIME_INDEX_SUFFIX)));
        Files.delete(dir.resolve("events-0"));
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertEquals(3, log.partitionCount("events"));
            assertEquals(0, log.endOffset("events", 0));
            assertEquals(1, log.endOffset("events", 2));
            assertEquals(0, log.append("events", 0, List.of(record("y"))));
        }
    }

    @Test
    void append_unknownTopic_throws() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.append("nope", 0, List.of(record("a"))));
            assertEquals("topic 'nope' does not exist in " + dir.toAbsolutePath().normalize()
                    + "; create it with createTopic first", e.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {-1, 2})
    void append_partitionOutOfRange_throws(int partition) throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 2);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.append("events", partition, List.of(record("a"))));
            assertEquals("partition " + partition + " of topic 'events' does not exist; the topic has 2 partition(s),"
                    + " numbered from 0", e.getMessage());
        }
    }

    @Test
    void append_emptyBatch_throwsAndAppendsNothing() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            assertThrows(IllegalArgumentException.class, () -> log.append("events", 0, List.of()));
            assertThrows(IllegalArgumentException.class, () -> log.append("events", 0, Arrays.asList(record("a"), null)));
            assertEquals(0, log.endOffset("events", 0));
        }
    }

    @Test
    void append_batchLargerThanSegment_throwsAndAppendsNothing() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("events", 1);
            LogRecord big = new LogRecord(0, null, new byte[SMALL.segmentBytes()]);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.append("events", 0, List.of(big)));
            assertTrue(e.getMessage().endsWith("split it into smaller appends or raise LogConfig.segmentBytes"),
                    e.getMessage());
            assertEquals(0, log.endOffset("events", 0));
        }
    }

    @Test
    void append_afterClose_throws() throws IOException {
        EmbeddedLog log = EmbeddedLog.open(dir, SMALL);
        log.createTopic("events", 1);
        log.close();
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> log.append("events", 0, List.of(record("a"))));
        assertTrue(e.getMessage().endsWith("is closed; open it again to use it"), e.getMessage());
        log.close();
    }

    @Test
    void open_pathIsAFile_throws() throws IOException {
        Path file = Files.createFile(dir.resolve("not-a-dir"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EmbeddedLog.open(file));
        assertEquals("data directory " + file + " is a file, not a directory; choose another --data-dir", e.getMessage());
    }

    @Test
    void logRecord_nullValue_throws() {
        NullPointerException e = assertThrows(NullPointerException.class, () -> new LogRecord(0, null, null));
        assertTrue(e.getMessage().contains("value must not be null"));
    }

    @Test
    void logEntry_equality_comparesContents() {
        LogEntry a = new LogEntry(1, 2, null, new byte[] {1, 2});
        assertEquals(a, new LogEntry(1, 2, null, new byte[] {1, 2}));
        assertEquals(a.hashCode(), new LogEntry(1, 2, null, new byte[] {1, 2}).hashCode());
        assertNull(a.record().key());
        assertTrue(!a.equals(new LogEntry(1, 2, new byte[0], new byte[] {1, 2})), "null key differs from empty key");
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 63})
    void logConfig_segmentTooSmall_throws(int bytes) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> LogConfig.defaults().withSegmentBytes(bytes));
        assertEquals("segmentBytes is " + bytes + " but must be at least 64; choose a larger segment size", e.getMessage());
    }

    @Test
    void logConfig_defaults_matchTheDocumentedValues() {
        LogConfig config = LogConfig.defaults();
        assertEquals(64 * 1024 * 1024, config.segmentBytes());
        assertEquals(4096, config.indexIntervalBytes());
        assertEquals(LogConfig.FlushPolicy.FSYNC_EACH_BATCH, config.flushPolicy());
    }

    @Test
    void append_osFlushPolicy_survivesCleanReopen() throws IOException {
        LogConfig os = SMALL.withFlushPolicy(LogConfig.FlushPolicy.OS);
        List<List<LogRecord>> batches = randomBatches(new Random(5), 50);
        try (EmbeddedLog log = EmbeddedLog.open(dir, os)) {
            log.createTopic("events", 1);
            appendAll(log, batches);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, os)) {
            assertEquals(entries(batches), log.read("events", 0, 0, Integer.MAX_VALUE));
        }
    }

    static void appendAll(EmbeddedLog log, List<List<LogRecord>> batches) throws IOException {
        for (List<LogRecord> batch : batches) {
            log.append("events", 0, batch);
        }
    }

    private static List<String> values(List<LogEntry> entries) {
        return entries.stream().map(LogTestSupport::value).toList();
    }
}
