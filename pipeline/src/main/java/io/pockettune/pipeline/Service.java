package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.schemas.EventSerde;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.SourcePartition;
import io.pockettune.store.StoreFullException;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.StepRecord;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Time;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The background service behind {@code pockettune serve}: ingestion (appends that arrive through
 * the {@link ControlChannel}) and training (a {@link TrainingJob} on a {@link LiveLogSource}) on
 * one data directory, under a {@link Governor}, with {@link ServiceMetrics}.
 *
 * <h2>Threads</h2>
 * One training thread runs the loop: ask the governor, {@link TrainingJob#advance} (which commits
 * at most one step), rest per the duty cycle; when the source is idle it polls every
 * {@code pollMillis}. The control thread serves produce, status, pause and resume; the log, store
 * and metrics are thread-safe, and the figures it reads from the loop are volatile.
 *
 * <h2>Stopping</h2>
 * {@link #close} (from the SIGTERM shutdown hook, or when an idle service was asked to exit) stops
 * the loop between steps: the step in flight finishes and commits, nothing is abandoned halfway.
 * Then the control socket, the store and the log close, the log writing its clean-shutdown marker,
 * so the next start validates nothing. A SIGKILL instead leaves at most an uncommitted batch,
 * which the next start trains again from the committed offsets.
 *
 * <h2>A full disk</h2>
 * When a write of the store fails because the disk is full ({@link StoreFullException}), training
 * pauses instead of stopping: status shows {@code training: "paused: disk full (...)"}, one WARN
 * is logged, and every {@link #DISK_FULL_RETRY_MILLIS} the loop retries what is left of the step
 * (see {@link TrainingJob}: the same record and offsets, nothing trained twice). Once the write
 * succeeds training resumes by itself and logs so. Appends go on meanwhile where the log's disk
 * has room; the control socket answers throughout.
 *
 * <h2>Checkpoints</h2>
 * Besides the periodic ones ({@code checkpointEvery}), the service marks a checkpoint at the last
 * committed step when it stops cleanly (label {@code stop}) and when it has been idle, caught up
 * with the log, for 30 s (label {@code idle}), in both cases only if steps were
 * committed since the last checkpoint: a run shorter than {@code checkpointEvery} still leaves a
 * model to replay, export or roll back to, and an idle service marks one checkpoint per quiet
 * spell, not one per poll.
 */
final class Service implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Service.class);
  private static final int RECENT = 50;

  /**
   * Everything {@code serve} can set; {@code estimator} and {@code directions} (null and 0 until
   * {@link #withDefaults}) come from the card.
   */
  record Settings(int threads, int batch, long batchTokens, long maxWaitMillis, int maxTokens, double dutyCycle,
      long maxMemoryMb, int checkpointEvery, int snapshotEvery, float learningRate, float eps, long seed,
      long maxIdleMillis, long pollMillis, boolean exitWhenIdle, boolean reportMetrics, boolean controlSocket,
      MezoConfig.Estimator estimator, int directions) {

    /** Settings whose estimator is the card's. */
    Settings(int threads, int batch, long batchTokens, long maxWaitMillis, int maxTokens, double dutyCycle,
        long maxMemoryMb, int checkpointEvery, int snapshotEvery, float learningRate, float eps, long seed,
        long maxIdleMillis, long pollMillis, boolean exitWhenIdle, boolean reportMetrics, boolean controlSocket) {
      this(threads, batch, batchTokens, maxWaitMillis, maxTokens, dutyCycle, maxMemoryMb, checkpointEvery, snapshotEvery,
          learningRate, eps, seed, maxIdleMillis, pollMillis, exitWhenIdle, reportMetrics, controlSocket, null, 0);
    }

    /** These settings with the card's defaults where none was given (0 tokens, NaN lr or eps, no estimator). */
    Settings withDefaults(ModelCard card) {
      boolean cardEstimator = estimator == null;
      return new Settings(threads, batch, batchTokens, maxWaitMillis, maxTokens > 0 ? maxTokens : card.maxTokens(),
          dutyCycle, maxMemoryMb, checkpointEvery, snapshotEvery,
          Float.isNaN(learningRate) ? card.lr() : learningRate, Float.isNaN(eps) ? card.eps() : eps, seed,
          maxIdleMillis, pollMillis, exitWhenIdle, reportMetrics, controlSocket,
          cardEstimator ? card.estimatorOrDefault() : estimator, cardEstimator ? card.directionsOrDefault() : directions);
    }

    /** The run's trainer config: eps, lr and seed, under the estimator (MeZO unless FZOO is set). */
    MezoConfig mezo() {
      MezoConfig mezo = new MezoConfig(eps, learningRate, seed);
      return estimator == MezoConfig.Estimator.FZOO ? mezo.withFzoo(directions) : mezo;
    }
  }

  private final DataDirectory dir;
  private final Settings settings;
  private final Time time;
  private final PrintWriter progress;
  private volatile PrintWriter stepLog;
  private final EmbeddedLog log;
  private final LossModel model;
  private final StoreSession session;
  private final ModelPackage pkg;
  /** Personal models the control channel answers with, by pin ({@code latest} follows training). */
  private final Map<String, PersonalModel> models = new LinkedHashMap<>(4, 0.75f, true) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, PersonalModel> eldest) {
      if (size() > 3) {
        eldest.getValue().close();
        return true;
      }
      return false;
    }
  };
  private final ModelStore store;
  private final EventSerde serde;
  /** Replaced (by the trainer thread) when a forget rebuilds the job; read by status. */
  private volatile LiveLogSource source;
  private volatile TrainingJob job;
  /** Forgets asked for over the control channel or the API, run by the trainer thread between steps. */
  private final java.util.concurrent.LinkedBlockingQueue<ForgetRequest> forgets =
      new java.util.concurrent.LinkedBlockingQueue<>();

  private record ForgetRequest(List<String> refs,
      java.util.concurrent.CompletableFuture<PocketTune.ForgetResult> result) {}
  private final Governor governor;
  private final ServiceMetrics metrics;
  private final EventJson events;
  private final ControlChannel control;
  private final Thread trainer;
  private final CountDownLatch stopped = new CountDownLatch(1);
  private final Object wake = new Object();
  private final ArrayDeque<Double> recentLosses = new ArrayDeque<>();
  private final long startStep;
  private final long startedNanos;

  private volatile boolean stopping;
  /** Whether the last advance found nothing to train and the source caught up with the log. */
  private volatile boolean idle;
  /** Bumped (under {@link #wake}) to end a rest early. */
  private volatile long wakeups;
  private volatile Throwable failure;
  /** Why training waits for disk space (the store's sentence), or null while it is not. */
  private volatile String diskFull;
  private volatile long lastStep;
  private volatile double recentLoss = Double.NaN;
  private volatile Map<TopicPartition, Long> consumed;
  private volatile Checkpoint lastCheckpoint;
  /** When the source was last found caught up after a step, or {@link #NOT_QUIET}; trainer thread only. */
  private long quietSince = NOT_QUIET;
  /** Whether this quiet spell has had its idle checkpoint; trainer thread only. */
  private boolean quietCheckpointed;
  private boolean closed;

  private static final long NOT_QUIET = Long.MIN_VALUE;

  private Service(DataDirectory dir, ModelPackage pkg, EmbeddedLog log, EventSerde serde, Settings s, Time time,
      PrintWriter progress) throws IOException {
    this.dir = dir;
    this.settings = s;
    this.time = time;
    this.progress = progress;
    this.log = log;
    this.pkg = pkg;
    this.serde = serde;
    governor = new Governor(s.dutyCycle(), s.maxMemoryMb() * 1024 * 1024, Governor::residentSetBytes);
    StoreSession session = null;
    try {
      events = new EventJson(log, serde);
      MezoConfig mezo = s.mezo();
      session = StoreSession.forTraining(dir, pkg, mezo, s.batch(), s.maxTokens(), s.threads());
      ModelStore st = session.store();
      // A forget a crash interrupted is finished before anything trains or answers.
      if (Forgetting.finishPending(new Forgetting.Context(dir, pkg, log, serde, session, Forgetting.Batching.of(s)))
          .isPresent()) {
        session.resetToBase();
      }
      Restored restored = session.restore(st.lastStep());
      MezoTrainer mezoTrainer = restored.trainer();
      startStep = restored.step();
      lastStep = startStep;
      List<Checkpoint> checkpoints = st.checkpoints();
      lastCheckpoint = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);

      this.session = session;
      store = st;
      buildJob(mezoTrainer);
      metrics = new ServiceMetrics(this::lagTotal, () -> recentLoss);
      if (s.reportMetrics()) {
        metrics.report(dir.metrics());
      }
      model = session.model();
      control = s.controlSocket() ? new ControlChannel(dir.controlSocket(), this::handle) : null;
    } catch (RuntimeException | IOException e) {
      if (session != null) {
        session.close();
      }
      throw e;
    }
    startedNanos = time.nanoseconds();
    trainer = new Thread(this::loop, "pockettune-trainer");
  }

  /**
   * Makes the source (from the store's committed offsets), the batcher and the job that trains with
   * {@code trainer}: at the start, and again after a forget.
   */
  private void buildJob(MezoTrainer trainer) {
    Settings s = settings;
    Map<TopicPartition, Long> start = new LinkedHashMap<>();
    Map<SourcePartition, Long> committed = store.committedOffsets();
    for (TopicPartition tp : Topics.sources()) {
      start.put(tp, committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()),
          log.startOffset(tp.topic(), tp.partition())));
    }
    LiveLogSource src = new LiveLogSource(log, start, TimeUnit.MILLISECONDS.toNanos(s.maxIdleMillis()), time);
    MicroBatcher batcher = new MicroBatcher(s.batch(), s.batchTokens(),
        s.maxWaitMillis() == Long.MAX_VALUE ? Long.MAX_VALUE : TimeUnit.MILLISECONDS.toNanos(s.maxWaitMillis()), time);
    TrainingJob j = new TrainingJob(src, serde, pkg.mapper(), pkg.exampleTokenizer(), s.maxTokens(), batcher,
        trainer, store, new DeadLetters(log), s.checkpointEvery(), session.model().parameters(), s.snapshotEvery());
    consumed = start;
    source = src;
    job = pkg.card().classification() ? j.labelsOnly() : j;
  }

  /**
   * Forgets events beside training (see {@link Forgetting}): the trainer thread pauses between
   * steps, forgets, rebuilds its job from the store and trains on; this waits for it.
   */
  PocketTune.ForgetResult forget(List<String> refs) throws IOException {
    ForgetRequest r = new ForgetRequest(List.copyOf(refs), new java.util.concurrent.CompletableFuture<>());
    if (stopped.getCount() == 0 || stopping) {
      throw new IllegalStateException("training has stopped" + (failure == null ? "" : " (" + PocketTune.message(failure)
          + ")") + ": stop the service and forget with 'pockettune forget', which trains again itself");
    }
    forgets.add(r);
    wakeUp();
    try {
      return r.result().get();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new java.io.InterruptedIOException("interrupted while waiting for the forget; it goes on, and a restart"
          + " finishes it");
    } catch (java.util.concurrent.ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof IOException io) {
        throw io;
      }
      if (cause instanceof RuntimeException re) {
        throw re;
      }
      throw new IOException(PocketTune.message(cause), cause);
    }
  }

  /** Runs one forget on the trainer thread; a refused request leaves training as it was. */
  private void runForget(ForgetRequest r) {
    try {
      List<Forgetting.Event> events = Forgetting.resolve(log, serde, r.refs());
      synchronized (models) {
        models.values().forEach(PersonalModel::close); // they may hold what the events taught
        models.clear();
        Forgetting.Outcome o = Forgetting.forget(new Forgetting.Context(dir, pkg, log, serde, session,
            Forgetting.Batching.of(settings)), events);
        buildJob(o.trainer());
        lastStep = store.lastStep();
        List<Checkpoint> all = store.checkpoints();
        lastCheckpoint = all.stream().filter(Checkpoint::live).reduce((a, b) -> b).orElse(null);
        r.result().complete(o.result());
      }
    } catch (IOException | RuntimeException e) {
      r.result().completeExceptionally(e);
      if (Files.exists(dir.forgetJournal())) {
        // It failed half way (a full disk, say): the job's model may be ahead of the store or
        // hold what is being forgotten, so nothing trains until the journal is finished.
        unfinishedForget = PocketTune.message(e);
        LOG.warn("the forget failed half way ({}); training waits until it is finished, retried every {} ms",
            unfinishedForget, DISK_FULL_RETRY_MILLIS);
      }
    }
  }

  /** Why a forget failed half way, while its journal waits to be finished; trainer thread writes it. */
  private volatile String unfinishedForget;

  /** Tries to finish the forget that failed half way; @return whether it did (and the job was rebuilt). */
  private boolean finishForget() {
    try {
      synchronized (models) {
        models.values().forEach(PersonalModel::close);
        models.clear();
        Optional<Forgetting.Outcome> o = Forgetting.finishPending(new Forgetting.Context(dir, pkg, log, serde, session,
            Forgetting.Batching.of(settings)));
        if (o.isPresent()) {
          buildJob(o.get().trainer());
          lastStep = store.lastStep();
        }
      }
      unfinishedForget = null;
      LOG.info("finished the forget that had failed half way; training goes on at step {}", lastStep);
      return true;
    } catch (IOException | RuntimeException e) {
      unfinishedForget = PocketTune.message(e);
      return false;
    }
  }

  /**
   * Restores the package's model from the data directory's store and starts training from the
   * open {@code log} (which the caller owns and closes after this service).
   *
   * @param stepLog where "committed N" is printed after every commit, or null
   */
  static Service start(DataDirectory dir, ModelPackage pkg, EmbeddedLog log, EventSerde serde, Settings settings,
      Time time, PrintWriter progress, PrintWriter stepLog) throws IOException {
    Service s = new Service(dir, pkg, log, serde, settings.withDefaults(pkg.card()), time, progress);
    s.stepLog = stepLog;
    s.trainer.start();
    return s;
  }

  /** Waits up to {@code nanos}, returning early when woken (new events, pause or resume) or stopping. */
  private void sleep(long nanos) throws InterruptedException {
    if (nanos <= 0) {
      return;
    }
    long seen = wakeups;
    try {
      time.waitObject(wake, () -> stopping || wakeups != seen,
          time.milliseconds() + Math.max(1, TimeUnit.NANOSECONDS.toMillis(nanos)));
    } catch (org.apache.kafka.common.errors.TimeoutException rested) {
      // the whole rest passed
    }
  }

  private void wakeUp() {
    synchronized (wake) {
      wakeups++;
      wake.notifyAll();
    }
  }

  private void loop() {
    try {
      while (!stopping) {
        if (unfinishedForget != null && !finishForget()) {
          sleep(TimeUnit.MILLISECONDS.toNanos(DISK_FULL_RETRY_MILLIS));
          continue;
        }
        ForgetRequest forget = forgets.poll();
        if (forget != null) {
          runForget(forget);
          continue;
        }
        if (!governor.mayTrain()) {
          sleep(TimeUnit.MILLISECONDS.toNanos(settings.pollMillis()));
          continue;
        }
        long t0 = time.nanoseconds();
        long forwardsBefore = model.forwards();
        long forwardNanosBefore = model.forwardNanos();
        TrainingJob.Advance a;
        try {
          a = job.advance(this::stepCommitted);
        } catch (RuntimeException e) {
          if (!(e instanceof StoreFullException) && !isLogDiskFull(e)) {
            throw e;
          }
          if (diskFull == null) {
            LOG.warn("training paused: {}; it resumes by itself once the write succeeds (retried every {} ms)",
                e.getMessage(), DISK_FULL_RETRY_MILLIS);
          }
          diskFull = e.getMessage();
          sleep(TimeUnit.MILLISECONDS.toNanos(DISK_FULL_RETRY_MILLIS));
          continue;
        }
        if (diskFull != null) {
          diskFull = null;
          LOG.info("training resumed: the model store has room again (step {} committed)", lastStep);
        }
        metrics.deadLetters.mark(job.deadLetters() - metrics.deadLetters.getCount());
        consumed = source.positions();
        if (a == TrainingJob.Advance.IDLE) {
          idle = source.caughtUp();
          if (settings.exitWhenIdle() && idle) {
            break;
          }
          try {
            checkpointWhenQuiet(idle);
          } catch (StoreFullException full) {
            LOG.warn("no idle checkpoint: {}", full.getMessage());
          }
          sleep(TimeUnit.MILLISECONDS.toNanos(settings.pollMillis()));
          continue;
        }
        idle = false;
        quietSince = NOT_QUIET;
        quietCheckpointed = false;
        long took = time.nanoseconds() - t0;
        metrics.stepTook(took, model.forwards() - forwardsBefore, model.forwardNanos() - forwardNanosBefore);
        sleep(governor.restNanos(took));
      }
      try {
        checkpointLastStep("stop");
      } catch (StoreFullException full) {
        LOG.warn("no stop checkpoint: {}; the committed steps are kept", full.getMessage());
      }
    } catch (Throwable t) {
      failure = t;
      LOG.error("training stopped: {}", PocketTune.message(t), t);
    } finally {
      stopped.countDown();
      for (ForgetRequest r; (r = forgets.poll()) != null; ) {
        r.result().completeExceptionally(new IllegalStateException("training stopped before the forget ran: forget"
            + " with 'pockettune forget' once the service is stopped"));
      }
    }
  }

  private void stepCommitted(StepRecord r, long eventsTrained) {
    double loss = (r.lossPlus() + r.lossMinus()) / 2.0;
    synchronized (recentLosses) {
      recentLosses.addLast(loss);
      if (recentLosses.size() > RECENT) {
        recentLosses.removeFirst();
      }
      recentLoss = recentLosses.stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
    }
    lastStep = r.step();
    PrintWriter steps = stepLog;
    if (steps != null) {
      steps.println("committed " + r.step());
      steps.flush();
    }
    if (settings.checkpointEvery() > 0 && r.step() % settings.checkpointEvery() == 0) {
      List<Checkpoint> all = store.checkpoints();
      lastCheckpoint = all.isEmpty() ? null : all.get(all.size() - 1);
    }
    if (progress != null && (r.step() % 100 == 0)) {
      progress.printf(Locale.ROOT, "step %,d  loss %.4f  lag %,d  %s%n", r.step(), recentLoss, lagTotal(),
          governor.state());
      progress.flush();
    }
  }

  private String handle(JsonNode request, BufferedReader body) throws IOException {
    String op = request.path("op").asText("");
    switch (op) {
      case "status":
        return status().toString();
      case "pause", "resume":
        pause(op.equals("pause"));
        return status().toString();
      case "produce":
        String topic = request.path("topic").asText("");
        List<String> lines = new ArrayList<>();
        for (String line; (line = body.readLine()) != null; ) {
          if (!line.isBlank()) {
            lines.add(line);
          }
        }
        Map<String, List<Long>> offsets = lines.isEmpty() ? Map.of() : events.append(topic, lines, 1);
        metrics.eventsIn.mark(lines.size());
        wakeUp();
        return new JsonLine().put("appended", lines.size()).put("topic", topic).put("offsets", offsets).toString();
      case "forget":
        List<String> refs = new ArrayList<>();
        request.path("events").forEach(n -> refs.add(n.asText()));
        return forget(refs).json().toString();
      case "generate":
        synchronized (models) {
          List<String> stop = new ArrayList<>();
          request.path("stop").forEach(n -> stop.add(n.asText()));
          return personalModel(request.path("checkpoint").asText("latest")).complete(request.path("prompt").asText(""),
              new PersonalModel.CompletionOptions(request.path("max_new_tokens").asInt(32),
                  (float) request.path("temperature").asDouble(0), request.path("top_k").asInt(0),
                  (float) request.path("top_p").asDouble(1), request.path("seed").asLong(0), stop,
                  request.path("kv_cache").asBoolean(true))).json().toString();
        }
      case "classify", "score":
        List<Object> results = new ArrayList<>();
        synchronized (models) {
          PersonalModel m = personalModel(request.path("checkpoint").asText("latest"));
          for (String line; (line = body.readLine()) != null; ) {
            JsonNode q = EventJson.parseObject(line);
            String text = q.path("text").asText(null);
            results.add(op.equals("classify") ? m.classify(text).json()
                : m.score(text, q.path("label").isTextual() ? q.path("label").asText() : null).json());
          }
        }
        return new JsonLine().put("results", results).toString();
      default:
        return ControlChannel.error("unknown request '" + op + "': use status, pause, resume, produce, forget, generate, classify or score");
    }
  }

  /** The personal model the control channel answers with at {@code pin}. Caller holds {@link #models}. */
  private PersonalModel personalModel(String pin) {
    PersonalModel m = models.get(pin);
    if (m == null) {
      m = PersonalModel.open(pkg, store, false, pin, settings.threads());
      models.put(pin, m);
    }
    return m;
  }

  private long lagTotal() {
    long lag = 0;
    for (Map.Entry<TopicPartition, Long> e : consumed.entrySet()) {
      lag += log.endOffset(e.getKey().topic(), e.getKey().partition()) - e.getValue();
    }
    return lag;
  }

  /** @return the figures {@code status} shows */
  JsonLine status() {
    Map<String, Long> lag = new LinkedHashMap<>();
    consumed.forEach((tp, pos) -> lag.put(tp.topic() + "-" + tp.partition(),
        log.endOffset(tp.topic(), tp.partition()) - pos));
    JsonLine j = new JsonLine()
        .put("state", failure != null ? "failed" : stopping ? "stopping" : governor.state())
        .put("training", training())
        .put("service", true)
        .put("last_step", lastStep)
        .put("steps_this_run", lastStep - startStep)
        .put("recent_loss", recentLoss)
        .put("lag", lag.values().stream().mapToLong(Long::longValue).sum())
        .put("lag_by_partition", lag)
        .put("last_checkpoint", checkpointJson(lastCheckpoint))
        .put("duty_cycle", governor.dutyCycle())
        .put("uptime_s", Math.round((time.nanoseconds() - startedNanos) / 1e8) / 10.0)
        .put("data_dir", dir.toString())
        .put("unlabelled", job.unlabelled())
        .put("failed_partitions", failedPartitions())
        .put("store_memory_bytes", storeMemory());
    metrics.figures().forEach(j::put);
    if (failure != null) {
      j.put("error", PocketTune.message(failure));
    }
    return j;
  }

  /** @return the store's native memory by kind (see {@link ModelStore#memoryUsage}), or null if it cannot be read now */
  private Map<String, Long> storeMemory() {
    try {
      return store.memoryUsage();
    } catch (RuntimeException e) {
      return null; // closed, or reopening after a write error: status still answers
    }
  }

  /** @return what training does: running, paused (by the user), paused: disk full (why), stopping, failed */
  private String training() {
    if (failure != null) {
      return "failed";
    }
    if (stopping) {
      return "stopping";
    }
    String full = diskFull;
    if (full != null) {
      return "paused: disk full (" + full + ")";
    }
    String forget = unfinishedForget;
    if (forget != null) {
      return "paused: finishing a forget that failed (" + forget + ")";
    }
    return governor.state();
  }

  /**
   * @return whether {@code e} is a log append (a dead letter) that failed on a full disk: the JDK
   *     gives no errno, only the system's message for ENOSPC somewhere in the causes
   */
  static boolean isLogDiskFull(Throwable e) {
    if (!(e instanceof java.io.UncheckedIOException)) {
      return false;
    }
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (String.valueOf(t.getMessage()).contains("No space left on device")) {
        return true;
      }
    }
    return false;
  }

  /** How often training retries a store write that failed on a full disk. */
  static final long DISK_FULL_RETRY_MILLIS = 500;

  /** @return the log's partitions that refuse appends ("topic-p": one sentence why), empty when none */
  private Map<String, String> failedPartitions() {
    Map<String, String> failed = new LinkedHashMap<>();
    log.failedPartitions().forEach((tp, why) -> failed.put(tp.topic() + "-" + tp.partition(), why));
    return failed;
  }

  static JsonLine checkpointJson(Checkpoint c) {
    return c == null ? null : new JsonLine().put("id", c.id()).put("step", c.step()).put("label", c.label())
        .put("time", c.time().toString());
  }

  /**
   * Waits until every event appended before this call has been consumed (trained, dead-lettered
   * or skipped as unlabelled; a partial batch may stay open) or training stopped.
   *
   * @return whether that happened within {@code timeoutNanos}
   */
  boolean awaitIdle(long timeoutNanos) throws InterruptedException {
    long deadline = System.nanoTime() + timeoutNanos;
    long seen = wakeups;
    while (System.nanoTime() < deadline) {
      if (stopped.getCount() == 0 || (idle && wakeups == seen && lagTotal() == 0)) {
        return true;
      }
      seen = wakeups;
      Thread.sleep(5);
    }
    return false;
  }

  void pause(boolean pause) {
    governor.pause(pause);
    wakeUp();
  }

  /** Wakes a resting trainer (new events were appended). */
  void eventsAppended() {
    wakeUp();
  }

  ModelStore store() {
    return store;
  }

  /** Waits until training stops by itself (idle with exit-when-idle, or a failure). */
  void awaitStop() throws InterruptedException {
    stopped.await();
  }

  /** @return why training stopped, or null */
  Throwable failure() {
    return failure;
  }

  /**
   * How long the source must stay caught up before the {@code idle} checkpoint (or {@code maxIdle},
   * if longer): long enough that messages trickling in do not leave a checkpoint after every step.
   */
  static final long IDLE_CHECKPOINT_MILLIS = 30_000;

  /**
   * Marks the {@code idle} checkpoint once the source has stayed caught up for {@link
   * #IDLE_CHECKPOINT_MILLIS} (or {@code maxIdle}, if longer); once per quiet spell (a committed step
   * starts the next one).
   */
  private void checkpointWhenQuiet(boolean caughtUp) {
    if (!caughtUp) {
      quietSince = NOT_QUIET;
      return;
    }
    long now = time.nanoseconds();
    if (quietSince == NOT_QUIET) {
      quietSince = now;
    }
    long quiet = Math.max(settings.maxIdleMillis(), IDLE_CHECKPOINT_MILLIS);
    if (!quietCheckpointed && now - quietSince >= TimeUnit.MILLISECONDS.toNanos(quiet)) {
      quietCheckpointed = true;
      checkpointLastStep("idle");
    }
  }

  /** Marks a checkpoint at the last committed step unless one is there (see the class comment). */
  private void checkpointLastStep(String label) {
    Checkpoint c = job.checkpointLastStep(label);
    if (c != null) {
      lastCheckpoint = c;
    }
  }

  /** Stops after the step in flight, commits, marks a checkpoint, and closes the store (not the log). Idempotent. */
  @Override
  public synchronized void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    stopping = true;
    wakeUp();
    try {
      stopped.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      if (control != null) {
        control.close();
      }
      synchronized (models) {
        models.values().forEach(PersonalModel::close);
        models.clear();
      }
      metrics.close();
    } finally {
      session.close();
    }
  }
}
