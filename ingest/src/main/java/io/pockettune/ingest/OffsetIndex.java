package io.pockettune.ingest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The sparse offset index of one segment: {@code <20-digit baseOffset>.index}.
 *
 * <p>The file is a sequence of 8-byte big-endian entries, one for roughly every
 * {@link LogConfig#indexIntervalBytes()} bytes of log:
 *
 * <pre>
 *   relativeOffset  int32  offset of a batch minus the segment's base offset
 *   position        int32  byte position of that batch in the segment's log file
 * </pre>
 *
 * <p>Both columns strictly increase. To find offset {@code t}, take the last entry whose offset is
 * at most {@code t} (or the start of the segment if there is none) and walk batches from there: at
 * most about one index interval of log is read. Which batches get an entry is a pure function of
 * the batch sizes (see {@link LogSegment}), so a rebuilt index is byte-identical to the original.
 *
 * <p>Like Kafka's {@code OffsetIndex}, the file is not checksummed and not forced on every append:
 * the log is the source of truth. The index is forced when its segment rolls and at clean close,
 * checked for plausibility when a segment is opened after a clean shutdown, and rebuilt from the
 * log when it is missing, implausible, or its segment is recovered after an unclean shutdown.
 *
 * <p>The entries are also held in memory (8 bytes each, 16 K entries for a full 64 MiB segment), so
 * lookups never touch the file. Thread-safe: all methods synchronize on the index; appends come
 * from the single appender of the partition, lookups from any reader.
 */
final class OffsetIndex extends IndexFile {

    static final int ENTRY_SIZE = 8;

    /** An indexed batch: its absolute offset and its byte position in the log file. */
    record Entry(long offset, int position) {
    }

    private int[] relativeOffsets = new int[16];
    private int[] positions = new int[16];

    private OffsetIndex(Path file, long baseOffset, FileChannels channels) throws IOException {
        super(file, baseOffset, ENTRY_SIZE, channels);
    }

    /** Opens or creates the index file; call {@link #load} or {@link #reset} before use. */
    static OffsetIndex open(Path file, long baseOffset) throws IOException {
        return open(file, baseOffset, FileChannels.system());
    }

    /** As {@link #open(Path, long)}, opening the file through {@code channels}. */
    static OffsetIndex open(Path file, long baseOffset, FileChannels channels) throws IOException {
        return new OffsetIndex(file, baseOffset, channels);
    }

    /**
     * Reads the file into memory if it is plausible for a log of {@code logSize} bytes: whole
     * entries, both columns positive and strictly increasing, positions inside the log.
     *
     * @return false if the file is implausible; the index is then empty and must be rebuilt
     */
    synchronized boolean load(long logSize) throws IOException {
        entries = 0;
        long fileSize = channel.size();
        long smallestBatch = RecordBatch.LOG_OVERHEAD + RecordBatch.MIN_BATCH_LENGTH;
        if (fileSize % ENTRY_SIZE != 0 || fileSize / ENTRY_SIZE > logSize / smallestBatch) {
            return false;
        }
        ByteBuffer buf = readAll(fileSize);
        int n = (int) (fileSize / ENTRY_SIZE);
        ensureCapacity(n);
        // The index rule never indexes the first batch, so both columns start above 0.
        long previousOffset = 0;
        long previousPosition = 0;
        for (int i = 0; i < n; i++) {
            int relative = buf.getInt();
            int position = buf.getInt();
            if (relative <= previousOffset || position <= previousPosition || position >= logSize) {
                return false;
            }
            relativeOffsets[i] = relative;
            positions[i] = position;
            previousOffset = relative;
            previousPosition = position;
        }
        entries = n;
        return true;
    }

    /** Adds an entry; the caller guarantees both columns increase. The file write is not forced. */
    synchronized void append(long offset, int position) throws IOException {
        long relative = offset - baseOffset;
        assert relative >= 0 && relative <= Integer.MAX_VALUE : "relative offset out of range: " + relative;
        assert entries == 0 || (relative > relativeOffsets[entries - 1] && position > positions[entries - 1])
                : "index entries must increase";
        ByteBuffer buf = ByteBuffer.allocate(ENTRY_SIZE).putInt((int) relative).putInt(position).flip();
        writeEntry(buf);
        ensureCapacity(entries + 1);
        relativeOffsets[entries] = (int) relative;
        positions[entries] = position;
        entries++;
    }

    /**
     * @return the last entry whose offset is at most {@code offset}, or (baseOffset, 0) if none is
     */
    synchronized Entry lookup(long offset) {
        long relative = offset - baseOffset;
        int lo = 0;
        int hi = entries - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (relativeOffsets[mid] <= relative) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return found < 0 ? new Entry(baseOffset, 0) : new Entry(baseOffset + relativeOffsets[found], positions[found]);
    }

    /** @return the last entry, or (baseOffset, 0) if the index is empty */
    synchronized Entry last() {
        return entries == 0 ? new Entry(baseOffset, 0)
                : new Entry(baseOffset + relativeOffsets[entries - 1], positions[entries - 1]);
    }

    /** Drops the entries at or beyond byte {@code position} of the log. */
    synchronized void truncateToPosition(int position) throws IOException {
        int keep = entries;
        while (keep > 0 && positions[keep - 1] >= position) {
            keep--;
        }
        entries = keep;
        channel.truncate((long) keep * ENTRY_SIZE);
    }

    private void ensureCapacity(int n) {
        if (n > relativeOffsets.length) {
            int capacity = Math.max(n, relativeOffsets.length * 2);
            relativeOffsets = Arrays.copyOf(relativeOffsets, capacity);
            positions = Arrays.copyOf(positions, capacity);
        }
    }
}
