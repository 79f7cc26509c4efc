package io.pockettune.trainer;

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
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.LongPredicate;

/**
 * Text generation from a causal LM with trained values: the read side of a {@link LossModel}
 * opened with {@link Objective.CausalLm}.
 *
 * <h2>Same parameters as the trainer</h2>
 * The user's graph is fed and lifted by the trainer's own rewrites ({@link
 * ModelRewriter#feedStandardInputs}, {@link ModelRewriter#lift}), so {@link #parameters()} has the
 * layout of the LossModel for the same selection, tensor for tensor; values restored from a
 * checkpoint are loaded with {@link ParameterSet#load} and used by the next forward pass, since the
 * lifted inputs wrap the parameter buffer as the trainer's do. Only the head differs: instead of a
 * loss, the graph outputs the next-token logits {@code [batch, vocab]} of the last position (see
 * {@link NextTokenGraph}), never the full {@code [batch, sequence, vocab]} tensor.
 *
 * <h2>KV cache</h2>
 * A graph with optimum's with-past layout ({@code past_key_values.N.key/value} in, {@code
 * present.N.key/value} out) keeps its past inputs: decoding runs one forward pass over the prompt
 * with an empty past, then one per new token, feeding each {@code present.*} back as the next
 * {@code past_key_values.*} without copying it out of ONNX Runtime. {@code attention_mask} covers
 * past and current tokens; {@code position_ids} are computed in the graph and continue from the
 * past's length. Without the layout, or when {@link Options#useKvCache()} is false, every token
 * recomputes the whole prefix. Both give the same tokens up to float rounding in the attention.
 *
 * <h2>Sampling</h2>
 * Temperature 0 is greedy (argmax, the lowest id on ties). Otherwise the logits divided by the
 * temperature are cut to the top k, then to the smallest prefix (by descending probability) whose
 * mass reaches top-p, and one token is drawn with one {@link SplittableRandom#nextDouble()} from a
 * generator seeded with {@link Options#seed()}; probabilities use {@link StrictMath#exp}, so equal
 * logits and seed give equal tokens on every JVM and machine.
 *
 * <p>Not thread-safe: one {@link #generate} at a time, and parameters are loaded between calls, not
 * during one. Callers serving many threads hold one Generator per thread or serialize calls.
 */
public final class Generator implements AutoCloseable {

  /**
   * How to decode.
   *
   * @param maxNewTokens at most this many tokens are generated, at least 0
   * @param temperature  0 for greedy decoding, else the softmax temperature (positive)
   * @param topK         sample among the k most likely tokens only; 0 for no limit
   * @param topP         sample among the most likely tokens whose probability reaches p, in (0, 1]; 1 for no limit
   * @param seed         seed of the sampler; the same seed gives the same tokens
   * @param useKvCache   use the graph's KV cache when it has one; false always recomputes the prefix
   * @param stopIds      ids (e.g. EOS) after which generation stops; the stop id is returned
   */
  public record Options(int maxNewTokens, float temperature, int topK, float topP, long seed, boolean useKvCache, long[] stopIds) {
    public Options {
      if (maxNewTokens < 0) {
        throw new IllegalArgumentException("maxNewTokens is " + maxNewTokens + ": give 0 or more new tokens");
      }
      if (!(temperature >= 0) || !Float.isFinite(temperature)) {
        throw new IllegalArgumentException("temperature is " + temperature + ": give 0 for greedy decoding or a positive number");
      }
      if (topK < 0) {
        throw new IllegalArgumentException("topK is " + topK + ": give 0 to turn it off or a positive number of tokens");
      }
      if (!(topP > 0 && topP <= 1)) {
        throw new IllegalArgumentException("topP is " + topP + ": give a probability in (0, 1], 1 to turn it off");
      }
      stopIds = stopIds == null ? new long[0] : stopIds.clone();
    }

    /** Greedy decoding of up to {@code maxNewTokens} tokens with the KV cache, no stop ids. */
    public static Options greedy(int maxNewTokens) {
      return new Options(maxNewTokens, 0f, 0, 1f, 0L, true, null);
    }

    /** @return these options with the sampling settings replaced */
    public Options sampling(float temperature, int topK, float topP, long seed) {
      return new Options(maxNewTokens, temperature, topK, topP, seed, useKvCache, stopIds);
    }

