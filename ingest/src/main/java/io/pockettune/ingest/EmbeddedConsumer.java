package io.pockettune.ingest;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.NoOffsetForPartitionException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.consumer.OffsetCommitCallback;
import org.apache.kafka.clients.consumer.SubscriptionPattern;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.InvalidGroupIdException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.metrics.KafkaMetric;
import org.apache.kafka.common.metrics.Metrics;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;

/**
 * Kafka's {@link Consumer} over an {@link EmbeddedLog}, for what PocketTune needs: subscribe or
 * assign, poll, seek, positions, committed offsets and lookups by time, with Kafka's semantics.
 *
 * <p><b>Groups.</b> There is no broker and hence no group coordination: a consumer that subscribes
 * is assigned every partition of its topics (as the only member of a Kafka group would be), and
 * rebalance listeners are told so on the next poll. Committed offsets are the log's durable group
 * offsets ({@link EmbeddedLog#commitOffsets}); a commit returns once it is on stable storage.
 * Where no committed offset exists, {@code auto.offset.reset} decides (latest by default, as in
 * Kafka). Positions that retention has passed are reset the same way.
 *
 * <p><b>Settings</b> (Kafka names; others are ignored): {@code group.id}, {@code enable.auto.commit}
 * (true; commits positions every {@code auto.commit.interval.ms}, 5000, during poll and at close),
 * {@code auto.offset.reset} (latest, earliest or none), {@code max.poll.records} (500),
 * {@code client.id}, {@code key.deserializer} and {@code value.deserializer} when no instances are
 * passed.
 *
 * <p><b>Not supported</b>, throwing with a message that says why: broker-side regular expressions
 * ({@link SubscriptionPattern}), forced rebalances, client telemetry.
 *
 * <p>Like {@code KafkaConsumer} this class is not thread-safe: use it from one thread, except
 * {@link #wakeup()}, which any thread may call.
 */
public final class EmbeddedConsumer<K, V> implements Consumer<K, V> {

    private static final AtomicLong CLIENT_IDS = new AtomicLong();
    private static final long IDLE_WAIT_NANOS = TimeUnit.MILLISECONDS.toNanos(50);

    private final EmbeddedLog log;
    private final Deserializer<K> keyDeserializer;
    private final Deserializer<V> valueDeserializer;
    private final Time time;
    private final String groupId;
    private final boolean autoCommit;
    private final long autoCommitIntervalMs;
    private final String autoOffsetReset;
    private final int maxPollRecords;
    private final Metrics metrics;
    private final AtomicBoolean wakeup = new AtomicBoolean();
    private final AtomicLong recordsConsumed = new AtomicLong();

    private Set<String> subscription = Set.of();
    private Pattern pattern;
    private ConsumerRebalanceListener listener;
    private final Set<TopicPartition> assignment = new LinkedHashSet<>();
    private final Map<TopicPartition, Long> positions = new HashMap<>();
    private final Set<TopicPartition> paused = new LinkedHashSet<>();
    private int nextPartition;
    private long nextAutoCommitMs;
    private boolean closed;

    /**
     * @param log the log to read; it must outlive this consumer
     * @param configs Kafka consumer settings (see the class comment)
     * @param keyDeserializer the key deserializer, or null to instantiate {@code key.deserializer}
     * @param valueDeserializer the value deserializer, or null to instantiate {@code value.deserializer}
     */
    public EmbeddedConsumer(EmbeddedLog log, Map<String, ?> configs, Deserializer<K> keyDeserializer,
            Deserializer<V> valueDeserializer) {
        this(log, new ClientConfig(configs), keyDeserializer, valueDeserializer, Time.SYSTEM);
    }

    /** Like {@link #EmbeddedConsumer(EmbeddedLog, Map, Deserializer, Deserializer)} with Properties. */
    public EmbeddedConsumer(EmbeddedLog log, Properties properties, Deserializer<K> keyDeserializer,
            Deserializer<V> valueDeserializer) {
        this(log, new ClientConfig(properties), keyDeserializer, valueDeserializer, Time.SYSTEM);
    }

