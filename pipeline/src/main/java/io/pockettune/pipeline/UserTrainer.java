package io.pockettune.pipeline;

import io.pockettune.schemas.EventDecodingException;
import io.pockettune.schemas.EventSerde;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TextTokenizer;
import io.pockettune.trainer.TokenBatch;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.utils.Time;

/**
 * One model package opened once and shared by many users, each with their own trainable values:
 * the device's training rules (decode, map, tokenize, batch, MeZO step) without the device's log
 * and store, for a server-side job that trains a whole fleet (the Flink job in the {@code fleet}
 * module). A user's values are swapped into the one session for a step and read back after it, so
 * the session's memory is paid once per process, not once per user.
 *
 * <p>Fed one user's events in order, with the same settings, it takes exactly the steps the device
 * would take (same records, bit-identical values): it uses the device's {@link ExampleMapper},
 * tokenizer, batching triggers and {@link MezoTrainer}, and the same run config, which
 * {@link #runConfig()} gives so that a device can replay the steps into its own store.
 *
 * <p>Nothing here touches the device store (model-store and its RocksDB): the class and what it
 * loads run where that library is absent. Not thread-safe: one per task slot.
 */
public final class UserTrainer implements AutoCloseable {

  /**
   * The training settings, as {@code serve} names them. Null learning rate or eps: the card's.
   *
   * @param batch         examples per step (count trigger)
   * @param batchTokens   token budget of a batch (a batch closes before an example that would pass it)
   * @param maxWaitMillis time trigger: a batch whose first example is this much older than the
   *                      newest closes (Long.MAX_VALUE: none)
   * @param maxTokens     tokens per example (0: the card's)
   * @param threads       threads of the ONNX Runtime session and the perturbation kernel
   */
  public record Settings(int batch, long batchTokens, long maxWaitMillis, int maxTokens, Float learningRate, Float eps,
      long seed, int threads) implements java.io.Serializable {
    public Settings {
      if (batch < 1 || batchTokens < 2 || maxWaitMillis < 0 || maxTokens < 0 || threads < 1) {
        throw new IllegalArgumentException("the batch and threads must be positive, the batch token budget at least 2,"
            + " and the wait and tokens per example not negative");
      }
    }

    /** The device's defaults: batch 16, no token budget or wait, the card's tokens, lr and eps, seed 42, 1 thread. */
    public static Settings defaults() {
      return new Settings(16, Long.MAX_VALUE, Long.MAX_VALUE, 0, null, null, 42, 1);
    }

    public Settings withBatch(int examples) {
      return new Settings(examples, batchTokens, maxWaitMillis, maxTokens, learningRate, eps, seed, threads);
    }

    public Settings withMaxWaitMillis(long millis) {
      return new Settings(batch, batchTokens, millis, maxTokens, learningRate, eps, seed, threads);
    }

    public Settings withThreads(int n) {
      return new Settings(batch, batchTokens, maxWaitMillis, maxTokens, learningRate, eps, seed, n);
    }

    Service.Settings service() {
      return new Service.Settings(threads, batch, batchTokens, maxWaitMillis, maxTokens, 1.0, 0, 0, 0,
          learningRate == null ? Float.NaN : learningRate, eps == null ? Float.NaN : eps, seed, 0, 1, false, false,
          false);
    }
  }

  /** One event made ready to train: tokens and label (for classification), or why it cannot train. */
  public record Example(long[] tokens, int label) {
    /** The label of a language-modelling example. */
    public static final int NO_LABEL = ExampleMapper.TrainingExample.NO_LABEL;
  }

  /**
   * What {@link #prepare} made of an event: an example, or the reason it goes to the dead letters,
   * or (classification) that it carries no label and is skipped, as the device skips it.
   */
  public record Prepared(Example example, String deadLetterReason, boolean unlabelled) {
    public boolean trains() {
      return example != null;
    }
  }

  private final ModelPackage pkg;
  private final Service.Settings settings;
  private final MezoConfig mezo;
  private final LossModel model;
  private final PerturbationKernel kernel;
  private final TextTokenizer tokenizer;
  private final ExampleMapper mapper;
  private final EventSerde serde = new EventSerde(io.pockettune.schemas.SchemaStore.withBuiltIns());
  private final float[] base;
  private final boolean classification;

