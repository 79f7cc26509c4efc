package io.pockettune.ingest;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * {@link ClientContractTest} with the stock {@link KafkaProducer} (defaults: idempotent, acks=all)
 * and {@link KafkaConsumer} over TCP to a {@link KafkaListener} on the embedded log, through
 * SASL/PLAIN: the same assertions that hold for the embedded clients and a real broker.
 */
class ListenerClientContractTest extends ClientContractTest {

    private static Path dir;
    private static EmbeddedLog log;
    private static KafkaListener listener;
    private static ListenerCredentials credentials;

    @BeforeAll
    static void start() throws IOException {
        dir = Files.createTempDirectory("pockettune-listener-contract-");
        log = EmbeddedLog.open(dir.resolve("log"));
        credentials = ListenerCredentials.loadOrCreate(dir.resolve("kafka-credentials")).credentials();
        listener = KafkaListener.start(log, new KafkaListener.Settings(new InetSocketAddress("127.0.0.1", 0), false,
                credentials, RecordAdmission.ANY), Time.SYSTEM);
    }

    @AfterAll
    static void stop() throws IOException {
        listener.close();
        log.close();
        Utils.delete(dir.toFile());
    }

    /** The client settings that reach the listener: its address and SASL/PLAIN with its credentials. */
    static Map<String, Object> clientConfigs(KafkaListener listener, ListenerCredentials credentials) {
        return credentials.clientConfig(listener.address());
    }

    @Override
    void createTopic(String topic, int partitions) throws IOException {
        log.createTopic(topic, partitions);
    }

    @Override
    <K, V> Producer<K, V> producer(Map<String, Object> configs, Serializer<K> keys, Serializer<V> values) {
        Map<String, Object> all = new HashMap<>(configs);
        all.putAll(clientConfigs(listener, credentials));
        return new KafkaProducer<>(all, keys, values);
    }

    @Override
    <K, V> Consumer<K, V> consumer(Map<String, Object> configs, Deserializer<K> keys, Deserializer<V> values) {
        Map<String, Object> all = new HashMap<>(configs);
        all.putAll(clientConfigs(listener, credentials));
        return new KafkaConsumer<>(all, keys, values);
    }
}