    /** @return these options with the KV cache used (when the graph has one) or not */
    public Options withKvCache(boolean use) {
      return new Options(maxNewTokens, temperature, topK, topP, seed, use, stopIds);
    }

    @Override
    public long[] stopIds() {
      return stopIds.clone();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Options x && x.maxNewTokens == maxNewTokens
          && Float.floatToIntBits(x.temperature) == Float.floatToIntBits(temperature) && x.topK == topK
          && Float.floatToIntBits(x.topP) == Float.floatToIntBits(topP) && x.seed == seed
          && x.useKvCache == useKvCache && Arrays.equals(x.stopIds, stopIds);
    }

    @Override
    public int hashCode() {
      return java.util.Objects.hash(maxNewTokens, temperature, topK, topP, seed, useKvCache) * 31 + Arrays.hashCode(stopIds);
    }

    @Override
    public String toString() {
      return "Options[maxNewTokens=" + maxNewTokens + ", temperature=" + temperature + ", topK=" + topK + ", topP=" + topP
          + ", seed=" + seed + ", useKvCache=" + useKvCache + ", stopIds=" + Arrays.toString(stopIds) + "]";
    }
  }

  /**
   * What one {@link #generate} produced.
   *
   * @param tokens     the generated ids, without the prompt, including a stop id that ended them
   * @param usedKvCache whether the KV cache was used (else the prefix was recomputed per token)
   * @param nanos      wall time of the call
   * @param forwards   forward passes run
   */
  public record Result(long[] tokens, boolean usedKvCache, long nanos, int forwards) {
    public Result {
      tokens = tokens.clone();
    }

    @Override
    public long[] tokens() {
      return tokens.clone();
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Result r && Arrays.equals(r.tokens, tokens) && r.usedKvCache == usedKvCache
          && r.nanos == nanos && r.forwards == forwards;
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(tokens) * 31 + java.util.Objects.hash(usedKvCache, nanos, forwards);
    }

    @Override
    public String toString() {
      return "Result[tokens=" + Arrays.toString(tokens) + ", usedKvCache=" + usedKvCache + ", nanos=" + nanos + ", forwards=" + forwards + "]";
    }
  }

  private final Model model;
  private final Predictor<NDList, NDList> predictor;
  private final NDManager manager;
  private final ParameterSet parameters;
  private final NDList parameterArrays;
  private final List<String> pastNames;
  private final List<long[]> emptyPastShapes;
  private final int embeddingRows;
  private final int maxPositions;

  private Generator(byte[] onnx, java.nio.file.Path file, TrainableSelection selection, int threads) {
    ModelProto parsed = ModelRewriter.parse(onnx);
    ModelRewriter.checkObjective(parsed.getGraph(), new Objective.CausalLm());
    ai.onnx.proto.OnnxMl.TensorProto table = ModelRewriter.tokenEmbedding(parsed.getGraph());
    this.embeddingRows = table == null ? -1 : (int) table.getDims(0);
    this.maxPositions = NextTokenGraph.maxPositions(parsed.getGraph());
    List<ValueInfoProto> pasts = NextTokenGraph.pastInputs(parsed.getGraph());
    this.pastNames = pasts.stream().map(ValueInfoProto::getName).toList();
    this.emptyPastShapes = pasts.stream().map(Generator::emptyPastShape).toList();
    ModelProto fed = ModelRewriter.feedStandardInputs(parsed, !pasts.isEmpty());
    java.nio.file.Path dir = file == null ? null : file.toAbsolutePath().getParent();
    ModelRewriter.Lifted lifted = selection.kind() == TrainableSelection.Kind.SIDE
        ? SideNetwork.lifted(fed, selection) : ModelRewriter.lift(fed, selection, dir);
    ModelProto decoding = NextTokenGraph.build(lifted.model(), pastNames.stream().map(NextTokenGraph::presentName).toList());
    this.parameters = new ParameterSet(lifted.tensors());
    this.model = LossModel.loadSession(decoding, file, ".pockettune-generate.onnx", threads);
    this.manager = model.getNDManager();
    if (selection.kind() == TrainableSelection.Kind.SIDE) {
      NDArray theta = manager.create(parameters.allBytes(), new Shape(1, parameters.size()), DataType.FLOAT32);
      theta.setName(SideNetwork.THETA);
      this.parameterArrays = new NDList(theta);
    } else {
      this.parameterArrays = LossModel.parameterArrays(manager, parameters);
    }
    this.predictor = model.newPredictor(new NoopTranslator());
  }

