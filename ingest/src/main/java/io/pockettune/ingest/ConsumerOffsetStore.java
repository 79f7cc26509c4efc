package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalLong;
import java.util.zip.CRC32C;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Committed consumer-group offsets, in the append-only file {@code <dir>/consumer-offsets.log}.
 *
 * <p>Every commit appends one record and forces it before {@link #commit} returns, so a commit
 * costs one fsync (a replace-by-rename scheme would cost three). Record format, big-endian:
 *
 * <pre>
 *   length       int32  number of bytes after this field
 *   crc          int32  CRC32C of every byte after this field
 *   version      int8   1
 *   group        int32 length + UTF-8 bytes
 *   count        int32  number of partitions
 *   count times: topic int32 length + UTF-8 bytes, partition int32, nextOffset int64
 * </pre>
 *
 * <p>Loading replays the records in order; a later commit overrides an earlier one per group and
 * partition, and a commit naming only some partitions leaves the others as they were (as in
 * Kafka). Only the last record can be torn by a crash, and it was never acknowledged: loading stops
 * at the first record that is short or fails its CRC and cuts the file there.
 *
 * <p>When the file grows past a threshold and to more than twice the size of its live content, it
 * is replaced by a snapshot with one record per group: written to a temporary file, forced, and
 * renamed over the old file (then the directory is forced), so a crash leaves either file whole.
 *
 * <p>Thread-safe: all methods synchronize on the store.
 */
final class ConsumerOffsetStore implements Closeable {

    static final String FILE_NAME = "consumer-offsets.log";
    /** Default size from which the file is compacted. */
    static final long DEFAULT_COMPACTION_BYTES = 1024 * 1024;
    private static final Logger LOG = LoggerFactory.getLogger(ConsumerOffsetStore.class);
    private static final byte VERSION = 1;
    private static final int HEADER = 8;

    private final Path file;
    private final long compactionBytes;
    private final Map<String, Map<TopicPartition, Long>> groups;
    private FileChannel channel;
    private long size;
    private long compactAt;
    /** Set when a failed commit could not be cut off again. */
    private IOException failure;

    private ConsumerOffsetStore(Path file, long compactionBytes, Map<String, Map<TopicPartition, Long>> groups,
            FileChannel channel, long size) {
        this.file = file;
        this.compactionBytes = compactionBytes;
        this.groups = groups;
        this.channel = channel;
        this.size = size;
        this.compactAt = compactionBytes;
    }

    /** Opens or creates the store in {@code dir}, cutting off a torn last record. */
    static ConsumerOffsetStore open(Path dir, long compactionBytes) throws IOException {
        Path file = dir.resolve(FILE_NAME);
        Files.deleteIfExists(file.resolveSibling(FILE_NAME + ".tmp"));
        FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        try {
            long fileSize = channel.size();
            if (fileSize > Integer.MAX_VALUE) {
                throw new IOException("consumer offsets file " + file + " is " + fileSize
                        + " bytes, which this log never writes; move it away and commit the offsets again");
            }
            ByteBuffer content = ByteBuffer.allocate((int) fileSize);
            Utils.readFully(channel, content, 0);
            content.flip();
            Map<String, Map<TopicPartition, Long>> groups = new HashMap<>();
            long valid = replay(content, groups);
            if (valid < fileSize) {
                LOG.warn("Cut {} bytes of a torn commit from the end of {}", fileSize - valid, file);
                channel.truncate(valid);
                channel.force(true);
            }
            return new ConsumerOffsetStore(file, compactionBytes, groups, channel, valid);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    /**
     * Durably records {@code offsets} (next offsets to read) for {@code group}.
     *
     * @throws IOException if the commit could not be made durable; it then did not happen
     */
    synchronized void commit(String group, Map<TopicPartition, Long> offsets) throws IOException {
        if (failure != null) {
            throw new IOException("consumer offsets in " + file + " cannot be committed after an I/O error that could"
                    + " not be undone (" + failure.getMessage() + "); close the log and open it again", failure);
        }
        ByteBuffer record = encode(group, offsets);
        long before = size;
        try {
            long position = before;
            while (record.hasRemaining()) {
                position += channel.write(record, position);
            }
            channel.force(true);
        } catch (IOException e) {
            try {
                channel.truncate(before);
            } catch (IOException | RuntimeException undo) {
                e.addSuppressed(undo);
                failure = e;
            }
            throw new IOException("could not commit offsets of group '" + group + "' to " + file + " (" + e
                    + "); check free disk space and permissions, then retry", e);
        }
        size = before + record.capacity();
        groups.computeIfAbsent(group, g -> new HashMap<>()).putAll(offsets);
        maybeCompact();
    }

    /** @return the committed next offset of {@code tp} for {@code group}, or empty if there is none */
    synchronized OptionalLong committed(String group, TopicPartition tp) {
        Long offset = groups.getOrDefault(group, Map.of()).get(tp);
        return offset == null ? OptionalLong.empty() : OptionalLong.of(offset);
    }

    /** @return a copy of every committed next offset of {@code group}; empty if it committed none */
    synchronized Map<TopicPartition, Long> committedOffsets(String group) {
        return Map.copyOf(groups.getOrDefault(group, Map.of()));
    }

    /** @return the current file size in bytes */
    synchronized long sizeInBytes() {
        return size;
    }

    @Override
    public synchronized void close() throws IOException {
        channel.close();
    }

    private void maybeCompact() {
        if (size < compactAt) {
            return;
        }
        ByteBuffer[] snapshot = groups.entrySet().stream()
                .map(g -> encode(g.getKey(), g.getValue()))
                .toArray(ByteBuffer[]::new);
        long snapshotSize = 0;
        for (ByteBuffer b : snapshot) {
            snapshotSize += b.remaining();
        }
        // The next check waits until the file reaches twice its live size, so commits stay cheap.
        compactAt = Math.max(compactionBytes, 2 * snapshotSize);
        if (size < compactAt) {
            return;
        }
        Path tmp = file.resolveSibling(FILE_NAME + ".tmp");
        FileChannel compacted = null;
        try {
            compacted = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.READ, StandardOpenOption.WRITE);
            for (ByteBuffer b : snapshot) {
                Utils.writeFully(compacted, b);
            }
            compacted.force(true);
            // The open channel follows the file through the rename.
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.warn("Could not compact {} ({}); it keeps growing until the next attempt", file, e.toString());
            compactAt = size + compactionBytes;
            if (compacted != null) {
                Utils.closeQuietly(compacted, "compacted consumer offsets");
            }
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // The next open deletes it.
            }
            return;
        }
        // The snapshot is the file now: later commits must go to it whatever happens next.
        Utils.closeQuietly(channel, "consumer offsets before compaction");
        LOG.debug("Compacted {} from {} to {} bytes", file, size, snapshotSize);
        channel = compacted;
        size = snapshotSize;
        compactAt = Math.max(compactionBytes, 2 * snapshotSize);
        try {
            Utils.flushDir(file.getParent());
        } catch (IOException e) {
            // Until the rename is durable a crash could bring back the old file without later commits.
            failure = e;
        }
    }

    private static ByteBuffer encode(String group, Map<TopicPartition, Long> offsets) {
        byte[] groupBytes = group.getBytes(StandardCharsets.UTF_8);
        Map<TopicPartition, byte[]> topics = new LinkedHashMap<>();
        int length = 4 + 1 + 4 + groupBytes.length + 4;
        for (TopicPartition tp : offsets.keySet()) {
            byte[] topic = tp.topic().getBytes(StandardCharsets.UTF_8);
            topics.put(tp, topic);
            length += 4 + topic.length + 4 + 8;
        }
        ByteBuffer b = ByteBuffer.allocate(4 + length);
        b.putInt(length).putInt(0).put(VERSION).putInt(groupBytes.length).put(groupBytes).putInt(offsets.size());
        topics.forEach((tp, topic) -> b.putInt(topic.length).put(topic).putInt(tp.partition()).putLong(offsets.get(tp)));
        b.putInt(4, crc(b, HEADER, b.capacity()));
        return b.flip();
    }

    /** Applies the valid records of {@code content} to {@code groups}; returns the bytes they span. */
    private static long replay(ByteBuffer content, Map<String, Map<TopicPartition, Long>> groups) {
        int position = 0;
        while (content.limit() - position >= HEADER) {
            int length = content.getInt(position);
            if (length < 4 + 1 + 4 + 4 || length > content.limit() - position - 4) {
                break;
            }
            int end = position + 4 + length;
            if (content.getInt(position + 4) != crc(content, position + HEADER, end)) {
                break;
            }
            ByteBuffer record = content.duplicate().limit(end).position(position + HEADER);
            try {
                if (record.get() != VERSION) {
                    break;
                }
                String group = string(record);
                Map<TopicPartition, Long> offsets = new HashMap<>();
                for (int n = record.getInt(), i = 0; i < n; i++) {
                    offsets.put(new TopicPartition(string(record), record.getInt()), record.getLong());
                }
                if (record.hasRemaining()) {
                    break;
                }
                groups.computeIfAbsent(group, g -> new HashMap<>()).putAll(offsets);
            } catch (BufferUnderflowException e) {
                break;
            }
            position = end;
        }
        return position;
    }

    private static String string(ByteBuffer b) {
        int length = b.getInt();
        if (length < 0 || length > b.remaining()) {
            throw new BufferUnderflowException();
        }
        byte[] bytes = new byte[length];
        b.get(bytes);
        return new String(bytes, StandardCharsets.UTF_8);
    }

    private static int crc(ByteBuffer b, int from, int to) {
        CRC32C crc = new CRC32C();
        crc.update(b.duplicate().limit(to).position(from));
        return (int) crc.getValue();
    }
}
