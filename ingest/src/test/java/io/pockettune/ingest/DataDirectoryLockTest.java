package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DataDirectoryLockTest {

    @TempDir
    Path dir;

    @Test
    void open_directoryOpenInThisProcess_failsNamingThisPid() throws IOException {
        try (EmbeddedLog first = EmbeddedLog.open(dir)) {
            first.createTopic("events", 1);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> EmbeddedLog.open(dir));
            assertEquals(inUse(ProcessHandle.current().pid()), e.getMessage());
            first.append("events", 0, List.of(LogTestSupport.record("the first log still works")));
        }
    }

    @Test
    void open_afterClose_succeeds() throws IOException {
        EmbeddedLog.open(dir).close();
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(0, log.segmentsRecoveredAtOpen());
        }
    }

    /**
     * A second JVM ({@link LogWriterProcess}) owns the directory and appends; this process is
     * refused with the child's pid; after the child is killed (SIGKILL, no shutdown hooks) the lock
     * is gone, the directory is recovered and every batch the child acknowledged is there.
     */
    @Test
    void open_directoryOwnedByKilledProcess_refusedThenRecoversAcknowledgedBatches() throws Exception {
        int batches = 30;
        Process child = startOtherProcess("write", dir.toString(), Integer.toString(batches));
        List<Long> acknowledged = new ArrayList<>();
        try {
            BufferedReader out = output(child);
            for (String line = out.readLine(); !"READY".equals(line); line = out.readLine()) {
                assertTrue(line != null && line.startsWith("ACK "), "unexpected output of the writer: " + line);
                acknowledged.add(Long.parseLong(line.substring(4)));
            }
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> EmbeddedLog.open(dir));
            assertEquals(inUse(child.pid()), e.getMessage());
        } finally {
            child.destroyForcibly();
            child.waitFor();
        }

        assertEquals(batches, acknowledged.size());
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertTrue(log.segmentsRecoveredAtOpen() > 0, "a killed owner leaves an unclean directory");
            List<LogEntry> entries = log.read("events", 0, 0, Integer.MAX_VALUE);
            assertEquals(LogWriterProcess.RECORDS_PER_BATCH * batches, entries.size());
            for (int b = 0; b < batches; b++) {
                for (int r = 0; r < LogWriterProcess.RECORDS_PER_BATCH; r++) {
                    LogEntry entry = entries.get((int) (acknowledged.get(b) + r));
                    assertEquals(LogWriterProcess.value(b, r), LogTestSupport.value(entry));
                }
            }
        }
    }

    /** A refused opener closes its own channel on the lock file; the owner's lock must survive that. */
    @Test
    void open_refusedInThisProcess_leavesTheOwnerLockedAgainstOtherProcesses() throws Exception {
        try (EmbeddedLog owner = EmbeddedLog.open(dir)) {
            assertThrows(IllegalStateException.class, () -> EmbeddedLog.open(dir));
            Process probe = startOtherProcess("probe", dir.toString());
            String answer = output(probe).readLine();
            probe.waitFor();
            assertEquals("REFUSED " + inUse(ProcessHandle.current().pid()), answer);
            owner.createTopic("events", 1);
        }
    }

    private static Process startOtherProcess(String... args) throws IOException {
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), LogWriterProcess.class.getName()));
        command.addAll(List.of(args));
        return new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    }

    private static BufferedReader output(Process process) {
        return new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
    }

    private String inUse(long pid) {
        return "data directory " + dir.toAbsolutePath().normalize() + " is in use by process " + pid
                + ": stop that process or choose another --data-dir";
    }
}