    @SuppressWarnings("unchecked")
    EmbeddedConsumer(EmbeddedLog log, ClientConfig config, Deserializer<K> keyDeserializer,
            Deserializer<V> valueDeserializer, Time time) {
        this.log = Objects.requireNonNull(log, "log");
        this.time = time;
        this.keyDeserializer = keyDeserializer != null ? keyDeserializer
                : (Deserializer<K>) required(config.instance("key.deserializer", Deserializer.class, true), "key.deserializer");
        this.valueDeserializer = valueDeserializer != null ? valueDeserializer
                : (Deserializer<V>) required(config.instance("value.deserializer", Deserializer.class, false),
                        "value.deserializer");
        String group = config.getString("group.id", null);
        this.groupId = group == null || group.isEmpty() ? null : group;
        this.autoCommit = groupId != null && config.getBoolean("enable.auto.commit", true);
        this.autoCommitIntervalMs = config.getLong("auto.commit.interval.ms", 5000);
        this.autoOffsetReset = config.getString("auto.offset.reset", "latest").toLowerCase(java.util.Locale.ROOT);
        if (!List.of("latest", "earliest", "none").contains(autoOffsetReset)) {
            throw new org.apache.kafka.common.config.ConfigException("auto.offset.reset", autoOffsetReset,
                    "must be latest, earliest or none");
        }
        this.maxPollRecords = config.getInt("max.poll.records", 500);
        if (maxPollRecords < 1) {
            throw new org.apache.kafka.common.config.ConfigException("max.poll.records", maxPollRecords, "must be at least 1");
        }
        this.nextAutoCommitMs = time.milliseconds() + autoCommitIntervalMs;
        this.metrics = new Metrics(time);
        String clientId = config.getString("client.id", "embedded-consumer-" + CLIENT_IDS.incrementAndGet());
        metrics.addMetric(metrics.metricName("records-consumed-total", "consumer-fetch-manager-metrics",
                "records returned by poll", Map.of("client-id", clientId)), (c, now) -> recordsConsumed.get());
    }

    private static <T> T required(T value, String key) {
        if (value == null) {
            throw new org.apache.kafka.common.config.ConfigException("no " + key + " was passed and the setting '" + key
                    + "' is missing; pass a deserializer instance or name its class in '" + key + "'");
        }
        return value;
    }

    @Override
    public Set<TopicPartition> assignment() {
        ensureOpen();
        return Collections.unmodifiableSet(new LinkedHashSet<>(assignment));
    }

    @Override
    public Set<String> subscription() {
        ensureOpen();
        return Collections.unmodifiableSet(new LinkedHashSet<>(subscription));
    }

    @Override
    public void subscribe(Collection<String> topics) {
        subscribe(topics, null);
    }

    @Override
    public void subscribe(Collection<String> topics, ConsumerRebalanceListener callback) {
        ensureOpen();
        Objects.requireNonNull(topics, "Topic collection to subscribe to cannot be null");
        if (topics.isEmpty()) {
            unsubscribe();
            return;
        }
        requireGroup("subscribe");
        for (String t : topics) {
            if (t == null || t.isBlank()) {
                throw new IllegalArgumentException("Topic collection to subscribe to cannot contain null or empty topic");
            }
        }
        pattern = null;
        subscription = new LinkedHashSet<>(topics);
        listener = callback;
    }

    @Override
    public void subscribe(Pattern pattern, ConsumerRebalanceListener callback) {
        ensureOpen();
        requireGroup("subscribe");
        this.pattern = Objects.requireNonNull(pattern, "Topic pattern to subscribe to cannot be null");
        this.subscription = new LinkedHashSet<>();
        this.listener = callback;
    }

    @Override
    public void subscribe(Pattern pattern) {
        subscribe(pattern, null);
    }