  /** {@code [1, heads, 0, head_dim]} from a past input's declared dims. */
  private static long[] emptyPastShape(ValueInfoProto in) {
    List<TensorShapeProto.Dimension> dims = in.getType().getTensorType().getShape().getDimList();
    if (in.getType().getTensorType().getElemType() != ai.onnx.proto.OnnxMl.TensorProto.DataType.FLOAT.getNumber()) {
      throw new ModelException("past input '" + in.getName() + "' is " + ModelRewriter.typeName(in.getType().getTensorType().getElemType())
          + ", and only float32 KV caches are supported: export the model in float32");
    }
    if (dims.size() != 4 || !dims.get(1).hasDimValue() || !dims.get(3).hasDimValue()) {
      throw new ModelException("past input '" + in.getName() + "' is not declared as [batch, heads, past_sequence, head_dim]"
          + " with fixed heads and head size: export the model with optimum's with-past signature");
    }
    return new long[] {1, dims.get(1).getDimValue(), 0, dims.get(3).getDimValue()};
  }

  /**
   * Opens {@code onnxFile} for generation with the trainable tensors of {@code selection} lifted as
   * {@code LossModel.open(onnxFile, new Objective.CausalLm(), selection, threads)} lifts them.
   *
   * @param onnxFile  the model file; its ONNX external data files, if any, sit beside it
   * @param selection the selection the parameters were trained with
   * @param threads   intra-op threads of ONNX Runtime
   * @throws ModelException if the file is not a causal LM the selection can use
   */
  public static Generator open(java.nio.file.Path onnxFile, TrainableSelection selection, int threads) {
    return new Generator(LossModel.readModel(onnxFile), onnxFile, selection, threads);
  }

  /** Like {@link #open(java.nio.file.Path, TrainableSelection, int)} for a model without external data. */
  public static Generator open(byte[] onnx, TrainableSelection selection, int threads) {
    return new Generator(onnx, null, selection, threads);
  }

  /** The trainable values, laid out as the LossModel's; {@link ParameterSet#load} changes the next call. */
  public ParameterSet parameters() {
    return parameters;
  }

  /** @return true when the graph has optimum's with-past layout, so decoding can use its KV cache */
  public boolean usesKvCache() {
    return !pastNames.isEmpty();
  }

  /** @return the rows of the position-embedding table (the longest sequence), or -1 if the graph does not show it */
  public int maxPositions() {
    return maxPositions;
  }

  /**
   * Generates tokens after {@code prompt}, stopping after {@code options.maxNewTokens()} tokens, a
   * stop id, a token for which {@code stopAfter} is true, or when the sequence fills
   * {@link #maxPositions()}, whichever comes first.
   *
   * @param prompt    token ids, at least one
   * @param stopAfter called with each new token (after it is appended); true ends generation, e.g.
   *                  when the caller's decoded text reaches a stop string
   * @throws IllegalArgumentException if the prompt is empty or longer than the model's positions
   * @throws ModelException if an id is outside the model's vocabulary
   */
  public Result generate(long[] prompt, Options options, LongPredicate stopAfter) {
    if (prompt.length == 0) {
      throw new IllegalArgumentException("the prompt has no tokens: give at least one token id (e.g. BOS)");
    }
    if (maxPositions > 0 && prompt.length > maxPositions) {
      throw new IllegalArgumentException("the prompt has " + prompt.length + " tokens but the model covers "
          + maxPositions + " positions: shorten the prompt to at most " + maxPositions + " tokens");
    }
    for (long id : prompt) {
      checkToken(id);
    }
    long t0 = System.nanoTime();
    boolean kv = usesKvCache() && options.useKvCache();
    SplittableRandom rng = new SplittableRandom(options.seed());
    long[] sequence = Arrays.copyOf(prompt, prompt.length + options.maxNewTokens());
    int length = prompt.length;
    int forwards = 0;
    NDList past = null;
    try {
      while (length - prompt.length < options.maxNewTokens() && (maxPositions < 0 || length < maxPositions)) {
        NDList out;
        if (kv && past != null) {
          out = forward(new long[] {sequence[length - 1]}, length, past);
        } else {
          out = forward(Arrays.copyOf(sequence, length), length, null);
        }
        forwards++;
        if (past != null) {
          past.close();
        }
        float[] logits = out.get(NextTokenGraph.NEXT_LOGITS).toFloatArray();
        if (kv) {
          past = new NDList(pastNames.size());
          for (String name : pastNames) {
            NDArray present = out.get(NextTokenGraph.presentName(name));
            present.setName(name);
            past.add(present);
          }
          out.remove(NextTokenGraph.NEXT_LOGITS).close();
        } else {
          out.close();
        }
        long token = choose(logits, options, rng);
        sequence[length++] = token;
        if (contains(options.stopIds(), token) || stopAfter.test(token)) {
          break;
        }
      }
    } finally {
      if (past != null) {
        past.close();
      }
    }
    return new Result(Arrays.copyOfRange(sequence, prompt.length, length), kv, System.nanoTime() - t0, forwards);
  }

