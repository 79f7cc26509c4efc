package io.pockettune.pipeline;

import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.LogReader;
import io.pockettune.schemas.EventDecodingException;
import io.pockettune.schemas.EventSerde;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TextTokenizer;
import io.pockettune.trainer.TokenBatch;
import java.io.IOException;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import org.apache.kafka.common.TopicPartition;

/**
 * Evaluation by replay: reads a slice of the log without training and evaluates checkpoints on it
 * (the simulator pattern: one fixed trace, pluggable models). The slice is read in the pipeline's
 * merge order ({@link LogSource}), decoded and mapped like training, cut into batches of
 * {@code batchSize}; events that would be dead-lettered are skipped and counted. Each checkpoint is
 * restored exactly ({@link ModelStore#restore}: nearest snapshot plus replay of step records) and
 * evaluated with {@link MezoTrainer#evaluate}, the trainer's own evaluation: loss per target token,
 * weighted over batches; perplexity is exp(loss); accuracy is reported for classification batches.
 * Only forward passes run, batched. The prequential mode instead starts from one checkpoint and,
 * for each batch, evaluates it and then trains on it in memory (test-then-train); nothing is
 * committed.
 *
 * <p>Not thread-safe.
 */
final class ReplayEvaluation {

  /**
   * What to evaluate: a checkpoint, or a step that has none ({@code base}, step 0, and
   * {@code latest}, the last committed step), whose id is then null.
   */
  record Target(Long id, long step, String label) {
    static Target of(Checkpoint c) {
      return new Target(c.id(), c.step(), c.label());
    }
  }

  /** The figures of one target; {@code id} is its checkpoint's, or null. */
  record Result(Long id, long step, String label, double loss, double perplexity, Double accuracy,
      long[] unlabelledPredicted) {}

  /** One batch of a prequential run: the loss before training on it. */
  record PrequentialPoint(int batch, long step, int events, double lossBefore) {}

  /** A slice read and tokenized. */
  record Slice(Map<TopicPartition, Long> from, Map<TopicPartition, Long> to, List<TokenBatch> batches,
      List<TokenBatch> unlabelledBatches, long events, long unlabelled, long skipped) {}

  private ReplayEvaluation() {}

  /**
   * Parses a slice bound: a number is an offset applied to every partition (clamped to what the
   * partition holds); anything else must be an ISO-8601 instant, resolved per partition to the
   * first record at or after it through the time index.
   */
  static Map<TopicPartition, Long> bound(LogReader log, List<TopicPartition> partitions, String bound, boolean start)
      throws IOException {
    Map<TopicPartition, Long> out = new LinkedHashMap<>();
    Instant time = null;
    long offset = -1;
    if (bound != null) {
      Comparable<?> parsed = parseBound(bound, start ? "--from" : "--to");
      if (parsed instanceof Long l) {
        offset = l;
      } else {
        time = (Instant) parsed;
      }
    }
    for (TopicPartition tp : partitions) {
      long first = log.startOffset(tp.topic(), tp.partition());
      long end = log.endOffset(tp.topic(), tp.partition());
      long o;
      if (bound == null) {
        o = start ? first : end;
      } else if (time != null) {
        Optional<LogEntry> e = log.findByTimestamp(tp.topic(), tp.partition(), time.toEpochMilli());
        o = e.map(LogEntry::offset).orElse(end);
      } else {
        o = offset;
      }
      out.put(tp, Math.max(first, Math.min(end, o)));
    }
    return out;
  }

  /** A bound as an offset (Long) or an instant; {@code option} names it in the error. */
  private static Comparable<?> parseBound(String bound, String option) {
    if (bound.matches("\\d+")) {
      try {
        return Long.parseLong(bound);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(option + " " + bound + " is too large for an offset: give one below 2^63");
      }
    }
    try {
      return Instant.parse(bound);
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException(option + " '" + bound + "' is neither an offset nor an ISO-8601 instant such"
          + " as 2026-09-01T07:00:00Z: give it as one of them");
    }
  }

  /**
   * Refuses a {@code from} after {@code to} when both are offsets or both instants (the slice is
   * [from, to)); a mix is compared per partition once resolved.
   */
  static void requireOrdered(String from, String to) {
    if (from == null || to == null) {
      return;
    }
    Comparable<?> f = parseBound(from, "--from");
    Comparable<?> t = parseBound(to, "--to");
    boolean after = f instanceof Long a && t instanceof Long b ? a > b
        : f instanceof Instant x && t instanceof Instant y && x.isAfter(y);
    if (after) {
      throw new IllegalArgumentException("--from " + from + " is after --to " + to + ": --from is the first offset or"
          + " instant to evaluate and --to the one to stop before, so give a --from at or before --to");
    }
  }

  /** Reads the slice [from, to) and cuts it into batches. */
  static Slice read(LogReader log, EventSerde serde, ExampleMapper mapper, TextTokenizer tokenizer, int maxTokens,
      int batchSize, Map<TopicPartition, Long> from, Map<TopicPartition, Long> to) {
    return read(log, serde, mapper, tokenizer, maxTokens, batchSize, from, to, false);
  }