    /** @throws UnsupportedOperationException always: such patterns are evaluated by a broker */
    @Override
    public void subscribe(SubscriptionPattern pattern, ConsumerRebalanceListener callback) {
        throw new UnsupportedOperationException("SubscriptionPattern is evaluated by a Kafka broker, and the embedded"
                + " log has none; subscribe with a java.util.regex.Pattern instead");
    }

    /** @throws UnsupportedOperationException always: such patterns are evaluated by a broker */
    @Override
    public void subscribe(SubscriptionPattern pattern) {
        subscribe(pattern, null);
    }

    @Override
    public void unsubscribe() {
        ensureOpen();
        if (listener != null && !assignment.isEmpty()) {
            listener.onPartitionsRevoked(new ArrayList<>(assignment));
        }
        subscription = Set.of();
        pattern = null;
        listener = null;
        assignment.clear();
        positions.clear();
        paused.clear();
    }

    @Override
    public void assign(Collection<TopicPartition> partitions) {
        ensureOpen();
        Objects.requireNonNull(partitions, "Topic partition collection to assign to cannot be null");
        if (partitions.isEmpty()) {
            unsubscribe();
            return;
        }
        for (TopicPartition tp : partitions) {
            if (tp == null || tp.topic() == null || tp.topic().isBlank()) {
                throw new IllegalArgumentException("Topic partitions to assign to cannot have null or empty topic");
            }
        }
        subscription = Set.of();
        pattern = null;
        listener = null;
        Set<TopicPartition> next = new LinkedHashSet<>(partitions);
        assignment.retainAll(next);
        positions.keySet().retainAll(next);
        paused.retainAll(next);
        assignment.addAll(next);
    }

    private boolean isSubscribed() {
        return pattern != null || !subscription.isEmpty();
    }

    /** Brings the assignment of a subscription up to date with the topics that exist now. */
    private void refreshSubscription() {
        if (!isSubscribed()) {
            return;
        }
        Set<TopicPartition> wanted = new LinkedHashSet<>();
        for (String topic : log.topics()) {
            if (pattern != null ? pattern.matcher(topic).matches() : subscription.contains(topic)) {
                for (int p = 0, n = log.partitionCount(topic); p < n; p++) {
                    wanted.add(new TopicPartition(topic, p));
                }
            }
        }
        if (wanted.equals(assignment)) {
            return;
        }
        List<TopicPartition> revoked = new ArrayList<>(assignment);
        revoked.removeAll(wanted);
        List<TopicPartition> added = new ArrayList<>(wanted);
        added.removeAll(assignment);
        if (listener != null && !revoked.isEmpty()) {
            listener.onPartitionsRevoked(revoked);
        }
        assignment.clear();
        assignment.addAll(wanted);
        positions.keySet().retainAll(wanted);
        paused.retainAll(wanted);
        if (listener != null) {
            listener.onPartitionsAssigned(added);
        }
    }

