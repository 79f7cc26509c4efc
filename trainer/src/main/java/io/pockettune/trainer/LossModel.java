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
 * target tokens it averaged over (and, for classification, the label scores).
 *
 * <p>What the loss is comes from one {@link Objective}. The user's export is fed as it is: the
 * Java side passes only {@code input_ids} and {@code attention_mask} (plus labels and answer
 * positions for classification); the other inputs of Hugging Face / optimum exports are computed
 * inside the rewritten graph (see {@link ModelRewriter#feedStandardInputs}).
 *
 * <p>An embedding classifier's head is the last tensor of the {@link ParameterSet}. Its initial
 * values (the label prompts' pooled embeddings) are computed at load by this very session, one
 * prompt per forward, so they are the same bits on every load with any thread count: replaying
 * step records from them reproduces the trained head.
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
    // With another DJL engine on the class path (bench has PyTorch for its backprop baseline), ONNX
    // Runtime's engine loads it as a "hybrid" helper: libtorch, about 50 MB resident, for nothing
    // the trainer uses. A device has no other engine; this keeps every process like a device.
    if (System.getProperty("ai.djl.onnx.disable_alternative") == null) {
      System.setProperty("ai.djl.onnx.disable_alternative", "true");
    }
  }

  /** Loss of one batch. @param loss mean cross-entropy per target token @param tokens target tokens */
  public record Loss(float loss, float tokens) {}

  /**
   * Name of the embedding classifier's head, {@code [labels, hidden]}: the last tensor of the
   * {@link ParameterSet} of an {@link Objective.EmbeddingClassification} model.
   */
  public static final String HEAD = "pockettune.head";

  private final Model model;
  private final Predictor<NDList, NDList> predictor;
  private final NDManager manager;
  private final ParameterSet parameters;
  private final NDList parameterArrays;
  private final String baseModelHash;
  /** The backbone session and its cache when a side network trains, else null. */
  private final Side side;
  private ByteBuffer scratch;
  private NDList scratchArrays;

  private final Objective objective;
  private final boolean feedsMask;
  private final int embeddingRows;
  private long forwards;
  private long forwardNanos;

  private LossModel(byte[] onnx, java.nio.file.Path file, Objective objective, TrainableSelection selection, int threads) {
    this.baseModelHash = sha256(onnx);
    this.objective = objective;
    ModelProto parsed = ModelRewriter.parse(onnx);
    ModelRewriter.checkObjective(parsed.getGraph(), objective);
    ai.onnx.proto.OnnxMl.TensorProto table = ModelRewriter.tokenEmbedding(parsed.getGraph());
    this.embeddingRows = table == null ? -1 : (int) table.getDims(0);
    boolean tokens = !(objective instanceof Objective.ScalarLoss);
    ModelProto fed = tokens ? ModelRewriter.feedStandardInputs(parsed) : parsed;
    this.feedsMask = fed.getGraph().getInputList().stream().anyMatch(i -> i.getName().equals("attention_mask"));
    if (selection.kind() == TrainableSelection.Kind.SIDE) {
      SideNetwork.Plan plan = SideNetwork.plan(fed.getGraph(), objective, selection);
      java.util.List<ModelRewriter.LiftedTensor> trainable = new java.util.ArrayList<>(SideNetwork.initialTensors(plan));
      if (objective instanceof Objective.EmbeddingClassification e) {
        trainable.add(new ModelRewriter.LiftedTensor(HEAD, new long[] {e.labelCount(), plan.width()}, new float[e.labelCount() * plan.width()]));
      }
      this.parameters = new ParameterSet(trainable);
      ModelProto backbone = SideNetwork.backbone(fed, plan);
      ModelProto sideGraph = SideNetwork.trainingGraph(plan, objective, parameters.tensors(), parameters.size());
      Model backboneModel = loadSession(backbone, file, ".pockettune-backbone.onnx", threads, false);
      try {
        this.model = loadSession(sideGraph, null, "", threads, false);
      } catch (RuntimeException e) {
        backboneModel.close();
        throw e;
      }
      this.side = new Side(plan, backboneModel, inputNames(backbone), inputNames(sideGraph));
      this.manager = model.getNDManager();
      ai.djl.ndarray.NDArray theta = manager.create(parameters.allBytes(), new Shape(1, parameters.size()), DataType.FLOAT32);
      theta.setName(SideNetwork.THETA);
      this.parameterArrays = new NDList(theta);
    } else {
      java.nio.file.Path dir = file == null ? null : file.toAbsolutePath().getParent();
      ModelRewriter.Lifted lifted = ModelRewriter.lift(fed, selection, dir);
      java.util.List<ModelRewriter.LiftedTensor> trainable = new java.util.ArrayList<>(lifted.tensors());
      ModelProto lossModel;
      if (objective instanceof Objective.CausalLm) {
        lossModel = ModelRewriter.appendCausalLmLoss(lifted.model());
      } else if (objective instanceof Objective.PromptClassification p) {
        lossModel = ModelRewriter.appendClassificationLoss(lifted.model(), p.labelTokens());
      } else if (objective instanceof Objective.EmbeddingClassification e) {
        int hidden = ModelRewriter.hiddenSize(parsed.getGraph(), table);
        lossModel = ModelRewriter.appendEmbeddingClassification(lifted.model(), e.pooling(), e.temperature(), HEAD, e.labelCount(), hidden);
        trainable.add(new ModelRewriter.LiftedTensor(HEAD, new long[] {e.labelCount(), hidden}, new float[e.labelCount() * hidden]));
      } else {
        lossModel = ModelRewriter.useScalarLoss(lifted.model(), ((Objective.ScalarLoss) objective).output());
      }
      this.parameters = new ParameterSet(trainable);
      this.model = loadSession(lossModel, file, ".pockettune-loss.onnx", threads);
      this.side = null;
      this.manager = model.getNDManager();
      this.parameterArrays = parameterArrays(manager, parameters);
    }
    this.predictor = model.newPredictor(new NoopTranslator());
    if (objective instanceof Objective.EmbeddingClassification e) {
      initialiseHead(e);
    }
  }

  /**
   * Creates the ONNX Runtime session of a rewritten graph. A graph whose frozen weights stay in
   * external data is written beside the original file as {@code <file><suffix>}, since ONNX Runtime
   * resolves external data relative to the model file. Other large graphs go through a private
   * temporary file too, deleted once loaded, so no serialized copy stays on the Java heap.
   *
   * @throws ModelException if ONNX Runtime refuses the graph
   */
  static Model loadSession(ModelProto graph, java.nio.file.Path file, String suffix, int threads) {
    return loadSession(graph, file, suffix, threads, true);
  }

  /**
   * @param spin whether idle intra-op threads spin-wait for work (ONNX Runtime's default). A side
   *     network's two sessions run in turn, so each one's spinning threads would take the cores
   *     from the other: they block instead (measured on 2 cores: a bench10m side step 0.97
   *     forwards without spinning, 1.08 with).
   */
  static Model loadSession(ModelProto graph, java.nio.file.Path file, String suffix, int threads, boolean spin) {
    Model model = Model.newInstance("pockettune", Device.cpu(), "OnnxRuntime");
    Map<String, Object> options = new java.util.HashMap<>(Map.of("intraOpNumThreads", Integer.toString(threads), "interOpNumThreads", "1"));
    if (!spin) {
      try {
        ai.onnxruntime.OrtSession.SessionOptions so = new ai.onnxruntime.OrtSession.SessionOptions();
        so.addConfigEntry("session.intra_op.allow_spinning", "0");
        options.put("sessionOptions", so);
      } catch (ai.onnxruntime.OrtException e) {
        throw new ModelException("ONNX Runtime refused a session option (" + e.getMessage() + ")", e);
      }
    }
    java.nio.file.Path dir = file == null ? null : file.toAbsolutePath().getParent();
    try {
      if (dir != null && ModelRewriter.usesExternalData(graph)) {
        java.nio.file.Path rewritten = dir.resolve(file.getFileName() + suffix);
        try (java.io.OutputStream out = new java.io.BufferedOutputStream(java.nio.file.Files.newOutputStream(rewritten))) {
          graph.writeTo(out);
        }
        model.load(rewritten, rewritten.getFileName().toString(), options);
      } else if (graph.getSerializedSize() > SMALL_GRAPH_BYTES) {
        // Streamed to a private temporary file and loaded from there: a serialized copy of the
        // weights on the Java heap would stay in the process's resident set after the load.
        java.nio.file.Path tmp = java.nio.file.Files.createTempFile("pockettune-session", ".onnx");
        try {
          try (java.io.OutputStream out = new java.io.BufferedOutputStream(java.nio.file.Files.newOutputStream(tmp))) {
            graph.writeTo(out);
          }
          model.load(tmp, tmp.getFileName().toString(), options);
        } finally {
          java.nio.file.Files.deleteIfExists(tmp);
        }
      } else {
        model.load(new ByteArrayInputStream(graph.toByteArray()), options);
      }
    } catch (IOException | MalformedModelException | RuntimeException e) {
      model.close();
      Throwable root = e;
      while (root.getCause() != null) {
        root = root.getCause();
      }
      throw new ModelException("ONNX Runtime cannot load the model (" + root.getMessage() + "): check that it is a valid ONNX file", e);
    }
    return model;
  }

  /** Graphs above this size are handed to ONNX Runtime through a file, not a heap array. */
  private static final int SMALL_GRAPH_BYTES = 4 << 20;

  /** One array per tensor of {@code parameters}, named as the graph input, wrapping its slice of the buffer. */
  static NDList parameterArrays(NDManager manager, ParameterSet parameters) {
    NDList arrays = new NDList();
    for (ParameterSet.Tensor t : parameters.tensors()) {
      NDArray a = manager.create(parameters.view(t), new Shape(t.dims()), DataType.FLOAT32);
      a.setName(t.name());
      arrays.add(a);
    }
    return arrays;
  }

  /**
   * Writes each label prompt's pooled embedding, computed by this session at the base values, into
   * the head. Each prompt runs alone (no padding, no dependence on the other prompts), so the head
   * is a function of the model and the prompts only: a restore that replays step records from it
   * starts from the same bits. The head is all zeros during these passes; pooling does not read it.
   */
  private void initialiseHead(Objective.EmbeddingClassification e) {
    ParameterSet.Tensor head = parameters.tensors().get(parameters.tensors().size() - 1);
    int hidden = (int) head.dims()[1];
    java.nio.FloatBuffer values = parameters.floats();
    java.util.List<long[]> prompts = e.labelPromptTokens();
    for (int j = 0; j < prompts.size(); j++) {
      long[] p = prompts.get(j);
      long[] mask = new long[Math.max(2, p.length)];
      java.util.Arrays.fill(mask, 0, p.length, 1L);
      TokenBatch one = new TokenBatch(1, mask.length, java.util.Arrays.copyOf(p, mask.length), mask, null, new long[] {0});
      NDList out = forward(one);
      try {
        float[] pooled = out.get(ModelRewriter.POOLED).toFloatArray();
        values.put(head.offset() + j * hidden, pooled, 0, hidden);
      } finally {
        out.close();
      }
    }
  }

  /**
   * Loads a model and prepares it for training with {@code objective}. Inputs of Hugging Face /
   * optimum exports ({@code token_type_ids}, {@code position_ids}, {@code past_key_values.*},
   * {@code use_cache_branch}) are fed automatically; their outputs ({@code present.*}, poolers)
   * that the objective does not read are never computed.
   *
   * @param onnxFile  the model file; its ONNX external data files, if any, sit beside it
   * @param objective what the model is trained to do
   * @param selection which tensors train (the embedding classifier's head always trains too)
   * @param threads   intra-op threads of ONNX Runtime
   * @throws ModelException if the file is not a model the objective and selection can use
   */
  public static LossModel open(java.nio.file.Path onnxFile, Objective objective, TrainableSelection selection, int threads) {
    return new LossModel(readModel(onnxFile), onnxFile, objective, selection, threads);
  }

  /** Like {@link #open(java.nio.file.Path, Objective, TrainableSelection, int)} for a model without external data. */
  public static LossModel open(byte[] onnx, Objective objective, TrainableSelection selection, int threads) {
    return new LossModel(onnx, null, objective, selection, threads);
  }

  /**
   * Loads a model and prepares it for training with a causal-LM objective.
   *
   * @param onnx      the serialized ONNX model, with inputs input_ids, attention_mask and output logits
   * @param selection which float initializers train
   * @param threads   intra-op threads of ONNX Runtime
   */
  public static LossModel causalLm(byte[] onnx, TrainableSelection selection, int threads) {
    return open(onnx, new Objective.CausalLm(), selection, threads);
  }

  /**
   * Like {@link #causalLm(byte[], TrainableSelection, int)} for a model file, which may keep its
   * weights in ONNX external data files beside it (models over 2 GB must).
   */
  public static LossModel causalLm(java.nio.file.Path onnxFile, TrainableSelection selection, int threads) {
    return open(onnxFile, new Objective.CausalLm(), selection, threads);
  }

  static byte[] readModel(java.nio.file.Path file) {
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
    return open(onnx, new Objective.PromptClassification(labelTokens), selection, threads);
  }

  /**
   * Loads a model that computes its own scalar loss (output {@code lossOutput}); batches are
   * {@link TensorBatch}es naming the model's inputs.
   */
  public static LossModel scalarLoss(byte[] onnx, TrainableSelection selection, String lossOutput, int threads) {
    return open(onnx, new Objective.ScalarLoss(lossOutput), selection, threads);
  }

  /** @return the objective this model was opened with */
  public Objective objective() {
    return objective;
  }

  /** @return the number of labels of a classification objective, 0 otherwise */
  public int labelCount() {
    return objective.labelCount();
  }

  /**
   * @return the rows of the token-embedding table that {@code input_ids} index (a Gather over an
   *     initializer), or -1 if the graph has none; a tokenizer with more ids than this cannot be used
   */
  public int embeddingRows() {
    return embeddingRows;
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

  /**
   * One forward pass at the current parameter values.
   *
   * @throws IllegalArgumentException if a classification batch has no labels
   */
  public Loss loss(Batch batch) {
    if (labelCount() > 0 && batch instanceof TokenBatch t && t.labels() == null) {
      throw new IllegalArgumentException("a classification loss needs a label per row: build the batch with TokenBatch.classification(prompts, labels)");
    }
    NDList out = forward(batch);
    try {
      return new Loss(out.get(ModelRewriter.LOSS).toFloatArray()[0], out.get(ModelRewriter.TOKEN_COUNT).toFloatArray()[0]);
    } finally {
      out.close();
    }
  }

  /**
   * @return per row, the index of the label with the highest score (classification objectives
   *     only); the batch needs no labels
   */
  public int[] predict(TokenBatch batch) {
    float[] scores = labelScores(batch);
    int k = labelCount();
    int[] best = new int[batch.size()];
    for (int r = 0; r < best.length; r++) {
      for (int j = 1; j < k; j++) {
        if (scores[r * k + j] > scores[r * k + best[r]]) {
          best[r] = j;
        }
      }
    }
    return best;
  }

  /**
   * @return per row, the softmax of the label scores: the model's probability of each label
   *     (classification objectives only); the batch needs no labels, so unlabelled events are scored
   */
  public float[][] labelProbabilities(TokenBatch batch) {
    float[] scores = labelScores(batch);
    int k = labelCount();
    float[][] probs = new float[batch.size()][k];
    for (int r = 0; r < probs.length; r++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int j = 0; j < k; j++) {
        max = Math.max(max, scores[r * k + j]);
      }
      double sum = 0;
      for (int j = 0; j < k; j++) {
        sum += Math.exp(scores[r * k + j] - max);
      }
      for (int j = 0; j < k; j++) {
        probs[r][j] = (float) (Math.exp(scores[r * k + j] - max) / sum);
      }
    }
    return probs;
  }

  private float[] labelScores(TokenBatch batch) {
    if (labelCount() == 0) {
      throw new IllegalStateException("label scores need a classification objective, not " + objective);
    }
    NDList out = forward(batch);
    try {
      return out.get(ModelRewriter.LABEL_SCORES).toFloatArray();
    } finally {
      out.close();
    }
  }

  private NDList forward(Batch batch) {
    return forward(batch, parameterArrays);
  }

  /** One forward pass with the trainable inputs {@code params} (the model's own, or a scratch copy's). */
  private NDList forward(Batch batch, NDList params) {
    NDList owned = new NDList();
    try {
      java.util.Map<String, NDArray> data = dataInputs(batch, owned);
      if (side != null) {
        return side.run(batch, data, params.get(0));
      }
      NDList inputs = new NDList(params.size() + data.size());
      inputs.addAll(new NDList(data.values()));
      inputs.addAll(params);
      return timed(predictor, inputs);
    } finally {
      owned.close();
    }
  }

  private NDList timed(Predictor<NDList, NDList> p, NDList inputs) {
    long t0 = System.nanoTime();
    try {
      NDList out = p.predict(inputs);
      forwardNanos += System.nanoTime() - t0;
      forwards++;
      return out;
    } catch (TranslateException e) {
      throw new IllegalStateException("forward pass failed: " + e.getMessage(), e);
    }
  }

  /** The batch's tensors by graph-input name (ids, mask, labels, answer positions), created into {@code owned}. */
  private java.util.Map<String, NDArray> dataInputs(Batch batch, NDList owned) {
    java.util.Map<String, NDArray> data = new java.util.LinkedHashMap<>();
    if (batch instanceof TokenBatch t) {
      checkTokens(t);
      Shape shape = new Shape(t.size(), t.length());
      data.put("input_ids", named(manager.create(longs(t.ids()), shape, DataType.INT64), "input_ids"));
      if (feedsMask || side != null) {
        data.put("attention_mask", named(manager.create(longs(t.mask()), shape, DataType.INT64), "attention_mask"));
      }
      int k = labelCount();
      if (k > 0) {
        Shape rows = new Shape(t.size());
        long[] labels = t.labels() == null ? new long[t.size()] : t.labels();
        for (long l : labels) {
          if (l < 0 || l >= k) {
            throw new IllegalArgumentException("label " + l + " is outside 0.." + (k - 1) + " of this " + k + "-label objective");
          }
        }
        if (objective instanceof Objective.PromptClassification) {
          data.put(ModelRewriter.ANSWER_POSITION,
              named(manager.create(longs(answerPositions(t)), rows, DataType.INT64), ModelRewriter.ANSWER_POSITION));
        }
        data.put(ModelRewriter.LABEL, named(manager.create(longs(labels), rows, DataType.INT64), ModelRewriter.LABEL));
      }
    } else if (batch instanceof TensorBatch tb) {
      for (TensorBatch.Tensor x : tb.tensors()) {
        NDArray a = x.floats() != null
            ? manager.create(floats(x.floats()), new Shape(x.shape()), DataType.FLOAT32)
            : manager.create(longs(x.longs()), new Shape(x.shape()), DataType.INT64);
        data.put(x.name(), named(a, x.name()));
      }
    }
    owned.addAll(new NDList(data.values()));
    return data;
  }

  /** Writes parameter variant {@code variant} (a full vector of {@link #parameters()}' length) into {@code target}. */
  @FunctionalInterface
  public interface Variants {
    void write(int variant, java.nio.FloatBuffer target);
  }

  /**
   * The losses of one batch at {@code count} parameter vectors, which {@code variants} writes. With
   * a side network ({@link #sharesBackbone()}), the backbone runs once (or not at all, on a cache
   * hit) and the side network once for all the variants together; otherwise each variant is
   * written into one scratch copy of the parameters and runs a forward pass of its own. The
   * model's own parameters are never changed.
   *
   * @return per variant, the mean loss per target token
   */
  public float[] losses(Batch batch, int count, Variants variants) {
    if (count < 1) {
      throw new IllegalArgumentException("at least one variant, got " + count);
    }
    if (labelCount() > 0 && batch instanceof TokenBatch t && t.labels() == null) {
      throw new IllegalArgumentException("a classification loss needs a label per row: build the batch with TokenBatch.classification(prompts, labels)");
    }
    int p = parameters.size();
    if (side != null) {
      ByteBuffer bytes = side.variantBytes(count, p);
      java.nio.FloatBuffer all = bytes.asFloatBuffer();
      for (int m = 0; m < count; m++) {
        variants.write(m, all.slice(m * p, p));
      }
      NDArray theta = manager.create(bytes.slice(0, count * p * Float.BYTES).order(ByteOrder.nativeOrder()),
          new Shape(count, p), DataType.FLOAT32);
      theta.setName(SideNetwork.THETA);
      NDList out = null;
      try {
        out = forward(batch, new NDList(theta));
        return out.get(ModelRewriter.LOSS).toFloatArray();
      } finally {
        if (out != null) {
          out.close();
        }
        theta.close();
      }
    }
    if (scratch == null) {
      scratch = ByteBuffer.allocateDirect(p * Float.BYTES).order(ByteOrder.nativeOrder());
      scratchArrays = new NDList();
      for (ParameterSet.Tensor t : parameters.tensors()) {
        NDArray a = manager.create(scratch.slice(t.offset() * Float.BYTES, t.count() * Float.BYTES).order(ByteOrder.nativeOrder()),
            new Shape(t.dims()), DataType.FLOAT32);
        a.setName(t.name());
        scratchArrays.add(a);
      }
    }
    float[] losses = new float[count];
    java.nio.FloatBuffer target = scratch.asFloatBuffer();
    for (int m = 0; m < count; m++) {
      variants.write(m, target);
      NDList out = forward(batch, scratchArrays);
      try {
        losses[m] = out.get(ModelRewriter.LOSS).toFloatArray()[0];
      } finally {
        out.close();
      }
    }
    return losses;
  }

  /**
   * @return true when the trainable values sit beside a frozen backbone (a side network), so that
   *     parameter variants share one backbone pass: steps then perturb copies, never the values in place
   */
  public boolean sharesBackbone() {
    return side != null;
  }

  /** @return backbone passes run so far (a side network's; 0 otherwise), cache hits excluded */
  public long backboneForwards() {
    return side == null ? 0 : side.runs;
  }

  /** @return batches whose backbone outputs came from the cache */
  public long backboneCacheHits() {
    return side == null ? 0 : side.hits;
  }

  /**
   * Bounds the cache of backbone outputs (side networks only), in bytes; 0 turns it off. The
   * cache is keyed by the batch's tokens (a SHA-256 of ids, mask and shape): the frozen backbone
   * gives the same outputs for the same tokens, so the same events trained again (epochs over a
   * k-shot set) or evaluated again (replay of several checkpoints) skip the backbone. Least
   * recently used batches are dropped first.
   */
  public void backboneCacheBytes(long bytes) {
    if (side != null) {
      side.budget(bytes);
    }
  }

  /** @return bytes the backbone cache holds now */
  public long backboneCacheSize() {
    return side == null ? 0 : side.cached;
  }

  /** Default bound of the backbone cache. */
  public static final long DEFAULT_BACKBONE_CACHE_BYTES = 64L << 20;

  /**
   * The backbone session of a side network, the frozen head's weight it outputs (kept from the
   * first pass), and the cache of its outputs.
   */
  private final class Side {
    final SideNetwork.Plan plan;
    final Model backbone;
    final Predictor<NDList, NDList> backbonePredictor;
    final java.util.List<String> backboneInputs;
    final java.util.List<String> sideInputs;
    final java.util.LinkedHashMap<String, NDList> cache = new java.util.LinkedHashMap<>(16, 0.75f, true);
    final java.util.Map<String, Long> sizes = new java.util.HashMap<>();
    NDList head;
    long budget = DEFAULT_BACKBONE_CACHE_BYTES;
    long cached;
    long runs;
    long hits;
    ByteBuffer variants;

    Side(SideNetwork.Plan plan, Model backbone, java.util.List<String> backboneInputs, java.util.List<String> sideInputs) {
      this.plan = plan;
      this.backbone = backbone;
      this.backbonePredictor = backbone.newPredictor(new NoopTranslator());
      this.backboneInputs = backboneInputs;
      this.sideInputs = sideInputs;
    }

    ByteBuffer variantBytes(int count, int p) {
      long need = (long) count * p * Float.BYTES;
      if (need > Integer.MAX_VALUE) {
        throw new ModelException(count + " variants of " + p + " side parameters do not fit one buffer: use fewer directions or a larger r");
      }
      if (variants == null || variants.capacity() < need) {
        variants = ByteBuffer.allocateDirect((int) need).order(ByteOrder.nativeOrder());
      }
      return variants.duplicate().order(ByteOrder.nativeOrder()).clear();
    }

    void budget(long bytes) {
      if (bytes < 0) {
        throw new IllegalArgumentException("a cache bound cannot be negative, was " + bytes);
      }
      budget = bytes;
      evict(0);
    }

    private void evict(long room) {
      java.util.Iterator<java.util.Map.Entry<String, NDList>> it = cache.entrySet().iterator();
      while (cached + room > budget && it.hasNext()) {
        java.util.Map.Entry<String, NDList> e = it.next();
        cached -= sizes.remove(e.getKey());
        e.getValue().close();
        it.remove();
      }
    }

    /** The side session's outputs for the batch at the parameter rows {@code theta}. */
    NDList run(Batch batch, java.util.Map<String, NDArray> data, NDArray theta) {
      String key = batch instanceof TokenBatch t ? key(t) : null;
      NDList states = key == null ? null : cache.get(key);
      boolean keep = states != null;
      if (states != null) {
        hits++;
      } else {
        NDList in = new NDList();
        for (String name : backboneInputs) {
          in.add(require(data, name, "backbone"));
        }
        NDList out = timed(backbonePredictor, in);
        runs++;
        states = new NDList();
        for (NDArray a : out) {
          if (a.getName().equals(SideNetwork.HEAD_WEIGHT) || a.getName().equals(SideNetwork.HEAD_BIAS)) {
            if (head == null || head.size() < (plan.headBias() == null ? 1 : 2)) {
              if (head == null) {
                head = new NDList();
              }
              head.add(a);
            } else {
              a.close();
            }
          } else {
            states.add(a);
          }
        }
        long bytes = 0;
        for (NDArray a : states) {
          bytes += a.size() * Float.BYTES;
        }
        if (key != null && bytes <= budget) {
          evict(bytes);
          cache.put(key, states);
          sizes.put(key, bytes);
          cached += bytes;
          keep = true;
        }
      }
      try {
        NDList in = new NDList();
        for (String name : sideInputs) {
          NDArray a = name.equals(SideNetwork.THETA) ? theta : states.get(name);
          if (a == null && head != null) {
            a = head.get(name);
          }
          in.add(a != null ? a : require(data, name, "side network"));
        }
        return timed(predictor, in);
      } finally {
        if (!keep) {
          states.close();
        }
      }
    }

    private NDArray require(java.util.Map<String, NDArray> data, String name, String session) {
      NDArray a = data.get(name);
      if (a == null) {
        throw new IllegalArgumentException("the " + session + " needs the input " + name + ", which this batch does not give");
      }
      return a;
    }

    private String key(TokenBatch t) {
      ByteBuffer b = ByteBuffer.allocate(8 + 16 * t.ids().length);
      b.putInt(t.size()).putInt(t.length());
      for (long id : t.ids()) {
        b.putLong(id);
      }
      for (long m : t.mask()) {
        b.putLong(m);
      }
      return sha256(b.array());
    }

    void close() {
      cache.values().forEach(NDList::close);
      cache.clear();
      if (head != null) {
        head.close();
      }
      backbonePredictor.close();
      backbone.close();
    }
  }

  private static java.util.List<String> inputNames(ModelProto graph) {
    return graph.getGraph().getInputList().stream().map(ai.onnx.proto.OnnxMl.ValueInfoProto::getName).toList();
  }

  /** Ids outside the embedding table come from a tokenizer that is not the model's. */
  private void checkTokens(TokenBatch t) {
    if (embeddingRows < 0) {
      return;
    }
    for (long id : t.ids()) {
      if (id < 0 || id >= embeddingRows) {
        throw new ModelException("token id " + id + " is beyond the model's " + embeddingRows
            + " embedding rows: use the tokenizer that belongs to the model");
      }
    }
  }

  /** The batch's answer positions, or per row its last real token. */
  private static long[] answerPositions(TokenBatch t) {
    if (t.answerPositions() != null) {
      return t.answerPositions();
    }
    long[] last = new long[t.size()];
    for (int r = 0; r < last.length; r++) {
      for (int i = 0; i < t.length(); i++) {
        if (t.mask()[r * t.length() + i] != 0) {
          last[r] = i;
        }
      }
    }
    return last;
  }

  static NDArray named(NDArray a, String name) {
    a.setName(name);
    return a;
  }

  private static ByteBuffer floats(float[] values) {
    ByteBuffer b = ByteBuffer.allocateDirect(values.length * Float.BYTES).order(ByteOrder.nativeOrder());
    b.asFloatBuffer().put(values);
    return b;
  }

  static ByteBuffer longs(long[] values) {
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
    if (scratchArrays != null) {
      scratchArrays.close();
    }
    if (side != null) {
      side.close();
    }
    model.close();
  }
}
