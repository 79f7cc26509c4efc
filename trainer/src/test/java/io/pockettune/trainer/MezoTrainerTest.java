package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

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

  @Test
  void replay_fromBaseIsBitExact() {
    try (LossModel model = TinyModels.tinyLm(1);
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
