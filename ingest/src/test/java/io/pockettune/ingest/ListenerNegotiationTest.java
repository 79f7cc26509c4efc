package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Time;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Pins the API versions each client we test against negotiates with the {@link KafkaListener}: the
 * stock Java clients of the kafka-clients version the build uses and kcat (librdkafka). A client or
 * listener upgrade that changes what is spoken shows up here first, with the table printed.
 */
class ListenerNegotiationTest {

    private static final String TOPIC = "negotiated";
    private static final int RECORDS = 10;

    /**
     * kafka-clients 4.3.1: an idempotent producer and a classic-protocol consumer group. ApiVersions
     * v0 is the one the SASL authenticator sends before authenticating; v4 the network client's after.
     */
    private static final Map<String, Set<Short>> JAVA = pins(
            "ApiVersions", 0, 4, "Fetch", 12, "FindCoordinator", 5, "Heartbeat", 4, "InitProducerId", 5,
            "JoinGroup", 9, "LeaveGroup", 5, "ListOffsets", 9, "Metadata", 12, "OffsetCommit", 9, "OffsetFetch", 9,
            "Produce", 12, "SaslAuthenticate", 2, "SaslHandshake", 1, "SyncGroup", 5);

    /** kcat 1.7.1 (librdkafka 2.0.2): an idempotent producer, a plain consumer and a consumer group. */
    private static final Map<String, Set<Short>> KCAT = pins(
            "ApiVersions", 3, "Fetch", 11, "FindCoordinator", 2, "Heartbeat", 3, "InitProducerId", 4,
            "JoinGroup", 5, "LeaveGroup", 1, "ListOffsets", 2, "Metadata", 4, "OffsetCommit", 7, "OffsetFetch", 7,
            "Produce", 7, "SaslAuthenticate", 0, "SaslHandshake", 1, "SyncGroup", 3);

    @TempDir Path dir;

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void javaClients_negotiatedVersions() throws Exception {
        try (EmbeddedLog log = EmbeddedLog.open(dir.resolve("log"));
                KafkaListener listener = listener(log)) {
            log.createTopic(TOPIC, 1);
            ListenerCredentials credentials = credentials();
            Map<String, Object> producerConfigs = ListenerClientContractTest.clientConfigs(listener, credentials);
            producerConfigs.put("acks", "all");
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfigs, new StringSerializer(),
                    new StringSerializer())) {
                for (int i = 0; i < RECORDS; i++) {
                    producer.send(new ProducerRecord<>(TOPIC, "k" + i, "v" + i)).get();
                }
            }
            Map<String, Object> consumerConfigs = ListenerClientContractTest.clientConfigs(listener, credentials);
            consumerConfigs.put("group.id", "java");
            consumerConfigs.put("auto.offset.reset", "earliest");
            consumerConfigs.put("enable.auto.commit", "false");
            // Heartbeats within the test's run, so that the Heartbeat API is always among those used.
            consumerConfigs.put("heartbeat.interval.ms", "100");
            try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfigs, new StringDeserializer(),
                    new StringDeserializer())) {
                consumer.subscribe(List.of(TOPIC));
                List<String> values = new ArrayList<>();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (values.size() < RECORDS && System.nanoTime() < deadline) {
                    for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                        values.add(r.value());
                    }
                }
                assertEquals(RECORDS, values.size(), "the consumer read what the producer sent: " + values);
                consumer.commitSync();
                consumer.poll(Duration.ofMillis(500));
            }
            assertPinned("Java kafka-clients", JAVA, listener.versionsUsed());
        }
    }

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void kcat_negotiatedVersions() throws Exception {
        assumeTrue(kcatInstalled(), "kcat is not on the PATH: install it (apt-get install kcat) to pin librdkafka's versions");
        try (EmbeddedLog log = EmbeddedLog.open(dir.resolve("log"));
                KafkaListener listener = listener(log)) {
            log.createTopic(TOPIC, 1);
            ListenerCredentials credentials = credentials();
            StringBuilder lines = new StringBuilder();
            for (int i = 0; i < RECORDS; i++) {
                lines.append("v").append(i).append('\n');
            }
            kcat(listener, credentials, lines.toString(), "-P", "-t", TOPIC, "-X", "acks=all",
                    "-X", "enable.idempotence=true");
            assertEquals(RECORDS, kcat(listener, credentials, null, "-C", "-t", TOPIC, "-o", "beginning", "-e")
                    .lines().count());
            assertEquals(RECORDS, kcat(listener, credentials, null, "-G", "kcat", "-X", "auto.offset.reset=earliest",
                    "-X", "heartbeat.interval.ms=100", "-e", TOPIC).lines().count());
            assertPinned("kcat (librdkafka)", KCAT, listener.versionsUsed());
        }
    }

    /** API names, each followed by the versions used of it. */
    private static Map<String, Set<Short>> pins(Object... apisAndVersions) {
        Map<String, Set<Short>> pins = new TreeMap<>();
        String api = null;
        for (Object o : apisAndVersions) {
            if (o instanceof String name) {
                api = name;
            } else {
                pins.computeIfAbsent(api, k -> new TreeSet<>()).add(((Integer) o).shortValue());
            }
        }
        return pins;
    }

    private static void assertPinned(String client, Map<String, Set<Short>> expected, Map<String, Set<Short>> used) {
        StringBuilder table = new StringBuilder(client + " negotiated with the Kafka listener (API: versions):");
        used.forEach((api, versions) -> table.append("\n  ").append(api).append(": ").append(versions));
        System.out.println(table);
        assertEquals(expected, used, table.toString());
    }

    private KafkaListener listener(EmbeddedLog log) throws IOException {
        return KafkaListener.start(log, new KafkaListener.Settings(new InetSocketAddress("127.0.0.1", 0), false,
                credentials(), RecordAdmission.ANY), Time.SYSTEM);
    }

    private ListenerCredentials credentials() throws IOException {
        return ListenerCredentials.loadOrCreate(dir.resolve("kafka-credentials")).credentials();
    }

    /** Runs kcat against the listener to its end. @return its standard output */
    private String kcat(KafkaListener listener, ListenerCredentials credentials, String input, String... args)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("kcat", "-b", "127.0.0.1:" + listener.address().getPort(),
                "-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanisms=PLAIN",
                "-X", "sasl.username=" + credentials.username(), "-X", "sasl.password=" + credentials.password()));
        command.addAll(List.of(args));
        Path out = dir.resolve("kcat.out");
        Path err = dir.resolve("kcat.err");
        Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        try (var stdin = p.getOutputStream()) {
            if (input != null) {
                stdin.write(input.getBytes(StandardCharsets.UTF_8));
            }
        }
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor();
        }
        assertEquals(0, p.exitValue(), () -> String.join(" ", args) + ": " + read(err));
        return Files.readString(out);
    }

    private static String read(Path file) {
        try {
            return Files.readString(file);
        } catch (IOException e) {
            return "(no stderr: " + e.getMessage() + ")";
        }
    }

    private static boolean kcatInstalled() {
        try {
            Process p = new ProcessBuilder("kcat", "-V").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }
}
