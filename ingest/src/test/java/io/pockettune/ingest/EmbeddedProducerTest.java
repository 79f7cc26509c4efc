package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@link EmbeddedProducer} does beyond the contract that Kafka's producer shares. */
class EmbeddedProducerTest {

    @TempDir
    Path dir;
    private EmbeddedLog log;

    @BeforeEach
    void open() throws IOException {
        log = EmbeddedLog.open(dir);
        log.createTopic("events", 2);
    }

    @AfterEach
    void close() throws IOException {
        log.close();
    }

    private EmbeddedProducer<String, String> producer(Map<String, Object> configs) {
        return new EmbeddedProducer<>(log, configs, new StringSerializer(), new StringSerializer());
    }

    @Test
    void transactions_throwUnsupportedSayingWhy() {
        try (EmbeddedProducer<String, String> producer = producer(Map.of())) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, producer::initTransactions);
            assertTrue(e.getMessage().contains("needs a Kafka broker"), e.getMessage());
            assertThrows(UnsupportedOperationException.class, producer::beginTransaction);
            assertThrows(UnsupportedOperationException.class, producer::commitTransaction);
            assertThrows(UnsupportedOperationException.class, producer::abortTransaction);
            assertThrows(UnsupportedOperationException.class, () -> producer.sendOffsetsToTransaction(Map.of(), null));
        }
    }

    @Test
    void send_manyThreads_everyRecordOnceInOrderPerThreadSharingFsyncs() throws Exception {
        int threads = 6;
        int perThread = 1500;
        try (EmbeddedProducer<String, String> producer = producer(Map.of("linger.ms", 0))) {
            List<Thread> workers = new ArrayList<>();
            List<Throwable> errors = new java.util.concurrent.CopyOnWriteArrayList<>();
            for (int t = 0; t < threads; t++) {
                int id = t;
                workers.add(new Thread(() -> {
                    for (int i = 0; i < perThread; i++) {
                        producer.send(new ProducerRecord<>("events", "thread-" + id, id + ":" + i), (m, e) -> {
                            if (e != null) {
                                errors.add(e);
                            }
                        });
                    }
                }));
            }
            workers.forEach(Thread::start);
            for (Thread w : workers) {
                w.join();
            }
            producer.flush();
            assertEquals(List.of(), errors);
            double appends = metric(producer, "log-append-total");
            double waits = metric(producer, "durability-wait-total");
            assertEquals(threads * perThread, metric(producer, "record-send-total"));
            assertTrue(waits < threads * perThread / 10.0, "records share fsyncs: " + waits + " syncs, " + appends + " appends");
        }
        Map<Integer, Integer> next = new HashMap<>();
        int total = 0;
        for (int p = 0; p < 2; p++) {
            for (LogEntry e : log.read("events", p, 0, Integer.MAX_VALUE)) {
                String[] parts = new String(e.value(), StandardCharsets.UTF_8).split(":");
                int thread = Integer.parseInt(parts[0]);
                assertEquals(next.getOrDefault(thread, 0), Integer.parseInt(parts[1]), "thread " + thread + " in order, once");
                next.put(thread, Integer.parseInt(parts[1]) + 1);
                total++;
            }
        }
        assertEquals(threads * perThread, total);
    }

    @Test
    void send_bufferFull_blocksForMaxBlockMsThenFailsTheFuture() throws Exception {
        Map<String, Object> configs = Map.of("buffer.memory", 200, "batch.size", 1 << 20, "linger.ms", 60_000,
                "max.block.ms", 50);
        try (EmbeddedProducer<String, String> producer = producer(configs)) {
            Future<RecordMetadata> first = producer.send(new ProducerRecord<>("events", 0, null, "x".repeat(120)));
            long start = System.nanoTime();
            Future<RecordMetadata> second = producer.send(new ProducerRecord<>("events", 0, null, "y".repeat(120)));
            assertTrue(System.nanoTime() - start >= 40_000_000L, "send blocked while the buffer was full");
            ExecutionException e = assertThrows(ExecutionException.class, second::get);
            assertInstanceOf(TimeoutException.class, e.getCause());
            producer.flush();
            assertEquals(0, first.get().offset());
            Future<RecordMetadata> third = producer.send(new ProducerRecord<>("events", 0, null, "z".repeat(120)));
            producer.flush();
            assertEquals(1, third.get().offset(), "space is released once records are durable");
        }
    }

    @Test
    void send_unknownTopic_failsTheFutureAndCallback() throws Exception {
        try (EmbeddedProducer<String, String> producer = producer(Map.of())) {
            List<Exception> called = new ArrayList<>();
            Future<RecordMetadata> f = producer.send(new ProducerRecord<>("nope", "v"), (m, e) -> called.add(e));
            ExecutionException e = assertThrows(ExecutionException.class, f::get);
            assertInstanceOf(UnknownTopicOrPartitionException.class, e.getCause());
            assertTrue(e.getCause().getMessage().contains("createTopic"), e.getCause().getMessage());
            assertEquals(1, called.size());
        }
    }

    @Test
    void send_nullKeys_stickToOnePartitionPerBatch() throws Exception {
        try (EmbeddedProducer<String, String> producer = producer(Map.of("batch.size", 1000))) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                futures.add(producer.send(new ProducerRecord<>("events", "r" + i)));
            }
            producer.flush();
            int switches = 0;
            for (int i = 1; i < futures.size(); i++) {
                if (futures.get(i).get().partition() != futures.get(i - 1).get().partition()) {
                    switches++;
                }
            }
            assertTrue(switches >= 1 && switches <= 5, "sticky partitioning switches per batch.size, got " + switches);
        }
    }

    @Test
    void close_writesWhatIsQueuedAndRejectsLaterSends() throws Exception {
        Properties props = new Properties();
        props.put("linger.ms", "60000");
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        EmbeddedProducer<String, String> producer = new EmbeddedProducer<>(log, props, null, null);
        Future<RecordMetadata> f = producer.send(new ProducerRecord<>("events", 1, "k", "v"));
        producer.close();
        assertEquals(0, f.get().offset());
        assertEquals(1, log.endOffset("events", 1));
        assertThrows(IllegalStateException.class, () -> producer.send(new ProducerRecord<>("events", "v")));
    }

    @Test
    void consumer_restartWithGroup_resumesFromCommittedOffsetsAcrossReopen() throws Exception {
        try (EmbeddedProducer<String, String> producer = producer(Map.of())) {
            for (int i = 0; i < 20; i++) {
                producer.send(new ProducerRecord<>("events", 0, null, "e" + i));
            }
        }
        Map<String, Object> configs = Map.of("group.id", "trainer", "auto.offset.reset", "earliest", "max.poll.records", 8,
                "auto.commit.interval.ms", 0);
        try (EmbeddedConsumer<String, String> consumer =
                new EmbeddedConsumer<>(log, configs, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of("events"));
            assertEquals(8, consumer.poll(java.time.Duration.ofSeconds(1)).count());
        }
        log.close();
        log = EmbeddedLog.open(dir);
        try (EmbeddedConsumer<String, String> consumer =
                new EmbeddedConsumer<>(log, configs, new StringDeserializer(), new StringDeserializer())) {
            consumer.assign(List.of(new TopicPartition("events", 0)));
            ConsumerRecord<String, String> next = consumer.poll(java.time.Duration.ofSeconds(1)).iterator().next();
            assertEquals(8, next.offset(), "auto commit at close made the position durable");
            assertEquals("e8", next.value());
        }
    }

    private static double metric(EmbeddedProducer<?, ?> producer, String name) {
        for (Map.Entry<MetricName, ? extends Metric> e : producer.metrics().entrySet()) {
            if (e.getKey().name().equals(name)) {
                return ((Number) e.getValue().metricValue()).doubleValue();
            }
        }
        throw new AssertionError("no metric " + name);
    }
}
