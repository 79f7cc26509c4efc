package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The with-past signature of {@link DecoderLmBuilder}, run by plain ONNX Runtime. */
class DecoderWithPastTest {
  private static final DecoderLmConfig C = TinyModels.TINY;
  private static final OrtEnvironment ENV = environment();

  /** DJL's engine creates the ONNX Runtime environment with its own thread pool: let it go first. */
  private static OrtEnvironment environment() {
    ai.djl.engine.Engine.getEngine("OnnxRuntime");
    return OrtEnvironment.getEnvironment();
  }

  private static long[] ids(String text) {
    return new ByteTokenizer().encode(text, C.maxPositions());
  }

  private static OnnxTensor longs(long[] v, long... shape) throws OrtException {
    return OnnxTensor.createTensor(ENV, LongBuffer.wrap(v), shape);
  }

  private static long[] range(int from, int to) {
    long[] r = new long[to - from];
    for (int i = 0; i < r.length; i++) {
      r[i] = from + i;
    }
    return r;
  }

  /** Runs the with-past model on {@code ids} after a past of {@code past} tokens (null: empty). */
  private static Map<String, float[]> runWithPast(OrtSession s, long[] ids, int pastLen, Map<String, float[]> past)
      throws OrtException {
    int hd = C.dModel() / C.heads();
    Map<String, OnnxTensor> in = new HashMap<>();
    long[] mask = new long[pastLen + ids.length];
    java.util.Arrays.fill(mask, 1L);
    in.put("input_ids", longs(ids, 1, ids.length));
    in.put("attention_mask", longs(mask, 1, mask.length));
    in.put("position_ids", longs(range(pastLen, pastLen + ids.length), 1, ids.length));
    for (int l = 0; l < C.layers(); l++) {
      for (String kv : new String[] {"key", "value"}) {
        float[] v = past == null ? new float[0] : past.get("present." + l + "." + kv);
        in.put("past_key_values." + l + "." + kv,
            OnnxTensor.createTensor(ENV, FloatBuffer.wrap(v), new long[] {1, C.heads(), pastLen, hd}));
      }
    }
    Map<String, float[]> out = new HashMap<>();
    try (OrtSession.Result r = s.run(in)) {
      r.forEach(e -> out.put(e.getKey(), flatten((OnnxTensor) e.getValue())));
    } finally {
      in.values().forEach(OnnxTensor::close);
    }
    return out;
  }

  private static float[] flatten(OnnxTensor t) {
    FloatBuffer b = t.getFloatBuffer();
    float[] v = new float[b.remaining()];
    b.get(v);
    return v;
  }

  @Test
  void withPast_emptyPastGivesThePlainLogits() throws OrtException {
    long[] tokens = ids("the same weights, another signature");
    float[] plain;
    try (OrtSession s = ENV.createSession(DecoderLmBuilder.build(C))) {
      Map<String, OnnxTensor> in = Map.of("input_ids", longs(tokens, 1, tokens.length),
          "attention_mask", longs(java.util.stream.LongStream.generate(() -> 1).limit(tokens.length).toArray(), 1, tokens.length));
      try (OrtSession.Result r = s.run(in)) {
        plain = flatten((OnnxTensor) r.get("logits").get());
      }
      in.values().forEach(OnnxTensor::close);
    }
    try (OrtSession s = ENV.createSession(DecoderLmBuilder.build(C, DecoderLmBuilder.Signature.WITH_PAST))) {
      Map<String, float[]> out = runWithPast(s, tokens, 0, null);
      float[] logits = out.get("logits");
      assertEquals(plain.length, logits.length);
      for (int i = 0; i < plain.length; i++) {
        assertEquals(plain[i], logits[i], 1e-5f, "logit " + i);
      }
      assertEquals(C.heads() * tokens.length * (C.dModel() / C.heads()), out.get("present.0.key").length);
    }
  }

