package io.pockettune.trainer;

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
    GraphProto.Builder graph = model.getGraph().toBuilder();
    List<TensorProto> kept = new ArrayList<>();
    List<LiftedTensor> lifted = new ArrayList<>();
    for (TensorProto t : graph.getInitializerList()) {
      if (!selection.selects(t.getName()) || t.getDimsCount() == 0) {
        kept.add(t);
        continue;
      }
      if (t.getDataType() != DataType.FLOAT.getNumber()) {
        if (selection.description().equals("all")) {
          kept.add(t);
          continue;
        }
        throw new ModelException(
            "trainable tensor " + t.getName() + " is " + DataType.forNumber(t.getDataType())
                + ", not float32: trainable state must be float32, so choose float tensors or convert the model");
      }
      long[] dims = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
      lifted.add(new LiftedTensor(t.getName(), dims, floats(t)));
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
   * Appends causal language-modelling loss: mean over real target tokens of the cross-entropy of
   * the logits at position t against the token at t+1; positions whose target is padding are
   * ignored. Outputs become {@link #LOSS} (scalar mean) and {@link #TOKEN_COUNT} (scalar, the number
   * of targets averaged over, so callers can pool losses across batches exactly).
   */
  static ModelProto appendCausalLmLoss(ModelProto model) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    requireInput(graph, "input_ids");
    requireInput(graph, "attention_mask");
    boolean hasLogits = graph.getOutputList().stream().anyMatch(o -> o.getName().equals("logits"));
    if (!hasLogits) {
      throw new ModelException("the model has no output named 'logits': a causal-LM objective needs a language model's logits");
    }
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

  private static void requireInput(GraphProto.Builder graph, String name) {
    for (ValueInfoProto in : graph.getInputList()) {
      if (in.getName().equals(name)) {
        return;
      }
    }
    throw new ModelException("the model has no input named '" + name + "', which the causal-LM objective needs: export the model with it");
  }

  private static float[] floats(TensorProto t) {
    long count = 1;
    for (long d : t.getDimsList()) {
      count *= d;
    }
    if (count > Integer.MAX_VALUE) {
      throw new ModelException("tensor " + t.getName() + " has more than 2^31 elements: split it");
    }
    float[] values = new float[(int) count];
    if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      throw new ModelException("tensor " + t.getName() + " uses ONNX external data, which this version cannot load yet");
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
