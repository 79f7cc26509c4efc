package io.pockettune.ingest;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The other process of {@link DataDirectoryLockTest}, in one of two modes:
 * <ul>
 *   <li>{@code write <dir> <batches>}: opens the log, appends the batches printing
 *       {@code ACK <baseOffset>} after each, prints {@code READY} and waits until it is killed (or
 *       its parent goes away), never closing the log;
 *   <li>{@code probe <dir>}: tries to open the log and prints {@code OPENED} or
 *       {@code REFUSED <message>}.
 * </ul>
 */
final class LogWriterProcess {

    static final int RECORDS_PER_BATCH = 3;

    private LogWriterProcess() {
    }

    static String value(int batch, int record) {
        return "batch-" + batch + "-record-" + record;
    }

    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args[1]);
        if (args[0].equals("probe")) {
            try (EmbeddedLog log = EmbeddedLog.open(dir)) {
                System.out.println("OPENED " + log);
            } catch (IllegalStateException e) {
                System.out.println("REFUSED " + e.getMessage());
            }
            return;
        }
        EmbeddedLog log = EmbeddedLog.open(dir, LogConfig.defaults().withSegmentBytes(1024));
        log.createTopic("events", 1);
        for (int b = 0, n = Integer.parseInt(args[2]); b < n; b++) {
            List<LogRecord> batch = new ArrayList<>();
            for (int r = 0; r < RECORDS_PER_BATCH; r++) {
                batch.add(LogTestSupport.record(value(b, r)));
            }
            System.out.println("ACK " + log.append("events", 0, batch));
        }
        System.out.println("READY");
        System.out.flush();
        while (System.in.read() >= 0) {
            // Only the parent's death ends this loop; normally the parent kills this process.
        }
    }
}