  /** One forward pass over {@code ids} (batch 1) after {@code past}, or after an empty past when null. */
  private NDList forward(long[] ids, int totalLength, NDList past) {
    NDList owned = new NDList();
    try {
      owned.add(LossModel.named(manager.create(LossModel.longs(ids), new Shape(1, ids.length), DataType.INT64), "input_ids"));
      long[] mask = new long[totalLength];
      Arrays.fill(mask, 1L);
      owned.add(LossModel.named(manager.create(LossModel.longs(mask), new Shape(1, totalLength), DataType.INT64), "attention_mask"));
      NDList inputs = new NDList(owned);
      if (past != null) {
        inputs.addAll(past);
      } else {
        for (int i = 0; i < pastNames.size(); i++) {
          NDArray empty = manager.create(ByteBuffer.allocateDirect(0), new Shape(emptyPastShapes.get(i)), DataType.FLOAT32);
          owned.add(LossModel.named(empty, pastNames.get(i)));
          inputs.add(empty);
        }
      }
      inputs.addAll(parameterArrays);
      return predictor.predict(inputs);
    } catch (TranslateException e) {
      throw new IllegalStateException("forward pass failed: " + e.getMessage(), e);
    } finally {
      owned.close();
    }
  }

  private void checkToken(long id) {
    if (id < 0 || (embeddingRows >= 0 && id >= embeddingRows)) {
      throw new ModelException("token id " + id + " is outside the model's " + embeddingRows
          + " embedding rows: use the tokenizer that belongs to the model");
    }
  }

  private static boolean contains(long[] ids, long id) {
    for (long x : ids) {
      if (x == id) {
        return true;
      }
    }
    return false;
  }

  /** Greedy or sampled choice among {@code logits}; see the class comment. */
  static long choose(float[] logits, Options options, SplittableRandom rng) {
    if (options.temperature() == 0f) {
      int best = 0;
      for (int v = 1; v < logits.length; v++) {
        if (logits[v] > logits[best]) {
          best = v;
        }
      }
      return best;
    }
    Integer[] order = new Integer[logits.length];
    for (int v = 0; v < order.length; v++) {
      order[v] = v;
    }
    // Descending logit, ascending id on ties (the sort is stable): the same order on every machine.
    Arrays.sort(order, (a, b) -> Float.compare(logits[b], logits[a]));
    int kept = options.topK() == 0 ? order.length : Math.min(options.topK(), order.length);
    double[] weights = new double[kept];
    double max = logits[order[0]];
    double total = 0;
    for (int i = 0; i < kept; i++) {
      weights[i] = StrictMath.exp((logits[order[i]] - max) / options.temperature());
      total += weights[i];
    }
    if (options.topP() < 1f) {
      double mass = 0;
      int cut = 0;
      while (cut < kept && mass < options.topP() * total) {
        mass += weights[cut++];
      }
      kept = Math.max(1, cut);
      total = mass;
    }
    double u = rng.nextDouble() * total;
    double cumulative = 0;
    for (int i = 0; i < kept; i++) {
      cumulative += weights[i];
      if (u < cumulative) {
        return order[i];
      }
    }
    return order[kept - 1];
  }

  @Override
  public void close() {
    predictor.close();
    parameterArrays.close();
    model.close();
  }
}
