package io.pockettune.ingest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A read-only view of an embedded log directory as it is at one moment, for reading beside the
 * process that owns it (replaying a slice while the service keeps training). It takes no lock and
 * never writes: no recovery, no index files, no clean-shutdown marker.
 *
 * <p>At open, every segment of every partition is scanned once, batch by batch, exactly as
 * recovery validates them (length bounds, CRC32C, magic, records filling the batch, offsets
 * continuing the previous batch); the view ends at the first batch that does not verify. So a
 * batch the owner is still writing, or a torn tail it will cut at its next recovery, is not part of
 * the view, and everything acknowledged before the snapshot is. Where each batch starts is kept in
 * memory (about 32 bytes per batch); the segment files stay open, so reads keep working if the
 * owner deletes segments by retention meanwhile. Opening costs one sequential read of the log.
 *
 * <p>Thread-safe for reads.
 */
public final class LogSnapshot implements LogReader, AutoCloseable {
    private static final Pattern PARTITION_DIR = Pattern.compile("(.+)-(\\d+)");
    private static final Pattern SEGMENT = Pattern.compile("(\\d{20})\\.log");
    private static final int MAX_BATCH = 64 * 1024 * 1024;

    /** One verified batch: its segment, position, first and next offsets, largest timestamp. */
    private record Batch(FileChannel file, long position, int size, long baseOffset, long nextOffset, long maxTimestamp) {
    }

    private final Map<String, Map<Integer, List<Batch>>> partitions = new TreeMap<>();
    private final List<FileChannel> files = new ArrayList<>();
    /** Opens sealed batches; null for a clear log. */
    private final BatchCipher cipher;

    private LogSnapshot(BatchCipher cipher) {
        this.cipher = cipher;
    }

    /**
     * @param dir the log's directory (the one {@link EmbeddedLog#open} was given)
     */
    public static LogSnapshot open(Path dir) throws IOException {
        return open(dir, null);
    }

    /**
     * Like {@link #open(Path)}, for a log encrypted with {@code key} (null for a clear log).
     *
     * @throws IllegalStateException with one sentence if the key is missing, wrong, or given for a
     *     log in the clear
     */
    public static LogSnapshot open(Path dir, byte[] key) throws IOException {
        if (!Files.isDirectory(dir)) {
            throw new NoSuchFileException(dir + " is not a log directory: check the path");
        }
        LogEncryption.check(dir, key, true, false);
        LogSnapshot s = new LogSnapshot(key == null ? null : new BatchCipher(key));
        try (DirectoryStream<Path> children = Files.newDirectoryStream(dir, Files::isDirectory)) {
            for (Path child : children) {
                Matcher m = PARTITION_DIR.matcher(child.getFileName().toString());
                if (m.matches()) {
                    s.partitions.computeIfAbsent(m.group(1), t -> new TreeMap<>())
                            .put(Integer.parseInt(m.group(2)), s.scan(child));
                }
            }
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
        return s;
    }

    private List<Batch> scan(Path partitionDir) throws IOException {
        TreeMap<Long, Path> segments = new TreeMap<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(partitionDir, "*.log")) {
            for (Path f : files) {
                Matcher m = SEGMENT.matcher(f.getFileName().toString());
                if (m.matches()) {
                    segments.put(Long.parseLong(m.group(1)), f);
                }
            }
        }
        List<Batch> batches = new ArrayList<>();
        long expected = -1;
        for (Map.Entry<Long, Path> segment : segments.entrySet()) {
            FileChannel ch;
            try {
                ch = FileChannel.open(segment.getValue(), StandardOpenOption.READ);
            } catch (NoSuchFileException deletedByRetention) {
                continue;
            }
            files.add(ch);
            if (expected >= 0 && segment.getKey() != expected) {
                break; // a gap: nothing after it is part of a valid prefix
            }
            long position = 0;
            long size = ch.size();
            ByteBuffer header = ByteBuffer.allocate(RecordBatch.LOG_OVERHEAD);
            boolean broken = false;
            while (position + RecordBatch.LOG_OVERHEAD <= size) {
                header.clear();
                readFully(ch, header, position);
                long base = header.getLong(RecordBatch.BASE_OFFSET_OFFSET);
                int length = header.getInt(RecordBatch.LENGTH_OFFSET);
                int total = RecordBatch.LOG_OVERHEAD + length;
                if (length < RecordBatch.MIN_BATCH_LENGTH || total > MAX_BATCH || position + total > size
                        || (expected >= 0 && base != expected)) {
                    broken = true;
                    break;
                }
                ByteBuffer batch = ByteBuffer.allocate(total);
                readFully(ch, batch, position);
                batch.flip();
                int count;
                try {
                    batch = plain(batch);
                    count = RecordBatch.verify(batch);
                } catch (RecordBatch.CorruptBatchException e) {
                    broken = true;
                    break;
                }
                batches.add(new Batch(ch, position, total, base, base + count, RecordBatch.maxTimestamp(batch)));
                expected = base + count;
                position += total;
            }
            if (broken || position != size) {
                break; // the owner's in-flight or torn tail: the view ends here
            }
        }
        return Collections.unmodifiableList(batches);
    }

