package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Writers on several partitions at once, with readers polling alongside. Every record's value is
 * {@code writer:sequence:index:size}, so the contents show which append produced each record.
 */
class ConcurrentAppendTest {

    private static final int PARTITIONS = 3;
    private static final int WRITERS = 6;
    private static final int APPENDS_PER_WRITER = 120;
    private static final int READ_MAX = 7;

    @TempDir
    Path dir;

    @Test
    void append_concurrentWritersAndReaders_keepOrderContiguityAndWholeBatches() throws Exception {
        LogConfig config = LogConfig.defaults().withSegmentBytes(2048).withIndexIntervalBytes(256);
        ExecutorService pool = Executors.newFixedThreadPool(WRITERS + PARTITIONS);
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            log.createTopic("events", PARTITIONS);
            CountDownLatch start = new CountDownLatch(1);
            AtomicBoolean writing = new AtomicBoolean(true);
            List<Future<Map<Long, String>>> writers = new ArrayList<>();
            for (int w = 0; w < WRITERS; w++) {
                int writer = w;
                writers.add(pool.submit(() -> write(log, writer, start)));
            }
            List<Future<Integer>> readers = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                int partition = p;
                readers.add(pool.submit(() -> follow(log, partition, writing)));
            }
            start.countDown();
            List<Map<Long, String>> firstRecords = new ArrayList<>();
            for (Future<Map<Long, String>> writer : writers) {
                firstRecords.add(writer.get());
            }
            writing.set(false);
            int[] sizes = new int[PARTITIONS];
            for (int w = 0; w < WRITERS; w++) {
                for (String first : firstRecords.get(w).values()) {
                    sizes[w % PARTITIONS] += Integer.parseInt(first.split(":")[3]);
                }
            }
            for (int p = 0; p < PARTITIONS; p++) {
                assertEquals(sizes[p], readers.get(p).get(), "readers must see every record of partition " + p);
                assertEquals(sizes[p], log.endOffset("events", p));
                List<LogEntry> all = log.read("events", p, 0, Integer.MAX_VALUE);
                assertWellFormed(all, 0);
                assertWritersInOrder(all);
            }
            for (int w = 0; w < WRITERS; w++) {
                List<LogEntry> all = log.read("events", w % PARTITIONS, 0, Integer.MAX_VALUE);
                for (Map.Entry<Long, String> e : firstRecords.get(w).entrySet()) {
                    assertEquals(e.getValue(), LogTestSupport.value(all.get(e.getKey().intValue())),
                            "append must return the offset of its first record");
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** @return base offset -> value of the first record, for every append of this writer */
    private static Map<Long, String> write(EmbeddedLog log, int writer, CountDownLatch start) throws Exception {
        Random random = new Random(writer);
        Map<Long, String> firstRecords = new HashMap<>();
        start.await();
        for (int seq = 0; seq < APPENDS_PER_WRITER; seq++) {
            int size = 1 + random.nextInt(4);
            List<LogRecord> batch = new ArrayList<>();
            for (int i = 0; i < size; i++) {
                String value = writer + ":" + seq + ":" + i + ":" + size;
                batch.add(new LogRecord(seq, ("w" + writer).getBytes(StandardCharsets.UTF_8),
                        value.getBytes(StandardCharsets.UTF_8)));
            }
            long base = log.append("events", writer % PARTITIONS, batch);
            firstRecords.put(base, new String(batch.get(0).value(), StandardCharsets.UTF_8));
        }
        return firstRecords;
    }

    /**
     * Reads a partition in small steps while it grows; every read must continue contiguously, and
     * a read that stops short of {@code READ_MAX} stopped at the end offset, so it must end on the
     * last record of a batch.
     *
     * @return the number of records read
     */
    private static int follow(EmbeddedLog log, int partition, AtomicBoolean writing) throws IOException {
        long next = 0;
        while (true) {
            boolean last = !writing.get();
            List<LogEntry> read = log.read("events", partition, next, READ_MAX);
            assertWellFormed(read, next);
            if (!read.isEmpty() && read.size() < READ_MAX) {
                String[] tail = LogTestSupport.value(read.get(read.size() - 1)).split(":");
                assertEquals(Integer.parseInt(tail[3]) - 1, Integer.parseInt(tail[2]),
                        "a read must never end inside a batch: " + String.join(":", tail));
            }
            next += read.size();
            if (read.isEmpty()) {
                if (last) {
                    return (int) next;
                }
                Thread.yield();
            }
        }
    }

    /** Offsets continue from {@code from}; each batch's records are adjacent and complete. */
    private static void assertWellFormed(List<LogEntry> entries, long from) {
        for (int i = 0; i < entries.size(); i++) {
            assertEquals(from + i, entries.get(i).offset());
            String[] f = LogTestSupport.value(entries.get(i)).split(":");
            int index = Integer.parseInt(f[2]);
            if (i > 0 && index > 0) {
                String[] prev = LogTestSupport.value(entries.get(i - 1)).split(":");
                assertEquals(f[0] + ":" + f[1] + ":" + (index - 1), prev[0] + ":" + prev[1] + ":" + prev[2],
                        "records of one append must be adjacent");
            }
        }
    }

    /** Each writer's appends appear in the order it made them, none missing. */
    private static void assertWritersInOrder(List<LogEntry> entries) {
        Map<String, Integer> nextSeq = new HashMap<>();
        for (LogEntry e : entries) {
            String[] f = LogTestSupport.value(e).split(":");
            if (f[2].equals("0")) {
                int expected = nextSeq.getOrDefault(f[0], 0);
                assertEquals(expected, Integer.parseInt(f[1]), "writer " + f[0] + " out of order");
                nextSeq.put(f[0], expected + 1);
            }
        }
        assertEquals(WRITERS / PARTITIONS, nextSeq.size());
        nextSeq.values().forEach(n -> assertEquals(APPENDS_PER_WRITER, n));
    }
}
