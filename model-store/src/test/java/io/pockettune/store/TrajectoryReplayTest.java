package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TrainableSelection;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Restore across a change of run config: a run trains steps 1 to 30 under one config, is reopened
 * with another (weight decay, or the direction distribution, changed) and trains steps 31 to 50.
 * Digests of the parameters after every step are compared with those restore gives.
 */
class TrajectoryReplayTest {
  static final MezoConfig PLAIN = RollbackTest.MEZO;
  static final Map<String, MezoConfig> CONFIGS = Map.of(
      "plain", PLAIN,
      "decayed", PLAIN.withWeightDecay(0.5f),
      "rademacher", PLAIN.withDistribution(PerturbationKernel.Distribution.RADEMACHER));
  static final long CHANGE = 31;
  static final long LAST = 50;
  static final long EVERY = 20;

  static LossModel model;
  static PerturbationKernel kernel;
  static float[] base;

  @TempDir Path dir;

  @BeforeAll
  static void load() {
    model = LossModel.causalLm(RollbackTest.ONNX, TrainableSelection.all(), 1);
    kernel = new PerturbationKernel(1);
    base = model.parameters().toArray();
  }

  @AfterAll
  static void release() {
    kernel.close();
    model.close();
  }

  static RunIdentity identity(String runConfig) {
    return new RunIdentity(model.baseModelHash(), PerturbationKernel.VERSION,
        model.parameters().layout(), runConfig);
  }

  /** Trains up to {@code last}, snapshotting every {@link #EVERY}; adds digests by step. */
  static void train(ModelStore store, MezoTrainer trainer, long last, List<String> digests) {
    for (long n = store.lastStep() + 1; n <= last; n++) {
      store.commitStep(trainer.step(RollbackTest.batch("a", n)), RollbackTest.offsetsOf(n));
      store.snapshotIfDue(model.parameters(), EVERY);
      digests.add(model.parameters().digest());
    }
  }

  /** @return digests by step (index 0: the base model) of a run that changes to {@code second} */
  List<String> trainWithChange(String second) {
    List<String> digests = new ArrayList<>();
    model.parameters().load(base);
    digests.add(model.parameters().digest());
    try (ModelStore store = ModelStore.open(dir, identity("plain"))) {
      train(store, new MezoTrainer(model, PLAIN, kernel, 0), CHANGE - 1, digests);
    }
    try (ModelStore store = ModelStore.open(dir, identity(second))) {
      model.parameters().load(base);
      Restored restored = store.restore(store.lastStep(), model, CONFIGS::get, kernel);
      assertEquals(digests.get((int) CHANGE - 1), model.parameters().digest());
      assertEquals(CONFIGS.get(second), restored.trainer().config(),
          "the trainer continues under the config the store was opened with");
      train(store, restored.trainer(), LAST, digests);
    }
    return digests;
  }

  @ParameterizedTest
  @ValueSource(strings = {"decayed", "rademacher"})
  void restore_configChangedBetweenRuns_eachStepUnderItsConfig(String second) {
    List<String> digests = trainWithChange(second);
    MezoConfig changed = CONFIGS.get(second);
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      assertEquals(Map.of(1L, "plain", CHANGE, second), store.runConfigs());
      for (long s : new long[] {0, 10, 20, 29, 30, 31, 35, 39, 40, 45, 50}) {
        model.parameters().load(base);
        Restored r = store.restore(s, model, CONFIGS::get, kernel);
        assertEquals(digests.get((int) s), model.parameters().digest(), "step " + s);
        assertEquals(s, r.trainer().stepsDone());
        assertEquals(changed, r.trainer().config(), "continues under the current config");
      }

      model.parameters().load(base);
      Restored across = store.restore(35, model, CONFIGS::get, kernel);
      assertEquals(20, across.snapshotStep());
      assertEquals(15, across.replayed());
      assertEquals(Map.of(21L, PLAIN, CHANGE, changed), across.configs());
      model.parameters().load(base);
      assertEquals(Map.of(41L, changed),
          store.restore(45, model, CONFIGS::get, kernel).configs());
      model.parameters().load(base);
      assertEquals(Map.of(), store.restore(40, model, CONFIGS::get, kernel).configs());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"decayed", "rademacher"})
  void restore_singleConfigAcrossChange_notTheTrainedParameters(String second) {
    List<String> digests = trainWithChange(second);
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      for (MezoConfig single : List.of(PLAIN, CONFIGS.get(second))) {
        model.parameters().load(base);
        Restored r = store.restore(35, model, single, kernel);
        assertNotEquals(digests.get(35), model.parameters().digest(), single.toString());
        assertEquals(Map.of(21L, single), r.configs());
        assertSame(single, r.trainer().config());
      }
      // Within one segment a single config is still right: the snapshot at 40 is past the change.
      model.parameters().load(base);
      store.restore(45, model, CONFIGS.get(second), kernel);
      assertEquals(digests.get(45), model.parameters().digest());
    }
  }

  @Test
  void restore_history_configOfCalledOncePerText() {
    trainWithChange("decayed");
    AtomicInteger calls = new AtomicInteger();
    Function<String, MezoConfig> counting = text -> {
      calls.incrementAndGet();
      return CONFIGS.get(text);
    };
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      model.parameters().load(base);
      store.restore(35, model, counting, kernel);
      assertEquals(2, calls.get(), "plain and decayed");
    }
  }

  @Test
  void restore_rolledBackBeforeChange_continuesUnderCurrentConfigAndReplaysSo() {
    List<String> digests = trainWithChange("decayed");
    MezoConfig decayed = CONFIGS.get("decayed");
    List<String> continued = new ArrayList<>();
    try (ModelStore store = ModelStore.open(dir, identity("decayed"))) {
      model.parameters().load(base);
      Restored r = store.restore(25, model, CONFIGS::get, kernel);
      assertEquals(digests.get(25), model.parameters().digest());
      assertEquals(decayed, r.trainer().config());
      store.rollbackTo(25);
      assertEquals(Map.of(1L, "plain", 26L, "decayed"), store.runConfigs());
      train(store, r.trainer(), 30, continued);
    }
    assertNotEquals(digests.get(30), continued.get(4), "steps 26 to 30 now trained with decay");
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      model.parameters().load(base);
      Restored r = store.restore(30, model, CONFIGS::get, kernel);
      assertEquals(continued.get(4), model.parameters().digest());
      assertEquals(Map.of(21L, PLAIN, 26L, decayed), r.configs());
    }
  }
}