    @Override
    public ConsumerRecords<K, V> poll(Duration timeout) {
        ensureOpen();
        long timeoutMs = Objects.requireNonNull(timeout, "timeout").toMillis();
        if (timeoutMs < 0) {
            throw new IllegalArgumentException("Timeout must not be negative");
        }
        if (!isSubscribed() && assignment.isEmpty()) {
            throw new IllegalStateException("Consumer is not subscribed to any topics or assigned any partitions");
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        do {
            checkWakeup();
            maybeAutoCommit();
            refreshSubscription();
            long version = log.appendVersion();
            Map<TopicPartition, List<ConsumerRecord<K, V>>> fetched = fetch();
            if (!fetched.isEmpty()) {
                Map<TopicPartition, OffsetAndMetadata> next = new HashMap<>();
                fetched.keySet().forEach(tp -> next.put(tp, new OffsetAndMetadata(positions.get(tp))));
                return new ConsumerRecords<>(fetched, next);
            }
            // Sleep until something is published (or a wakeup), in slices so wakeup() stays prompt.
            long left = deadline - System.nanoTime();
            if (left > 0) {
                try {
                    log.awaitAppend(version, Math.min(left, IDLE_WAIT_NANOS));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new org.apache.kafka.common.errors.InterruptException(e);
                }
            }
        } while (System.nanoTime() < deadline);
        return ConsumerRecords.empty();
    }

    private Map<TopicPartition, List<ConsumerRecord<K, V>>> fetch() {
        Map<TopicPartition, List<ConsumerRecord<K, V>>> out = new LinkedHashMap<>();
        List<TopicPartition> order = new ArrayList<>(assignment);
        int left = maxPollRecords;
        for (int i = 0; i < order.size() && left > 0; i++) {
            TopicPartition tp = order.get((nextPartition + i) % order.size());
            if (paused.contains(tp)) {
                continue;
            }
            long position = resolvePosition(tp);
            List<LogEntry> entries;
            long end;
            try {
                end = log.endOffset(tp.topic(), tp.partition());
                if (position < log.startOffset(tp.topic(), tp.partition())
                        || position > log.endOffset(tp.topic(), tp.partition())) {
                    // Out of range (deleted by retention, or a seek past the end): Kafka resets it too.
                    position = reset(tp);
                }
                entries = log.read(tp.topic(), tp.partition(), position, left);
            } catch (IOException e) {
                throw new KafkaException("could not read " + tp + " at offset " + position + ": " + e.getMessage(), e);
            }
            if (entries.isEmpty()) {
                if (position < end) {
                    positions.put(tp, end); // only erased records (holes) lay before the end
                }
                continue;
            }
            List<ConsumerRecord<K, V>> records = new ArrayList<>(entries.size());
            for (LogEntry e : entries) {
                RecordHeaders headers = new RecordHeaders();
                K key = keyDeserializer.deserialize(tp.topic(), headers, e.key());
                V value = valueDeserializer.deserialize(tp.topic(), headers, e.value());
                records.add(new ConsumerRecord<>(tp.topic(), tp.partition(), e.offset(), e.timestamp(),
                        TimestampType.CREATE_TIME, e.key() == null ? -1 : e.key().length, e.value().length, key, value,
                        headers, Optional.empty()));
            }
            positions.put(tp, entries.get(entries.size() - 1).offset() + 1);
            out.put(tp, records);
            left -= records.size();
        }
        if (!order.isEmpty()) {
            nextPartition = (nextPartition + 1) % order.size();
        }
        recordsConsumed.addAndGet(maxPollRecords - left);
        return out;
    }

    /** @return the position of an assigned partition, from the committed offset or the reset policy */
    private long resolvePosition(TopicPartition tp) {
        Long position = positions.get(tp);
        if (position != null) {
            return position;
        }
        if (groupId != null) {
            OptionalLong committed = log.committed(groupId, tp);
            if (committed.isPresent()) {
                positions.put(tp, committed.getAsLong());
                return committed.getAsLong();
            }
        }
        return reset(tp);
    }

    /** Applies auto.offset.reset to a partition without a valid position. */
    private long reset(TopicPartition tp) {
        long offset = switch (autoOffsetReset) {
            case "earliest" -> log.startOffset(tp.topic(), tp.partition());
            case "latest" -> log.endOffset(tp.topic(), tp.partition());
            default -> throw new NoOffsetForPartitionException(tp);
        };
        positions.put(tp, offset);
        return offset;
    }

    private void maybeAutoCommit() {
        if (autoCommit && time.milliseconds() >= nextAutoCommitMs) {
            commitPositions();
            nextAutoCommitMs = time.milliseconds() + autoCommitIntervalMs;
        }
    }

    private void commitPositions() {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        positions.forEach((tp, offset) -> {
            if (assignment.contains(tp)) {
                offsets.put(tp, new OffsetAndMetadata(offset));
            }
        });
        if (!offsets.isEmpty()) {
            commitSync(offsets);
        }
    }

    private void checkWakeup() {
        if (wakeup.getAndSet(false)) {
            throw new WakeupException();
        }
    }

    @Override
    public void commitSync() {
        ensureOpen();
        requireGroup("commit offsets");
        commitPositions();
    }

    @Override
    public void commitSync(Duration timeout) {
        commitSync();
    }

    /**
     * Durably commits the given next offsets for this consumer's group. Offset metadata strings
     * are not stored.
     */
    @Override
    public void commitSync(Map<TopicPartition, OffsetAndMetadata> offsets) {
        ensureOpen();
        requireGroup("commit offsets");
        Map<TopicPartition, Long> next = new LinkedHashMap<>();
        offsets.forEach((tp, om) -> next.put(tp, om.offset()));
        try {
            log.commitOffsets(groupId, next);
        } catch (IOException e) {
            throw new KafkaException("could not commit offsets for group '" + groupId + "': " + e.getMessage(), e);
        }
    }

    @Override
    public void commitSync(Map<TopicPartition, OffsetAndMetadata> offsets, Duration timeout) {
        commitSync(offsets);
    }

    /** Commits at once (a local fsync) and then calls nothing; see {@link #commitAsync(OffsetCommitCallback)}. */
    @Override
    public void commitAsync() {
        commitAsync(null);
    }

    /** Commits the current positions before returning and then calls {@code callback}. */
    @Override
    public void commitAsync(OffsetCommitCallback callback) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        positions.forEach((tp, offset) -> {
            if (assignment.contains(tp)) {
                offsets.put(tp, new OffsetAndMetadata(offset));
            }
        });
        commitAsync(offsets, callback);
    }

