package io.pockettune.ingest;

import java.util.Objects;

/**
 * Settings of an {@link EmbeddedLog}. Start from {@link #defaults()} and change what you need with
 * the {@code with} methods, so that code keeps compiling when settings are added.
 *
 * <p>The settings apply to the whole data directory and may change between runs: segments written
 * under an earlier size keep their size, and indexes keep their spacing until they are rebuilt.
 *
 * @param segmentBytes the size at which the active segment is rolled; a single append may not
 *     encode to more than this
 * @param indexIntervalBytes roughly how many log bytes lie between two entries of the sparse offset
 *     index; smaller means faster lookups and bigger index files
 * @param flushPolicy when appended batches are forced to stable storage
 */
public record LogConfig(int segmentBytes, int indexIntervalBytes, FlushPolicy flushPolicy) {

    /** The default segment size: 64 MiB. */
    public static final int DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
    /** The default spacing of offset index entries: 4 KiB. */
    public static final int DEFAULT_INDEX_INTERVAL_BYTES = 4096;
    /** The smallest segment size accepted; a segment must hold at least one small batch. */
    public static final int MIN_SEGMENT_BYTES = 64;

    /** When an append counts as done. */
    public enum FlushPolicy {
        /**
         * Every append call is forced to the device ({@code fsync}) before it returns: one fsync per
         * batch, so callers that group records into one append share its cost (group commit). An
         * acknowledged batch survives power loss.
         */
        FSYNC_EACH_BATCH,
        /**
         * Appends return once the operating system has the bytes; the log forces them only when a
         * segment rolls and at close. An acknowledged batch survives a crash of this process but
         * not a crash of the machine.
         */
        OS
    }

    /** @throws IllegalArgumentException if a setting is out of range */
    public LogConfig {
        if (segmentBytes < MIN_SEGMENT_BYTES) {
            throw new IllegalArgumentException("segmentBytes is " + segmentBytes + " but must be at least "
                    + MIN_SEGMENT_BYTES + "; choose a larger segment size");
        }
        if (indexIntervalBytes < 1) {
            throw new IllegalArgumentException("indexIntervalBytes is " + indexIntervalBytes
                    + " but must be at least 1; choose a positive index interval");
        }
        Objects.requireNonNull(flushPolicy, "flushPolicy must not be null; pick a LogConfig.FlushPolicy");
    }

    /** @return 64 MiB segments, an index entry every 4 KiB, and an fsync per batch */
    public static LogConfig defaults() {
        return new LogConfig(DEFAULT_SEGMENT_BYTES, DEFAULT_INDEX_INTERVAL_BYTES, FlushPolicy.FSYNC_EACH_BATCH);
    }

    /** @return a copy with the given segment size */
    public LogConfig withSegmentBytes(int bytes) {
        return new LogConfig(bytes, indexIntervalBytes, flushPolicy);
    }

    /** @return a copy with the given index interval */
    public LogConfig withIndexIntervalBytes(int bytes) {
        return new LogConfig(segmentBytes, bytes, flushPolicy);
    }

    /** @return a copy with the given flush policy */
    public LogConfig withFlushPolicy(FlushPolicy policy) {
        return new LogConfig(segmentBytes, indexIntervalBytes, policy);
    }
}
