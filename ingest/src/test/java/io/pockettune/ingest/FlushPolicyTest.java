package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Group commit and the interval policy: acknowledgements only after a covering force. */
class FlushPolicyTest {

    @TempDir
    Path dir;

    @Test
    void append_concurrentAppenders_shareForces() throws Exception {
        int threads = 8;
        int perThread = 150;
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            log.createTopic("t", 1);
            List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                workers.add(new Thread(() -> {
                    for (int i = 0; i < perThread; i++) {
                        try {
                            long base = log.append("t", 0, List.of(LogTestSupport.record("x")));
                            PartitionLog p = log.partitionLog("t", 0);
                            assertTrue(p.recoveryPoint() > base, "acknowledged only once forced");
                        } catch (IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    }
                }));
            }
            workers.forEach(Thread::start);
            for (Thread w : workers) {
                w.join();
            }
            long syncs = log.partitionLog("t", 0).syncs();
            assertEquals(threads * perThread, log.endOffset("t", 0));
            assertTrue(syncs < threads * perThread, "group commit shares forces: " + syncs + " for "
                    + threads * perThread + " appends");
        }
    }

    @Test
    void append_intervalPolicy_returnsAfterThePeriodicForce() throws Exception {
        LogConfig config = LogConfig.defaults().withFlushInterval(30);
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            log.createTopic("t", 1);
            PartitionLog p = log.partitionLog("t", 0);
            long start = System.nanoTime();
            for (int i = 0; i < 5; i++) {
                long base = log.append("t", 0, List.of(LogTestSupport.record("r" + i)));
                assertTrue(p.recoveryPoint() > base, "acknowledged only once the interval flush covered it");
            }
            long elapsedMs = (System.nanoTime() - start) / 1_000_000;
            assertTrue(elapsedMs >= 4 * 25, "each append waited for a flush tick, took " + elapsedMs + " ms");
            assertTrue(p.syncs() >= 5);
        }
    }

    @Test
    void append_osPolicy_doesNotForce() throws Exception {
        try (EmbeddedLog log = EmbeddedLog.open(dir, LogConfig.defaults().withFlushPolicy(LogConfig.FlushPolicy.OS))) {
            log.createTopic("t", 1);
            log.append("t", 0, List.of(LogTestSupport.record("r")));
            assertEquals(1, log.endOffset("t", 0));
            assertEquals(0, log.partitionLog("t", 0).syncs());
        }
    }
}
