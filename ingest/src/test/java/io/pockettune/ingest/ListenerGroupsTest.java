package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.record;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.Assignment;
import org.apache.kafka.clients.consumer.ConsumerPartitionAssignor.Subscription;
import org.apache.kafka.clients.consumer.internals.ConsumerProtocol;
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
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.protocol.Message;
import org.apache.kafka.common.protocol.MessageUtil;
import org.apache.kafka.common.utils.MockTime;
import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every request goes through the wire at the version under test (serialized and parsed back, as
 * the listener receives it) and so does every response (as the client receives it), which proves
 * each message valid at that version.
 */
class ListenerGroupsTest {

    private static final String GROUP = "trainer";
    private static final TopicPartition P0 = new TopicPartition("events", 0);
    private static final TopicPartition P1 = new TopicPartition("events", 1);
    private static final int SESSION_MS = 10_000;
    private static final int REBALANCE_MS = 30_000;
    private static final short JOIN = 9;
    private static final short SYNC = 5;
    private static final short HEARTBEAT = 4;
    private static final short LEAVE = 5;
    private static final short COMMIT = 9;

    @TempDir
    Path dir;

    private final MockTime time = new MockTime();
    private final ExecutorService threads = Executors.newCachedThreadPool();
    private EmbeddedLog log;
    private ListenerGroups groups;

    /** A member of the current generation, as its JoinGroup answered. */
    private record Joined(String memberId, int generation, String leader, List<String> members) {
        boolean isLeader() {
            return memberId.equals(leader);
        }
    }

    @BeforeEach
    void openLog() throws IOException {
        log = EmbeddedLog.open(dir);
        log.createTopic("events", 2);
        for (int p = 0; p < 2; p++) {
            log.append("events", p, List.of(record("a"), record("b"), record("c"), record("d"), record("e")));
        }
        groups = new ListenerGroups(log, time);
    }

