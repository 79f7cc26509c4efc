package io.pockettune.ingest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * The sparse time index of one segment: {@code <20-digit baseOffset>.timeindex}.
 *
 * <p>The file is a sequence of 12-byte big-endian entries:
 *
 * <pre>
 *   timestamp       int64  the largest record timestamp in the segment below relativeOffset
 *   relativeOffset  int32  offset of a batch minus the segment's base offset
 * </pre>
 *
 * <p>An entry (T, O) promises: every record of the segment with an offset below O has a timestamp
 * of at most T. Both columns strictly increase. Entries are written together with
 * {@link OffsetIndex} entries (same index rule, so O is always an indexed batch) and only when T
 * grows, so an index over out-of-order timestamps stays small and correct. To find the first record
 * with a timestamp at or after t, take the last entry with T &lt; t (every record before its O is
 * older than t) and scan from O; the segment start if no entry qualifies. Unlike Kafka's time index
 * (which stores the offset of the max-timestamp record and can skip records that tie), this
 * formulation returns exactly the earliest such record even when timestamps go backwards.
 *
 * <p>Like the offset index the file is not checksummed and not forced per append: it is a pure
 * function of the log, forced at roll and clean close, checked for plausibility after a clean
 * shutdown and rebuilt whenever its segment is recovered. Entries are also held in memory (12 bytes
 * each). Thread-safe: all methods synchronize on the index.
 */
final class TimeIndex extends IndexFile {

    static final int ENTRY_SIZE = 12;

    /** An entry: every record below {@code offset} has a timestamp of at most {@code timestamp}. */
    record Entry(long timestamp, long offset) {
    }

    private long[] timestamps = new long[16];
    private int[] relativeOffsets = new int[16];

    private TimeIndex(Path file, long baseOffset, FileChannels channels) throws IOException {
        super(file, baseOffset, ENTRY_SIZE, channels);
    }

    /** Opens or creates the index file; call {@link #load} or {@link #reset} before use. */
    static TimeIndex open(Path file, long baseOffset) throws IOException {
        return open(file, baseOffset, FileChannels.system());
    }

    /** As {@link #open(Path, long)}, opening the file through {@code channels}. */
    static TimeIndex open(Path file, long baseOffset, FileChannels channels) throws IOException {
        return new TimeIndex(file, baseOffset, channels);
    }

    /**
     * Reads the file into memory if it is plausible: whole entries, both columns strictly
     * increasing, offsets positive and not beyond {@code lastIndexedOffset} (the offset of the last
     * offset index entry, which every time index entry shares).
     *
     * @return false if the file is implausible; the index is then empty and must be rebuilt
     */
    synchronized boolean load(long lastIndexedOffset) throws IOException {
        entries = 0;
        long fileSize = channel.size();
        long maxRelative = lastIndexedOffset - baseOffset;
        if (fileSize % ENTRY_SIZE != 0 || fileSize / ENTRY_SIZE > maxRelative) {
            return false;
        }
        ByteBuffer buf = readAll(fileSize);
        int n = (int) (fileSize / ENTRY_SIZE);
        ensureCapacity(n);
        for (int i = 0; i < n; i++) {
            long timestamp = buf.getLong();
            int relative = buf.getInt();
            if (relative <= 0 || relative > maxRelative
                    || (i > 0 && (relative <= relativeOffsets[i - 1] || timestamp <= timestamps[i - 1]))) {
                return false;
            }
            timestamps[i] = timestamp;
            relativeOffsets[i] = relative;
        }
        entries = n;
        return true;
    }

    /**
     * Adds the entry (timestamp, offset) if timestamp is larger than the last entry's; the caller
     * guarantees the offsets increase. The file write is not forced.
     */
    synchronized void maybeAppend(long timestamp, long offset) throws IOException {
        if (entries > 0 && timestamp <= timestamps[entries - 1]) {
            return;
        }
        long relative = offset - baseOffset;
        assert relative > 0 && relative <= Integer.MAX_VALUE : "relative offset out of range: " + relative;
        assert entries == 0 || relative > relativeOffsets[entries - 1] : "time index offsets must increase";
        ByteBuffer buf = ByteBuffer.allocate(ENTRY_SIZE).putLong(timestamp).putInt((int) relative).flip();
        writeEntry(buf);
        ensureCapacity(entries + 1);
        timestamps[entries] = timestamp;
        relativeOffsets[entries] = (int) relative;
        entries++;
    }

    /**
     * @return the offset from which to scan for the first record with a timestamp at or after
     *     {@code timestamp}: the offset of the last entry whose timestamp is below it, or the base
     *     offset if there is none
     */
    synchronized long scanStart(long timestamp) {
        int lo = 0;
        int hi = entries - 1;
        int found = -1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (timestamps[mid] < timestamp) {
                found = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return found < 0 ? baseOffset : baseOffset + relativeOffsets[found];
    }

    /** @return the last entry, or null if there is none */
    synchronized Entry last() {
        return entries == 0 ? null : new Entry(timestamps[entries - 1], baseOffset + relativeOffsets[entries - 1]);
    }

    private void ensureCapacity(int n) {
        if (n > timestamps.length) {
            int capacity = Math.max(n, timestamps.length * 2);
            timestamps = Arrays.copyOf(timestamps, capacity);
            relativeOffsets = Arrays.copyOf(relativeOffsets, capacity);
        }
    }
}
