package io.pockettune.ingest;

import java.util.Arrays;
import java.util.Objects;

/**
 * One record handed to {@link EmbeddedLog#append}: an event's timestamp, optional key and value.
 *
 * <p>The arrays are not copied: do not modify them after passing the record to the log. Equality
 * compares array contents, so two records with equal bytes are equal.
 *
 * @param timestamp the event time in milliseconds since the epoch (any value is stored as given)
 * @param key the partitioning key, or {@code null} for none
 * @param value the payload, never {@code null}; may be empty
 */
public record LogRecord(long timestamp, byte[] key, byte[] value) {

    /** @throws NullPointerException if {@code value} is null */
    public LogRecord {
        Objects.requireNonNull(value, "value must not be null; use an empty array for an empty payload");
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogRecord r
                && timestamp == r.timestamp
                && Arrays.equals(key, r.key)
                && Arrays.equals(value, r.value);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * Long.hashCode(timestamp) + Arrays.hashCode(key)) + Arrays.hashCode(value);
    }

    @Override
    public String toString() {
        return "LogRecord[timestamp=" + timestamp
                + ", key=" + (key == null ? "null" : key.length + " bytes")
                + ", value=" + value.length + " bytes]";
    }
}
