package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ModelStoreTest {
  static final RunIdentity IDENTITY =
      new RunIdentity("sha256:1111aaaa", 1, "layers.0.q[8, 8];layers.0.v[8, 8];", "{\"lr\":1e-6}");
  static final SourcePartition MESSAGES_0 = new SourcePartition("messages", 0);
  static final SourcePartition MESSAGES_1 = new SourcePartition("messages", 1);
  static final SourcePartition NOTES_0 = new SourcePartition("notes", 0);

  @TempDir Path dir;

  static StepRecord record(long step) {
    return new StepRecord(
        step, step * 0x9E3779B97F4A7C15L, step * 0.25f - 3f, 1e-6f, 1e-3f, 2.5f, 2.4f, 16,
        1_700_000_000_000L + step);
  }

  /** Offsets a commit of {@code step} writes: a function of the step, so any pairing is checkable. */
  static Map<SourcePartition, Long> offsetsOf(long step) {
    return Map.of(MESSAGES_0, step * 16, NOTES_0, step * 3 + 1);
  }

  static void commitUpTo(ModelStore store, long lastStep) {
    for (long n = store.lastStep() + 1; n <= lastStep; n++) {
      store.commitStep(record(n), offsetsOf(n));
    }
  }

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
  void open_differentBaseModel_refusedNamingBoth() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 2);
    }
    RunIdentity other =
        new RunIdentity("sha256:2222bbbb", 1, IDENTITY.trainableLayout(), IDENTITY.runConfig());
    StoreMismatchException e =
        assertThrows(StoreMismatchException.class, () -> ModelStore.open(dir, other));
    assertTrue(e.getMessage().contains("sha256:1111aaaa"), e.getMessage());
    assertTrue(e.getMessage().contains("sha256:2222bbbb"), e.getMessage());
    assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
    assertTrue(e.getMessage().contains("--data-dir"), e.getMessage());
    // The refused open released the store: the original run can still open it.
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(2, store.lastStep());
    }
  }

  @Test
  void open_differentKernelVersion_refusedNamingBoth() {
    ModelStore.open(dir, IDENTITY).close();
    RunIdentity other =
        new RunIdentity(IDENTITY.baseModelHash(), 7, IDENTITY.trainableLayout(), "");
    StoreMismatchException e =
        assertThrows(StoreMismatchException.class, () -> ModelStore.open(dir, other));
    assertTrue(e.getMessage().contains("kernel version 1"), e.getMessage());
    assertTrue(e.getMessage().contains("uses version 7"), e.getMessage());
  }

  @Test
  void open_differentTrainableLayout_refusedNamingBoth() {
    ModelStore.open(dir, IDENTITY).close();
    RunIdentity other =
        new RunIdentity(IDENTITY.baseModelHash(), 1, "layers.0.q[8, 8];", IDENTITY.runConfig());
    StoreMismatchException e =
        assertThrows(StoreMismatchException.class, () -> ModelStore.open(dir, other));
    assertTrue(e.getMessage().contains(IDENTITY.trainableLayout()), e.getMessage());
    assertTrue(e.getMessage().contains("uses layers.0.q[8, 8];:"), e.getMessage());
  }

  @Test
  void open_changedRunConfig_keepsLatestAndRecordsWhen() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 5);
      assertEquals(Map.of(1L, IDENTITY.runConfig()), store.runConfigs());
    }
    RunIdentity changed = IDENTITY.withRunConfig("{\"lr\":5e-7}");
    try (ModelStore store = ModelStore.open(dir, changed)) {
      assertEquals(changed, store.identity());
      commitUpTo(store, 8);
    }
    try (ModelStore store = ModelStore.open(dir, changed)) {
      assertEquals(Map.of(1L, IDENTITY.runConfig(), 6L, changed.runConfig()), store.runConfigs());
    }
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      assertEquals(changed, store.identity());
    }
  }

  @Test
  void open_whileOpen_inUseMessage() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 1);
      StoreException e = assertThrows(StoreException.class, () -> ModelStore.open(dir, IDENTITY));
      assertTrue(e.getMessage().contains("is in use"), e.getMessage());
      assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
      // The failed open did not disturb the first one.
      store.commitStep(record(2), offsetsOf(2));
      assertEquals(2, store.lastStep());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(2, store.lastStep());
    }
  }

  @Test
  void open_pathIsFile_clearMessage() throws IOException {
    Path file = Files.writeString(dir.resolve("model"), "not a store");
    StoreException e = assertThrows(StoreException.class, () -> ModelStore.open(file, IDENTITY));
    assertTrue(e.getMessage().contains("is a file, not a directory"), e.getMessage());
  }

  @Test
  void open_missingDirectory_createsIt() {
    Path nested = dir.resolve("data").resolve("model");
    try (ModelStore store = ModelStore.open(nested, IDENTITY)) {
      assertEquals(IDENTITY, store.identity());
    }
    assertTrue(Files.isRegularFile(nested.resolve("CURRENT")));
  }

  @Test
  void openReadOnly_missingStore_clearMessage() {
    Path missing = dir.resolve("nothing-here");
    StoreException e = assertThrows(StoreException.class, () -> ModelStore.openReadOnly(missing));
    assertTrue(e.getMessage().contains("there is no model store at " + missing), e.getMessage());
    assertFalse(Files.exists(missing), "a read-only open must not create anything");
  }

  @Test
  void openReadOnly_whileWriterOpen_readsStateAndRefusesWrites() {
    try (ModelStore writer = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(writer, 4);
      writer.markCheckpoint("first", Map.of());
      try (ModelStore reader = ModelStore.openReadOnly(dir)) {
        assertEquals(IDENTITY, reader.identity());
        assertEquals(4, reader.lastStep());
        assertEquals(offsetsOf(4), reader.committedOffsets());
        assertEquals(writer.checkpoints(), reader.checkpoints());
        assertThrows(IllegalStateException.class, () -> reader.commitStep(record(5), Map.of()));
        assertThrows(IllegalStateException.class, () -> reader.markCheckpoint(null, Map.of()));
      }
      writer.commitStep(record(5), offsetsOf(5));
    }
  }

  @Test
  void close_thenCall_throwsAndCloseIsIdempotent() {
    ModelStore store = ModelStore.open(dir, IDENTITY);
    store.close();
    store.close();
    assertThrows(IllegalStateException.class, store::lastStep);
    assertThrows(IllegalStateException.class, () -> store.step(1));
    assertThrows(IllegalStateException.class, () -> store.commitStep(record(1), Map.of()));
  }

  static FloatBuffer weightsBuffer(float[] values) {
    FloatBuffer direct =
        ByteBuffer.allocateDirect(values.length * Float.BYTES)
            .order(ByteOrder.nativeOrder())
            .asFloatBuffer();
    direct.put(values).flip();
    return direct;
  }

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 300_000, SnapshotCodec.CHUNK_FLOATS + 3})
  void putSnapshot_reopen_bitExact(int floats) {
    float[] values = SnapshotCodecTest.weights(floats, 11);
    FloatBuffer buffer = weightsBuffer(values);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      store.putSnapshot(0, buffer);
      assertEquals(0, buffer.position());
      assertEquals(floats, buffer.limit());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      Snapshot snapshot = store.snapshotAtOrBefore(0).orElseThrow();
      assertEquals(0, snapshot.step());
      assertArrayEquals(SnapshotCodecTest.bits(values), SnapshotCodecTest.bits(snapshot.values()));
    }
  }

  @Test
  void snapshotAtOrBefore_picksLatestNotAfter() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(Optional.empty(), store.snapshotAtOrBefore(100));
      commitUpTo(store, 300);
      for (long step : new long[] {256, 0, 10, 255}) {
        store.putSnapshot(step, FloatBuffer.wrap(new float[] {step, -step}));
      }
      long[][] queryAndExpected = {
        {0, 0}, {9, 0}, {10, 10}, {11, 10}, {254, 10}, {255, 255}, {256, 256}, {300, 256},
        {Long.MAX_VALUE, 256}
      };
      for (long[] q : queryAndExpected) {
        Snapshot s = store.snapshotAtOrBefore(q[0]).orElseThrow();
        assertEquals(q[1], s.step(), "at or before " + q[0]);
        assertEquals((float) q[1], s.values()[0]);
      }
      assertEquals(Optional.empty(), store.snapshotAtOrBefore(-1));
    }
  }

  @Test
  void putSnapshot_aheadOfLastStep_refused() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 3);
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> store.putSnapshot(4, FloatBuffer.wrap(new float[] {1})));
      assertTrue(e.getMessage().contains("last committed step 3"), e.getMessage());
      assertEquals(Optional.empty(), store.snapshotAtOrBefore(10));
    }
  }

  @Test
  void putSnapshot_replacedBySmaller_leavesNoStaleChunk() {
    float[] large = SnapshotCodecTest.weights(SnapshotCodec.CHUNK_FLOATS + 10, 12);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 1);
      store.putSnapshot(1, FloatBuffer.wrap(large));
      assertTrue(store.rawGet(Column.SNAPSHOTS, SnapshotCodec.key(1, 1)) != null);
      store.putSnapshot(1, FloatBuffer.wrap(new float[] {42f}));
      assertEquals(null, store.rawGet(Column.SNAPSHOTS, SnapshotCodec.key(1, 1)));
      assertArrayEquals(new float[] {42f}, store.snapshotAtOrBefore(1).orElseThrow().values());
    }
  }

  @Test
  void snapshotAtOrBefore_corruptedBytes_checksumErrorNamingStep() {
    float[] values = SnapshotCodecTest.weights(300_000, 13);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 20);
      store.putSnapshot(10, FloatBuffer.wrap(values));
      store.putSnapshot(20, FloatBuffer.wrap(values));
      byte[] key = SnapshotCodec.key(20, 0);
      byte[] stored = store.rawGet(Column.SNAPSHOTS, key);
      // Re-encode different floats under the original checksum: a payload that decodes cleanly but
      // is not what was stored, which only the checksum can catch.
      float[] other = values.clone();
      other[123_456] = Math.nextUp(other[123_456]);
      byte[] forged = SnapshotCodec.encode(FloatBuffer.wrap(other), SnapshotCodec.CHUNK_FLOATS).get(0);
      System.arraycopy(stored, 14, forged, 14, 4);
      store.rawPut(Column.SNAPSHOTS, key, forged);
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      StoreCorruptedException e =
          assertThrows(StoreCorruptedException.class, () -> store.snapshotAtOrBefore(25));
      assertTrue(e.getMessage().contains("snapshot of step 20 fails its checksum"), e.getMessage());
      // The earlier snapshot is intact.
      assertArrayEquals(
          SnapshotCodecTest.bits(values),
          SnapshotCodecTest.bits(store.snapshotAtOrBefore(19).orElseThrow().values()));
    }
  }

  @Test
  void markCheckpoint_sequentialIdsCarryStateAndSurviveReopen() {
    Checkpoint first;
    Checkpoint second;
    try (ModelStore store = ModelStore.open(dir, IDENTITY, new ManualTime(1_000))) {
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
    try (ModelStore store = ModelStore.open(dir, changed, new ManualTime(2_000))) {
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