    @Override
    public void commitAsync(Map<TopicPartition, OffsetAndMetadata> offsets, OffsetCommitCallback callback) {
        Exception error = null;
        try {
            if (!offsets.isEmpty()) {
                commitSync(offsets);
            } else {
                ensureOpen();
                requireGroup("commit offsets");
            }
        } catch (KafkaException | IllegalArgumentException e) {
            if (callback == null) {
                throw e;
            }
            error = e;
        }
        if (callback != null) {
            callback.onComplete(offsets, error);
        }
    }

    @Override
    public void seek(TopicPartition partition, long offset) {
        ensureOpen();
        if (offset < 0) {
            throw new IllegalArgumentException("seek offset must not be a negative number");
        }
        requireAssigned(partition);
        positions.put(partition, offset);
    }

    @Override
    public void seek(TopicPartition partition, OffsetAndMetadata offsetAndMetadata) {
        seek(partition, offsetAndMetadata.offset());
    }

    @Override
    public void seekToBeginning(Collection<TopicPartition> partitions) {
        ensureOpen();
        for (TopicPartition tp : partitions.isEmpty() ? new ArrayList<>(assignment) : partitions) {
            requireAssigned(tp);
            positions.put(tp, log.startOffset(tp.topic(), tp.partition()));
        }
    }

    @Override
    public void seekToEnd(Collection<TopicPartition> partitions) {
        ensureOpen();
        for (TopicPartition tp : partitions.isEmpty() ? new ArrayList<>(assignment) : partitions) {
            requireAssigned(tp);
            positions.put(tp, log.endOffset(tp.topic(), tp.partition()));
        }
    }

    @Override
    public long position(TopicPartition partition) {
        ensureOpen();
        refreshSubscription();
        requireAssigned(partition);
        return resolvePosition(partition);
    }

