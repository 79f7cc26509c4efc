package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An embedded, durable, Kafka-like log: topics split into partitions, each an append-only sequence
 * of records with contiguous offsets, plus committed consumer-group offsets. One process owns a
 * data directory at a time.
 *
 * <h2>Layout</h2>
 * <pre>
 *   &lt;dir&gt;/.lock                               OS lock; holds the owner's process id
 *   &lt;dir&gt;/.clean-shutdown                     present only between a clean close and the next open
 *   &lt;dir&gt;/recovery-point-offset-checkpoint    per partition: offset below which data is on disk
 *   &lt;dir&gt;/consumer-offsets.log               committed group offsets, append-only
 *   &lt;dir&gt;/&lt;topic&gt;-&lt;partition&gt;/&lt;20-digit baseOffset&gt;.log     record batches
 *   &lt;dir&gt;/&lt;topic&gt;-&lt;partition&gt;/&lt;20-digit baseOffset&gt;.index   sparse offset index
 *   &lt;dir&gt;/&lt;topic&gt;-&lt;partition&gt;/&lt;20-digit baseOffset&gt;.timeindex   sparse time index
 * </pre>
 * The batch format is documented in {@link RecordBatch}, the indexes in {@link OffsetIndex} and
 * {@link TimeIndex},
 * segments in {@link LogSegment}, partitions and their recovery in {@link PartitionLog}, group
 * offsets in {@link ConsumerOffsetStore}. Topics and partition counts are whatever partition
 * directories exist; {@link #createTopic} creates them highest partition first, so after a crash in
 * the middle the highest one still tells the count and the missing ones are recreated empty.
 *
 * <h2>Acknowledgement and durability</h2>
 * {@link #append} writes the records as one CRC-protected batch and returns only once the batch is
 * durable per {@link LogConfig#flushPolicy()}: with the default {@code FSYNC_EACH_BATCH} it has been
 * forced to the device by a group commit that concurrent appends to the partition share (see
 * {@link PartitionLog}); with {@code INTERVAL} by the next periodic force. Only then does the batch
 * become visible to {@link #read}. Acknowledged batches survive any crash that the flush policy
 * covers.
 *
 * <h2>Retention and time</h2>
 * {@link #enforceRetention()} deletes whole segments per {@link LogConfig#retentionMs()} and
 * {@link LogConfig#retentionBytes()}, and runs by itself every {@link LogConfig#retentionCheckIntervalMs()}
 * when a limit is set; reads in progress are not disturbed. {@link #findByTimestamp} finds the first
 * record at or after a timestamp through the time indexes. Time comes from a Kafka {@link Time}, so
 * tests control it.
 *
 * <h2>Recovery</h2>
 * {@link #close()} forces everything, records every partition's end offset as its recovery point
 * and finally writes the clean-shutdown marker; {@link #open} deletes the marker before accepting
 * writes. If the marker is present the log was closed cleanly and open validates nothing. If it is
 * absent, each partition is validated batch by batch from the segment holding its recovery point,
 * and cut at the first torn or corrupt batch (length out of bounds, CRC mismatch, offset not
 * continuing the previous batch); later segments are deleted and indexes rebuilt. The result: the
 * longest valid prefix of every partition, which contains every acknowledged batch.
 *
 * <h2>Thread safety</h2>
 * All methods are thread-safe. Appends to one partition are serialized by that partition's lock;
 * appends to different partitions run in parallel. Reads take no partition lock and run
 * concurrently with appends: a read sees a prefix of the partition that ends at a batch boundary,
 * never a partially written or not yet acknowledged batch. {@link #close()} waits for calls in
 * progress; calls after it fail with {@link IllegalStateException}.
 *
 * <h2>Errors</h2>
 * Mistakes a caller can make (unknown topic, bad name, out-of-range offset, oversized batch) are
 * {@link IllegalArgumentException}s, and a directory owned by another process is an
 * {@link IllegalStateException}, each with one sentence naming the problem and the fix. I/O
 * failures are {@link IOException}s; a failed append or commit did not happen and can be retried.
 */
public final class EmbeddedLog implements LogReader, Closeable {

    static final String CLEAN_SHUTDOWN_FILE = ".clean-shutdown";
    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedLog.class);
    private static final Pattern PARTITION_DIR = Pattern.compile("(.+)-(\\d{1,9})");
    private static final Pattern LEGAL_TOPIC = Pattern.compile("[a-zA-Z0-9._-]+");
    private static final int MAX_TOPIC_LENGTH = 249;

    private final Path dir;
    private final LogConfig config;
    private final DataDirectoryLock lock;
    private final RecoveryCheckpoint checkpoint;
    private final ConsumerOffsetStore offsets;
    private final ConcurrentHashMap<String, List<PartitionLog>> topics;
    private final int segmentsRecoveredAtOpen;
    /** Read lock: any call in progress. Write lock: close. */
    private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
    private final Object topicCreation = new Object();
    private final Time time;
    /** Interval flushes and retention; null when neither is configured. */
    private final ScheduledExecutorService maintenance;
    private volatile boolean closed;
    /** Bumped whenever any partition publishes records; readers wait on it. */
    private final Object appendSignal = new Object();
    private long appendVersion;

    private EmbeddedLog(Path dir, LogConfig config, DataDirectoryLock lock, RecoveryCheckpoint checkpoint,
            ConsumerOffsetStore offsets, Map<String, List<PartitionLog>> topics, int segmentsRecoveredAtOpen, Time time) {
        this.dir = dir;
        this.config = config;
        this.lock = lock;
        this.checkpoint = checkpoint;
        this.offsets = offsets;
        this.topics = new ConcurrentHashMap<>(topics);
        this.segmentsRecoveredAtOpen = segmentsRecoveredAtOpen;
        this.time = time;
        this.topics.values().forEach(ps -> ps.forEach(p -> p.setPublishListener(this::signalAppend)));
        boolean interval = config.flushPolicy() == LogConfig.FlushPolicy.INTERVAL;
        boolean retention = config.retentionMs() >= 0 || config.retentionBytes() >= 0;
        if (interval || retention) {
            maintenance = Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "pockettune-log-maintenance " + dir.getFileName());
                t.setDaemon(true);
                return t;
            });
            if (interval) {
                maintenance.scheduleWithFixedDelay(this::flushAll, config.flushIntervalMs(), config.flushIntervalMs(),
                        TimeUnit.MILLISECONDS);
            }
            if (retention) {
                maintenance.scheduleWithFixedDelay(this::retentionQuietly, config.retentionCheckIntervalMs(),
                        config.retentionCheckIntervalMs(), TimeUnit.MILLISECONDS);
            }
        } else {
            maintenance = null;
        }
    }

    /** The interval flusher: forces every partition that has unforced appends. */
    private void flushAll() {
        for (List<PartitionLog> partitions : topics.values()) {
            for (PartitionLog p : partitions) {
                try {
                    p.sync(Long.MAX_VALUE);
                } catch (IOException e) {
                    LOG.error("Interval flush of {} failed; its waiting appends fail", p, e);
                }
            }
        }
    }

    private void retentionQuietly() {
        // tryLock: close holds the write lock while it waits for this thread to stop.
        Lock held = lifecycle.readLock();
        if (!held.tryLock()) {
            return;
        }
        try {
            if (!closed) {
                retain();
            }
        } catch (IOException | RuntimeException e) {
            LOG.warn("Retention check of {} failed ({}); it runs again in {} ms", dir, e.toString(),
                    config.retentionCheckIntervalMs());
        } finally {
            held.unlock();
        }
    }

    /** @return whether the log in {@code dir} is encrypted (holds the encryption marker) */
    public static boolean isEncrypted(Path dir) {
        return LogEncryption.isEncrypted(dir.toAbsolutePath().normalize());
    }

    /**
     * Checks {@code key} against the log in {@code dir} without opening it: refused when the log is
     * encrypted with another key, or is in the clear and already holds partitions. A missing or
     * empty log passes (its first open with the key makes it encrypted).
     *
     * @throws IllegalStateException with one sentence saying what is wrong and what to do
     */
    public static void checkEncryptionKey(Path dir, byte[] key) throws IOException {
        Path root = dir.toAbsolutePath().normalize();
        if (!Files.isDirectory(root)) {
            return;
        }
        LogEncryption.check(root, key, !partitionCounts(root).isEmpty(), false);
    }

    /** Opens the log in {@code dir} with {@link LogConfig#defaults()}; see {@link #open(Path, LogConfig)}. */
    public static EmbeddedLog open(Path dir) throws IOException {
        return open(dir, LogConfig.defaults());
    }

    /**
     * Opens the log in {@code dir}, creating the directory if needed and recovering it if it was
     * not closed cleanly.
     *
     * @throws IllegalStateException if another process (or another open log in this process) owns
     *     the directory
     * @throws IllegalArgumentException if {@code dir} exists and is not a directory
     * @throws IOException if the directory cannot be created or read
     */
    public static EmbeddedLog open(Path dir, LogConfig config) throws IOException {
        return open(dir, config, Time.SYSTEM);
    }

    /**
     * Like {@link #open(Path, LogConfig)}, with the clock that retention compares record timestamps
     * against.
     */
    public static EmbeddedLog open(Path dir, LogConfig config, Time time) throws IOException {
        Objects.requireNonNull(time, "time");
        Objects.requireNonNull(dir, "dir");
        Objects.requireNonNull(config, "config");
        Path root = dir.toAbsolutePath().normalize();
        if (Files.exists(root) && !Files.isDirectory(root)) {
            throw new IllegalArgumentException("data directory " + root + " is a file, not a directory;"
                    + " choose another --data-dir");
        }
        try {
            OwnerOnly.createDirectories(root);
        } catch (IOException e) {
            throw new IOException("cannot create data directory " + root + " (" + e + "); choose a writable --data-dir", e);
        }
        DataDirectoryLock lock = DataDirectoryLock.acquire(root);
        List<PartitionLog> loaded = new ArrayList<>();
        ConsumerOffsetStore offsets = null;
        try {
            Path marker = root.resolve(CLEAN_SHUTDOWN_FILE);
            boolean clean = Files.exists(marker);
            RecoveryCheckpoint checkpoint = RecoveryCheckpoint.load(root);
            Map<String, Integer> found = partitionCounts(root);
            LogEncryption.check(root, config.encryptionKey(), !found.isEmpty(), true);
            if (!clean && !found.isEmpty()) {
                LOG.warn("{} was not closed cleanly; validating its partitions from their recovery points", root);
            }
            Map<String, List<PartitionLog>> topics = new HashMap<>();
            int recovered = 0;
            boolean createdMissing = false;
            for (Map.Entry<String, Integer> topic : found.entrySet()) {
                List<PartitionLog> partitions = new ArrayList<>();
                for (int p = 0; p < topic.getValue(); p++) {
                    TopicPartition tp = new TopicPartition(topic.getKey(), p);
                    PartitionLog partition;
                    if (Files.isDirectory(root.resolve(PartitionLog.dirName(tp)))) {
                        partition = PartitionLog.load(root, tp, config, checkpoint, clean);
                    } else {
                        LOG.warn("Partition {} has no directory (topic creation was interrupted); creating it empty", tp);
                        partition = PartitionLog.create(root, tp, config, checkpoint);
                        createdMissing = true;
                    }
                    loaded.add(partition);
                    partitions.add(partition);
                    recovered += partition.segmentsRecovered();
                }
                topics.put(topic.getKey(), List.copyOf(partitions));
            }
            if (createdMissing) {
                Utils.flushDir(root);
            }
            offsets = ConsumerOffsetStore.open(root, ConsumerOffsetStore.DEFAULT_COMPACTION_BYTES);
            if (clean) {
                Files.delete(marker);
                Utils.flushDir(root);
            } else if (!loaded.isEmpty()) {
                Map<TopicPartition, Long> points = new HashMap<>();
                loaded.forEach(p -> points.put(p.topicPartition(), p.recoveryPoint()));
                checkpoint.updateAll(points);
            }
            return new EmbeddedLog(root, config, lock, checkpoint, offsets, topics, recovered, time);
        } catch (IOException | RuntimeException e) {
            loaded.forEach(p -> Utils.closeQuietly(p, "partition " + p));
            if (offsets != null) {
                Utils.closeQuietly(offsets, "consumer offsets");
            }
            Utils.closeQuietly(lock, "data directory lock");
            throw e;
        }
    }

    /**
     * Creates {@code topic} with {@code partitions} empty partitions; does nothing if it already
     * exists with that many.
     *
     * @throws IllegalArgumentException if the name is not a legal topic name, the count is below 1,
     *     or the topic exists with a different count
     */
    public void createTopic(String topic, int partitions) throws IOException {
        validateTopicName(topic);
        if (partitions < 1) {
            throw new IllegalArgumentException("topic '" + topic + "' needs at least one partition, got " + partitions
                    + "; pass a partition count of 1 or more");
        }
        Lock held = enter();
        try {
            synchronized (topicCreation) {
                List<PartitionLog> existing = topics.get(topic);
                if (existing != null) {
                    if (existing.size() == partitions) {
                        return;
                    }
                    throw new IllegalArgumentException("topic '" + topic + "' already exists with " + existing.size()
                            + " partitions, not " + partitions + "; use " + existing.size()
                            + " (changing the partition count is not supported)");
                }
                List<PartitionLog> created = new ArrayList<>();
                try {
                    for (int p = partitions - 1; p >= 0; p--) {
                        created.add(PartitionLog.create(dir, new TopicPartition(topic, p), config, checkpoint));
                    }
                    Utils.flushDir(dir);
                } catch (IOException e) {
                    for (PartitionLog p : created) {
                        Utils.closeQuietly(p, "partition " + p);
                        try {
                            Utils.delete(dir.resolve(PartitionLog.dirName(p.topicPartition())).toFile());
                        } catch (IOException cleanup) {
                            e.addSuppressed(cleanup);
                        }
                    }
                    throw new IOException("could not create topic '" + topic + "' in " + dir + " (" + e
                            + "); check free disk space and permissions, then retry", e);
                }
                Collections.reverse(created);
                created.forEach(p -> p.setPublishListener(this::signalAppend));
                topics.put(topic, List.copyOf(created));
                LOG.debug("Created topic '{}' with {} partition(s) in {}", topic, partitions, dir);
            }
        } finally {
            held.unlock();
        }
    }

    /** @return the names of all topics, sorted; a snapshot */
    public Set<String> topics() {
        Lock held = enter();
        try {
            SortedSet<String> names = new TreeSet<>(topics.keySet());
            return Collections.unmodifiableSortedSet(names);
        } finally {
            held.unlock();
        }
    }

    /**
     * @return the number of partitions of {@code topic}
     * @throws IllegalArgumentException if the topic does not exist
     */
    public int partitionCount(String topic) {
        Lock held = enter();
        try {
            return partitions(topic).size();
        } finally {
            held.unlock();
        }
    }

    /**
     * Appends {@code records} as one batch with consecutive offsets, and returns once the batch is
     * durable per the flush policy; the records are visible to readers from then on.
     *
     * @return the offset assigned to the first record; record i gets that offset plus i
     * @throws IllegalArgumentException if the topic or partition does not exist, {@code records} is
     *     empty or holds null, or the batch would be larger than a segment
     * @throws IOException if the batch could not be made durable; it was not appended
     */
    public long append(String topic, int partition, List<LogRecord> records) throws IOException {
        Lock held = enter();
        try {
            PartitionLog log = partition(topic, partition);
            long base = write(log, records);
            log.awaitDurable(base + records.size());
            return base;
        } finally {
            held.unlock();
        }
    }

    /**
     * The first half of {@link #append}: writes the batch without waiting for the device, so that a
     * caller with batches for several partitions can write them all before waiting once per
     * partition with {@link #awaitDurable}. Nothing is acknowledged before that returns.
     */
    long write(String topic, int partition, List<LogRecord> records) throws IOException {
        Lock held = enter();
        try {
            return write(partition(topic, partition), records);
        } finally {
            held.unlock();
        }
    }

    /**
     * Like {@link #write(String, int, List)} (writes without waiting for the device), but with the
     * producer identity checked and recorded (see {@link ProducerStateTable}); for a duplicate
     * nothing is written and the original base offset is returned. Follow with
     * {@link #awaitDurable} for baseOffset + records.size() before acknowledging, for duplicates
     * too: the original may still be in flight.
     *
     * @throws IllegalArgumentException as for {@link #append}
     * @throws org.apache.kafka.common.errors.InvalidProducerEpochException if a newer epoch of the
     *     producer id fenced this one
     * @throws org.apache.kafka.common.errors.OutOfOrderSequenceException if the batch's sequence
     *     does not continue the producer's, or a new epoch does not start at sequence 0
     */
    IdempotentWrite writeIdempotent(String topic, int partition, List<LogRecord> records, ProducerBatch producer)
            throws IOException {
        Objects.requireNonNull(producer, "producer");
        Lock held = enter();
        try {
            PartitionLog log = partition(topic, partition);
            ByteBuffer batch = encode(log, records, producer);
            return log.writeIdempotent(batch, records.size(), RecordBatch.maxTimestamp(records), producer);
        } finally {
            held.unlock();
        }
    }

    /**
     * @return the largest producer id found in any partition's producer state (for allocating new
     *     ids above it), or -1
     */
    long maxProducerId() {
        Lock held = enter();
        try {
            long max = -1;
            for (List<PartitionLog> partitions : topics.values()) {
                for (PartitionLog p : partitions) {
                    max = Math.max(max, p.maxProducerId());
                }
            }
            return max;
        } finally {
            held.unlock();
        }
    }

    private long write(PartitionLog log, List<LogRecord> records) throws IOException {
        return log.write(encode(log, records, null), records.size(), RecordBatch.maxTimestamp(records));
    }

    /** Validates {@code records} and encodes them as one batch, carrying {@code producer} unless it is null. */
    private ByteBuffer encode(PartitionLog log, List<LogRecord> records, ProducerBatch producer) {
        Objects.requireNonNull(records, "records");
        if (records.isEmpty()) {
            throw new IllegalArgumentException("no records to append to " + log + "; pass at least one LogRecord");
        }
        for (int i = 0; i < records.size(); i++) {
            if (records.get(i) == null) {
                throw new IllegalArgumentException("record " + i + " of the batch for " + log
                        + " is null; pass only LogRecord instances");
            }
        }
        long size = RecordBatch.sizeInBytes(records, producer);
        if (size > config.segmentBytes()) {
            throw new IllegalArgumentException("a batch of " + records.size() + " records for " + log + " encodes to "
                    + size + " bytes, more than the segment size of " + config.segmentBytes()
                    + " bytes; split it into smaller appends or raise LogConfig.segmentBytes");
        }
        return RecordBatch.encode(records, (int) size, producer);
    }

    /** Returns once the records of the partition below {@code end} are durable per the flush policy. */
    void awaitDurable(String topic, int partition, long end) throws IOException {
        Lock held = enter();
        try {
            partition(topic, partition).awaitDurable(end);
        } finally {
            held.unlock();
        }
    }

    /**
     * Finds the first record whose timestamp is at or after {@code timestamp} (Kafka's
     * {@code offsetsForTimes}), using the time indexes: one segment is scanned, from the last time
     * index entry older than the timestamp.
     *
     * @return that record, or empty if every record of the partition is older
     * @throws IllegalArgumentException if the topic or partition does not exist
     */
    public java.util.Optional<LogEntry> findByTimestamp(String topic, int partition, long timestamp) throws IOException {
        Lock held = enter();
        try {
            return java.util.Optional.ofNullable(partition(topic, partition).findByTimestamp(timestamp));
        } finally {
            held.unlock();
        }
    }

    /**
     * Deletes, in every partition, whole segments older than {@link LogConfig#retentionMs()} (by
     * their newest record timestamp against this log's clock) or beyond
     * {@link LogConfig#retentionBytes()}, oldest first, never the active segment. Readers keep
     * working; a read that asks for a deleted offset gets the usual out-of-range error.
     *
     * @return the number of segments deleted
     */
    public int enforceRetention() throws IOException {
        Lock held = enter();
        try {
            return retain();
        } finally {
            held.unlock();
        }
    }

    private int retain() throws IOException {
        int deleted = 0;
        long now = time.milliseconds();
        for (List<PartitionLog> partitions : topics.values()) {
            for (PartitionLog p : partitions) {
                deleted += p.enforceRetention(now);
            }
        }
        return deleted;
    }

    /**
     * Reads up to {@code maxRecords} records starting at {@code fromOffset}.
     *
     * @return the records with offsets {@code fromOffset}, {@code fromOffset + 1}, ... in order,
     *     skipping erased ones ({@link #erase}); empty if {@code fromOffset} is the end offset
     * @throws IllegalArgumentException if the topic or partition does not exist, {@code maxRecords}
     *     is below 1, or {@code fromOffset} is outside [startOffset, endOffset]
     * @throws IOException if the data cannot be read or is damaged
     */
    public List<LogEntry> read(String topic, int partition, long fromOffset, int maxRecords) throws IOException {
        Lock held = enter();
        try {
            PartitionLog log = partition(topic, partition);
            if (maxRecords < 1) {
                throw new IllegalArgumentException("maxRecords is " + maxRecords + " for a read of " + log
                        + "; ask for at least one record");
            }
            return log.read(fromOffset, maxRecords);
        } finally {
            held.unlock();
        }
    }

    /**
     * Erases records for good (exact forgetting): each keeps its offset and timestamp, as a hole
     * that every read skips, and loses its key and value, overwritten on disk in place with zeros
     * and forced before this returns. Offsets already erased, or no longer held, are skipped, so a
     * repeated call after a crash finishes the job. Appends to the partition wait meanwhile.
     *
     * @return the offsets erased by this call, in order
     * @throws IllegalArgumentException if the topic or partition does not exist
     */
    public List<Long> erase(String topic, int partition, java.util.Set<Long> offsets) throws IOException {
        Lock held = enter();
        try {
            List<Long> erased = partition(topic, partition).erase(offsets);
            erased.sort(null);
            if (!erased.isEmpty()) {
                LOG.info("Erased {} record(s) of {}-{} at offsets {}", erased.size(), topic, partition, erased);
            }
            return erased;
        } finally {
            held.unlock();
        }
    }

    /** @return the first offset still held by the partition */
    public long startOffset(String topic, int partition) {
        Lock held = enter();
        try {
            return partition(topic, partition).startOffset();
        } finally {
            held.unlock();
        }
    }

    /** @return the offset the next appended record will get, i.e. one past the last acknowledged record */
    public long endOffset(String topic, int partition) {
        Lock held = enter();
        try {
            return partition(topic, partition).endOffset();
        } finally {
            held.unlock();
        }
    }

    /**
     * Durably records, for consumer group {@code group}, the next offset to read of each given
     * partition. Partitions not named keep their committed offsets. Returns once the commit is on
     * stable storage.
     *
     * @throws IllegalArgumentException if the group name is blank, a partition does not exist, or
     *     an offset is negative or beyond the partition's end offset
     * @throws IOException if the commit could not be made durable; it did not happen
     */
    public void commitOffsets(String group, Map<TopicPartition, Long> nextOffsets) throws IOException {
        validateGroup(group);
        Objects.requireNonNull(nextOffsets, "nextOffsets");
        Lock held = enter();
        try {
            Map<TopicPartition, Long> valid = new LinkedHashMap<>();
            for (Map.Entry<TopicPartition, Long> e : nextOffsets.entrySet()) {
                TopicPartition tp = e.getKey();
                if (tp == null || e.getValue() == null) {
                    throw new IllegalArgumentException("the offsets to commit for group '" + group
                            + "' contain a null partition or offset; pass a partition and an offset for each entry");
                }
                long end = partition(tp.topic(), tp.partition()).endOffset();
                long offset = e.getValue();
                if (offset < 0 || offset > end) {
                    throw new IllegalArgumentException("cannot commit offset " + offset + " of " + tp + " for group '" + group
                            + "': it must lie between 0 and the end offset " + end
                            + "; commit the offset after the last record you processed");
                }
                valid.put(tp, offset);
            }
            if (!valid.isEmpty()) {
                offsets.commit(group, valid);
            }
        } finally {
            held.unlock();
        }
    }

    /** @return the next offset to read that {@code group} committed for {@code tp}, or empty if none */
    public OptionalLong committed(String group, TopicPartition tp) {
        validateGroup(group);
        Objects.requireNonNull(tp, "tp");
        Lock held = enter();
        try {
            return offsets.committed(group, tp);
        } finally {
            held.unlock();
        }
    }

    /**
     * @return a snapshot of every next offset to read that {@code group} committed, by partition;
     *     empty if none (the Kafka listener answers an OffsetFetch for all topics with it)
     */
    Map<TopicPartition, Long> committedOffsets(String group) {
        validateGroup(group);
        Lock held = enter();
        try {
            return offsets.committedOffsets(group);
        } finally {
            held.unlock();
        }
    }

    /**
     * Waits for calls in progress, forces all data, records the recovery points, writes the
     * clean-shutdown marker and releases the directory. If anything fails the marker is not
     * written, so the next open recovers. Does nothing if already closed.
     */
    @Override
    public void close() throws IOException {
        lifecycle.writeLock().lock();
        try {
            if (closed) {
                return;
            }
            closed = true;
            stopMaintenance();
            IOException failure = null;
            try {
                Map<TopicPartition, Long> points = new HashMap<>();
                for (List<PartitionLog> partitions : topics.values()) {
                    for (PartitionLog p : partitions) {
                        // Each partition on its own: one that failed must not keep the others unforced.
                        try {
                            p.flush();
                        } catch (IOException e) {
                            if (failure == null) {
                                failure = e;
                            } else {
                                failure.addSuppressed(e);
                            }
                        }
                        points.put(p.topicPartition(), p.recoveryPoint());
                    }
                }
                if (!points.isEmpty()) {
                    checkpoint.updateAll(points);
                }
            } catch (IOException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
            failure = closeFiles(failure);
            if (failure == null) {
                try {
                    Files.write(dir.resolve(CLEAN_SHUTDOWN_FILE), new byte[0], StandardOpenOption.CREATE,
                            StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE, StandardOpenOption.SYNC);
                    Utils.flushDir(dir);
                } catch (IOException e) {
                    failure = e;
                }
            }
            failure = closeLock(failure);
            if (failure != null) {
                throw new IOException("could not close the log in " + dir + " cleanly (" + failure
                        + "); the next open will validate and repair it", failure);
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    /**
     * @return the partitions that refuse appends because a force (or the undoing of a failed
     *     append) failed, each with one sentence saying why and what to do; empty when all take
     *     appends. Such a partition stays readable up to its last acknowledged offset; reopening
     *     the log recovers it.
     */
    public Map<TopicPartition, String> failedPartitions() {
        Map<TopicPartition, String> failed = new java.util.TreeMap<>(
                java.util.Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition));
        for (List<PartitionLog> partitions : topics.values()) {
            for (PartitionLog p : partitions) {
                String why = p.failure();
                if (why != null) {
                    failed.put(p.topicPartition(), why);
                }
            }
        }
        return Collections.unmodifiableMap(failed);
    }

    @Override
    public String toString() {
        return "EmbeddedLog[" + dir + "]";
    }

    /**
     * Closes the files and releases the directory without forcing anything or writing the
     * clean-shutdown marker, leaving the directory as a crash of this process would (the page cache
     * keeps what was written). For tests.
     */
    void abandon() throws IOException {
        lifecycle.writeLock().lock();
        try {
            if (!closed) {
                closed = true;
                stopMaintenance();
                IOException failure = closeLock(closeFiles(null));
                if (failure != null) {
                    throw failure;
                }
            }
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    private void stopMaintenance() {
        if (maintenance != null) {
            maintenance.shutdownNow();
            try {
                maintenance.awaitTermination(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void signalAppend() {
        synchronized (appendSignal) {
            appendVersion++;
            appendSignal.notifyAll();
        }
    }

    /** @return the directory this log owns */
    public Path directory() {
        return dir;
    }

    /** @return a number that changes whenever records are published anywhere in the log */
    long appendVersion() {
        synchronized (appendSignal) {
            return appendVersion;
        }
    }

    /**
     * Waits up to {@code timeoutNanos} until records are published after {@link #appendVersion()}
     * returned {@code version}; lets idle consumers sleep instead of polling the disk.
     */
    void awaitAppend(long version, long timeoutNanos) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutNanos;
        synchronized (appendSignal) {
            long left;
            while (appendVersion == version && !closed && (left = deadline - System.nanoTime()) > 0) {
                java.util.concurrent.TimeUnit.NANOSECONDS.timedWait(appendSignal, left);
            }
        }
    }

    /** @return the partition itself; for tests */
    PartitionLog partitionLog(String topic, int partition) {
        return partition(topic, partition);
    }

    /** @return how many segments the last open validated batch by batch; 0 after a clean close */
    int segmentsRecoveredAtOpen() {
        return segmentsRecoveredAtOpen;
    }

    /** @throws IllegalArgumentException if {@code topic} is not a legal topic name */
    static void validateTopicName(String topic) {
        Objects.requireNonNull(topic, "topic");
        if (topic.isEmpty()) {
            throw new IllegalArgumentException("topic name is empty; use ASCII letters, digits, '.', '_' and '-'");
        }
        if (topic.equals(".") || topic.equals("..")) {
            throw new IllegalArgumentException("topic name '" + topic + "' is reserved; choose another name");
        }
        if (topic.length() > MAX_TOPIC_LENGTH) {
            throw new IllegalArgumentException("topic name '" + topic.substring(0, 20) + "...' has " + topic.length()
                    + " characters, more than " + MAX_TOPIC_LENGTH + "; choose a shorter name");
        }
        if (!LEGAL_TOPIC.matcher(topic).matches()) {
            throw new IllegalArgumentException("topic name '" + topic + "' contains characters other than ASCII letters,"
                    + " digits, '.', '_' and '-'; rename it");
        }
    }

    private static void validateGroup(String group) {
        Objects.requireNonNull(group, "group");
        if (group.isBlank()) {
            throw new IllegalArgumentException("consumer group name is blank; name the group whose offsets these are");
        }
    }

    /** @return topic name -> partition count (highest partition directory + 1), sorted by name */
    private static Map<String, Integer> partitionCounts(Path root) throws IOException {
        Map<String, Integer> counts = new TreeMap<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(root, Files::isDirectory)) {
            for (Path entry : entries) {
                Matcher m = PARTITION_DIR.matcher(entry.getFileName().toString());
                if (!m.matches()) {
                    continue;
                }
                try {
                    validateTopicName(m.group(1));
                } catch (IllegalArgumentException e) {
                    LOG.debug("Ignoring directory {}: not a partition directory", entry);
                    continue;
                }
                counts.merge(m.group(1), Integer.parseInt(m.group(2)) + 1, Math::max);
            }
        }
        return counts;
    }

    private Lock enter() {
        Lock held = lifecycle.readLock();
        held.lock();
        if (closed) {
            held.unlock();
            throw new IllegalStateException("the log in " + dir + " is closed; open it again to use it");
        }
        return held;
    }

    private List<PartitionLog> partitions(String topic) {
        Objects.requireNonNull(topic, "topic");
        List<PartitionLog> partitions = topics.get(topic);
        if (partitions == null) {
            throw new IllegalArgumentException("topic '" + topic + "' does not exist in " + dir
                    + "; create it with createTopic first");
        }
        return partitions;
    }

    private PartitionLog partition(String topic, int partition) {
        List<PartitionLog> partitions = partitions(topic);
        if (partition < 0 || partition >= partitions.size()) {
            throw new IllegalArgumentException("partition " + partition + " of topic '" + topic + "' does not exist; the"
                    + " topic has " + partitions.size() + " partition(s), numbered from 0");
        }
        return partitions.get(partition);
    }

    /** Closes partitions and the offset store; returns the first failure, adding later ones to it. */
    private IOException closeFiles(IOException failure) {
        List<Closeable> files = new ArrayList<>();
        topics.values().forEach(files::addAll);
        files.add(offsets);
        for (Closeable file : files) {
            try {
                file.close();
            } catch (IOException e) {
                failure = add(failure, e);
            }
        }
        return failure;
    }

    private IOException closeLock(IOException failure) {
        try {
            lock.close();
        } catch (IOException e) {
            failure = add(failure, e);
        }
        return failure;
    }

    private static IOException add(IOException first, IOException next) {
        if (first == null) {
            return next;
        }
        first.addSuppressed(next);
        return first;
    }
}
