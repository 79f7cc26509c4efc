package io.pockettune.baseline;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.index.NDIndex;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.norm.LayerNorm;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import com.google.protobuf.InvalidProtocolBufferException;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import java.io.IOException;
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
import java.util.SplittableRandom;

/**
 * PocketTune's in-house GPT-2-style decoder ({@link DecoderLmBuilder}) rebuilt from DJL NDArray
 * operations, so that the PyTorch engine's autograd can fine-tune it with Adam: the
 * backprop-with-Adam baseline that the MeZO trainer's memory is measured against on the very same
 * model (the {@code bench10m} decoder, 10.8M parameters). It belongs to the benchmark side; the
 * device runtime never loads it.
 *
 * <h2>Architecture</h2>
 * Exactly the builder's {@link DecoderLmBuilder.Signature#PLAIN plain} graph: token embedding
 * {@code transformer.wte} plus position embedding {@code transformer.wpe} at positions
 * {@code 0..seq-1} (whatever the mask); then per block a pre-norm residual: LayerNorm
 * {@code ln_1}, fused {@code attn.c_attn} dense of width {@code 3 d} split into query, key and
 * value, {@code heads} heads of {@code d / heads} values, scores {@code (q · kᵀ) · 1/sqrt(d/heads)}
 * plus an additive bias, softmax, {@code attn.c_proj} dense, residual add; LayerNorm {@code ln_2},
 * {@code mlp.c_fc} dense to {@code mlpRatio · d}, GELU, {@code mlp.c_proj} dense, residual add. A
 * final LayerNorm {@code transformer.ln_f} and the output projection tied to the token embedding
 * ({@code logits = h · wteᵀ}). The constants are the graph's: LayerNorm epsilon 1e-5; the
 * attention bias is {@code -1e9} above the diagonal (causal) plus {@code -1e9} on padding keys
 * (so {@code -2e9} where both hold, as the graph adds them); GELU is GPT-2's tanh approximation
 * {@code 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))}.
 *
 * <h2>Loss</h2>
 * {@link #nextTokenLoss} is the trainer's causal-LM objective as {@code ModelRewriter} appends it to
 * the graph: log-softmax of the logits at positions {@code 0..seq-2}, the negative log-probability
 * of the token at the next position, weighted by the attention mask of that next (target) position,
 * summed and divided by {@code max(number of real targets, 1)}.
 *
 * <h2>Weights</h2>
 * Every parameter is a float initializer of the ONNX file under the builder's GPT-2 name
 * ({@code transformer.h.0.attn.c_attn.weight}, ...), dense weights in GPT-2's {@code [in, out]}
 * layout (the forward multiplies {@code x · W}). The load requires exactly the initializers the
 * given {@link DecoderLmConfig} implies, with its shapes: a missing one, an unexpected one or a
 * disagreeing shape fails with the name. The file is parsed onto the heap while loading. All
 * parameters are float32 arrays of the given manager with gradients required. Not thread-safe: one
 * training loop owns an instance.
 */
public final class DecoderLm implements AutoCloseable {
  private static final float LAYER_NORM_EPS = 1e-5f;
  /** The builder's additive attention bias on causal-masked and padding keys. */
  private static final float MASKED = -1e9f;
  private static final float GELU_K = 0.044715f;
  private static final String[] LAYER_TENSORS = {
    "ln_1.weight", "ln_1.bias",
    "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias",
    "mlp.c_proj.weight", "mlp.c_proj.bias",
  };

  private final Map<String, NDArray> parameters;
  private final DecoderLmConfig config;

  private DecoderLm(Map<String, NDArray> parameters, DecoderLmConfig config) {
    this.parameters = parameters;
    this.config = config;
  }

