package io.pockettune.ingest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/** Workloads and on-disk inspection shared by the tests. */
final class LogTestSupport {

    private LogTestSupport() {
    }

    /** A batch as laid out in a segment file, read independently of the production code. */
    record BatchSpan(Path segment, long start, long end, long baseOffset, int count) {
    }

    /**
     * @return {@code batches} random batches of 1 to 4 records; about a third of the keys are null
     *     and values are 0 to 40 bytes, so empty values occur
     */
    static List<List<LogRecord>> randomBatches(Random random, int batches) {
        List<List<LogRecord>> result = new ArrayList<>();
        long timestamp = 1_700_000_000_000L;
        for (int b = 0; b < batches; b++) {
            List<LogRecord> batch = new ArrayList<>();
            for (int r = 0, n = 1 + random.nextInt(4); r < n; r++) {
                byte[] key = random.nextInt(3) == 0 ? null : ("user-" + random.nextInt(10)).getBytes(StandardCharsets.UTF_8);
                byte[] value = new byte[random.nextInt(41)];
                random.nextBytes(value);
                timestamp += random.nextInt(2000) - 500;
                batch.add(new LogRecord(timestamp, key, value));
            }
            result.add(batch);
        }
        return result;
    }

    /** @return the entries a log holding {@code batches} from offset 0 must return */
    static List<LogEntry> entries(List<List<LogRecord>> batches) {
        List<LogEntry> entries = new ArrayList<>();
        for (List<LogRecord> batch : batches) {
            for (LogRecord r : batch) {
                entries.add(new LogEntry(entries.size(), r.timestamp(), r.key(), r.value()));
            }
        }
        return entries;
    }

    static LogRecord record(String value) {
        return new LogRecord(0L, null, value.getBytes(StandardCharsets.UTF_8));
    }

    static String value(LogEntry entry) {
        return new String(entry.value(), StandardCharsets.UTF_8);
    }

    /** @return the segment files of a partition directory, in offset order */
    static List<Path> segments(Path partitionDir) throws IOException {
        try (Stream<Path> files = Files.list(partitionDir)) {
            return files.filter(f -> f.getFileName().toString().endsWith(".log")).sorted().toList();
        }
    }

    /** @return the index file belonging to a segment file */
    static Path indexOf(Path segment) {
        String name = segment.getFileName().toString();
        return segment.resolveSibling(name.substring(0, name.length() - ".log".length()) + ".index");
    }

    /**
     * Walks a segment by the documented header fields: baseOffset at 0 (8 bytes), batchLength at 8
     * (4 bytes, counting what follows it), recordCount at 17 (4 bytes).
     */
    static List<BatchSpan> batches(Path segment) throws IOException {
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(segment));
        List<BatchSpan> spans = new ArrayList<>();
        int position = 0;
        while (position < bytes.limit()) {
            int end = position + 12 + bytes.getInt(position + 8);
            spans.add(new BatchSpan(segment, position, end, bytes.getLong(position), bytes.getInt(position + 17)));
            position = end;
        }
        return spans;
    }

    /** Copies a directory tree. */
    static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> paths = Files.walk(from)) {
            for (Path source : paths.toList()) {
                Path target = to.resolve(from.relativize(source).toString());
                if (Files.isDirectory(source)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(source, target);
                }
            }
        }
    }

    /** Writes {@code bytes} into {@code file} at {@code position}, extending the file as needed. */
    static void overwrite(Path file, long position, byte[] bytes) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ByteBuffer buf = ByteBuffer.wrap(bytes);
            while (buf.hasRemaining()) {
                channel.write(buf, position + buf.position());
            }
        }
    }

    /** Cuts {@code file} to {@code size} bytes. */
    static void truncate(Path file, long size) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
            channel.truncate(size);
        }
    }
}
