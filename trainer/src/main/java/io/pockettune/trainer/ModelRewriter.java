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
 *   <li><b>Loss head</b>: nodes that reduce the model's {@code logits} to a scalar loss are
 *       appended, so a forward pass returns one float instead of a {@code [B, T, V]} tensor.
 * </ol>
 */
final class ModelRewriter {
  static final String LOSS = "loss";
  static final String TOKEN_COUNT = "token_count";
  static final String LABEL_SCORES = "label_scores";
  static final String ANSWER_POSITION = "answer_position";
  static final String LABEL = "label";

  private ModelRewriter() {}

  /** A weight taken out of the graph: its name, shape and initial values. */
  record LiftedTensor(String name, long[] dims, float[] values) {}

  record Lifted(ModelProto model, List<LiftedTensor> tensors) {}

  static ModelProto parse(byte[] bytes) {
    ModelProto model;
    try {
      model = ModelProto.parseFrom(bytes);
    } catch (com.google.protobuf.InvalidProtocolBufferException e) {
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
    List<TensorProto> kept = new ArrayList<>();
    List<LiftedTensor> lifted = new ArrayList<>();
    for (TensorProto t : graph.getInitializerList()) {
      boolean rankOk = selection.kind() == TrainableSelection.Kind.RANK_ONE ? t.getDimsCount() == 1 : t.getDimsCount() > 0;
      if (!selection.selects(t.getName()) || !rankOk) {
        kept.add(t);
        continue;
      }
      if (t.getDataType() != DataType.FLOAT.getNumber()) {
        if (selection.kind() == TrainableSelection.Kind.RANK_ONE || selection.pattern().pattern().equals(".*")) {
          kept.add(t);
          continue;
        }
        throw new ModelException(
            "trainable tensor " + t.getName() + " is " + DataType.forNumber(t.getDataType())
                + ", not float32: trainable state must be float32, so choose float tensors or convert the model");
      }
      long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
      lifted.add(new LiftedTensor(t.getName(), dims, floats(t, externalDataDir)));
      Object[] shape = new Object[dims.length];
      for (int i = 0; i < dims.length; i++) {
        shape[i] = dims[i];
      }
      graph.addInput(GraphBuilder.valueInfo(t.getName(), DataType.FLOAT.getNumber(), shape));
    }
    if (lifted.isEmpty()) {
      throw new ModelException(
          "no float initializer of the model matches the trainable choice (" + selection.description()
              + "): check the name pattern against the model's weights");
    }
    graph.clearInitializer().addAllInitializer(kept);
    return new Lifted(model.toBuilder().setGraph(graph).build(), lifted);
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
    java.util.Map<String, TensorProto> weights = new java.util.HashMap<>();
    for (TensorProto t : graph.getInitializerList()) {
      weights.put(t.getName(), t);
    }
    List<LiftedTensor> adapters = new ArrayList<>();
    List<OnnxMl.NodeProto> nodes = new ArrayList<>(graph.getNodeList());
    graph.clearNode();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_lora/");
    float scale = selection.alpha() / selection.rank();
    String scaleConst = null;
    for (OnnxMl.NodeProto node : nodes) {
      boolean gemm = node.getOpType().equals("Gemm");
      boolean matmul = node.getOpType().equals("MatMul");
      TensorProto w = (gemm || matmul) && node.getInputCount() >= 2 ? weights.get(node.getInput(1)) : null;
      if (w == null || w.getDimsCount() != 2 || !selection.selects(w.getName())
          || w.getDataType() != DataType.FLOAT.getNumber()) {
        graph.addNode(node);
        continue;
      }
      if (gemm && (intAttribute(node, "transA", 0) != 0 || floatAttribute(node, "alpha", 1f) != 1f)) {
        throw new ModelException("Gemm " + node.getName() + " uses transA or alpha != 1, which LoRA injection does not support: target other weights");
      }
      boolean transB = gemm && intAttribute(node, "transB", 0) != 0;
      long in = transB ? w.getDims(1) : w.getDims(0);
      long out = transB ? w.getDims(0) : w.getDims(1);
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
    if (adapters.isEmpty()) {
      throw new ModelException("no MatMul or Gemm weight of the model matches the LoRA targets ("
          + selection.pattern().pattern() + "): check the pattern against the model's weight names");
    }
    return new Lifted(model.toBuilder().setGraph(graph).build(), adapters);
  }

  private static float[] loraA(String weightName, int in, int r) {
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
    requireInput(graph, "input_ids");
    requireLogits(graph);
    graph.clearOutput();
    int int64 = DataType.INT64.getNumber();
    int floatType = DataType.FLOAT.getNumber();
    graph.addInput(GraphBuilder.valueInfo(ANSWER_POSITION, int64, "batch"));
    graph.addInput(GraphBuilder.valueInfo(LABEL, int64, "batch"));
    GraphBuilder g = new GraphBuilder(graph, "pockettune_cls/");
    String labelLogits = g.node("Gather", "label_logits", new String[] {"logits", g.constInts("label_tokens", labelTokens)}, "axis", 2L);
    String k = g.constInts("k", labelTokens.length);
    String batch = g.node("Slice", "batch", g.node("Shape", "shape", "input_ids"), g.constInts("s0", 0), g.constInts("s1", 1));
    String indexShape = g.node("Concat", "index_shape", new String[] {batch, g.constInts("one", 1), k}, "axis", 0L);
    String position = g.node("Reshape", "position", ANSWER_POSITION, g.constInts("pos_shape", -1, 1, 1));
    String index = g.node("Expand", "index", position, indexShape);
    String atAnswer = g.node("GatherElements", "at_answer", new String[] {labelLogits, index}, "axis", 1L);
    g.nodeNamed("Squeeze", LABEL_SCORES, new String[] {atAnswer, g.constInts("axis1", 1)});
    String logProbs = g.node("LogSoftmax", "log_probs", new String[] {LABEL_SCORES}, "axis", 1L);
    String picked = g.node("GatherElements", "picked", new String[] {logProbs, g.node("Unsqueeze", "label_2d", LABEL, g.constInts("axis1b", 1))}, "axis", 1L);
    g.nodeNamed("ReduceMean", LOSS, new String[] {g.node("Neg", "nll", picked)}, "keepdims", 0L);
    g.nodeNamed("Cast", TOKEN_COUNT, new String[] {g.node("Squeeze", "rows", batch, g.constInts("axis0", 0))}, "to", (long) floatType);
    g.output(LOSS, floatType);
    g.output(TOKEN_COUNT, floatType);
    g.output(LABEL_SCORES, floatType, "batch", (long) labelTokens.length);
    return model.toBuilder().setGraph(graph).build();
  }

  /** Uses a scalar the model already outputs as the loss; {@link #TOKEN_COUNT} is 1 per batch. */
  static ModelProto useScalarLoss(ModelProto model, String lossOutput) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    boolean found = graph.getOutputList().stream().anyMatch(o -> o.getName().equals(lossOutput));
    if (!found) {
      throw new ModelException("the model has no output named '" + lossOutput + "': name the output that holds its scalar loss");
    }
    graph.clearOutput();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_scalar/");
    int floatType = DataType.FLOAT.getNumber();
    if (!lossOutput.equals(LOSS)) {
      g.nodeNamed("Identity", LOSS, new String[] {lossOutput});
    }
    g.nodeNamed("Identity", TOKEN_COUNT, new String[] {g.constScalar("one", 1f)});
    g.output(LOSS, floatType);
    g.output(TOKEN_COUNT, floatType);
    return model.toBuilder().setGraph(graph).build();
  }

  private static void requireLogits(GraphProto.Builder graph) {
    boolean hasLogits = graph.getOutputList().stream().anyMatch(o -> o.getName().equals("logits"));
    if (!hasLogits) {
      throw new ModelException("the model has no output named 'logits': this objective needs a language model's logits");
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
    requireInput(graph, "input_ids");
    requireInput(graph, "attention_mask");
    requireLogits(graph);
    graph.clearOutput();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_loss/");
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
    String axis2 = g.constInts("axis2", 2);
    String picked = g.node("GatherElements", "picked", new String[] {logProbs, g.node("Unsqueeze", "targets_3d", targets, axis2)}, "axis", 2L);
    String nll = g.node("Neg", "nll", g.node("Squeeze", "picked_2d", picked, axis2));
    String total = g.node("ReduceSum", "nll_sum", new String[] {g.node("Mul", "nll_w", nll, weights)}, "keepdims", 0L);
    g.nodeNamed("ReduceSum", TOKEN_COUNT, new String[] {weights}, "keepdims", 0L);
    g.nodeNamed("Div", LOSS, new String[] {total, g.node("Max", "denominator", TOKEN_COUNT, g.constScalar("one", 1f))});
    g.output(LOSS, floatType);
    g.output(TOKEN_COUNT, floatType);
    return model.toBuilder().setGraph(graph).build();
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

  private static void requireInput(GraphProto.Builder graph, String name) {
    for (ValueInfoProto in : graph.getInputList()) {
      if (in.getName().equals(name)) {
        return;
      }
    }
    throw new ModelException("the model has no input named '" + name + "', which the causal-LM objective needs: export the model with it");
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
