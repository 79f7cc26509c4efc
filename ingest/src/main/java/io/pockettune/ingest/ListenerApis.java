package io.pockettune.ingest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentSkipListSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.message.ApiMessageType;
import org.apache.kafka.common.message.ApiVersionsResponseData;
import org.apache.kafka.common.message.FetchRequestData;
import org.apache.kafka.common.message.FetchResponseData;
import org.apache.kafka.common.message.FindCoordinatorRequestData;
import org.apache.kafka.common.message.FindCoordinatorResponseData;
import org.apache.kafka.common.message.HeartbeatRequestData;
import org.apache.kafka.common.message.InitProducerIdRequestData;
import org.apache.kafka.common.message.InitProducerIdResponseData;
import org.apache.kafka.common.message.JoinGroupRequestData;
import org.apache.kafka.common.message.LeaveGroupRequestData;
import org.apache.kafka.common.message.ListOffsetsRequestData;
import org.apache.kafka.common.message.ListOffsetsResponseData;
import org.apache.kafka.common.message.MetadataRequestData;
import org.apache.kafka.common.message.MetadataResponseData;
import org.apache.kafka.common.message.OffsetCommitRequestData;
import org.apache.kafka.common.message.OffsetFetchRequestData;
import org.apache.kafka.common.message.ProduceRequestData;
import org.apache.kafka.common.message.ProduceResponseData;
import org.apache.kafka.common.message.SaslAuthenticateRequestData;
import org.apache.kafka.common.message.SaslAuthenticateResponseData;
import org.apache.kafka.common.message.SaslHandshakeRequestData;
import org.apache.kafka.common.message.SaslHandshakeResponseData;
import org.apache.kafka.common.message.SyncGroupRequestData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.MemoryRecordsBuilder;
import org.apache.kafka.common.record.internal.MutableRecordBatch;
import org.apache.kafka.common.record.internal.Record;
import org.apache.kafka.common.record.internal.RecordBatch;
import org.apache.kafka.common.requests.RequestHeader;
import org.apache.kafka.common.requests.RequestUtils;
import org.apache.kafka.common.requests.ResponseHeader;
import org.apache.kafka.common.utils.Time;

/**
 * The request handlers of a {@link KafkaListener}: what each supported API does over the
 * {@link EmbeddedLog}. Requests and responses are the generated message classes of
 * {@code kafka-clients}; this class decides only what goes into them.
 *
 * <p>{@link #SUPPORTED} is the capability table, the versions advertised in ApiVersions. Produce is
 * advertised from v0 because librdkafka refuses a broker that does not (KAFKA-18659), but the
 * message classes read v3 and later only, and so does every client that speaks message format v2:
 * an older request closes the connection.
 *
 * <p>Thread-safe: connections call {@link #handle} concurrently, each with its own {@link Session}.
 */
final class ListenerApis implements AutoCloseable {

    /** The only node of the one-node cluster the listener presents. */
    static final int NODE_ID = 1;
    /** How often a fetch waiting for records looks whether its client closed the connection. */
    private static final long PEER_CHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(200);
    /** Records read from the log at a time while filling a fetch. */
    private static final int FETCH_RECORDS_PER_READ = 500;

    /** An advertised version range. */
    record Range(short min, short max) {
        boolean covers(short v) {
            return v >= min && v <= max;
        }
    }

    static final Map<ApiKeys, Range> SUPPORTED = supported();

    private static Map<ApiKeys, Range> supported() {
        Map<ApiKeys, Range> m = new EnumMap<>(ApiKeys.class);
        m.put(ApiKeys.PRODUCE, new Range((short) 0, (short) 12));
        m.put(ApiKeys.FETCH, new Range((short) 4, (short) 12));
        m.put(ApiKeys.LIST_OFFSETS, new Range((short) 1, (short) 9));
        m.put(ApiKeys.METADATA, new Range((short) 0, (short) 12));
        m.put(ApiKeys.OFFSET_COMMIT, new Range((short) 2, (short) 9));
        m.put(ApiKeys.OFFSET_FETCH, new Range((short) 1, (short) 9));
        m.put(ApiKeys.FIND_COORDINATOR, new Range((short) 0, (short) 5));
        m.put(ApiKeys.JOIN_GROUP, new Range((short) 2, (short) 9));
        m.put(ApiKeys.HEARTBEAT, new Range((short) 0, (short) 4));
        m.put(ApiKeys.LEAVE_GROUP, new Range((short) 0, (short) 5));
        m.put(ApiKeys.SYNC_GROUP, new Range((short) 0, (short) 5));
        m.put(ApiKeys.SASL_HANDSHAKE, new Range((short) 0, (short) 1));
        m.put(ApiKeys.API_VERSIONS, new Range((short) 0, (short) 4));
        m.put(ApiKeys.INIT_PRODUCER_ID, new Range((short) 0, (short) 5));
        m.put(ApiKeys.SASL_AUTHENTICATE, new Range((short) 0, (short) 2));
        return Collections.unmodifiableMap(m);
    }

