package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.common.utils.MockTime;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Rollback and restore on a real (tiny) model and real MeZO steps: the restored parameters are
 * compared bit for bit, by digest, with those the trainer had after each step.
 */
class RollbackTest {
  static final DecoderLmConfig TINY =
      new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 32, 16, 1, 2, 2, 5L);
  static final byte[] ONNX = DecoderLmBuilder.build(TINY);
  static final MezoConfig MEZO = new MezoConfig(1e-3f, 1e-2f, 99L);
  static final SourcePartition LATE = new SourcePartition("notes", 0);

  static LossModel model;
  static PerturbationKernel kernel;
  static float[] base;

  @TempDir Path dir;

  @BeforeAll
  static void load() {
    model = LossModel.causalLm(ONNX, TrainableSelection.all(), 1);
    kernel = new PerturbationKernel(1);
    base = model.parameters().toArray();
  }

  @AfterAll
  static void release() {
    kernel.close();
    model.close();
  }

  static RunIdentity identity() {
    return new RunIdentity(model.baseModelHash(), PerturbationKernel.VERSION,
        model.parameters().layout(), "test");
  }

  static TokenBatch batch(String stream, long n) {
    ByteTokenizer tok = new ByteTokenizer();
    return TokenBatch.of(List.of(tok.encode(stream + " message " + n, TINY.maxPositions())));
  }

  /** The offsets step n commits; the notes partition is first read at step 100. */
  static Map<SourcePartition, Long> offsetsOf(long n) {
    Map<SourcePartition, Long> m = new TreeMap<>();
    m.put(ModelStoreTest.MESSAGES_0, n * 3);
    if (n >= 100) {
      m.put(LATE, n - 99);
    }
    return m;
  }

  /** Trains steps up to {@code last}, snapshotting every {@code every}; returns digests by step. */
  static List<String> train(ModelStore store, MezoTrainer trainer, String stream, long last,
      long every) {
    List<String> digests = new ArrayList<>();
    for (long n = store.lastStep() + 1; n <= last; n++) {
      StepRecord r = trainer.step(batch(stream, n));
      store.commitStep(r, offsetsOf(n));
      store.snapshotIfDue(model.parameters(), every);
      digests.add(model.parameters().digest());
    }
    return digests;
  }

  static MezoTrainer fresh() {
    model.parameters().load(base);
    return new MezoTrainer(model, MEZO, kernel, 0);
  }

  @Test
  void restore_severalPointsOfLongRun_bitExactWithOffsets() {
    List<String> digests = new ArrayList<>();
    MezoTrainer trainer = fresh();
    digests.add(model.parameters().digest());
    try (ModelStore store = ModelStore.open(dir, identity())) {
      digests.addAll(train(store, trainer, "a", 300, 50));
    }
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      for (long s : new long[] {0, 1, 49, 50, 51, 99, 100, 123, 250, 299, 300}) {
        model.parameters().load(base);
        Restored r = store.restore(s, model, MEZO, kernel);
        assertEquals(digests.get((int) s), model.parameters().digest(), "step " + s);
        assertEquals(s, r.trainer().stepsDone());
        assertEquals(s - s % 50, r.snapshotStep(), "nearest snapshot for " + s);
        assertEquals(s % 50, r.replayed());
        assertEquals(s == 0 ? Map.of() : offsetsOf(s), store.offsetsAt(s), "offsets of " + s);
      }
    }
  }

  /**
   * Flips a bit of the stored CRC of the first chunk of the snapshot of {@code step}: its check
   * fails for certain. (A bit of the payload is not certain to: the payload may be a deflate stream,
   * whose last byte can end in padding bits the decoder never reads.)
   */
  static void damageSnapshot(ModelStore store, long step) {
    byte[] key = SnapshotCodec.key(step, 0);
    byte[] chunk = store.rawGet(Column.SNAPSHOTS, key);
    chunk[14] ^= 0x10;
    store.rawPut(Column.SNAPSHOTS, key, chunk);
  }

  @Test
  void restore_damagedSnapshots_fallBackToAnEarlierOneOrTheBase_bitExact_andSaySo() {
    List<String> digests = new ArrayList<>();
    MezoTrainer trainer = fresh();
    digests.add(model.parameters().digest());
    try (ModelStore store = ModelStore.open(dir, identity())) {
      digests.addAll(train(store, trainer, "a", 120, 50));
      damageSnapshot(store, 100);
    }
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      model.parameters().load(base);
      Restored r = store.restore(120, model, MEZO, kernel);
      assertEquals(digests.get(120), model.parameters().digest(), "the same bits from the snapshot of step 50");
      assertEquals(50, r.snapshotStep());
      assertEquals(70, r.replayed());
      assertEquals(1, r.skippedSnapshots().size());
      assertTrue(r.skippedSnapshots().get(0).contains("snapshot of step 100"), r.skippedSnapshots().toString());
      model.parameters().load(base);
      Restored before = store.restore(99, model, MEZO, kernel);
      assertEquals(List.of(), before.skippedSnapshots(), "a restore before the damaged snapshot never reads it");
      assertEquals(digests.get(99), model.parameters().digest());
    }
    try (ModelStore store = ModelStore.open(dir, identity())) {
      damageSnapshot(store, 50);
    }
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      model.parameters().load(base);
      Restored r = store.restore(120, model, MEZO, kernel);
      assertEquals(digests.get(120), model.parameters().digest(), "the same bits from the base");
      assertEquals(0, r.snapshotStep());
      assertEquals(120, r.replayed());
      assertEquals(2, r.skippedSnapshots().size(), r.skippedSnapshots().toString());
    }
  }

  @Test
  void rollbackVerified_checksAgainstTheNextSnapshot_andAFailedCheckWritesNothing() {
    List<String> digests = new ArrayList<>();
    MezoTrainer trainer = fresh();
    digests.add(model.parameters().digest());
    try (ModelStore store = ModelStore.open(dir, identity())) {
      digests.addAll(train(store, trainer, "a", 30, 10));
      model.parameters().load(base);
      // Replaying under the wrong distribution cannot reproduce the snapshot of step 20.
      MezoConfig wrong = MEZO.withDistribution(PerturbationKernel.Distribution.RADEMACHER);
      assertThrows(StoreCorruptedException.class, () -> store.rollbackVerified(15, null, model, text -> wrong, kernel));
      assertEquals(30, store.lastStep(), "a failed check rolls nothing back");
      assertTrue(store.branches().isEmpty());

      model.parameters().load(base);
      VerifiedRollback v = store.rollbackVerified(15, null, model, text -> MEZO, kernel);
      assertEquals(Boolean.TRUE, v.verified());
      assertEquals(20, v.verifiedAgainst());
      assertEquals(digests.get(15), v.digest());
      assertEquals(digests.get(15), model.parameters().digest(), "the model is left at the target");
      assertEquals(15, store.lastStep());
      assertEquals(15, v.rollback().stepsAbandoned());
    }
  }

  @Test
  void rollbackThenContinue_equalsRunThatNeverWentPast() {
    Path other = dir.resolve("straight");
    List<String> straight;
    try (ModelStore store = ModelStore.open(other, identity())) {
      MezoTrainer t = fresh();
      train(store, t, "a", 70, 25);
      straight = train(store, t, "b", 100, 25);
    }
    Path rolled = dir.resolve("rolled");
    try (ModelStore store = ModelStore.open(rolled, identity())) {
      MezoTrainer first = fresh();
      train(store, first, "a", 90, 25);
      Checkpoint kept = store.markCheckpoint("kept", Map.of());
      train(store, first, "a", 130, 25);
      Checkpoint lost = store.markCheckpoint("lost", Map.of("loss", 1.0));

      model.parameters().load(base);
      MezoTrainer t = store.restore(70, model, MEZO, kernel).trainer();
      Rollback rb = store.rollbackTo(70);
      assertEquals(70, store.lastStep());
      assertEquals(60, rb.stepsAbandoned());
      assertEquals(List.of(kept.id(), lost.id()), rb.checkpointsAbandoned());
      assertEquals(3, rb.snapshotsDropped(), "snapshots 75, 100 and 125");
      assertEquals(offsetsOf(70), rb.offsets());
      assertEquals(offsetsOf(70), store.committedOffsets());
      assertFalse(store.committedOffsets().containsKey(LATE), "notes were first read at step 100");
      assertEquals(50, store.snapshotAtOrBefore(Long.MAX_VALUE - 1).orElseThrow().step());

      List<String> continued = train(store, t, "b", 100, 25);
      assertEquals(straight, continued, "rolled back and continued == never went past 70");
      assertEquals(offsetsOf(100), store.committedOffsets());
    }
    try (ModelStore store = ModelStore.open(rolled, identity())) {
      assertEquals(100, store.lastStep());
      Branch branch = store.branches().get(0);
      assertEquals(new Branch(1, 70, 71, 130, branch.time()), branch);
      List<StepRecord> abandoned = store.branchSteps(1);
      assertEquals(60, abandoned.size());
      assertEquals(71, abandoned.get(0).step());
      List<Checkpoint> checkpoints = store.checkpoints();
      assertEquals(1, checkpoints.get(0).branch());
      assertEquals(1, checkpoints.get(1).branch());
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> store.rollbackTo(checkpoints.get(0)));
      assertTrue(e.getMessage().contains("abandoned by an earlier rollback"), e.getMessage());

      Prune prune = store.prune(true);
      assertEquals(1, prune.branches());
      assertEquals(60, prune.steps());
      assertTrue(prune.bytesReclaimed() > 0, prune.toString());
      assertEquals(List.of(), store.branches());
      assertEquals(List.of(), store.branchSteps(1));
      // Snapshots 25 and 50 went; the latest (100) stays.
      assertEquals(100, store.snapshotAtOrBefore(100).orElseThrow().step());
      assertTrue(store.snapshotAtOrBefore(99).isEmpty());
      assertEquals(100, store.steps(1, 100).size());

      // A new rollback gets a new branch id, never reusing a pruned one.
      model.parameters().load(base);
      store.restore(100, model, MEZO, kernel);
      assertEquals(2, store.rollbackTo(99).branch().orElseThrow().id());
    }
  }

  @Test
  void restore_otherBaseModel_refused() {
    try (ModelStore store = ModelStore.open(dir, ModelStoreTest.IDENTITY)) {
      StoreMismatchException e = assertThrows(StoreMismatchException.class,
          () -> store.restore(0, model, MEZO, kernel));
      assertTrue(e.getMessage().contains("use the model file the store was trained from"),
          e.getMessage());
    }
  }

  @Test
  void rollbackTo_configChangedOnAbandonedSteps_historyFollows() {
    try (ModelStore store = ModelStore.open(dir, ModelStoreTest.IDENTITY)) {
      ModelStoreTest.commitUpTo(store, 5);
    }
    RunIdentity changed = ModelStoreTest.IDENTITY.withRunConfig("{\"lr\":5e-7}");
    try (ModelStore store = ModelStore.open(dir, changed)) {
      ModelStoreTest.commitUpTo(store, 8);
      store.rollbackTo(3);
      // Steps 4 on will be trained under the config in force now.
      assertEquals(Map.of(1L, ModelStoreTest.IDENTITY.runConfig(), 4L, changed.runConfig()),
          store.runConfigs());
      store.rollbackTo(0);
      assertEquals(Map.of(1L, changed.runConfig()), store.runConfigs());
    }
  }

  @Test
  void rollbackTo_afterLastStep_refused() {
    try (ModelStore store = ModelStore.open(dir, ModelStoreTest.IDENTITY)) {
      ModelStoreTest.commitUpTo(store, 3);
      assertThrows(IllegalArgumentException.class, () -> store.rollbackTo(4));
      assertEquals(0, store.rollbackTo(3).stepsAbandoned());
      assertEquals(ModelStoreTest.offsetsOf(1), store.rollbackTo(1).offsets());
      assertEquals(1, store.lastStep());
      ModelStoreTest.commitUpTo(store, 2);
      assertEquals(2, store.lastStep());
    }
  }

  @Test
  void openExisting_withTime_stampsBranchesAndCheckpoints() {
    try (ModelStore store = ModelStore.open(dir, ModelStoreTest.IDENTITY)) {
      ModelStoreTest.commitUpTo(store, 3);
    }
    try (ModelStore store = ModelStore.openExisting(dir, new MockTime(0, 7_000, 0))) {
      assertEquals(Instant.ofEpochMilli(7_000), store.rollbackTo(1).branch().orElseThrow().time());
      assertEquals(Instant.ofEpochMilli(7_000), store.markCheckpoint(null, Map.of()).time());
    }
  }
}
