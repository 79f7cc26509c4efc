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
 * Full-parameter training maps each trained tensor to the initializer of the same name. LoRA will
 * train adapter pairs (A, B) beside a frozen base weight W instead; its export merges them here, as
 * {@code W + (alpha / r) A B} written into W's initializer, or keeps them as separate initializers
 * and MatMul/Add nodes (the rewritten graph's adapter nodes, minus the loss head). Both fit this
 * class's shape: a pass over the trainable tensors that decides, per tensor, which initializers it
 * writes.
 *
 * <p>Stateless and thread-safe; reads the parameters without changing them.
 */
public final class ModelExport {
  /** Metadata key under which the export records the base model's SHA-256. */
  public static final String BASE_MODEL_KEY = "pockettune.base_model_sha256";

  private ModelExport() {}

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
    ModelProto base = ModelRewriter.parse(baseOnnx);
    Map<String, ParameterSet.Tensor> trained = new HashMap<>();
    for (ParameterSet.Tensor t : params.tensors()) {
      trained.put(t.name(), t);
    }
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
    Map<String, String> props = new TreeMap<>();
    for (StringStringEntryProto p : base.getMetadataPropsList()) {
      props.put(p.getKey(), p.getValue());
    }
    props.putAll(metadata);
    props.put(BASE_MODEL_KEY, LossModel.sha256(baseOnnx));
    ModelProto.Builder out = base.toBuilder().setGraph(graph).clearMetadataProps();
    props.forEach((k, v) ->
        out.addMetadataProps(StringStringEntryProto.newBuilder().setKey(k).setValue(v)));
    return out.build().toByteArray();
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
