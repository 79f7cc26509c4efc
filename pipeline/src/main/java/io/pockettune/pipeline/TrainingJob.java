package io.pockettune.pipeline;

import io.pockettune.schemas.EventDecodingException;
import io.pockettune.schemas.EventSerde;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TextTokenizer;
import io.pockettune.trainer.TokenBatch;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * The streaming job: source -> decode -> map to a {@link ExampleMapper.TrainingExample} ->
 * tokenize -> micro-batch -> MeZO step -> commit. The source is bounded ({@link LogSource}, for
 * the demo) or live ({@link LiveLogSource}, for the service, which calls {@link #advance} in its
 * loop). Each step is committed to the {@link ModelStore} in one write together with the next
 * offset of every source partition, taken at the point in the stream where the batch closed: the
 * offsets cover exactly the events of the batches committed so far plus any dead-lettered between
 * them. After a crash, replaying the committed steps and seeking to the committed offsets resumes
 * the job with no event trained twice or skipped. Events that cannot train (no payload, larger
 * than {@link #maxEventBytes}, undecodable, unmappable) go to {@link DeadLetters} and their offsets
 * are committed with the next step; one dead-lettered after the last commit is dead-lettered again
 * after a crash (dead letters are at least once; training is exactly once).
 *
 * <p><b>A write that fails</b> (the store's disk is full, {@link io.pockettune.store.StoreFullException})
 * leaves the step pending: the trainer's parameters are already past it and its events consumed,
 * so the next {@link #advance} first retries exactly what is left of it (the commit of the same
 * record and offsets, then its snapshot, then its checkpoint) before reading on. Nothing is
 * trained twice and no event is skipped, however often the retry fails first. A dead letter that
 * cannot be appended stays pending the same way.
 *
 * <p>Not thread-safe; one job per store.
 */
final class TrainingJob {

  /** Progress callback, invoked after every committed step. */
  interface Listener {
    void stepCommitted(StepRecord record, long eventsConsumed);
  }

  /** What a run did. */
  record Result(long steps, long eventsTrained, long deadLetters, long unlabelled, int checkpoints,
      boolean sourceExhausted) {}

  private final RecordSource source;
  private final EventSerde serde;
  private final ExampleMapper mapper;
  private final TextTokenizer tokenizer;
  private final int maxTokens;
  private final MicroBatcher batcher;
  private final MezoTrainer trainer;
  private final ModelStore store;
  private final DeadLetters deadLetters;
  private final int checkpointEvery;
  private final ParameterSet parameters;
  private final int snapshotEvery;

  /**
   * @param checkpointEvery steps between periodic checkpoints (0: none)
   * @param parameters      the trained parameters, snapshotted every {@code snapshotEvery} steps
   *                        so that restore and rollback replay at most that many steps (0: never)
   */
  TrainingJob(RecordSource source, EventSerde serde, ExampleMapper mapper, TextTokenizer tokenizer, int maxTokens,
      MicroBatcher batcher, MezoTrainer trainer, ModelStore store, DeadLetters deadLetters, int checkpointEvery,
      ParameterSet parameters, int snapshotEvery) {
    this.source = source;
    this.serde = serde;
    this.mapper = mapper;
    this.tokenizer = tokenizer;
    this.maxTokens = maxTokens;
    this.batcher = batcher;
    this.trainer = trainer;
    this.store = store;
    this.deadLetters = deadLetters;
    this.checkpointEvery = checkpointEvery;
    this.parameters = parameters;
    this.snapshotEvery = snapshotEvery;
  }

  private long steps;
  private long trained;
  private int checkpoints;
  private double recentLoss;
  private int recentSteps;
  private int maxEventBytes = DEFAULT_MAX_EVENT_BYTES;
  private boolean labelsOnly;
  private long unlabelled;
  /** Next offsets after the last event that is in the open batch or was dead-lettered. */
  private Map<TopicPartition, Long> before;
  /** A trained step whose commit, snapshot or checkpoint has not been written yet, or null. */
  private Pending pending;
  /** A consumed record whose dead letter could not be appended yet (a full disk), or null. */
  private LogSource.SourceRecord pendingDeadLetter;
  private String pendingReason;

  /** A trained step and how far its writes got. */
  private static final class Pending {
    final StepRecord record;
    final Map<SourcePartition, Long> offsets;
    boolean committed;
    boolean snapshotted;

    Pending(StepRecord record, Map<SourcePartition, Long> offsets) {
      this.record = record;
      this.offsets = offsets;
    }
  }

  /** @return the step trained but not yet fully written (see the class comment), or -1 */
  long pendingStep() {
    Pending p = pending;
    return p == null ? -1 : p.record.step();
  }

  /** What one {@link #advance} did. */
  enum Advance { COMMITTED, IDLE }

  /** Events larger than this go to the dead-letter topic undecoded (default 64 KiB). */
  static final int DEFAULT_MAX_EVENT_BYTES = 64 * 1024;

  /** Sets the size above which an event is dead-lettered as oversize. */
  TrainingJob maxEventBytes(int bytes) {
    if (bytes < 1) {
      throw new IllegalArgumentException("the event size limit must be positive, was " + bytes);
    }
    this.maxEventBytes = bytes;
    return this;
  }

  /**
   * Trains only on labelled examples (classification objectives): an event whose mapping has no
   * label is counted as unlabelled and skipped, its offset committed with the next step like a
   * dead letter's, but it is not a dead letter (replay still scores it).
   */
  TrainingJob labelsOnly() {
    this.labelsOnly = true;
    return this;
  }

  /** @return events skipped for having no label (see {@link #labelsOnly}) */
  long unlabelled() {
    return unlabelled;
  }

  /** Runs until {@code maxSteps} more steps are committed or the source has nothing more. */
  Result run(long maxSteps, Listener listener) {
    long target = steps + maxSteps;
    while (steps < target) {
      if (advance(listener) == Advance.IDLE) {
        return new Result(steps, trained, deadLetters.count(), unlabelled, checkpoints, true);
      }
    }
    return new Result(steps, trained, deadLetters.count(), unlabelled, checkpoints, false);
  }

  /**
   * Consumes records until exactly one step is committed, or until the source has nothing
   * available (then the open batch stays open, unless its maximum wait has passed).
   */
  Advance advance(Listener listener) {
    if (before == null) {
      before = source.positions();
    }
    if (pendingDeadLetter != null) {
      deadLetter(pendingDeadLetter, pendingReason);
    }
    if (pending != null) {
      finish(listener);
      return Advance.COMMITTED;
    }
    if (batcher.ready()) {
      commit(batcher.drain(), before, listener);
      return Advance.COMMITTED;
    }
    while (true) {
      LogSource.SourceRecord r = source.next();
      if (r == null) {
        if (batcher.ready()) {
          commit(batcher.drain(), before, listener);
          return Advance.COMMITTED;
        }
        return Advance.IDLE;
      }
      long[] tokens;
      int label;
      try {
        if (r.value() == null) {
          throw new IllegalArgumentException("no payload");
        }
        if (r.value().length > maxEventBytes) {
          throw new IllegalArgumentException("oversize: " + r.value().length + " bytes, more than the limit of "
              + maxEventBytes);
        }
        SpecificRecord event = serde.deserialize(r.value());
        ExampleMapper.TrainingExample example = mapper.map(event);
        if (labelsOnly && !example.labelled()) {
          unlabelled++;
          before = source.positions();
          continue;
        }
        tokens = tokenizer.encode(example.text(), maxTokens);
        label = example.label();
      } catch (EventDecodingException | IllegalArgumentException e) {
        deadLetter(r, e.getMessage());
        continue;
      }
      boolean committed = false;
      if (!batcher.fits(tokens)) {
        // The token budget closes the batch before this event: commit offsets from before it.
        commit(batcher.drain(), before, listener);
        committed = true;
      }
      batcher.add(tokens, label);
      before = source.positions();
      if (!committed && batcher.ready()) {
        commit(batcher.drain(), before, listener);
        committed = true;
      }
      if (committed) {
        return Advance.COMMITTED;
      }
    }
  }

  /**
   * Appends the dead letter of a consumed record; if that fails (the disk is full, say), the record
   * stays pending and the next {@link #advance} appends it first, so it is neither lost nor
   * committed past without its dead letter.
   */
  private void deadLetter(LogSource.SourceRecord r, String reason) {
    pendingDeadLetter = r;
    pendingReason = reason;
    deadLetters.send(r, reason);
    pendingDeadLetter = null;
    pendingReason = null;
    before = source.positions();
  }

  /** @return steps committed by this job */
  long steps() {
    return steps;
  }

  long deadLetters() {
    return deadLetters.count();
  }

  private void commit(TokenBatch batch, Map<TopicPartition, Long> positions, Listener listener) {
    StepRecord rec = trainer.step(batch);
    Map<SourcePartition, Long> offsets = new LinkedHashMap<>();
    positions.forEach((tp, next) -> offsets.put(new SourcePartition(tp.topic(), tp.partition()), next));
    pending = new Pending(rec, offsets);
    finish(listener);
  }

  /** Writes what is left of the pending step: commit, snapshot, checkpoint; each at most once. */
  private void finish(Listener listener) {
    Pending p = pending;
    StepRecord rec = p.record;
    if (!p.committed) {
      store.commitStep(rec, p.offsets);
      p.committed = true;
      steps++;
      trained += rec.batchSize();
      recentLoss += (rec.lossPlus() + rec.lossMinus()) / 2;
      recentSteps++;
    }
    if (!p.snapshotted) {
      store.snapshotIfDue(parameters, snapshotEvery);
      p.snapshotted = true;
    }
    if (checkpointEvery > 0 && rec.step() % checkpointEvery == 0) {
      mark(null);
    }
    pending = null;
    listener.stepCommitted(rec, trained);
  }

  /**
   * Marks a checkpoint at the last committed step unless a live one is there already (or no step
   * was ever committed): what the service does on a clean stop and when it goes idle, so that a
   * run shorter than {@link #checkpointEvery} still leaves a model to replay, export or roll back to.
   *
   * @return the checkpoint marked, or null when the last step already had one
   */
  Checkpoint checkpointLastStep(String label) {
    long last = store.lastStep();
    boolean covered = store.checkpoints().stream().anyMatch(c -> c.live() && c.step() == last);
    return last == 0 || covered ? null : mark(label);
  }

  /** A checkpoint with the mean training loss of this job's steps since the previous one (none if there were none). */
  private Checkpoint mark(String label) {
    Checkpoint c = store.markCheckpoint(label,
        recentSteps == 0 ? Map.of() : Map.of("train_loss", recentLoss / recentSteps));
    recentLoss = 0;
    recentSteps = 0;
    checkpoints++;
    return c;
  }
}
