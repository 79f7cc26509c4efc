package io.pockettune.ingest;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.UUID;
import java.util.function.BooleanSupplier;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.message.HeartbeatRequestData;
import org.apache.kafka.common.message.HeartbeatResponseData;
import org.apache.kafka.common.message.JoinGroupRequestData;
import org.apache.kafka.common.message.JoinGroupResponseData;
import org.apache.kafka.common.message.LeaveGroupRequestData;
import org.apache.kafka.common.message.LeaveGroupResponseData;
import org.apache.kafka.common.message.OffsetCommitRequestData;
import org.apache.kafka.common.message.OffsetCommitResponseData;
import org.apache.kafka.common.message.OffsetFetchRequestData;
import org.apache.kafka.common.message.OffsetFetchResponseData;
import org.apache.kafka.common.message.SyncGroupRequestData;
import org.apache.kafka.common.message.SyncGroupResponseData;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.utils.Time;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The classic consumer-group coordinator of the Kafka listener: JoinGroup, SyncGroup, Heartbeat,
 * LeaveGroup, OffsetCommit and OffsetFetch over an {@link EmbeddedLog}, answering with
 * kafka-clients' own message classes so that stock clients (the Java {@code KafkaConsumer} with
 * {@code group.protocol=classic}, librdkafka) consume with consumer groups. The connection threads
 * of the listener call it; a call may block, as Kafka's purgatory would hold the response.
 *
 * <h2>Group state</h2>
 * Each group moves through Kafka's states:
 * <pre>
 *   Empty --join--&gt; PreparingRebalance --all joined / timeout--&gt; CompletingRebalance
 *         --leader's SyncGroup--&gt; Stable --join / leave / expiry--&gt; PreparingRebalance
 * </pre>
 * Invariants: a group has members unless it is Empty (or preparing a rebalance that will leave
 * it Empty); {@code generation} grows by one each time a rebalance completes, also when it leaves
 * the group Empty; the leader and the protocol are those of the current generation and are unset
 * while Empty; assignments exist only in Stable and belong to the current generation. A group
 * whose last member left stays in memory as Empty (a few bytes; its offsets are in the log).
 *
 * <h2>Rules chosen</h2>
 * <ul>
 *   <li>Member ids are {@code clientId + "-" + UUID}. From JoinGroup v4 a join without a member id
 *       answers MEMBER_ID_REQUIRED with a fresh id, which is remembered as pending until the
 *       client rejoins with it or its session timeout passes; below v4 the member joins at once.
 *   <li>A rebalance completes as soon as every member has rejoined and no pending member id is
 *       outstanding (so consumers that start together land in one generation), or when the
 *       rebalance timeout expires: the largest {@code rebalance_timeout_ms} of the members when
 *       the rebalance began. Members that did not rejoin by then are removed. There is no
 *       initial delay, so a new group completes as soon as its first member joins.
 *   <li>The leader is the first member to join the new generation. The protocol is the first
 *       one in the leader's list that every member supports (Kafka counts votes instead; both
 *       pick a protocol all members support). A join whose protocol type differs from the
 *       group's, or that shares no protocol with every member, gets INCONSISTENT_GROUP_PROTOCOL.
 *   <li>A join of a known member with unchanged protocols to a Stable group (not the leader) or
 *       to a CompletingRebalance group answers the current generation without a rebalance, as in
 *       Kafka; any other join starts or joins a rebalance. A join of a member whose earlier join
 *       is still blocked (on another connection) supersedes it: the earlier one answers
 *       REBALANCE_IN_PROGRESS. A session timeout of 0 or less gets INVALID_SESSION_TIMEOUT (Kafka's
 *       broker-side minimum and maximum are not enforced); a rebalance timeout of 0 or less, as
 *       JoinGroup v0 implies, means the session timeout.
 *   <li>Members blocked in JoinGroup or SyncGroup are alive; any other member that sends no
 *       JoinGroup, SyncGroup, Heartbeat or OffsetCommit for its {@code session_timeout_ms} is
 *       removed and the group rebalances. A background task checks every
 *       {@link #EXPIRY_CHECK_INTERVAL_MS} against {@link Time}, so expiry happens while nobody
 *       calls and tests drive it with a mock clock.
 *   <li>Static membership ({@code group.instance.id}) is treated as dynamic: the instance id is
 *       kept and reported but fences nothing, so a restarted static member joins under a new
 *       member id and its old id is removed by expiry or the rebalance timeout. LeaveGroup may
 *       name a member by instance id alone.
 *   <li>OffsetCommit with generation -1 to a group without members is a simple commit (a
 *       consumer using {@code assign()}); otherwise an unknown member gets UNKNOWN_MEMBER_ID, a
 *       stale generation ILLEGAL_GENERATION (also for a group this listener never saw), and a
 *       group in CompletingRebalance REBALANCE_IN_PROGRESS; during PreparingRebalance the old
 *       generation may still commit, as consumers do while their partitions are revoked.
 *       Partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION, offsets outside [0, end
 *       offset] OFFSET_OUT_OF_RANGE (the log refuses them). The accepted partitions of a request
 *       are committed by one {@link EmbeddedLog#commitOffsets} call, durable before the answer;
 *       an I/O failure answers COORDINATOR_NOT_AVAILABLE, which clients retry.
 *   <li>The log does not store commit metadata strings, so OffsetFetch returns "" as metadata
 *       and -1 as leader epoch; a partition without a commit (or an unknown group) has offset
 *       -1. {@code require_stable} is ignored: there are no transactions.
 *   <li>A group id that is empty or blank gets INVALID_GROUP_ID (the log cannot store offsets of
 *       a blank group).
 * </ul>
 *
 * <h2>Thread safety</h2>
 * Thread-safe. One monitor guards every group, member and the closed flag; calls hold it only
 * for in-memory work, and blocked calls wait on it, releasing it. The log is called outside it
 * (commits fsync), so a commit validated against a generation can land just after that
 * generation ends; Kafka has the same window between validating and appending a commit.
 * {@link #close()} sets the closed flag and wakes every waiter: blocked calls answer
 * COORDINATOR_NOT_AVAILABLE, as do all later calls, and clients look for the coordinator again.
 */
final class ListenerGroups implements AutoCloseable {

    /** How often a blocked JoinGroup or SyncGroup checks that its client is still connected. */
    static final long CLIENT_CHECK_MS = 200;

    /** How often session timeouts, pending member ids and rebalance timeouts are checked. */
    static final long EXPIRY_CHECK_INTERVAL_MS = 50;
    private static final Logger LOG = LoggerFactory.getLogger(ListenerGroups.class);
    private static final byte[] NO_ASSIGNMENT = new byte[0];

    private enum State { EMPTY, PREPARING_REBALANCE, COMPLETING_REBALANCE, STABLE }

    private final EmbeddedLog log;
    private final Time time;
    /** Guards {@link #groups}, everything in them and {@link #closed}; blocked calls wait on it. */
    private final Object lock = new Object();
    private final Map<String, Group> groups = new HashMap<>();
    private final ScheduledExecutorService expiry;
    private boolean closed;

    ListenerGroups(EmbeddedLog log, Time time) {
        this.log = Objects.requireNonNull(log, "log");
        this.time = Objects.requireNonNull(time, "time");
        expiry = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "pockettune-listener-groups");
            t.setDaemon(true);
            return t;
        });
        expiry.scheduleWithFixedDelay(this::expire, EXPIRY_CHECK_INTERVAL_MS, EXPIRY_CHECK_INTERVAL_MS,
                TimeUnit.MILLISECONDS);
    }

    /** A consumer group's membership; guarded by {@link #lock}. */
    private static final class Group {
        final String id;
        State state = State.EMPTY;
        int generation;
        String protocolType;
        String protocolName;
        String leader;
        /** In order of first join. */
        final Map<String, Member> members = new LinkedHashMap<>();
        /** Member ids handed out with MEMBER_ID_REQUIRED, with the time at which they lapse. */
        final Map<String, Long> pending = new HashMap<>();
        long rebalanceDeadline;
        /** Counts the joins of the rebalance in progress; orders them to pick the leader. */
        int joins;

        Group(String id) {
            this.id = id;
        }
    }

    /** A member of a group; guarded by {@link #lock}. */
    private static final class Member {
        final String id;
        String instanceId;
        int sessionTimeoutMs;
        int rebalanceTimeoutMs;
        /** Protocol name to metadata, in the member's order of preference. */
        Map<String, byte[]> protocols = Map.of();
        long lastSeen;
        /** Position among the joins of the rebalance in progress; -1 until the member rejoins. */
        int joinedAt = -1;
        /** Calls of this member blocked here; while any is, the member does not expire. */
        int blocked;
        JoinWaiter waiter;
        byte[] assignment;
        boolean removed;

        Member(String id) {
            this.id = id;
        }
    }

    /** A JoinGroup call waiting for the rebalance; gets its response when the rebalance ends. */
    private static final class JoinWaiter {
        final short version;
        JoinGroupResponseData response;

        JoinWaiter(short version) {
            this.version = version;
        }
    }

    /**
     * Joins (or rejoins) a member, blocking until the rebalance completes.
     *
     * @return the new generation, with every member's metadata for the leader only; or an error
     */
    JoinGroupResponseData joinGroup(JoinGroupRequestData request, short version, String clientId, String clientHost)
            throws InterruptedException {
        return joinGroup(request, version, clientId, clientHost, () -> false);
    }

    /**
     * {@link #joinGroup(JoinGroupRequestData, short, String, String)}, giving up the wait once
     * {@code clientGone} says the client closed its connection (it is checked every
     * {@link #CLIENT_CHECK_MS}): the member then counts as silent and its session timeout removes it.
     */
    JoinGroupResponseData joinGroup(JoinGroupRequestData request, short version, String clientId, String clientHost,
            BooleanSupplier clientGone) throws InterruptedException {
        String memberId = request.memberId() == null ? "" : request.memberId();
        synchronized (lock) {
            if (closed) {
                return joinError(Errors.COORDINATOR_NOT_AVAILABLE, memberId, version);
            }
            if (!validGroupId(request.groupId())) {
                return joinError(Errors.INVALID_GROUP_ID, memberId, version);
            }
            if (request.sessionTimeoutMs() <= 0) {
                return joinError(Errors.INVALID_SESSION_TIMEOUT, memberId, version);
            }
            if (request.protocolType() == null || request.protocolType().isEmpty() || request.protocols().isEmpty()) {
                return joinError(Errors.INCONSISTENT_GROUP_PROTOCOL, memberId, version);
            }
            long now = time.milliseconds();
            Group group = groups.computeIfAbsent(request.groupId(), Group::new);
            if (!accepts(group, memberId, request)) {
                return joinError(Errors.INCONSISTENT_GROUP_PROTOCOL, memberId, version);
            }
            Member member;
            boolean isNew;
            if (memberId.isEmpty()) {
                String fresh = (clientId == null ? "" : clientId) + "-" + UUID.randomUUID();
                if (version >= 4) {
                    group.pending.put(fresh, now + request.sessionTimeoutMs());
                    return joinError(Errors.MEMBER_ID_REQUIRED, fresh, version);
                }
                member = new Member(fresh);
                isNew = true;
            } else if (group.pending.remove(memberId) != null) {
                member = new Member(memberId);
                isNew = true;
            } else {
                member = group.members.get(memberId);
                if (member == null) {
                    return joinError(Errors.UNKNOWN_MEMBER_ID, memberId, version);
                }
                isNew = false;
            }
            Map<String, byte[]> protocols = new LinkedHashMap<>();
            request.protocols().forEach(p -> protocols.putIfAbsent(p.name(), p.metadata()));
            boolean sameProtocols = !isNew && sameProtocols(member.protocols, protocols);
            member.protocols = protocols;
            member.instanceId = request.groupInstanceId();
            member.sessionTimeoutMs = request.sessionTimeoutMs();
            member.rebalanceTimeoutMs = request.rebalanceTimeoutMs() > 0 ? request.rebalanceTimeoutMs()
                    : request.sessionTimeoutMs();
            member.lastSeen = now;
            if (group.members.isEmpty() || group.members.size() == 1 && !isNew) {
                // The member is alone, so its protocol type becomes the group's.
                group.protocolType = request.protocolType();
            }
            if (isNew) {
                group.members.put(member.id, member);
                LOG.debug("Member {} ({} at {}) joins group '{}'", member.id, clientId, clientHost, group.id);
            }
            if (sameProtocols && (group.state == State.COMPLETING_REBALANCE
                    || group.state == State.STABLE && !member.id.equals(group.leader))) {
                return joinResponse(group, member, version);
            }
            if (group.state != State.PREPARING_REBALANCE) {
                prepareRebalance(group, now, "member " + member.id + " joined");
            }
            if (member.waiter != null) {
                // The member joined again from another connection; the older call is superseded.
                member.waiter.response = joinError(Errors.REBALANCE_IN_PROGRESS, member.id, member.waiter.version);
            }
            JoinWaiter waiter = new JoinWaiter(version);
            member.waiter = waiter;
            member.joinedAt = group.joins++;
            maybeCompleteJoin(group, now);
            member.blocked++;
            try {
                while (waiter.response == null && !closed) {
                    lock.wait(CLIENT_CHECK_MS);
                    if (waiter.response == null && clientGone.getAsBoolean()) {
                        waiter.response = joinError(Errors.UNKNOWN_MEMBER_ID, member.id, version);
                    }
                }
            } finally {
                member.blocked--;
                member.lastSeen = time.milliseconds();
                if (member.waiter == waiter) {
                    member.waiter = null;
                }
            }
            return waiter.response != null ? waiter.response
                    : joinError(Errors.COORDINATOR_NOT_AVAILABLE, member.id, version);
        }
    }

    /**
     * Stores the leader's assignments and hands each member its own; a follower blocks until the
     * leader's assignments arrive or the rebalance starts again.
     */
    SyncGroupResponseData syncGroup(SyncGroupRequestData request, short version) throws InterruptedException {
        return syncGroup(request, version, () -> false);
    }

    /** {@link #syncGroup(SyncGroupRequestData, short)}, giving up the wait once the client is gone. */
    SyncGroupResponseData syncGroup(SyncGroupRequestData request, short version, BooleanSupplier clientGone)
            throws InterruptedException {
        synchronized (lock) {
            if (closed) {
                return syncError(Errors.COORDINATOR_NOT_AVAILABLE);
            }
            if (!validGroupId(request.groupId())) {
                return syncError(Errors.INVALID_GROUP_ID);
            }
            Group group = groups.get(request.groupId());
            Member member = group == null ? null : group.members.get(request.memberId());
            if (member == null) {
                return syncError(Errors.UNKNOWN_MEMBER_ID);
            }
            if (request.generationId() != group.generation) {
                return syncError(Errors.ILLEGAL_GENERATION);
            }
            if (request.protocolType() != null && !request.protocolType().equals(group.protocolType)
                    || request.protocolName() != null && !request.protocolName().equals(group.protocolName)) {
                return syncError(Errors.INCONSISTENT_GROUP_PROTOCOL);
            }
            member.lastSeen = time.milliseconds();
            switch (group.state) {
                case PREPARING_REBALANCE:
                    return syncError(Errors.REBALANCE_IN_PROGRESS);
                case STABLE:
                    return syncResponse(group, member);
                case COMPLETING_REBALANCE:
                    break;
                default:
                    return syncError(Errors.UNKNOWN_MEMBER_ID);
            }
            if (member.id.equals(group.leader)) {
                Map<String, byte[]> assignments = new HashMap<>();
                request.assignments().forEach(a -> assignments.put(a.memberId(), a.assignment()));
                group.members.values().forEach(m -> m.assignment = assignments.getOrDefault(m.id, NO_ASSIGNMENT));
                group.state = State.STABLE;
                LOG.debug("Group '{}' is stable at generation {} with {} member(s)", group.id, group.generation,
                        group.members.size());
                lock.notifyAll();
                return syncResponse(group, member);
            }
            int generation = group.generation;
            member.blocked++;
            try {
                while (!closed && !member.removed && group.state == State.COMPLETING_REBALANCE
                        && group.generation == generation) {
                    lock.wait(CLIENT_CHECK_MS);
                    if (clientGone.getAsBoolean()) {
                        return syncError(Errors.UNKNOWN_MEMBER_ID);
                    }
                }
            } finally {
                member.blocked--;
                member.lastSeen = time.milliseconds();
            }
            if (closed) {
                return syncError(Errors.COORDINATOR_NOT_AVAILABLE);
            }
            if (member.removed) {
                return syncError(Errors.UNKNOWN_MEMBER_ID);
            }
            if (group.state == State.STABLE && group.generation == generation) {
                return syncResponse(group, member);
            }
            return syncError(Errors.REBALANCE_IN_PROGRESS);
        }
    }

    /** Keeps a member alive; tells it when the group is rebalancing. */
    HeartbeatResponseData heartbeat(HeartbeatRequestData request, short version) {
        synchronized (lock) {
            return new HeartbeatResponseData().setErrorCode(heartbeatError(request).code());
        }
    }

    private Errors heartbeatError(HeartbeatRequestData request) {
        if (closed) {
            return Errors.COORDINATOR_NOT_AVAILABLE;
        }
        if (!validGroupId(request.groupId())) {
            return Errors.INVALID_GROUP_ID;
        }
        Group group = groups.get(request.groupId());
        Member member = group == null ? null : group.members.get(request.memberId());
        if (member == null) {
            return Errors.UNKNOWN_MEMBER_ID;
        }
        if (request.generationId() != group.generation) {
            return Errors.ILLEGAL_GENERATION;
        }
        member.lastSeen = time.milliseconds();
        return group.state == State.PREPARING_REBALANCE ? Errors.REBALANCE_IN_PROGRESS : Errors.NONE;
    }

    /** Removes members (by member id, or by instance id when the member id is empty); the group rebalances. */
    LeaveGroupResponseData leaveGroup(LeaveGroupRequestData request, short version) {
        List<LeaveGroupRequestData.MemberIdentity> leaving = version >= 3 ? request.members()
                : List.of(new LeaveGroupRequestData.MemberIdentity().setMemberId(request.memberId()));
        synchronized (lock) {
            if (closed) {
                return new LeaveGroupResponseData().setErrorCode(Errors.COORDINATOR_NOT_AVAILABLE.code());
            }
            if (!validGroupId(request.groupId())) {
                return new LeaveGroupResponseData().setErrorCode(Errors.INVALID_GROUP_ID.code());
            }
            Group group = groups.get(request.groupId());
            long now = time.milliseconds();
            List<LeaveGroupResponseData.MemberResponse> results = new ArrayList<>();
            boolean removedAny = false;
            for (LeaveGroupRequestData.MemberIdentity identity : leaving) {
                Errors error = Errors.UNKNOWN_MEMBER_ID;
                if (group != null) {
                    Member member = find(group, identity.memberId(), identity.groupInstanceId());
                    if (member != null) {
                        LOG.debug("Member {} leaves group '{}'", member.id, group.id);
                        remove(group, member);
                        removedAny = true;
                        error = Errors.NONE;
                    } else if (identity.memberId() != null && group.pending.remove(identity.memberId()) != null) {
                        error = Errors.NONE;
                    }
                }
                results.add(new LeaveGroupResponseData.MemberResponse().setMemberId(identity.memberId())
                        .setGroupInstanceId(identity.groupInstanceId()).setErrorCode(error.code()));
            }
            if (removedAny) {
                onMembersRemoved(group, now, "members left");
            } else if (group != null) {
                maybeCompleteJoin(group, now);
            }
            if (version >= 3) {
                return new LeaveGroupResponseData().setMembers(results);
            }
            return new LeaveGroupResponseData().setErrorCode(results.get(0).errorCode());
        }
    }

    /** Validates the committer's membership, then commits the acceptable partitions durably in one call. */
    OffsetCommitResponseData commitOffsets(OffsetCommitRequestData request, short version) {
        Errors groupError;
        synchronized (lock) {
            groupError = closed ? Errors.COORDINATOR_NOT_AVAILABLE : commitError(request);
        }
        Map<TopicPartition, Errors> errors = new HashMap<>();
        if (groupError == Errors.NONE) {
            Map<TopicPartition, Long> accepted = new LinkedHashMap<>();
            try {
                for (OffsetCommitRequestData.OffsetCommitRequestTopic topic : request.topics()) {
                    for (OffsetCommitRequestData.OffsetCommitRequestPartition p : topic.partitions()) {
                        TopicPartition tp = new TopicPartition(topic.name(), p.partitionIndex());
                        Errors error = partitionError(tp, p.committedOffset());
                        errors.put(tp, error);
                        if (error == Errors.NONE) {
                            accepted.put(tp, p.committedOffset());
                        } else {
                            accepted.remove(tp);
                        }
                    }
                }
                if (!accepted.isEmpty()) {
                    log.commitOffsets(request.groupId(), accepted);
                }
            } catch (IOException | IllegalStateException e) {
                LOG.warn("Could not commit offsets of group '{}' ({}); answering COORDINATOR_NOT_AVAILABLE so that"
                        + " the client retries", request.groupId(), e.toString());
                groupError = Errors.COORDINATOR_NOT_AVAILABLE;
            } catch (IllegalArgumentException e) {
                LOG.warn("The log refused offsets of group '{}' that passed validation ({})", request.groupId(),
                        e.getMessage());
                groupError = Errors.UNKNOWN_SERVER_ERROR;
            }
        }
        OffsetCommitResponseData response = new OffsetCommitResponseData();
        for (OffsetCommitRequestData.OffsetCommitRequestTopic topic : request.topics()) {
            OffsetCommitResponseData.OffsetCommitResponseTopic answer =
                    new OffsetCommitResponseData.OffsetCommitResponseTopic().setName(topic.name());
            for (OffsetCommitRequestData.OffsetCommitRequestPartition p : topic.partitions()) {
                Errors error = groupError != Errors.NONE ? groupError
                        : errors.get(new TopicPartition(topic.name(), p.partitionIndex()));
                answer.partitions().add(new OffsetCommitResponseData.OffsetCommitResponsePartition()
                        .setPartitionIndex(p.partitionIndex()).setErrorCode(error.code()));
            }
            response.topics().add(answer);
        }
        return response;
    }

    /** @return the error that rejects the whole commit, or NONE; touches the committing member */
    private Errors commitError(OffsetCommitRequestData request) {
        if (!validGroupId(request.groupId())) {
            return Errors.INVALID_GROUP_ID;
        }
        int generation = request.generationIdOrMemberEpoch();
        String memberId = request.memberId() == null ? "" : request.memberId();
        Group group = groups.get(request.groupId());
        if (group == null || group.members.isEmpty()) {
            if (generation < 0) {
                return Errors.NONE;
            }
            return group == null ? Errors.ILLEGAL_GENERATION : Errors.UNKNOWN_MEMBER_ID;
        }
        Member member = group.members.get(memberId);
        if (member == null) {
            return Errors.UNKNOWN_MEMBER_ID;
        }
        if (generation != group.generation) {
            return Errors.ILLEGAL_GENERATION;
        }
        if (group.state == State.COMPLETING_REBALANCE) {
            return Errors.REBALANCE_IN_PROGRESS;
        }
        member.lastSeen = time.milliseconds();
        return Errors.NONE;
    }

    private Errors partitionError(TopicPartition tp, long offset) {
        if (tp.topic() == null || !log.topics().contains(tp.topic()) || tp.partition() < 0
                || tp.partition() >= log.partitionCount(tp.topic())) {
            return Errors.UNKNOWN_TOPIC_OR_PARTITION;
        }
        long end = log.endOffset(tp.topic(), tp.partition());
        return offset < 0 || offset > end ? Errors.OFFSET_OUT_OF_RANGE : Errors.NONE;
    }

    /**
     * Answers the committed offsets of the named partitions, or of every partition the group
     * committed when topics is null; in the v8+ shape (a {@code groups} array) from version 8.
     */
    OffsetFetchResponseData fetchOffsets(OffsetFetchRequestData request, short version) {
        if (version >= 8) {
            OffsetFetchResponseData response = new OffsetFetchResponseData();
            for (OffsetFetchRequestData.OffsetFetchRequestGroup g : request.groups()) {
                Map<String, List<Integer>> topics = null;
                if (g.topics() != null) {
                    topics = new LinkedHashMap<>();
                    for (OffsetFetchRequestData.OffsetFetchRequestTopics t : g.topics()) {
                        topics.computeIfAbsent(t.name(), n -> new ArrayList<>()).addAll(t.partitionIndexes());
                    }
                }
                response.groups().add(fetchGroup(g.groupId(), topics));
            }
            return response;
        }
        Map<String, List<Integer>> topics = null;
        if (request.topics() != null) {
            topics = new LinkedHashMap<>();
            for (OffsetFetchRequestData.OffsetFetchRequestTopic t : request.topics()) {
                topics.computeIfAbsent(t.name(), n -> new ArrayList<>()).addAll(t.partitionIndexes());
            }
        }
        OffsetFetchResponseData.OffsetFetchResponseGroup group = fetchGroup(request.groupId(), topics);
        OffsetFetchResponseData response = new OffsetFetchResponseData().setErrorCode(group.errorCode());
        if (group.errorCode() != Errors.NONE.code() && version < 2 && topics != null) {
            // Version 1 has no top-level error code; Kafka reports the group's error on every partition.
            topics.forEach((name, partitions) -> {
                OffsetFetchResponseData.OffsetFetchResponseTopic t =
                        new OffsetFetchResponseData.OffsetFetchResponseTopic().setName(name);
                partitions.forEach(p -> t.partitions().add(new OffsetFetchResponseData.OffsetFetchResponsePartition()
                        .setPartitionIndex(p).setCommittedOffset(-1).setMetadata("").setErrorCode(group.errorCode())));
                response.topics().add(t);
            });
            return response;
        }
        for (OffsetFetchResponseData.OffsetFetchResponseTopics topic : group.topics()) {
            OffsetFetchResponseData.OffsetFetchResponseTopic t =
                    new OffsetFetchResponseData.OffsetFetchResponseTopic().setName(topic.name());
            for (OffsetFetchResponseData.OffsetFetchResponsePartitions p : topic.partitions()) {
                t.partitions().add(new OffsetFetchResponseData.OffsetFetchResponsePartition()
                        .setPartitionIndex(p.partitionIndex()).setCommittedOffset(p.committedOffset())
                        .setCommittedLeaderEpoch(p.committedLeaderEpoch()).setMetadata(p.metadata())
                        .setErrorCode(p.errorCode()));
            }
            response.topics().add(t);
        }
        return response;
    }

    /** @param topics topic name to partitions, or null for every partition the group committed */
    private OffsetFetchResponseData.OffsetFetchResponseGroup fetchGroup(String groupId, Map<String, List<Integer>> topics) {
        OffsetFetchResponseData.OffsetFetchResponseGroup answer =
                new OffsetFetchResponseData.OffsetFetchResponseGroup().setGroupId(groupId);
        synchronized (lock) {
            if (closed) {
                return answer.setErrorCode(Errors.COORDINATOR_NOT_AVAILABLE.code());
            }
        }
        if (!validGroupId(groupId)) {
            return answer.setErrorCode(Errors.INVALID_GROUP_ID.code());
        }
        Map<String, Map<Integer, Long>> offsets = new LinkedHashMap<>();
        try {
            if (topics == null) {
                log.committedOffsets(groupId).forEach((tp, offset) ->
                        offsets.computeIfAbsent(tp.topic(), t -> new TreeMap<>()).put(tp.partition(), offset));
            } else {
                topics.forEach((name, partitions) -> {
                    Map<Integer, Long> found = offsets.computeIfAbsent(name, t -> new LinkedHashMap<>());
                    for (int p : partitions) {
                        OptionalLong committed = log.committed(groupId, new TopicPartition(name, p));
                        found.put(p, committed.orElse(-1));
                    }
                });
            }
        } catch (IllegalStateException e) {
            return answer.setErrorCode(Errors.COORDINATOR_NOT_AVAILABLE.code());
        }
        Map<String, Map<Integer, Long>> ordered = topics == null ? new TreeMap<>(offsets) : offsets;
        ordered.forEach((name, partitions) -> {
            OffsetFetchResponseData.OffsetFetchResponseTopics t =
                    new OffsetFetchResponseData.OffsetFetchResponseTopics().setName(name);
            partitions.forEach((p, offset) -> t.partitions().add(new OffsetFetchResponseData.OffsetFetchResponsePartitions()
                    .setPartitionIndex(p).setCommittedOffset(offset).setCommittedLeaderEpoch(-1).setMetadata("")
                    .setErrorCode(Errors.NONE.code())));
            answer.topics().add(t);
        });
        return answer;
    }

    /** Wakes every blocked call (they answer COORDINATOR_NOT_AVAILABLE) and stops the expiry task. */
    @Override
    public void close() {
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
        expiry.shutdownNow();
        try {
            expiry.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The expiry task: removes silent members and lapsed pending ids, ends overdue rebalances. */
    private void expire() {
        synchronized (lock) {
            if (closed) {
                return;
            }
            try {
                long now = time.milliseconds();
                for (Group group : groups.values()) {
                    group.pending.values().removeIf(lapse -> lapse <= now);
                    List<Member> silent = new ArrayList<>();
                    for (Member m : group.members.values()) {
                        if (m.blocked == 0 && now - m.lastSeen >= m.sessionTimeoutMs) {
                            silent.add(m);
                        }
                    }
                    silent.forEach(m -> {
                        LOG.info("Member {} of group '{}' sent nothing for its session timeout of {} ms; removing it",
                                m.id, group.id, m.sessionTimeoutMs);
                        remove(group, m);
                    });
                    if (!silent.isEmpty()) {
                        onMembersRemoved(group, now, "session timeout");
                    } else {
                        maybeCompleteJoin(group, now);
                    }
                }
            } catch (RuntimeException e) {
                LOG.error("Group expiry check failed; it runs again in {} ms", EXPIRY_CHECK_INTERVAL_MS, e);
            }
        }
    }

    /** @return whether a join with these protocols fits the group's protocol type and every other member */
    private static boolean accepts(Group group, String memberId, JoinGroupRequestData request) {
        List<Member> others = new ArrayList<>(group.members.values());
        others.removeIf(m -> m.id.equals(memberId));
        if (others.isEmpty()) {
            return true;
        }
        if (!request.protocolType().equals(group.protocolType)) {
            return false;
        }
        for (JoinGroupRequestData.JoinGroupRequestProtocol p : request.protocols()) {
            if (others.stream().allMatch(m -> m.protocols.containsKey(p.name()))) {
                return true;
            }
        }
        return false;
    }

    private static boolean sameProtocols(Map<String, byte[]> a, Map<String, byte[]> b) {
        if (!List.copyOf(a.keySet()).equals(List.copyOf(b.keySet()))) {
            return false;
        }
        return a.entrySet().stream().allMatch(e -> Arrays.equals(e.getValue(), b.get(e.getKey())));
    }

    private static Member find(Group group, String memberId, String instanceId) {
        if (memberId != null && !memberId.isEmpty()) {
            return group.members.get(memberId);
        }
        if (instanceId == null) {
            return null;
        }
        return group.members.values().stream().filter(m -> instanceId.equals(m.instanceId)).findFirst().orElse(null);
    }

    /** Starts a rebalance: every member must rejoin before the largest rebalance timeout passes. */
    private void prepareRebalance(Group group, long now, String reason) {
        int timeout = group.members.values().stream().mapToInt(m -> m.rebalanceTimeoutMs).max().orElse(0);
        LOG.debug("Group '{}' rebalances at generation {} ({}); members have {} ms to rejoin", group.id,
                group.generation, reason, timeout);
        group.state = State.PREPARING_REBALANCE;
        group.rebalanceDeadline = now + timeout;
        group.joins = 0;
        for (Member m : group.members.values()) {
            m.joinedAt = -1;
            m.assignment = null;
        }
        // Followers blocked in SyncGroup answer REBALANCE_IN_PROGRESS.
        lock.notifyAll();
    }

    /** Removes a member; its blocked join answers UNKNOWN_MEMBER_ID. The caller then calls onMembersRemoved. */
    private void remove(Group group, Member member) {
        group.members.remove(member.id);
        member.removed = true;
        if (member.waiter != null) {
            member.waiter.response = joinError(Errors.UNKNOWN_MEMBER_ID, member.id, member.waiter.version);
            member.waiter = null;
        }
        lock.notifyAll();
    }

    private void onMembersRemoved(Group group, long now, String reason) {
        if (group.state == State.STABLE || group.state == State.COMPLETING_REBALANCE) {
            prepareRebalance(group, now, reason);
        }
        maybeCompleteJoin(group, now);
    }

    private void maybeCompleteJoin(Group group, long now) {
        if (group.state != State.PREPARING_REBALANCE) {
            return;
        }
        boolean allJoined = group.members.values().stream().allMatch(m -> m.joinedAt >= 0)
                && (group.pending.isEmpty() || group.members.isEmpty());
        if (allJoined || now >= group.rebalanceDeadline) {
            completeJoin(group, now);
        }
    }

    /** Ends the rebalance: drops members that did not rejoin, starts the next generation, answers the joins. */
    private void completeJoin(Group group, long now) {
        List<Member> late = group.members.values().stream().filter(m -> m.joinedAt < 0).toList();
        late.forEach(m -> {
            LOG.info("Member {} of group '{}' did not rejoin within the rebalance timeout; removing it", m.id, group.id);
            remove(group, m);
        });
        group.generation++;
        if (group.members.isEmpty()) {
            group.state = State.EMPTY;
            group.protocolType = null;
            group.protocolName = null;
            group.leader = null;
            LOG.debug("Group '{}' is empty at generation {}", group.id, group.generation);
            lock.notifyAll();
            return;
        }
        Member leader = group.members.values().stream()
                .min(Comparator.comparingInt(m -> m.joinedAt)).orElseThrow();
        group.leader = leader.id;
        group.protocolName = leader.protocols.keySet().stream()
                .filter(p -> group.members.values().stream().allMatch(m -> m.protocols.containsKey(p)))
                .findFirst().orElseThrow(() -> new AssertionError("members of group '" + group.id
                        + "' share no protocol although every join checked that they do"));
        group.state = State.COMPLETING_REBALANCE;
        for (Member m : group.members.values()) {
            m.lastSeen = now;
            if (m.waiter != null) {
                m.waiter.response = joinResponse(group, m, m.waiter.version);
                m.waiter = null;
            }
        }
        LOG.debug("Group '{}' starts generation {} with {} member(s), leader {}, protocol {}", group.id,
                group.generation, group.members.size(), group.leader, group.protocolName);
        lock.notifyAll();
    }

    private static JoinGroupResponseData joinResponse(Group group, Member member, short version) {
        JoinGroupResponseData response = new JoinGroupResponseData()
                .setGenerationId(group.generation)
                .setProtocolType(group.protocolType)
                .setProtocolName(group.protocolName)
                .setLeader(group.leader)
                .setMemberId(member.id);
        if (member.id.equals(group.leader)) {
            for (Member m : group.members.values()) {
                response.members().add(new JoinGroupResponseData.JoinGroupResponseMember()
                        .setMemberId(m.id)
                        .setGroupInstanceId(version >= 5 ? m.instanceId : null)
                        .setMetadata(m.protocols.get(group.protocolName)));
            }
        }
        return response;
    }

    private static JoinGroupResponseData joinError(Errors error, String memberId, short version) {
        // Before version 7 the protocol name is not nullable.
        return new JoinGroupResponseData()
                .setErrorCode(error.code())
                .setGenerationId(-1)
                .setProtocolName(version >= 7 ? null : "")
                .setLeader("")
                .setMemberId(memberId);
    }

    private static SyncGroupResponseData syncResponse(Group group, Member member) {
        return new SyncGroupResponseData()
                .setProtocolType(group.protocolType)
                .setProtocolName(group.protocolName)
                .setAssignment(member.assignment == null ? NO_ASSIGNMENT : member.assignment);
    }

    private static SyncGroupResponseData syncError(Errors error) {
        return new SyncGroupResponseData().setErrorCode(error.code()).setAssignment(NO_ASSIGNMENT);
    }

    private static boolean validGroupId(String groupId) {
        return groupId != null && !groupId.isBlank();
    }
}
