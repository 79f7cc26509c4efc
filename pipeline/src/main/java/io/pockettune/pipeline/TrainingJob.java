package io.pockettune.pipeline;

import io.pockettune.schemas.EventDecodingException;
import io.pockettune.schemas.EventSerde;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TokenBatch;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * The streaming job: source -> decode -> map to text -> tokenize -> micro-batch -> MeZO step ->
 * commit. Each step is committed to the {@link ModelStore} in one write together with the next
 * offset of every source partition, taken at the point in the stream where the batch closed: the
 * offsets cover exactly the events of the batches committed so far plus any dead-lettered between
 * them. After a crash, replaying the committed steps and seeking to the committed offsets resumes
 * the job with no event trained twice or skipped.
 *
 * <p>Not thread-safe; one job per store.
 */
final class TrainingJob {

  /** Progress callback, invoked after every committed step. */
  interface Listener {
    void stepCommitted(StepRecord record, long eventsConsumed);
  }

  /** What a run did. */
  record Result(long steps, long eventsTrained, long deadLetters, int checkpoints, boolean sourceExhausted) {}

  private final LogSource source;
  private final EventSerde serde;
  private final ExampleMapper mapper;
  private final ByteTokenizer tokenizer;
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
  TrainingJob(LogSource source, EventSerde serde, ExampleMapper mapper, ByteTokenizer tokenizer, int maxTokens,
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

  /** Runs until {@code maxSteps} more steps are committed or the source is exhausted. */
  Result run(long maxSteps, Listener listener) {
    long target = steps + maxSteps;
    Map<TopicPartition, Long> before = source.positions();
    while (steps < target) {
      LogSource.SourceRecord r = source.next();
      if (r == null) {
        return new Result(steps, trained, deadLetters.count(), checkpoints, true);
      }
      long[] tokens;
      try {
        SpecificRecord event = serde.deserialize(r.value());
        tokens = tokenizer.encode(mapper.text(event), maxTokens);
      } catch (EventDecodingException | IllegalArgumentException e) {
        deadLetters.send(r, e.getMessage());
        before = source.positions();
        continue;
      }
      if (!batcher.fits(tokens)) {
        // The token budget closes the batch before this event: commit offsets from before it.
        commit(batcher.drain(), before, listener);
        if (steps >= target) {
          break; // this event stays uncommitted: the next run starts with it
        }
      }
      batcher.add(tokens);
      before = source.positions();
      if (batcher.ready()) {
        commit(batcher.drain(), before, listener);
      }
    }
    return new Result(steps, trained, deadLetters.count(), checkpoints, false);
  }

  private void commit(TokenBatch batch, Map<TopicPartition, Long> positions, Listener listener) {
    StepRecord rec = trainer.step(batch);
    Map<SourcePartition, Long> offsets = new LinkedHashMap<>();
    positions.forEach((tp, next) -> offsets.put(new SourcePartition(tp.topic(), tp.partition()), next));
    store.commitStep(rec, offsets);
    store.snapshotIfDue(parameters, snapshotEvery);
    steps++;
    trained += rec.batchSize();
    recentLoss += (rec.lossPlus() + rec.lossMinus()) / 2;
    recentSteps++;
    if (checkpointEvery > 0 && rec.step() % checkpointEvery == 0) {
      store.markCheckpoint(null, Map.of("train_loss", recentLoss / recentSteps));
      recentLoss = 0;
      recentSteps = 0;
      checkpoints++;
    }
    listener.stepCommitted(rec, trained);
  }
}
