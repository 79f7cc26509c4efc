package io.pockettune.baseline;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.norm.LayerNorm;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A BERT encoder (all-MiniLM-L6-v2 and its kind) rebuilt from DJL NDArray operations, so that the
 * PyTorch engine's autograd can fine-tune it: the backprop-with-Adam baseline of issue 11, which
 * PocketTune's MeZO trainer is measured against on the same pretrained model. It belongs to the
 * benchmark side; the device runtime never loads it.
 *
 * <h2>Architecture</h2>
 * Hugging Face's {@code BertModel} without the pooler, as optimum exports it: word + position +
 * token-type embeddings, LayerNorm; then per layer self-attention (query, key, value dense, heads
 * of {@code hidden / heads} values, scaled dot product with the attention mask as an additive bias
 * of {@code -3.4e38} on padding keys, softmax, output dense), residual and LayerNorm, intermediate
 * dense with the exact (erf) GELU, output dense, residual and LayerNorm. LayerNorm epsilon is
 * BERT's 1e-12. These constants are the ones in all-MiniLM-L6-v2's export graph (its
 * {@code Constant} nodes: mask bias -3.4028235e38, LayerNorm epsilon 1e-12, score divisor sqrt(32),
 * GELU as Div by 1.4142135, Erf, Add 1, Mul, Mul 0.5). The output is {@code last_hidden_state} [batch, sequence, hidden], and
 * {@link #meanPool} averages it over the real tokens as sentence-transformers does.
 *
 * <h2>Weights</h2>
 * Every parameter comes from an initializer of the ONNX file, under its Hugging Face name. Biases,
 * LayerNorm weights and embedding tables keep that name in optimum exports
 * ({@code encoder.layer.0.attention.self.query.bias}); dense weights do not
 * ({@code onnx::MatMul_787}), but the MatMul node that reads one keeps the module path
 * ({@code /encoder/layer.0/attention/self/query/MatMul}), so such a weight is named
 * {@code encoder.layer.0.attention.self.query.weight} after its node. Dense weights stay in ONNX's
 * [in, out] layout (the forward multiplies {@code x · W}). The layer count is read from the names,
 * the hidden and intermediate sizes from the shapes; a missing tensor or a shape that disagrees
 * fails the load with the name it expected.
 *
 * <p>The file is parsed onto the heap while loading (weights inside the file only, no external
 * data). All parameters are float32 arrays of the given manager with gradients required. Not
 * thread-safe: one training loop owns an instance.
 */
public final class BertEncoder implements AutoCloseable {
  private static final float LAYER_NORM_EPS = 1e-12f;
  /** optimum's export adds float32's lowest value to the scores of padding keys. */
  private static final float MASKED = -3.4028235e38f;
  private static final Pattern LAYER = Pattern.compile("encoder\\.layer\\.(\\d+)\\..*");
  private static final String[] LAYER_TENSORS = {
    "attention.self.query.weight", "attention.self.query.bias",
    "attention.self.key.weight", "attention.self.key.bias",
    "attention.self.value.weight", "attention.self.value.bias",
    "attention.output.dense.weight", "attention.output.dense.bias",
    "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
    "intermediate.dense.weight", "intermediate.dense.bias",
    "output.dense.weight", "output.dense.bias",
    "output.LayerNorm.weight", "output.LayerNorm.bias",
  };

  private final Map<String, NDArray> parameters;
  private final int layers;
  private final int heads;
  private final int hidden;

  private BertEncoder(Map<String, NDArray> parameters, int layers, int heads, int hidden) {
    this.parameters = parameters;
    this.layers = layers;
    this.heads = heads;
    this.hidden = hidden;
  }

  /**
   * @param onnxFile an optimum export of a BERT encoder, weights inside the file
   * @param heads    attention heads (12 for all-MiniLM-L6-v2; the graph does not state it plainly)
   * @param manager  the PyTorch manager that will own the parameters
   * @throws IllegalArgumentException if the file is not such an export: names the missing tensor
   */
  public static BertEncoder load(Path onnxFile, int heads, NDManager manager) throws IOException {
    ModelProto model;
    try (InputStream in = Files.newInputStream(onnxFile)) {
      model = ModelProto.parseFrom(in);
    }
    Map<String, TensorProto> named = huggingFaceNames(model.getGraph());
    int layers = layerCount(named);
    List<String> expected = new ArrayList<>(List.of(
        "embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"));
    for (int l = 0; l < layers; l++) {
      for (String t : LAYER_TENSORS) {
        expected.add("encoder.layer." + l + "." + t);
      }
    }
    Map<String, NDArray> parameters = new LinkedHashMap<>();
    for (String name : expected) {
      TensorProto t = named.get(name);
      if (t == null) {
        throw new IllegalArgumentException(onnxFile + " has no initializer for " + name
            + " (by name, or by the name of the MatMul node that reads it): it is not an optimum export of a BERT encoder");
      }
      NDArray a = manager.create(floats(t, name), new Shape(t.getDimsList().stream().mapToLong(Long::longValue).toArray()));
      a.setName(name);
      a.setRequiresGradient(true);
      parameters.put(name, a);
    }
    int hidden = (int) parameters.get("embeddings.LayerNorm.weight").getShape().get(0);
    if (hidden % heads != 0) {
      throw new IllegalArgumentException("hidden size " + hidden + " of " + onnxFile + " is not divisible by " + heads + " heads");
    }
    for (int l = 0; l < layers; l++) {
      checkShape(parameters, "encoder.layer." + l + ".attention.self.query.weight", hidden, hidden);
      checkShape(parameters, "encoder.layer." + l + ".attention.output.dense.weight", hidden, hidden);
      long inner = parameters.get("encoder.layer." + l + ".intermediate.dense.weight").getShape().get(1);
      checkShape(parameters, "encoder.layer." + l + ".output.dense.weight", inner, hidden);
    }
    return new BertEncoder(Collections.unmodifiableMap(parameters), layers, heads, hidden);
  }

  private static int layerCount(Map<String, TensorProto> named) {
    int layers = 0;
    for (String name : named.keySet()) {
      Matcher m = LAYER.matcher(name);
      if (m.matches()) {
        layers = Math.max(layers, Integer.parseInt(m.group(1)) + 1);
      }
    }
    return layers;
  }

  /** Initializers by Hugging Face name: their own, or their MatMul node's module path. */
  private static Map<String, TensorProto> huggingFaceNames(GraphProto graph) {
    Map<String, TensorProto> byName = new TreeMap<>();
    graph.getInitializerList().forEach(t -> byName.put(t.getName(), t));
    Map<String, TensorProto> named = new TreeMap<>(byName);
    for (NodeProto n : graph.getNodeList()) {
      if (n.getOpType().equals("MatMul") && n.getInputCount() == 2 && byName.containsKey(n.getInput(1))
          && n.getName().endsWith("/MatMul")) {
        String module = n.getName().substring(n.getName().startsWith("/") ? 1 : 0, n.getName().length() - "/MatMul".length());
        named.putIfAbsent(module.replace('/', '.') + ".weight", byName.get(n.getInput(1)));
      }
    }
    return named;
  }

  private static FloatBuffer floats(TensorProto t, String name) {
    if (t.getDataType() != TensorProto.DataType.FLOAT.getNumber()) {
      throw new IllegalArgumentException("initializer " + name + " (" + t.getName() + ") is not float32: quantized exports cannot be fine-tuned");
    }
    if (!t.getRawData().isEmpty()) {
      return t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }
    FloatBuffer b = ByteBuffer.allocateDirect(4 * t.getFloatDataCount()).order(ByteOrder.nativeOrder()).asFloatBuffer();
    t.getFloatDataList().forEach(b::put);
    return b.flip();
  }

  private static void checkShape(Map<String, NDArray> parameters, String name, long in, long out) {
    Shape s = parameters.get(name).getShape();
    if (!s.equals(new Shape(in, out))) {
      throw new IllegalArgumentException(name + " has shape " + s + ", expected (" + in + ", " + out + ")");
    }
  }

  /** @return every parameter by Hugging Face name, in module order; each requires a gradient */
  public Map<String, NDArray> parameters() {
    return parameters;
  }

  /** @return the number of transformer layers read from the file */
  public int layers() {
    return layers;
  }

  /**
   * @param inputIds      token ids, int64 [batch, sequence]
   * @param attentionMask 1 for real tokens and 0 for padding, int64 [batch, sequence]
   * @param tokenTypeIds  segment ids, int64 [batch, sequence]
   * @return last_hidden_state, float32 [batch, sequence, hidden]
   */
  public NDArray forward(NDArray inputIds, NDArray attentionMask, NDArray tokenTypeIds) {
    long batch = inputIds.getShape().get(0);
    long seq = inputIds.getShape().get(1);
    NDManager nd = inputIds.getManager();
    NDArray positions = nd.arange(0, seq, 1, DataType.INT64).reshape(1, seq);
    NDArray x = Embedding.embedding(inputIds, p("embeddings.word_embeddings.weight"), SparseFormat.DENSE).singletonOrThrow()
        .add(Embedding.embedding(positions, p("embeddings.position_embeddings.weight"), SparseFormat.DENSE).singletonOrThrow())
        .add(Embedding.embedding(tokenTypeIds, p("embeddings.token_type_embeddings.weight"), SparseFormat.DENSE).singletonOrThrow());
    x = norm(x, "embeddings.LayerNorm");
    NDArray bias = attentionMask.toType(DataType.FLOAT32, false).neg().add(1f).mul(MASKED).reshape(batch, 1, 1, seq);
    for (int l = 0; l < layers; l++) {
      String prefix = "encoder.layer." + l + ".";
      NDArray attended = dense(selfAttention(x, bias, prefix + "attention.self."), prefix + "attention.output.dense");
      x = norm(attended.add(x), prefix + "attention.output.LayerNorm");
      NDArray inner = gelu(dense(x, prefix + "intermediate.dense"));
      x = norm(dense(inner, prefix + "output.dense").add(x), prefix + "output.LayerNorm");
    }
    return x;
  }

  private NDArray selfAttention(NDArray x, NDArray bias, String prefix) {
    long batch = x.getShape().get(0);
    long seq = x.getShape().get(1);
    int width = hidden / heads;
    NDArray q = heads(dense(x, prefix + "query"), batch, seq, width);
    NDArray k = heads(dense(x, prefix + "key"), batch, seq, width);
    NDArray v = heads(dense(x, prefix + "value"), batch, seq, width);
    NDArray scores = q.matMul(k.transpose(0, 1, 3, 2)).div((float) Math.sqrt(width)).add(bias);
    return scores.softmax(-1).matMul(v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden);
  }

  private NDArray heads(NDArray x, long batch, long seq, int width) {
    return x.reshape(batch, seq, heads, width).transpose(0, 2, 1, 3);
  }

  private NDArray dense(NDArray x, String module) {
    return x.matMul(p(module + ".weight")).add(p(module + ".bias"));
  }

  private NDArray norm(NDArray x, String module) {
    return LayerNorm.layerNorm(x, new Shape(hidden), p(module + ".weight"), p(module + ".bias"), LAYER_NORM_EPS).singletonOrThrow();
  }

  /** The exact GELU, x·Φ(x) with erf, as BERT's "gelu" and the export's Erf node compute it. */
  private static NDArray gelu(NDArray x) {
    return x.mul(x.div((float) Math.sqrt(2)).erf().add(1f)).mul(0.5f);
  }

  private NDArray p(String name) {
    return parameters.get(name);
  }

  /**
   * @param lastHiddenState [batch, sequence, hidden]
   * @param attentionMask   1 for real tokens and 0 for padding, [batch, sequence]
   * @return the mean over real tokens, [batch, hidden]
   */
  public static NDArray meanPool(NDArray lastHiddenState, NDArray attentionMask) {
    NDArray mask = attentionMask.toType(DataType.FLOAT32, false).expandDims(-1);
    return lastHiddenState.mul(mask).sum(new int[] {1}).div(mask.sum(new int[] {1}));
  }

  /** @return a copy of every parameter's values by Hugging Face name, in module order */
  public Map<String, float[]> snapshot() {
    Map<String, float[]> copy = new LinkedHashMap<>();
    parameters.forEach((name, a) -> copy.put(name, a.toFloatArray()));
    return copy;
  }

  /**
   * Writes a copy of {@code source} whose initializers hold {@code values} instead: the export of
   * a fine-tuned encoder. Everything else (graph, names, other initializers, metadata) is kept, and
   * each value is stored in the layout {@link #load} read it in (dense weights [in, out]), as
   * little-endian raw data; so the copy runs in any ONNX runtime exactly like the original.
   *
   * @param source the file the encoder was loaded from
   * @param values every parameter by Hugging Face name, e.g. a {@link #snapshot}
   * @param target where the copy goes (replaced if it exists)
   * @throws IllegalArgumentException if a parameter is missing or extra, or has the wrong size
   */
  public static void writeParameters(Path source, Map<String, float[]> values, Path target) throws IOException {
    ModelProto model;
    try (InputStream in = Files.newInputStream(source)) {
      model = ModelProto.parseFrom(in);
    }
    Map<String, TensorProto> named = huggingFaceNames(model.getGraph());
    int expected = 5 + LAYER_TENSORS.length * layerCount(named);
    if (values.size() != expected) {
      throw new IllegalArgumentException("got " + values.size() + " parameters, " + source + " has " + expected
          + ": give them all (a snapshot)");
    }
    Map<String, float[]> byInitializer = new TreeMap<>();
    for (Map.Entry<String, float[]> e : values.entrySet()) {
      TensorProto t = named.get(e.getKey());
      if (t == null) {
        throw new IllegalArgumentException(source + " has no initializer for " + e.getKey());
      }
      long count = t.getDimsList().stream().mapToLong(Long::longValue).reduce(1, (a, b) -> a * b);
      if (count != e.getValue().length) {
        throw new IllegalArgumentException(e.getKey() + " has " + e.getValue().length + " values, its initializer " + count);
      }
      if (byInitializer.put(t.getName(), e.getValue()) != null) {
        throw new IllegalArgumentException("two parameters map to the initializer " + t.getName());
      }
    }
    GraphProto.Builder graph = model.getGraph().toBuilder();
    int replaced = 0;
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      float[] v = byInitializer.get(graph.getInitializer(i).getName());
      if (v != null) {
        ByteBuffer raw = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        raw.asFloatBuffer().put(v);
        graph.setInitializer(i, graph.getInitializer(i).toBuilder().clearFloatData()
            .setRawData(com.google.protobuf.ByteString.copyFrom(raw.array())).build());
        replaced++;
      }
    }
    if (replaced != byInitializer.size()) {
      throw new IllegalStateException("replaced " + replaced + " initializers of " + byInitializer.size());
    }
    Files.write(target, model.toBuilder().setGraph(graph).build().toByteArray());
  }

  /** Frees the parameters (their manager may outlive the encoder). */
  @Override
  public void close() {
    parameters.values().forEach(NDArray::close);
  }
}
