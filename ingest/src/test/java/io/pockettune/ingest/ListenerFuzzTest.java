package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.message.FetchRequestData;
import org.apache.kafka.common.message.FetchResponseData;
import org.apache.kafka.common.message.FindCoordinatorRequestData;
import org.apache.kafka.common.message.HeartbeatRequestData;
import org.apache.kafka.common.message.InitProducerIdRequestData;
import org.apache.kafka.common.message.JoinGroupRequestData;
import org.apache.kafka.common.message.LeaveGroupRequestData;
import org.apache.kafka.common.message.ListOffsetsRequestData;
import org.apache.kafka.common.message.MetadataRequestData;
import org.apache.kafka.common.message.OffsetCommitRequestData;
import org.apache.kafka.common.message.OffsetFetchRequestData;
import org.apache.kafka.common.message.ProduceRequestData;
import org.apache.kafka.common.message.ProduceResponseData;
import org.apache.kafka.common.message.SaslAuthenticateRequestData;
import org.apache.kafka.common.message.SaslHandshakeRequestData;
import org.apache.kafka.common.message.SyncGroupRequestData;
import org.apache.kafka.common.message.ApiVersionsRequestData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.SimpleRecord;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Throws thousands of bad frames at a {@link KafkaListener} while a well-behaved stock
 * {@link KafkaProducer} (idempotent, acks=all, SASL/PLAIN) keeps producing through it: random
 * bytes, lengths out of bounds, every prefix of real requests, real requests with random byte
 * mutations (for every API of the capability table, before and after authentication), unknown API
 * keys, unadvertised versions and frames cut short. The producer must not notice, its records must
 * be in the log once each and in order, no handler may fail with anything but a Kafka error or a
 * close ({@link KafkaListener#unexpectedErrors()}), and every connection and its threads must end.
 *
 * <p>Deterministic given the seed, which is printed; rerun one with
 * {@code -Dpockettune.fuzz.seed=N}. The frames count is {@code -Dpockettune.fuzz.frames} (6,000).
 */
class ListenerFuzzTest {

    private static final int MAX_REQUEST_BYTES = 1024 * 1024;
    private static final String PRODUCER_TOPIC = "events";
    private static final String FUZZ_TOPIC = "fuzz";

    private Path dir;
    private EmbeddedLog log;
    private ListenerCredentials credentials;
    private KafkaListener listener;

    @BeforeEach
    void start() throws IOException {
        dir = Files.createTempDirectory("pockettune-listener-fuzz-");
        log = EmbeddedLog.open(dir.resolve("log"));
        log.createTopic(PRODUCER_TOPIC, 1);
        log.createTopic(FUZZ_TOPIC, 2);
        log.append(FUZZ_TOPIC, 0, List.of(new LogRecord(1_000L, null, "seed".getBytes(StandardCharsets.UTF_8))));
        credentials = new ListenerCredentials("fuzzer", "secret-password");
        listener = KafkaListener.start(log, new KafkaListener.Settings(new InetSocketAddress("127.0.0.1", 0), false,
                credentials, RecordAdmission.ANY, MAX_REQUEST_BYTES, 64), Time.SYSTEM);
    }

    @AfterEach
    void stop() throws IOException {
        listener.close();
        log.close();
        Utils.delete(dir.toFile());
    }

    @Test
    void fuzz_producerUnharmed() throws Exception {
        long seed = Long.getLong("pockettune.fuzz.seed", System.nanoTime());
        int frames = Integer.getInteger("pockettune.fuzz.frames", 6_000);
        System.out.println("ListenerFuzzTest seed " + seed + " (-Dpockettune.fuzz.seed=" + seed + " to repeat)");
        Random random = new Random(seed);
        long baselineThreads = listenerThreads();

        ProducerLoop producer = new ProducerLoop();
        Thread producerThread = new Thread(producer, "fuzz-well-behaved-producer");
        producerThread.start();
        long started = System.nanoTime();
        int sent;
        try {
            assertTrue(producer.acked.get() > 0 || producer.awaitFirstAck(), "the producer never got going");
            sent = new Fuzzer(random).run(frames);
        } finally {
            producer.stop = true;
            producerThread.join(30_000);
        }
        long fuzzMillis = (System.nanoTime() - started) / 1_000_000;
        System.out.println("ListenerFuzzTest sent " + sent + " bad frames in " + fuzzMillis + " ms; the producer had "
                + producer.acked.get() + " acknowledgements");

        assertEquals(null, producer.failure.get(), "a send of the well-behaved producer failed");
        assertTrue(sent >= 5_000 || frames < 5_000, "only " + sent + " frames were sent");
        int acked = producer.acked.get();
        assertEquals(producer.sent, acked, "acknowledgements");
        List<LogEntry> entries = log.read(PRODUCER_TOPIC, 0, 0, acked + 10);
        assertEquals(acked, entries.size(), "the producer's records in the log");
        for (int i = 0; i < entries.size(); i++) {
            assertEquals("v-" + i, new String(entries.get(i).value(), StandardCharsets.UTF_8), "record " + i);
        }

        try (RawKafkaClient fresh = new RawKafkaClient(listener.address())) {
            assertEquals(Errors.NONE, fresh.authenticate(credentials.username(), credentials.password()));
            ProduceResponseData produced = fresh.call(ApiKeys.PRODUCE, (short) 12, produceRequest(FUZZ_TOPIC, 1,
                    MemoryRecords.withRecords(Compression.NONE, new SimpleRecord(5L, "k".getBytes(), "after".getBytes()))));
            ProduceResponseData.PartitionProduceResponse pr = produced.responses().iterator().next()
                    .partitionResponses().get(0);
            assertEquals(Errors.NONE.code(), pr.errorCode(), pr.errorMessage());
            FetchResponseData fetched = fresh.call(ApiKeys.FETCH, (short) 12, fetchRequest(FUZZ_TOPIC, 1,
                    pr.baseOffset(), 0));
            FetchResponseData.PartitionData pd = fetched.responses().get(0).partitions().get(0);
            assertEquals(Errors.NONE.code(), pd.errorCode());
            MemoryRecords records = (MemoryRecords) pd.records();
            assertEquals("after", Utils.utf8(records.records().iterator().next().value()));
        }

        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
        while ((listener.connections() > 0 || listenerThreads() > baselineThreads) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(0, listener.connections(), () -> "connections left open: " + listenerStacks());
        assertEquals(baselineThreads, listenerThreads(), () -> "pockettune-kafka-* threads left running: "
                + listenerStacks());
        assertEquals(0, listener.unexpectedErrors(), "handler failures other than a Kafka error or a close (see the"
                + " test output for their stack traces)");
    }

    private static String listenerStacks() {
        StringBuilder b = new StringBuilder();
        Thread.getAllStackTraces().forEach((t, stack) -> {
            if (t.getName().startsWith("pockettune-kafka-")) {
                b.append('\n').append(t.getName());
                for (int i = 0; i < Math.min(12, stack.length); i++) {
                    b.append("\n    at ").append(stack[i]);
                }
            }
        });
        return b.toString();
    }

    private static long listenerThreads() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive)
                .filter(t -> t.getName().startsWith("pockettune-kafka-")).count();
    }

    /** The stock producer, sending "v-0", "v-1", ... one at a time so that a failure is attributable. */
    private final class ProducerLoop implements Runnable {
        final AtomicInteger acked = new AtomicInteger();
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        volatile boolean stop;
        volatile int sent;

        @Override
        public void run() {
            Map<String, Object> c = ListenerClientContractTest.clientConfigs(listener, credentials);
            c.put("acks", "all");
            c.put("enable.idempotence", "true");
            c.put("linger.ms", "1");
            c.put("delivery.timeout.ms", "30000");
            c.put("request.timeout.ms", "20000");
            try (KafkaProducer<String, String> p = new KafkaProducer<>(c, new StringSerializer(), new StringSerializer())) {
                while (!stop) {
                    List<java.util.concurrent.Future<?>> window = new ArrayList<>();
                    for (int i = 0; i < 10; i++) {
                        window.add(p.send(new ProducerRecord<>(PRODUCER_TOPIC, 0, "k", "v-" + sent)));
                        sent++;
                    }
                    for (java.util.concurrent.Future<?> f : window) {
                        f.get();
                        acked.incrementAndGet();
                    }
                }
            } catch (ExecutionException e) {
                failure.set(e.getCause());
            } catch (Throwable e) {
                failure.set(e);
            }
        }

        boolean awaitFirstAck() throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (acked.get() == 0 && failure.get() == null && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            return acked.get() > 0;
        }
    }

    static ProduceRequestData produceRequest(String topic, int partition, MemoryRecords records) {
        ProduceRequestData.TopicProduceDataCollection topics = new ProduceRequestData.TopicProduceDataCollection();
        topics.add(new ProduceRequestData.TopicProduceData().setName(topic).setPartitionData(List.of(
                new ProduceRequestData.PartitionProduceData().setIndex(partition).setRecords(records))));
        return new ProduceRequestData().setAcks((short) 1).setTimeoutMs(5_000).setTopicData(topics);
    }

    static FetchRequestData fetchRequest(String topic, int partition, long offset, int maxWaitMs) {
        return new FetchRequestData().setReplicaId(-1).setMaxWaitMs(maxWaitMs).setMinBytes(1).setMaxBytes(1 << 20)
                .setIsolationLevel((byte) 0).setTopics(List.of(new FetchRequestData.FetchTopic().setTopic(topic)
                        .setPartitions(List.of(new FetchRequestData.FetchPartition().setPartition(partition)
                                .setFetchOffset(offset).setPartitionMaxBytes(1 << 20).setLogStartOffset(-1)))));
    }

    /** A real request of one API at one version, the material of prefixes and mutations. */
    private record Template(ApiKeys key, short version, ApiMessage body) {
    }

    /** The frames; each goes over its own connection, which is closed right after. */
    private final class Fuzzer {
        private final Random random;
        private final List<Template> templates = new ArrayList<>();
        private int sent;
        private int iteration;

        Fuzzer(Random random) {
            this.random = random;
        }

        private void templates() {
            templates.clear();
            String group = "fuzz-group-" + iteration;
            MemoryRecords plain = MemoryRecords.withRecords(Compression.NONE,
                    new SimpleRecord(10L, "key".getBytes(), "value".getBytes()));
            MemoryRecords idempotent = MemoryRecords.withIdempotentRecords(Compression.NONE, 7L, (short) 0, 0,
                    new SimpleRecord(11L, null, "idem".getBytes()));
            for (ApiKeys key : ListenerApis.SUPPORTED.keySet()) {
                ListenerApis.Range range = ListenerApis.SUPPORTED.get(key);
                short low = (short) Math.max(range.min(), key.oldestVersion());
                for (short version = low; version <= range.max(); version++) {
                    ApiMessage body = switch (key) {
                        case PRODUCE -> produceRequest(FUZZ_TOPIC, 0, random.nextBoolean() ? plain : idempotent)
                                .setAcks((short) (random.nextInt(3) - 1));
                        case FETCH -> random.nextBoolean() ? fetchRequest(FUZZ_TOPIC, 0, 0, 0)
                                : fetchRequest(FUZZ_TOPIC, 1, log.endOffset(FUZZ_TOPIC, 1), 0); // nothing to wait for
                        case LIST_OFFSETS -> new ListOffsetsRequestData().setReplicaId(-1).setTopics(List.of(
                                new ListOffsetsRequestData.ListOffsetsTopic().setName(FUZZ_TOPIC).setPartitions(List.of(
                                        new ListOffsetsRequestData.ListOffsetsPartition().setPartitionIndex(0)
                                                .setTimestamp(-1)))));
                        case METADATA -> new MetadataRequestData().setTopics(List.of(
                                new MetadataRequestData.MetadataRequestTopic().setName(FUZZ_TOPIC)));
                        case OFFSET_COMMIT -> new OffsetCommitRequestData().setGroupId(group).setGenerationIdOrMemberEpoch(-1)
                                .setMemberId("").setTopics(List.of(new OffsetCommitRequestData.OffsetCommitRequestTopic()
                                        .setName(FUZZ_TOPIC).setPartitions(List.of(
                                                new OffsetCommitRequestData.OffsetCommitRequestPartition()
                                                        .setPartitionIndex(0).setCommittedOffset(1)))));
                        case OFFSET_FETCH -> version >= 8
                                ? new OffsetFetchRequestData().setGroups(List.of(
                                        new OffsetFetchRequestData.OffsetFetchRequestGroup().setGroupId(group)
                                                .setTopics(List.of(new OffsetFetchRequestData.OffsetFetchRequestTopics()
                                                        .setName(FUZZ_TOPIC).setPartitionIndexes(List.of(0, 1))))))
                                : new OffsetFetchRequestData().setGroupId(group).setTopics(List.of(
                                        new OffsetFetchRequestData.OffsetFetchRequestTopic().setName(FUZZ_TOPIC)
                                                .setPartitionIndexes(List.of(0, 1))));
                        case FIND_COORDINATOR -> version >= 4
                                ? new FindCoordinatorRequestData().setCoordinatorKeys(List.of(group))
                                : new FindCoordinatorRequestData().setKey(group);
                        case JOIN_GROUP -> new JoinGroupRequestData().setGroupId(group).setSessionTimeoutMs(1_000)
                                .setRebalanceTimeoutMs(500).setMemberId("").setProtocolType("consumer")
                                .setProtocols(new JoinGroupRequestData.JoinGroupRequestProtocolCollection(List.of(
                                        new JoinGroupRequestData.JoinGroupRequestProtocol().setName("range")
                                                .setMetadata(new byte[] {0, 1, 2})).iterator()));
                        case HEARTBEAT -> new HeartbeatRequestData().setGroupId(group).setGenerationId(1)
                                .setMemberId("m");
                        case LEAVE_GROUP -> version >= 3
                                ? new LeaveGroupRequestData().setGroupId(group).setMembers(List.of(
                                        new LeaveGroupRequestData.MemberIdentity().setMemberId("m")))
                                : new LeaveGroupRequestData().setGroupId(group).setMemberId("m");
                        case SYNC_GROUP -> new SyncGroupRequestData().setGroupId(group).setGenerationId(1)
                                .setMemberId("m").setProtocolType(version >= 5 ? "consumer" : null)
                                .setProtocolName(version >= 5 ? "range" : null)
                                .setAssignments(List.of(new SyncGroupRequestData.SyncGroupRequestAssignment()
                                        .setMemberId("m").setAssignment(new byte[] {3})));
                        case SASL_HANDSHAKE -> new SaslHandshakeRequestData().setMechanism("PLAIN");
                        case API_VERSIONS -> new ApiVersionsRequestData().setClientSoftwareName("fuzz")
                                .setClientSoftwareVersion("1");
                        case INIT_PRODUCER_ID -> new InitProducerIdRequestData().setTransactionTimeoutMs(1000)
                                .setProducerId(-1).setProducerEpoch((short) -1);
                        case SASL_AUTHENTICATE -> new SaslAuthenticateRequestData()
                                .setAuthBytes(RawKafkaClient.plainToken(credentials.username(), credentials.password()));
                        default -> throw new AssertionError(key);
                    };
                    templates.add(new Template(key, version, body));
                }
            }
        }

        int run(int frames) throws IOException {
            templates();
            intact();
            prefixes();
            while (sent < frames) {
                iteration++;
                if (iteration % 50 == 0) {
                    templates(); // fresh group ids, so that mutated joins do not wait on members of old ones
                }
                int kind = random.nextInt(10);
                switch (kind) {
                    case 0 -> randomBytes();
                    case 1 -> badLength();
                    case 2 -> cutShort();
                    case 3 -> unknownKey();
                    case 4 -> unadvertisedVersion();
                    default -> mutated(random.nextBoolean());
                }
            }
            return sent;
        }

        /** Each template as it is, after authentication: answered in its version (or closed, for SASL). */
        private void intact() throws IOException {
            for (Template t : templates) {
                try (RawKafkaClient c = connect(true)) {
                    if (t.body() instanceof ProduceRequestData p && p.acks() == 0) {
                        c.send(t.key(), t.version(), t.body()); // no answer; the next frame answers the next request
                        c.call(ApiKeys.API_VERSIONS, (short) 3, new ApiVersionsRequestData()
                                .setClientSoftwareName("fuzz").setClientSoftwareVersion("1"));
                    } else {
                        c.call(t.key(), t.version(), t.body());
                    }
                } catch (IOException e) {
                    throw new AssertionError("no answer to " + t.key() + " v" + t.version() + ": " + t.body(), e);
                }
                sent++;
            }
        }

        /** Every prefix of a few real requests, each in a frame of its own length. */
        private void prefixes() throws IOException {
            for (Template t : templates) {
                boolean wanted = t.version() == ListenerApis.SUPPORTED.get(t.key()).max()
                        && (t.key() == ApiKeys.PRODUCE || t.key() == ApiKeys.FETCH || t.key() == ApiKeys.JOIN_GROUP
                                || t.key() == ApiKeys.METADATA || t.key() == ApiKeys.SASL_AUTHENTICATE);
                if (!wanted) {
                    continue;
                }
                boolean authenticate = t.key() != ApiKeys.SASL_AUTHENTICATE;
                try (RawKafkaClient c = connect(false)) {
                    byte[] whole = c.frame(t.key(), t.version(), t.body());
                    for (int n = 0; n < whole.length; n++) {
                        send(authenticate, c2 -> {
                            if (!authenticate) {
                                c2.call(ApiKeys.SASL_HANDSHAKE, (short) 1,
                                        new SaslHandshakeRequestData().setMechanism("PLAIN"));
                            }
                        }, java.util.Arrays.copyOf(whole, n), false);
                    }
                }
            }
        }

        private void randomBytes() throws IOException {
            byte[] frame = new byte[random.nextInt(300)];
            random.nextBytes(frame);
            send(random.nextBoolean(), null, frame, false);
        }

        private void badLength() throws IOException {
            int[] lengths = {-1, Integer.MIN_VALUE, -random.nextInt(1 << 20) - 1, MAX_REQUEST_BYTES + 1,
                MAX_REQUEST_BYTES + 1 + random.nextInt(1 << 24), Integer.MAX_VALUE};
            int length = lengths[random.nextInt(lengths.length)];
            byte[] rest = new byte[random.nextInt(64)];
            random.nextBytes(rest);
            send(random.nextBoolean(), null, ByteBuffer.allocate(4 + rest.length).putInt(length).put(rest).array(), true);
        }

        /** A frame announcing more bytes than follow, then the close. */
        private void cutShort() throws IOException {
            Template t = templates.get(random.nextInt(templates.size()));
            try (RawKafkaClient c = connect(random.nextBoolean())) {
                if (c == null) {
                    return;
                }
                byte[] whole = c.frame(t.key(), t.version(), t.body());
                int given = random.nextInt(whole.length);
                c.sendRaw(ByteBuffer.allocate(4 + given).putInt(whole.length + random.nextInt(100))
                        .put(whole, 0, given).array());
                sent++;
            } catch (IOException closed) {
                sent++;
            }
        }

        private void unknownKey() throws IOException {
            short id;
            do {
                id = (short) (random.nextBoolean() ? random.nextInt(100) : random.nextInt());
            } while (ApiKeys.hasId(id) && ListenerApis.SUPPORTED.containsKey(ApiKeys.forId(id)));
            headerOnly(id, (short) random.nextInt(20));
        }

        private void unadvertisedVersion() throws IOException {
            List<ApiKeys> keys = new ArrayList<>(ListenerApis.SUPPORTED.keySet());
            ApiKeys key = keys.get(random.nextInt(keys.size()));
            ListenerApis.Range r = ListenerApis.SUPPORTED.get(key);
            short version = random.nextBoolean() ? (short) (r.max() + 1 + random.nextInt(200))
                    : (short) (r.min() - 1 - random.nextInt(100));
            headerOnly(key.id, version);
        }

        /** A v1 request header (key, version, correlation id, client id) and random body bytes. */
        private void headerOnly(short key, short version) throws IOException {
            byte[] body = new byte[random.nextInt(64)];
            random.nextBytes(body);
            ByteBuffer b = ByteBuffer.allocate(2 + 2 + 4 + 2 + 3 + body.length).putShort(key).putShort(version)
                    .putInt(random.nextInt()).putShort((short) 3).put("raw".getBytes(StandardCharsets.UTF_8)).put(body);
            send(random.nextBoolean(), null, b.array(), false);
        }

        /** A real request with one to four bytes replaced or bit-flipped. */
        private void mutated(boolean authenticate) throws IOException {
            Template t = templates.get(random.nextInt(templates.size()));
            send(authenticate, null, null, false, t);
        }

        private void send(boolean authenticate, Prelude prelude, byte[] frame, boolean raw) throws IOException {
            send(authenticate, prelude, frame, raw, null);
        }

        private void send(boolean authenticate, Prelude prelude, byte[] frame, boolean raw, Template mutate)
                throws IOException {
            try (RawKafkaClient c = connect(authenticate)) {
                if (c == null) {
                    return;
                }
                if (prelude != null) {
                    prelude.run(c);
                }
                if (mutate != null) {
                    frame = c.frame(mutate.key(), mutate.version(), mutate.body());
                    for (int i = 0, n = 1 + random.nextInt(4); i < n; i++) {
                        int at = random.nextInt(frame.length);
                        frame[at] = random.nextBoolean() ? (byte) (frame[at] ^ (1 << random.nextInt(8)))
                                : (byte) random.nextInt(256);
                    }
                }
                if (raw) {
                    c.sendRaw(frame);
                } else {
                    c.sendFrame(frame);
                }
                sent++;
                if (random.nextInt(4) == 0) {
                    c.isClosedByPeer(20); // sometimes let the answer (or the close) arrive before closing
                }
            } catch (IOException closedByListener) {
                sent++;
            }
        }

        /** @return a connection, authenticated if asked; null if the listener refused it (too many) */
        private RawKafkaClient connect(boolean authenticate) throws IOException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            while (listener.connections() >= 48 && System.nanoTime() < deadline) {
                try {
                    Thread.sleep(5);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException(e);
                }
            }
            RawKafkaClient c = new RawKafkaClient(listener.address());
            if (authenticate) {
                try {
                    Errors e = c.authenticate(credentials.username(), credentials.password());
                    assertEquals(Errors.NONE, e, "authentication of a fuzzing connection");
                } catch (IOException refused) {
                    c.close();
                    return null;
                }
            }
            return c;
        }
    }

    @FunctionalInterface
    private interface Prelude {
        void run(RawKafkaClient c) throws IOException;
    }
}
