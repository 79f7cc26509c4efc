package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The durability promise end to end: a child JVM produces through {@link EmbeddedProducer} and is
 * killed with SIGKILL at a random moment, twelve times on the same directory. After every kill,
 * every record the child saw acknowledged is in the log at the acknowledged offset, each
 * partition's records are in send order, and no record appears twice.
 */
class ProducerKillTest {

    private static final int TRIALS = 12;

    @TempDir
    Path dir;

    @Test
    void sigkill_atRandomMoments_keepsEveryAcknowledgedRecordInOrderWithoutDuplicates() throws Exception {
        Random random = new Random(42);
        Map<String, Long> acked = new HashMap<>();
        int totalAcks = 0;
        for (int trial = 0; trial < TRIALS; trial++) {
            List<String> lines = runAndKill(trial, 50 + random.nextInt(400));
            int acksThisTrial = 0;
            for (String line : lines) {
                if (line.startsWith("ACK ")) {
                    String[] parts = line.split(" ");
                    acked.put(parts[3], Long.parseLong(parts[1]) << 40 | Long.parseLong(parts[2]));
                    acksThisTrial++;
                }
            }
            totalAcks += acksThisTrial;
            try (EmbeddedLog log = EmbeddedLog.open(dir)) {
                Map<String, Long> found = new HashMap<>();
                for (int p = 0; p < 2; p++) {
                    Map<String, Long> lastSeq = new HashMap<>();
                    for (LogEntry e : log.read("events", p, 0, Integer.MAX_VALUE)) {
                        String value = new String(e.value(), StandardCharsets.UTF_8);
                        Long previous = found.put(value, (long) p << 40 | e.offset());
                        assertEquals(null, previous, "record " + value + " appears twice");
                        String[] parts = value.split(":");
                        long seq = Long.parseLong(parts[1]);
                        assertTrue(seq > lastSeq.getOrDefault(parts[0], -1L), "partition " + p + " keeps send order");
                        lastSeq.put(parts[0], seq);
                    }
                }
                for (Map.Entry<String, Long> a : acked.entrySet()) {
                    assertEquals(a.getValue(), found.get(a.getKey()), "acknowledged record " + a.getKey()
                            + " is at its acknowledged partition and offset after trial " + trial);
                }
            }
        }
        assertTrue(totalAcks > TRIALS, "the children acknowledged records before they were killed: " + totalAcks);
    }

    /** Starts the child, waits until it acknowledges, lets it run {@code runMs} more and kills it. */
    private List<String> runAndKill(int trial, int runMs) throws Exception {
        List<String> command = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                AckingProducerProcess.class.getName(), dir.toString(), "t" + trial);
        Process child = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        List<String> lines = new ArrayList<>();
        Thread pump = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
                for (String line; (line = in.readLine()) != null;) {
                    synchronized (lines) {
                        lines.add(line);
                        lines.notifyAll();
                    }
                }
            } catch (IOException e) {
                // The child died; what was read is what it printed.
            }
        });
        pump.start();
        try {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            synchronized (lines) {
                while (lines.stream().noneMatch(l -> l.startsWith("ACK")) && System.nanoTime() < deadline
                        && child.isAlive()) {
                    lines.wait(100);
                }
            }
            assertTrue(child.isAlive(), "the child producer is running");
            Thread.sleep(runMs);
        } finally {
            child.destroyForcibly(); // SIGKILL on Unix: no shutdown hooks, no clean close
            child.waitFor();
            pump.join();
        }
        synchronized (lines) {
            return new ArrayList<>(lines);
        }
    }
}
