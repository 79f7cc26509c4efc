package io.pockettune.ingest;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.InterruptException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.metrics.KafkaMetric;
import org.apache.kafka.common.metrics.Metrics;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Kafka's {@link Producer} over an {@link EmbeddedLog}: code written against {@code KafkaProducer}
 * runs unchanged, with acknowledgements that mean "durable on this device".
 *
 * <p><b>Design.</b> As in {@code KafkaProducer}, {@link #send} serializes and partitions the record
 * on the caller's thread, appends it to an in-memory accumulator and returns a future at once. One
 * sender thread drains the accumulator whenever a partition has {@code batch.size} bytes waiting,
 * the oldest record has waited {@code linger.ms}, or {@link #flush}/{@link #close} asks. For every
 * drained partition it writes the records as one log batch (or a few, each at most
 * {@value #MAX_APPEND_BYTES} bytes) and only then waits for durability once per partition, which
 * under the default flush policy is one fsync for everything drained. While that fsync runs, new
 * sends pile up and form the next group: the more producers send at once, the more records share
 * an fsync (group commit). Futures complete and callbacks run on the sender thread, in offset
 * order per partition, only after the records are durable per the log's flush policy; a record
 * whose append failed completes exceptionally and is not in the log.
 *
 * <p><b>Settings</b> (Kafka names; others such as {@code bootstrap.servers} or {@code acks} are
 * ignored): {@code linger.ms} (default 5), {@code batch.size} (16384), {@code buffer.memory}
 * (33554432: bytes of records waiting; {@code send} blocks when it is full),
 * {@code max.block.ms} (60000: how long {@code send} may block before its future fails with a
 * {@link TimeoutException}), {@code client.id}, {@code key.serializer} and
 * {@code value.serializer} when no serializer instances are passed.
 *
 * <p><b>Partitioning</b> is Kafka's default, so a key lands on the same partition number on a
 * broker and here: murmur2 of the serialized key modulo the partition count; records without a key
 * stick to one random partition until {@code batch.size} bytes went there, then move on.
 *
 * <p><b>Not supported:</b> transactions, client telemetry and record headers (the log format has no
 * header field) throw with a message that says so. Thread-safe: share one instance between threads.
 */
public final class EmbeddedProducer<K, V> implements Producer<K, V> {

    /** The largest single log append the sender makes; bigger drains are split. */
    static final int MAX_APPEND_BYTES = 1 << 20;
    /** Bytes a record costs in the accumulator besides its key and value. */
    private static final int RECORD_OVERHEAD = 24;
    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedProducer.class);
    private static final Node LOCAL_NODE = new Node(0, "embedded", -1);
    private static final AtomicLong CLIENT_IDS = new AtomicLong();

    private final EmbeddedLog log;
    private final Serializer<K> keySerializer;
    private final Serializer<V> valueSerializer;
    private final Time time;
    private final String clientId;
    private final long lingerMs;
    private final int batchSize;
    private final long bufferMemory;
    private final long maxBlockMs;
    private final Metrics metrics;
    private final Thread sender;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition work = lock.newCondition();
    private final Condition progress = lock.newCondition();
    /** Guarded by lock. */
    private final Map<TopicPartition, ArrayDeque<Pending>> queues = new LinkedHashMap<>();
    private final Map<String, int[]> sticky = new HashMap<>();
    private final Map<String, Integer> partitionCounts = new java.util.concurrent.ConcurrentHashMap<>();
    private long bufferedBytes;
    private long queuedBytes;
    private long oldestQueuedNanos = Long.MAX_VALUE;
    private long sequence;
    private long completedSequence;
    private long flushTarget;
    private boolean closing;
    private boolean forceClose;

    private final AtomicLong recordsSent = new AtomicLong();
    private final AtomicLong recordErrors = new AtomicLong();
    private final AtomicLong logAppends = new AtomicLong();
    private final AtomicLong durabilityWaits = new AtomicLong();

    private record Pending(TopicPartition tp, LogRecord record, long sequence, int size, int keySize, int valueSize,
            CompletableFuture<RecordMetadata> future, Callback callback) {
    }

    /**
     * @param log the log to append to; it must outlive this producer
     * @param configs Kafka producer settings (see the class comment)
     * @param keySerializer the key serializer, or null to instantiate {@code key.serializer}
     * @param valueSerializer the value serializer, or null to instantiate {@code value.serializer}
     */
    public EmbeddedProducer(EmbeddedLog log, Map<String, ?> configs, Serializer<K> keySerializer,
            Serializer<V> valueSerializer) {
        this(log, new ClientConfig(configs), keySerializer, valueSerializer, Time.SYSTEM);
    }

    /** Like {@link #EmbeddedProducer(EmbeddedLog, Map, Serializer, Serializer)} with Properties. */
    public EmbeddedProducer(EmbeddedLog log, Properties properties, Serializer<K> keySerializer,
            Serializer<V> valueSerializer) {
        this(log, new ClientConfig(properties), keySerializer, valueSerializer, Time.SYSTEM);
    }

    @SuppressWarnings("unchecked")
    EmbeddedProducer(EmbeddedLog log, ClientConfig config, Serializer<K> keySerializer, Serializer<V> valueSerializer,
            Time time) {
        this.log = Objects.requireNonNull(log, "log");
        this.time = time;
        this.keySerializer = keySerializer != null ? keySerializer
                : (Serializer<K>) required(config.instance("key.serializer", Serializer.class, true), "key.serializer");
        this.valueSerializer = valueSerializer != null ? valueSerializer
                : (Serializer<V>) required(config.instance("value.serializer", Serializer.class, false), "value.serializer");
        this.clientId = config.getString("client.id", "embedded-producer-" + CLIENT_IDS.incrementAndGet());
        this.lingerMs = nonNegative("linger.ms", config.getLong("linger.ms", 5));
        this.batchSize = (int) nonNegative("batch.size", config.getInt("batch.size", 16384));
        this.bufferMemory = nonNegative("buffer.memory", config.getLong("buffer.memory", 32L * 1024 * 1024));
        this.maxBlockMs = nonNegative("max.block.ms", config.getLong("max.block.ms", 60_000));
        this.metrics = new Metrics(time);
        registerMetrics();
        this.sender = new Thread(this::runSender, "pockettune-producer-sender " + clientId);
        sender.setDaemon(true);
        sender.start();
    }

    private static <T> T required(T value, String key) {
        if (value == null) {
            throw new org.apache.kafka.common.config.ConfigException("no " + key + " was passed and the setting '" + key
                    + "' is missing; pass a serializer instance or name its class in '" + key + "'");
        }
        return value;
    }

    private static long nonNegative(String key, long value) {
        if (value < 0) {
            throw new org.apache.kafka.common.config.ConfigException(key, value, "must not be negative");
        }
        return value;
    }

    @Override
    public Future<RecordMetadata> send(ProducerRecord<K, V> record) {
        return send(record, null);
    }

    /**
     * Serializes, partitions and queues {@code record}. Like {@code KafkaProducer}: a full buffer
     * blocks up to {@code max.block.ms}; errors the broker would report (unknown topic, record too
     * large, buffer timeout) fail the returned future and call {@code callback}; serializer errors
     * and use after close throw.
     */
    @Override
    public Future<RecordMetadata> send(ProducerRecord<K, V> record, Callback callback) {
        Objects.requireNonNull(record, "record");
        lock.lock();
        try {
            if (closing) {
                throw new IllegalStateException("Cannot perform operation after producer has been closed");
            }
        } finally {
            lock.unlock();
        }
        org.apache.kafka.common.header.Headers headers = record.headers();
        byte[] key = keySerializer.serialize(record.topic(), headers, record.key());
        byte[] value = valueSerializer.serialize(record.topic(), headers, record.value());
        if (headers.iterator().hasNext()) {
            throw new IllegalArgumentException("the record for topic '" + record.topic() + "' has headers, which the"
                    + " embedded log does not store; put that information into the key or value");
        }
        if (value == null) {
            // Kafka would store a tombstone; the log has no compaction, so a null value has no meaning here.
            throw new IllegalArgumentException("the record for topic '" + record.topic() + "' has a null value,"
                    + " which the embedded log cannot store (it has no compaction, so tombstones mean nothing); send a value");
        }
        long timestamp = record.timestamp() != null ? record.timestamp() : time.milliseconds();
        int keySize = key == null ? -1 : key.length;
        CompletableFuture<RecordMetadata> future = new CompletableFuture<>();
        TopicPartition tp;
        int size = RECORD_OVERHEAD + Math.max(keySize, 0) + value.length;
        try {
            tp = partition(record, key, size);
            if (size > bufferMemory || size > MAX_APPEND_BYTES) {
                throw new RecordTooLargeException("the record for " + tp + " takes " + size + " bytes, more than "
                        + "buffer.memory (" + bufferMemory + ") or the largest append (" + MAX_APPEND_BYTES
                        + "); send smaller records or raise buffer.memory");
            }
        } catch (KafkaException e) {
            return fail(future, callback, e, record.topic(), record.partition() == null ? -1 : record.partition());
        }
        LogRecord logRecord = new LogRecord(timestamp, key, value);
        lock.lock();
        try {
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(maxBlockMs);
            while (bufferedBytes + size > bufferMemory && !closing) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return fail(future, callback, new TimeoutException("could not allocate " + size + " bytes within "
                            + "max.block.ms (" + maxBlockMs + " ms): " + bufferedBytes + " of buffer.memory ("
                            + bufferMemory + ") bytes hold records not yet durable; slow down or raise buffer.memory"),
                            tp.topic(), tp.partition());
                }
                progress.awaitNanos(left);
            }
            if (closing) {
                throw new IllegalStateException("Cannot perform operation after producer has been closed");
            }
            bufferedBytes += size;
            queuedBytes += size;
            ArrayDeque<Pending> queue = queues.computeIfAbsent(tp, t -> new ArrayDeque<>());
            if (queuedBytes == size) {
                oldestQueuedNanos = System.nanoTime();
            }
            queue.add(new Pending(tp, logRecord, ++sequence, size, keySize, value.length, future, callback));
            if (queuedBytes == size || queuedBytes >= batchSize || lingerMs == 0) {
                work.signal();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptException(e);
        } finally {
            lock.unlock();
        }
        return future;
    }

    private CompletableFuture<RecordMetadata> fail(CompletableFuture<RecordMetadata> future, Callback callback,
            Exception e, String topic, int partition) {
        recordErrors.incrementAndGet();
        future.completeExceptionally(e);
        if (callback != null) {
            callback.onCompletion(new RecordMetadata(new TopicPartition(topic, partition), -1, -1, -1, -1, -1), e);
        }
        return future;
    }

    /** Kafka's default partitioning (see the class comment). Caller does not hold the lock. */
    private TopicPartition partition(ProducerRecord<K, V> record, byte[] key, int size) {
        Integer known = partitionCounts.get(record.topic());
        int count;
        if (known != null) {
            count = known;
        } else {
            try {
                count = log.partitionCount(record.topic());
            } catch (IllegalArgumentException e) {
                throw new UnknownTopicOrPartitionException(e.getMessage());
            }
            // Partition counts never change and topics are never deleted, so a count can be cached.
            partitionCounts.put(record.topic(), count);
        }
        Integer explicit = record.partition();
        if (explicit != null) {
            if (explicit < 0 || explicit >= count) {
                throw new UnknownTopicOrPartitionException("partition " + explicit + " of topic '" + record.topic()
                        + "' does not exist; the topic has " + count + " partition(s), numbered from 0");
            }
            return new TopicPartition(record.topic(), explicit);
        }
        if (key != null) {
            return new TopicPartition(record.topic(), KeyPartitioner.partitionOf(key, count));
        }
        synchronized (sticky) {
            int[] s = sticky.get(record.topic());
            if (s == null || s[1] >= batchSize || s[0] >= count) {
                int next = ThreadLocalRandom.current().nextInt(count);
                if (s != null && count > 1 && next == s[0]) {
                    next = (next + 1) % count;
                }
                s = new int[] {next, 0};
                sticky.put(record.topic(), s);
            }
            s[1] += size;
            return new TopicPartition(record.topic(), s[0]);
        }
    }

    /** The sender thread: drain, write, wait for durability, complete (see the class comment). */
    private void runSender() {
        while (true) {
            Map<TopicPartition, List<Pending>> drained;
            lock.lock();
            try {
                while (!closing && !ready()) {
                    long wait = queuedBytes == 0 ? Long.MAX_VALUE
                            : oldestQueuedNanos + TimeUnit.MILLISECONDS.toNanos(lingerMs) - System.nanoTime();
                    if (wait > 0) {
                        work.awaitNanos(Math.min(wait, TimeUnit.SECONDS.toNanos(1)));
                    }
                }
                if (queuedBytes == 0 && closing) {
                    return;
                }
                if (forceClose) {
                    abortQueued();
                    return;
                }
                drained = new LinkedHashMap<>();
                for (Map.Entry<TopicPartition, ArrayDeque<Pending>> e : queues.entrySet()) {
                    if (!e.getValue().isEmpty()) {
                        drained.put(e.getKey(), new ArrayList<>(e.getValue()));
                        e.getValue().clear();
                    }
                }
                queuedBytes = 0;
                oldestQueuedNanos = Long.MAX_VALUE;
            } catch (InterruptedException e) {
                lock.lock();
                try {
                    abortQueued();
                } finally {
                    lock.unlock();
                }
                return;
            } finally {
                lock.unlock();
            }
            writeAndComplete(drained);
        }
    }

    /** Caller holds the lock. */
    private boolean ready() {
        if (queuedBytes == 0) {
            return false;
        }
        return queuedBytes >= batchSize || flushTarget > completedSequence
                || System.nanoTime() - oldestQueuedNanos >= TimeUnit.MILLISECONDS.toNanos(lingerMs);
    }

    private void writeAndComplete(Map<TopicPartition, List<Pending>> drained) {
        Map<TopicPartition, List<long[]>> written = new LinkedHashMap<>();
        Map<TopicPartition, List<List<Pending>>> chunksByTp = new LinkedHashMap<>();
        Map<TopicPartition, Exception> failed = new HashMap<>();
        for (Map.Entry<TopicPartition, List<Pending>> e : drained.entrySet()) {
            TopicPartition tp = e.getKey();
            List<List<Pending>> chunks = chunks(e.getValue());
            chunksByTp.put(tp, chunks);
            List<long[]> bases = new ArrayList<>();
            for (List<Pending> chunk : chunks) {
                try {
                    List<LogRecord> records = new ArrayList<>(chunk.size());
                    chunk.forEach(p -> records.add(p.record()));
                    bases.add(new long[] {log.write(tp.topic(), tp.partition(), records)});
                    logAppends.incrementAndGet();
                } catch (IOException | RuntimeException ex) {
                    bases.add(null);
                    failed.putIfAbsent(tp, ex);
                }
            }
            written.put(tp, bases);
        }
        for (Map.Entry<TopicPartition, List<List<Pending>>> e : chunksByTp.entrySet()) {
            TopicPartition tp = e.getKey();
            List<List<Pending>> chunks = e.getValue();
            List<long[]> bases = written.get(tp);
            long end = -1;
            for (int i = 0; i < chunks.size(); i++) {
                if (bases.get(i) != null) {
                    end = bases.get(i)[0] + chunks.get(i).size();
                }
            }
            Exception durability = null;
            if (end >= 0) {
                try {
                    durabilityWaits.incrementAndGet();
                    log.awaitDurable(tp.topic(), tp.partition(), end);
                } catch (IOException | RuntimeException ex) {
                    durability = ex;
                }
            }
            for (int i = 0; i < chunks.size(); i++) {
                long[] base = bases.get(i);
                Exception error = durability != null ? durability : base == null ? failed.get(tp) : null;
                List<Pending> chunk = chunks.get(i);
                for (int j = 0; j < chunk.size(); j++) {
                    complete(chunk.get(j), error == null ? base[0] : -1, j, error);
                }
            }
        }
        lock.lock();
        try {
            long released = 0;
            long maxSequence = completedSequence;
            for (List<Pending> list : drained.values()) {
                for (Pending p : list) {
                    released += p.size();
                    maxSequence = Math.max(maxSequence, p.sequence());
                }
            }
            bufferedBytes -= released;
            completedSequence = maxSequence;
            progress.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private static List<List<Pending>> chunks(List<Pending> pending) {
        List<List<Pending>> chunks = new ArrayList<>();
        List<Pending> current = new ArrayList<>();
        long bytes = 0;
        for (Pending p : pending) {
            if (!current.isEmpty() && bytes + p.size() > MAX_APPEND_BYTES) {
                chunks.add(current);
                current = new ArrayList<>();
                bytes = 0;
            }
            current.add(p);
            bytes += p.size();
        }
        if (!current.isEmpty()) {
            chunks.add(current);
        }
        return chunks;
    }

    private void complete(Pending p, long base, int index, Exception error) {
        RecordMetadata metadata = new RecordMetadata(p.tp(), base, error == null ? index : -1, p.record().timestamp(),
                p.keySize(), p.valueSize());
        Exception reported = error == null || error instanceof KafkaException ? error
                : new KafkaException("the record for " + p.tp() + " was not appended: " + error.getMessage(), error);
        if (reported == null) {
            recordsSent.incrementAndGet();
            p.future().complete(metadata);
        } else {
            recordErrors.incrementAndGet();
            p.future().completeExceptionally(reported);
        }
        if (p.callback() != null) {
            try {
                p.callback().onCompletion(metadata, reported);
            } catch (RuntimeException e) {
                LOG.error("A send callback for {} threw; the producer goes on", p.tp(), e);
            }
        }
    }

    /** Fails everything still queued; caller holds the lock. */
    private void abortQueued() {
        KafkaException e = new KafkaException("the producer was closed before the record was written;"
                + " close with a longer timeout or call flush() first to have it written");
        long released = 0;
        for (ArrayDeque<Pending> queue : queues.values()) {
            for (Pending p : queue) {
                complete(p, -1, -1, e);
                released += p.size();
                completedSequence = Math.max(completedSequence, p.sequence());
            }
            queue.clear();
        }
        bufferedBytes -= released;
        queuedBytes = 0;
        progress.signalAll();
    }

    /**
     * Sends everything queued now and returns when all records sent before this call are
     * completed: acknowledged durable or failed.
     */
    @Override
    public void flush() {
        lock.lock();
        try {
            long target = sequence;
            flushTarget = Math.max(flushTarget, target);
            work.signal();
            while (completedSequence < target) {
                if (!sender.isAlive()) {
                    return;
                }
                progress.await(100, TimeUnit.MILLISECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptException(e);
        } finally {
            lock.unlock();
        }
    }

    /** @return the partitions of {@code topic}, each led by one local pseudo node */
    @Override
    public List<PartitionInfo> partitionsFor(String topic) {
        int count;
        try {
            count = log.partitionCount(topic);
        } catch (IllegalArgumentException e) {
            throw new UnknownTopicOrPartitionException(e.getMessage());
        }
        List<PartitionInfo> infos = new ArrayList<>(count);
        Node[] replicas = {LOCAL_NODE};
        for (int p = 0; p < count; p++) {
            infos.add(new PartitionInfo(topic, p, LOCAL_NODE, replicas, replicas));
        }
        return infos;
    }

    /**
     * @return the producer metrics (group {@code producer-metrics}, tag {@code client-id}):
     *     record-send-total, record-error-total, log-append-total (log batches written),
     *     durability-wait-total (partition syncs awaited) and buffer-available-bytes
     */
    @Override
    public Map<MetricName, ? extends Metric> metrics() {
        return java.util.Collections.unmodifiableMap(metrics.metrics());
    }

    private void registerMetrics() {
        Map<String, String> tags = Map.of("client-id", clientId);
        metrics.addMetric(metrics.metricName("record-send-total", "producer-metrics",
                "records acknowledged durable", tags), (c, now) -> recordsSent.get());
        metrics.addMetric(metrics.metricName("record-error-total", "producer-metrics",
                "records that failed", tags), (c, now) -> recordErrors.get());
        metrics.addMetric(metrics.metricName("log-append-total", "producer-metrics",
                "log batches written", tags), (c, now) -> logAppends.get());
        metrics.addMetric(metrics.metricName("durability-wait-total", "producer-metrics",
                "per-partition waits for durability, at most one fsync each", tags), (c, now) -> durabilityWaits.get());
        metrics.addMetric(metrics.metricName("buffer-available-bytes", "producer-metrics",
                "buffer.memory not held by records in flight", tags), (c, now) -> {
                    lock.lock();
                    try {
                        return bufferMemory - bufferedBytes;
                    } finally {
                        lock.unlock();
                    }
                });
    }

    /** Same as {@link #close(Duration)} with an unbounded timeout: everything queued is written first. */
    @Override
    public void close() {
        close(Duration.ofMillis(Long.MAX_VALUE));
    }

    /**
     * Writes what is queued and waits up to {@code timeout} for it to become durable; records still
     * queued after that fail. Idempotent.
     */
    @Override
    public void close(Duration timeout) {
        long ms = Objects.requireNonNull(timeout, "timeout").toMillis();
        if (ms < 0) {
            throw new IllegalArgumentException("the close timeout cannot be negative; pass zero or more");
        }
        lock.lock();
        try {
            closing = true;
            forceClose = ms == 0;
            work.signalAll();
            progress.signalAll();
        } finally {
            lock.unlock();
        }
        if (Thread.currentThread() == sender) {
            return;
        }
        try {
            sender.join(ms == 0 ? 1 : Math.min(ms, Long.MAX_VALUE / 2));
            if (sender.isAlive()) {
                lock.lock();
                try {
                    forceClose = true;
                    work.signalAll();
                } finally {
                    lock.unlock();
                }
                sender.interrupt();
                sender.join();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptException(e);
        } finally {
            Utils.closeQuietly(keySerializer, "key serializer");
            Utils.closeQuietly(valueSerializer, "value serializer");
            metrics.close();
        }
    }

    private static UnsupportedOperationException noBroker(String what) {
        return new UnsupportedOperationException(what + " needs a Kafka broker; the embedded log has none,"
                + " and every acknowledged send is already durable on its own");
    }

    /** @throws UnsupportedOperationException always: transactions need a broker's coordinator */
    @Override
    public void initTransactions() {
        throw noBroker("Transactions (initTransactions)");
    }

    /** @throws UnsupportedOperationException always: transactions need a broker's coordinator */
    @Override
    public void beginTransaction() {
        throw noBroker("Transactions (beginTransaction)");
    }

    /** @throws UnsupportedOperationException always: transactions need a broker's coordinator */
    @Override
    public void sendOffsetsToTransaction(Map<TopicPartition, OffsetAndMetadata> offsets, ConsumerGroupMetadata group) {
        throw noBroker("Transactions (sendOffsetsToTransaction)");
    }

    /** @throws UnsupportedOperationException always: transactions need a broker's coordinator */
    @Override
    public void commitTransaction() {
        throw noBroker("Transactions (commitTransaction)");
    }

    /** @throws UnsupportedOperationException always: transactions need a broker's coordinator */
    @Override
    public void abortTransaction() {
        throw noBroker("Transactions (abortTransaction)");
    }

    /** @throws UnsupportedOperationException always: client telemetry is pushed to a broker */
    @Override
    public void registerMetricForSubscription(KafkaMetric metric) {
        throw noBroker("Client telemetry (registerMetricForSubscription)");
    }

    /** @throws UnsupportedOperationException always: client telemetry is pushed to a broker */
    @Override
    public void unregisterMetricFromSubscription(KafkaMetric metric) {
        throw noBroker("Client telemetry (unregisterMetricFromSubscription)");
    }

    /** @throws UnsupportedOperationException always: client instance ids are assigned by a broker */
    @Override
    public Uuid clientInstanceId(Duration timeout) {
        throw noBroker("A client instance id (clientInstanceId)");
    }
}
