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

  private final boolean classifier;
  private long forwards;
  private long forwardNanos;

  private LossModel(byte[] onnx, java.nio.file.Path file, TrainableSelection selection, int threads,
      java.util.function.UnaryOperator<ModelProto> objective, boolean classifier) {
    this.baseModelHash = sha256(onnx);
    this.classifier = classifier;
    ModelProto parsed = ModelRewriter.parse(onnx);
    java.nio.file.Path dir = file == null ? null : file.toAbsolutePath().getParent();
    ModelRewriter.Lifted lifted = ModelRewriter.lift(parsed, selection, dir);
    ModelProto lossModel = objective.apply(lifted.model());
    this.parameters = new ParameterSet(lifted.tensors());
    this.model = Model.newInstance("pockettune", Device.cpu(), "OnnxRuntime");
    Map<String, String> options = Map.of("intraOpNumThreads", Integer.toString(threads), "interOpNumThreads", "1");
    try {
      if (dir != null && ModelRewriter.usesExternalData(lossModel)) {
        // Frozen weights stay in their external file; ONNX Runtime resolves them relative to the
        // model file, so the rewritten graph is written beside the original.
        java.nio.file.Path rewritten = dir.resolve(file.getFileName() + ".pockettune-loss.onnx");
        java.nio.file.Files.write(rewritten, lossModel.toByteArray());
        model.load(rewritten, rewritten.getFileName().toString(), options);
      } else {
        model.load(new ByteArrayInputStream(lossModel.toByteArray()), options);
      }
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
    return new LossModel(onnx, null, selection, threads, ModelRewriter::appendCausalLmLoss, false);
  }

  /**
   * Like {@link #causalLm(byte[], TrainableSelection, int)} for a model file, which may keep its
   * weights in ONNX external data files beside it (models over 2 GB must).
   */
  public static LossModel causalLm(java.nio.file.Path onnxFile, TrainableSelection selection, int threads) {
    return new LossModel(readModel(onnxFile), onnxFile, selection, threads, ModelRewriter::appendCausalLmLoss, false);
  }

  private static byte[] readModel(java.nio.file.Path file) {
    try {
      return java.nio.file.Files.readAllBytes(file);
    } catch (IOException e) {
      throw new ModelException("cannot read the model file " + file + " (" + e.getMessage() + "): check the path", e);
    }
  }

  /**
   * Loads a language model and prepares it for prompt classification (MeZO's formulation):
   * cross-entropy over the label words' logits at each prompt's answer position. Batches must be
   * {@link TokenBatch#classification classification batches}.
   *
   * @param labelTokens the token id of each label word (its first token), in label order
   */
  public static LossModel promptClassifier(byte[] onnx, TrainableSelection selection, long[] labelTokens, int threads) {
    if (labelTokens.length < 2) {
      throw new IllegalArgumentException("a classifier needs at least two label words");
    }
    long[] labels = labelTokens.clone();
    return new LossModel(onnx, null, selection, threads, m -> ModelRewriter.appendClassificationLoss(m, labels), true);
  }

  /**
   * Loads a model that computes its own scalar loss (output {@code lossOutput}); batches are
   * {@link TensorBatch}es naming the model's inputs.
   */
  public static LossModel scalarLoss(byte[] onnx, TrainableSelection selection, String lossOutput, int threads) {
    return new LossModel(onnx, null, selection, threads, m -> ModelRewriter.useScalarLoss(m, lossOutput), false);
  }

  public ParameterSet parameters() {
    return parameters;
  }

  /** @return forward passes run so far (for latency metrics; read on the training thread) */
  public long forwards() {
    return forwards;
  }

  /** @return total time spent in ONNX Runtime's forward passes so far, in nanoseconds */
  public long forwardNanos() {
    return forwardNanos;
  }

  /** SHA-256 of the model file as given, before any rewrite. */
  public String baseModelHash() {
    return baseModelHash;
  }

  /** One forward pass at the current parameter values. */
  public Loss loss(Batch batch) {
    NDList out = forward(batch);
    try {
      return new Loss(out.get(ModelRewriter.LOSS).getFloat(), out.get(ModelRewriter.TOKEN_COUNT).getFloat());
    } finally {
      out.close();
    }
  }

  /**
   * @return per row, the index of the label word with the highest score (prompt classifiers only)
   */
  public int[] predict(TokenBatch batch) {
    if (!classifier) {
      throw new IllegalStateException("predict needs a prompt classifier");
    }
    NDList out = forward(batch);
    try {
      float[] scores = out.get(ModelRewriter.LABEL_SCORES).toFloatArray();
      int k = scores.length / batch.size();
      int[] best = new int[batch.size()];
      for (int r = 0; r < best.length; r++) {
        for (int j = 1; j < k; j++) {
          if (scores[r * k + j] > scores[r * k + best[r]]) {
            best[r] = j;
          }
        }
      }
      return best;
    } finally {
      out.close();
    }
  }

  private NDList forward(Batch batch) {
    NDList inputs = new NDList(parameterArrays.size() + 4);
    NDList owned = new NDList();
    try {
      if (batch instanceof TokenBatch t) {
        Shape shape = new Shape(t.size(), t.length());
        owned.add(named(manager.create(longs(t.ids()), shape, DataType.INT64), "input_ids"));
        owned.add(named(manager.create(longs(t.mask()), shape, DataType.INT64), "attention_mask"));
        if (classifier) {
          if (t.labels() == null) {
            throw new IllegalArgumentException("a prompt classifier needs answer positions and labels in the batch");
          }
          Shape rows = new Shape(t.size());
          owned.add(named(manager.create(longs(t.answerPositions()), rows, DataType.INT64), ModelRewriter.ANSWER_POSITION));
          owned.add(named(manager.create(longs(t.labels()), rows, DataType.INT64), ModelRewriter.LABEL));
        }
      } else if (batch instanceof TensorBatch tb) {
        for (TensorBatch.Tensor x : tb.tensors()) {
          NDArray a = x.floats() != null
              ? manager.create(floats(x.floats()), new Shape(x.shape()), DataType.FLOAT32)
              : manager.create(longs(x.longs()), new Shape(x.shape()), DataType.INT64);
          owned.add(named(a, x.name()));
        }
      }
      inputs.addAll(owned);
      inputs.addAll(parameterArrays);
      long t0 = System.nanoTime();
      NDList out = predictor.predict(inputs);
      forwardNanos += System.nanoTime() - t0;
      forwards++;
      return out;
    } catch (TranslateException e) {
      throw new IllegalStateException("forward pass failed: " + e.getMessage(), e);
    } finally {
      owned.close();
    }
  }

  private static NDArray named(NDArray a, String name) {
    a.setName(name);
    return a;
  }

  private static ByteBuffer floats(float[] values) {
    ByteBuffer b = ByteBuffer.allocateDirect(values.length * Float.BYTES).order(ByteOrder.nativeOrder());
    b.asFloatBuffer().put(values);
    return b;
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
