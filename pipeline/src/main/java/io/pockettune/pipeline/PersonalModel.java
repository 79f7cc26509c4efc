package io.pockettune.pipeline;

import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.Generator;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TokenBatch;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map.Entry;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;

/**
 * The personalized model, for the app to ask: {@link #complete}, {@link #classify} and {@link
 * #score}, at one point of the trajectory or following the latest committed step.
 *
 * <h2>Consistency</h2>
 * A personal model holds its own copy of the trainable values (its own ONNX Runtime session),
 * restored at its step from the store. Pinned ({@code base}, a checkpoint, a step) it never
 * changes. Following ({@code latest}), each call first brings the copy to the store's last
 * committed step by replaying the step records committed since (the same three kernel passes the
 * trainer ran, so the values are bit-identical to the trainer's), then answers: a new step is used
 * from the next call on, and a call never sees a half-applied update, because updates and answers
 * run under one lock. Many threads may call at once; they are served one at a time.
 *
 * <p>Thread-safe. Close it to free its session.
 */
public final class PersonalModel implements AutoCloseable {
  private final ModelPackage pkg;
  private final LossModel model;
  private final PerturbationKernel kernel;
  private final ModelStore store;
  private final boolean ownsStore;
  private final boolean following;
  private final int threads;
  private Generator generator;
  private long generatorStep = -1;
  private MezoTrainer trainer;
  private String configText;
  private long step;
  private boolean closed;

  private PersonalModel(ModelPackage pkg, LossModel model, PerturbationKernel kernel, ModelStore store,
      boolean ownsStore, boolean following, int threads) {
    this.threads = threads;
    this.pkg = pkg;
    this.model = model;
    this.kernel = kernel;
    this.store = store;
    this.ownsStore = ownsStore;
    this.following = following;
  }

  /**
   * Opens the package's model at {@code pin}: {@code base}, {@code latest}, a checkpoint id or
   * {@code step:N}. With {@code store} null (no trajectory), only {@code base} is possible.
   *
   * @param ownsStore whether closing this model closes {@code store}
   */
  static PersonalModel open(ModelPackage pkg, ModelStore store, boolean ownsStore, String pin, int threads) {
    Objects.requireNonNull(pin, "pin");
    boolean follow = pin.equals("latest");
    long target = store == null ? -1 : target(store, pin);
    if (store == null && !pin.equals("base")) {
      throw new IllegalArgumentException("there is no model store to take '" + pin + "' from: give --checkpoint base,"
          + " or a --data-dir that demo or serve trained in");
    }
    LossModel m = pkg.open(threads);
    PerturbationKernel k = null;
    try {
      k = new PerturbationKernel(threads);
      PersonalModel p = new PersonalModel(pkg, m, k, store, ownsStore, follow, threads);
      if (store != null) {
        p.restore(target); // also checks that the store was trained from this model, kernel and layout
      }
      return p;
    } catch (RuntimeException e) {
      if (k != null) {
        k.close();
      }
      m.close();
      throw e;
    }
  }

  private static long target(ModelStore store, String pin) {
    if (pin.equals("base")) {
      return 0;
    }
    if (pin.equals("latest")) {
      return store.lastStep();
    }
    if (pin.startsWith("step:")) {
      long s = number(pin.substring(5), pin);
      if (s > store.lastStep()) {
        throw new IllegalArgumentException("step " + s + " is after the last committed step " + store.lastStep()
            + ": choose an earlier step, a checkpoint, base or latest");
      }
      return s;
    }
    long id = number(pin, pin);
    return store.checkpoint(id)
        .filter(io.pockettune.store.Checkpoint::live)
        .orElseThrow(() -> new IllegalArgumentException("there is no live checkpoint " + id
            + ": list them with 'pockettune checkpoints', or give base, latest or step:N"))
        .step();
  }

  private static long number(String s, String pin) {
    try {
      long n = Long.parseLong(s.strip());
      if (n >= 0) {
        return n;
      }
    } catch (NumberFormatException e) {
      // falls through to the message
    }
    throw new IllegalArgumentException("--checkpoint takes base, latest, a checkpoint id or step:N, not '" + pin + "'");
  }

  private void restore(long target) {
    Restored r = store.restore(target, model, RunConfig::replayConfig, kernel);
    trainer = r.trainer();
    configText = store.identity().runConfig();
    step = r.step();
  }

  /** Brings a following model to the store's last committed step. Caller holds the lock. */
  private void catchUp() {
    if (!following) {
      return;
    }
    long last = store.lastStep();
    if (last <= step) {
      return;
    }
    NavigableMap<Long, String> configs = store.runConfigs();
    for (StepRecord r : store.steps(step + 1, last)) {
      Entry<Long, String> inForce = configs.floorEntry(r.step());
      String text = inForce == null ? store.identity().runConfig() : inForce.getValue();
      if (trainer == null || !text.equals(configText)) {
        trainer = new MezoTrainer(model, RunConfig.replayConfig(text), kernel, step);
        configText = text;
      }
      trainer.replay(r);
      step = r.step();
    }
  }