  /**
   * @param onnx    a model built by {@link DecoderLmBuilder#build(DecoderLmConfig)} (plain signature)
   * @param config  the config it was built from (heads are not stated plainly by the initializers)
   * @param manager the PyTorch manager that will own the parameters
   * @throws IllegalArgumentException if the bytes are not such a model: names the missing,
   *     unexpected or misshapen initializer
   */
  public static DecoderLm load(byte[] onnx, DecoderLmConfig config, NDManager manager) {
    ModelProto model;
    try {
      model = ModelProto.parseFrom(onnx);
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalArgumentException("not an ONNX model: " + e.getMessage(), e);
    }
    Map<String, TensorProto> byName = new LinkedHashMap<>();
    model.getGraph().getInitializerList().forEach(t -> byName.put(t.getName(), t));
    Map<String, long[]> expected = expectedShapes(config);
    for (String name : byName.keySet()) {
      if (!expected.containsKey(name)) {
        throw new IllegalArgumentException("unexpected initializer " + name + ": not a DecoderLmBuilder model of " + config);
      }
    }
    Map<String, NDArray> parameters = new LinkedHashMap<>();
    for (Map.Entry<String, long[]> e : expected.entrySet()) {
      String name = e.getKey();
      TensorProto t = byName.get(name);
      if (t == null) {
        throw new IllegalArgumentException("the model has no initializer " + name + ": not a DecoderLmBuilder model of " + config);
      }
      Shape shape = new Shape(t.getDimsList().stream().mapToLong(Long::longValue).toArray());
      if (!shape.equals(new Shape(e.getValue()))) {
        throw new IllegalArgumentException(name + " has shape " + shape + ", expected " + new Shape(e.getValue()) + " for " + config);
      }
      NDArray a = manager.create(floats(t, name), shape);
      a.setName(name);
      a.setRequiresGradient(true);
      parameters.put(name, a);
    }
    return new DecoderLm(Collections.unmodifiableMap(parameters), config);
  }

  /** The builder's initializers for {@code c}, in module order, with their shapes. */
  private static Map<String, long[]> expectedShapes(DecoderLmConfig c) {
    long d = c.dModel();
    long ff = d * c.mlpRatio();
    Map<String, long[]> s = new LinkedHashMap<>();
    s.put("transformer.wte.weight", new long[] {c.vocabSize(), d});
    s.put("transformer.wpe.weight", new long[] {c.maxPositions(), d});
    for (int l = 0; l < c.layers(); l++) {
      String p = "transformer.h." + l + ".";
      List<long[]> shapes = List.of(
          new long[] {d}, new long[] {d},
          new long[] {d, 3 * d}, new long[] {3 * d},
          new long[] {d, d}, new long[] {d},
          new long[] {d}, new long[] {d},
          new long[] {d, ff}, new long[] {ff},
          new long[] {ff, d}, new long[] {d});
      for (int i = 0; i < LAYER_TENSORS.length; i++) {
        s.put(p + LAYER_TENSORS[i], shapes.get(i));
      }
    }
    s.put("transformer.ln_f.weight", new long[] {d});
    s.put("transformer.ln_f.bias", new long[] {d});
    return s;
  }

  private static FloatBuffer floats(TensorProto t, String name) {
    if (t.getDataType() != TensorProto.DataType.FLOAT.getNumber()) {
      throw new IllegalArgumentException("initializer " + name + " is not float32");
    }
    if (!t.getRawData().isEmpty()) {
      return t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }
    FloatBuffer b = ByteBuffer.allocateDirect(4 * t.getFloatDataCount()).order(ByteOrder.nativeOrder()).asFloatBuffer();
    t.getFloatDataList().forEach(b::put);
    return b.flip();
  }

  /** @return every parameter by its initializer name, in module order; each requires a gradient */
  public Map<String, NDArray> parameters() {
    return parameters;
  }

  /** @return the config the model was loaded with */
  public DecoderLmConfig config() {
    return config;
  }

  /**
   * @param inputIds      token ids, int64 [batch, sequence], sequence at most {@code maxPositions}
   * @param attentionMask 1 for real tokens and 0 for padding, int64 [batch, sequence]
   * @return logits, float32 [batch, sequence, vocab], as the ONNX model's {@code logits} output
   */
  public NDArray logits(NDArray inputIds, NDArray attentionMask) {
    long batch = inputIds.getShape().get(0);
    long seq = inputIds.getShape().get(1);
    if (seq > config.maxPositions()) {
      throw new IllegalArgumentException("sequence of " + seq + " tokens is longer than the " + config.maxPositions() + " positions of the model");
    }
    int d = config.dModel();
    NDManager nd = inputIds.getManager();
    NDArray positions = nd.arange(0, seq, 1, DataType.INT64).reshape(1, seq);
    NDArray x = Embedding.embedding(inputIds, p("transformer.wte.weight"), SparseFormat.DENSE).singletonOrThrow()
        .add(Embedding.embedding(positions, p("transformer.wpe.weight"), SparseFormat.DENSE).singletonOrThrow());
    NDArray bias = attentionBias(nd, attentionMask, batch, seq);
    for (int l = 0; l < config.layers(); l++) {
      String prefix = "transformer.h." + l + ".";
      NDArray h = norm(x, prefix + "ln_1");
      x = x.add(dense(selfAttention(dense(h, prefix + "attn.c_attn"), bias, batch, seq), prefix + "attn.c_proj"));
      NDArray h2 = norm(x, prefix + "ln_2");
      x = x.add(dense(gelu(dense(h2, prefix + "mlp.c_fc")), prefix + "mlp.c_proj"));
    }
    return norm(x, "transformer.ln_f").matMul(p("transformer.wte.weight").transpose());
  }

