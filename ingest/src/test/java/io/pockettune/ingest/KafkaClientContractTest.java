package io.pockettune.ingest;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** {@link ClientContractTest} against {@link KafkaProducer} and {@link KafkaConsumer} on a real broker. */
class KafkaClientContractTest extends ClientContractTest {

    private static LocalKafkaBroker broker;

    @BeforeAll
    static void startBroker() throws IOException {
        broker = LocalKafkaBroker.start();
    }

    @AfterAll
    static void stopBroker() throws IOException {
        if (broker != null) {
            broker.close();
        }
    }

    @Override
    void createTopic(String topic, int partitions) {
        broker.createTopic(topic, partitions);
    }

    @Override
    <K, V> Producer<K, V> producer(Map<String, Object> configs, Serializer<K> keys, Serializer<V> values) {
        Map<String, Object> all = new HashMap<>(configs);
        all.put("bootstrap.servers", broker.bootstrapServers());
        all.put("acks", "all");
        return new KafkaProducer<>(all, keys, values);
    }

    @Override
    <K, V> Consumer<K, V> consumer(Map<String, Object> configs, Deserializer<K> keys, Deserializer<V> values) {
        Map<String, Object> all = new HashMap<>(configs);
        all.put("bootstrap.servers", broker.bootstrapServers());
        return new KafkaConsumer<>(all, keys, values);
    }
}
