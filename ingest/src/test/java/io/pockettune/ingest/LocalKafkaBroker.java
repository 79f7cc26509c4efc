package io.pockettune.ingest;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import kafka.server.KafkaConfig;
import kafka.server.KafkaRaftServer;
import kafka.tools.StorageTool;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;

/**
 * A real Apache Kafka broker inside this JVM: one KRaft node that is broker and controller at once,
 * listening only on free loopback ports, with its storage in a directory of ours. It is the
 * baseline of {@code pockettune bench ingest} and the second backend of the client contract tests
 * (about 2 s to start). Broker defaults are kept except what one node needs (replication factor 1
 * for internal topics, one offsets partition, no initial rebalance delay, no topic auto-creation),
 * so its durability is Kafka's default: no fsync per message ({@code log.flush.interval.messages}
 * is Long.MAX_VALUE).
 *
 * <p>Test code: it lives in ingest's test sources with {@code org.apache.kafka:kafka_2.13} at test
 * scope, and is published alone in ingest's test-jar for {@code bench}, which brings the broker's
 * jars itself. So the runtime's class path never holds the broker or Scala.
 */
public final class LocalKafkaBroker implements AutoCloseable {

    private final Path dir;
    private final boolean deleteOnClose;
    private final KafkaConfig config;
    private final KafkaRaftServer server;
    private final String bootstrap;
    private final Admin admin;

    private LocalKafkaBroker(Path dir, boolean deleteOnClose, KafkaConfig config, KafkaRaftServer server,
            String bootstrap) {
        this.dir = dir;
        this.deleteOnClose = deleteOnClose;
        this.config = config;
        this.server = server;
        this.bootstrap = bootstrap;
        this.admin = Admin.create(Map.of("bootstrap.servers", bootstrap));
    }

    /** Starts a broker whose storage is a temporary directory, deleted on close. */
    public static LocalKafkaBroker start() throws IOException {
        return start(Files.createTempDirectory("pockettune-kafka-"), true);
    }

    /** Starts a broker with its storage under {@code dir}, which is left in place on close. */
    public static LocalKafkaBroker start(Path dir) throws IOException {
        Files.createDirectories(dir);
        return start(dir, false);
    }

    private static LocalKafkaBroker start(Path dir, boolean deleteOnClose) throws IOException {
        int brokerPort = freePort();
        int controllerPort = freePort();
        Properties props = new Properties();
        props.put("process.roles", "broker,controller");
        props.put("node.id", "1");
        props.put("listeners", "PLAINTEXT://127.0.0.1:" + brokerPort + ",CONTROLLER://127.0.0.1:" + controllerPort);
        props.put("advertised.listeners", "PLAINTEXT://127.0.0.1:" + brokerPort);
        props.put("controller.listener.names", "CONTROLLER");
        props.put("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
        props.put("controller.quorum.voters", "1@127.0.0.1:" + controllerPort);
        props.put("log.dirs", dir.resolve("data").toString());
        props.put("offsets.topic.replication.factor", "1");
        props.put("offsets.topic.num.partitions", "1");
        props.put("transaction.state.log.replication.factor", "1");
        props.put("transaction.state.log.min.isr", "1");
        props.put("share.coordinator.state.topic.replication.factor", "1");
        props.put("share.coordinator.state.topic.min.isr", "1");
        props.put("group.initial.rebalance.delay.ms", "0");
        props.put("auto.create.topics.enable", "false");
        Path file = dir.resolve("server.properties");
        try (var out = Files.newBufferedWriter(file, StandardCharsets.UTF_8)) {
            props.store(out, "PocketTune local KRaft node");
        }
        ByteArrayOutputStream formatOutput = new ByteArrayOutputStream();
        int rc = StorageTool.execute(new String[] {"format", "-t", Uuid.randomUuid().toString(), "-c", file.toString()},
                new PrintStream(formatOutput, true, StandardCharsets.UTF_8));
        if (rc != 0) {
            throw new IOException("formatting Kafka storage failed: " + formatOutput.toString(StandardCharsets.UTF_8));
        }
        KafkaConfig config = new KafkaConfig(props, false);
        KafkaRaftServer server = new KafkaRaftServer(config, Time.SYSTEM);
        server.startup();
        LocalKafkaBroker broker = new LocalKafkaBroker(dir, deleteOnClose, config, server, "127.0.0.1:" + brokerPort);
        broker.awaitReady();
        return broker;
    }

    private void awaitReady() throws IOException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (true) {
            try {
                admin.describeCluster().nodes().get(5, TimeUnit.SECONDS);
                return;
            } catch (Exception e) {
                if (System.nanoTime() > deadline) {
                    throw new IOException("the local Kafka broker did not come up within 60 s", e);
                }
            }
        }
    }

    /** @return the {@code bootstrap.servers} value for clients */
    public String bootstrapServers() {
        return bootstrap;
    }

    /**
     * @return the broker's effective configuration, defaults included (to report its flush
     *     settings, say). KafkaConfig's parent classes live in kafka-server, a runtime-only
     *     dependency of kafka_2.13, so it is handed out as the AbstractConfig it is.
     */
    public AbstractConfig config() {
        return (AbstractConfig) (Object) config;
    }

    /** Creates a topic with replication factor 1 and waits for it. */
    public void createTopic(String name, int partitions) {
        try {
            admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
        } catch (InterruptedException | ExecutionException | java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("could not create topic " + name + " on the local broker", e);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return socket.getLocalPort();
        }
    }

    @Override
    public void close() throws IOException {
        admin.close();
        server.shutdown();
        server.awaitShutdown();
        if (deleteOnClose) {
            Utils.delete(dir.toFile());
        }
    }
}
