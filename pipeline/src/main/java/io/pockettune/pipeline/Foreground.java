package io.pockettune.pipeline;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.schemas.EventSerde;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;

/**
 * Training in the caller's thread, on a bounded slice of the log (what the demo does): the model
 * restored once, then any number of bounded runs and evaluations at the latest committed step.
 *
 * <p>Not thread-safe.
 */
final class Foreground implements AutoCloseable {
  private final ModelPackage pkg;
  private final EmbeddedLog log;
  private final EventSerde serde;
  private final Service.Settings settings;
  private final StoreSession session;
  private final MezoTrainer trainer;
  private final Restored restored;

  private Foreground(ModelPackage pkg, EmbeddedLog log, EventSerde serde, Service.Settings settings,
      StoreSession session, Restored restored) {
    this.pkg = pkg;
    this.log = log;
    this.serde = serde;
    this.settings = settings;
    this.session = session;
    this.restored = restored;
    this.trainer = restored.trainer();
  }

  static Foreground open(DataDirectory dir, ModelPackage pkg, EmbeddedLog log, EventSerde serde, Service.Settings given)
      throws IOException {
    Service.Settings s = given.withDefaults(pkg.card());
      MezoConfig mezo = s.mezo();
    StoreSession session = StoreSession.forTraining(dir, pkg, mezo, s.batch(), s.maxTokens(), s.threads());
    try {
      // A forget a crash interrupted is finished before anything trains.
      if (Forgetting.finishPending(new Forgetting.Context(dir, pkg, log, serde, session, Forgetting.Batching.of(s)))
          .isPresent()) {
        session.resetToBase();
      }
      return new Foreground(pkg, log, serde, s, session, session.restore(session.store().lastStep()));
    } catch (IOException | RuntimeException e) {
      session.close();
      throw e;
    }
  }

  /** Trains up to {@code maxSteps} steps on the events from the committed offsets to {@code until}. */
  PocketTune.TrainResult train(long maxSteps, Map<TopicPartition, Long> until, PocketTune.StepListener listener) {
    ModelStore store = session.store();
    Map<TopicPartition, Long> start = new LinkedHashMap<>();
    Map<SourcePartition, Long> committed = store.committedOffsets();
    for (TopicPartition tp : Topics.sources()) {
      start.put(tp, committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()),
          log.startOffset(tp.topic(), tp.partition())));
    }
    TrainingJob job = new TrainingJob(new LogSource(log, start, until), serde, pkg.mapper(), pkg.exampleTokenizer(),
        settings.maxTokens(), MicroBatcher.byCount(settings.batch()), trainer, store, new DeadLetters(log),
        settings.checkpointEvery(), session.model().parameters(), settings.snapshotEvery());
    if (pkg.card().classification()) {
      job.labelsOnly();
    }
    TrainingJob.Result r = job.run(maxSteps, (rec, events) ->
        listener.stepCommitted(rec.step(), (rec.lossPlus() + rec.lossMinus()) / 2.0));
    return new PocketTune.TrainResult(r.steps(), store.lastStep(), r.eventsTrained(), r.deadLetters(), r.unlabelled(),
        session.model().parameters().size(), restored.snapshotStep(), restored.replayed());
  }

  /** The current model's loss on the events in [{@code from}, {@code to}). */
  double evaluate(Map<TopicPartition, Long> from, Map<TopicPartition, Long> to, int batch) {
    ReplayEvaluation.Slice slice = ReplayEvaluation.read(log, serde, pkg.mapper(), pkg.exampleTokenizer(),
        settings.maxTokens(), batch, from, to, pkg.card().classification());
    return trainer.evaluate(slice.batches());
  }

  ModelStore store() {
    return session.store();
  }

  @Override
  public void close() {
    session.close();
  }
}