  /** [batch, 1, seq, seq]: -1e9 above the diagonal plus -1e9 on padding keys, as the graph adds them. */
  private static NDArray attentionBias(NDManager nd, NDArray attentionMask, long batch, long seq) {
    float[] causal = new float[(int) (seq * seq)];
    for (int i = 0; i < seq; i++) {
      for (int j = i + 1; j < seq; j++) {
        causal[(int) (i * seq + j)] = MASKED;
      }
    }
    NDArray causalBias = nd.create(causal, new Shape(1, 1, seq, seq));
    NDArray padBias = attentionMask.toType(DataType.FLOAT32, false).neg().add(1f).mul(MASKED).reshape(batch, 1, 1, seq);
    return causalBias.add(padBias);
  }

  private NDArray selfAttention(NDArray qkv, NDArray bias, long batch, long seq) {
    int d = config.dModel();
    int heads = config.heads();
    int width = d / heads;
    NDList parts = qkv.split(new long[] {d, 2L * d}, 2);
    NDArray q = parts.get(0).reshape(batch, seq, heads, width).transpose(0, 2, 1, 3);
    NDArray kT = parts.get(1).reshape(batch, seq, heads, width).transpose(0, 2, 3, 1);
    NDArray v = parts.get(2).reshape(batch, seq, heads, width).transpose(0, 2, 1, 3);
    NDArray scores = q.matMul(kT).mul((float) (1.0 / Math.sqrt(width))).add(bias);
    return scores.softmax(-1).matMul(v).transpose(0, 2, 1, 3).reshape(batch, seq, d);
  }

  /**
   * The trainer's causal-LM loss (ModelRewriter.appendCausalLmLoss): mean cross-entropy of each
   * next token over the positions whose target is a real token.
   *
   * @param inputIds      token ids, int64 [batch, sequence], sequence at least 2
   * @param attentionMask 1 for real tokens and 0 for padding, int64 [batch, sequence]
   * @return the scalar loss, float32; differentiable in every parameter
   */
  public NDArray nextTokenLoss(NDArray inputIds, NDArray attentionMask) {
    long seq = inputIds.getShape().get(1);
    NDArray predicting = logits(inputIds, attentionMask).get(new NDIndex(":, 0:{}", seq - 1));
    NDArray targets = inputIds.get(new NDIndex(":, 1:"));
    NDArray weights = attentionMask.toType(DataType.FLOAT32, false).get(new NDIndex(":, 1:"));
    NDArray nll = predicting.logSoftmax(-1).gather(targets.expandDims(2), 2).squeeze(2).neg();
    return nll.mul(weights).sum().div(weights.sum().maximum(1f));
  }

  private NDArray dense(NDArray x, String module) {
    return x.matMul(p(module + ".weight")).add(p(module + ".bias"));
  }

  private NDArray norm(NDArray x, String module) {
    return LayerNorm.layerNorm(x, new Shape(config.dModel()), p(module + ".weight"), p(module + ".bias"), LAYER_NORM_EPS).singletonOrThrow();
  }

  /** GPT-2's "gelu_new", in the graph's order of operations. */
  private static NDArray gelu(NDArray x) {
    NDArray inner = x.add(x.mul(x).mul(x).mul(GELU_K));
    NDArray t = inner.mul((float) Math.sqrt(2 / Math.PI)).tanh();
    return x.mul(0.5f).mul(t.add(1f));
  }

  private NDArray p(String name) {
    return parameters.get(name);
  }