  @Test
  void withPast_cacheGivesTheLogitsOfTheWholeSequence() throws OrtException {
    long[] tokens = ids("a cache must not change the answer");
    int n = tokens.length;
    int vocab = C.vocabSize();
    try (OrtSession s = ENV.createSession(DecoderLmBuilder.build(C, DecoderLmBuilder.Signature.WITH_PAST))) {
      float[] whole = runWithPast(s, tokens, 0, null).get("logits");
      Map<String, float[]> prefix = runWithPast(s, java.util.Arrays.copyOf(tokens, n - 1), 0, null);
      Map<String, float[]> next = runWithPast(s, new long[] {tokens[n - 1]}, n - 1, prefix);
      float[] last = next.get("logits");
      assertEquals(vocab, last.length);
      double maxDiff = 0;
      for (int v = 0; v < vocab; v++) {
        maxDiff = Math.max(maxDiff, Math.abs(last[v] - whole[(n - 1) * vocab + v]));
      }
      assertTrue(maxDiff < 1e-4, "cached and recomputed last-position logits differ by " + maxDiff);
      assertEquals(C.heads() * n * (C.dModel() / C.heads()), next.get("present.0.value").length);
    }
  }

  @Test
  void causalLm_withPastSignatureIsFedAndGivesThePlainLoss() {
    TokenBatch batch = TinyModels.batch("positions and an empty past", "are fed inside the graph");
    float plain;
    try (LossModel m = TinyModels.tinyLm(1)) {
      plain = m.loss(batch).loss();
    }
    try (LossModel m = LossModel.open(DecoderLmBuilder.build(C, DecoderLmBuilder.Signature.WITH_PAST),
        new Objective.CausalLm(), TrainableSelection.all(), 1)) {
      assertEquals(plain, m.loss(batch).loss(), 1e-5f);
      assertEquals(C.parameterCount(), m.parameters().size());
    }
  }

  @Test
  void lossGraph_hasNoPresentOrPastAndNoDeadNodes() {
    ai.onnx.proto.OnnxMl.ModelProto loss = ModelRewriter.appendCausalLmLoss(ModelRewriter.feedStandardInputs(
        DecoderLmBuilder.buildProto(C, DecoderLmBuilder.Signature.WITH_PAST)));
    assertEquals(List.of(ModelRewriter.LOSS, ModelRewriter.TOKEN_COUNT),
        loss.getGraph().getOutputList().stream().map(o -> o.getName()).toList());
    assertEquals(List.of("input_ids", "attention_mask"), loss.getGraph().getInputList().stream().map(i -> i.getName()).toList());

    // An output the loss does not read (a pooler, say) takes the nodes only it needed with it.
    ai.onnx.proto.OnnxMl.ModelProto plain = DecoderLmBuilder.buildProto(C);
    ai.onnx.proto.OnnxMl.GraphProto.Builder g = plain.getGraph().toBuilder();
    g.addNode(ai.onnx.proto.OnnxMl.NodeProto.newBuilder().setOpType("Tanh").setName("pooler").addInput("logits").addOutput("pooler_output"));
    g.addOutput(GraphBuilder.valueInfo("pooler_output", ai.onnx.proto.OnnxMl.TensorProto.DataType.FLOAT.getNumber(), "batch", "sequence", (long) C.vocabSize()));
    ai.onnx.proto.OnnxMl.ModelProto pruned = ModelRewriter.appendCausalLmLoss(plain.toBuilder().setGraph(g).build());
    assertEquals(ModelRewriter.appendCausalLmLoss(plain).getGraph().getNodeCount(), pruned.getGraph().getNodeCount());
    assertTrue(pruned.getGraph().getNodeList().stream().noneMatch(n -> n.getName().equals("pooler")));
  }

  @Test
  void causalLm_withPastTrainsWithLora() {
    TokenBatch batch = TinyModels.batch("lora on the cached decoder", "lowers its loss");
    try (LossModel m = LossModel.open(DecoderLmBuilder.build(C, DecoderLmBuilder.Signature.WITH_PAST),
        new Objective.CausalLm(), TrainableSelection.lora(4, 8f, TrainableSelection.DEFAULT_LORA_TARGETS), 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      MezoTrainer t = new MezoTrainer(m, new MezoConfig(1e-2f, 1e-2f, 8L), kernel, 0);
      double before = t.evaluate(List.of(batch));
      for (int i = 0; i < 150; i++) {
        t.step(batch);
      }
      double after = t.evaluate(List.of(batch));
      assertTrue(after < before - 0.02, "LoRA training lowers the loss: " + before + " -> " + after);
    }
  }
}
