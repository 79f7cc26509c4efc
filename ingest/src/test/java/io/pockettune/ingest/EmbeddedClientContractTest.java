package io.pockettune.ingest;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** {@link ClientContractTest} against {@link EmbeddedProducer} and {@link EmbeddedConsumer}. */
class EmbeddedClientContractTest extends ClientContractTest {

    private static Path dir;
    private static EmbeddedLog log;

    @BeforeAll
    static void openLog() throws IOException {
        dir = Files.createTempDirectory("pockettune-contract-");
        log = EmbeddedLog.open(dir);
    }

    @AfterAll
    static void closeLog() throws IOException {
        log.close();
        Utils.delete(dir.toFile());
    }

    @Override
    void createTopic(String topic, int partitions) throws IOException {
        log.createTopic(topic, partitions);
    }

    @Override
    <K, V> Producer<K, V> producer(Map<String, Object> configs, Serializer<K> keys, Serializer<V> values) {
        return new EmbeddedProducer<>(log, configs, keys, values);
    }

    @Override
    <K, V> Consumer<K, V> consumer(Map<String, Object> configs, Deserializer<K> keys, Deserializer<V> values) {
        return new EmbeddedConsumer<>(log, configs, keys, values);
    }
}
