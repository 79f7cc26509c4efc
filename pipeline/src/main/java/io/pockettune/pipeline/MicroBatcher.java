package io.pockettune.pipeline;

import io.pockettune.trainer.TokenBatch;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.utils.Time;

/**
 * Cuts a stream of tokenized examples into training batches. A batch closes when it holds
 * {@code maxExamples} examples, or when adding the next example would exceed {@code maxTokens}
 * tokens, or when its first example has waited {@code maxWaitNanos} (time from a Kafka {@link Time}, the project's one time seam).
 * With only the count trigger in force (the default), the batches of a stream depend on the
 * stream alone, which is what lets a restarted run reproduce an uninterrupted one exactly.
 *
 * <p>Not thread-safe.
 */
final class MicroBatcher {
  private final int maxExamples;
  private final long maxTokens;
  private final long maxWaitNanos;
  private final Time time;
  private final List<long[]> pending = new ArrayList<>();
  private final List<Integer> labels = new ArrayList<>();
  private long pendingTokens;
  private long openedAt;

  MicroBatcher(int maxExamples, long maxTokens, long maxWaitNanos, Time time) {
    if (maxExamples < 1 || maxTokens < 2 || maxWaitNanos < 0) {
      throw new IllegalArgumentException(
          "batch triggers must be positive: examples " + maxExamples + ", tokens " + maxTokens + ", wait " + maxWaitNanos);
    }
    this.maxExamples = maxExamples;
    this.maxTokens = maxTokens;
    this.maxWaitNanos = maxWaitNanos;
    this.time = time;
  }

  /** Count trigger only: every batch has exactly {@code examples} examples. */
  static MicroBatcher byCount(int examples) {
    return new MicroBatcher(examples, Long.MAX_VALUE, Long.MAX_VALUE, Time.SYSTEM);
  }

  /** @return false when the open batch must close before {@code tokens} joins it (token budget) */
  boolean fits(long[] tokens) {
    return pending.isEmpty() || pendingTokens + tokens.length <= maxTokens;
  }

  void add(long[] tokens) {
    add(tokens, ExampleMapper.TrainingExample.NO_LABEL);
  }

  /** Adds a classification example (or, with {@code NO_LABEL}, a language-modelling one). */
  void add(long[] tokens, int label) {
    if (pending.isEmpty()) {
      openedAt = time.nanoseconds();
    } else if ((label == ExampleMapper.TrainingExample.NO_LABEL) != (labels.get(0) == ExampleMapper.TrainingExample.NO_LABEL)) {
      throw new IllegalArgumentException("a batch cannot mix labelled and unlabelled examples");
    }
    pending.add(tokens);
    labels.add(label);
    pendingTokens += tokens.length;
  }

  /** @return true when the open batch must close now (count reached or waited too long) */
  boolean ready() {
    return !pending.isEmpty()
        && (pending.size() >= maxExamples || time.nanoseconds() - openedAt >= maxWaitNanos);
  }

  int pendingExamples() {
    return pending.size();
  }

  /** @return the examples so far as one batch (a classification batch when they carry labels) */
  TokenBatch drain() {
    TokenBatch b;
    if (labels.get(0) == ExampleMapper.TrainingExample.NO_LABEL) {
      b = TokenBatch.of(List.copyOf(pending));
    } else {
      b = TokenBatch.classification(List.copyOf(pending), labels.stream().mapToLong(Integer::longValue).toArray());
    }
    pending.clear();
    labels.clear();
    pendingTokens = 0;
    return b;
  }
}
