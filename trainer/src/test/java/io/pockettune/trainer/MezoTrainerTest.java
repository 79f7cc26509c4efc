package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class MezoTrainerTest {

  private static final TokenBatch BATCH =
      TinyModels.batch("see you at the cafe at 6?", "ok running late, 10 min", "lol yes");

  /** Loss at theta0 + h z(seed), computed independently of the trainer's passes. */
  private static double lossAlong(LossModel model, float[] base, long seed, double h) {
    float[] moved = new float[base.length];
    for (int i = 0; i < base.length; i++) {
      moved[i] = (float) (base[i] + h * PerturbationKernel.z(seed, i));
    }
    model.parameters().load(moved);
    double loss = model.loss(BATCH).loss();
    model.parameters().load(base);
    return loss;
  }

  @Test
  void step_projectedGradientEqualsFiniteDifference() {
    try (LossModel model = TinyModels.tinyLm(1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      float[] base = model.parameters().toArray();
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 0f, 11L), kernel, 0);
      StepRecord r = trainer.step(BATCH);

      // The same central difference, on parameters built independently in Java (not by the kernel's
      // in-place passes), must give the same number up to float32 loss resolution.
      double h = r.eps();
      double fd = (lossAlong(model, base, r.seed(), h) - lossAlong(model, base, r.seed(), -h)) / (2 * h);
      assertTrue(Math.abs(fd) > 1e-3, "the directional derivative should not vanish: " + fd);
      assertEquals(fd, r.projectedGradient(), 0.01 * Math.abs(fd));

      // And it is a derivative: halving the step changes the estimate by little (O(h^2) error).
      double half = h / 2;
      double fdHalf = (lossAlong(model, base, r.seed(), half) - lossAlong(model, base, r.seed(), -half)) / (2 * half);
      assertEquals(fdHalf, fd, 0.05 * Math.abs(fd));
    }
  }

  @Test
  void step_updatesAlongZByLearningRateTimesGradient() {
    try (LossModel model = TinyModels.tinyLm(1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      float[] base = model.parameters().toArray();
      float lr = 1e-2f;
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, lr, 5L), kernel, 0);
      StepRecord r = trainer.step(BATCH);
      float[] after = model.parameters().toArray();
      double maxErr = 0;
      for (int i = 0; i < base.length; i++) {
        double expected = base[i] - (double) lr * r.projectedGradient() * PerturbationKernel.z(r.seed(), i);
        maxErr = Math.max(maxErr, Math.abs(after[i] - expected));
      }
      // Three float32 passes of size ~1e-3 leave rounding of a few ulps of the weights only.
      assertTrue(maxErr < 1e-6, "max deviation from theta - lr*g*z: " + maxErr);
      assertEquals(r.lossPlus() - r.lossMinus(), 2e-3f * r.projectedGradient(), 1e-6f);
    }
  }

  /** The models every replay must reproduce: the plain decoder, and optimum's with-past signature fully and with LoRA. */
  static Stream<Arguments> models() {
    byte[] withPast = DecoderLmBuilder.build(TinyModels.TINY, DecoderLmBuilder.Signature.WITH_PAST);
    return Stream.of(
        Arguments.of("plain decoder, all", (Supplier<LossModel>) () -> TinyModels.tinyLm(1)),
        Arguments.of("with-past decoder, all", (Supplier<LossModel>) () ->
            LossModel.open(withPast, new Objective.CausalLm(), TrainableSelection.all(), 1)),
        Arguments.of("with-past decoder, LoRA", (Supplier<LossModel>) () ->
            LossModel.open(withPast, new Objective.CausalLm(), TrainableSelection.lora(4, 8f, TrainableSelection.DEFAULT_LORA_TARGETS), 1)));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("models")
  void replay_fromBaseIsBitExact(String name, Supplier<LossModel> factory) {
    try (LossModel model = factory.get();
        PerturbationKernel kernel = new PerturbationKernel(2)) {
      float[] base = model.parameters().toArray();
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-3f, 3L), kernel, 0);
      List<StepRecord> records = new ArrayList<>();
      for (int i = 0; i < 25; i++) {
        records.add(trainer.step(BATCH));
      }
      String trained = model.parameters().digest();

      model.parameters().load(base);
      assertNotEquals(trained, model.parameters().digest());
      try (PerturbationKernel oneThread = new PerturbationKernel(1)) {
        MezoTrainer replayer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-3f, 3L), oneThread, 0);
        records.forEach(replayer::replay);
      }
      assertEquals(trained, model.parameters().digest());
    }
  }

  static Stream<MezoConfig> variants() {
    MezoConfig base = new MezoConfig(1e-3f, 2e-3f, 9L);
    return Stream.of(
        base,
        base.withDistribution(PerturbationKernel.Distribution.RADEMACHER),
        base.withWeightDecay(0.1f),
        base.withSchedule(MezoConfig.Schedule.COSINE, 12),
        base.withSchedule(MezoConfig.Schedule.LINEAR, 12).withGradientClip(0.05f),
        base.withDirections(3).withWeightDecay(0.05f));
  }

  @ParameterizedTest
  @MethodSource("variants")
  void replay_isBitExactForEveryVariant(MezoConfig config) {
    try (LossModel model = TinyModels.tinyLm(1);
        PerturbationKernel kernel = new PerturbationKernel(2)) {
      float[] base = model.parameters().toArray();
      MezoTrainer trainer = new MezoTrainer(model, config, kernel, 0);
      List<StepRecord> records = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        records.addAll(trainer.steps(BATCH));
      }
      assertEquals(4L * config.directions(), trainer.stepsDone());
      String trained = model.parameters().digest();
      model.parameters().load(base);
      MezoTrainer replayer = new MezoTrainer(model, config, kernel, 0);
      records.forEach(replayer::replay);
      assertEquals(trained, model.parameters().digest());
    }
  }

  @Test
  void step_weightDecayShrinksWeightsButNotBiasesOrNorms() {
    try (LossModel model = TinyModels.tinyLm(1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      float[] before = model.parameters().toArray();
      // lr large and eps tiny relative to the decay, so the decay dominates the change.
      MezoConfig c = new MezoConfig(1e-6f, 1e-2f, 4L).withWeightDecay(10f).withGradientClip(1e-3f);
      new MezoTrainer(model, c, kernel, 0).step(BATCH);
      float[] after = model.parameters().toArray();
      for (ParameterSet.Tensor t : model.parameters().tensors()) {
        double ratio = norm(after, t) / norm(before, t);
        if (t.dims().length >= 2) {
          assertEquals(0.9, ratio, 1e-3, t.name());
        } else if (t.name().endsWith("ln_1.weight")) {
          assertEquals(1.0, ratio, 1e-3, t.name());
        }
      }
    }
  }

  private static double norm(float[] v, ParameterSet.Tensor t) {
    double s = 0;
    for (int i = t.offset(); i < t.offset() + t.count(); i++) {
      s += (double) v[i] * v[i];
    }
    return Math.sqrt(s);
  }

  /** A clock that stands still at a given time: step records must carry exactly it. */
  private static org.apache.kafka.common.utils.Time fixedAt(long millis) {
    return new org.apache.kafka.common.utils.Time() {
      @Override
      public long milliseconds() {
        return millis;
      }

      @Override
      public long nanoseconds() {
        return millis * 1_000_000L;
      }

      @Override
      public void sleep(long ms) {
        throw new AssertionError("the trainer never sleeps");
      }

      @Override
      public void waitObject(Object obj, java.util.function.Supplier<Boolean> condition, long timeoutMs) {
        throw new AssertionError("the trainer never waits");
      }
    };
  }

  @Test
  void step_stampsTheRecordWithTheGivenTime() {
    try (LossModel model = TinyModels.tinyLm(1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-3f, 3L), kernel, 0, fixedAt(1_764_547_200_000L));
      assertEquals(1_764_547_200_000L, trainer.step(BATCH).timeMillis());
    }
  }

  @Test
  void projectedGradient_clipsAndZeroesNonFinite() {
    assertEquals(0.5f, MezoTrainer.projectedGradient(3f, 1f, 1e-3f, 0.5f));
    assertEquals(-0.5f, MezoTrainer.projectedGradient(1f, 3f, 1e-3f, 0.5f));
    assertEquals(1000f, MezoTrainer.projectedGradient(3f, 1f, 1e-3f, 0f), 1e-3f);
    assertEquals(0f, MezoTrainer.projectedGradient(Float.NaN, 1f, 1e-3f, 0f));
  }

  @Test
  void learningRateAt_followsSchedule() {
    MezoConfig cosine = new MezoConfig(1e-3f, 1f, 1L).withSchedule(MezoConfig.Schedule.COSINE, 100);
    assertEquals(1f, cosine.learningRateAt(1), 1e-7);
    assertEquals(0.5f, cosine.learningRateAt(51), 1e-6);
    assertEquals(0f, cosine.learningRateAt(101), 1e-7);
    MezoConfig linear = new MezoConfig(1e-3f, 2f, 1L).withSchedule(MezoConfig.Schedule.LINEAR, 10);
    assertEquals(1f, linear.learningRateAt(6), 1e-6);
    assertEquals(2f, new MezoConfig(1e-3f, 2f, 1L).learningRateAt(1_000_000), 0f);
  }

  @Test
  void step_reducesLossOnRepeatedText() {
    try (LossModel model = TinyModels.tinyLm(2);
        PerturbationKernel kernel = new PerturbationKernel(2)) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 2e-3f, 21L), kernel, 0);
      double before = trainer.evaluate(List.of(BATCH));
      for (int i = 0; i < 300; i++) {
        trainer.step(BATCH);
      }
      double after = trainer.evaluate(List.of(BATCH));
      assertTrue(after < before - 0.05, "loss should fall: before " + before + ", after " + after);
    }
  }
}
