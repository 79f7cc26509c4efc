package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;

/**
 * The behaviour PocketTune relies on from Kafka's producer and consumer, asserted identically
 * against the embedded log ({@link EmbeddedClientContractTest}) and a real KRaft broker in this JVM
 * ({@link KafkaClientContractTest}). Each test uses fresh topic and group names, so one broker
 * serves the whole class.
 */
abstract class ClientContractTest {

    private static final AtomicInteger NAMES = new AtomicInteger();
    private static final Duration WAIT = Duration.ofSeconds(20);

    /** Creates a topic on the backend. */
    abstract void createTopic(String topic, int partitions) throws Exception;

    abstract <K, V> Producer<K, V> producer(Map<String, Object> configs, Serializer<K> keys, Serializer<V> values);

    abstract <K, V> Consumer<K, V> consumer(Map<String, Object> configs, Deserializer<K> keys, Deserializer<V> values);

    private String newTopic(int partitions) throws Exception {
        String topic = "contract-" + getClass().getSimpleName().charAt(0) + NAMES.incrementAndGet();
        createTopic(topic, partitions);
        return topic;
    }

    private Producer<String, String> strings() {
        return producer(new HashMap<>(Map.of("linger.ms", 5)), new StringSerializer(), new StringSerializer());
    }

    private Consumer<String, String> stringConsumer(String group, String reset) {
        Map<String, Object> configs = new HashMap<>();
        if (group != null) {
            configs.put("group.id", group);
            configs.put("enable.auto.commit", false);
        }
        configs.put("auto.offset.reset", reset);
        configs.put("max.poll.records", 7);
        return consumer(configs, new StringDeserializer(), new StringDeserializer());
    }

    private static <K, V> List<ConsumerRecord<K, V>> pollAtLeast(Consumer<K, V> consumer, int n) {
        List<ConsumerRecord<K, V>> out = new ArrayList<>();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (out.size() < n && System.nanoTime() < deadline) {
            consumer.poll(Duration.ofMillis(100)).forEach(out::add);
        }
        assertTrue(out.size() >= n, "expected at least " + n + " records, got " + out.size());
        return out;
    }

