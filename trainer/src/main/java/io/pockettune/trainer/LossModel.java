package io.pockettune.trainer;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import ai.djl.translate.TranslateException;
import ai.onnx.proto.OnnxMl.ModelProto;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;

/**
 * An ONNX model rewritten into a loss function of its trainable parameters, run through DJL's
 * ONNX Runtime engine. The session is created once; the trainable tensors are graph inputs backed
 * by the {@link ParameterSet}'s direct buffer (wrapped, never copied), so changing the buffer
 * changes the next forward pass. A forward returns just the scalar loss and the number of
 * target tokens it averaged over.
 *
 * <p>Not thread-safe: one forward at a time.
 */
public final class LossModel implements AutoCloseable {
  static {
    // DJL reports usage to a telemetry endpoint unless told not to; nothing may leave the device.
    if (System.getProperty("OPT_OUT_TRACKING") == null) {
      System.setProperty("OPT_OUT_TRACKING", "true");
    }
    if (System.getProperty("ai.djl.offline") == null) {
      System.setProperty("ai.djl.offline", "true");
    }
  }

  /** Loss of one batch. @param loss mean cross-entropy per target token @param tokens target tokens */
  public record Loss(float loss, float tokens) {}

  private final Model model;
  private final Predictor<NDList, NDList> predictor;
  private final NDManager manager;
  private final ParameterSet parameters;
  private final NDList parameterArrays;
  private final String baseModelHash;

  private LossModel(byte[] onnx, TrainableSelection selection, int threads) {
    this.baseModelHash = sha256(onnx);
    ModelRewriter.Lifted lifted = ModelRewriter.lift(ModelRewriter.parse(onnx), selection);
    ModelProto lossModel = ModelRewriter.appendCausalLmLoss(lifted.model());
    this.parameters = new ParameterSet(lifted.tensors());
    this.model = Model.newInstance("pockettune", Device.cpu(), "OnnxRuntime");
    try {
      model.load(
          new ByteArrayInputStream(lossModel.toByteArray()),
          Map.of("intraOpNumThreads", Integer.toString(threads), "interOpNumThreads", "1"));
    } catch (IOException | MalformedModelException | RuntimeException e) {
      model.close();
      Throwable root = e;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      throw new ModelException("ONNX Runtime cannot load the model (" + root.getMessage() + "): check that it is a valid ONNX file", e);
    }
    this.manager = model.getNDManager();
    this.parameterArrays = new NDList();
    for (ParameterSet.Tensor t : parameters.tensors()) {
      NDArray a = manager.create(parameters.view(t), new Shape(t.dims()), DataType.FLOAT32);
      a.setName(t.name());
      parameterArrays.add(a);
    }
    this.predictor = model.newPredictor(new NoopTranslator());
  }

  /**
   * Loads a model and prepares it for training with a causal-LM objective.
   *
   * @param onnx      the serialized ONNX model, with inputs input_ids, attention_mask and output logits
   * @param selection which float initializers train
   * @param threads   intra-op threads of ONNX Runtime
   */
  public static LossModel causalLm(byte[] onnx, TrainableSelection selection, int threads) {
    return new LossModel(onnx, selection, threads);
  }

  public ParameterSet parameters() {
    return parameters;
  }

  /** SHA-256 of the model file as given, before any rewrite. */
  public String baseModelHash() {
    return baseModelHash;
  }

  /** One forward pass at the current parameter values. */
  public Loss loss(TokenBatch batch) {
    Shape shape = new Shape(batch.size(), batch.length());
    try (NDArray ids = manager.create(longs(batch.ids()), shape, DataType.INT64);
        NDArray mask = manager.create(longs(batch.mask()), shape, DataType.INT64)) {
      ids.setName("input_ids");
      mask.setName("attention_mask");
      NDList inputs = new NDList(parameterArrays.size() + 2);
      inputs.add(ids);
      inputs.add(mask);
      inputs.addAll(parameterArrays);
      NDList out = predictor.predict(inputs);
      try {
        return new Loss(out.get(ModelRewriter.LOSS).getFloat(), out.get(ModelRewriter.TOKEN_COUNT).getFloat());
      } finally {
        out.close();
      }
    } catch (TranslateException e) {
      throw new IllegalStateException("forward pass failed: " + e.getMessage(), e);
    }
  }

  private static ByteBuffer longs(long[] values) {
    ByteBuffer b = ByteBuffer.allocateDirect(values.length * Long.BYTES).order(ByteOrder.nativeOrder());
    b.asLongBuffer().put(values);
    return b;
  }

  static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("SHA-256 is required of every JDK", e);
    }
  }

  @Override
  public void close() {
    predictor.close();
    parameterArrays.close();
    model.close();
  }
}