  /** @return the step this model answers at now (for a following model, as of its last call) */
  public synchronized long step() {
    return step;
  }

  /**
   * @return each label with its probability, and the most probable, at one step
   * @throws IllegalArgumentException for a model whose objective does not classify
   */
  public synchronized Classification classify(String text) {
    checkOpen();
    if (!pkg.card().classification()) {
      throw new IllegalArgumentException(pkg.describe() + " has the objective " + pkg.card().objective()
          + ", which does not classify: use score or generate");
    }
    catchUp();
    float[] p = model.labelProbabilities(TokenBatch.of(List.of(encode(text))))[0];
    Map<String, Double> probabilities = new LinkedHashMap<>();
    int best = 0;
    for (int i = 0; i < p.length; i++) {
      probabilities.put(pkg.card().labels().get(i), (double) p[i]);
      best = p[i] > p[best] ? i : best;
    }
    return new Classification(pkg.card().labels().get(best), probabilities, step);
  }

  /**
   * Classifies many texts at one step, in batches of 32 (padded to the longest in each batch; the
   * attention mask keeps padding out of the scores).
   *
   * @return one classification per text, in order
   * @throws IllegalArgumentException for a model whose objective does not classify
   */
  public synchronized List<Classification> classify(List<String> texts) {
    checkOpen();
    if (!pkg.card().classification()) {
      throw new IllegalArgumentException(pkg.describe() + " has the objective " + pkg.card().objective()
          + ", which does not classify: use score or generate");
    }
    catchUp();
    List<String> labels = pkg.card().labels();
    List<Classification> out = new java.util.ArrayList<>(texts.size());
    for (int from = 0; from < texts.size(); from += 32) {
      List<long[]> seqs = new java.util.ArrayList<>();
      for (String t : texts.subList(from, Math.min(texts.size(), from + 32))) {
        seqs.add(encode(t));
      }
      for (float[] p : model.labelProbabilities(TokenBatch.of(seqs))) {
        Map<String, Double> probabilities = new LinkedHashMap<>();
        int best = 0;
        for (int i = 0; i < p.length; i++) {
          probabilities.put(labels.get(i), (double) p[i]);
          best = p[i] > p[best] ? i : best;
        }
        out.add(new Classification(labels.get(best), probabilities, step));
      }
    }
    return out;
  }

  /**
   * Scores a text: for a language model, the mean loss per predicted token and its perplexity; for
   * a classifier, the loss of {@code label} (required) and that label's probability.
   *
   * @param label the text's label for a classifier, or null
   */
  public synchronized Score score(String text, String label) {
    checkOpen();
    catchUp();
    TokenBatch batch = TokenBatch.of(List.of(encode(text)));
    if (pkg.card().classification()) {
      int index = label == null ? -1 : pkg.card().labels().indexOf(label);
      if (index < 0) {
        throw new IllegalArgumentException("a classifier scores a text against its label: give one of "
            + pkg.card().labels() + (label == null ? "" : ", not '" + label + "'"));
      }
      float[] p = model.labelProbabilities(batch)[0];
      LossModel.Loss loss = model.loss(batch.withLabels(new long[] {index}));
      return new Score(loss.loss(), Math.exp(loss.loss()), 1, (double) p[index], step);
    }
    if (batch.targetTokens() == 0) {
      throw new IllegalArgumentException("the text has no token to predict after the first: give a longer text");
    }
    LossModel.Loss loss = model.loss(batch);
    return new Score(loss.loss(), Math.exp(loss.loss()), (long) loss.tokens(), null, step);
  }

