package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.record;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConsumerOffsetsTest {

    private static final TopicPartition P0 = new TopicPartition("events", 0);
    private static final TopicPartition P1 = new TopicPartition("events", 1);

    @TempDir
    Path dir;

    @BeforeEach
    void createTopicWithRecords() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            log.createTopic("events", 2);
            for (int p = 0; p < 2; p++) {
                log.append("events", p, List.of(record("a"), record("b"), record("c"), record("d"), record("e")));
            }
        }
    }

    @Test
    void committed_unknownGroup_isEmpty() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            log.commitOffsets("trainer", Map.of(P0, 3L));
            assertEquals(OptionalLong.empty(), log.committed("someone-else", P0));
            assertEquals(OptionalLong.empty(), log.committed("trainer", P1));
        }
    }

    @Test
    void commitOffsets_survivesCleanReopen() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            log.commitOffsets("trainer", Map.of(P0, 3L, P1, 5L));
            log.commitOffsets("eval", Map.of(P0, 1L));
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(OptionalLong.of(3), log.committed("trainer", P0));
            assertEquals(OptionalLong.of(5), log.committed("trainer", P1));
            assertEquals(OptionalLong.of(1), log.committed("eval", P0));
        }
    }

    @Test
    void commitOffsets_survivesAbandonedLog() throws IOException {
        EmbeddedLog log = EmbeddedLog.open(dir);
        log.commitOffsets("trainer", Map.of(P0, 2L));
        log.abandon();
        try (EmbeddedLog reopened = EmbeddedLog.open(dir)) {
            assertEquals(OptionalLong.of(2), reopened.committed("trainer", P0));
        }
    }

    @Test
    void commitOffsets_laterCommitOfSomePartitions_overridesOnlyThose() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            log.commitOffsets("trainer", Map.of(P0, 1L, P1, 1L));
            log.commitOffsets("trainer", Map.of(P1, 4L));
            assertEquals(OptionalLong.of(1), log.committed("trainer", P0));
            assertEquals(OptionalLong.of(4), log.committed("trainer", P1));
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(OptionalLong.of(1), log.committed("trainer", P0));
            assertEquals(OptionalLong.of(4), log.committed("trainer", P1));
        }
    }

    @Test
    void commitOffsets_beyondEndOffset_throwsAndCommitsNothing() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.commitOffsets("trainer", Map.of(P0, 6L)));
            assertEquals("cannot commit offset 6 of events-0 for group 'trainer': it must lie between 0 and the end"
                    + " offset 5; commit the offset after the last record you processed", e.getMessage());
            assertEquals(OptionalLong.empty(), log.committed("trainer", P0));
        }
    }

    @Test
    void commitOffsets_unknownPartitionOrBlankGroup_throws() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertThrows(IllegalArgumentException.class,
                    () -> log.commitOffsets("trainer", Map.of(new TopicPartition("events", 2), 0L)));
            assertThrows(IllegalArgumentException.class,
                    () -> log.commitOffsets("trainer", Map.of(new TopicPartition("nope", 0), 0L)));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> log.commitOffsets(" ", Map.of(P0, 0L)));
            assertTrue(e.getMessage().startsWith("consumer group name is blank"), e.getMessage());
        }
    }

    @Test
    void open_tornLastCommit_keepsEarlierCommitsAndAcceptsNewOnes() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            log.commitOffsets("trainer", Map.of(P0, 2L));
            log.commitOffsets("trainer", Map.of(P0, 3L));
        }
        Path file = dir.resolve(ConsumerOffsetStore.FILE_NAME);
        long intact = Files.size(file);
        // A torn third commit: a plausible length, then only part of the record.
        LogTestSupport.overwrite(file, intact, new byte[] {0, 0, 0, 40, 1, 2, 3, 4, 1, 0, 0});

        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(intact, Files.size(file), "the torn record must be cut");
            assertEquals(OptionalLong.of(3), log.committed("trainer", P0));
            log.commitOffsets("trainer", Map.of(P0, 4L));
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(OptionalLong.of(4), log.committed("trainer", P0));
        }
    }

    @Test
    void commit_pastCompactionThreshold_compactsAndKeepsLatestOffsets() throws IOException {
        Path storeDir = Files.createDirectory(dir.resolve("store"));
        try (ConsumerOffsetStore store = ConsumerOffsetStore.open(storeDir, 2048)) {
            for (long i = 0; i < 500; i++) {
                store.commit("trainer", Map.of(P0, i));
                store.commit("eval", Map.of(P1, 2 * i));
            }
            assertTrue(store.sizeInBytes() < 2048, "the file must have been compacted, size " + store.sizeInBytes());
            assertEquals(OptionalLong.of(499), store.committed("trainer", P0));
            store.commit("trainer", Map.of(P1, 7L));
        }
        try (ConsumerOffsetStore store = ConsumerOffsetStore.open(storeDir, 2048)) {
            assertEquals(OptionalLong.of(499), store.committed("trainer", P0));
            assertEquals(OptionalLong.of(7), store.committed("trainer", P1));
            assertEquals(OptionalLong.of(998), store.committed("eval", P1));
        }
        assertTrue(Files.notExists(storeDir.resolve(ConsumerOffsetStore.FILE_NAME + ".tmp")));
    }

    @Test
    void committedOffsets_listsEveryCommittedPartitionOfTheGroupOnly() throws IOException {
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(Map.of(), log.committedOffsets("trainer"));
            log.commitOffsets("trainer", Map.of(P0, 1L));
            log.commitOffsets("trainer", Map.of(P1, 4L));
            log.commitOffsets("eval", Map.of(P0, 2L));
            assertEquals(Map.of(P0, 1L, P1, 4L), log.committedOffsets("trainer"));
        }
        try (EmbeddedLog log = EmbeddedLog.open(dir)) {
            assertEquals(Map.of(P0, 2L), log.committedOffsets("eval"));
        }
    }
}
