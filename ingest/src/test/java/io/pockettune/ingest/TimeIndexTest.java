package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link EmbeddedLog#findByTimestamp} through the time index agrees with a brute-force scan, with
 * timestamps that go backwards, across segments, after a clean reopen, and after the time indexes
 * were lost and rebuilt by recovery.
 */
class TimeIndexTest {

    private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(2048).withIndexIntervalBytes(128);

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3})
    void findByTimestamp_matchesBruteForce_beforeAndAfterRebuild(int seed) throws IOException {
        Random random = new Random(seed);
        List<List<LogRecord>> batches = LogTestSupport.randomBatches(random, 300);
        List<LogEntry> all = LogTestSupport.entries(batches);
        List<Long> probes = new ArrayList<>();
        for (int i = 0; i < 60; i++) {
            probes.add(all.get(random.nextInt(all.size())).timestamp() + random.nextInt(3) - 1);
        }
        probes.add(Long.MIN_VALUE);
        probes.add(Long.MAX_VALUE);
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("t", 1);
            for (List<LogRecord> batch : batches) {
                log.append("t", 0, batch);
            }
            assertProbes(log, all, probes);
        }
        Path partition = dir.resolve("t-0");
        List<Path> timeIndexes = timeIndexes(partition);
        assertTrue(timeIndexes.size() > 3, "the workload spans several segments");
        List<byte[]> written = new ArrayList<>();
        for (Path p : timeIndexes) {
            written.add(Files.readAllBytes(p));
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertProbes(log, all, probes);
            log.abandon();
        }
        for (Path p : timeIndexes) {
            Files.delete(p);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            assertProbes(log, all, probes);
        }
        for (int i = 0; i < timeIndexes.size(); i++) {
            assertArrayEquals(written.get(i), Files.readAllBytes(timeIndexes.get(i)), "rebuilt " + timeIndexes.get(i));
        }
    }

    private static void assertProbes(EmbeddedLog log, List<LogEntry> all, List<Long> probes) throws IOException {
        for (long t : probes) {
            Optional<LogEntry> expected = all.stream().filter(e -> e.timestamp() >= t).findFirst();
            assertEquals(expected, log.findByTimestamp("t", 0, t), "first record at or after " + t);
        }
    }

    private static List<Path> timeIndexes(Path partition) throws IOException {
        try (var files = Files.list(partition)) {
            return files.filter(f -> f.toString().endsWith(LogSegment.TIME_INDEX_SUFFIX)).sorted().toList();
        }
    }
}
