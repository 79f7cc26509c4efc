package io.pockettune.ingest;

import java.util.Arrays;

/**
 * A record as read back from the log, with the offset the log assigned to it.
 *
 * <p>Each entry owns fresh arrays. Equality compares array contents.
 *
 * @param offset the record's position in its partition; offsets of a partition are contiguous
 * @param timestamp the timestamp the record was appended with
 * @param key the key, or {@code null} if the record had none
 * @param value the payload, never {@code null}
 */
public record LogEntry(long offset, long timestamp, byte[] key, byte[] value) {

    /** @return this entry without its offset, as it was appended */
    public LogRecord record() {
        return new LogRecord(timestamp, key, value);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogEntry e
                && offset == e.offset
                && timestamp == e.timestamp
                && Arrays.equals(key, e.key)
                && Arrays.equals(value, e.value);
    }

    @Override
    public int hashCode() {
        int h = Long.hashCode(offset);
        h = 31 * h + Long.hashCode(timestamp);
        h = 31 * h + Arrays.hashCode(key);
        return 31 * h + Arrays.hashCode(value);
    }

    @Override
    public String toString() {
        return "LogEntry[offset=" + offset + ", timestamp=" + timestamp
                + ", key=" + (key == null ? "null" : key.length + " bytes")
                + ", value=" + (value == null ? "null" : value.length + " bytes") + "]";
    }
}
