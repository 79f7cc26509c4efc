package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * Side networks on the in-house decoder (causal LM and prompt classification), against full
 * forwards of the base model and of standalone exports, and FZOO against a scalar reference.
 */
class SideNetworkTest {
  /** Two blocks, so the side network has two taps and a gate. */
  static final DecoderLmConfig TWO = new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 48, 32, 2, 2, 2, 11L);
  static final byte[] ONNX = DecoderLmBuilder.build(TWO);
  static final TrainableSelection SIDE = TrainableSelection.side(4, TrainableSelection.SIDE_DEFAULT_TAPS);
  /** One bias, left at its base value: the base model through the ordinary (non-side) path. */
  static final TrainableSelection NOTHING = TrainableSelection.matching("transformer\\.ln_f\\.bias");
  static final TokenBatch BATCH = TinyModels.batch("the side network reads", "the frozen backbone", "and trains beside it");

  private static float baseLoss(byte[] onnx, TokenBatch batch) {
    try (LossModel plain = LossModel.causalLm(onnx, NOTHING, 1)) {
      return plain.loss(batch).loss();
    }
  }

  @Test
  void plan_readsOneHiddenStatePerBlockAndTheTiedOutputProjection() {
    SideNetwork.Plan p = SideNetwork.plan(ModelRewriter.parse(ONNX).getGraph(), new Objective.CausalLm(), SIDE);
    assertEquals(2, p.blocks(), "one tap per block: " + p.taps());
    assertTrue(p.taps().get(0).contains("ln_1") && p.taps().get(1).contains("ln_1"), "each block's first norm: " + p.taps());
    assertEquals(32, p.width());
    assertEquals(8, p.sideWidth());
    assertNull(p.headBias());
    try (LossModel m = LossModel.causalLm(ONNX, SIDE, 1)) {
      assertTrue(m.sharesBackbone());
      // 2 x (down 32x8 + 8, norm 16, fc 64+8, proj 64+8) + gate + up 8x32 + 32
      assertEquals(2 * (256 + 8 + 16 + 72 + 72) + 1 + 256 + 32, m.parameters().size());
    }
  }

  @Test
  void plan_tapsByPatternAndClearRefusals() {
    var graph = ModelRewriter.parse(ONNX).getGraph();
    SideNetwork.Plan both = SideNetwork.plan(graph, new Objective.CausalLm(), TrainableSelection.side(8, ".*ln_(1|2).*"));
    assertEquals(4, both.blocks(), "both norms of both blocks: " + both.taps());
    ModelException none = assertThrows(ModelException.class,
        () -> SideNetwork.plan(graph, new Objective.CausalLm(), TrainableSelection.side(8, "no-such-norm")));
    assertTrue(none.getMessage().contains("no-such-norm") && none.getMessage().contains("side:R:TAPS"), none.getMessage());
    ModelException scalar = assertThrows(ModelException.class,
        () -> SideNetwork.plan(graph, new Objective.ScalarLoss("loss"), SIDE));
    assertTrue(scalar.getMessage().contains("choose all, norms or lora"), scalar.getMessage());
  }

  @Test
  void stepZero_sideTunedModelEqualsTheBaseModel() {
    try (LossModel side = LossModel.causalLm(ONNX, SIDE, 1)) {
      assertEquals(baseLoss(ONNX, BATCH), side.loss(BATCH).loss(), 1e-5f);
      assertEquals(BATCH.targetTokens(), (long) side.loss(BATCH).tokens());
      byte[] exported = ModelExport.withTrainedValues(ONNX, side.parameters(), SIDE, ModelExport.Adapters.MERGE, Map.of());
      assertEquals(baseLoss(ONNX, BATCH), baseLoss(exported, BATCH), 1e-5f);
    }
  }

  @Test
  void sharedBackboneStep_givesTheLossesOfTwoIndependentFullForwards() {
    try (LossModel side = LossModel.causalLm(ONNX, SIDE, 1); PerturbationKernel kernel = new PerturbationKernel(1)) {
      ParameterSet params = side.parameters();
      float[] trained = params.toArray();
      for (int i = 0; i < trained.length; i++) {
        trained[i] += 0.05f * PerturbationKernel.z(3L, i); // away from the base, so the up-projection matters
      }
      params.load(trained);
      long seed = 99L;
      float eps = 1e-2f;
      FloatBuffer theta = params.floats();
      float[] shared = side.losses(BATCH, 2, (m, target) -> {
        target.put(0, theta, 0, theta.capacity());
        kernel.axpy(target, seed, m == 0 ? eps : -eps, PerturbationKernel.Distribution.GAUSSIAN, PerturbationKernel.Ranges.NONE, 1f);
      });
      assertArrayEquals(trained, params.toArray(), "losses() never changes the model's values");
      assertEquals(1, side.backboneForwards(), "one backbone pass for both variants");
      float[] independent = new float[2];
      for (int m = 0; m < 2; m++) {
        float[] v = trained.clone();
        FloatBuffer b = FloatBuffer.wrap(v);
        for (int i = 0; i < v.length; i++) {
          v[i] += (m == 0 ? eps : -eps) * PerturbationKernel.z(seed, i);
        }
        params.load(v);
        independent[m] = baseLoss(ModelExport.withTrainedValues(ONNX, params, SIDE, ModelExport.Adapters.MERGE, Map.of()), BATCH);
        assertEquals(v.length, b.capacity());
      }
      params.load(trained);
      assertEquals(independent[0], shared[0], 1e-5f);
      assertEquals(independent[1], shared[1], 1e-5f);
      assertNotEquals(shared[0], shared[1], "the perturbation moves the loss");
    }
  }

  private static List<StepRecord> train(LossModel model, MezoConfig config, int steps) {
    try (PerturbationKernel kernel = new PerturbationKernel(1)) {
      MezoTrainer t = new MezoTrainer(model, config, kernel, 0);
      List<StepRecord> records = new ArrayList<>();
      for (int i = 0; i < steps; i++) {
        records.addAll(t.steps(BATCH));
      }
      return records;
    }
  }

  private static String replayed(byte[] onnx, TrainableSelection selection, MezoConfig config, List<StepRecord> records) {
    try (LossModel fresh = LossModel.causalLm(onnx, selection, 1); PerturbationKernel kernel = new PerturbationKernel(2)) {
      MezoTrainer t = new MezoTrainer(fresh, config, kernel, 0);
      records.forEach(t::replay);
      return fresh.parameters().digest();
    }
  }

  @Test
  void sideMezo_trainsAndReplaysBitExactly() {
    MezoConfig config = new MezoConfig(1e-2f, 1e-2f, 5L).withWeightDecay(0.1f);
    try (LossModel side = LossModel.causalLm(ONNX, SIDE, 1)) {
      String base = side.parameters().digest();
      float before = side.loss(BATCH).loss();
      List<StepRecord> records = train(side, config, 30);
      assertEquals(30, records.size());
      assertNotEquals(base, side.parameters().digest());
      assertTrue(side.loss(BATCH).loss() < before, "30 steps on one batch lower its loss: " + before + " -> " + side.loss(BATCH).loss());
      assertEquals(side.parameters().digest(), replayed(ONNX, SIDE, config, records));
      assertEquals(1, side.backboneForwards(), "the repeated batch's backbone outputs come from the cache");
      assertEquals(32, side.backboneCacheHits(), "30 steps and the two reads of the loss after them");
    }
  }

  @Test
  void fzoo_updateEqualsTheScalarReferenceAndReplaysBitExactly() {
    int n = 8;
    MezoConfig config = new MezoConfig(1e-2f, 5e-3f, 21L).withFzoo(n);
    for (TrainableSelection selection : List.of(SIDE, TrainableSelection.all())) {
      try (LossModel model = LossModel.causalLm(ONNX, selection, 1); PerturbationKernel kernel = new PerturbationKernel(1)) {
        if (selection == SIDE) {
          float[] v = model.parameters().toArray();
          for (int i = 0; i < v.length; i++) {
            v[i] += 0.05f * PerturbationKernel.z(3L, i);
          }
          model.parameters().load(v);
        }
        float[] theta = model.parameters().toArray();
        long seed = PerturbationKernel.stepSeed(config.runSeed(), 1);
        FloatBuffer live = model.parameters().floats();
        float[] losses = model.losses(BATCH, n + 1, (m, target) -> {
          target.put(0, live, 0, live.capacity());
          if (m > 0) {
            kernel.axpy(target, StepRecord.directionSeed(seed, m), config.eps(), PerturbationKernel.Distribution.RADEMACHER,
                PerturbationKernel.Ranges.NONE, 1f);
          }
        });
        // the formula, in double, from the losses alone
        double mean = 0;
        for (int i = 1; i <= n; i++) {
          mean += losses[i] / n;
        }
        double var = 0;
        for (int i = 1; i <= n; i++) {
          var += (losses[i] - mean) * (losses[i] - mean) / n;
        }
        double sigma = Math.sqrt(var);
        assertTrue(sigma > 0, "the directions spread the loss");
        double[] expected = new double[theta.length];
        for (int j = 0; j < theta.length; j++) {
          double sum = 0;
          for (int i = 1; i <= n; i++) {
            sum += (losses[i] - losses[0]) / (n * sigma) * PerturbationKernel.z(StepRecord.directionSeed(seed, i), j,
                PerturbationKernel.Distribution.RADEMACHER);
          }
          expected[j] = theta[j] - config.learningRate() * sum;
        }
        MezoTrainer trainer = new MezoTrainer(model, config, kernel, 0);
        StepRecord r = trainer.step(BATCH);
        assertTrue(r.fzoo());
        assertEquals(n, r.coefficients().length);
        assertEquals(losses[0], r.lossPlus());
        float[] after = model.parameters().toArray();
        double worst = 0;
        for (int j = 0; j < after.length; j++) {
          worst = Math.max(worst, Math.abs(after[j] - expected[j]));
        }
        assertTrue(worst < 1e-6, selection.description() + ": largest difference from the reference " + worst);
        assertNotEquals(0.0, Math.abs(after[0] - theta[0]) + Math.abs(after[after.length - 1] - theta[theta.length - 1]));
        List<StepRecord> records = new ArrayList<>(List.of(r));
        for (int s = 0; s < 4; s++) {
          records.add(trainer.step(BATCH));
        }
        String digest = model.parameters().digest();
        // replay from the starting values
        try (LossModel fresh = LossModel.causalLm(ONNX, selection, 1); PerturbationKernel k2 = new PerturbationKernel(2)) {
          fresh.parameters().load(theta);
          MezoTrainer t = new MezoTrainer(fresh, config, k2, 0);
          records.forEach(t::replay);
          assertEquals(digest, fresh.parameters().digest(), selection.description());
        }
      }
    }
  }

  @Test
  void fzooCoefficients_zeroWhenTheLossesDoNotSpreadOrAreNotFinite() {
    assertArrayEquals(new float[3], MezoTrainer.fzooCoefficients(new float[] {1f, 2f, 2f, 2f}));
    assertArrayEquals(new float[2], MezoTrainer.fzooCoefficients(new float[] {1f, Float.NaN, 2f}));
    float[] c = MezoTrainer.fzooCoefficients(new float[] {1f, 2f, 0f});
    // sigma = 1, N = 2: (2 - 1) / 2 and (0 - 1) / 2
    assertArrayEquals(new float[] {0.5f, -0.5f}, c);
    assertThrows(IllegalArgumentException.class, () -> new MezoConfig(1e-3f, 1e-3f, 1L).withFzoo(1));
  }

  @Test
  void backboneCache_isBoundedInBytesAndKeyedByTokens() {
    try (LossModel side = LossModel.causalLm(ONNX, SIDE, 1)) {
      float first = side.loss(BATCH).loss();
      assertEquals(first, side.loss(TinyModels.batch("the side network reads", "the frozen backbone", "and trains beside it")).loss());
      assertEquals(1, side.backboneForwards());
      assertEquals(1, side.backboneCacheHits());
      long one = side.backboneCacheSize();
      assertTrue(one > 0);
      side.loss(TinyModels.batch("another batch"));
      assertEquals(2, side.backboneForwards());
      side.backboneCacheBytes(one);
      assertTrue(side.backboneCacheSize() <= one, "evicted down to the bound");
      side.backboneCacheBytes(0);
      assertEquals(0, side.backboneCacheSize());
      side.loss(BATCH);
      side.loss(BATCH);
      assertEquals(4, side.backboneForwards(), "no cache, every pass runs the backbone");
    }
  }

  @Test
  void promptClassification_stepZeroEqualsTheBaseAndTrains() {
    long[] labelTokens = {'n', 'p'};
    TokenBatch batch = TinyModels.batch("bad film n", "good film p").withLabels(new long[] {0, 1});
    float[][] base;
    try (LossModel plain = LossModel.promptClassifier(ONNX, NOTHING, labelTokens, 1)) {
      base = plain.labelProbabilities(batch);
    }
    try (LossModel side = LossModel.promptClassifier(ONNX, SIDE, labelTokens, 1)) {
      float[][] p = side.labelProbabilities(batch);
      for (int r = 0; r < p.length; r++) {
        assertArrayEquals(base[r], p[r], 1e-5f);
      }
      float before = side.loss(batch).loss();
      MezoConfig config = new MezoConfig(1e-2f, 5e-2f, 3L);
      try (PerturbationKernel kernel = new PerturbationKernel(1)) {
        MezoTrainer t = new MezoTrainer(side, config, kernel, 0);
        for (int i = 0; i < 40; i++) {
          t.step(batch);
        }
      }
      assertTrue(side.loss(batch).loss() < before, before + " -> " + side.loss(batch).loss());
    }
  }

  @Test
  void generation_withAndWithoutKvCacheFollowsTheSideTunedModel() {
    byte[] withPast = DecoderLmBuilder.build(TWO, DecoderLmBuilder.Signature.WITH_PAST);
    long[] prompt = new ByteTokenizer().encode("the side", 16);
    try (LossModel side = LossModel.causalLm(withPast, SIDE, 1);
        Generator g = Generator.open(withPast, SIDE, 1)) {
      assertEquals(side.parameters().layout(), g.parameters().layout());
      Generator.Options kv = Generator.Options.greedy(12).withKvCache(true);
      // loud side values: the adapted model must differ from the base, and decoding must follow it
      float[] v = side.parameters().toArray();
      for (int i = 0; i < v.length; i++) {
        v[i] += 0.5f * PerturbationKernel.z(8L, i);
      }
      side.parameters().load(v);
      g.parameters().load(v);
      long[] cached = g.generate(prompt, kv, t -> false).tokens();
      long[] full = g.generate(prompt, Generator.Options.greedy(12).withKvCache(false), t -> false).tokens();
      assertArrayEquals(full, cached, "the side network is position-wise, so the KV cache gives the same tokens");
      try (Generator exported = Generator.open(
          ModelExport.withTrainedValues(withPast, side.parameters(), SIDE, ModelExport.Adapters.MERGE, Map.of()), NOTHING, 1)) {
        assertArrayEquals(cached, exported.generate(prompt, kv, t -> false).tokens(), "the standalone export decodes the same");
      }
      g.parameters().load(SideNetwork.initialTensors(SideNetwork.plan(ModelRewriter.parse(withPast).getGraph(), new Objective.CausalLm(), SIDE))
          .stream().map(ModelRewriter.LiftedTensor::values).reduce(new float[0], SideNetworkTest::concat));
      try (Generator plain = Generator.open(withPast, NOTHING, 1)) {
        long[] baseTokens = plain.generate(prompt, kv, t -> false).tokens();
        assertArrayEquals(baseTokens, g.generate(prompt, kv, t -> false).tokens(),
            "at its initial values the side network decodes as the base model");
        assertTrue(!java.util.Arrays.equals(baseTokens, cached), "the trained side network changes what is decoded");
      }
    }
  }

  private static float[] concat(float[] a, float[] b) {
    float[] out = java.util.Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