  /**
   * Makes PyTorch compute with {@code threads} intra-op threads (and, if the engine is not loaded
   * yet, as many inter-op threads): DJL reads {@code ai.djl.pytorch.num_threads} and
   * {@code ai.djl.pytorch.num_interop_threads} when it loads the engine; the intra-op count is then
   * set again through libtorch, so a call after the engine is loaded still takes effect for it.
   */
  public static void useThreads(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be positive, got " + threads);
    }
    System.setProperty("ai.djl.pytorch.num_threads", Integer.toString(threads));
    System.setProperty("ai.djl.pytorch.num_interop_threads", Integer.toString(threads));
    Engine.getEngine("PyTorch");
    JniUtils.setNumThreads(threads);
  }

  /** Frees the parameters (their manager may outlive the model). */
  @Override
  public void close() {
    parameters.values().forEach(NDArray::close);
  }

  /**
   * Memory probe, a child process like bench's {@code MemoryProbe}: {@code decoder CONFIG BATCH SEQ
   * STEPS} with CONFIG {@code bench10m} or {@code demo} runs STEPS Adam steps (learning rate 1e-3,
   * all parameters) of {@link #nextTokenLoss} on BATCH random sequences of SEQ tokens, full mask,
   * drawn as {@code MemoryProbe.randomBatch} does (SplittableRandom seed 7, ids in
   * {@code 3..vocab-1}), with as many PyTorch threads as available processors (as MemoryProbe gives
   * ONNX Runtime). Prints {@code peak_rss_kb=N} (VmHWM of /proc/self/status) on stdout, each step's
   * loss on stderr, and exits 0.
   *
   * <p>Run it as bench runs MemoryProbe, one JVM per measurement, on baseline's runtime classpath
   * (which holds no ONNX Runtime): {@code ./mvnw -B -q -o -pl baseline -am compile
   * dependency:build-classpath -Dmdep.outputFile=/tmp/cp.txt -DincludeScope=runtime}, then
   * {@code java -Xmx4g -XX:+UseSerialGC -DOPT_OUT_TRACKING=true -Dai.djl.offline=true
   * -cp baseline/target/classes:$(cat /tmp/cp.txt) io.pockettune.baseline.DecoderLm decoder
   * bench10m 8 128 3}. The activations autograd keeps are those of the graph's unfused operations
   * (GELU alone keeps about five {@code [batch, seq, 4 d]} tensors per block for the backward pass), as in an eager
   * PyTorch GPT-2, whose {@code gelu_new} is unfused as well.
   */
  public static void main(String[] args) throws Exception {
    System.setProperty("OPT_OUT_TRACKING", "true");
    System.setProperty("ai.djl.offline", "true");
    if (args.length != 5 || !args[0].equals("decoder")) {
      System.err.println("usage: DecoderLm decoder bench10m|demo BATCH SEQ STEPS");
      System.exit(2);
    }
    DecoderLmConfig config = switch (args[1]) {
      case "demo" -> DecoderLmConfig.demo();
      case "bench10m" -> DecoderLmConfig.bench10m();
      default -> throw new IllegalArgumentException("unknown config " + args[1] + ": bench10m or demo");
    };
    int batch = Integer.parseInt(args[2]);
    int seq = Integer.parseInt(args[3]);
    int steps = Integer.parseInt(args[4]);
    useThreads(Integer.getInteger("ai.djl.pytorch.num_threads", Runtime.getRuntime().availableProcessors()));
    long[] ids = new long[batch * seq];
    long[] mask = new long[batch * seq];
    SplittableRandom rng = new SplittableRandom(7);
    for (int i = 0; i < ids.length; i++) {
      ids[i] = 3 + rng.nextInt(config.vocabSize() - 3);
      mask[i] = 1;
    }
    byte[] onnx = DecoderLmBuilder.build(config);
    try (NDManager root = NDManager.newBaseManager(Device.cpu(), "PyTorch");
        DecoderLm lm = load(onnx, config, root)) {
      onnx = null;
      Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-3f)).build();
      for (int s = 0; s < steps; s++) {
        try (NDManager step = root.newSubManager()) {
          NDArray in = step.create(ids, new Shape(batch, seq));
          NDArray m = step.create(mask, new Shape(batch, seq));
          float loss = lm.adamStep(adam, in, m);
          System.err.printf("step %d loss %.6f%n", s, loss);
        }
      }
    }
    System.out.println("peak_rss_kb=" + peakRssKb());
    System.exit(0);
  }

  /**
   * One Adam step on every parameter: forward, backward, update, gradients zeroed afterwards
   * (PyTorch accumulates them).
   *
   * @return the loss before the step
   */
  public float adamStep(Optimizer optimizer, NDArray inputIds, NDArray attentionMask) {
    float before;
    try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
      NDArray loss = nextTokenLoss(inputIds, attentionMask);
      before = loss.getFloat();
      gc.backward(loss);
    }
    List<NDArray> grads = new ArrayList<>(parameters.size());
    for (Map.Entry<String, NDArray> p : parameters.entrySet()) {
      NDArray g = p.getValue().getGradient();
      optimizer.update(p.getKey(), p.getValue(), g);
      grads.add(g);
    }
    for (NDArray g : grads) {
      g.subi(g);
      g.close();
    }
    return before;
  }

  /** Peak resident set size of this process, from /proc (Linux). */
  static long peakRssKb() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    return -1;
  }
}