    /** The lowest Produce version whose request the message classes can read. */
    private static final short PRODUCE_MIN_READABLE = ApiKeys.PRODUCE.oldestVersion();

    /** A request that cannot be answered: its connection is closed. */
    static final class Malformed extends RuntimeException {
        Malformed(String message) {
            super(message);
        }

        Malformed(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** What a connection knows about itself. */
    static final class Session {
        private final String peer;
        private final String localHost;
        private final int localPort;
        private final String clientHost;
        private volatile boolean authenticated;
        private boolean handshaken;
        private boolean rawTokenNext;
        private volatile BooleanSupplier peerGone = () -> false;

        Session(String peer, String localHost, int localPort, String clientHost) {
            this.peer = peer;
            this.localHost = localHost;
            this.localPort = localPort;
            this.clientHost = clientHost;
        }

        String peer() {
            return peer;
        }

        /** Sets how a waiting handler learns, on the connection's reader thread, that the client closed. */
        void watchPeer(BooleanSupplier gone) {
            this.peerGone = gone;
        }

        /** @return whether the client closed its end (checked on the connection's reader thread) */
        boolean clientGone() {
            return peerGone.getAsBoolean();
        }

        void closed() {
            authenticated = false;
        }
    }

    /** A reply to one request, written in request order; it may wait (for an fsync) first. */
    interface Reply {
        /** Marks the end of a connection's replies. */
        Reply END = () -> null;

        /** @return the response frame without its size prefix, or null to send nothing */
        ByteBuffer await() throws IOException, InterruptedException;

        /** @return whether the connection closes after this reply */
        default boolean closesAfter() {
            return false;
        }

        static Reply now(ByteBuffer frame) {
            return () -> frame;
        }

        static Reply thenClose(ByteBuffer frame) {
            return new Reply() {
                @Override
                public ByteBuffer await() {
                    return frame;
                }

                @Override
                public boolean closesAfter() {
                    return true;
                }
            };
        }
    }

    private final EmbeddedLog log;
    private final ListenerCredentials credentials;
    private final RecordAdmission admission;
    private final Map<ApiKeys, Set<Short>> versionsUsed;
    private final ListenerGroups groups;
    private final String clusterId;
    private final AtomicLong nextProducerId;
    private final Map<String, Uuid> topicIds = new ConcurrentHashMap<>();

    ListenerApis(EmbeddedLog log, ListenerCredentials credentials, RecordAdmission admission, Time time,
            Map<ApiKeys, Set<Short>> versionsUsed) {
        this.log = log;
        this.credentials = credentials;
        this.admission = admission;
        this.versionsUsed = versionsUsed;
        this.groups = new ListenerGroups(log, time);
        this.clusterId = Base64.getUrlEncoder().withoutPadding()
                .encodeToString(digest("pockettune-cluster:" + log.directory().toAbsolutePath())).substring(0, 22);
        this.nextProducerId = new AtomicLong(Math.max(log.maxProducerId() + 1, time.milliseconds() * 1000));
    }

    /**
     * Handles one request frame.
     *
     * @return the reply, or null when the request gets none (acks=0 produce)
     * @throws Malformed when the connection must close
     */
    Reply handle(Session s, ByteBuffer frame) throws InterruptedException {
        if (s.rawTokenNext) {
            s.rawTokenNext = false;
            byte[] token = new byte[frame.remaining()];
            frame.get(token);
            if (!authenticate(s, token)) {
                throw new Malformed("SASL/PLAIN authentication failed: wrong user name or password");
            }
            return Reply.now(ByteBuffer.allocate(0));
        }
        RequestHeader header;
        try {
            header = RequestHeader.parse(frame);
        } catch (RuntimeException e) {
            throw new Malformed("an undecodable request header (" + e.getMessage() + ")", e);
        }
        ApiKeys key = header.apiKey();
        short version = header.apiVersion();
        if (key == ApiKeys.API_VERSIONS) {
            return apiVersions(header, frame);
        }
        Range range = SUPPORTED.get(key);
        if (range == null || !range.covers(version) || (key == ApiKeys.PRODUCE && version < PRODUCE_MIN_READABLE)) {
            throw new Malformed(key.name + " v" + version + " is not served (see ApiVersions for what is)");
        }
        if (!s.authenticated && key != ApiKeys.SASL_HANDSHAKE && key != ApiKeys.SASL_AUTHENTICATE) {
            throw new Malformed(key.name + " before SASL/PLAIN authentication: configure the client with"
                    + " security.protocol=SASL_PLAINTEXT and sasl.mechanism=PLAIN");
        }
        ApiMessage request = parse(key, version, frame);
        versionsUsed.computeIfAbsent(key, k -> new ConcurrentSkipListSet<>()).add(version);
        switch (key) {
            case SASL_HANDSHAKE:
                return saslHandshake(s, header, (SaslHandshakeRequestData) request);
            case SASL_AUTHENTICATE:
                return saslAuthenticate(s, header, (SaslAuthenticateRequestData) request);
            case METADATA:
                return reply(header, metadata(s, (MetadataRequestData) request, version));
            case PRODUCE:
                return produce(header, (ProduceRequestData) request, version);
            case FETCH:
                return reply(header, fetch(s, (FetchRequestData) request, version));
            case LIST_OFFSETS:
                return reply(header, listOffsets((ListOffsetsRequestData) request, version));
            case INIT_PRODUCER_ID:
                return reply(header, initProducerId((InitProducerIdRequestData) request));
            case FIND_COORDINATOR:
                return reply(header, findCoordinator(s, (FindCoordinatorRequestData) request, version));
            case JOIN_GROUP:
                return reply(header, groups.joinGroup((JoinGroupRequestData) request, version,
                        header.clientId(), s.clientHost, s::clientGone));
            case SYNC_GROUP:
                return reply(header, groups.syncGroup((SyncGroupRequestData) request, version, s::clientGone));
            case HEARTBEAT:
                return reply(header, groups.heartbeat((HeartbeatRequestData) request, version));
            case LEAVE_GROUP:
                return reply(header, groups.leaveGroup((LeaveGroupRequestData) request, version));
            case OFFSET_COMMIT:
                return reply(header, groups.commitOffsets((OffsetCommitRequestData) request, version));
            case OFFSET_FETCH:
                return reply(header, groups.fetchOffsets((OffsetFetchRequestData) request, version));
            default:
                throw new Malformed(key.name + " is not served");
        }
    }

    private static ApiMessage parse(ApiKeys key, short version, ByteBuffer frame) {
        try {
            ApiMessage message = ApiMessageType.fromApiKey(key.id).newRequest();
            message.read(new ByteBufferAccessor(frame), version);
            return message;
        } catch (RuntimeException e) {
            throw new Malformed("an undecodable " + key.name + " v" + version + " request (" + e + ")", e);
        }
    }

    private static Reply reply(RequestHeader header, ApiMessage response) {
        return Reply.now(serialize(header, response));
    }

    private static ByteBuffer serialize(RequestHeader header, ApiMessage response) {
        ResponseHeader rh = header.toResponseHeader();
        return RequestUtils.serialize(rh.data(), rh.headerVersion(), response, header.apiVersion());
    }

    // ---- ApiVersions and SASL --------------------------------------------------------------

    private Reply apiVersions(RequestHeader header, ByteBuffer frame) {
        short version = header.apiVersion();
        ApiVersionsResponseData response = new ApiVersionsResponseData().setThrottleTimeMs(0);
        ApiVersionsResponseData.ApiVersionCollection keys = new ApiVersionsResponseData.ApiVersionCollection();
        SUPPORTED.forEach((k, r) -> keys.add(new ApiVersionsResponseData.ApiVersion().setApiKey(k.id)
                .setMinVersion(r.min()).setMaxVersion(r.max())));
        response.setApiKeys(keys);
        short answerVersion = version;
        if (!SUPPORTED.get(ApiKeys.API_VERSIONS).covers(version)) {
            // A newer client: answer in v0, which every client can read, so that it retries lower.
            response.setErrorCode(Errors.UNSUPPORTED_VERSION.code());
            answerVersion = 0;
        } else {
            parse(ApiKeys.API_VERSIONS, version, frame);
            versionsUsed.computeIfAbsent(ApiKeys.API_VERSIONS, k -> new ConcurrentSkipListSet<>()).add(version);
        }
        // The response header of ApiVersions is always v0 (the client cannot know the version yet).
        ResponseHeader rh = new ResponseHeader(header.correlationId(), (short) 0);
        return Reply.now(RequestUtils.serialize(rh.data(), (short) 0, response, answerVersion));
    }

    private Reply saslHandshake(Session s, RequestHeader header, SaslHandshakeRequestData request) {
        SaslHandshakeResponseData response = new SaslHandshakeResponseData().setMechanisms(List.of("PLAIN"));
        if (s.authenticated || s.handshaken) {
            response.setErrorCode(Errors.ILLEGAL_SASL_STATE.code());
            return Reply.thenClose(serialize(header, response));
        }
        if (!"PLAIN".equals(request.mechanism())) {
            response.setErrorCode(Errors.UNSUPPORTED_SASL_MECHANISM.code());
            return Reply.thenClose(serialize(header, response));
        }
        s.handshaken = true;
        s.rawTokenNext = header.apiVersion() == 0; // v0: the token follows as a bare frame
        return reply(header, response);
    }

    private Reply saslAuthenticate(Session s, RequestHeader header, SaslAuthenticateRequestData request) {
        SaslAuthenticateResponseData response = new SaslAuthenticateResponseData().setAuthBytes(new byte[0]);
        if (s.authenticated || !s.handshaken) {
            response.setErrorCode(Errors.ILLEGAL_SASL_STATE.code())
                    .setErrorMessage("SaslAuthenticate must follow one SaslHandshake for PLAIN");
            return Reply.thenClose(serialize(header, response));
        }
        if (!authenticate(s, request.authBytes())) {
            response.setErrorCode(Errors.SASL_AUTHENTICATION_FAILED.code())
                    .setErrorMessage("Authentication failed: invalid username or password (see the data directory's"
                            + " kafka-credentials file)");
            return Reply.thenClose(serialize(header, response));
        }
        return reply(header, response.setSessionLifetimeMs(0));
    }

    /** Checks a SASL/PLAIN token: [authzid] NUL authcid NUL passwd (RFC 4616). */
    private boolean authenticate(Session s, byte[] token) {
        int first = indexOf(token, 0);
        int second = first < 0 ? -1 : indexOf(token, first + 1);
        if (second < 0 || indexOf(token, second + 1) >= 0) {
            return false;
        }
        String authzid = new String(token, 0, first, StandardCharsets.UTF_8);
        String user = new String(token, first + 1, second - first - 1, StandardCharsets.UTF_8);
        String password = new String(token, second + 1, token.length - second - 1, StandardCharsets.UTF_8);
        boolean ok = credentials.matches(user, password) && (authzid.isEmpty() || authzid.equals(user));
        s.authenticated = ok;
        return ok;
    }

    private static int indexOf(byte[] bytes, int from) {
        for (int i = from; i < bytes.length; i++) {
            if (bytes[i] == 0) {
                return i;
            }
        }
        return -1;
    }

    // ---- Metadata and coordinators ------------------------------------------------------------

    private MetadataResponseData metadata(Session s, MetadataRequestData request, short version) {
        // Fields a version lacks must keep their defaults, or serialization refuses the response.
        MetadataResponseData response = new MetadataResponseData().setThrottleTimeMs(0)
                .setClusterId(version >= 2 ? clusterId : null).setControllerId(version >= 1 ? NODE_ID : -1);
        response.brokers().add(new MetadataResponseData.MetadataResponseBroker().setNodeId(NODE_ID)
                .setHost(s.localHost).setPort(s.localPort).setRack(null));
        Set<String> existing = log.topics();
        List<String> names = new ArrayList<>();
        List<Uuid> unknownIds = new ArrayList<>();
        if (request.topics() == null || (version == 0 && request.topics().isEmpty())) {
            names.addAll(existing);
        } else {
            for (MetadataRequestData.MetadataRequestTopic t : request.topics()) {
                if (t.name() != null) {
                    names.add(t.name());
                } else {
                    Optional<String> byId = existing.stream().filter(n -> topicId(n).equals(t.topicId())).findFirst();
                    if (byId.isPresent()) {
                        names.add(byId.get());
                    } else {
                        unknownIds.add(t.topicId());
                    }
                }
            }
        }
        for (String name : names) {
            MetadataResponseData.MetadataResponseTopic topic = new MetadataResponseData.MetadataResponseTopic()
                    .setName(name).setIsInternal(false);
            if (!existing.contains(name)) {
                topic.setErrorCode(Errors.UNKNOWN_TOPIC_OR_PARTITION.code());
            } else {
                if (version >= 10) {
                    topic.setTopicId(topicId(name));
                }
                int partitions = log.partitionCount(name);
                for (int p = 0; p < partitions; p++) {
                    topic.partitions().add(new MetadataResponseData.MetadataResponsePartition().setPartitionIndex(p)
                            .setLeaderId(NODE_ID).setLeaderEpoch(version >= 7 ? 0 : -1).setReplicaNodes(List.of(NODE_ID))
                            .setIsrNodes(List.of(NODE_ID)).setOfflineReplicas(List.of()));
                }
            }
            if (response.topics().find(name) == null) {
                response.topics().add(topic);
            }
        }
        for (Uuid id : unknownIds) {
            response.topics().add(new MetadataResponseData.MetadataResponseTopic().setName(null).setTopicId(id)
                    .setErrorCode(Errors.UNKNOWN_TOPIC_ID.code()));
        }
        return response;
    }

    /** A topic's id: stable for its name (the log has no ids), never the reserved zero or one ids. */
    Uuid topicId(String name) {
        return topicIds.computeIfAbsent(name, n -> {
            ByteBuffer b = ByteBuffer.wrap(digest("pockettune-topic:" + n));
            long msb = b.getLong() | 1L << 62;
            return new Uuid(msb, b.getLong());
        });
    }

    private FindCoordinatorResponseData findCoordinator(Session s, FindCoordinatorRequestData request,
            short version) {
        FindCoordinatorResponseData response = new FindCoordinatorResponseData().setThrottleTimeMs(0);
        if (version < 4) {
            return response.setErrorCode(Errors.NONE.code()).setNodeId(NODE_ID).setHost(s.localHost)
                    .setPort(s.localPort).setErrorMessage(null);
        }
        for (String key : request.coordinatorKeys()) {
            response.coordinators().add(new FindCoordinatorResponseData.Coordinator().setKey(key).setNodeId(NODE_ID)
                    .setHost(s.localHost).setPort(s.localPort).setErrorCode(Errors.NONE.code()));
        }
        return response;
    }

    private InitProducerIdResponseData initProducerId(InitProducerIdRequestData request) {
        InitProducerIdResponseData response = new InitProducerIdResponseData().setThrottleTimeMs(0);
        if (request.transactionalId() != null) {
            // Transactions need a transaction coordinator and control records; the device log has neither.
            return response.setErrorCode(Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()).setProducerId(-1)
                    .setProducerEpoch((short) -1);
        }
        if (request.producerId() >= 0 && request.producerEpoch() >= 0 && request.producerEpoch() < Short.MAX_VALUE) {
            // KIP-360: a producer asks to bump its epoch after an error; its sequences restart at 0.
            return response.setProducerId(request.producerId()).setProducerEpoch((short) (request.producerEpoch() + 1));
        }
        return response.setProducerId(nextProducerId.getAndIncrement()).setProducerEpoch((short) 0);
    }

    // ---- Produce ----------------------------------------------------------------------------

    /** One partition's part of a produce request: already answered, or written and awaiting durability. */
    private static final class PartitionWrite {
        final String topic;
        final ProduceResponseData.PartitionProduceResponse response;
        long end = -1;

        PartitionWrite(String topic, ProduceResponseData.PartitionProduceResponse response) {
            this.topic = topic;
            this.response = response;
        }
    }

    private Reply produce(RequestHeader header, ProduceRequestData request, short version) {
        List<PartitionWrite> writes = new ArrayList<>();
        for (ProduceRequestData.TopicProduceData t : request.topicData()) {
            for (ProduceRequestData.PartitionProduceData p : t.partitionData()) {
                ProduceResponseData.PartitionProduceResponse r = new ProduceResponseData.PartitionProduceResponse()
                        .setIndex(p.index()).setBaseOffset(-1).setLogAppendTimeMs(-1).setLogStartOffset(-1);
                PartitionWrite w = new PartitionWrite(t.name(), r);
                if (request.transactionalId() != null) {
                    fail(r, Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactions are not supported by the device log");
                } else {
                    write(t.name(), p, w);
                }
                writes.add(w);
            }
        }
        boolean silent = request.acks() == 0;
        if (silent) {
            for (PartitionWrite w : writes) {
                if (w.response.errorCode() != Errors.NONE.code()) {
                    // Kafka's answer to a failed acks=0 produce: the client notices the closed connection.
                    throw new Malformed("an acks=0 produce to " + w.topic + "-" + w.response.index() + " failed: "
                            + w.response.errorMessage());
                }
            }
        }
        return () -> {
            for (PartitionWrite w : writes) {
                if (w.end >= 0) {
                    try {
                        log.awaitDurable(w.topic, w.response.index(), w.end);
                        if (version >= 5) {
                            w.response.setLogStartOffset(log.startOffset(w.topic, w.response.index()));
                        }
                    } catch (IOException | RuntimeException e) {
                        w.response.setBaseOffset(-1);
                        fail(w.response, Errors.KAFKA_STORAGE_ERROR, "the records were not made durable: " + e.getMessage());
                    }
                }
            }
            if (silent) {
                return null;
            }
            if (version < 8) {
                for (PartitionWrite w : writes) { // no error messages or record errors before v8
                    w.response.setErrorMessage(null).setRecordErrors(new ArrayList<>());
                }
            }
            ProduceResponseData response = new ProduceResponseData().setThrottleTimeMs(0);
            Map<String, ProduceResponseData.TopicProduceResponse> byTopic = new LinkedHashMap<>();
            for (PartitionWrite w : writes) {
                byTopic.computeIfAbsent(w.topic, n -> {
                    ProduceResponseData.TopicProduceResponse tr = new ProduceResponseData.TopicProduceResponse().setName(n);
                    response.responses().add(tr);
                    return tr;
                }).partitionResponses().add(w.response);
            }
            return serialize(header, response);
        };
    }

    private static void fail(ProduceResponseData.PartitionProduceResponse r, Errors error, String message) {
        r.setErrorCode(error.code()).setErrorMessage(message);
    }

    /** Validates, admits and writes one partition's batch; sets the response's error or w.end. */
    private void write(String topic, ProduceRequestData.PartitionProduceData p, PartitionWrite w) {
        ProduceResponseData.PartitionProduceResponse r = w.response;
        int partition = p.index();
        if (topic == null || !log.topics().contains(topic) || partition < 0 || partition >= log.partitionCount(topic)) {
            fail(r, Errors.UNKNOWN_TOPIC_OR_PARTITION, "the device log has no partition " + topic + "-" + partition
                    + " (topics are not created on demand)");
            return;
        }
        if (!(p.records() instanceof MemoryRecords records) || records.sizeInBytes() == 0) {
            fail(r, Errors.INVALID_RECORD, "the produce request holds no record batch for " + topic + "-" + partition);
            return;
        }
        MutableRecordBatch batch = null;
        int batches = 0;
        try {
            for (MutableRecordBatch b : records.batches()) {
                batch = b;
                batches++;
            }
        } catch (KafkaException e) {
            // The batch framing itself is broken (a negative size, an unknown magic): as Kafka answers it.
            fail(r, Errors.CORRUPT_MESSAGE, "the records for " + topic + "-" + partition + " are not record batches: "
                    + e.getMessage());
            return;
        }
        if (batches != 1 || batch.magic() != RecordBatch.MAGIC_VALUE_V2) {
            fail(r, Errors.INVALID_RECORD, "a produce request must carry exactly one record batch of message format v2"
                    + " per partition; this one has " + batches + (batch == null ? "" : " (magic " + batch.magic() + ")"));
            return;
        }
        try {
            batch.ensureValid();
        } catch (KafkaException e) {
            fail(r, Errors.CORRUPT_MESSAGE, "the record batch for " + topic + "-" + partition + " is corrupt: " + e.getMessage());
            return;
        }
        if (batch.isTransactional() || batch.isControlBatch()) {
            fail(r, Errors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional and control batches are not supported");
            return;
        }
        List<LogRecord> accepted = new ArrayList<>();
        List<ProduceResponseData.BatchIndexAndErrorMessage> refused = new ArrayList<>();
        List<byte[][]> refusedRecords = new ArrayList<>();
        List<Long> refusedTimes = new ArrayList<>();
        try {
            int index = 0;
            for (Record record : batch) {
                byte[] key = record.hasKey() ? bytes(record.key()) : null;
                String reason;
                byte[] value = record.hasValue() ? bytes(record.value()) : null;
                if (value == null) {
                    reason = "a null value (a tombstone): the device log is not compacted; send the event as the value";
                } else {
                    RecordAdmission.Verdict verdict = admission.admit(topic, key, value, record.timestamp());
                    reason = verdict.refusal();
                    if (reason == null) {
                        accepted.add(new LogRecord(record.timestamp(), key, verdict.value()));
                    }
                }
                if (reason != null) {
                    refused.add(new ProduceResponseData.BatchIndexAndErrorMessage().setBatchIndex(index)
                            .setBatchIndexErrorMessage(reason));
                    refusedRecords.add(new byte[][] {key, value});
                    refusedTimes.add(record.timestamp());
                }
                index++;
            }
        } catch (KafkaException e) {
            fail(r, Errors.CORRUPT_MESSAGE, "the records of the batch for " + topic + "-" + partition
                    + " cannot be read: " + e.getMessage());
            return;
        }
        if (!refused.isEmpty()) {
            try {
                for (int i = 0; i < refused.size(); i++) {
                    byte[][] kv = refusedRecords.get(i);
                    admission.deadLetter(topic, partition, kv[0], kv[1] == null ? new byte[0] : kv[1], refusedTimes.get(i),
                            refused.get(i).batchIndexErrorMessage());
                }
            } catch (IOException | RuntimeException e) {
                fail(r, Errors.KAFKA_STORAGE_ERROR, "a refused record could not be dead-lettered: " + e.getMessage());
                return;
            }
            r.setRecordErrors(refused);
            fail(r, Errors.INVALID_RECORD, refused.size() + " of the batch's records are not events (the first, record "
                    + refused.get(0).batchIndex() + ": " + refused.get(0).batchIndexErrorMessage()
                    + "); nothing of the batch was appended, and the refused records are in the dead-letter topic");
            return;
        }
        if (accepted.isEmpty()) {
            fail(r, Errors.INVALID_RECORD, "the record batch for " + topic + "-" + partition + " holds no record");
            return;
        }
        try {
            long base;
            if (batch.hasProducerId()) {
                IdempotentWrite written = log.writeIdempotent(topic, partition, accepted,
                        new ProducerBatch(batch.producerId(), batch.producerEpoch(), batch.baseSequence()));
                base = written.baseOffset();
            } else {
                base = log.write(topic, partition, accepted);
            }
            r.setBaseOffset(base);
            w.end = base + accepted.size();
        } catch (OutOfOrderSequenceException e) {
            fail(r, Errors.OUT_OF_ORDER_SEQUENCE_NUMBER, e.getMessage());
        } catch (InvalidProducerEpochException e) {
            fail(r, Errors.INVALID_PRODUCER_EPOCH, e.getMessage());
        } catch (IllegalArgumentException e) {
            fail(r, Errors.RECORD_LIST_TOO_LARGE, e.getMessage());
        } catch (IllegalStateException e) {
            fail(r, Errors.NOT_LEADER_OR_FOLLOWER, "the device log is closing: " + e.getMessage());
        } catch (IOException e) {
            fail(r, Errors.KAFKA_STORAGE_ERROR, e.getMessage());
        }
    }

    private static byte[] bytes(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }

    // ---- Fetch and ListOffsets --------------------------------------------------------------

    private FetchResponseData fetch(Session s, FetchRequestData request, short version) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(Math.max(0, request.maxWaitMs()));
        int maxBytes = version >= 3 && request.maxBytes() > 0 ? request.maxBytes() : Integer.MAX_VALUE;
        while (true) {
            long seen = log.appendVersion();
            FetchResponseData response = new FetchResponseData().setThrottleTimeMs(0).setErrorCode(Errors.NONE.code())
                    .setSessionId(0);
            long total = 0;
            boolean error = false;
            for (FetchRequestData.FetchTopic t : request.topics()) {
                FetchResponseData.FetchableTopicResponse tr = new FetchResponseData.FetchableTopicResponse()
                        .setTopic(t.topic());
                for (FetchRequestData.FetchPartition fp : t.partitions()) {
                    FetchResponseData.PartitionData pd = fetchPartition(t.topic(), fp, maxBytes - total, total == 0,
                            version);
                    total += pd.records() == null ? 0 : pd.records().sizeInBytes();
                    error |= pd.errorCode() != Errors.NONE.code();
                    tr.partitions().add(pd);
                }
                response.responses().add(tr);
            }
            long left = deadline - System.nanoTime();
            if (total >= Math.max(1, request.minBytes()) || error || left <= 0) {
                return response;
            }
            // Waits in slices, looking in between whether the client went away: its connection and
            // threads are not held for a max_wait_ms that may be days.
            while (true) {
                log.awaitAppend(seen, Math.min(left, PEER_CHECK_NANOS));
                if (log.appendVersion() != seen) {
                    break; // new records: fill the response again
                }
                left = deadline - System.nanoTime();
                if (left <= 0 || s.peerGone.getAsBoolean()) {
                    return response; // waited the full max_wait_ms; answer what there is (nothing)
                }
            }
        }
    }

    private FetchResponseData.PartitionData fetchPartition(String topic, FetchRequestData.FetchPartition fp,
            long budget, boolean firstWithData, short version) {
        FetchResponseData.PartitionData pd = new FetchResponseData.PartitionData().setPartitionIndex(fp.partition())
                .setRecords(MemoryRecords.EMPTY).setHighWatermark(-1).setLastStableOffset(-1).setLogStartOffset(-1);
        if (topic == null || !log.topics().contains(topic) || fp.partition() < 0
                || fp.partition() >= log.partitionCount(topic)) {
            return pd.setErrorCode(Errors.UNKNOWN_TOPIC_OR_PARTITION.code());
        }
        long end = log.endOffset(topic, fp.partition());
        long start = log.startOffset(topic, fp.partition());
        pd.setHighWatermark(end).setLastStableOffset(end).setLogStartOffset(version >= 5 ? start : -1);
        long offset = fp.fetchOffset();
        if (offset < start || offset > end) {
            return pd.setErrorCode(Errors.OFFSET_OUT_OF_RANGE.code());
        }
        long limit = Math.min(budget, fp.partitionMaxBytes() <= 0 ? Integer.MAX_VALUE : fp.partitionMaxBytes());
        if (offset == end || (limit <= 0 && !firstWithData)) {
            return pd;
        }
        List<LogEntry> entries = new ArrayList<>();
        long bytes = 0;
        try {
            long next = offset;
            read:
            while (next < end) {
                List<LogEntry> chunk = log.read(topic, fp.partition(), next, FETCH_RECORDS_PER_READ);
                if (chunk.isEmpty()) {
                    break;
                }
                for (LogEntry e : chunk) {
                    long size = 24 + (e.key() == null ? 0 : e.key().length) + e.value().length;
                    if (!entries.isEmpty() && bytes + size > limit) {
                        break read;
                    }
                    entries.add(e);
                    bytes += size;
                }
                next = chunk.get(chunk.size() - 1).offset() + 1;
            }
        } catch (IllegalArgumentException e) {
            return pd.setErrorCode(Errors.OFFSET_OUT_OF_RANGE.code()); // retention removed the segment meanwhile
        } catch (IOException e) {
            return pd.setErrorCode(Errors.KAFKA_STORAGE_ERROR.code());
        }
        if (entries.isEmpty()) {
            return pd;
        }
        MemoryRecordsBuilder builder = MemoryRecords.builder(ByteBuffer.allocate((int) Math.min(bytes + 128, 1 << 30)),
                RecordBatch.CURRENT_MAGIC_VALUE, Compression.NONE, TimestampType.CREATE_TIME, entries.get(0).offset());
        for (LogEntry e : entries) {
            builder.appendWithOffset(e.offset(), e.timestamp(), e.key(), e.value());
        }
        return pd.setRecords(builder.build());
    }

    private ListOffsetsResponseData listOffsets(ListOffsetsRequestData request, short version) {
        ListOffsetsResponseData response = new ListOffsetsResponseData().setThrottleTimeMs(0);
        for (ListOffsetsRequestData.ListOffsetsTopic t : request.topics()) {
            ListOffsetsResponseData.ListOffsetsTopicResponse tr = new ListOffsetsResponseData.ListOffsetsTopicResponse()
                    .setName(t.name());
            for (ListOffsetsRequestData.ListOffsetsPartition p : t.partitions()) {
                ListOffsetsResponseData.ListOffsetsPartitionResponse r = listOffset(t.name(), p);
                if (version < 4) {
                    r.setLeaderEpoch(-1); // leader_epoch is v4+; the message classes refuse to write another value
                }
                tr.partitions().add(r);
            }
            response.topics().add(tr);
        }
        return response;
    }

    private ListOffsetsResponseData.ListOffsetsPartitionResponse listOffset(String topic,
            ListOffsetsRequestData.ListOffsetsPartition p) {
        ListOffsetsResponseData.ListOffsetsPartitionResponse r = new ListOffsetsResponseData.ListOffsetsPartitionResponse()
                .setPartitionIndex(p.partitionIndex()).setTimestamp(-1).setOffset(-1).setLeaderEpoch(0);
        int partition = p.partitionIndex();
        if (topic == null || !log.topics().contains(topic) || partition < 0 || partition >= log.partitionCount(topic)) {
            return r.setErrorCode(Errors.UNKNOWN_TOPIC_OR_PARTITION.code()).setLeaderEpoch(-1);
        }
        long ts = p.timestamp();
        try {
            if (ts == -2 || ts == -4) { // earliest, earliest local
                return r.setOffset(log.startOffset(topic, partition));
            } else if (ts == -1) { // latest
                return r.setOffset(log.endOffset(topic, partition));
            } else if (ts == -5) { // latest tiered: the device has no tiered storage
                return r;
            } else if (ts == -3) { // the record with the largest timestamp (the first of equals)
                long bestTs = Long.MIN_VALUE;
                long bestOffset = -1;
                long next = log.startOffset(topic, partition);
                long end = log.endOffset(topic, partition);
                while (next < end) {
                    List<LogEntry> chunk = log.read(topic, partition, next, FETCH_RECORDS_PER_READ);
                    if (chunk.isEmpty()) {
                        break;
                    }
                    for (LogEntry e : chunk) {
                        if (e.timestamp() > bestTs) {
                            bestTs = e.timestamp();
                            bestOffset = e.offset();
                        }
                    }
                    next = chunk.get(chunk.size() - 1).offset() + 1;
                }
                return bestOffset < 0 ? r : r.setOffset(bestOffset).setTimestamp(bestTs);
            } else if (ts >= 0) {
                Optional<LogEntry> found = log.findByTimestamp(topic, partition, ts);
                return found.map(e -> r.setOffset(e.offset()).setTimestamp(e.timestamp())).orElse(r);
            }
            return r.setErrorCode(Errors.UNSUPPORTED_VERSION.code());
        } catch (IOException e) {
            return r.setErrorCode(Errors.KAFKA_STORAGE_ERROR.code());
        } catch (IllegalArgumentException e) {
            return r.setErrorCode(Errors.OFFSET_NOT_AVAILABLE.code());
        }
    }

    private static byte[] digest(String text) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    @Override
    public void close() {
        groups.close();
    }
}