    @Override
    public long position(TopicPartition partition, Duration timeout) {
        return position(partition);
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> committed(Set<TopicPartition> partitions) {
        ensureOpen();
        requireGroup("read committed offsets");
        Map<TopicPartition, OffsetAndMetadata> out = new HashMap<>();
        for (TopicPartition tp : partitions) {
            OptionalLong c = log.committed(groupId, tp);
            out.put(tp, c.isPresent() ? new OffsetAndMetadata(c.getAsLong()) : null);
        }
        return out;
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> committed(Set<TopicPartition> partitions, Duration timeout) {
        return committed(partitions);
    }

    @Override
    public Map<MetricName, ? extends Metric> metrics() {
        return Collections.unmodifiableMap(metrics.metrics());
    }

    @Override
    public List<PartitionInfo> partitionsFor(String topic) {
        ensureOpen();
        if (!log.topics().contains(topic)) {
            return List.of();
        }
        return infos(topic);
    }

    @Override
    public List<PartitionInfo> partitionsFor(String topic, Duration timeout) {
        return partitionsFor(topic);
    }

    private List<PartitionInfo> infos(String topic) {
        List<PartitionInfo> infos = new ArrayList<>();
        org.apache.kafka.common.Node node = new org.apache.kafka.common.Node(0, "embedded", -1);
        org.apache.kafka.common.Node[] replicas = {node};
        for (int p = 0, n = log.partitionCount(topic); p < n; p++) {
            infos.add(new PartitionInfo(topic, p, node, replicas, replicas));
        }
        return infos;
    }

    @Override
    public Map<String, List<PartitionInfo>> listTopics() {
        ensureOpen();
        Map<String, List<PartitionInfo>> out = new TreeMap<>();
        for (String topic : log.topics()) {
            out.put(topic, infos(topic));
        }
        return out;
    }

    @Override
    public Map<String, List<PartitionInfo>> listTopics(Duration timeout) {
        return listTopics();
    }

    @Override
    public Set<TopicPartition> paused() {
        return Collections.unmodifiableSet(new LinkedHashSet<>(paused));
    }

    @Override
    public void pause(Collection<TopicPartition> partitions) {
        ensureOpen();
        for (TopicPartition tp : partitions) {
            requireAssigned(tp);
            paused.add(tp);
        }
    }

    @Override
    public void resume(Collection<TopicPartition> partitions) {
        ensureOpen();
        for (TopicPartition tp : partitions) {
            requireAssigned(tp);
            paused.remove(tp);
        }
    }

    /**
     * @return for each partition, the first record at or after the timestamp (offset and that
     *     record's timestamp), or null if there is none, as in Kafka
     */
    @Override
    public Map<TopicPartition, OffsetAndTimestamp> offsetsForTimes(Map<TopicPartition, Long> timestampsToSearch) {
        ensureOpen();
        Map<TopicPartition, OffsetAndTimestamp> out = new HashMap<>();
        for (Map.Entry<TopicPartition, Long> e : timestampsToSearch.entrySet()) {
            TopicPartition tp = e.getKey();
            if (e.getValue() < 0) {
                throw new IllegalArgumentException("The target time for partition " + tp + " is " + e.getValue()
                        + ". The target time cannot be negative.");
            }
            try {
                Optional<LogEntry> found = log.findByTimestamp(tp.topic(), tp.partition(), e.getValue());
                out.put(tp, found.map(entry -> new OffsetAndTimestamp(entry.offset(), entry.timestamp())).orElse(null));
            } catch (IOException ex) {
                throw new KafkaException("could not search " + tp + " by time: " + ex.getMessage(), ex);
            }
        }
        return out;
    }

    @Override
    public Map<TopicPartition, OffsetAndTimestamp> offsetsForTimes(Map<TopicPartition, Long> timestampsToSearch,
            Duration timeout) {
        return offsetsForTimes(timestampsToSearch);
    }

    @Override
    public Map<TopicPartition, Long> beginningOffsets(Collection<TopicPartition> partitions) {
        ensureOpen();
        Map<TopicPartition, Long> out = new HashMap<>();
        partitions.forEach(tp -> out.put(tp, log.startOffset(tp.topic(), tp.partition())));
        return out;
    }

    @Override
    public Map<TopicPartition, Long> beginningOffsets(Collection<TopicPartition> partitions, Duration timeout) {
        return beginningOffsets(partitions);
    }

    @Override
    public Map<TopicPartition, Long> endOffsets(Collection<TopicPartition> partitions) {
        ensureOpen();
        Map<TopicPartition, Long> out = new HashMap<>();
        partitions.forEach(tp -> out.put(tp, log.endOffset(tp.topic(), tp.partition())));
        return out;
    }

    @Override
    public Map<TopicPartition, Long> endOffsets(Collection<TopicPartition> partitions, Duration timeout) {
        return endOffsets(partitions);
    }

    @Override
    public OptionalLong currentLag(TopicPartition partition) {
        ensureOpen();
        requireAssigned(partition);
        Long position = positions.get(partition);
        return position == null ? OptionalLong.empty()
                : OptionalLong.of(log.endOffset(partition.topic(), partition.partition()) - position);
    }

    /**
     * @return this consumer's group with Kafka's "unknown" generation and member id, since there is
     *     no coordinator (the constructor is meant for client implementations like this one)
     */
    @SuppressWarnings("removal")
    @Override
    public ConsumerGroupMetadata groupMetadata() {
        ensureOpen();
        requireGroup("read group metadata");
        return new ConsumerGroupMetadata(groupId, -1, "", Optional.empty());
    }

    /** @throws UnsupportedOperationException always: with one member per group there is nothing to rebalance */
    @Override
    public void enforceRebalance() {
        throw new UnsupportedOperationException("enforceRebalance needs a Kafka group coordinator; an embedded consumer"
                + " is the only member of its group and always owns every partition of its subscription");
    }

    /** @throws UnsupportedOperationException always, see {@link #enforceRebalance()} */
    @Override
    public void enforceRebalance(String reason) {
        enforceRebalance();
    }

    /** @throws UnsupportedOperationException always: client telemetry is pushed to a broker */
    @Override
    public void registerMetricForSubscription(KafkaMetric metric) {
        throw new UnsupportedOperationException("client telemetry is pushed to a Kafka broker; the embedded log has none");
    }

    /** @throws UnsupportedOperationException always: client telemetry is pushed to a broker */
    @Override
    public void unregisterMetricFromSubscription(KafkaMetric metric) {
        registerMetricForSubscription(metric);
    }

    /** @throws UnsupportedOperationException always: client instance ids are assigned by a broker */
    @Override
    public Uuid clientInstanceId(Duration timeout) {
        throw new UnsupportedOperationException("client instance ids are assigned by a Kafka broker; the embedded log"
                + " has none");
    }

    /** Commits positions if auto commit is on, then releases the deserializers. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        try {
            if (autoCommit) {
                commitPositions();
            }
            if (listener != null && !assignment.isEmpty()) {
                listener.onPartitionsRevoked(new ArrayList<>(assignment));
            }
        } finally {
            closed = true;
            Utils.closeQuietly(keyDeserializer, "key deserializer");
            Utils.closeQuietly(valueDeserializer, "value deserializer");
            metrics.close();
        }
    }

    /** @deprecated as in {@link Consumer#close(Duration)}; use {@link #close(CloseOptions)} */
    @Deprecated
    @Override
    public void close(Duration timeout) {
        close();
    }

    @Override
    public void close(CloseOptions option) {
        close();
    }

    @Override
    public void wakeup() {
        wakeup.set(true);
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("This consumer has already been closed.");
        }
    }

    private void requireGroup(String what) {
        if (groupId == null) {
            throw new InvalidGroupIdException("To use the group management or offset commit APIs, you must provide a"
                    + " valid group.id in the consumer configuration (needed to " + what + ")");
        }
    }

    private void requireAssigned(TopicPartition tp) {
        if (!assignment.contains(tp)) {
            throw new IllegalStateException("No current assignment for partition " + tp);
        }
    }
}
