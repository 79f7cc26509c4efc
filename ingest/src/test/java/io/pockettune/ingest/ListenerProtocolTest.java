package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.message.ApiVersionsRequestData;
import org.apache.kafka.common.message.ApiVersionsResponseData;
import org.apache.kafka.common.message.FetchResponseData;
import org.apache.kafka.common.message.ListOffsetsRequestData;
import org.apache.kafka.common.message.ListOffsetsResponseData;
import org.apache.kafka.common.message.MetadataRequestData;
import org.apache.kafka.common.message.MetadataResponseData;
import org.apache.kafka.common.message.ProduceRequestData;
import org.apache.kafka.common.message.ProduceResponseData;
import org.apache.kafka.common.message.SaslAuthenticateRequestData;
import org.apache.kafka.common.message.SaslAuthenticateResponseData;
import org.apache.kafka.common.message.SaslHandshakeRequestData;
import org.apache.kafka.common.message.SaslHandshakeResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.SimpleRecord;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Kafka listener at the frame level, with {@link RawKafkaClient} over real sockets to a
 * listener on a real {@link EmbeddedLog}: the capability table, the SASL/PLAIN gate, and what each
 * API answers, including the error codes for what a client can get wrong. Every test ends with no
 * unexpected handler failure ({@link KafkaListener#unexpectedErrors()}).
 */
class ListenerProtocolTest {

    private static final String TOPIC = "events";
    private static final ListenerCredentials CREDENTIALS = new ListenerCredentials("alice", "correct-horse");

    /** The capability table as the issue specifies it. */
    private static final Map<ApiKeys, short[]> TABLE = Map.ofEntries(
            Map.entry(ApiKeys.PRODUCE, new short[] {0, 12}), Map.entry(ApiKeys.FETCH, new short[] {4, 12}),
            Map.entry(ApiKeys.LIST_OFFSETS, new short[] {1, 9}), Map.entry(ApiKeys.METADATA, new short[] {0, 12}),
            Map.entry(ApiKeys.OFFSET_COMMIT, new short[] {2, 9}), Map.entry(ApiKeys.OFFSET_FETCH, new short[] {1, 9}),
            Map.entry(ApiKeys.FIND_COORDINATOR, new short[] {0, 5}), Map.entry(ApiKeys.JOIN_GROUP, new short[] {2, 9}),
            Map.entry(ApiKeys.HEARTBEAT, new short[] {0, 4}), Map.entry(ApiKeys.LEAVE_GROUP, new short[] {0, 5}),
            Map.entry(ApiKeys.SYNC_GROUP, new short[] {0, 5}), Map.entry(ApiKeys.SASL_HANDSHAKE, new short[] {0, 1}),
            Map.entry(ApiKeys.API_VERSIONS, new short[] {0, 4}),
            Map.entry(ApiKeys.INIT_PRODUCER_ID, new short[] {0, 5}),
            Map.entry(ApiKeys.SASL_AUTHENTICATE, new short[] {0, 2}));

    private Path dir;
    private EmbeddedLog log;
    private final List<KafkaListener> listeners = new ArrayList<>();
    private KafkaListener listener;

    @BeforeEach
    void start() throws IOException {
        dir = Files.createTempDirectory("pockettune-listener-protocol-");
        log = EmbeddedLog.open(dir.resolve("log"));
        log.createTopic(TOPIC, 2);
        log.createTopic("other", 1);
        listener = start(RecordAdmission.ANY, KafkaListener.DEFAULT_MAX_CONNECTIONS);
    }

    private KafkaListener start(RecordAdmission admission, int maxConnections) throws IOException {
        KafkaListener l = KafkaListener.start(log, new KafkaListener.Settings(new InetSocketAddress("127.0.0.1", 0),
                false, CREDENTIALS, admission, KafkaListener.DEFAULT_MAX_REQUEST_BYTES, maxConnections), Time.SYSTEM);
        listeners.add(l);
        return l;
    }

    @AfterEach
    void stop() throws IOException {
        for (KafkaListener l : listeners) {
            l.close();
            assertEquals(0, l.unexpectedErrors(), "unexpected handler failures (see the test output)");
        }
        log.close();
        Utils.delete(dir.toFile());
    }

    private RawKafkaClient client() throws IOException {
        return new RawKafkaClient(listener.address());
    }

    private RawKafkaClient authenticated() throws IOException {
        RawKafkaClient c = client();
        assertEquals(Errors.NONE, c.authenticate(CREDENTIALS.username(), CREDENTIALS.password()));
        return c;
    }

    private static Map<ApiKeys, List<Short>> table(ApiVersionsResponseData r) {
        Map<ApiKeys, List<Short>> m = new TreeMap<>();
        r.apiKeys().forEach(k -> m.put(ApiKeys.forId(k.apiKey()), List.of(k.minVersion(), k.maxVersion())));
        return m;
    }

    private static Map<ApiKeys, List<Short>> expectedTable() {
        Map<ApiKeys, List<Short>> m = new TreeMap<>();
        TABLE.forEach((k, v) -> m.put(k, List.of(v[0], v[1])));
        return m;
    }

    // ---- ApiVersions ---------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(shorts = {0, 1, 2, 3, 4})
    void apiVersions_everyVersion_capabilityTable(short version) throws IOException {
        try (RawKafkaClient c = client()) {
            ApiVersionsResponseData r = c.call(ApiKeys.API_VERSIONS, version, new ApiVersionsRequestData()
                    .setClientSoftwareName("raw").setClientSoftwareVersion("1"));
            assertEquals(Errors.NONE.code(), r.errorCode());
            assertEquals(expectedTable(), table(r));
        }
    }

    @Test
    void apiVersions_unknownVersion_answeredInV0WithUnsupportedVersion() throws IOException {
        try (RawKafkaClient c = client()) {
            c.sendFrame(c.frame(ApiKeys.API_VERSIONS, (short) 127, (short) 3, new ApiVersionsRequestData()
                    .setClientSoftwareName("raw").setClientSoftwareVersion("1")));
            RawKafkaClient.Response<ApiVersionsResponseData> r = c.receive(ApiKeys.API_VERSIONS, (short) 0);
            assertEquals(1, r.correlationId());
            assertEquals(Errors.UNSUPPORTED_VERSION.code(), r.body().errorCode());
            assertEquals(expectedTable(), table(r.body()));
        }
    }

    // ---- SASL ----------------------------------------------------------------------------------

    @ParameterizedTest
    @ValueSource(strings = {"METADATA", "PRODUCE", "FETCH"})
    void beforeAuthentication_requestClosesConnection(String api) throws IOException {
        ApiKeys key = ApiKeys.valueOf(api);
        try (RawKafkaClient c = client()) {
            switch (key) {
                case METADATA -> c.send(key, (short) 12, new MetadataRequestData().setTopics(null));
                case PRODUCE -> c.send(key, (short) 9, produce(TOPIC, 0, (short) 1, twoRecords()));
                default -> c.send(key, (short) 12, ListenerFuzzTest.fetchRequest(TOPIC, 0, 0, 0));
            }
            assertTrue(c.isClosedByPeer(3_000), "the connection stays open");
        }
        assertEquals(0, log.endOffset(TOPIC, 0), "appended without authentication");
    }

    @Test
    void beforeAuthentication_apiVersionsAndSaslAnswered() throws IOException {
        try (RawKafkaClient c = client()) {
            ApiVersionsResponseData v = c.call(ApiKeys.API_VERSIONS, (short) 3, new ApiVersionsRequestData()
                    .setClientSoftwareName("raw").setClientSoftwareVersion("1"));
            assertEquals(Errors.NONE.code(), v.errorCode());
            assertEquals(Errors.NONE, c.authenticate(CREDENTIALS.username(), CREDENTIALS.password()));
            MetadataResponseData m = c.call(ApiKeys.METADATA, (short) 12, new MetadataRequestData().setTopics(null));
            assertEquals(2, m.topics().size());
        }
    }

    @ParameterizedTest
    @CsvSource({"alice, wrong-password", "mallory, correct-horse"})
    void authenticate_wrongUserOrPassword_failedThenClosed(String user, String password) throws IOException {
        try (RawKafkaClient c = client()) {
            assertEquals(Errors.SASL_AUTHENTICATION_FAILED, c.authenticate(user, password));
            assertTrue(c.isClosedByPeer(3_000));
        }
    }

    @Test
    void handshake_unsupportedMechanism() throws IOException {
        try (RawKafkaClient c = client()) {
            SaslHandshakeResponseData r = c.call(ApiKeys.SASL_HANDSHAKE, (short) 1,
                    new SaslHandshakeRequestData().setMechanism("SCRAM-SHA-256"));
            assertEquals(Errors.UNSUPPORTED_SASL_MECHANISM.code(), r.errorCode());
            assertEquals(List.of("PLAIN"), r.mechanisms());
            assertTrue(c.isClosedByPeer(3_000));
        }
    }

    @Test
    void handshakeV0_rawToken_authenticates() throws IOException {
        try (RawKafkaClient c = client()) {
            SaslHandshakeResponseData r = c.call(ApiKeys.SASL_HANDSHAKE, (short) 0,
                    new SaslHandshakeRequestData().setMechanism("PLAIN"));
            assertEquals(Errors.NONE.code(), r.errorCode());
            c.sendFrame(RawKafkaClient.plainToken(CREDENTIALS.username(), CREDENTIALS.password()));
            assertEquals(0, c.receiveFrame().length, "the empty answer to a raw token");
            MetadataResponseData m = c.call(ApiKeys.METADATA, (short) 1, new MetadataRequestData().setTopics(null));
            assertEquals(2, m.topics().size());
        }
    }

    @Test
    void authenticate_withoutHandshake_illegalState() throws IOException {
        try (RawKafkaClient c = client()) {
            SaslAuthenticateResponseData r = c.call(ApiKeys.SASL_AUTHENTICATE, (short) 2,
                    new SaslAuthenticateRequestData().setAuthBytes(
                            RawKafkaClient.plainToken(CREDENTIALS.username(), CREDENTIALS.password())));
            assertEquals(Errors.ILLEGAL_SASL_STATE.code(), r.errorCode());
            assertTrue(c.isClosedByPeer(3_000));
        }
    }

    // ---- Metadata ------------------------------------------------------------------------------

    @Test
    void metadata_unknownTopic_notCreated() throws IOException {
        try (RawKafkaClient c = authenticated()) {
            MetadataResponseData r = c.call(ApiKeys.METADATA, (short) 12, new MetadataRequestData()
                    .setAllowAutoTopicCreation(true)
                    .setTopics(List.of(new MetadataRequestData.MetadataRequestTopic().setName("missing"))));
            assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION.code(), r.topics().find("missing").errorCode());
        }
        assertFalse(log.topics().contains("missing"));
    }

    @Test
    void metadata_allTopics_partitionsAndTheConnectedAddress() throws IOException {
        try (RawKafkaClient c = authenticated()) {
            MetadataResponseData r = c.call(ApiKeys.METADATA, (short) 12, new MetadataRequestData().setTopics(null));
            assertEquals(2, r.topics().find(TOPIC).partitions().size());
            assertEquals(1, r.topics().find("other").partitions().size());
            assertEquals(2, r.topics().size());
            MetadataResponseData.MetadataResponseBroker broker = r.brokers().iterator().next();
            assertEquals(1, r.brokers().size());
            assertEquals("127.0.0.1", broker.host());
            assertEquals(listener.address().getPort(), broker.port());
            assertEquals(broker.nodeId(), r.topics().find(TOPIC).partitions().get(0).leaderId());
        }
    }

    // ---- Produce -------------------------------------------------------------------------------

    private static MemoryRecords twoRecords() {
        return MemoryRecords.withRecords(Compression.NONE,
                new SimpleRecord(1_700_000_000_001L, "k1".getBytes(StandardCharsets.UTF_8),
                        "v1".getBytes(StandardCharsets.UTF_8)),
                new SimpleRecord(1_700_000_000_002L, null, "v2".getBytes(StandardCharsets.UTF_8)));
    }

    private static ProduceRequestData produce(String topic, int partition, short acks, MemoryRecords records) {
        return ListenerFuzzTest.produceRequest(topic, partition, records).setAcks(acks);
    }

    private static ProduceResponseData.PartitionProduceResponse produced(ProduceResponseData r) {
        assertEquals(1, r.responses().size());
        return r.responses().iterator().next().partitionResponses().get(0);
    }

    @ParameterizedTest
    @CsvSource({"3, 1", "3, -1", "4, 1", "4, -1", "5, 1", "5, -1", "6, 1", "6, -1", "7, 1", "7, -1", "8, 1", "8, -1",
        "9, 1", "9, -1", "10, 1", "10, -1", "11, 1", "11, -1", "12, 1", "12, -1"})
    void produce_everyReadableVersion_appended(short version, short acks) throws IOException {
        try (RawKafkaClient c = authenticated()) {
            for (long expectedBase : new long[] {0, 2}) {
                ProduceResponseData.PartitionProduceResponse r = produced(c.call(ApiKeys.PRODUCE, version,
                        produce(TOPIC, 1, acks, twoRecords())));
                assertEquals(Errors.NONE.code(), r.errorCode(), r.errorMessage());
                assertEquals(expectedBase, r.baseOffset());
            }
        }
        List<LogEntry> entries = log.read(TOPIC, 1, 0, 10);
        assertEquals(4, entries.size());
        assertArrayEquals("k1".getBytes(StandardCharsets.UTF_8), entries.get(2).key());
        assertArrayEquals("v1".getBytes(StandardCharsets.UTF_8), entries.get(2).value());
        assertEquals(1_700_000_000_001L, entries.get(2).timestamp());
        assertNull(entries.get(3).key());
        assertArrayEquals("v2".getBytes(StandardCharsets.UTF_8), entries.get(3).value());
        assertEquals(1_700_000_000_002L, entries.get(3).timestamp());
    }

    @Test
    void produce_acksZero_noResponseYetAppended() throws Exception {
        try (RawKafkaClient c = authenticated()) {
            c.send(ApiKeys.PRODUCE, (short) 12, produce(TOPIC, 0, (short) 0, twoRecords()));
            int id = c.send(ApiKeys.API_VERSIONS, (short) 3, new ApiVersionsRequestData()
                    .setClientSoftwareName("raw").setClientSoftwareVersion("1"));
            assertEquals(id, c.receive(ApiKeys.API_VERSIONS, (short) 3).correlationId(),
                    "the next frame answers the next request: acks=0 gets no response");
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (log.endOffset(TOPIC, 0) < 2 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(2, log.read(TOPIC, 0, 0, 10).size());
    }

    @Test
    void produce_sameIdempotentBatchTwice_sameOffsetAppendedOnce() throws IOException {
        MemoryRecords batch = MemoryRecords.withIdempotentRecords(Compression.NONE, 1_000L, (short) 0, 0,
                new SimpleRecord(5L, null, "once".getBytes(StandardCharsets.UTF_8)));
        try (RawKafkaClient c = authenticated()) {
            produced(c.call(ApiKeys.PRODUCE, (short) 12, produce(TOPIC, 0, (short) -1, twoRecords())));
            ProduceResponseData.PartitionProduceResponse first = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) -1, batch)));
            batch.buffer().rewind();
            ProduceResponseData.PartitionProduceResponse second = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) -1, batch)));
            assertEquals(Errors.NONE.code(), first.errorCode(), first.errorMessage());
            assertEquals(Errors.NONE.code(), second.errorCode(), second.errorMessage());
            assertEquals(2, first.baseOffset());
            assertEquals(2, second.baseOffset());
        }
        assertEquals(3, log.endOffset(TOPIC, 0));
    }

    @Test
    void produce_sequenceGap_outOfOrder() throws IOException {
        try (RawKafkaClient c = authenticated()) {
            ProduceResponseData.PartitionProduceResponse ok = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) -1, MemoryRecords.withIdempotentRecords(Compression.NONE, 2_000L,
                            (short) 0, 0, new SimpleRecord(5L, null, "a".getBytes(StandardCharsets.UTF_8))))));
            assertEquals(Errors.NONE.code(), ok.errorCode(), ok.errorMessage());
            ProduceResponseData.PartitionProduceResponse gap = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) -1, MemoryRecords.withIdempotentRecords(Compression.NONE, 2_000L,
                            (short) 0, 5, new SimpleRecord(6L, null, "b".getBytes(StandardCharsets.UTF_8))))));
            assertEquals(Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code(), gap.errorCode());
        }
        assertEquals(1, log.endOffset(TOPIC, 0));
    }

    /** A copy of the records' bytes with one byte changed. */
    private static MemoryRecords withByte(MemoryRecords records, int position, int value) {
        ByteBuffer b = ByteBuffer.allocate(records.sizeInBytes()).put(records.buffer().duplicate());
        b.put(position, (byte) value).flip();
        return MemoryRecords.readableRecords(b);
    }

    @Test
    void produce_corruptCrc_corruptMessage() throws IOException {
        MemoryRecords records = twoRecords();
        int last = records.sizeInBytes() - 1;
        MemoryRecords corrupt = withByte(records, last, records.buffer().get(last) ^ 0x40);
        try (RawKafkaClient c = authenticated()) {
            ProduceResponseData.PartitionProduceResponse r = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) 1, corrupt)));
            assertEquals(Errors.CORRUPT_MESSAGE.code(), r.errorCode());
        }
        assertEquals(0, log.endOffset(TOPIC, 0));
    }

    @Test
    void produce_unknownMagic_corruptMessage() throws IOException {
        MemoryRecords corrupt = withByte(twoRecords(), 16, 60); // the magic byte of the batch header
        try (RawKafkaClient c = authenticated()) {
            ProduceResponseData.PartitionProduceResponse r = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) 1, corrupt)));
            assertEquals(Errors.CORRUPT_MESSAGE.code(), r.errorCode());
            // and the connection is still in use
            assertEquals(Errors.NONE.code(), produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) 1, twoRecords()))).errorCode());
        }
    }

    @Test
    void produce_unknownTopic() throws IOException {
        try (RawKafkaClient c = authenticated()) {
            ProduceResponseData.PartitionProduceResponse r = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce("missing", 0, (short) 1, twoRecords())));
            assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION.code(), r.errorCode());
        }
        assertFalse(log.topics().contains("missing"));
    }

    @Test
    void produce_v2_closes() throws IOException {
        try (RawKafkaClient c = authenticated()) {
            c.sendFrame(c.frame(ApiKeys.PRODUCE, (short) 2, (short) 3, produce(TOPIC, 0, (short) 1, twoRecords())));
            assertTrue(c.isClosedByPeer(3_000));
        }
        assertEquals(0, log.endOffset(TOPIC, 0));
    }

    // ---- Admission -----------------------------------------------------------------------------

    /** Refuses values that start with "bad"; remembers what it dead-lettered. */
    private static final class RefuseBad implements RecordAdmission {
        final List<String> deadLettered = Collections.synchronizedList(new ArrayList<>());

        @Override
        public Verdict admit(String topic, byte[] key, byte[] value, long timestamp) {
            return new String(value, StandardCharsets.UTF_8).startsWith("bad") ? Verdict.refuse("not an event")
                    : Verdict.keep(value);
        }

        @Override
        public void deadLetter(String topic, int partition, byte[] key, byte[] value, long timestamp, String reason) {
            deadLettered.add(topic + "-" + partition + " " + new String(value, StandardCharsets.UTF_8) + " " + reason);
        }
    }

    @Test
    void produce_refusedRecord_invalidRecordNothingAppended() throws IOException {
        RefuseBad admission = new RefuseBad();
        listener = start(admission, KafkaListener.DEFAULT_MAX_CONNECTIONS);
        MemoryRecords batch = MemoryRecords.withRecords(Compression.NONE,
                new SimpleRecord(1L, null, "good-0".getBytes(StandardCharsets.UTF_8)),
                new SimpleRecord(2L, null, "bad-1".getBytes(StandardCharsets.UTF_8)),
                new SimpleRecord(3L, null, "good-2".getBytes(StandardCharsets.UTF_8)));
        try (RawKafkaClient c = authenticated()) {
            ProduceResponseData.PartitionProduceResponse r = produced(c.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) -1, batch)));
            assertEquals(Errors.INVALID_RECORD.code(), r.errorCode());
            assertEquals(1, r.recordErrors().size());
            assertEquals(1, r.recordErrors().get(0).batchIndex());
            assertEquals("not an event", r.recordErrors().get(0).batchIndexErrorMessage());
        }
        assertEquals(0, log.endOffset(TOPIC, 0));
        assertEquals(List.of(TOPIC + "-0 bad-1 not an event"), admission.deadLettered);
    }

    // ---- Fetch and ListOffsets -----------------------------------------------------------------

    private void appendThree() throws IOException {
        log.append(TOPIC, 0, List.of(new LogRecord(1_000L, null, "r0".getBytes(StandardCharsets.UTF_8)),
                new LogRecord(2_000L, "k".getBytes(StandardCharsets.UTF_8), "r1".getBytes(StandardCharsets.UTF_8)),
                new LogRecord(3_000L, null, "r2".getBytes(StandardCharsets.UTF_8))));
    }

    private static List<String> values(FetchResponseData.PartitionData pd) {
        List<String> out = new ArrayList<>();
        for (Record r : ((MemoryRecords) pd.records()).records()) {
            out.add(r.offset() + ":" + Utils.utf8(r.value()));
        }
        return out;
    }

    private static FetchResponseData.PartitionData fetched(FetchResponseData r) {
        assertEquals(Errors.NONE.code(), r.errorCode());
        return r.responses().get(0).partitions().get(0);
    }

    @ParameterizedTest
    @ValueSource(shorts = {4, 12})
    void fetch_fromOffset_andBeyondTheEnd(short version) throws IOException {
        appendThree();
        try (RawKafkaClient c = authenticated()) {
            FetchResponseData.PartitionData pd = fetched(c.call(ApiKeys.FETCH, version,
                    ListenerFuzzTest.fetchRequest(TOPIC, 0, 1, 0)));
            assertEquals(Errors.NONE.code(), pd.errorCode());
            assertEquals(List.of("1:r1", "2:r2"), values(pd));
            assertEquals(3, pd.highWatermark());
            FetchResponseData.PartitionData beyond = fetched(c.call(ApiKeys.FETCH, version,
                    ListenerFuzzTest.fetchRequest(TOPIC, 0, 4, 0)));
            assertEquals(Errors.OFFSET_OUT_OF_RANGE.code(), beyond.errorCode());
        }
    }

    @Test
    void fetch_longPoll_returnsSoonAfterAProduce() throws Exception {
        try (RawKafkaClient consumer = authenticated(); RawKafkaClient producer = authenticated()) {
            long started = System.nanoTime();
            int id = consumer.send(ApiKeys.FETCH, (short) 12, ListenerFuzzTest.fetchRequest(TOPIC, 0, 0, 2_000));
            CompletableFuture<RawKafkaClient.Response<FetchResponseData>> answer = CompletableFuture.supplyAsync(() -> {
                try {
                    return consumer.receive(ApiKeys.FETCH, (short) 12);
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                }
            });
            Thread.sleep(300);
            assertFalse(answer.isDone(), "answered before there were records");
            assertEquals(Errors.NONE.code(), produced(producer.call(ApiKeys.PRODUCE, (short) 12,
                    produce(TOPIC, 0, (short) 1, twoRecords()))).errorCode());
            RawKafkaClient.Response<FetchResponseData> r = answer.get(5, TimeUnit.SECONDS);
            long millis = (System.nanoTime() - started) / 1_000_000;
            assertEquals(id, r.correlationId());
            assertEquals(List.of("0:v1", "1:v2"), values(fetched(r.body())));
            assertTrue(millis < 1_500, "the long poll took " + millis + " ms");
        }
    }

    @Test
    void fetch_nothingToReturn_waitsMaxWait() throws IOException {
        try (RawKafkaClient c = authenticated()) {
            long started = System.nanoTime();
            FetchResponseData.PartitionData pd = fetched(c.call(ApiKeys.FETCH, (short) 12,
                    ListenerFuzzTest.fetchRequest(TOPIC, 0, 0, 1_000)));
            long millis = (System.nanoTime() - started) / 1_000_000;
            assertEquals(Errors.NONE.code(), pd.errorCode());
            assertEquals(0, pd.records().sizeInBytes());
            assertTrue(millis >= 950 && millis < 2_500, "waited " + millis + " ms for max_wait_ms 1000");
        }
    }

    @Test
    void fetch_longPollOfAClientThatLeft_connectionEnds() throws Exception {
        try (RawKafkaClient c = authenticated()) {
            c.send(ApiKeys.FETCH, (short) 12, ListenerFuzzTest.fetchRequest(TOPIC, 0, 0, 600_000));
            Thread.sleep(100);
            assertEquals(1, listener.connections());
        }
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
        while (listener.connections() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(0, listener.connections(), "a fetch waiting for max_wait_ms 600000 holds its connection");
    }

    @ParameterizedTest
    @ValueSource(shorts = {1, 3, 4, 9})
    void listOffsets_earliestLatestAndByTimestamp(short version) throws IOException {
        appendThree();
        try (RawKafkaClient c = authenticated()) {
            ListOffsetsResponseData r = c.call(ApiKeys.LIST_OFFSETS, version, new ListOffsetsRequestData()
                    .setReplicaId(-1).setTopics(List.of(new ListOffsetsRequestData.ListOffsetsTopic().setName(TOPIC)
                            .setPartitions(List.of(partition(0, -2), partition(0, -1), partition(0, 2_500),
                                    partition(0, 9_999))))));
            List<ListOffsetsResponseData.ListOffsetsPartitionResponse> ps = r.topics().get(0).partitions();
            for (ListOffsetsResponseData.ListOffsetsPartitionResponse p : ps) {
                assertEquals(Errors.NONE.code(), p.errorCode());
            }
            assertEquals(0, ps.get(0).offset(), "earliest");
            assertEquals(3, ps.get(1).offset(), "latest");
            assertEquals(2, ps.get(2).offset(), "the first record at or after 2500");
            assertEquals(3_000, ps.get(2).timestamp());
            assertEquals(-1, ps.get(3).offset(), "no record at or after 9999");
        }
    }

    private static ListOffsetsRequestData.ListOffsetsPartition partition(int index, long timestamp) {
        return new ListOffsetsRequestData.ListOffsetsPartition().setPartitionIndex(index).setTimestamp(timestamp);
    }

    // ---- Credentials, addresses, connections ---------------------------------------------------

    @Test
    void credentials_createdOwnerOnly_sameOnReload() throws IOException {
        Path file = dir.resolve("kafka-credentials");
        ListenerCredentials.Loaded first = ListenerCredentials.loadOrCreate(file);
        assertTrue(first.created());
        assertEquals(PosixFilePermissions.fromString("rw-------"), Files.getPosixFilePermissions(file));
        ListenerCredentials.Loaded second = ListenerCredentials.loadOrCreate(file);
        assertFalse(second.created());
        assertEquals(first.credentials(), second.credentials());
    }

    @Test
    void credentials_withoutPasswordLine_refused() throws IOException {
        Path file = dir.resolve("kafka-credentials");
        Files.writeString(file, "username=alice\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ListenerCredentials.loadOrCreate(file));
        assertTrue(e.getMessage().contains("password=") && e.getMessage().contains(file.toString()), e.getMessage());
    }

    @Test
    void start_nonLoopback_refusedUnlessAllowed() throws IOException {
        KafkaListener.Settings any = new KafkaListener.Settings(new InetSocketAddress("0.0.0.0", 0), false, CREDENTIALS,
                RecordAdmission.ANY);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> KafkaListener.start(log, any, Time.SYSTEM));
        assertTrue(e.getMessage().contains("--kafka-listener-allow-remote"), e.getMessage());
        InetAddress own = InetAddress.getLocalHost();
        if (!own.isLoopbackAddress()) {
            assertThrows(IllegalArgumentException.class, () -> KafkaListener.start(log,
                    new KafkaListener.Settings(new InetSocketAddress(own, 0), false, CREDENTIALS, RecordAdmission.ANY),
                    Time.SYSTEM));
        }
        try (KafkaListener remote = KafkaListener.start(log, new KafkaListener.Settings(
                new InetSocketAddress("0.0.0.0", 0), true, CREDENTIALS, RecordAdmission.ANY), Time.SYSTEM)) {
            assertTrue(remote.address().getPort() > 0);
            assertTrue(remote.address().getAddress().isAnyLocalAddress());
        }
    }

    @Test
    void connections_beyondTheLimit_closed() throws Exception {
        listener = start(RecordAdmission.ANY, 2);
        RawKafkaClient first = authenticated();
        try (RawKafkaClient second = authenticated()) {
            assertEquals(2, listener.connections());
            try (RawKafkaClient third = client()) {
                assertTrue(third.isClosedByPeer(3_000), "a third connection stays open");
            }
            first.close();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
            while (listener.connections() > 1 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            try (RawKafkaClient fourth = authenticated()) {
                assertEquals(2, listener.connections());
                for (RawKafkaClient open : List.of(second, fourth)) {
                    assertEquals(2, open.<MetadataResponseData>call(ApiKeys.METADATA, (short) 12,
                            new MetadataRequestData().setTopics(null)).topics().size());
                }
            }
        } finally {
            first.close();
        }
    }
}