  /**
   * @param classification whether examples without a label are kept apart (classification
   *     objectives: they are scored by their predictions, not by a loss)
   */
  static Slice read(LogReader log, EventSerde serde, ExampleMapper mapper, TextTokenizer tokenizer, int maxTokens,
      int batchSize, Map<TopicPartition, Long> from, Map<TopicPartition, Long> to, boolean classification) {
    LogSource source = new LogSource(log, from, to);
    MicroBatcher batcher = MicroBatcher.byCount(batchSize);
    MicroBatcher unlabelledBatcher = MicroBatcher.byCount(batchSize);
    List<TokenBatch> batches = new ArrayList<>();
    List<TokenBatch> unlabelledBatches = new ArrayList<>();
    long events = 0;
    long unlabelled = 0;
    long skipped = 0;
    for (LogSource.SourceRecord r = source.next(); r != null; r = source.next()) {
      ExampleMapper.TrainingExample example;
      try {
        if (r.value() == null || r.value().length > TrainingJob.DEFAULT_MAX_EVENT_BYTES) {
          throw new IllegalArgumentException("no payload or oversize");
        }
        example = mapper.map(serde.deserialize(r.value()));
      } catch (EventDecodingException | IllegalArgumentException e) {
        skipped++;
        continue;
      }
      long[] tokens = tokenizer.encode(example.text(), maxTokens);
      if (classification && !example.labelled()) {
        unlabelledBatcher.add(tokens);
        unlabelled++;
        if (unlabelledBatcher.ready()) {
          unlabelledBatches.add(unlabelledBatcher.drain());
        }
        continue;
      }
      batcher.add(tokens, example.label());
      events++;
      if (batcher.ready()) {
        batches.add(batcher.drain());
      }
    }
    if (batcher.pendingExamples() > 0) {
      batches.add(batcher.drain());
    }
    if (unlabelledBatcher.pendingExamples() > 0) {
      unlabelledBatches.add(unlabelledBatcher.drain());
    }
    return new Slice(from, to, batches, unlabelledBatches, events, unlabelled, skipped);
  }

  /** Evaluates each checkpoint on the batches; {@code model} must hold the base values. */
  static List<Result> evaluate(ModelStore store, LossModel model, Function<String, MezoConfig> configOf, PerturbationKernel kernel,
      List<Checkpoint> checkpoints, List<TokenBatch> batches) {
    return evaluate(store, model, configOf, kernel, checkpoints, batches, List.of());
  }

  /** As above; each checkpoint also predicts the {@code unlabelled} batches (counts per label). */
  static List<Result> evaluate(ModelStore store, LossModel model, Function<String, MezoConfig> configOf, PerturbationKernel kernel,
      List<Checkpoint> checkpoints, List<TokenBatch> batches, List<TokenBatch> unlabelled) {
    return evaluateTargets(store, model, configOf, kernel, checkpoints.stream().map(Target::of).toList(), batches,
        unlabelled);
  }

  /** As above, for checkpoints and steps without one; a step evaluated once serves every target at it. */
  static List<Result> evaluateTargets(ModelStore store, LossModel model, Function<String, MezoConfig> configOf,
      PerturbationKernel kernel, List<Target> targets, List<TokenBatch> batches, List<TokenBatch> unlabelled) {
    float[] base = model.parameters().toArray();
    List<Result> results = new ArrayList<>();
    Map<Long, Result> byStep = new java.util.HashMap<>();
    for (Target c : targets) {
      Result same = byStep.get(c.step());
      if (same != null) {
        results.add(new Result(c.id(), c.step(), c.label(), same.loss(), same.perplexity(), same.accuracy(),
            same.unlabelledPredicted()));
        continue;
      }
      model.parameters().load(base);
      Result r = evaluateAt(store, model, configOf, kernel, c.id(), c.step(), c.label(), batches, unlabelled);
      byStep.put(c.step(), r);
      results.add(r);
    }
    model.parameters().load(base);
    return results;
  }

  /**
   * Evaluates the model restored at {@code step} ({@code model} must hold the base values, and is
   * left at that step).
   */
  static Result evaluateAt(ModelStore store, LossModel model, Function<String, MezoConfig> configOf, PerturbationKernel kernel, Long id,
      long step, String label, List<TokenBatch> batches, List<TokenBatch> unlabelled) {
    MezoTrainer trainer = store.restore(step, model, configOf, kernel).trainer();
    double loss = batches.isEmpty() ? Double.NaN : trainer.evaluate(batches);
    return new Result(id, step, label, loss, Math.exp(loss), accuracy(model, batches), predictions(model, unlabelled));
  }

  /** Per label, how many of the unlabelled examples the model predicts it for; null when there are none. */
  private static long[] predictions(LossModel model, List<TokenBatch> unlabelled) {
    if (unlabelled.isEmpty()) {
      return null;
    }
    long[] counts = null;
    for (TokenBatch b : unlabelled) {
      for (float[] row : model.labelProbabilities(b)) {
        if (counts == null) {
          counts = new long[row.length];
        }
        int best = 0;
        for (int j = 1; j < row.length; j++) {
          best = row[j] > row[best] ? j : best;
        }
        counts[best]++;
      }
    }
    return counts;
  }

  private static Double accuracy(LossModel model, List<TokenBatch> batches) {
    long right = 0;
    long total = 0;
    for (TokenBatch b : batches) {
      if (b.labels() == null) {
        return null;
      }
      int[] predicted = model.predict(b);
      for (int i = 0; i < predicted.length; i++) {
        right += predicted[i] == b.labels()[i] ? 1 : 0;
        total++;
      }
    }
    return total == 0 ? null : (double) right / total;
  }

  /** Test-then-train from {@code startStep}: each batch's loss before the trainer steps on it. */
  static List<PrequentialPoint> prequential(ModelStore store, LossModel model, Function<String, MezoConfig> configOf,
      PerturbationKernel kernel, long startStep, List<TokenBatch> batches) {
    MezoTrainer trainer = store.restore(startStep, model, configOf, kernel).trainer();
    List<PrequentialPoint> points = new ArrayList<>();
    for (int i = 0; i < batches.size(); i++) {
      TokenBatch b = batches.get(i);
      double before = trainer.evaluate(List.of(b));
      trainer.step(b);
      points.add(new PrequentialPoint(i + 1, startStep + i + 1, b.size(), before));
    }
    return points;
  }
}