    private static void readFully(FileChannel ch, ByteBuffer into, long position) throws IOException {
        while (into.hasRemaining()) {
            if (ch.read(into, position + into.position()) < 0) {
                throw new IOException("the log file ended while reading it");
            }
        }
    }

    @Override
    public Set<String> topics() {
        return Collections.unmodifiableSet(partitions.keySet());
    }

    @Override
    public int partitionCount(String topic) {
        return batchesOf(topic).size();
    }

    @Override
    public long startOffset(String topic, int partition) {
        List<Batch> b = batches(topic, partition);
        return b.isEmpty() ? 0 : b.get(0).baseOffset();
    }

    @Override
    public long endOffset(String topic, int partition) {
        List<Batch> b = batches(topic, partition);
        return b.isEmpty() ? 0 : b.get(b.size() - 1).nextOffset();
    }

    @Override
    public List<LogEntry> read(String topic, int partition, long fromOffset, int maxRecords) throws IOException {
        if (maxRecords < 1) {
            throw new IllegalArgumentException("maxRecords is " + maxRecords + "; ask for at least one record");
        }
        List<Batch> batches = batches(topic, partition);
        List<LogEntry> out = new ArrayList<>();
        for (int i = firstBatchEnding(batches, fromOffset); i < batches.size() && out.size() < maxRecords; i++) {
            decode(batches.get(i), fromOffset, maxRecords, out);
        }
        return out;
    }

    @Override
    public Optional<LogEntry> findByTimestamp(String topic, int partition, long timestamp) throws IOException {
        for (Batch b : batches(topic, partition)) {
            if (b.maxTimestamp() >= timestamp) {
                List<LogEntry> entries = new ArrayList<>();
                decode(b, b.baseOffset(), Integer.MAX_VALUE, entries);
                for (LogEntry e : entries) {
                    if (e.timestamp() >= timestamp) {
                        return Optional.of(e);
                    }
                }
            }
        }
        return Optional.empty();
    }

    private void decode(Batch b, long from, int max, List<LogEntry> out) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(b.size());
        readFully(b.file(), buf, b.position());
        buf.flip();
        RecordBatch.decode(plain(buf), from, Long.MAX_VALUE, max, out);
    }

    private ByteBuffer plain(ByteBuffer stored) throws RecordBatch.CorruptBatchException {
        return cipher == null ? stored : cipher.open(stored);
    }

    /** @return the index of the first batch whose records reach {@code offset} */
    private static int firstBatchEnding(List<Batch> batches, long offset) {
        int lo = 0;
        int hi = batches.size();
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (batches.get(mid).nextOffset() <= offset) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    private Map<Integer, List<Batch>> batchesOf(String topic) {
        Map<Integer, List<Batch>> p = partitions.get(topic);
        if (p == null) {
            throw new IllegalArgumentException("there is no topic '" + topic + "' in the log: use one of " + topics());
        }
        return p;
    }

    private List<Batch> batches(String topic, int partition) {
        List<Batch> b = batchesOf(topic).get(partition);
        if (b == null) {
            throw new IllegalArgumentException("topic '" + topic + "' has no partition " + partition);
        }
        return b;
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (FileChannel ch : files) {
            try {
                ch.close();
            } catch (IOException e) {
                first = first == null ? e : first;
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
