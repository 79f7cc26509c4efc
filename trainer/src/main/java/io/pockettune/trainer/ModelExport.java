package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.StringStringEntryProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes a standalone ONNX model with trained values baked in: the model exactly as the user
 * brought it (same graph, inputs and outputs, e.g. {@code logits}; no loss head, nothing lifted to
 * an input), with each trained tensor's initializer holding the trained values. Plain ONNX Runtime,
 * or any ONNX consumer, loads it with no PocketTune code.
 *
 * <h2>Why from the base file, not from the loss model</h2>
 * The loss model is the base graph rewritten: trainable initializers lifted to inputs and a loss
 * head appended. Undoing those rewrites would be a second rewriter to keep in sync with the first;
 * writing values into the original file touches nothing but the initializers' data, so what users
 * export is what they brought, plus the training.
 *
 * <h2>Adapters</h2>
 * Full-parameter training maps each trained tensor to the initializer of the same name. LoRA trains
 * adapter pairs (A {@code [in, r]}, B {@code [r, out]}) beside a frozen weight W instead; {@link
 * Adapters#MERGE} writes {@code W + (alpha / r) A B} into W's initializer (transposed for a Gemm
 * with transB), so the file has the base graph and no trace of LoRA; {@link Adapters#KEEP} writes
 * the graph with its adapter nodes, as the trainer ran it minus the loss head, with A and B as
 * initializers. Keeping is exact (the same arithmetic as training); merging rounds once per
 * weight (the sum is accumulated in double and rounded to float), so its loss agrees with the
 * trainer's to float precision, not bit for bit.
 *
 * <p>Stateless and thread-safe; reads the parameters without changing them.
 */
public final class ModelExport {
  /** Metadata key under which the export records the base model's SHA-256. */
  public static final String BASE_MODEL_KEY = "pockettune.base_model_sha256";

  /** What to do with LoRA adapters. */
  public enum Adapters {
    /** Fold each adapter pair into its base weight: the base graph, with changed weights. */
    MERGE,
    /** Keep the adapters as initializers beside the frozen weights, with their MatMul nodes. */
    KEEP
  }

  private ModelExport() {}

  /**
   * Exports a model trained with {@code selection}: full-parameter selections as {@link
   * #withTrainedValues(byte[], ParameterSet, Map)}, LoRA by merging or keeping the adapters.
   */
  public static byte[] withTrainedValues(byte[] baseOnnx, ParameterSet params,
      TrainableSelection selection, Adapters adapters, Map<String, String> metadata) {
    return withTrainedValues(baseOnnx, params, selection, adapters, null, metadata);
  }

  /**
   * Exports a model trained with {@code selection} for {@code objective}. For an
   * {@link Objective.EmbeddingClassification}, the trained head ({@link LossModel#HEAD}) becomes an
   * initializer and the scoring the trainer ran is appended: the model keeps its outputs and gains
   * {@code label_scores} ({@code [batch, labels]}, {@code temperature * cos(pooled, head_j)}), so
   * plain ONNX Runtime classifies with it.
   *
   * @param objective the objective trained, or null for one without tensors of its own
   */
  public static byte[] withTrainedValues(byte[] baseOnnx, ParameterSet params,
      TrainableSelection selection, Adapters adapters, Objective objective, Map<String, String> metadata) {
    ParameterSet.Tensor head = params.tensors().stream().filter(t -> t.name().equals(LossModel.HEAD)).findFirst().orElse(null);
    if (head != null && !(objective instanceof Objective.EmbeddingClassification)) {
      throw new IllegalArgumentException("the parameters hold an embedding classifier's head: export with its objective");
    }
    ModelProto model;
    if (selection.kind() == TrainableSelection.Kind.SIDE) {
      ModelProto base = ModelRewriter.parse(baseOnnx);
      SideNetwork.Plan plan = SideNetwork.plan(base.getGraph(), objective == null ? new Objective.CausalLm() : objective, selection);
      model = SideNetwork.export(base, plan, params);
    } else if (selection.kind() != TrainableSelection.Kind.LORA) {
      model = fullParameters(ModelRewriter.parse(baseOnnx), params);
    } else {
      model = adapters == Adapters.KEEP
          ? keptAdapters(baseOnnx, params, selection)
          : mergedAdapters(baseOnnx, params, selection);
    }
    if (head != null) {
      model = withScores(model, params, head, (Objective.EmbeddingClassification) objective);
    }
    return withMetadata(model, baseOnnx, metadata);
  }

  /** The trained head as an initializer, and {@code label_scores} computed from it as an output. */
  private static ModelProto withScores(ModelProto model, ParameterSet params, ParameterSet.Tensor head,
      Objective.EmbeddingClassification objective) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    TensorProto.Builder init = TensorProto.newBuilder().setName(head.name())
        .setDataType(DataType.FLOAT.getNumber()).setRawData(new FloatBufferView(params).littleEndian(head));
    for (long d : head.dims()) {
      init.addDims(d);
    }
    graph.addInitializer(init);
    GraphBuilder g = new GraphBuilder(graph, "pockettune_emb/", GraphBuilder.opsetOf(model));
    ModelRewriter.appendEmbeddingScores(g, objective.pooling(), objective.temperature(), head.name());
    g.output(ModelRewriter.LABEL_SCORES, DataType.FLOAT.getNumber(), "batch", head.dims()[0]);
    return model.toBuilder().setGraph(graph).build();
  }

  /** Trained tensors except the objective's own (the head), by name. */
  private static Map<String, ParameterSet.Tensor> baseTensors(ParameterSet params) {
    Map<String, ParameterSet.Tensor> trained = new HashMap<>();
    params.tensors().stream().filter(t -> !t.name().equals(LossModel.HEAD)).forEach(t -> trained.put(t.name(), t));
    return trained;
  }

  /** The graph the trainer ran (without the loss head), adapter inputs turned into initializers. */
  private static ModelProto keptAdapters(byte[] baseOnnx, ParameterSet params, TrainableSelection selection) {
    ModelProto injected = ModelRewriter.injectLora(ModelRewriter.parse(baseOnnx), selection).model();
    GraphProto.Builder graph = injected.getGraph().toBuilder();
    FloatBufferView values = new FloatBufferView(params);
    Map<String, ParameterSet.Tensor> trained = baseTensors(params);
    for (int i = graph.getInputCount() - 1; i >= 0; i--) {
      if (trained.containsKey(graph.getInput(i).getName())) {
        graph.removeInput(i);
      }
    }
    for (ParameterSet.Tensor t : trained.values().stream().sorted(java.util.Comparator.comparingInt(ParameterSet.Tensor::offset)).toList()) {
      TensorProto.Builder init = TensorProto.newBuilder().setName(t.name())
          .setDataType(DataType.FLOAT.getNumber()).setRawData(values.littleEndian(t));
      for (long d : t.dims()) {
        init.addDims(d);
      }
      graph.addInitializer(init);
    }
    return injected.toBuilder().setGraph(graph).build();
  }

  /** The base graph with {@code W += (alpha / r) A B} for every adapted weight. */
  private static ModelProto mergedAdapters(byte[] baseOnnx, ParameterSet params, TrainableSelection selection) {
    ModelProto base = ModelRewriter.parse(baseOnnx);
    GraphProto.Builder graph = base.getGraph().toBuilder();
    Map<String, ParameterSet.Tensor> trained = baseTensors(params);
    Map<String, Boolean> transposed = new HashMap<>();
    for (ai.onnx.proto.OnnxMl.NodeProto node : graph.getNodeList()) {
      boolean gemm = node.getOpType().equals("Gemm");
      if ((gemm || node.getOpType().equals("MatMul")) && node.getInputCount() >= 2) {
        boolean transB = gemm && node.getAttributeList().stream()
            .anyMatch(a -> a.getName().equals("transB") && a.getI() != 0);
        transposed.putIfAbsent(node.getInput(1), transB);
      }
    }
    float scale = selection.alpha() / selection.rank();
    float[] all = params.toArray();
    int merged = 0;
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      TensorProto w = graph.getInitializer(i);
      ParameterSet.Tensor a = trained.get(w.getName() + ".lora_A");
      ParameterSet.Tensor b = trained.get(w.getName() + ".lora_B");
      if (a == null || b == null) {
        continue;
      }
      int in = (int) a.dims()[0];
      int r = (int) a.dims()[1];
      int out = (int) b.dims()[1];
      boolean transB = transposed.getOrDefault(w.getName(), false);
      float[] weights = values(w);
      if (weights.length != in * out) {
        throw new ModelException("LoRA adapters of " + w.getName() + " are " + in + "x" + r + " and " + r + "x"
            + out + " but the weight has " + weights.length + " values: export with the base model that was trained");
      }
      for (int row = 0; row < in; row++) {
        for (int col = 0; col < out; col++) {
          double sum = 0;
          for (int k = 0; k < r; k++) {
            sum += (double) all[a.offset() + row * r + k] * all[b.offset() + k * out + col];
          }
          int index = transB ? col * in + row : row * out + col;
          weights[index] = (float) (weights[index] + scale * sum);
        }
      }
      ByteBuffer le = ByteBuffer.allocate(weights.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
      le.asFloatBuffer().put(weights);
      graph.setInitializer(i, w.toBuilder().clearFloatData().clearExternalData()
          .setDataLocation(TensorProto.DataLocation.DEFAULT).setRawData(ByteString.copyFrom(le.array())));
      merged += 2;
    }
    if (merged != trained.size()) {
      throw new ModelException("the base model lacks weights for " + (trained.size() - merged) + " of the "
          + trained.size() + " LoRA adapters: export with the base model that was trained");
    }
    return base.toBuilder().setGraph(graph).build();
  }

  /**
   * @param baseOnnx the model file the {@link LossModel} was built from, as given
   * @param params   the trained values; each tensor must name a float initializer of the base model
   *                 with the same shape
   * @param metadata entries added to the model's metadata (replacing entries of the same key), e.g.
   *                 the step and checkpoint exported; the base model's hash is always added
   * @return the serialized standalone model
   * @throws ModelException if {@code baseOnnx} is not the model the parameters came from
   */
  public static byte[] withTrainedValues(
      byte[] baseOnnx, ParameterSet params, Map<String, String> metadata) {
    if (params.tensors().stream().anyMatch(t -> t.name().equals(LossModel.HEAD))) {
      throw new IllegalArgumentException("the parameters hold an embedding classifier's head: export with its objective");
    }
    return withMetadata(fullParameters(ModelRewriter.parse(baseOnnx), params), baseOnnx, metadata);
  }

  private static ModelProto fullParameters(ModelProto base, ParameterSet params) {
    Map<String, ParameterSet.Tensor> trained = baseTensors(params);
    FloatBufferView values = new FloatBufferView(params);
    GraphProto.Builder graph = base.getGraph().toBuilder();
    int written = 0;
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      TensorProto init = graph.getInitializer(i);
      ParameterSet.Tensor t = trained.get(init.getName());
      if (t == null) {
        continue;
      }
      long[] dims = init.getDimsList().stream().mapToLong(Long::longValue).toArray();
      if (init.getDataType() != DataType.FLOAT.getNumber() || !Arrays.equals(dims, t.dims())) {
        throw new ModelException("tensor " + t.name() + " of the base model is "
            + DataType.forNumber(init.getDataType()) + Arrays.toString(dims) + " but was trained as"
            + " FLOAT" + Arrays.toString(t.dims()) + ": export with the base model that was trained");
      }
      graph.setInitializer(i, init.toBuilder()
          .clearFloatData()
          .clearExternalData()
          .setDataLocation(TensorProto.DataLocation.DEFAULT)
          .setRawData(values.littleEndian(t)));
      written++;
    }
    if (written != trained.size()) {
      throw new ModelException("the base model lacks " + (trained.size() - written) + " of the "
          + trained.size() + " trained tensors: export with the base model that was trained");
    }
    return base.toBuilder().setGraph(graph).build();
  }

  private static byte[] withMetadata(ModelProto model, byte[] baseOnnx, Map<String, String> metadata) {
    Map<String, String> props = new TreeMap<>();
    for (StringStringEntryProto p : model.getMetadataPropsList()) {
      props.put(p.getKey(), p.getValue());
    }
    props.putAll(metadata);
    props.put(BASE_MODEL_KEY, LossModel.sha256(baseOnnx));
    ModelProto.Builder out = model.toBuilder().clearMetadataProps();
    props.forEach((k, v) ->
        out.addMetadataProps(StringStringEntryProto.newBuilder().setKey(k).setValue(v)));
    return out.build().toByteArray();
  }

  /** The values of a float initializer stored in the file (raw or repeated floats). */
  private static float[] values(TensorProto t) {
    if (t.getDataType() != DataType.FLOAT.getNumber() || t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
      throw new ModelException("LoRA weight " + t.getName() + " is not an in-file float32 tensor: merging needs"
          + " one; export with Adapters.KEEP instead");
    }
    if (!t.getRawData().isEmpty()) {
      float[] v = new float[t.getRawData().size() / Float.BYTES];
      t.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
      return v;
    }
    float[] v = new float[t.getFloatDataCount()];
    for (int i = 0; i < v.length; i++) {
      v[i] = t.getFloatData(i);
    }
    return v;
  }

  /** Reads tensors out of the parameter buffer as ONNX raw data (little-endian). */
  private record FloatBufferView(ParameterSet params) {
    ByteString littleEndian(ParameterSet.Tensor t) {
      ByteBuffer le = ByteBuffer.allocate(t.count() * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
      le.asFloatBuffer().put(params.floats().slice(t.offset(), t.count()));
      return ByteString.copyFrom(le.array());
    }
  }

  /** @return the names of the base model's outputs, unchanged by export (for messages and tests) */
  public static List<String> outputs(byte[] onnx) {
    return ModelRewriter.parse(onnx).getGraph().getOutputList().stream()
        .map(o -> o.getName()).toList();
  }
}
