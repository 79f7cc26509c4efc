package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Graph surgery that turns a user's inference model into a trainable loss model:
 *
 * <ol>
 *   <li><b>Lift</b>: chosen float initializers become graph inputs, so their values live in
 *       buffers we own and can perturb in place between forward passes, without rebuilding the
 *       session (ONNX Runtime copies initializers into its own memory at session creation).
 *   <li><b>Loss head</b>: nodes that reduce the model's {@code logits} (or an encoder's
 *       {@code last_hidden_state}) to a scalar loss are appended, so a forward pass returns one
 *       float instead of a {@code [B, T, V]} tensor; outputs the loss does not read (e.g.
 *       {@code present.*}) are pruned with the nodes only they needed.
 * </ol>
 *
 * <p>Before both, the inputs of Hugging Face / optimum exports that a token batch does not carry
 * are <b>fed</b> by nodes computing them from {@code input_ids} and {@code attention_mask}.
 *
 * <p>Appended nodes speak the model's own default-domain opset (a user's export may be opset 11,
 * where Squeeze, Unsqueeze and ReduceSum take attributes rather than inputs); see
 * {@link GraphBuilder#GraphBuilder(GraphProto.Builder, String, long)}.
 */
final class ModelRewriter {
  static final String LOSS = "loss";
  static final String TOKEN_COUNT = "token_count";
  static final String LABEL_SCORES = "label_scores";
  static final String ANSWER_POSITION = "answer_position";
  static final String LABEL = "label";
  static final String POOLED = "pooled_embedding";

  private ModelRewriter() {}

  /** A weight taken out of the graph: its name, shape and initial values. */
  record LiftedTensor(String name, long[] dims, float[] values) {}

  record Lifted(ModelProto model, List<LiftedTensor> tensors) {}

  /**
   * Parses a model; the weights' bytes alias {@code bytes} rather than copying them (a model's
   * weights are most of its size), so the array must not change while the result is in use.
   */
  static ModelProto parse(byte[] bytes) {
    com.google.protobuf.CodedInputStream in = com.google.protobuf.CodedInputStream.newInstance(bytes);
    in.enableAliasing(true);
    return parse(in);
  }

  static ModelProto parse(com.google.protobuf.CodedInputStream in) {
    ModelProto model;
    try {
      model = ModelProto.parseFrom(in);
    } catch (java.io.IOException e) {
      throw new ModelException("the file is not an ONNX model (" + e.getMessage() + "): give the path of a .onnx file", e);
    }
    if (!model.hasGraph() || model.getGraph().getNodeCount() == 0) {
      throw new ModelException("the file is not an ONNX model (it has no graph): give the path of a .onnx file");
    }
    return model;
  }

  static Lifted lift(ModelProto model, TrainableSelection selection) {
    return lift(model, selection, null);
  }

  /**
   * @param externalDataDir folder that the model's external-data locations are relative to (the
   *     model file's folder), or null for a model read from bytes
   */
  static Lifted lift(ModelProto model, TrainableSelection selection, java.nio.file.Path externalDataDir) {
    if (selection.kind() == TrainableSelection.Kind.LORA) {
      return injectLora(model, selection);
    }
    GraphProto.Builder graph = model.getGraph().toBuilder();
    java.util.Set<String> chosen = new java.util.HashSet<>();
    List<LiftedTensor> lifted = new ArrayList<>();
    for (TensorProto t : selectedInitializers(model.getGraph(), selection)) {
      chosen.add(t.getName());
      long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
      lifted.add(new LiftedTensor(t.getName(), dims, floats(t, externalDataDir)));
      Object[] shape = new Object[dims.length];
      for (int i = 0; i < dims.length; i++) {
        shape[i] = dims[i];
      }
      graph.addInput(GraphBuilder.valueInfo(t.getName(), DataType.FLOAT.getNumber(), shape));
    }
    List<TensorProto> kept = graph.getInitializerList().stream().filter(t -> !chosen.contains(t.getName())).toList();
    // Old exports (IR < 4) also list every initializer as a graph input; a lifted one must appear once.
    List<ValueInfoProto> inputs = new ArrayList<>(graph.getInputList());
    java.util.Set<String> seen = new java.util.HashSet<>();
    inputs.removeIf(in -> !seen.add(in.getName()));
    graph.clearInput().addAllInput(inputs);
    graph.clearInitializer().addAllInitializer(kept);
    return new Lifted(model.toBuilder().setGraph(graph).build(), lifted);
  }

  /** Element types of quantized weights: int8 and uint8 (and the 4-bit types of ONNX 1.16). */
  static boolean isQuantized(int dataType) {
    return dataType == DataType.INT8.getNumber() || dataType == DataType.UINT8.getNumber()
        || dataType == 21 || dataType == 22;
  }

  static String typeName(int dataType) {
    DataType d = DataType.forNumber(dataType);
    return d == null ? "type " + dataType : d.name();
  }

  /**
   * The initializers a non-LoRA selection lifts, in graph order. Non-float initializers are skipped
   * by the broad choices ("all", biases and norms) and refused when a name pattern picks them.
   *
   * @throws ModelException if a chosen tensor is not float32, or if nothing is chosen
   */
  static List<TensorProto> selectedInitializers(GraphProto graph, TrainableSelection selection) {
    List<TensorProto> out = new ArrayList<>();
    for (TensorProto t : graph.getInitializerList()) {
      boolean rankOk = selection.kind() == TrainableSelection.Kind.RANK_ONE ? t.getDimsCount() == 1 : t.getDimsCount() > 0;
      if (!selection.selects(t.getName()) || !rankOk) {
        continue;
      }
      if (t.getDataType() != DataType.FLOAT.getNumber()) {
        if (selection.kind() == TrainableSelection.Kind.RANK_ONE || selection.pattern().pattern().equals(".*")) {
          continue;
        }
        if (isQuantized(t.getDataType())) {
          throw new ModelException("trainable tensor " + t.getName() + " is quantized (" + typeName(t.getDataType())
              + "), and quantized weights cannot train: choose float tensors (for example norms or LoRA on float weights) or use a float32 export");
        }
        throw new ModelException(
            "trainable tensor " + t.getName() + " is " + typeName(t.getDataType())
                + ", not float32: trainable state must be float32, so choose float tensors or convert the model");
      }
      out.add(t);
    }
    if (out.isEmpty()) {
      throw new ModelException(
          "no float initializer of the model matches the trainable choice (" + selection.description()
              + "): check the name pattern against the model's weights");
    }
    return out;
  }

  /** A MatMul or Gemm that gets a LoRA adapter: its weight and the adapter's in/out widths. */
  record LoraTarget(OnnxMl.NodeProto node, TensorProto weight, long in, long out) {}

  /**
   * The MatMul/Gemm nodes whose weight input is a rank-2 float initializer matching the LoRA
   * selection, in graph order. The pattern is matched against the weight's name and against the
   * node's name: optimum exports often name weights anonymously ({@code onnx::MatMul_787}) but
   * keep the module path in the node's name ({@code /encoder/layer.0/attention/self/query/MatMul}).
   *
   * @throws ModelException if none matches, or a matching Gemm uses transA or alpha != 1
   */
  static List<LoraTarget> loraTargets(GraphProto graph, TrainableSelection selection) {
    java.util.Map<String, TensorProto> weights = new java.util.HashMap<>();
    for (TensorProto t : graph.getInitializerList()) {
      weights.put(t.getName(), t);
    }
    List<LoraTarget> out = new ArrayList<>();
    boolean quantizedMatch = false;
    for (OnnxMl.NodeProto node : graph.getNodeList()) {
      boolean gemm = node.getOpType().equals("Gemm");
      boolean matmul = node.getOpType().equals("MatMul");
      TensorProto w = (gemm || matmul) && node.getInputCount() >= 2 ? weights.get(node.getInput(1)) : null;
      if (w == null || w.getDimsCount() != 2 || !(selection.selects(w.getName()) || selection.selects(node.getName()))
          || w.getDataType() != DataType.FLOAT.getNumber()) {
        continue;
      }
      if (gemm && (intAttribute(node, "transA", 0) != 0 || floatAttribute(node, "alpha", 1f) != 1f)) {
        throw new ModelException("Gemm " + node.getName() + " uses transA or alpha != 1, which LoRA injection does not support: target other weights");
      }
      boolean transB = gemm && intAttribute(node, "transB", 0) != 0;
      out.add(new LoraTarget(node, w, transB ? w.getDims(1) : w.getDims(0), transB ? w.getDims(0) : w.getDims(1)));
    }
    if (out.isEmpty()) {
      for (TensorProto t : graph.getInitializerList()) {
        quantizedMatch |= isQuantized(t.getDataType()) && selection.selects(t.getName());
      }
      if (quantizedMatch) {
        throw new ModelException("the LoRA targets (" + selection.pattern().pattern()
            + ") match only quantized weights, which LoRA here cannot adapt: target float MatMul weights or use a float32 export");
      }
      throw new ModelException("no MatMul or Gemm weight of the model matches the LoRA targets ("
          + selection.pattern().pattern() + "): check the pattern against the model's weight names");
    }
    return out;
  }

  /**
   * Injects LoRA adapters: every MatMul (or Gemm) whose weight input is a float initializer of rank
   * 2 matching the selection becomes {@code Y = X W + (alpha / r) (X A) B}, with A {@code [in, r]}
   * and B {@code [r, out]} new graph inputs. A starts Gaussian with std {@code 1/sqrt(in)} (seeded
   * by the weight's name, so the same model always gets the same adapters), B starts at zero, so
   * the adapted model equals the base model until B trains. The frozen weights stay initializers.
   */
  static Lifted injectLora(ModelProto model, TrainableSelection selection) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    java.util.Map<OnnxMl.NodeProto, LoraTarget> targets = new java.util.IdentityHashMap<>();
    for (LoraTarget t : loraTargets(model.getGraph(), selection)) {
      targets.put(t.node(), t);
    }
    List<LiftedTensor> adapters = new ArrayList<>();
    List<OnnxMl.NodeProto> nodes = model.getGraph().getNodeList();
    graph.clearNode();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_lora/", GraphBuilder.opsetOf(model));
    float scale = selection.alpha() / selection.rank();
    String scaleConst = null;
    for (OnnxMl.NodeProto node : nodes) {
      LoraTarget target = targets.get(node);
      if (target == null) {
        graph.addNode(node);
        continue;
      }
      TensorProto w = target.weight();
      long in = target.in();
      long out = target.out();
      int r = selection.rank();
      String a = w.getName() + ".lora_A";
      String b = w.getName() + ".lora_B";
      adapters.add(new LiftedTensor(a, new long[] {in, r}, loraA(w.getName(), (int) in, r)));
      adapters.add(new LiftedTensor(b, new long[] {r, out}, new float[(int) (r * out)]));
      graph.addInput(GraphBuilder.valueInfo(a, DataType.FLOAT.getNumber(), in, (long) r));
      graph.addInput(GraphBuilder.valueInfo(b, DataType.FLOAT.getNumber(), (long) r, out));
      if (scaleConst == null) {
        scaleConst = g.constScalar("scale", scale);
      }
      String y = node.getOutput(0);
      String base = g.fresh("base");
      graph.addNode(node.toBuilder().setOutput(0, base));
      String x = node.getInput(0);
      String delta = g.node("Mul", "delta", g.node("MatMul", "xab", g.node("MatMul", "xa", x, a), b), scaleConst);
      g.nodeNamed("Add", y, new String[] {base, delta});
    }
    return new Lifted(model.toBuilder().setGraph(graph).build(), adapters);
  }

  static float[] loraA(String weightName, int in, int r) {
    java.util.SplittableRandom rng = new java.util.SplittableRandom(weightName.hashCode() * 0x9E3779B97F4A7C15L);
    float[] v = new float[in * r];
    double std = 1.0 / Math.sqrt(in);
    for (int i = 0; i < v.length; i++) {
      double u = 1.0 - rng.nextDouble();
      v[i] = (float) (std * StrictMath.sqrt(-2.0 * StrictMath.log(u)) * StrictMath.cos(2.0 * StrictMath.PI * rng.nextDouble()));
    }
    return v;
  }

  private static long intAttribute(OnnxMl.NodeProto node, String name, long fallback) {
    for (OnnxMl.AttributeProto a : node.getAttributeList()) {
      if (a.getName().equals(name)) {
        return a.getI();
      }
    }
    return fallback;
  }

  private static float floatAttribute(OnnxMl.NodeProto node, String name, float fallback) {
    for (OnnxMl.AttributeProto a : node.getAttributeList()) {
      if (a.getName().equals(name)) {
        return a.getF();
      }
    }
    return fallback;
  }

  /**
   * Appends prompt-classification loss (the MeZO formulation): the logits at each row's answer
   * position, restricted to the label words' tokens, give a distribution over labels; the loss is
   * the mean cross-entropy against the row's label. New inputs {@code answer_position} and
   * {@code label} (int64 {@code [batch]}); outputs {@link #LOSS}, {@link #TOKEN_COUNT} (the number
   * of rows) and {@link #LABEL_SCORES} ({@code [batch, labels]}, for accuracy).
   */
  static ModelProto appendClassificationLoss(ModelProto model, long[] labelTokens) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    requireInput(graph, "input_ids", "prompt-classification");
    requireOutput(graph, "logits", "prompt classification reads a language model's logits, so choose embedding-classification for an encoder");
    graph.clearOutput();
    int int64 = DataType.INT64.getNumber();
    int floatType = DataType.FLOAT.getNumber();
    graph.addInput(GraphBuilder.valueInfo(ANSWER_POSITION, int64, "batch"));
    graph.addInput(GraphBuilder.valueInfo(LABEL, int64, "batch"));
    GraphBuilder g = new GraphBuilder(graph, "pockettune_cls/", GraphBuilder.opsetOf(model));
    String labelLogits = g.node("Gather", "label_logits", new String[] {"logits", g.constInts("label_tokens", labelTokens)}, "axis", 2L);
    String k = g.constInts("k", labelTokens.length);
    String batch = g.node("Slice", "batch", g.node("Shape", "shape", "input_ids"), g.constInts("s0", 0), g.constInts("s1", 1));
    String indexShape = g.node("Concat", "index_shape", new String[] {batch, g.constInts("one", 1), k}, "axis", 0L);
    String position = g.node("Reshape", "position", ANSWER_POSITION, g.constInts("pos_shape", -1, 1, 1));
    String index = g.node("Expand", "index", position, indexShape);
    String atAnswer = g.node("GatherElements", "at_answer", new String[] {labelLogits, index}, "axis", 1L);
    g.nodeNamed("Identity", LABEL_SCORES, new String[] {g.squeeze("scores", atAnswer, 1)});
    appendLabelCrossEntropy(g, batch);
    g.output(LABEL_SCORES, floatType, "batch", (long) labelTokens.length);
    return prune(model.toBuilder().setGraph(graph).build());
  }

  /** LOSS = mean over rows of -log softmax(LABEL_SCORES)[label]; TOKEN_COUNT = rows. */
  private static void appendLabelCrossEntropy(GraphBuilder g, String batchShape1d) {
    int floatType = DataType.FLOAT.getNumber();
    String logProbs = g.node("LogSoftmax", "log_probs", new String[] {LABEL_SCORES}, "axis", 1L);
    String picked = g.node("GatherElements", "picked", new String[] {logProbs, g.unsqueeze("label_2d", LABEL, 1)}, "axis", 1L);
    g.nodeNamed("ReduceMean", LOSS, new String[] {g.node("Neg", "nll", picked)}, "keepdims", 0L);
    g.nodeNamed("Cast", TOKEN_COUNT, new String[] {g.squeeze("rows", batchShape1d, 0)}, "to", (long) floatType);
    g.output(LOSS, floatType);
    g.output(TOKEN_COUNT, floatType);
  }

  /**
   * Appends embedding classification over an encoder's {@code last_hidden_state}: pool each row
   * (mean over real tokens, or the first token), then {@code scores = temperature * cos(pooled,
   * head_j)} against the rows of the new float input {@code head} ({@code [labels, hidden]}), then
   * the same cross-entropy as prompt classification. Outputs {@link #LOSS}, {@link #TOKEN_COUNT},
   * {@link #LABEL_SCORES} and {@link #POOLED} ({@code [batch, hidden]}, which initialises the head).
   * Vectors are normalised as {@code x / max(|x|, 1e-12)}, so an all-zero head scores 0, not NaN.
   */
  static ModelProto appendEmbeddingClassification(ModelProto model, Objective.Pooling pooling, float temperature,
      String head, int labels, int hidden) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    requireInput(graph, "input_ids", "embedding-classification");
    requireOutput(graph, "last_hidden_state",
        "embedding classification pools an encoder's last_hidden_state, so choose causal-lm or prompt-classification for a decoder");
    graph.clearOutput();
    int int64 = DataType.INT64.getNumber();
    int floatType = DataType.FLOAT.getNumber();
    graph.addInput(GraphBuilder.valueInfo(LABEL, int64, "batch"));
    graph.addInput(GraphBuilder.valueInfo(head, floatType, (long) labels, (long) hidden));
    GraphBuilder g = new GraphBuilder(graph, "pockettune_emb/", GraphBuilder.opsetOf(model));
    appendEmbeddingScores(g, pooling, temperature, head);
    String batch = g.node("Slice", "batch", g.node("Shape", "shape", "input_ids"), g.constInts("s0", 0), g.constInts("s1", 1));
    appendLabelCrossEntropy(g, batch);
    g.output(LABEL_SCORES, floatType, "batch", (long) labels);
    g.output(POOLED, floatType, "batch", (long) hidden);
    return prune(model.toBuilder().setGraph(graph).build());
  }

  /**
   * {@link #POOLED} and {@link #LABEL_SCORES} from {@code last_hidden_state}, {@code attention_mask}
   * and the head: the scoring shared by training and by the exported model.
   */
  static void appendEmbeddingScores(GraphBuilder g, Objective.Pooling pooling, float temperature, String head) {
    int floatType = DataType.FLOAT.getNumber();
    String pooled;
    if (pooling == Objective.Pooling.CLS) {
      pooled = g.node("Gather", "cls", new String[] {"last_hidden_state", g.constScalarInt("first", 0)}, "axis", 1L);
    } else {
      String maskF = g.node("Cast", "mask_f", new String[] {"attention_mask"}, "to", (long) floatType);
      String masked = g.node("Mul", "masked", "last_hidden_state", g.unsqueeze("mask_3d", maskF, 2));
      String sum = g.reduceSum("sum", masked, false, 1);
      String count = g.node("Max", "count", g.reduceSum("real", maskF, true, 1), g.constScalar("one", 1f));
      pooled = g.node("Div", "mean", sum, count);
    }
    g.nodeNamed("Identity", POOLED, new String[] {pooled});
    String rows = normalize(g, "rows_n", POOLED, 1);
    String heads = normalize(g, "head_n", head, 1);
    String cos = g.node("MatMul", "cos", rows, g.node("Transpose", "head_t", new String[] {heads}, "perm", new long[] {1, 0}));
    g.nodeNamed("Mul", LABEL_SCORES, new String[] {cos, g.constScalar("temperature", temperature)});
  }

  /**
   * Vectors along {@code axis} divided by their Euclidean norm (at least 1e-12). A negative axis
   * needs opset 11 or later.
   */
  static String normalize(GraphBuilder g, String hint, String x, long axis) {
    String norm = g.node("Sqrt", hint + "_norm", g.reduceSum(hint + "_sq", g.node("Mul", hint + "_x2", x, x), true, axis));
    return g.node("Div", hint, x, g.node("Max", hint + "_safe", norm, g.constScalar(hint + "_tiny", 1e-12f)));
  }

  /** Uses a scalar the model already outputs as the loss; {@link #TOKEN_COUNT} is 1 per batch. */
  static ModelProto useScalarLoss(ModelProto model, String lossOutput) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    boolean found = graph.getOutputList().stream().anyMatch(o -> o.getName().equals(lossOutput));
    if (!found) {
      throw new ModelException("the model has no output named '" + lossOutput + "': name the output that holds its scalar loss");
    }
    graph.clearOutput();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_scalar/", GraphBuilder.opsetOf(model));
    int floatType = DataType.FLOAT.getNumber();
    if (!lossOutput.equals(LOSS)) {
      g.nodeNamed("Identity", LOSS, new String[] {lossOutput});
    }
    g.nodeNamed("Identity", TOKEN_COUNT, new String[] {g.constScalar("one", 1f)});
    g.output(LOSS, floatType);
    g.output(TOKEN_COUNT, floatType);
    return prune(model.toBuilder().setGraph(graph).build());
  }

  private static void requireOutput(GraphProto.Builder graph, String name, String why) {
    boolean has = graph.getOutputList().stream().anyMatch(o -> o.getName().equals(name));
    if (!has) {
      throw new ModelException("the model has no output named '" + name + "': " + why);
    }
  }

  /**
   * Appends causal language-modelling loss: mean over real target tokens of the cross-entropy of
   * the logits at position t against the token at t+1; positions whose target is padding are
   * ignored. Outputs become {@link #LOSS} (scalar mean) and {@link #TOKEN_COUNT} (scalar, the number
   * of targets averaged over, so callers can pool losses across batches exactly).
   */
  static ModelProto appendCausalLmLoss(ModelProto model) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    requireInput(graph, "input_ids", "causal-LM");
    requireInput(graph, "attention_mask", "causal-LM");
    requireOutput(graph, "logits", "this objective needs a language model's logits, so choose embedding-classification for an encoder");
    graph.clearOutput();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_loss/", GraphBuilder.opsetOf(model));
    int floatType = DataType.FLOAT.getNumber();
    String start = g.constInts("start", 1);
    String end = g.constInts("end", Long.MAX_VALUE);
    String stop = g.constInts("stop", -1);
    String zero = g.constInts("zero", 0);
    String axis1 = g.constInts("axis1", 1);
    String predicting = g.node("Slice", "pred_logits", "logits", zero, stop, axis1);
    String targets = g.node("Slice", "targets", "input_ids", start, end, axis1);
    String maskF = g.node("Cast", "mask_f", new String[] {"attention_mask"}, "to", (long) floatType);
    String weights = g.node("Slice", "target_weights", maskF, start, end, axis1);
    String logProbs = g.node("LogSoftmax", "log_probs", new String[] {predicting}, "axis", -1L);
    String picked = g.node("GatherElements", "picked", new String[] {logProbs, g.unsqueeze("targets_3d", targets, 2)}, "axis", 2L);
    String nll = g.node("Neg", "nll", g.squeeze("picked_2d", picked, 2));
    String total = g.reduceSum("nll_sum", g.node("Mul", "nll_w", nll, weights), false);
    g.nodeNamed("Identity", TOKEN_COUNT, new String[] {g.reduceSum("targets", weights, false)});
    g.nodeNamed("Div", LOSS, new String[] {total, g.node("Max", "denominator", TOKEN_COUNT, g.constScalar("one", 1f))});
    g.output(LOSS, floatType);
    g.output(TOKEN_COUNT, floatType);
    return prune(model.toBuilder().setGraph(graph).build());
  }

  /**
   * Refuses, before any weight is read, a model whose inputs or outputs the objective cannot use
   * (the heads check again when they are appended).
   */
  static void checkObjective(GraphProto graph, Objective objective) {
    GraphProto.Builder g = graph.toBuilder();
    if (objective instanceof Objective.CausalLm) {
      requireInput(g, "input_ids", "causal-LM");
      requireInput(g, "attention_mask", "causal-LM");
      requireOutput(g, "logits", "this objective needs a language model's logits, so choose embedding-classification for an encoder");
    } else if (objective instanceof Objective.PromptClassification) {
      requireInput(g, "input_ids", "prompt-classification");
      requireOutput(g, "logits", "prompt classification reads a language model's logits, so choose embedding-classification for an encoder");
    } else if (objective instanceof Objective.EmbeddingClassification) {
      requireInput(g, "input_ids", "embedding-classification");
      requireOutput(g, "last_hidden_state",
          "embedding classification pools an encoder's last_hidden_state, so choose causal-lm or prompt-classification for a decoder");
    }
  }

  /**
   * Width of {@code last_hidden_state}: its declared last dimension, else the token-embedding
   * table's width.
   */
  static int hiddenSize(GraphProto graph, TensorProto tokenEmbedding) {
    for (ValueInfoProto o : graph.getOutputList()) {
      if (o.getName().equals("last_hidden_state")) {
        List<OnnxMl.TensorShapeProto.Dimension> dims = o.getType().getTensorType().getShape().getDimList();
        if (!dims.isEmpty() && dims.get(dims.size() - 1).hasDimValue()) {
          return (int) dims.get(dims.size() - 1).getDimValue();
        }
      }
    }
    if (tokenEmbedding != null) {
      return (int) tokenEmbedding.getDims(1);
    }
    throw new ModelException("the model declares no width for last_hidden_state and has no token-embedding table to take it from: export it with a fixed hidden size");
  }

  /** The inputs of Hugging Face / optimum exports that the trainer computes inside the graph. */
  static final List<String> FED_INPUTS = List.of("input_ids", "attention_mask", "token_type_ids", "position_ids",
      "past_key_values.N.key", "past_key_values.N.value", "use_cache_branch");

  /**
   * Feeds the inputs of Hugging Face / optimum exports that a token batch does not carry, by
   * computing them inside the graph from {@code input_ids} and {@code attention_mask}, which stay
   * the only token inputs: {@code token_type_ids} zeros; {@code position_ids} per row 0..n-1 over
   * the real tokens ({@code max(cumsum(mask) - 1, 0)}, right for either padding side);
   * {@code past_key_values.N.key/value} an empty past {@code [batch, heads, 0, head_dim]} (dims
   * from the input's declaration, batch from {@code input_ids}); {@code use_cache_branch} false.
   * Computing them in the graph costs nothing per step in Java and no tensor is allocated per
   * forward. An input with an initializer of the same name has a default and is left alone.
   *
   * @throws ModelException for a required input the trainer does not know
   */
  static ModelProto feedStandardInputs(ModelProto model) {
    return feedStandardInputs(model, false);
  }

  /**
   * Like {@link #feedStandardInputs(ModelProto)}; with {@code keepPast}, for decoding with a KV
   * cache, {@code past_key_values.N.key/value} stay graph inputs, {@code attention_mask} covers the
   * past and the current tokens, {@code position_ids} are the last {@code sequence} columns of
   * {@code max(cumsum(mask) - 1, 0)} (so they continue from the past's length), and
   * {@code use_cache_branch} is true exactly when the mask is longer than {@code input_ids}.
   */
  static ModelProto feedStandardInputs(ModelProto model, boolean keepPast) {
    GraphProto source = model.getGraph();
    java.util.Set<String> defaults = new java.util.HashSet<>();
    source.getInitializerList().forEach(t -> defaults.add(t.getName()));
    GraphProto.Builder prologue = GraphProto.newBuilder();
    GraphBuilder g = new GraphBuilder(prologue, "pockettune_feed/", GraphBuilder.opsetOf(model));
    List<ValueInfoProto> kept = new ArrayList<>();
    String batchSymbol = null;
    for (ValueInfoProto in : source.getInputList()) {
      if (in.getName().equals("input_ids") && in.getType().getTensorType().getShape().getDimCount() > 0) {
        batchSymbol = in.getType().getTensorType().getShape().getDim(0).getDimParam();
      }
    }
    String batch = null;
    for (ValueInfoProto in : source.getInputList()) {
      String name = in.getName();
      int type = in.getType().getTensorType().getElemType();
      if (defaults.contains(name) || name.equals("input_ids") || name.equals("attention_mask")) {
        kept.add(in);
      } else if (name.equals("token_type_ids")) {
        g.nodeNamed("ConstantOfShape", name, new String[] {g.node("Shape", "ids_shape", "input_ids")}, "value", zero(type));
      } else if (name.equals("position_ids")) {
        if (source.getInputList().stream().noneMatch(i -> i.getName().equals("attention_mask"))) {
          throw new ModelException("the model has an input named 'position_ids' but none named 'attention_mask', from which positions are computed: export the model with an attention_mask input");
        }
        int floatType = DataType.FLOAT.getNumber();
        String mask = g.node("Cast", "mask_f", new String[] {"attention_mask"}, "to", (long) floatType);
        String cum = g.node("CumSum", "cumsum", mask, g.constScalarInt("axis", 1));
        String pos = g.node("Max", "clamped", g.node("Sub", "from0", cum, g.constScalar("one", 1f)), g.constScalar("zero", 0f));
        if (keepPast) {
          String seq = g.node("Slice", "seq", g.node("Shape", "ids_shape", "input_ids"), g.constInts("s1", 1), g.constInts("s2", 2));
          pos = g.node("Slice", "current", pos, g.node("Neg", "from_end", seq), g.constInts("end", Long.MAX_VALUE), g.constInts("axis1", 1));
        }
        g.nodeNamed("Cast", name, new String[] {pos}, "to", (long) type);
      } else if (keepPast && (name.startsWith("past_key_values.") || name.startsWith("past_key_values_"))) {
        kept.add(in);
      } else if (keepPast && name.equals("use_cache_branch")) {
        String seq = g.node("Slice", "seq", g.node("Shape", "ids_shape", "input_ids"), g.constInts("s1", 1), g.constInts("s2", 2));
        String total = g.node("Slice", "total", g.node("Shape", "mask_shape", "attention_mask"), g.constInts("s1", 1), g.constInts("s2", 2));
        g.nodeNamed("Greater", name, new String[] {total, seq});
      } else if (name.startsWith("past_key_values.") || name.startsWith("past_key_values_")) {
        if (batch == null) {
          batch = g.node("Slice", "batch", g.node("Shape", "shape", "input_ids"), g.constInts("s0", 0), g.constInts("s1", 1));
        }
        g.nodeNamed("ConstantOfShape", name, new String[] {emptyPastShape(g, in, batchSymbol, batch)}, "value", zero(type));
      } else if (name.equals("use_cache_branch")) {
        g.nodeNamed("Identity", name, new String[] {g.constant("no_cache", TensorProto.newBuilder()
            .setDataType(DataType.BOOL.getNumber()).addDims(1).addInt32Data(0).build())});
      } else {
        throw new ModelException("the model has an input named '" + name + "' that PocketTune does not know how to feed"
            + " (it feeds " + String.join(", ", FED_INPUTS) + "): export the model without it");
      }
    }
    if (prologue.getNodeCount() == 0) {
      return model;
    }
    GraphProto.Builder graph = source.toBuilder().clearInput().addAllInput(kept).clearNode();
    graph.addAllNode(prologue.getNodeList()).addAllNode(source.getNodeList());
    return model.toBuilder().setGraph(graph).build();
  }

  /** [batch, heads, 0, head_dim] from a past input's declared dims. */
  private static String emptyPastShape(GraphBuilder g, ValueInfoProto in, String batchSymbol, String batch) {
    List<OnnxMl.TensorShapeProto.Dimension> dims = in.getType().getTensorType().getShape().getDimList();
    if (dims.size() != 4) {
      throw new ModelException("past input '" + in.getName() + "' has rank " + dims.size()
          + " instead of [batch, heads, past_sequence, head_dim]: export the model with optimum's with-past signature");
    }
    String[] parts = new String[4];
    for (int i = 0; i < 4; i++) {
      OnnxMl.TensorShapeProto.Dimension d = dims.get(i);
      if (i == 2) {
        parts[i] = g.constInts("past_len", 0);
      } else if (d.hasDimValue()) {
        parts[i] = g.constInts("dim", d.getDimValue());
      } else if (i == 0 || d.getDimParam().equals(batchSymbol)) {
        parts[i] = batch;
      } else {
        throw new ModelException("past input '" + in.getName() + "' declares dimension " + i + " as '" + d.getDimParam()
            + "' without a number: export the model with fixed heads and head size");
      }
    }
    return g.node("Concat", "past_shape", parts, "axis", 0L);
  }

  /** A one-element zero of an ONNX element type, as ConstantOfShape's value. */
  private static TensorProto zero(int elemType) {
    int bytes = switch (DataType.forNumber(elemType)) {
      case DOUBLE, INT64, UINT64 -> 8;
      case FLOAT, INT32, UINT32 -> 4;
      case FLOAT16, BFLOAT16, INT16, UINT16 -> 2;
      case BOOL, INT8, UINT8 -> 1;
      default -> throw new ModelException("an input of element type " + typeName(elemType) + " cannot be fed with zeros: export the model with float or integer inputs");
    };
    return TensorProto.newBuilder().setDataType(elemType).addDims(1)
        .setRawData(com.google.protobuf.ByteString.copyFrom(new byte[bytes])).build();
  }

  /**
   * Removes the nodes no graph output depends on (e.g. {@code present.*} once the loss replaced
   * the outputs, or a pooler an objective does not read), so ONNX Runtime never computes them.
   * Names read inside subgraphs (If, Loop) count as read by their node.
   */
  static ModelProto prune(ModelProto model) {
    GraphProto graph = model.getGraph();
    java.util.Set<String> needed = new java.util.HashSet<>();
    graph.getOutputList().forEach(o -> needed.add(o.getName()));
    List<OnnxMl.NodeProto> nodes = graph.getNodeList();
    boolean[] keep = new boolean[nodes.size()];
    boolean changed = true;
    while (changed) {
      changed = false;
      for (int i = nodes.size() - 1; i >= 0; i--) {
        if (keep[i]) {
          continue;
        }
        OnnxMl.NodeProto n = nodes.get(i);
        if (n.getOutputList().stream().anyMatch(needed::contains)) {
          keep[i] = true;
          changed = true;
          needed.addAll(n.getInputList());
          n.getAttributeList().forEach(a -> subgraphNames(a, needed));
        }
      }
    }
    GraphProto.Builder out = graph.toBuilder().clearNode();
    for (int i = 0; i < nodes.size(); i++) {
      if (keep[i]) {
        out.addNode(nodes.get(i));
      }
    }
    return model.toBuilder().setGraph(out).build();
  }

  private static void subgraphNames(OnnxMl.AttributeProto a, java.util.Set<String> names) {
    List<GraphProto> graphs = new ArrayList<>(a.getGraphsList());
    if (a.hasG()) {
      graphs.add(a.getG());
    }
    for (GraphProto sub : graphs) {
      for (OnnxMl.NodeProto n : sub.getNodeList()) {
        names.addAll(n.getInputList());
        n.getAttributeList().forEach(x -> subgraphNames(x, names));
      }
    }
  }

  /**
   * The token-embedding table: the float (or quantized) initializer that a Gather reads with
   * {@code input_ids} as indices, following input_ids through Cast, Reshape, (Un)Squeeze,
   * Flatten and Identity, and the table through DequantizeLinear, Cast and Identity.
   *
   * @return the table, or null if input_ids reaches no Gather over an initializer
   */
  static TensorProto tokenEmbedding(GraphProto graph) {
    java.util.Map<String, TensorProto> inits = new java.util.HashMap<>();
    graph.getInitializerList().forEach(t -> inits.put(t.getName(), t));
    java.util.Map<String, OnnxMl.NodeProto> producers = new java.util.HashMap<>();
    for (OnnxMl.NodeProto n : graph.getNodeList()) {
      n.getOutputList().forEach(o -> producers.put(o, n));
    }
    java.util.Set<String> ids = new java.util.HashSet<>(List.of("input_ids"));
    java.util.Set<String> passThrough = java.util.Set.of("Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity");
    boolean grew = true;
    while (grew) {
      grew = false;
      for (OnnxMl.NodeProto n : graph.getNodeList()) {
        if (passThrough.contains(n.getOpType()) && n.getInputCount() > 0 && ids.contains(n.getInput(0))) {
          grew |= ids.add(n.getOutput(0));
        }
      }
    }
    for (OnnxMl.NodeProto n : graph.getNodeList()) {
      if (!n.getOpType().equals("Gather") || n.getInputCount() < 2 || !ids.contains(n.getInput(1))) {
        continue;
      }
      String table = n.getInput(0);
      for (int hops = 0; hops < 4 && !inits.containsKey(table); hops++) {
        OnnxMl.NodeProto p = producers.get(table);
        if (p == null || !java.util.Set.of("DequantizeLinear", "Cast", "Identity").contains(p.getOpType())) {
          break;
        }
        table = p.getInput(0);
      }
      TensorProto t = inits.get(table);
      if (t != null && t.getDimsCount() == 2) {
        return t;
      }
    }
    return null;
  }

  /**
   * Reads an initializer stored as ONNX external data: raw little-endian values in the file named
   * by its {@code location} entry (relative to the model's folder), from {@code offset}, for
   * {@code length} bytes. This is how models over protobuf's 2 GB limit keep their weights.
   */
  private static float[] externalFloats(TensorProto t, java.nio.file.Path dir, float[] values) {
    if (dir == null) {
      throw new ModelException("tensor " + t.getName() + " keeps its values in an external data file: load the model from its file path, not from bytes");
    }
    String location = null;
    long offset = 0;
    long length = -1;
    for (OnnxMl.StringStringEntryProto e : t.getExternalDataList()) {
      switch (e.getKey()) {
        case "location" -> location = e.getValue();
        case "offset" -> offset = Long.parseLong(e.getValue());
        case "length" -> length = Long.parseLong(e.getValue());
        default -> { }
      }
    }
    long expected = (long) values.length * Float.BYTES;
    if (location == null || (length >= 0 && length != expected)) {
      throw new ModelException("tensor " + t.getName() + " has an incomplete external data entry (location " + location + ", length " + length + "): the model file is damaged");
    }
    java.nio.file.Path file = dir.resolve(location).normalize();
    if (!file.startsWith(dir.normalize())) {
      throw new ModelException("tensor " + t.getName() + " points outside the model's folder (" + location + "): refusing to read it");
    }
    try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(file)) {
      ByteBuffer buf = ByteBuffer.allocate((int) expected).order(ByteOrder.LITTLE_ENDIAN);
      while (buf.hasRemaining()) {
        if (ch.read(buf, offset + buf.position()) < 0) {
          throw new ModelException("external data file " + file + " ends before tensor " + t.getName() + ": the weights file is truncated");
        }
      }
      buf.flip();
      buf.asFloatBuffer().get(values);
      return values;
    } catch (java.io.IOException e) {
      throw new ModelException("cannot read external data " + file + " for tensor " + t.getName() + " (" + e.getMessage() + "): put the weights file beside the model", e);
    }
  }

  private static void requireInput(GraphProto.Builder graph, String name, String objective) {
    for (ValueInfoProto in : graph.getInputList()) {
      if (in.getName().equals(name)) {
        return;
      }
    }
    throw new ModelException("the model has no input named '" + name + "', which the " + objective + " objective needs: export the model with it");
  }

  /** @return true when some initializer keeps its values in an external file */
  static boolean usesExternalData(ModelProto model) {
    for (TensorProto t : model.getGraph().getInitializerList()) {
      if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        return true;
      }
    }
    return false;
  }

  private static float[] floats(TensorProto t, java.nio.file.Path externalDataDir) {
    long count = 1;
    for (long d : t.getDimsList()) {
      count *= d;
    }
    if (count > Integer.MAX_VALUE) {
      throw new ModelException("tensor " + t.getName() + " has more than 2^31 elements: split it");
    }
    float[] values = new float[(int) count];
    if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      return externalFloats(t, externalDataDir, values);
    }
    if (!t.getRawData().isEmpty()) {
      ByteBuffer raw = t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
      if (raw.remaining() != values.length * Float.BYTES) {
        throw new ModelException("tensor " + t.getName() + " has " + raw.remaining() + " bytes of data for " + values.length + " floats: the model file is damaged");
      }
      raw.asFloatBuffer().get(values);
    } else if (t.getFloatDataCount() == values.length) {
      for (int i = 0; i < values.length; i++) {
        values[i] = t.getFloatData(i);
      }
    } else {
      throw new ModelException("tensor " + t.getName() + " holds " + t.getFloatDataCount() + " values for " + values.length + " elements: the model file is damaged");
    }
    return values;
  }
}
