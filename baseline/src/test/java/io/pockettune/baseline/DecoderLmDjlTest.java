package io.pockettune.baseline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.NoopTranslator;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.ByteArrayInputStream;
import java.util.Arrays;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * PocketTune's decoder rebuilt by {@link DecoderLm} on DJL's PyTorch engine, against the
 * {@link DecoderLmBuilder} ONNX model run by a plain ONNX Runtime session and against the trainer's
 * own causal-LM loss ({@link LossModel#causalLm}). Logits are compared for the {@code demo} and the
 * {@code bench10m} config; the loss and the Adam step use {@code demo}.
 */
class DecoderLmDjlTest {
  private static final int THREADS = 2;

  static NDManager torch;
  static byte[] demoOnnx;

  @BeforeAll
  static void load() {
    DecoderLm.useThreads(THREADS);
    torch = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    demoOnnx = DecoderLmBuilder.build(DecoderLmConfig.demo());
  }

  @AfterAll
  static void close() {
    torch.close();
  }

  /** Random ids in 3..vocab-1; row r has {@code r * padStep} padding tokens at its end (id 0, mask 0). */
  private static TokenBatch batch(int size, int length, int vocab, int padStep, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    long[] ids = new long[size * length];
    long[] mask = new long[size * length];
    for (int r = 0; r < size; r++) {
      int real = length - r * padStep;
      for (int t = 0; t < real; t++) {
        ids[r * length + t] = 3 + rng.nextInt(vocab - 3);
        mask[r * length + t] = 1;
      }
    }
    return new TokenBatch(size, length, ids, mask);
  }

  private static NDList inputs(NDManager nd, TokenBatch b) {
    Shape shape = new Shape(b.size(), b.length());
    NDArray ids = nd.create(b.ids(), shape);
    ids.setName("input_ids");
    NDArray mask = nd.create(b.mask(), shape);
    mask.setName("attention_mask");
    return new NDList(ids, mask);
  }

  private static float[] onnxRuntimeLogits(byte[] onnx, TokenBatch b) throws Exception {
    try (Model m = Model.newInstance("plain", Device.cpu(), "OnnxRuntime")) {
      m.load(new ByteArrayInputStream(onnx), Map.of("intraOpNumThreads", Integer.toString(THREADS)));
      try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator());
          NDManager nd = NDManager.newBaseManager(Device.cpu(), "OnnxRuntime");
          NDList result = p.predict(inputs(nd, b))) {
        return result.get("logits").toFloatArray();
      }
    }
  }

  private static void assertLogitsEqualOnnxRuntime(String label, DecoderLmConfig config, byte[] onnx, TokenBatch b) throws Exception {
    float[] expected = onnxRuntimeLogits(onnx, b);
    float[] actual;
    try (NDManager step = torch.newSubManager();
        DecoderLm lm = DecoderLm.load(onnx, config, step)) {
      NDList in = inputs(step, b);
      NDArray logits = lm.logits(in.get(0), in.get(1));
      assertEquals(new Shape(b.size(), b.length(), config.vocabSize()), logits.getShape());
      actual = logits.toFloatArray();
    }
    assertEquals(expected.length, actual.length);
    double maxAbs = 0;
    double maxRef = 0;
    for (int i = 0; i < expected.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(expected[i] - actual[i]));
      maxRef = Math.max(maxRef, Math.abs(expected[i]));
    }
    System.out.printf("%s: DJL PyTorch vs ONNX Runtime logits, max abs difference %.3g over %d values (max |logit| %.3g)%n",
        label, maxAbs, expected.length, maxRef);
    assertTrue(maxAbs < 1e-4, label + ": max abs difference " + maxAbs);
  }

  @Test
  void logits_demo_equalOnnxRuntimeWithPadding() throws Exception {
    DecoderLmConfig c = DecoderLmConfig.demo();
    assertLogitsEqualOnnxRuntime("demo", c, demoOnnx, batch(3, 40, c.vocabSize(), 7, 1));
  }

  @Test
  void logits_bench10m_equalOnnxRuntimeWithPadding() throws Exception {
    DecoderLmConfig c = DecoderLmConfig.bench10m();
    byte[] onnx = DecoderLmBuilder.build(c);
    assertLogitsEqualOnnxRuntime("bench10m", c, onnx, batch(2, 64, c.vocabSize(), 9, 2));
  }

  @Test
  void load_mapsEveryInitializer() throws Exception {
    DecoderLmConfig c = DecoderLmConfig.demo();
    GraphProto graph = ModelProto.parseFrom(demoOnnx).getGraph();
    try (NDManager nd = torch.newSubManager();
        DecoderLm lm = DecoderLm.load(demoOnnx, c, nd)) {
      assertEquals(graph.getInitializerCount(), lm.parameters().size(), "one parameter per initializer");
      assertEquals(4 + 12 * c.layers(), lm.parameters().size());
      assertTrue(graph.getInitializerList().stream().allMatch(t -> lm.parameters().containsKey(t.getName())));
      long values = lm.parameters().values().stream().mapToLong(a -> a.getShape().size()).sum();
      assertEquals(c.parameterCount(), values);
      assertTrue(lm.parameters().values().stream().allMatch(NDArray::hasGradient), "every parameter requires a gradient");
    }
  }

  @Test
  void load_missingInitializer_namesIt() throws Exception {
    ModelProto model = ModelProto.parseFrom(demoOnnx);
    GraphProto.Builder graph = model.getGraph().toBuilder();
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      if (graph.getInitializer(i).getName().equals("transformer.h.1.mlp.c_fc.bias")) {
        graph.removeInitializer(i);
        break;
      }
    }
    byte[] broken = model.toBuilder().setGraph(graph).build().toByteArray();
    try (NDManager nd = torch.newSubManager()) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecoderLm.load(broken, DecoderLmConfig.demo(), nd));
      assertTrue(e.getMessage().contains("transformer.h.1.mlp.c_fc.bias"), e.getMessage());
    }
  }

  @Test
  void load_otherConfig_namesTheMismatch() {
    DecoderLmConfig c = DecoderLmConfig.demo();
    DecoderLmConfig wider = new DecoderLmConfig(c.vocabSize(), c.maxPositions(), 2 * c.dModel(), c.layers(), c.heads(), c.mlpRatio(), c.seed());
    DecoderLmConfig shallower = new DecoderLmConfig(c.vocabSize(), c.maxPositions(), c.dModel(), 1, c.heads(), c.mlpRatio(), c.seed());
    try (NDManager nd = torch.newSubManager()) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DecoderLm.load(demoOnnx, wider, nd));
      assertTrue(e.getMessage().contains("transformer.wte.weight"), e.getMessage());
      e = assertThrows(IllegalArgumentException.class, () -> DecoderLm.load(demoOnnx, shallower, nd));
      assertTrue(e.getMessage().contains("transformer.h.1."), e.getMessage());
    }
  }

  @Test
  void nextTokenLoss_equalsTrainersCausalLmLoss() throws Exception {
    DecoderLmConfig c = DecoderLmConfig.demo();
    TokenBatch b = batch(4, 48, c.vocabSize(), 11, 3);
    float expected;
    try (LossModel trainer = LossModel.causalLm(demoOnnx, TrainableSelection.all(), THREADS)) {
      LossModel.Loss loss = trainer.loss(b);
      assertEquals(b.targetTokens(), (long) loss.tokens());
      expected = loss.loss();
    }
    float actual;
    try (NDManager nd = torch.newSubManager();
        DecoderLm lm = DecoderLm.load(demoOnnx, c, nd)) {
      NDList in = inputs(nd, b);
      actual = lm.nextTokenLoss(in.get(0), in.get(1)).getFloat();
    }
    System.out.printf("causal-LM loss: trainer (ONNX Runtime) %.7f, DJL PyTorch %.7f%n", expected, actual);
    assertEquals(expected, actual, 1e-4);
  }

  /** The step trains its own copy, so the other tests see the model as built in any order. */
  @Test
  void adam_oneStepLowersNextTokenLoss() throws Exception {
    DecoderLmConfig c = DecoderLmConfig.demo();
    TokenBatch b = batch(4, 48, c.vocabSize(), 11, 4);
    try (NDManager nd = torch.newSubManager();
        DecoderLm lm = DecoderLm.load(demoOnnx, c, nd)) {
      NDArray probe = lm.parameters().get("transformer.h.0.attn.c_attn.weight");
      float[] before = probe.toFloatArray();
      Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build();
      NDList in = inputs(nd, b);
      float lossBefore = lm.adamStep(adam, in.get(0), in.get(1));
      float lossAfter = lm.nextTokenLoss(in.get(0), in.get(1)).getFloat();
      System.out.printf("next-token loss before %.6f, after one Adam step %.6f%n", lossBefore, lossAfter);
      assertTrue(lossAfter < lossBefore, "one Adam step lowers the loss: " + lossBefore + " -> " + lossAfter);
      assertTrue(!Arrays.equals(before, probe.toFloatArray()), "the step moved c_attn of block 0");
      float[] grad = probe.getGradient().toFloatArray();
      assertTrue(Arrays.stream(toDoubles(grad)).allMatch(g -> g == 0), "gradients are zeroed after the step");
    }
  }

  private static double[] toDoubles(float[] f) {
    double[] d = new double[f.length];
    for (int i = 0; i < f.length; i++) {
      d[i] = f[i];
    }
    return d;
  }
}
