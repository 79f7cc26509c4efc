package io.pockettune.store;

import static io.pockettune.store.ModelStoreTest.IDENTITY;
import static io.pockettune.store.ModelStoreTest.commitUpTo;
import static io.pockettune.store.ModelStoreTest.offsetsOf;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.kafka.common.utils.MockTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Checkpoints ({@link CheckpointStore}), through the facade. */
class CheckpointStoreTest {
  @TempDir Path dir;

  @Test
  void markCheckpoint_sequentialIdsCarryStateAndSurviveReopen() {
    Checkpoint first;
    Checkpoint second;
    try (ModelStore store = ModelStore.open(dir, IDENTITY, new MockTime(0, 1_000, 0))) {
      first = store.markCheckpoint(null, Map.of());
      commitUpTo(store, 7);
      second = store.markCheckpoint("week 1", Map.of("eval.loss", 2.5, "ppl", 12.25));
      assertEquals(List.of(first, second), store.checkpoints());
    }
    assertEquals(1, first.id());
    assertEquals(0, first.step());
    assertEquals(Map.of(), first.offsets());
    assertEquals(null, first.label());
    assertEquals(2, second.id());
    assertEquals(7, second.step());
    assertEquals(offsetsOf(7), second.offsets());
    assertEquals("week 1", second.label());
    assertEquals(Map.of("eval.loss", 2.5, "ppl", 12.25), second.metrics());
    assertEquals(Instant.ofEpochMilli(1_000), second.time());
    assertEquals(IDENTITY, second.identity());

    RunIdentity changed = IDENTITY.withRunConfig("{\"lr\":1e-7}");
    try (ModelStore store = ModelStore.open(dir, changed, new MockTime(0, 2_000, 0))) {
      assertEquals(List.of(first, second), store.checkpoints());
      assertEquals(Optional.of(second), store.checkpoint(2));
      assertEquals(Optional.empty(), store.checkpoint(3));
      assertEquals(Optional.empty(), store.checkpoint(0));
      commitUpTo(store, 9);
      Checkpoint third = store.markCheckpoint("after config change", Map.of());
      assertEquals(3, third.id());
      assertEquals(9, third.step());
      assertEquals(changed, third.identity());
      assertEquals(Instant.ofEpochMilli(2_000), third.time());
    }
  }
}
