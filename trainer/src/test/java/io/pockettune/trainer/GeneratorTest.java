package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/** {@link Generator} on real ONNX Runtime sessions of small decoders of both signatures. */
class GeneratorTest {
  /** Two blocks, so the cache carries more than one layer. */
  private static final DecoderLmConfig C = new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 48, 32, 2, 2, 2, 7L);
  private static final String LORA_TARGETS = ".*c_attn\\.weight";
  private static final TokenBatch BATCH = TinyModels.batch("see you at the cafe at 6?", "ok running late, 10 min");
  private static final long[] PROMPT = new ByteTokenizer().encode("see you at", C.maxPositions());
  private static final java.util.function.LongPredicate NEVER = t -> false;

  private static byte[] model(DecoderLmBuilder.Signature signature) {
    return DecoderLmBuilder.build(C, signature);
  }

  static Stream<Arguments> signaturesAndSelections() {
    return Stream.of(DecoderLmBuilder.Signature.values()).flatMap(s -> Stream.of(
        Arguments.of(s, "all"), Arguments.of(s, "lora")));
  }

  private static TrainableSelection selection(String name) {
    return name.equals("lora") ? TrainableSelection.lora(4, 8f, LORA_TARGETS) : TrainableSelection.all();
  }

  @ParameterizedTest
  @MethodSource("signaturesAndSelections")
  void parameters_layoutAndValuesEqualTheLossModels(DecoderLmBuilder.Signature signature, String selection) {
    byte[] onnx = model(signature);
    try (LossModel loss = LossModel.open(onnx, new Objective.CausalLm(), selection(selection), 1);
        Generator gen = Generator.open(onnx, selection(selection), 1)) {
      assertEquals(loss.parameters().layout(), gen.parameters().layout());
      assertEquals(loss.parameters().digest(), gen.parameters().digest());
    }
  }

  @ParameterizedTest
  @EnumSource(DecoderLmBuilder.Signature.class)
  void open_describesTheGraph(DecoderLmBuilder.Signature signature) {
    try (Generator gen = Generator.open(model(signature), TrainableSelection.all(), 1)) {
      assertEquals(signature == DecoderLmBuilder.Signature.WITH_PAST, gen.usesKvCache());
      assertEquals(C.maxPositions(), gen.maxPositions());
    }
  }

  @Test
  void nextTokenGraph_outputsTheLastRowAndThePresentsAndNoFullLogits() {
    ai.onnx.proto.OnnxMl.ModelProto fed = ModelRewriter.feedStandardInputs(
        DecoderLmBuilder.buildProto(C, DecoderLmBuilder.Signature.WITH_PAST), true);
    List<String> presents = List.of("present.0.key", "present.0.value", "present.1.key", "present.1.value");
    ai.onnx.proto.OnnxMl.GraphProto g = NextTokenGraph.build(fed, presents).getGraph();
    assertEquals(Stream.concat(Stream.of(NextTokenGraph.NEXT_LOGITS), presents.stream()).toList(),
        g.getOutputList().stream().map(o -> o.getName()).toList());
    assertEquals(List.of("input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value",
        "past_key_values.1.key", "past_key_values.1.value"), g.getInputList().stream().map(i -> i.getName()).toList());
    assertTrue(g.getNodeList().stream().noneMatch(n -> n.getOutputList().contains("logits")), "the [B, T, V] logits are pruned");
  }

  @ParameterizedTest
  @MethodSource("samplings")
  void generate_kvCacheAndRecomputeGiveTheSameTokens(Generator.Options options) {
    try (Generator gen = Generator.open(model(DecoderLmBuilder.Signature.WITH_PAST), TrainableSelection.all(), 1)) {
      TinyModels.loud(gen.parameters());
      Generator.Result cached = gen.generate(PROMPT, options.withKvCache(true), NEVER);
      Generator.Result recomputed = gen.generate(PROMPT, options.withKvCache(false), NEVER);
      assertTrue(cached.usedKvCache());
      assertFalse(recomputed.usedKvCache());
      assertEquals(12, cached.tokens().length);
      assertEquals(12, cached.forwards());
      assertArrayEquals(recomputed.tokens(), cached.tokens());
      assertTrue(Arrays.stream(cached.tokens()).distinct().count() > 3, "a varied run, or positions go untested: " + cached);
    }
  }

  static Stream<Generator.Options> samplings() {
    Generator.Options greedy = Generator.Options.greedy(12);
    return Stream.of(greedy, greedy.sampling(1f, 0, 1f, 42L), greedy.sampling(0.8f, 20, 0.9f, 7L));
  }

  /**
   * MeZO steps change the parameters; the Generator loaded with them decodes, token for token, as
   * a plain session on the model exported with them, and differently from the base model.
   */
  @ParameterizedTest
  @MethodSource("signaturesAndSelections")
  void generate_trainedGreedyEqualsPlainSessionOnTheExport(DecoderLmBuilder.Signature signature, String selection) throws Exception {
    byte[] onnx = model(signature);
    TrainableSelection chosen = selection(selection);
    // LoRA's B starts at zero, so its adapters need a larger step to move a greedy choice.
    float lr = selection.equals("lora") ? 0.5f : 5e-2f;
    try (LossModel loss = LossModel.open(onnx, new Objective.CausalLm(), chosen, 1);
        PerturbationKernel kernel = new PerturbationKernel(1);
        Generator gen = Generator.open(onnx, chosen, 1)) {
      MezoTrainer trainer = new MezoTrainer(loss, new MezoConfig(1e-3f, lr, 3L), kernel, 0);
      for (int i = 0; i < 10; i++) {
        trainer.step(BATCH);
      }
      Generator.Options greedy = Generator.Options.greedy(10);
      long[] base = gen.generate(PROMPT, greedy, NEVER).tokens();
      gen.parameters().load(loss.parameters().toArray());
      long[] trained = gen.generate(PROMPT, greedy, NEVER).tokens();
      byte[] exported = chosen.kind() == TrainableSelection.Kind.LORA
          ? ModelExport.withTrainedValues(onnx, loss.parameters(), chosen, ModelExport.Adapters.KEEP, Map.of())
          : ModelExport.withTrainedValues(onnx, loss.parameters(), Map.of());
      assertArrayEquals(plainGreedy(exported, PROMPT, 10), trained);
      assertFalse(Arrays.equals(base, trained), "the trained values change the greedy tokens: " + Arrays.toString(base));
    }
  }

  /**
   * Greedy decoding by a plain DJL session on {@code onnx}, recomputing the prefix: inputs as a
   * Hugging Face caller passes them (positions 0..n-1 and an empty past for the with-past layout).
   */
  private static long[] plainGreedy(byte[] onnx, long[] prompt, int newTokens) throws Exception {
    ModelGraph graph = ModelGraph.of(onnx);
    List<String> inputs = graph.inputs().stream().map(ModelGraph.Port::name).toList();
    long[] seq = Arrays.copyOf(prompt, prompt.length + newTokens);
    int n = prompt.length;
    try (Model m = Model.newInstance("plain", Device.cpu(), "OnnxRuntime")) {
      m.load(new java.io.ByteArrayInputStream(onnx), Map.of("intraOpNumThreads", "1"));
      try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator());
          NDManager nd = NDManager.newBaseManager()) {
        for (; n < seq.length; n++) {
          Shape shape = new Shape(1, n);
          NDList in = new NDList();
          in.add(named(nd.create(Arrays.copyOf(seq, n), shape), "input_ids"));
          long[] ones = new long[n];
          Arrays.fill(ones, 1L);
          in.add(named(nd.create(ones, shape), "attention_mask"));
          if (inputs.contains("position_ids")) {
            long[] positions = new long[n];
            Arrays.setAll(positions, i -> i);
            in.add(named(nd.create(positions, shape), "position_ids"));
          }
          for (String name : inputs) {
            if (name.startsWith("past_key_values.")) {
              in.add(named(nd.create(new float[0], new Shape(1, C.heads(), 0, C.dModel() / C.heads())), name));
            }
          }
          try (NDList out = p.predict(in)) {
            float[] logits = out.get("logits").toFloatArray();
            int best = 0;
            for (int v = 1; v < C.vocabSize(); v++) {
              if (logits[(n - 1) * C.vocabSize() + v] > logits[(n - 1) * C.vocabSize() + best]) {
                best = v;
              }
            }
            seq[n] = best;
          }
          in.close();
        }
      }
    }
    return Arrays.copyOfRange(seq, prompt.length, seq.length);
  }

  private static NDArray named(NDArray a, String name) {
    a.setName(name);
    return a;
  }

  @ParameterizedTest
  @EnumSource(DecoderLmBuilder.Signature.class)
  void generate_sameSeedSameTokensOtherSeedOtherTokens(DecoderLmBuilder.Signature signature) {
    Generator.Options options = Generator.Options.greedy(24);
    try (Generator gen = Generator.open(model(signature), TrainableSelection.all(), 1)) {
      long[] first = gen.generate(PROMPT, options.sampling(1f, 0, 1f, 5L), NEVER).tokens();
      long[] again = gen.generate(PROMPT, options.sampling(1f, 0, 1f, 5L), NEVER).tokens();
      long[] other = gen.generate(PROMPT, options.sampling(1f, 0, 1f, 6L), NEVER).tokens();
      assertArrayEquals(first, again);
      assertFalse(Arrays.equals(first, other), "seeds 5 and 6 sample the same 24 tokens: " + Arrays.toString(first));
      long[] greedy = gen.generate(PROMPT, options, NEVER).tokens();
      assertFalse(Arrays.equals(first, greedy), "sampling at temperature 1 is not greedy");
      assertArrayEquals(greedy, gen.generate(PROMPT, options.sampling(1f, 1, 1f, 5L), NEVER).tokens(), "top-k 1 is greedy");
      assertArrayEquals(greedy, gen.generate(PROMPT, options.sampling(1f, 0, 1e-6f, 5L), NEVER).tokens(), "a tiny top-p is greedy");
    }
  }

  /** Tokens drawn 2000 times from probabilities 0.6, 0.3, 0.1, counted per id. */
  private static int[] draws(Generator.Options options) {
    float[] logits = {(float) Math.log(0.6), (float) Math.log(0.3), (float) Math.log(0.1)};
    java.util.SplittableRandom rng = new java.util.SplittableRandom(1L);
    int[] counts = new int[3];
    for (int i = 0; i < 2000; i++) {
      counts[(int) Generator.choose(logits, options, rng)]++;
    }
    return counts;
  }

  @Test
  void choose_samplesTheDistributionCutByTopKAndTopP() {
    Generator.Options sampled = Generator.Options.greedy(1).sampling(1f, 0, 1f, 0L);
    int[] all = draws(sampled);
    assertEquals(1200, all[0], 80);
    assertEquals(600, all[1], 80);
    assertEquals(200, all[2], 60);
    assertArrayEquals(new int[] {2000, 0, 0}, draws(sampled.sampling(1f, 0, 0.5f, 0L)), "top-p 0.5 keeps the 0.6 token");
    int[] topP = draws(sampled.sampling(1f, 0, 0.8f, 0L));
    assertEquals(0, topP[2], "top-p 0.8 keeps 0.6 + 0.3");
    assertEquals(2000 * 2 / 3.0, topP[0], 80);
    int[] topK = draws(sampled.sampling(1f, 2, 1f, 0L));
    assertEquals(0, topK[2], "top-k 2 keeps two tokens");
    assertTrue(topK[1] > 500, "and samples both: " + Arrays.toString(topK));
  }

  @Test
  void generate_stopsAtAStopIdAStopTestAndTheLastPosition() {
    try (Generator gen = Generator.open(model(DecoderLmBuilder.Signature.WITH_PAST), TrainableSelection.all(), 1)) {
      Generator.Options sampled = Generator.Options.greedy(12).sampling(1f, 0, 1f, 9L);
      long[] all = gen.generate(PROMPT, sampled, NEVER).tokens();
      long stop = all[5];
      int first = 0;
      while (all[first] != stop) {
        first++;
      }
      Generator.Options stopping = new Generator.Options(12, 1f, 0, 1f, 9L, true, new long[] {stop});
      assertArrayEquals(Arrays.copyOf(all, first + 1), gen.generate(PROMPT, stopping, NEVER).tokens());
      int[] seen = {0};
      assertArrayEquals(Arrays.copyOf(all, 3), gen.generate(PROMPT, sampled, t -> ++seen[0] == 3).tokens());
      long[] nearlyFull = new long[C.maxPositions() - 2];
      Arrays.fill(nearlyFull, 'a');
      assertEquals(2, gen.generate(nearlyFull, sampled, NEVER).tokens().length);
    }
  }

  @Test
  void generate_refusesAPromptLongerThanThePositions() {
    try (Generator gen = Generator.open(model(DecoderLmBuilder.Signature.PLAIN), TrainableSelection.all(), 1)) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> gen.generate(new long[C.maxPositions() + 1], Generator.Options.greedy(1), NEVER));
      assertEquals("the prompt has 49 tokens but the model covers 48 positions: shorten the prompt to at most 48 tokens", e.getMessage());
      assertThrows(ModelException.class, () -> gen.generate(new long[] {C.vocabSize()}, Generator.Options.greedy(1), NEVER));
      assertThrows(IllegalArgumentException.class, () -> gen.generate(new long[0], Generator.Options.greedy(1), NEVER));
    }
  }
}
