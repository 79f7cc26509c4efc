package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A force ({@code fsync}) that fails, injected through {@link LogConfig#withChannels} into real
 * segment files ({@link FaultyChannels}, which also drops what was not forced, as a kernel that lost
 * the dirty pages does). Pins: the append that needed the force fails and no later append is taken
 * by that partition, with one sentence naming it and what to do; the other partitions go on; close
 * leaves no clean-shutdown marker; and after reopening with working files every acknowledged
 * record is there, at its offset, while the partition takes appends again.
 */
class FsyncFailureTest {

    private static final TopicPartition T0 = new TopicPartition("t", 0);

    @TempDir
    Path dir;

    private static LogRecord record(String value) {
        return new LogRecord(1_700_000_000_000L, null, value.getBytes(StandardCharsets.UTF_8));
    }

    private static List<String> values(List<LogEntry> entries) {
        List<String> values = new ArrayList<>();
        entries.forEach(e -> values.add(new String(e.value(), StandardCharsets.UTF_8)));
        return values;
    }

    private static void assertContains(String message, String... parts) {
        for (String part : parts) {
            assertTrue(message.contains(part), () -> "'" + message + "' should contain '" + part + "'");
        }
    }

    /** Closes a log with a failed partition, which cannot close cleanly. */
    private static void closeFailed(EmbeddedLog log) {
        IOException e = assertThrows(IOException.class, log::close);
        assertContains(e.getMessage(), "validate and repair");
    }

    @Test
    void aFailedForceFailsItsAppendAndThePartitionRefusesMoreUntilReopened() throws Exception {
        FaultyChannels faults = FaultyChannels.forPartitionDir("t-0");
        try (EmbeddedLog log = EmbeddedLog.open(dir, LogConfig.defaults().withChannels(faults))) {
            log.createTopic("t", 2);
            assertEquals(0, log.append("t", 0, List.of(record("a0"), record("a1"))));
            faults.failForces(true);

            IOException failed = assertThrows(IOException.class, () -> log.append("t", 0, List.of(record("lost"))));
            assertContains(failed.getMessage(), "could not force t-0", "not acknowledged", "open it again");
            faults.failForces(false); // the device works again, but a later force would prove nothing
            IOException refused = assertThrows(IOException.class, () -> log.append("t", 0, List.of(record("refused"))));
            assertTrue(refused.getMessage().startsWith("t-0 refuses appends since forcing it to disk failed"),
                    refused.getMessage());
            assertContains(refused.getMessage(), "close the log and open it again");
            assertEquals(2, log.endOffset("t", 0), "readers never see the unacknowledged record");
            assertEquals(List.of("a0", "a1"), values(log.read("t", 0, 0, 10)));

            assertEquals(0, log.append("t", 1, List.of(record("b0"))), "the other partition goes on");
            assertEquals(Set.of(T0), log.failedPartitions().keySet());
            assertEquals(refused.getMessage(), log.failedPartitions().get(T0));
            closeFailed(log);
        }
        assertFalse(Files.exists(dir.resolve(EmbeddedLog.CLEAN_SHUTDOWN_FILE)));

        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertTrue(log.segmentsRecoveredAtOpen() > 0, "the unclean close makes the open validate");
            assertTrue(log.failedPartitions().isEmpty());
            assertEquals(List.of("a0", "a1"), values(log.read("t", 0, 0, 10)));
            assertEquals(List.of("b0"), values(log.read("t", 1, 0, 10)));
            long next = log.append("t", 0, List.of(record("after")));
            assertEquals(List.of("after"), values(log.read("t", 0, next, 1)));
        }
    }

    /**
     * Four threads append to one partition in group commits while its forces start failing at some
     * point: every append acknowledged before is present after reopen at its offset, every later
     * one failed, under both flush policies that force.
     */
    @ParameterizedTest
    @EnumSource(value = LogConfig.FlushPolicy.class, names = {"FSYNC_EACH_BATCH", "INTERVAL"})
    void concurrentAppendersAreAcknowledgedOnlyForForcedRecords(LogConfig.FlushPolicy policy) throws Exception {
        FaultyChannels faults = FaultyChannels.forPartitionDir("t-0");
        LogConfig config = LogConfig.defaults().withFlushPolicy(policy).withChannels(faults);
        Map<Long, String> acknowledged = new ConcurrentHashMap<>();
        List<IOException> errors = Collections.synchronizedList(new ArrayList<>());
        AtomicBoolean stop = new AtomicBoolean();
        try (EmbeddedLog log = EmbeddedLog.open(dir, config)) {
            log.createTopic("t", 1);
            List<Thread> writers = new ArrayList<>();
            for (int w = 0; w < 4; w++) {
                int writer = w;
                writers.add(new Thread(() -> {
                    for (int i = 0; i < 100_000 && !stop.get(); i++) {
                        String v = writer + "-" + i;
                        try {
                            acknowledged.put(log.append("t", 0, List.of(record(v))), v);
                        } catch (IOException e) {
                            errors.add(e);
                            return;
                        }
                    }
                }));
            }
            writers.forEach(Thread::start);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (acknowledged.size() < 200 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            faults.failForces(true);
            for (Thread t : writers) {
                t.join(TimeUnit.SECONDS.toMillis(20));
            }
            stop.set(true);
            assertEquals(4, errors.size(), "every writer ends with the partition's error");
            errors.forEach(e -> assertContains(e.getMessage(), "t-0"));
            assertTrue(faults.failedForces() > 0);
            assertEquals(Set.of(T0), log.failedPartitions().keySet());
            assertTrue(acknowledged.size() >= 200, "acknowledged " + acknowledged.size());
            closeFailed(log);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            for (Map.Entry<Long, String> ack : acknowledged.entrySet()) {
                assertEquals(List.of(ack.getValue()), values(log.read("t", 0, ack.getKey(), 1)),
                        "acknowledged offset " + ack.getKey());
            }
        }
    }

    /** The embedded Kafka producer: a send whose force failed completes exceptionally, never with metadata. */
    @Test
    void theEmbeddedProducersSendFailsWhenItsForceFails() throws Exception {
        FaultyChannels faults = FaultyChannels.forPartitionDir("t-0");
        List<RecordMetadata> acked = new ArrayList<>();
        try (EmbeddedLog log = EmbeddedLog.open(dir, LogConfig.defaults().withChannels(faults))) {
            log.createTopic("t", 2);
            try (EmbeddedProducer<String, String> producer = new EmbeddedProducer<>(log, Map.of(),
                    new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < 5; i++) {
                    acked.add(producer.send(new ProducerRecord<>("t", 0, null, "v" + i)).get());
                }
                faults.failForces(true);
                ExecutionException lost = assertThrows(ExecutionException.class,
                        () -> producer.send(new ProducerRecord<>("t", 0, null, "lost")).get());
                assertContains(lost.getCause().getMessage(), "could not force t-0");
                ExecutionException refused = assertThrows(ExecutionException.class,
                        () -> producer.send(new ProducerRecord<>("t", 0, null, "refused")).get());
                assertContains(refused.getCause().getMessage(), "t-0 refuses appends");
                assertEquals(0, producer.send(new ProducerRecord<>("t", 1, null, "other")).get().offset());
            }
            closeFailed(log);
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            for (RecordMetadata m : acked) {
                assertEquals(List.of("v" + m.offset()), values(log.read("t", 0, m.offset(), 1)));
            }
            assertEquals(List.of("other"), values(log.read("t", 1, 0, 5)));
        }
    }
}
