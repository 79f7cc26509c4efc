package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LogSnapshotTest {
    private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(100);

    @TempDir
    Path dir;

    private static List<LogRecord> records(int from, int n) {
        List<LogRecord> out = new ArrayList<>();
        for (int i = from; i < from + n; i++) {
            out.add(new LogRecord(1_000L + 10L * i, i % 3 == 0 ? null : ("k" + i).getBytes(StandardCharsets.UTF_8),
                    ("value " + i).getBytes(StandardCharsets.UTF_8)));
        }
        return out;
    }

    @Test
    void read_matchesTheOwnersReadsAcrossSegments() throws Exception {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("t", 2);
            for (int b = 0; b < 30; b++) {
                log.append("t", b % 2, records(b * 7, 7));
            }
            try (LogSnapshot snap = LogSnapshot.open(dir)) {
                assertEquals(log.topics(), snap.topics());
                for (int p = 0; p < 2; p++) {
                    assertEquals(log.startOffset("t", p), snap.startOffset("t", p));
                    assertEquals(log.endOffset("t", p), snap.endOffset("t", p));
                    for (long from = 0; from < log.endOffset("t", p); from += 5) {
                        assertEquals(log.read("t", p, from, 9), snap.read("t", p, from, 9), "partition " + p + " from " + from);
                    }
                    for (long ts = 990; ts < 3200; ts += 37) {
                        assertEquals(log.findByTimestamp("t", p, ts), snap.findByTimestamp("t", p, ts), "timestamp " + ts);
                    }
                }
            }
        }
    }

    @Test
    void open_besideAnOwnerSeesTheMomentAndNotAnUnfinishedBatch() throws Exception {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("t", 1);
            log.append("t", 0, records(0, 5));
            log.append("t", 0, records(5, 5));
            // Half a batch at the end of the active segment, as an append in flight would leave it.
            Path active;
            try (Stream<Path> files = Files.list(dir.resolve("t-0"))) {
                active = files.filter(f -> f.toString().endsWith(".log")).sorted().reduce((a, b) -> b).orElseThrow();
            }
            ByteBuffer partial = RecordBatch.encode(records(10, 5), (int) RecordBatch.sizeInBytes(records(10, 5)));
            RecordBatch.setBaseOffset(partial, 10);
            try (FileChannel ch = FileChannel.open(active, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
                ch.write(ByteBuffer.wrap(partial.array(), 0, partial.remaining() / 2));
            }
            try (LogSnapshot snap = LogSnapshot.open(dir)) {
                assertEquals(10, snap.endOffset("t", 0));
                assertEquals(log.read("t", 0, 0, 100), snap.read("t", 0, 0, 100));
            }
        }
    }

    @Test
    void read_unknownTopicIsAClearError() throws Exception {
        try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
            log.createTopic("t", 1);
        }
        try (LogSnapshot snap = LogSnapshot.open(dir)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> snap.read("nope", 0, 0, 1));
            assertEquals("there is no topic 'nope' in the log: use one of [t]", e.getMessage());
        }
    }
}
