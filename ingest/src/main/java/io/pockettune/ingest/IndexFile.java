package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.apache.kafka.common.utils.Utils;

/**
 * What the segment's offset and time indexes share: a file of fixed-size big-endian entries,
 * mirrored in memory by the subclass's columns, appended by the partition's single writer,
 * truncated, and forced at roll and clean close. Like Kafka's indexes the file is not checksummed;
 * it is a pure function of the log, so the subclasses check plausibility on load and the segment
 * rebuilds an implausible index from the log. Subclasses own the columns and their rules.
 *
 * <p>Thread-safe: every method that touches the entries synchronizes on the index.
 */
abstract class IndexFile implements Closeable {
    final Path file;
    final long baseOffset;
    final FileChannel channel;
    private final int entrySize;
    /** Number of entries, in memory and in the file. */
    int entries;

    /** Opens or creates the file; the subclass then loads it or resets it. */
    IndexFile(Path file, long baseOffset, int entrySize, FileChannels channels) throws IOException {
        this.file = file;
        this.baseOffset = baseOffset;
        this.entrySize = entrySize;
        this.channel = OwnerOnly.open(channels, file, StandardOpenOption.CREATE, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
    }

    Path file() {
        return file;
    }

    synchronized int entries() {
        return entries;
    }

    /** @return the whole file, flipped for reading; the caller has checked its size */
    ByteBuffer readAll(long size) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate((int) size);
        Utils.readFully(channel, buf, 0);
        return buf.flip();
    }

    /** Writes one entry after the current last one (not forced); the caller then counts it. */
    void writeEntry(ByteBuffer entry) throws IOException {
        Utils.writeFully(channel.position((long) entries * entrySize), entry);
    }

    /** Keeps the first {@code keep} entries, in memory and on disk. */
    synchronized void truncateToEntries(int keep) throws IOException {
        if (keep < entries) {
            entries = keep;
            channel.truncate((long) keep * entrySize);
        }
    }

    /** Drops all entries, in memory and on disk. */
    synchronized void reset() throws IOException {
        entries = 0;
        channel.truncate(0);
    }

    void flush() throws IOException {
        channel.force(true);
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }

    @Override
    public String toString() {
        return file.toString();
    }
}