    @AfterEach
    void closeAll() throws IOException {
        threads.shutdownNow();
        groups.close();
        log.close();
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void oneMember_joinSyncHeartbeatCommitFetch(boolean newest) throws Exception {
        short join = (short) (newest ? 9 : 2);
        short sync = (short) (newest ? 5 : 0);
        short heartbeat = (short) (newest ? 4 : 0);
        short commit = (short) (newest ? 9 : 2);
        short fetch = (short) (newest ? 9 : 1);
        String memberId = "";
        if (newest) {
            JoinGroupResponseData required = join(joinRequest(GROUP, ""), join);
            assertEquals(Errors.MEMBER_ID_REQUIRED.code(), required.errorCode());
            memberId = required.memberId();
        }
        JoinGroupResponseData joined = join(joinRequest(GROUP, memberId), join);
        assertEquals(Errors.NONE.code(), joined.errorCode());
        assertEquals(1, joined.generationId());
        assertEquals(joined.memberId(), joined.leader());
        assertEquals("range", joined.protocolName());
        assertEquals(newest ? "consumer" : null, joined.protocolType());
        assertEquals(1, joined.members().size());
        assertEquals(List.of("events"), ConsumerProtocol.deserializeSubscription(
                ByteBuffer.wrap(joined.members().get(0).metadata())).topics());
        memberId = joined.memberId();

        SyncGroupResponseData synced = sync(syncRequest(memberId, 1, Map.of(memberId, List.of(P0, P1))), sync);
        assertEquals(Errors.NONE.code(), synced.errorCode());
        assertEquals(List.of(P0, P1), assignment(synced));
        assertEquals(Errors.NONE.code(), heartbeat(memberId, 1, heartbeat).errorCode());

        OffsetCommitResponseData committed = commit(commitRequest(GROUP, 1, memberId, Map.of(P0, 3L, P1, 5L)), commit);
        assertEquals(Map.of(P0, Errors.NONE, P1, Errors.NONE), errors(committed));
        assertEquals(Map.of(P0, 3L, P1, 5L), fetch(GROUP, List.of(P0, P1), fetch));
        assertEquals(OptionalLong.of(3), log.committed(GROUP, P0));
    }

    @Test
    void joinGroup_emptyMemberIdFromV4_answersMemberIdRequiredWithAFreshId() throws Exception {
        for (short version : new short[] {4, 6, 7}) {
            JoinGroupResponseData required = join(joinRequest(GROUP, ""), version);
            assertEquals(Errors.MEMBER_ID_REQUIRED.code(), required.errorCode());
            assertTrue(required.memberId().startsWith("client-"), required.memberId());
        }
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), join(joinRequest(GROUP, "client-made-up"), JOIN).errorCode());
        // Pending ids would hold the rebalance until they join or lapse, as these do now.
        time.sleep(SESSION_MS);
        awaitQuietly(Duration.ofMillis(200));
        JoinGroupResponseData required = join(joinRequest(GROUP, ""), JOIN);
        JoinGroupResponseData joined = join(joinRequest(GROUP, required.memberId()), JOIN);
        assertEquals(Errors.NONE.code(), joined.errorCode());
        assertEquals(required.memberId(), joined.memberId());
        assertEquals(required.memberId(), joined.leader());
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 5})
    void joinGroup_concurrentMembers_shareOneGenerationAndGetTheirAssignments(int n) throws Exception {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add(join(joinRequest(GROUP, ""), JOIN).memberId());
        }
        List<Future<JoinGroupResponseData>> joins = new ArrayList<>();
        ids.forEach(id -> joins.add(threads.submit(() -> join(joinRequest(GROUP, id), JOIN))));
        List<JoinGroupResponseData> answers = new ArrayList<>();
        for (Future<JoinGroupResponseData> f : joins) {
            answers.add(f.get(10, TimeUnit.SECONDS));
        }
        for (JoinGroupResponseData r : answers) {
            assertEquals(Errors.NONE.code(), r.errorCode());
            assertEquals(1, r.generationId());
            assertEquals(answers.get(0).leader(), r.leader());
        }
        JoinGroupResponseData leader = answers.stream().filter(r -> r.memberId().equals(r.leader())).findFirst()
                .orElseThrow();
        assertEquals(Set.copyOf(ids), leader.members().stream().map(m -> m.memberId()).collect(Collectors.toSet()));
        List<JoinGroupResponseData> followers = answers.stream().filter(r -> r != leader).toList();
        followers.forEach(r -> assertEquals(List.of(), r.members()));

        List<Future<SyncGroupResponseData>> followerSyncs = new ArrayList<>();
        for (JoinGroupResponseData f : followers) {
            followerSyncs.add(threads.submit(() -> sync(syncRequest(f.memberId(), 1, Map.of()), SYNC)));
        }
        followerSyncs.forEach(ListenerGroupsTest::assertBlocked);
        Map<String, List<TopicPartition>> assignments = new HashMap<>();
        for (int i = 0; i < n; i++) {
            assignments.put(answers.get(i).memberId(), List.of(new TopicPartition("events", i % 2)));
        }
        SyncGroupResponseData leaderSync = sync(syncRequest(leader.memberId(), 1, assignments), SYNC);
        assertEquals(assignments.get(leader.memberId()), assignment(leaderSync));
        assertEquals("range", leaderSync.protocolName());
        for (int i = 0; i < followers.size(); i++) {
            assertEquals(assignments.get(followers.get(i).memberId()),
                    assignment(followerSyncs.get(i).get(10, TimeUnit.SECONDS)));
        }
    }

    @Test
    void joinGroup_thirdMember_othersLearnFromHeartbeatAndRejoinIntoANewGeneration() throws Exception {
        List<Joined> stable = stableGroup(2);
        int generation = stable.get(0).generation();
        Future<JoinGroupResponseData> third = threads.submit(() -> {
            String id = join(joinRequest(GROUP, ""), JOIN).memberId();
            return join(joinRequest(GROUP, id), JOIN);
        });
        awaitTrue(() -> heartbeat(stable.get(0).memberId(), generation, HEARTBEAT).errorCode()
                == Errors.REBALANCE_IN_PROGRESS.code(), "the first member's heartbeat reports the rebalance");
        assertEquals(Errors.REBALANCE_IN_PROGRESS.code(),
                heartbeat(stable.get(1).memberId(), generation, HEARTBEAT).errorCode());
        assertEquals(Errors.REBALANCE_IN_PROGRESS.code(),
                sync(syncRequest(stable.get(1).memberId(), generation, Map.of()), SYNC).errorCode());
        // Members still commit for their old generation while their partitions are revoked.
        assertEquals(Map.of(P0, Errors.NONE), errors(commit(commitRequest(GROUP, generation,
                stable.get(0).memberId(), Map.of(P0, 1L)), COMMIT)));
        assertBlocked(third);

        List<Future<JoinGroupResponseData>> rejoins = new ArrayList<>();
        for (Joined member : stable) {
            rejoins.add(threads.submit(() -> join(joinRequest(GROUP, member.memberId()), JOIN)));
        }
        rejoins.add(third);
        List<JoinGroupResponseData> answers = new ArrayList<>();
        for (Future<JoinGroupResponseData> f : rejoins) {
            answers.add(f.get(10, TimeUnit.SECONDS));
        }
        for (JoinGroupResponseData r : answers) {
            assertEquals(Errors.NONE.code(), r.errorCode());
            assertEquals(generation + 1, r.generationId());
        }
        assertEquals(1, answers.stream().filter(r -> r.memberId().equals(r.leader())).count());
        assertEquals(3, answers.stream().mapToInt(r -> r.members().size()).sum());
        assertEquals(Errors.ILLEGAL_GENERATION.code(),
                heartbeat(stable.get(0).memberId(), generation, HEARTBEAT).errorCode());
        assertEquals(Errors.ILLEGAL_GENERATION.code(),
                sync(syncRequest(stable.get(0).memberId(), generation, Map.of()), SYNC).errorCode());
    }

    @Test
    void joinGroup_protocolsMustFitTheGroup_leaderOrderPicksAmongCommonOnes() throws Exception {
        JoinGroupRequestData first = joinRequest(GROUP, "", "roundrobin", "range");
        String a = join(first, JOIN).memberId();
        String b = join(joinRequest(GROUP, ""), JOIN).memberId();
        Future<JoinGroupResponseData> joinA = threads.submit(() -> join(first.duplicate().setMemberId(a), JOIN));
        assertBlocked(joinA);
        JoinGroupResponseData rb = join(joinRequest(GROUP, b, "range"), JOIN);
        JoinGroupResponseData ra = joinA.get(10, TimeUnit.SECONDS);
        assertEquals(a, ra.leader());
        assertEquals("range", ra.protocolName());
        assertEquals("range", rb.protocolName());

        JoinGroupRequestData otherType = joinRequest(GROUP, "").setProtocolType("connect");
        assertEquals(Errors.INCONSISTENT_GROUP_PROTOCOL.code(), join(otherType, JOIN).errorCode());
        assertEquals(Errors.INCONSISTENT_GROUP_PROTOCOL.code(),
                join(joinRequest(GROUP, "", "cooperative-sticky"), JOIN).errorCode());
    }

    @Test
    void leaveGroup_rebalancesTheRest_andTheLastLeaveEmptiesTheGroup() throws Exception {
        List<Joined> stable = stableGroup(2);
        int generation = stable.get(0).generation();
        LeaveGroupResponseData left = leave(stable.get(0).memberId(), LEAVE);
        assertEquals(Errors.NONE.code(), left.errorCode());
        assertEquals(List.of(Errors.NONE.code()), left.members().stream().map(m -> m.errorCode()).toList());
        assertEquals(Errors.REBALANCE_IN_PROGRESS.code(),
                heartbeat(stable.get(1).memberId(), generation, HEARTBEAT).errorCode());

        JoinGroupResponseData alone = join(joinRequest(GROUP, stable.get(1).memberId()), JOIN);
        assertEquals(generation + 1, alone.generationId());
        assertEquals(List.of(stable.get(1).memberId()), alone.members().stream().map(m -> m.memberId()).toList());

        assertEquals(Errors.NONE.code(), leave(stable.get(1).memberId(), (short) 2).errorCode());
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(),
                heartbeat(stable.get(1).memberId(), generation + 1, HEARTBEAT).errorCode());
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), leave(stable.get(1).memberId(), (short) 0).errorCode());
        assertEquals(List.of(Errors.UNKNOWN_MEMBER_ID.code()),
                leave("nobody", (short) 3).members().stream().map(m -> m.errorCode()).toList());
        // Empty: a simple commit is accepted, and the next join starts generation + 3.
        assertEquals(Map.of(P0, Errors.NONE), errors(commit(commitRequest(GROUP, -1, "", Map.of(P0, 2L)), COMMIT)));
        List<Joined> again = stableGroup(1);
        assertEquals(generation + 3, again.get(0).generation());
    }

    @Test
    void sessionTimeout_silentMemberIsRemovedWhileNobodyCalls() throws Exception {
        List<Joined> stable = stableGroup(2);
        Joined alive = stable.get(0);
        Joined silent = stable.get(1);
        time.sleep(SESSION_MS / 2);
        assertEquals(Errors.NONE.code(), heartbeat(alive.memberId(), alive.generation(), HEARTBEAT).errorCode());
        // The live member rejoins and blocks; only the expiry task can complete the rebalance.
        time.sleep(SESSION_MS / 2 - 1);
        Future<JoinGroupResponseData> rejoin = threads.submit(() -> join(joinRequest(GROUP, alive.memberId()), JOIN));
        assertBlocked(rejoin);
        time.sleep(1);
        JoinGroupResponseData answer = rejoin.get(10, TimeUnit.SECONDS);
        assertEquals(Errors.NONE.code(), answer.errorCode());
        assertEquals(alive.generation() + 1, answer.generationId());
        assertEquals(List.of(alive.memberId()), answer.members().stream().map(m -> m.memberId()).toList());
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), heartbeat(silent.memberId(), silent.generation(), HEARTBEAT)
                .errorCode());
    }

    @Test
    void sessionTimeout_lastSilentMemberLeavesTheGroupEmpty() throws Exception {
        Joined only = stableGroup(1).get(0);
        time.sleep(SESSION_MS);
        awaitTrue(() -> errors(commit(commitRequest(GROUP, -1, "", Map.of(P1, 4L)), COMMIT)).equals(Map.of(P1, Errors.NONE)),
                "a simple commit is accepted once the group is empty");
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), heartbeat(only.memberId(), only.generation(), HEARTBEAT).errorCode());
    }

    @Test
    void rebalanceTimeout_memberThatHeartbeatsButDoesNotRejoin_isRemoved() throws Exception {
        List<Joined> stable = stableGroup(2);
        Joined rejoining = stable.get(0);
        Joined lagging = stable.get(1);
        Future<JoinGroupResponseData> rejoin = threads.submit(() -> join(joinRequest(GROUP, rejoining.memberId()), JOIN));
        awaitTrue(() -> heartbeat(lagging.memberId(), lagging.generation(), HEARTBEAT).errorCode()
                == Errors.REBALANCE_IN_PROGRESS.code(), "the lagging member learns of the rebalance");
        for (int elapsed = 0; elapsed < REBALANCE_MS; elapsed += SESSION_MS / 2) {
            assertBlocked(rejoin);
            time.sleep(SESSION_MS / 2);
            heartbeat(lagging.memberId(), lagging.generation(), HEARTBEAT);
        }
        JoinGroupResponseData answer = rejoin.get(10, TimeUnit.SECONDS);
        assertEquals(rejoining.generation() + 1, answer.generationId());
        assertEquals(1, answer.members().size());
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), heartbeat(lagging.memberId(), lagging.generation(), HEARTBEAT)
                .errorCode());
    }

    @Test
    void commitOffsets_simpleCommitWhenEmpty_membershipCheckedOtherwise() throws Exception {
        assertEquals(Map.of(P0, Errors.NONE), errors(commit(commitRequest(GROUP, -1, "", Map.of(P0, 2L)), (short) 2)));
        assertEquals(Map.of(P0, Errors.ILLEGAL_GENERATION),
                errors(commit(commitRequest("never-seen", 4, "someone", Map.of(P0, 2L)), COMMIT)));

        Joined member = stableGroup(1).get(0);
        assertEquals(Map.of(P0, Errors.UNKNOWN_MEMBER_ID),
                errors(commit(commitRequest(GROUP, -1, "", Map.of(P0, 3L)), COMMIT)));
        assertEquals(Map.of(P0, Errors.UNKNOWN_MEMBER_ID),
                errors(commit(commitRequest(GROUP, member.generation(), "someone", Map.of(P0, 3L)), COMMIT)));
        assertEquals(Map.of(P0, Errors.ILLEGAL_GENERATION),
                errors(commit(commitRequest(GROUP, member.generation() + 1, member.memberId(), Map.of(P0, 3L)), COMMIT)));
        assertEquals(OptionalLong.of(2), log.committed(GROUP, P0));

        OffsetCommitRequestData mixed = commitRequest(GROUP, member.generation(), member.memberId(),
                Map.of(P0, 4L, P1, 99L, new TopicPartition("events", 7), 1L, new TopicPartition("missing", 0), 1L));
        Map<TopicPartition, Errors> mixedErrors = errors(commit(mixed, COMMIT));
        assertEquals(Errors.NONE, mixedErrors.get(P0));
        assertEquals(Errors.OFFSET_OUT_OF_RANGE, mixedErrors.get(P1));
        assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION, mixedErrors.get(new TopicPartition("events", 7)));
        assertEquals(Errors.UNKNOWN_TOPIC_OR_PARTITION, mixedErrors.get(new TopicPartition("missing", 0)));
        assertEquals(Map.of(P0, 4L), log.committedOffsets(GROUP));
    }

    @Test
    void commitOffsets_whileCompletingRebalance_isRejectedUntilTheLeaderSyncs() throws Exception {
        Joined only = stableGroup(1).get(0);
        String b = join(joinRequest(GROUP, ""), JOIN).memberId();
        Future<JoinGroupResponseData> joinB = threads.submit(() -> join(joinRequest(GROUP, b), JOIN));
        awaitTrue(() -> heartbeat(only.memberId(), only.generation(), HEARTBEAT).errorCode()
                == Errors.REBALANCE_IN_PROGRESS.code(), "the rebalance starts");
        JoinGroupResponseData a = join(joinRequest(GROUP, only.memberId()), JOIN);
        JoinGroupResponseData leader = a.leader().equals(a.memberId()) ? a : joinB.get(10, TimeUnit.SECONDS);
        assertEquals(Map.of(P0, Errors.REBALANCE_IN_PROGRESS),
                errors(commit(commitRequest(GROUP, a.generationId(), a.memberId(), Map.of(P0, 1L)), COMMIT)));
        sync(syncRequest(leader.memberId(), a.generationId(), Map.of(a.memberId(), List.of(P0), b, List.of(P1))), SYNC);
        assertEquals(Map.of(P0, Errors.NONE),
                errors(commit(commitRequest(GROUP, a.generationId(), a.memberId(), Map.of(P0, 1L)), COMMIT)));
    }

    @Test
    void commitOffsets_isDurableAcrossReopeningTheLog() throws Exception {
        Joined member = stableGroup(1).get(0);
        commit(commitRequest(GROUP, member.generation(), member.memberId(), Map.of(P0, 3L, P1, 5L)), COMMIT);
        groups.close();
        log.abandon();
        log = EmbeddedLog.open(dir);
        groups = new ListenerGroups(log, time);
        assertEquals(Map.of(P0, 3L, P1, 5L), fetch(GROUP, null, (short) 9));
    }

    @Test
    void fetchOffsets_v7AndV8Shapes_namedOrAllTopics() throws Exception {
        commit(commitRequest(GROUP, -1, "", Map.of(P0, 3L, P1, 5L)), COMMIT);
        OffsetFetchResponseData v7 = fetchRaw(new OffsetFetchRequestData().setGroupId(GROUP).setTopics(null), (short) 7);
        assertEquals(Errors.NONE.code(), v7.errorCode());
        assertEquals(List.of(), v7.groups());
        assertEquals(1, v7.topics().size());
        OffsetFetchResponseData.OffsetFetchResponsePartition p = v7.topics().get(0).partitions().get(0);
        assertEquals(List.of(0, 3L, -1, "", (short) 0),
                List.of(p.partitionIndex(), p.committedOffset(), p.committedLeaderEpoch(), p.metadata(), p.errorCode()));
        assertEquals(Map.of(P0, 3L, P1, 5L), fetch(GROUP, null, (short) 7));
        assertEquals(Map.of(P0, 3L, new TopicPartition("missing", 2), -1L),
                fetch(GROUP, List.of(P0, new TopicPartition("missing", 2)), (short) 1));

        OffsetFetchRequestData twoGroups = new OffsetFetchRequestData().setGroups(List.of(
                new OffsetFetchRequestData.OffsetFetchRequestGroup().setGroupId(GROUP).setTopics(null),
                new OffsetFetchRequestData.OffsetFetchRequestGroup().setGroupId("unknown").setTopics(List.of(
                        new OffsetFetchRequestData.OffsetFetchRequestTopics().setName("events").setPartitionIndexes(List.of(1))))));
        for (short version : new short[] {8, 9}) {
            OffsetFetchResponseData v8 = fetchRaw(twoGroups, version);
            assertEquals(List.of(), v8.topics());
            assertEquals(List.of(GROUP, "unknown"), v8.groups().stream().map(g -> g.groupId()).toList());
            assertEquals(Map.of(P0, 3L, P1, 5L), offsets(v8.groups().get(0)));
            assertEquals(Map.of(P1, -1L), offsets(v8.groups().get(1)));
        }
        assertEquals(Map.of(), fetch("unknown", null, (short) 9));
    }

    @Test
    void emptyGroupId_isInvalidEverywhere() throws Exception {
        assertEquals(Errors.INVALID_GROUP_ID.code(), join(joinRequest("", ""), JOIN).errorCode());
        assertEquals(Errors.INVALID_GROUP_ID.code(),
                sync(syncRequest("m", 1, Map.of()).setGroupId(""), SYNC).errorCode());
        assertEquals(Errors.INVALID_GROUP_ID.code(), heartbeatRaw(new HeartbeatRequestData().setGroupId("")
                .setMemberId("m").setGenerationId(1), HEARTBEAT).errorCode());
        assertEquals(Errors.INVALID_GROUP_ID.code(), leaveRaw(new LeaveGroupRequestData().setGroupId("")
                .setMemberId("m"), (short) 1).errorCode());
        assertEquals(Map.of(P0, Errors.INVALID_GROUP_ID),
                errors(commit(commitRequest("", -1, "", Map.of(P0, 1L)), COMMIT)));
        assertEquals(Errors.INVALID_GROUP_ID.code(), fetchRaw(new OffsetFetchRequestData().setGroupId("")
                .setTopics(null), (short) 7).errorCode());
        OffsetFetchResponseData v1 = fetchRaw(new OffsetFetchRequestData().setGroupId("").setTopics(List.of(
                new OffsetFetchRequestData.OffsetFetchRequestTopic().setName("events").setPartitionIndexes(List.of(0)))),
                (short) 1);
        assertEquals(Errors.INVALID_GROUP_ID.code(), v1.topics().get(0).partitions().get(0).errorCode());
        assertEquals(Errors.INVALID_GROUP_ID.code(), fetchRaw(new OffsetFetchRequestData().setGroups(List.of(
                new OffsetFetchRequestData.OffsetFetchRequestGroup().setGroupId("").setTopics(null))), (short) 8)
                .groups().get(0).errorCode());
    }

    @Test
    void close_releasesBlockedJoinAndSync_andLaterCallsAnswerCoordinatorNotAvailable() throws Exception {
        String a = join(joinRequest(GROUP, ""), JOIN).memberId();
        String b = join(joinRequest(GROUP, ""), JOIN).memberId();
        Future<JoinGroupResponseData> joinA = threads.submit(() -> join(joinRequest(GROUP, a), JOIN));
        assertBlocked(joinA);
        Future<JoinGroupResponseData> joinB = threads.submit(() -> join(joinRequest(GROUP, b), JOIN));
        JoinGroupResponseData ra = joinA.get(10, TimeUnit.SECONDS);
        JoinGroupResponseData rb = joinB.get(10, TimeUnit.SECONDS);
        JoinGroupResponseData follower = ra.leader().equals(a) ? rb : ra;
        Future<SyncGroupResponseData> blockedSync = threads.submit(() ->
                sync(syncRequest(follower.memberId(), follower.generationId(), Map.of()), SYNC));
        String c = join(joinRequest("other", ""), JOIN).memberId();
        join(joinRequest("other", ""), JOIN); // a second pending id holds c's join
        Future<JoinGroupResponseData> blockedJoin = threads.submit(() -> join(joinRequest("other", c), JOIN));
        assertBlocked(blockedSync);
        assertBlocked(blockedJoin);

        groups.close();
        assertEquals(Errors.COORDINATOR_NOT_AVAILABLE.code(), blockedSync.get(10, TimeUnit.SECONDS).errorCode());
        assertEquals(Errors.COORDINATOR_NOT_AVAILABLE.code(), blockedJoin.get(10, TimeUnit.SECONDS).errorCode());
        assertEquals(Errors.COORDINATOR_NOT_AVAILABLE.code(), heartbeat(a, ra.generationId(), HEARTBEAT).errorCode());
        assertEquals(Map.of(P0, Errors.COORDINATOR_NOT_AVAILABLE),
                errors(commit(commitRequest(GROUP, -1, "", Map.of(P0, 1L)), COMMIT)));
        assertEquals(Errors.COORDINATOR_NOT_AVAILABLE.code(),
                fetchRaw(new OffsetFetchRequestData().setGroupId(GROUP).setTopics(null), (short) 7).errorCode());
    }

    @Test
    void blockedJoinAndSync_giveUpWhenTheirClientIsGone() throws Exception {
        String a = join(joinRequest(GROUP, ""), JOIN).memberId();
        String b = join(joinRequest(GROUP, ""), JOIN).memberId();
        java.util.concurrent.atomic.AtomicBoolean goneA = new java.util.concurrent.atomic.AtomicBoolean();
        Future<JoinGroupResponseData> joinA = threads.submit(() -> groups.joinGroup(
                new JoinGroupRequestData(wire(joinRequest(GROUP, a), JOIN), JOIN), JOIN, "client", "/127.0.0.1",
                goneA::get));
        assertBlocked(joinA);
        goneA.set(true);
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), joinA.get(5, TimeUnit.SECONDS).errorCode(),
                "a join whose client left stops waiting within a check interval");

        Future<JoinGroupResponseData> joinB = threads.submit(() -> join(joinRequest(GROUP, b), JOIN));
        Future<JoinGroupResponseData> joinA2 = threads.submit(() -> join(joinRequest(GROUP, a), JOIN));
        JoinGroupResponseData ra = joinA2.get(10, TimeUnit.SECONDS);
        JoinGroupResponseData rb = joinB.get(10, TimeUnit.SECONDS);
        JoinGroupResponseData follower = ra.leader().equals(a) ? rb : ra;
        java.util.concurrent.atomic.AtomicBoolean goneF = new java.util.concurrent.atomic.AtomicBoolean();
        Future<SyncGroupResponseData> blockedSync = threads.submit(() -> groups.syncGroup(new SyncGroupRequestData(
                wire(syncRequest(follower.memberId(), follower.generationId(), Map.of()), SYNC), SYNC), SYNC, goneF::get));
        assertBlocked(blockedSync);
        goneF.set(true);
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), blockedSync.get(5, TimeUnit.SECONDS).errorCode());
    }

    @Test
    void leaveGroup_byInstanceIdAlone_removesThatMember() throws Exception {
        String id = join(joinRequest(GROUP, "").setGroupInstanceId("worker-1"), JOIN).memberId();
        JoinGroupResponseData joined = join(joinRequest(GROUP, id).setGroupInstanceId("worker-1"), JOIN);
        assertEquals("worker-1", joined.members().get(0).groupInstanceId());
        LeaveGroupResponseData left = leaveRaw(new LeaveGroupRequestData().setGroupId(GROUP).setMembers(List.of(
                new LeaveGroupRequestData.MemberIdentity().setMemberId("").setGroupInstanceId("worker-1"))), LEAVE);
        assertEquals(List.of(Errors.NONE.code()), left.members().stream().map(m -> m.errorCode()).toList());
        assertEquals(Errors.UNKNOWN_MEMBER_ID.code(), heartbeat(id, joined.generationId(), HEARTBEAT).errorCode());
    }

    @Test
    void wire_rejectsWhatTheVersionCannotCarry() {
        // The check every helper relies on: a null protocol name exists only from JoinGroup v7, and
        // LeaveGroup's member list only from v3.
        JoinGroupResponseData nullName = new JoinGroupResponseData().setProtocolName(null);
        wire(nullName, (short) 7);
        assertThrows(RuntimeException.class, () -> wire(nullName, (short) 6));
        LeaveGroupResponseData members = new LeaveGroupResponseData().setMembers(List.of(
                new LeaveGroupResponseData.MemberResponse().setMemberId("m")));
        wire(members, (short) 3);
        assertThrows(RuntimeException.class, () -> wire(members, (short) 2));
    }

    // --- helpers ---

    /** Builds a Stable group of {@code n} members that joined one at a time; the first is the leader. */
    private List<Joined> stableGroup(int n) throws Exception {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ids.add(join(joinRequest(GROUP, ""), JOIN).memberId());
        }
        List<Future<JoinGroupResponseData>> joins = new ArrayList<>();
        for (String id : ids) {
            joins.add(threads.submit(() -> join(joinRequest(GROUP, id), JOIN)));
            if (joins.size() == 1 && n > 1) {
                assertBlocked(joins.get(0));
            }
        }
        List<Joined> members = new ArrayList<>();
        for (Future<JoinGroupResponseData> f : joins) {
            JoinGroupResponseData r = f.get(10, TimeUnit.SECONDS);
            assertEquals(Errors.NONE.code(), r.errorCode());
            members.add(new Joined(r.memberId(), r.generationId(), r.leader(),
                    r.members().stream().map(m -> m.memberId()).toList()));
        }
        Joined leader = members.get(0);
        assertTrue(leader.isLeader());
        List<Future<SyncGroupResponseData>> followers = new ArrayList<>();
        for (Joined m : members.subList(1, n)) {
            followers.add(threads.submit(() -> sync(syncRequest(m.memberId(), m.generation(), Map.of()), SYNC)));
        }
        Map<String, List<TopicPartition>> assignment = new HashMap<>();
        members.forEach(m -> assignment.put(m.memberId(), List.of()));
        assertEquals(Errors.NONE.code(), sync(syncRequest(leader.memberId(), leader.generation(), assignment), SYNC)
                .errorCode());
        for (Future<SyncGroupResponseData> f : followers) {
            assertEquals(Errors.NONE.code(), f.get(10, TimeUnit.SECONDS).errorCode());
        }
        return members;
    }

    private static JoinGroupRequestData joinRequest(String group, String memberId, String... protocols) {
        List<String> names = protocols.length == 0 ? List.of("range") : Arrays.asList(protocols);
        JoinGroupRequestData.JoinGroupRequestProtocolCollection collection =
                new JoinGroupRequestData.JoinGroupRequestProtocolCollection();
        for (String name : names) {
            collection.add(new JoinGroupRequestData.JoinGroupRequestProtocol().setName(name)
                    .setMetadata(Utils.toArray(ConsumerProtocol.serializeSubscription(new Subscription(List.of("events"))))));
        }
        return new JoinGroupRequestData().setGroupId(group).setMemberId(memberId).setProtocolType("consumer")
                .setSessionTimeoutMs(SESSION_MS).setRebalanceTimeoutMs(REBALANCE_MS).setProtocols(collection);
    }

    private static SyncGroupRequestData syncRequest(String memberId, int generation,
            Map<String, List<TopicPartition>> assignments) {
        List<SyncGroupRequestData.SyncGroupRequestAssignment> list = new ArrayList<>();
        assignments.forEach((member, partitions) -> list.add(new SyncGroupRequestData.SyncGroupRequestAssignment()
                .setMemberId(member)
                .setAssignment(Utils.toArray(ConsumerProtocol.serializeAssignment(new Assignment(partitions))))));
        return new SyncGroupRequestData().setGroupId(GROUP).setMemberId(memberId).setGenerationId(generation)
                .setAssignments(list);
    }

    private static OffsetCommitRequestData commitRequest(String group, int generation, String memberId,
            Map<TopicPartition, Long> offsets) {
        Map<String, OffsetCommitRequestData.OffsetCommitRequestTopic> topics = new java.util.TreeMap<>();
        offsets.forEach((tp, offset) -> topics.computeIfAbsent(tp.topic(),
                        t -> new OffsetCommitRequestData.OffsetCommitRequestTopic().setName(t))
                .partitions().add(new OffsetCommitRequestData.OffsetCommitRequestPartition()
                        .setPartitionIndex(tp.partition()).setCommittedOffset(offset).setCommittedMetadata("m")));
        return new OffsetCommitRequestData().setGroupId(group).setGenerationIdOrMemberEpoch(generation)
                .setMemberId(memberId).setTopics(new ArrayList<>(topics.values()));
    }

    private JoinGroupResponseData join(JoinGroupRequestData request, short version) throws InterruptedException {
        JoinGroupResponseData r = groups.joinGroup(new JoinGroupRequestData(wire(request, version), version), version,
                "client", "/127.0.0.1");
        return new JoinGroupResponseData(wire(r, version), version);
    }

    private SyncGroupResponseData sync(SyncGroupRequestData request, short version) throws InterruptedException {
        SyncGroupResponseData r = groups.syncGroup(new SyncGroupRequestData(wire(request, version), version), version);
        return new SyncGroupResponseData(wire(r, version), version);
    }

    private HeartbeatResponseData heartbeat(String memberId, int generation, short version) {
        return heartbeatRaw(new HeartbeatRequestData().setGroupId(GROUP).setMemberId(memberId)
                .setGenerationId(generation), version);
    }

    private HeartbeatResponseData heartbeatRaw(HeartbeatRequestData request, short version) {
        HeartbeatResponseData r = groups.heartbeat(new HeartbeatRequestData(wire(request, version), version), version);
        return new HeartbeatResponseData(wire(r, version), version);
    }

    private LeaveGroupResponseData leave(String memberId, short version) {
        LeaveGroupRequestData request = new LeaveGroupRequestData().setGroupId(GROUP);
        if (version >= 3) {
            request.setMembers(List.of(new LeaveGroupRequestData.MemberIdentity().setMemberId(memberId)));
        } else {
            request.setMemberId(memberId);
        }
        return leaveRaw(request, version);
    }

    private LeaveGroupResponseData leaveRaw(LeaveGroupRequestData request, short version) {
        LeaveGroupResponseData r = groups.leaveGroup(new LeaveGroupRequestData(wire(request, version), version), version);
        return new LeaveGroupResponseData(wire(r, version), version);
    }

    private OffsetCommitResponseData commit(OffsetCommitRequestData request, short version) {
        OffsetCommitResponseData r = groups.commitOffsets(new OffsetCommitRequestData(wire(request, version), version),
                version);
        return new OffsetCommitResponseData(wire(r, version), version);
    }

    private OffsetFetchResponseData fetchRaw(OffsetFetchRequestData request, short version) {
        OffsetFetchResponseData r = groups.fetchOffsets(new OffsetFetchRequestData(wire(request, version), version),
                version);
        return new OffsetFetchResponseData(wire(r, version), version);
    }

    /** @param partitions the partitions to ask for, or null for all; answers in the shape of the version */
    private Map<TopicPartition, Long> fetch(String group, List<TopicPartition> partitions, short version) {
        Map<String, List<Integer>> byTopic = new java.util.LinkedHashMap<>();
        if (partitions != null) {
            partitions.forEach(tp -> byTopic.computeIfAbsent(tp.topic(), t -> new ArrayList<>()).add(tp.partition()));
        }
        OffsetFetchRequestData request = new OffsetFetchRequestData();
        if (version >= 8) {
            OffsetFetchRequestData.OffsetFetchRequestGroup g = new OffsetFetchRequestData.OffsetFetchRequestGroup()
                    .setGroupId(group);
            if (partitions == null) {
                g.setTopics(null);
            } else {
                byTopic.forEach((t, ps) -> g.topics().add(new OffsetFetchRequestData.OffsetFetchRequestTopics()
                        .setName(t).setPartitionIndexes(ps)));
            }
            request.setGroups(List.of(g));
            OffsetFetchResponseData.OffsetFetchResponseGroup answer = fetchRaw(request, version).groups().get(0);
            assertEquals(Errors.NONE.code(), answer.errorCode());
            return offsets(answer);
        }
        request.setGroupId(group);
        if (partitions == null) {
            request.setTopics(null);
        } else {
            byTopic.forEach((t, ps) -> request.topics().add(new OffsetFetchRequestData.OffsetFetchRequestTopic()
                    .setName(t).setPartitionIndexes(ps)));
        }
        OffsetFetchResponseData answer = fetchRaw(request, version);
        assertEquals(Errors.NONE.code(), answer.errorCode());
        Map<TopicPartition, Long> offsets = new HashMap<>();
        answer.topics().forEach(t -> t.partitions().forEach(p -> {
            assertEquals(Errors.NONE.code(), p.errorCode());
            offsets.put(new TopicPartition(t.name(), p.partitionIndex()), p.committedOffset());
        }));
        return offsets;
    }

    private static Map<TopicPartition, Long> offsets(OffsetFetchResponseData.OffsetFetchResponseGroup group) {
        Map<TopicPartition, Long> offsets = new HashMap<>();
        group.topics().forEach(t -> t.partitions().forEach(p -> {
            assertEquals("", p.metadata());
            assertEquals(-1, p.committedLeaderEpoch());
            offsets.put(new TopicPartition(t.name(), p.partitionIndex()), p.committedOffset());
        }));
        return offsets;
    }

    private static Map<TopicPartition, Errors> errors(OffsetCommitResponseData response) {
        Map<TopicPartition, Errors> errors = new HashMap<>();
        response.topics().forEach(t -> t.partitions().forEach(p ->
                errors.put(new TopicPartition(t.name(), p.partitionIndex()), Errors.forCode(p.errorCode()))));
        return errors;
    }

    private static List<TopicPartition> assignment(SyncGroupResponseData response) {
        assertEquals(Errors.NONE.code(), response.errorCode());
        return ConsumerProtocol.deserializeAssignment(ByteBuffer.wrap(response.assignment())).partitions();
    }

    /** Serializes at {@code version}: throws if the message has a field that the version lacks. */
    private static ByteBufferAccessor wire(Message message, short version) {
        return MessageUtil.toByteBufferAccessor(message, version);
    }

    private static void assertBlocked(Future<?> call) {
        assertThrows(TimeoutException.class, () -> call.get(300, TimeUnit.MILLISECONDS));
    }

    /** Lets the expiry task run a few times. */
    private static void awaitQuietly(Duration duration) throws InterruptedException {
        Thread.sleep(duration.toMillis());
    }

    private static void awaitTrue(Supplier<Boolean> condition, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!condition.get()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting until " + what);
            }
            Thread.sleep(10);
        }
    }
}
