package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.common.utils.MockTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Retention deletes whole segments by age and by size, never the active one, under live readers. */
class RetentionTest {

    @TempDir
    Path dir;

    private static List<LogRecord> batch(long timestamp, int bytes) {
        return List.of(new LogRecord(timestamp, null, new byte[bytes]));
    }

    @Test
    void enforceRetention_bySize_deletesOldestWholeSegmentsAndKeepsAtLeastTheLimit() throws IOException {
        LogConfig config = LogConfig.defaults().withSegmentBytes(1000).withRetention(-1, 2500);
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            log.createTopic("t", 1);
            for (int i = 0; i < 30; i++) {
                log.append("t", 0, batch(i, 300));
            }
            int segmentsBefore = LogTestSupport.segments(dir.resolve("t-0")).size();
            int deleted = log.enforceRetention();
            assertTrue(deleted > 0);
            List<Path> left = LogTestSupport.segments(dir.resolve("t-0"));
            assertEquals(segmentsBefore - deleted, left.size());
            long bytes = 0;
            for (Path p : left) {
                bytes += java.nio.file.Files.size(p);
            }
            assertTrue(bytes >= 2500 && bytes < 2500 + 1000, "keeps the limit, within one segment: " + bytes);
            long start = log.startOffset("t", 0);
            assertEquals(start, log.read("t", 0, start, 1).get(0).offset());
            assertEquals(30, log.endOffset("t", 0));
            assertEquals(0, log.enforceRetention(), "idempotent");
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            assertTrue(log.startOffset("t", 0) > 0, "deleted segments stay deleted");
            assertEquals(30, log.endOffset("t", 0));
        }
    }

    @Test
    void retention_runsByItselfAtTheConfiguredInterval() throws Exception {
        LogConfig config = LogConfig.defaults().withSegmentBytes(1000).withRetention(-1, 2500)
                .withRetentionCheckInterval(100);
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            log.createTopic("t", 1);
            for (int i = 0; i < 30; i++) {
                log.append("t", 0, batch(i, 300));
            }
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (log.startOffset("t", 0) == 0 && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertTrue(log.startOffset("t", 0) > 0, "retention ran by itself within 10 s of an interval of 100 ms");
            assertEquals(0, log.enforceRetention(), "nothing was left for it");
        }
        assertEquals(LogConfig.DEFAULT_RETENTION_CHECK_INTERVAL_MS, LogConfig.defaults().retentionCheckIntervalMs());
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> LogConfig.defaults().withRetentionCheckInterval(0));
        assertTrue(e.getMessage().contains("retentionCheckIntervalMs is 0"), e.getMessage());
    }

    @Test
    void enforceRetention_byAge_usesNewestTimestampAndNeverDeletesActiveSegment() throws IOException {
        MockTime time = new MockTime(0, 1_000_000, 0);
        LogConfig config = LogConfig.defaults().withSegmentBytes(1000).withRetention(10_000, -1);
        try (EmbeddedLog log = EmbeddedLog.open(dir, config, time)) {
            log.createTopic("t", 1);
            for (int i = 0; i < 9; i++) {
                log.append("t", 0, batch(1_000_000 + i * 1000, 300));
            }
            assertEquals(0, log.enforceRetention(), "nothing is older than 10 s yet");
            time.sleep(14_500);
            // Segments hold offsets 0-2 (newest t=1.002e6), 3-5 (1.005e6), 6-8 (active).
            assertEquals(1, log.enforceRetention());
            assertEquals(3, log.startOffset("t", 0));
            time.sleep(1_000_000);
            assertEquals(1, log.enforceRetention(), "the active segment is kept however old");
            assertEquals(6, log.startOffset("t", 0));
            assertEquals(9, log.read("t", 0, 6, 100).size() + 6);
        }
    }

    @Test
    void enforceRetention_whileReadersRead_readersKeepWorking() throws Exception {
        LogConfig config = LogConfig.defaults().withSegmentBytes(600).withRetention(-1, 1200);
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            log.createTopic("t", 1);
            AtomicBoolean stop = new AtomicBoolean();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            AtomicLong reads = new AtomicLong();
            Thread reader = new Thread(() -> {
                while (!stop.get()) {
                    long from = log.startOffset("t", 0);
                    try {
                        List<LogEntry> entries = log.read("t", 0, from, 1000);
                        for (int i = 0; i < entries.size(); i++) {
                            if (entries.get(i).offset() != from + i) {
                                throw new AssertionError("gap in a read");
                            }
                        }
                        reads.incrementAndGet();
                    } catch (IllegalArgumentException moved) {
                        // The start moved between startOffset and read: the documented out-of-range error.
                    } catch (Throwable e) {
                        failure.set(e);
                        return;
                    }
                }
            });
            reader.start();
            for (int i = 0; i < 400; i++) {
                log.append("t", 0, batch(i, 100));
                if (i % 10 == 0) {
                    log.enforceRetention();
                }
            }
            stop.set(true);
            reader.join();
            if (failure.get() != null) {
                throw new AssertionError("a reader failed while segments were deleted", failure.get());
            }
            assertTrue(reads.get() > 0);
            assertTrue(log.startOffset("t", 0) > 300);
        }
    }
}
