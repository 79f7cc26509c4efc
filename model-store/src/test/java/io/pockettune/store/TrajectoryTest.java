package io.pockettune.store;

import static io.pockettune.store.ModelStoreTest.IDENTITY;
import static io.pockettune.store.ModelStoreTest.MESSAGES_0;
import static io.pockettune.store.ModelStoreTest.MESSAGES_1;
import static io.pockettune.store.ModelStoreTest.NOTES_0;
import static io.pockettune.store.ModelStoreTest.commitUpTo;
import static io.pockettune.store.ModelStoreTest.offsetsOf;
import static io.pockettune.store.ModelStoreTest.record;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.StepRecord;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Commits, step reads and offsets of the live trajectory ({@link Trajectory}), via the facade. */
class TrajectoryTest {
  @TempDir Path dir;

  @Test
  void commitStep_reopen_stepsAndOffsetsSurvive() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(0, store.lastStep());
      assertEquals(Map.of(), store.committedOffsets());
      commitUpTo(store, 30);
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(30, store.lastStep());
      assertEquals(offsetsOf(30), store.committedOffsets());
      for (long n = 1; n <= 30; n++) {
        assertEquals(Optional.of(record(n)), store.step(n));
      }
      assertEquals(Optional.empty(), store.step(31));
      assertEquals(Optional.empty(), store.step(0));
      assertEquals(List.of(record(9), record(10), record(11)), store.steps(9, 11));
      assertEquals(30, store.steps(0, Long.MAX_VALUE).size());
      assertEquals(List.of(), store.steps(12, 11));
      store.commitStep(record(31), offsetsOf(31));
      assertEquals(31, store.lastStep());
    }
  }

  @Test
  void steps_past255_iterateInNumericOrder() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 300);
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(300, store.lastStep());
      assertEquals(offsetsOf(300), store.committedOffsets());
      List<StepRecord> all = store.steps(1, 300);
      for (int i = 0; i < 300; i++) {
        assertEquals(record(i + 1), all.get(i));
      }
    }
  }

  @Test
  void steps_past65535_iterateInNumericOrder() {
    // 65,530 synced commits would take minutes: lay down the prefix in one raw batch, then commit
    // across the 65535/65536 boundary for real.
    long prefix = 65_530;
    Map<byte[], byte[]> steps = new HashMap<>();
    for (long n = 1; n <= prefix; n++) {
      steps.put(StepRecordCodec.key(n), StepRecordCodec.encode(record(n)));
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      store.rawPutAll(Column.STEPS, steps);
    }
    long last = 65_540;
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(prefix, store.lastStep());
      commitUpTo(store, last);
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(last, store.lastStep());
      assertEquals(offsetsOf(last), store.committedOffsets());
      List<StepRecord> all = store.steps(1, last);
      assertEquals(last, all.size());
      for (int i = 0; i < all.size(); i++) {
        assertEquals(i + 1, all.get(i).step());
        assertEquals(record(i + 1).seed(), all.get(i).seed());
      }
      assertEquals(List.of(record(65_535), record(65_536)), store.steps(65_535, 65_536));
    }
  }

  @Test
  void commitStep_reopenAfterEachCommit_stepAndOffsetsAgree() {
    for (long n = 1; n <= 12; n++) {
      try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
        assertEquals(n - 1, store.lastStep());
        assertEquals(n == 1 ? Map.of() : offsetsOf(n - 1), store.committedOffsets());
        store.commitStep(record(n), offsetsOf(n));
      }
    }
  }

  @Test
  void commitStep_outOfOrder_refusedAndNothingWritten() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 3);
      IllegalStateException skip =
          assertThrows(
              IllegalStateException.class, () -> store.commitStep(record(5), offsetsOf(5)));
      assertTrue(skip.getMessage().contains("last committed step is 3"), skip.getMessage());
      assertThrows(IllegalStateException.class, () -> store.commitStep(record(3), offsetsOf(3)));
      assertEquals(3, store.lastStep());
      assertEquals(offsetsOf(3), store.committedOffsets());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(3, store.lastStep());
      assertEquals(Optional.empty(), store.step(5));
      assertEquals(offsetsOf(3), store.committedOffsets());
    }
  }

  @Test
  void commitStep_negativeOffset_refusedAndNothingWritten() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 1);
      assertThrows(
          IllegalArgumentException.class,
          () -> store.commitStep(record(2), Map.of(MESSAGES_0, 40L, NOTES_0, -1L)));
      assertEquals(1, store.lastStep());
      assertEquals(offsetsOf(1), store.committedOffsets());
      assertEquals(Optional.empty(), store.step(2));
    }
  }

  @Test
  void commitStep_partitionNotGiven_keepsItsOffset() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      store.commitStep(record(1), Map.of(MESSAGES_0, 10L, MESSAGES_1, 20L));
      store.commitStep(record(2), Map.of(MESSAGES_1, 25L));
      store.commitStep(record(3), Map.of());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(Map.of(MESSAGES_0, 10L, MESSAGES_1, 25L), store.committedOffsets());
      assertEquals(3, store.lastStep());
    }
  }

  @Test
  void steps_missingStepInRange_isCorruptionNamingIt() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 6);
      // Remove step 4 behind the store's back, as a damaged database would.
      store.rawDelete(Column.STEPS, StepRecordCodec.key(4));
      StoreCorruptedException e =
          assertThrows(StoreCorruptedException.class, () -> store.steps(1, 6));
      assertTrue(e.getMessage().contains("step 4 is missing"), e.getMessage());
      assertEquals(List.of(record(5), record(6)), store.steps(5, 6));
    }
  }

  @Test
  void step_emptyValue_isCorruptionNamingStep() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 2);
      store.rawPut(Column.STEPS, StepRecordCodec.key(2), new byte[0]);
      StoreCorruptedException e =
          assertThrows(StoreCorruptedException.class, () -> store.step(2));
      assertTrue(e.getMessage().contains("step 2"), e.getMessage());
      assertTrue(e.getMessage().contains("(in the model store " + dir + "): roll back to a checkpoint or step before"
          + " the damaged record"), "names the store and what to do: " + e.getMessage());
    }
  }

  @Test
  void step_unknownFormatVersion_refusedNamingIt() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 2);
      byte[] value = store.rawGet(Column.STEPS, StepRecordCodec.key(2));
      value[0] = 7;
      store.rawPut(Column.STEPS, StepRecordCodec.key(2), value);
      StoreException e = assertThrows(StoreException.class, () -> store.step(2));
      assertTrue(e.getMessage().contains("step 2 has format version 7"), e.getMessage());
    }
  }

  @Test
  void commitStep_fzooRecord_reopen_coefficientsSurviveAndBranchKeepsThem() {
    StepRecord fzoo3 = StepRecordCodecTest.fzooRecord(3);
    StepRecord fzoo4 = StepRecordCodecTest.fzooRecord(4);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 2);
      store.commitStep(fzoo3, offsetsOf(3));
      store.commitStep(fzoo4, offsetsOf(4));
      store.commitStep(record(5), offsetsOf(5));
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(5, store.lastStep());
      assertEquals(Optional.of(fzoo3), store.step(3));
      assertEquals(List.of(record(2), fzoo3, fzoo4, record(5)), store.steps(2, 5));
      assertArrayEquals(fzoo4.coefficients(), store.step(4).orElseThrow().coefficients());
      assertNull(store.step(5).orElseThrow().coefficients());
      assertEquals(offsetsOf(4), store.offsetsAt(4));
      assertEquals(offsetsOf(5), store.committedOffsets());
      assertEquals(StepRecordCodec.VERSION_FZOO,
          store.rawGet(Column.STEPS, StepRecordCodec.key(4))[0]);
      assertEquals(StepRecordCodec.VERSION_MEZO,
          store.rawGet(Column.STEPS, StepRecordCodec.key(5))[0]);
      // A rollback moves the values unchanged into the branch: the coefficients go with them.
      store.rollbackTo(2);
      assertEquals(offsetsOf(2), store.committedOffsets());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(2, store.lastStep());
      assertEquals(List.of(fzoo3, fzoo4, record(5)), store.branchSteps(1));
    }
  }
}