    @Test
    void send_keyedRecords_useKafkasDefaultPartitionerAndContiguousOffsets() throws Exception {
        String topic = newTopic(3);
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<RecordMetadata> viaCallback = new CopyOnWriteArrayList<>();
        try (Producer<String, String> producer = strings()) {
            for (int i = 0; i < 60; i++) {
                String key = "user-" + (i % 7);
                futures.add(producer.send(new ProducerRecord<>(topic, key, "v" + i), (m, e) -> {
                    if (e == null) {
                        viaCallback.add(m);
                    }
                }));
            }
            producer.flush();
        }
        Map<Integer, Long> nextOffset = new HashMap<>();
        for (int i = 0; i < 60; i++) {
            RecordMetadata m = futures.get(i).get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
            byte[] key = ("user-" + (i % 7)).getBytes(java.nio.charset.StandardCharsets.UTF_8);
            assertEquals(Utils.toPositive(Utils.murmur2(key)) % 3, m.partition(), "partition of record " + i);
            long expected = nextOffset.getOrDefault(m.partition(), 0L);
            assertEquals(expected, m.offset(), "offsets of a partition are contiguous in send order");
            nextOffset.put(m.partition(), expected + 1);
        }
        assertEquals(60, viaCallback.size());

        try (Consumer<String, String> consumer = stringConsumer(null, "earliest")) {
            List<TopicPartition> all = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1),
                    new TopicPartition(topic, 2));
            consumer.assign(all);
            consumer.seekToBeginning(all);
            List<ConsumerRecord<String, String>> records = pollAtLeast(consumer, 60);
            assertEquals(60, records.size());
            Map<Integer, Integer> lastValue = new HashMap<>();
            for (ConsumerRecord<String, String> r : records) {
                int value = Integer.parseInt(r.value().substring(1));
                assertEquals("user-" + (value % 7), r.key());
                assertTrue(value > lastValue.getOrDefault(r.partition(), -1), "per-partition order is send order");
                lastValue.put(r.partition(), value);
            }
        }
    }

    @Test
    void flush_completesEveryFutureOfALingeringProducer() throws Exception {
        String topic = newTopic(1);
        Map<String, Object> configs = new HashMap<>(Map.of("linger.ms", 60_000, "batch.size", 1 << 20));
        try (Producer<String, String> producer = producer(configs, new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                futures.add(producer.send(new ProducerRecord<>(topic, null, "r" + i)));
            }
            producer.flush();
            for (int i = 0; i < 50; i++) {
                assertTrue(futures.get(i).isDone(), "flush returns after every earlier send completed");
                assertEquals(i, futures.get(i).get().offset());
            }
        }
    }

    @Test
    void partitionsFor_reportsEveryPartition() throws Exception {
        String topic = newTopic(4);
        try (Producer<String, String> producer = strings()) {
            assertEquals(4, producer.partitionsFor(topic).size());
        }
        try (Consumer<String, String> consumer = stringConsumer(null, "earliest")) {
            assertEquals(4, consumer.partitionsFor(topic).size());
            assertTrue(consumer.listTopics().containsKey(topic));
        }
    }

    @Test
    void commitSync_newConsumerOfTheGroup_resumesAfterCommittedOffset() throws Exception {
        String topic = newTopic(2);
        String group = "group-" + topic;
        try (Producer<String, String> producer = strings()) {
            for (int i = 0; i < 40; i++) {
                producer.send(new ProducerRecord<>(topic, "k" + (i % 4), Integer.toString(i)));
            }
        }
        List<String> seen = new ArrayList<>();
        try (Consumer<String, String> first = stringConsumer(group, "earliest")) {
            first.subscribe(List.of(topic));
            pollAtLeast(first, 10).forEach(r -> seen.add(r.value()));
            first.commitSync();
            Set<TopicPartition> parts = first.assignment();
            assertEquals(2, parts.size());
            Map<TopicPartition, OffsetAndMetadata> committed = first.committed(parts);
            long total = 0;
            for (TopicPartition tp : parts) {
                assertEquals(first.position(tp), committed.get(tp).offset());
                total += committed.get(tp).offset();
            }
            assertEquals(seen.size(), total);
        }
        try (Consumer<String, String> second = stringConsumer(group, "latest")) {
            second.subscribe(List.of(topic));
            pollAtLeast(second, 40 - seen.size()).forEach(r -> seen.add(r.value()));
        }
        assertEquals(40, seen.size());
        assertEquals(40, Set.copyOf(seen).size(), "no record is delivered twice across the restart");
    }

    @Test
    void commitAsync_callsBackWithTheOffsets() throws Exception {
        String topic = newTopic(1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Producer<String, String> producer = strings()) {
            producer.send(new ProducerRecord<>(topic, "a"));
            producer.send(new ProducerRecord<>(topic, "b"));
        }
        try (Consumer<String, String> consumer = stringConsumer("g-" + topic, "earliest")) {
            consumer.assign(List.of(tp));
            pollAtLeast(consumer, 2);
            AtomicReference<Map<TopicPartition, OffsetAndMetadata>> done = new AtomicReference<>();
            consumer.commitAsync(Map.of(tp, new OffsetAndMetadata(1)), (offsets, e) -> {
                assertNull(e);
                done.set(offsets);
            });
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (done.get() == null && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(50));
            }
            assertEquals(1, done.get().get(tp).offset());
            assertEquals(1, consumer.committed(Set.of(tp)).get(tp).offset());
        }
    }

    @Test
    void seek_positionAndSeekToEnd_moveTheConsumer() throws Exception {
        String topic = newTopic(1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Producer<String, String> producer = strings()) {
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(topic, "r" + i));
            }
        }
        try (Consumer<String, String> consumer = stringConsumer(null, "earliest")) {
            consumer.assign(List.of(tp));
            consumer.seek(tp, 6);
            assertEquals(6, consumer.position(tp));
            List<ConsumerRecord<String, String>> records = pollAtLeast(consumer, 4);
            assertEquals(6, records.get(0).offset());
            assertEquals("r6", records.get(0).value());
            assertEquals(10, consumer.position(tp));
            consumer.seekToBeginning(List.of(tp));
            assertEquals(0, consumer.position(tp));
            consumer.seekToEnd(List.of(tp));
            assertEquals(10, consumer.position(tp));
            assertEquals(Map.of(tp, 10L), consumer.endOffsets(List.of(tp)));
            assertEquals(Map.of(tp, 0L), consumer.beginningOffsets(List.of(tp)));
            assertThrows(IllegalStateException.class, () -> consumer.seek(new TopicPartition(topic + "x", 0), 0));
        }
    }

    @Test
    void offsetsForTimes_findsTheFirstRecordAtOrAfterTheTimestamp() throws Exception {
        String topic = newTopic(1);
        TopicPartition tp = new TopicPartition(topic, 0);
        long[] stamps = {1_000, 3_000, 2_000, 5_000, 4_000, 9_000};
        try (Producer<String, String> producer = strings()) {
            for (int i = 0; i < stamps.length; i++) {
                producer.send(new ProducerRecord<>(topic, 0, stamps[i], null, "t" + i));
            }
        }
        try (Consumer<String, String> consumer = stringConsumer(null, "earliest")) {
            Map<TopicPartition, OffsetAndTimestamp> found = consumer.offsetsForTimes(Map.of(tp, 2_500L));
            assertEquals("1@3000", describe(found.get(tp)));
            assertEquals("0@1000", describe(consumer.offsetsForTimes(Map.of(tp, 0L)).get(tp)));
            assertEquals("3@5000", describe(consumer.offsetsForTimes(Map.of(tp, 4_500L)).get(tp)));
            assertNull(consumer.offsetsForTimes(Map.of(tp, 9_001L)).get(tp));
            consumer.assign(List.of(tp));
            consumer.seek(tp, found.get(tp).offset());
            ConsumerRecord<String, String> first = pollAtLeast(consumer, 1).get(0);
            assertEquals(3_000, first.timestamp());
        }
    }

    /** Leader epochs differ between a broker and the embedded log; offset and timestamp must not. */
    private static String describe(OffsetAndTimestamp found) {
        return found.offset() + "@" + found.timestamp();
    }

    @Test
    void avroEvents_roundTripThroughTheEventSerde() throws Exception {
        String topic = newTopic(1);
        List<Message> sent = new ArrayList<>();
        try (Producer<String, SpecificRecord> producer =
                producer(new HashMap<>(), new StringSerializer(), new EventSerializer())) {
            for (int i = 0; i < 5; i++) {
                Message m = Message.newBuilder().setId("m" + i).setConversation("c1").setSender("me")
                        .setText("hello number " + i).setEventTime(java.time.Instant.ofEpochMilli(1_700_000_000_000L + i))
                        .setAttrs(Map.of("app", "chat")).build();
                sent.add(m);
                producer.send(new ProducerRecord<>(topic, "c1", m)).get();
            }
        }
        try (Consumer<String, SpecificRecord> consumer = consumer(new HashMap<>(Map.of("auto.offset.reset", "earliest")),
                new StringDeserializer(), new EventDeserializer())) {
            consumer.assign(List.of(new TopicPartition(topic, 0)));
            List<ConsumerRecord<String, SpecificRecord>> records = pollAtLeast(consumer, 5);
            for (int i = 0; i < 5; i++) {
                assertInstanceOf(Message.class, records.get(i).value());
                assertEquals(sent.get(i), records.get(i).value());
            }
        }
    }

    @Test
    void subscribe_withoutGroupId_isRejected() throws Exception {
        String topic = newTopic(1);
        try (Consumer<String, String> consumer = stringConsumer(null, "earliest")) {
            assertThrows(org.apache.kafka.common.errors.InvalidGroupIdException.class,
                    () -> consumer.subscribe(List.of(topic)));
        }
    }
}