  /**
   * Continues {@code prompt} (causal language models): greedy or sampled, repeatable for a seed,
   * with the graph's KV cache when it has optimum's with-past layout (else the prefix is
   * recomputed for every token; the result says which).
   */
  public synchronized Completion complete(String prompt, CompletionOptions options) {
    checkOpen();
    if (!pkg.card().objective().equals(ModelCard.CAUSAL_LM)) {
      throw new IllegalArgumentException(pkg.describe() + " has the objective " + pkg.card().objective()
          + ", which does not generate text: use classify or score");
    }
    catchUp();
    if (generator == null) {
      generator = Generator.open(pkg.graph(), pkg.selection(), threads);
    }
    if (generatorStep != step) {
      generator.parameters().load(model.parameters().toArray());
      generatorStep = step;
    }
    long[] ids = pkg.tokenizer().encode(prompt == null ? "" : prompt, Integer.MAX_VALUE);
    boolean bytes = pkg.tokenizer() instanceof ByteTokenizer;
    if (bytes && ids.length > 1 && ids[ids.length - 1] == ByteTokenizer.EOS) {
      ids = java.util.Arrays.copyOf(ids, ids.length - 1); // the prompt goes on: no end of text
    }
    int context = generator.maxPositions() > 0 ? generator.maxPositions() : pkg.card().maxTokens();
    if (ids.length + 1 > context) {
      throw new IllegalArgumentException("the prompt has " + ids.length + " tokens but the model's context is "
          + context + ": shorten the prompt");
    }
    int room = Math.min(options.maxNewTokens(), context - ids.length);
    Generator.Options g = Generator.Options.greedy(room);
    if (options.temperature() > 0) {
      g = g.sampling(options.temperature(), options.topK(), options.topP(), options.seed());
    }
    g = g.withKvCache(options.kvCache());
    if (bytes) {
      g = new Generator.Options(g.maxNewTokens(), g.temperature(), g.topK(), g.topP(), g.seed(), g.useKvCache(),
          new long[] {ByteTokenizer.EOS});
    }
    List<Long> produced = new java.util.ArrayList<>();
    List<String> stops = options.stop() == null ? List.of() : options.stop();
    Generator.Result r = generator.generate(ids, g, token -> {
      produced.add(token);
      if (stops.isEmpty()) {
        return false;
      }
      String text = pkg.tokenizer().decode(produced.stream().mapToLong(Long::longValue).toArray());
      return stops.stream().anyMatch(text::endsWith);
    });
    String text = pkg.tokenizer().decode(r.tokens());
    for (String stop : stops) {
      if (text.endsWith(stop)) {
        text = text.substring(0, text.length() - stop.length());
      }
    }
    double seconds = r.nanos() / 1e9;
    return new Completion(text, r.tokens().length, seconds > 0 ? r.tokens().length / seconds : 0, r.usedKvCache(),
        step);
  }

  /**
   * How to complete a prompt.
   *
   * @param maxNewTokens at most this many new tokens (fewer when the context ends first)
   * @param temperature  0 for greedy decoding, else the sampling temperature
   * @param topK         sample among the k most probable tokens (0: all)
   * @param topP         sample within this much probability mass (1: all)
   * @param seed         makes sampling repeatable
   * @param stop         stop after any of these strings (not included in the text); may be empty
   * @param kvCache      use the graph's KV cache when it has one
   */
  public record CompletionOptions(int maxNewTokens, float temperature, int topK, float topP, long seed,
      List<String> stop, boolean kvCache) {
    public CompletionOptions {
      if (maxNewTokens < 1 || temperature < 0 || topK < 0 || !(topP > 0 && topP <= 1)) {
        throw new IllegalArgumentException("--max-new-tokens must be positive, --temperature and --top-k not"
            + " negative, and --top-p in (0, 1]");
      }
      stop = stop == null ? List.of() : List.copyOf(stop);
    }

    /** Greedy decoding of up to {@code maxNewTokens}, with the KV cache. */
    public static CompletionOptions greedy(int maxNewTokens) {
      return new CompletionOptions(maxNewTokens, 0f, 0, 1f, 0L, List.of(), true);
    }
  }

  /**
   * A completion.
   *
   * @param text           the new text (the prompt not included, a stop string cut off)
   * @param tokens         new tokens generated
   * @param tokensPerSecond generation speed, prompt included
   * @param kvCache        whether the graph's KV cache was used (else the prefix was recomputed)
   * @param step           the step of the trajectory that answered
   */
  public record Completion(String text, int tokens, double tokensPerSecond, boolean kvCache, long step) {
    public JsonLine json() {
      return new JsonLine().put("text", text).put("tokens", tokens)
          .put("tokens_per_s", Math.round(tokensPerSecond * 10) / 10.0).put("kv_cache", kvCache).put("step", step);
    }
  }

  private long[] encode(String text) {
    if (text == null || text.isBlank()) {
      throw new IllegalArgumentException("the text is empty: give some text");
    }
    String t = pkg.card().objective().equals(ModelCard.PROMPT_CLASSIFICATION) ? pkg.card().template().replace("{text}", text)
        : text;
    return pkg.exampleTokenizer().encode(t, pkg.card().maxTokens());
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("this personal model is closed");
    }
  }

  /**
   * A classification.
   *
   * @param label         the most probable label
   * @param probabilities each label's probability, in the card's order
   * @param step          the step of the trajectory that answered (0: the base model)
   */
  public record Classification(String label, Map<String, Double> probabilities, long step) {
    public JsonLine json() {
      return new JsonLine().put("label", label).put("probabilities", probabilities).put("step", step);
    }
  }

  /**
   * A score.
   *
   * @param loss             mean loss per predicted token (a classifier: of the given label)
   * @param perplexity       exp(loss)
   * @param tokens           predicted tokens averaged over (1 for a classifier)
   * @param labelProbability the given label's probability (classifiers), or null
   * @param step             the step of the trajectory that answered
   */
  public record Score(double loss, double perplexity, long tokens, Double labelProbability, long step) {
    public JsonLine json() {
      return new JsonLine().put("loss", loss).put("perplexity", perplexity).put("tokens", tokens)
          .put("label_probability", labelProbability).put("step", step);
    }
  }

  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    try {
      if (generator != null) {
        generator.close();
      }
      kernel.close();
      model.close();
    } finally {
      if (ownsStore && store != null) {
        store.close();
      }
    }
  }
}