  private UserTrainer(ModelPackage pkg, Service.Settings settings) {
    this.pkg = pkg;
    this.settings = settings;
    this.mezo = settings.mezo();
    this.model = pkg.open(settings.threads());
    try {
      this.kernel = new PerturbationKernel(settings.threads());
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
    this.tokenizer = pkg.exampleTokenizer();
    this.mapper = pkg.mapper();
    this.base = model.parameters().toArray();
    this.classification = pkg.card().classification();
  }

  /**
   * Opens the model package in {@code modelDir} (made by {@code pockettune model init}), or, when
   * it is null, the built-in demo model, written once under {@code workDir}.
   *
   * @throws IllegalArgumentException one sentence naming what is wrong with the package
   */
  public static UserTrainer open(Path modelDir, Path workDir, Settings settings) throws IOException {
    ModelPackage pkg = modelDir != null ? ModelPackage.load(modelDir) : ModelPackage.builtIn(DataDirectory.at(workDir));
    return new UserTrainer(pkg, settings.service().withDefaults(pkg.card()));
  }

  /** Decodes, maps and tokenizes one event value exactly as the device's training job does. */
  public Prepared prepare(byte[] value) {
    try {
      if (value == null) {
        throw new IllegalArgumentException("no payload");
      }
      if (value.length > TrainingJob.DEFAULT_MAX_EVENT_BYTES) {
        throw new IllegalArgumentException("oversize: " + value.length + " bytes, more than the limit of "
            + TrainingJob.DEFAULT_MAX_EVENT_BYTES);
      }
      SpecificRecord event = serde.deserialize(value);
      ExampleMapper.TrainingExample example = mapper.map(event);
      if (classification && !example.labelled()) {
        return new Prepared(null, null, true);
      }
      return new Prepared(new Example(tokenizer.encode(example.text(), settings.maxTokens()), example.label()), null,
          false);
    } catch (EventDecodingException | IllegalArgumentException e) {
      return new Prepared(null, e.getMessage(), false);
    }
  }

  /** @return examples per batch (the count trigger) */
  public int batch() {
    return settings.batch();
  }

  /** @return the time trigger in milliseconds (Long.MAX_VALUE: none) */
  public long maxWaitMillis() {
    return settings.maxWaitMillis();
  }

  /**
   * The token budget, as the device's batcher applies it: false when an open batch of {@code
   * pendingTokens} tokens must close before an example of {@code tokens} tokens joins it.
   */
  public boolean fits(int pendingExamples, long pendingTokens, long[] tokens) {
    return pendingExamples == 0 || pendingTokens + tokens.length <= settings.batchTokens();
  }

  /** @return a copy of the base model's trainable values: every user starts from them */
  public float[] baseValues() {
    return base.clone();
  }

  /** @return how many trainable values a user has */
  public int size() {
    return base.length;
  }

  /**
   * Trains one batch on a user's values: swaps {@code values} in, takes the step(s) the run's
   * estimator takes, and writes the trained values back into {@code values}. Each step comes with
   * the fingerprint of the values after it ({@link #fingerprint}); with several directions per
   * batch, the values between directions are found again by replaying the records on a copy.
   *
   * @param stepsDone  steps this user has taken so far
   * @param timeMillis the time stamped on the records (provenance only; replay never reads it)
   */
  public List<TrajectoryEntry> train(float[] values, long stepsDone, List<Example> examples, long timeMillis) {
    if (examples.isEmpty()) {
      throw new IllegalArgumentException("a batch needs at least one example");
    }
    float[] before = mezo.directions() > 1 && mezo.estimator() == MezoConfig.Estimator.MEZO ? values.clone() : null;
    ParameterSet p = model.parameters();
    p.load(values);
    MezoTrainer trainer = new MezoTrainer(model, mezo, kernel, stepsDone, fixedClock(timeMillis));
    List<StepRecord> records = trainer.steps(batchOf(examples));
    p.floats().get(0, values, 0, values.length);
    List<TrajectoryEntry> entries = new ArrayList<>(records.size());
    for (int i = 0; i < records.size(); i++) {
      if (i < records.size() - 1) {
        replay(before, records.get(i));
        entries.add(new TrajectoryEntry(records.get(i), fingerprint(before)));
      } else {
        entries.add(new TrajectoryEntry(records.get(i), fingerprint(values)));
      }
    }
    return entries;
  }

  /** Re-applies a recorded step to a user's values (which must stand at {@code r.step() - 1}). */
  public void replay(float[] values, StepRecord r) {
    ParameterSet p = model.parameters();
    p.load(values);
    new MezoTrainer(model, mezo, kernel, r.step() - 1).replay(r);
    p.floats().get(0, values, 0, values.length);
  }

  private static TokenBatch batchOf(List<Example> examples) {
    List<long[]> tokens = new ArrayList<>(examples.size());
    for (Example e : examples) {
      tokens.add(e.tokens());
    }
    if (examples.get(0).label() == Example.NO_LABEL) {
      return TokenBatch.of(tokens);
    }
    long[] labels = new long[examples.size()];
    for (int i = 0; i < labels.length; i++) {
      labels[i] = examples.get(i).label();
    }
    return TokenBatch.classification(tokens, labels);
  }

  /** The hash of the base model's graph, as the device store records it. */
  public String baseModelHash() {
    return model.baseModelHash();
  }

  /** The trainable layout (names and shapes), as the device store records it. */
  public String layout() {
    return model.parameters().layout();
  }

  /** The run config as the device records it, so that a device replaying these steps checks it. */
  public String runConfig() {
    return RunConfig.of(pkg, mezo, settings.batch(), settings.maxTokens()).toJson();
  }

  /** @return the model package's hash (graph and card) */
  public String packageHash() {
    return pkg.hash();
  }

  /** SHA-256 of the values' IEEE bits, as {@link ParameterSet#digest()} computes it. */
  public static String digest(float[] values) {
    return java.util.HexFormat.of().formatHex(sha256(values));
  }

  /** The first 8 bytes of {@link #digest}, big-endian: what a trajectory entry carries per step. */
  public static long fingerprint(float[] values) {
    return ByteBuffer.wrap(sha256(values)).getLong();
  }

  private static byte[] sha256(float[] values) {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      ByteBuffer le = ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
      le.asFloatBuffer().put(values);
      md.update(le);
      return md.digest();
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("SHA-256 is required of every JDK", e);
    }
  }

  private static Time fixedClock(long millis) {
    return new Time() {
      @Override
      public long milliseconds() {
        return millis;
      }

      @Override
      public long nanoseconds() {
        return TimeUnit.MILLISECONDS.toNanos(millis);
      }

      @Override
      public void sleep(long ms) {
        throw new UnsupportedOperationException("a step's clock only stamps records");
      }

      @Override
      public void waitObject(Object obj, java.util.function.Supplier<Boolean> condition, long deadlineMs) {
        throw new UnsupportedOperationException("a step's clock only stamps records");
      }
    };
  }

  @Override
  public void close() {
    try {
      kernel.close();
    } finally {
      model.close();
    }
  }
}
