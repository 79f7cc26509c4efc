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
 * @param flushIntervalMs for {@link FlushPolicy#INTERVAL}: how often the log forces what was
 *     appended; ignored by the other policies
 * @param retentionMs segments whose newest record timestamp is older than this are deleted;
 *     -1 keeps them regardless of age
 * @param retentionBytes oldest segments are deleted while a partition holds more than this many
 *     bytes; -1 keeps them regardless of size
 * @param channels how segment and index files are opened; {@link FileChannels#system()} but in
 *     tests that inject faults
 * @param encryptionKey null for a log in the clear, or the 32-byte AES-256 key that seals every
 *     record batch (see {@link BatchCipher}); an encrypted log must always be opened with its key,
 *     a clear one never with a key ({@link EmbeddedLog#open(java.nio.file.Path, LogConfig)} refuses
 *     both mistakes)
 */
public record LogConfig(int segmentBytes, int indexIntervalBytes, FlushPolicy flushPolicy, long flushIntervalMs,
        long retentionMs, long retentionBytes, long retentionCheckIntervalMs, FileChannels channels,
        byte[] encryptionKey) {

    /** The default segment size: 64 MiB. */
    public static final int DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
    /** The default spacing of offset index entries: 4 KiB. */
    public static final int DEFAULT_INDEX_INTERVAL_BYTES = 4096;
    /** The smallest segment size accepted; a segment must hold at least one small batch. */
    public static final int MIN_SEGMENT_BYTES = 64;
    /** The default interval of {@link FlushPolicy#INTERVAL}: 10 ms. */
    public static final long DEFAULT_FLUSH_INTERVAL_MS = 10;
    /** How often retention runs by itself when a limit is set, by default: 5 minutes, as in Kafka. */
    public static final long DEFAULT_RETENTION_CHECK_INTERVAL_MS = 300_000;

    /** When an append counts as done. */
    public enum FlushPolicy {
        /**
         * Group commit, the default: an append returns only after an {@code fsync} that covers it.
         * Appends that arrive while a sync is running are written meanwhile and share the next one,
         * so concurrent appenders pay one fsync per group rather than one each. An acknowledged
         * batch survives power loss.
         */
        FSYNC_EACH_BATCH,
        /**
         * A background thread forces the log every {@link LogConfig#flushIntervalMs()}; an append
         * returns after the first of those forces that covers it. Fewer fsyncs than group commit
         * under light load, at the price of up to one interval of added latency. An acknowledged
         * batch survives power loss.
         */
        INTERVAL,
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
        if (flushIntervalMs < 1) {
            throw new IllegalArgumentException("flushIntervalMs is " + flushIntervalMs
                    + " but must be at least 1; choose a positive flush interval");
        }
        if (retentionMs < -1 || retentionBytes < -1) {
            throw new IllegalArgumentException("retentionMs is " + retentionMs + " and retentionBytes is " + retentionBytes
                    + "; use -1 for unlimited or a non-negative limit");
        }
        if (retentionCheckIntervalMs < 1) {
            throw new IllegalArgumentException("retentionCheckIntervalMs is " + retentionCheckIntervalMs
                    + " but must be at least 1; choose a positive retention check interval");
        }
        Objects.requireNonNull(channels, "channels must not be null; use FileChannels.system()");
        if (encryptionKey != null) {
            BatchCipher.checkKey(encryptionKey);
            encryptionKey = encryptionKey.clone();
        }
    }

    /** A clear log's configuration; see the canonical constructor. */
    public LogConfig(int segmentBytes, int indexIntervalBytes, FlushPolicy flushPolicy, long flushIntervalMs,
            long retentionMs, long retentionBytes) {
        this(segmentBytes, indexIntervalBytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes,
                DEFAULT_RETENTION_CHECK_INTERVAL_MS, FileChannels.system(), null);
    }

    /** @return a copy of the encryption key, or null for a log in the clear */
    @Override
    public byte[] encryptionKey() {
        return encryptionKey == null ? null : encryptionKey.clone();
    }

    /** @return whether batches are encrypted */
    public boolean encrypted() {
        return encryptionKey != null;
    }

    /** @return a copy that encrypts record batches with {@code key} (32 bytes), or none for null */
    public LogConfig withEncryptionKey(byte[] key) {
        return new LogConfig(segmentBytes, indexIntervalBytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes,
                retentionCheckIntervalMs, channels, key);
    }

    /** @return the cipher of this configuration's key, or null for a clear log */
    BatchCipher cipher() {
        return encryptionKey == null ? null : new BatchCipher(encryptionKey);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LogConfig c && segmentBytes == c.segmentBytes && indexIntervalBytes == c.indexIntervalBytes
                && flushPolicy == c.flushPolicy && flushIntervalMs == c.flushIntervalMs && retentionMs == c.retentionMs
                && retentionBytes == c.retentionBytes && retentionCheckIntervalMs == c.retentionCheckIntervalMs
                && channels.equals(c.channels)
                && java.util.Arrays.equals(encryptionKey, c.encryptionKey);
    }

    @Override
    public int hashCode() {
        return Objects.hash(segmentBytes, indexIntervalBytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes,
                retentionCheckIntervalMs, channels, java.util.Arrays.hashCode(encryptionKey));
    }

    /** Never shows the key. */
    @Override
    public String toString() {
        return "LogConfig[segmentBytes=" + segmentBytes + ", indexIntervalBytes=" + indexIntervalBytes + ", flushPolicy="
                + flushPolicy + ", flushIntervalMs=" + flushIntervalMs + ", retentionMs=" + retentionMs
                + ", retentionBytes=" + retentionBytes + ", retentionCheckIntervalMs=" + retentionCheckIntervalMs
                + ", encrypted=" + (encryptionKey != null) + "]";
    }

    /** A configuration with default flush interval and unlimited retention. */
    public LogConfig(int segmentBytes, int indexIntervalBytes, FlushPolicy flushPolicy) {
        this(segmentBytes, indexIntervalBytes, flushPolicy, DEFAULT_FLUSH_INTERVAL_MS, -1, -1);
    }

    /** @return 64 MiB segments, an index entry every 4 KiB, group commit and unlimited retention */
    public static LogConfig defaults() {
        return new LogConfig(DEFAULT_SEGMENT_BYTES, DEFAULT_INDEX_INTERVAL_BYTES, FlushPolicy.FSYNC_EACH_BATCH);
    }

    /** @return a copy with the given segment size */
    public LogConfig withSegmentBytes(int bytes) {
        return new LogConfig(bytes, indexIntervalBytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes, retentionCheckIntervalMs, channels, encryptionKey);
    }

    /** @return a copy with the given index interval */
    public LogConfig withIndexIntervalBytes(int bytes) {
        return new LogConfig(segmentBytes, bytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes, retentionCheckIntervalMs, channels, encryptionKey);
    }

    /** @return a copy with the given flush policy */
    public LogConfig withFlushPolicy(FlushPolicy policy) {
        return new LogConfig(segmentBytes, indexIntervalBytes, policy, flushIntervalMs, retentionMs, retentionBytes, retentionCheckIntervalMs, channels, encryptionKey);
    }

    /** @return a copy with {@link FlushPolicy#INTERVAL} every {@code ms} milliseconds */
    public LogConfig withFlushInterval(long ms) {
        return new LogConfig(segmentBytes, indexIntervalBytes, FlushPolicy.INTERVAL, ms, retentionMs, retentionBytes, retentionCheckIntervalMs, channels, encryptionKey);
    }

    /** @return a copy with the given retention limits; -1 means unlimited */
    public LogConfig withRetention(long ms, long bytes) {
        return new LogConfig(segmentBytes, indexIntervalBytes, flushPolicy, flushIntervalMs, ms, bytes, retentionCheckIntervalMs,
                channels, encryptionKey);
    }

    /** @return a copy whose log runs retention by itself every {@code ms} milliseconds (when a limit is set) */
    public LogConfig withRetentionCheckInterval(long ms) {
        return new LogConfig(segmentBytes, indexIntervalBytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes,
                ms, channels, encryptionKey);
    }

    /** @return a copy that opens its segment and index files through {@code files} (fault injection) */
    public LogConfig withChannels(FileChannels files) {
        return new LogConfig(segmentBytes, indexIntervalBytes, flushPolicy, flushIntervalMs, retentionMs, retentionBytes,
                retentionCheckIntervalMs, files, encryptionKey);
    }
}
