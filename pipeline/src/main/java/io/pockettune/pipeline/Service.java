package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.RunIdentity;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TrainableSelection;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.TopicPartition;
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
 */
final class Service implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(Service.class);
  private static final int RECENT = 50;

  /** Everything {@code serve} can set. */
  record Settings(int threads, int batch, long batchTokens, long maxWaitMillis, int maxTokens, double dutyCycle,
      long maxMemoryMb, int checkpointEvery, int snapshotEvery, float learningRate, float eps, long seed,
      long maxIdleMillis, long pollMillis, boolean exitWhenIdle, boolean reportMetrics) {}

  private final Path dir;
  private final Settings settings;
  private final Clock clock;
  private final PrintWriter progress;
  private volatile PrintWriter stepLog;
  private final EmbeddedLog log;
  private final LossModel model;
  private final PerturbationKernel kernel;
  private final ModelStore store;
  private final LiveLogSource source;
  private final TrainingJob job;
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
  private volatile Throwable failure;
  private volatile long lastStep;
  private volatile double recentLoss = Double.NaN;
  private volatile Map<TopicPartition, Long> consumed;
  private volatile Checkpoint lastCheckpoint;
  private boolean closed;

  private Service(Path dir, Settings s, Clock clock, Governor.Sleeper sleeper, PrintWriter progress) throws IOException {
    this.dir = dir;
    this.settings = s;
    this.clock = clock;
    this.progress = progress;
    governor = new Governor(s.dutyCycle(), s.maxMemoryMb() * 1024 * 1024, Governor::residentSetBytes, sleeper);
    Files.createDirectories(dir);
    byte[] onnx = DemoCommand.baseModel(dir.resolve("model").resolve("base.onnx"), DecoderLmConfig.demo());
    log = EmbeddedLog.open(dir.resolve("log"));
    LossModel m = null;
    PerturbationKernel k = null;
    ModelStore st = null;
    try {
      Topics.create(log);
      EventSerde serde = new EventSerde(SchemaStore.open(dir.resolve("schemas")));
      events = new EventJson(log, serde);
      m = LossModel.causalLm(onnx, TrainableSelection.all(), s.threads());
      k = new PerturbationKernel(s.threads());
      MezoConfig mezo = new MezoConfig(s.eps(), s.learningRate(), s.seed());
      String runConfig = new JsonLine().put("model", "model/base.onnx").put("trainable", "all")
          .put("eps", s.eps()).put("lr", s.learningRate()).put("seed", s.seed()).put("batch", s.batch())
          .put("max_tokens", s.maxTokens()).put("distribution", mezo.distribution().name())
          .put("weight_decay", mezo.weightDecay()).toString();
      st = ModelStore.open(dir.resolve("store"), new RunIdentity(m.baseModelHash(), PerturbationKernel.VERSION,
          m.parameters().layout(), runConfig));
      Restored restored = st.restore(st.lastStep(), m, mezo, k);
      MezoTrainer mezoTrainer = restored.trainer();
      startStep = restored.step();
      lastStep = startStep;
      List<Checkpoint> checkpoints = st.checkpoints();
      lastCheckpoint = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);

      Map<TopicPartition, Long> start = new LinkedHashMap<>();
      Map<SourcePartition, Long> committed = st.committedOffsets();
      for (TopicPartition tp : Topics.sources()) {
        start.put(tp, committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()),
            log.startOffset(tp.topic(), tp.partition())));
      }
      consumed = start;
      source = new LiveLogSource(log, start, TimeUnit.MILLISECONDS.toNanos(s.maxIdleMillis()), clock);
      MicroBatcher batcher = new MicroBatcher(s.batch(), s.batchTokens(),
          s.maxWaitMillis() == Long.MAX_VALUE ? Long.MAX_VALUE : TimeUnit.MILLISECONDS.toNanos(s.maxWaitMillis()), clock);
      job = new TrainingJob(source, serde, ExampleMapper.defaults(), new ByteTokenizer(), s.maxTokens(), batcher,
          mezoTrainer, st, new DeadLetters(log), s.checkpointEvery(), m.parameters(), s.snapshotEvery());
      metrics = new ServiceMetrics(this::lagTotal, () -> recentLoss);
      if (s.reportMetrics()) {
        metrics.report(dir.resolve("metrics"));
      }
      model = m;
      kernel = k;
      store = st;
      control = new ControlChannel(ControlChannel.socketOf(dir), this::handle);
    } catch (RuntimeException | IOException e) {
      if (st != null) {
        st.close();
      }
      if (k != null) {
        k.close();
      }
      if (m != null) {
        m.close();
      }
      log.close();
      throw e;
    }
    startedNanos = clock.nanoTime();
    trainer = new Thread(this::loop, "pockettune-trainer");
  }

  /** Opens the data directory (creating it and the demo's model when new), restores the model and starts training. */
  static Service start(Path dir, Settings settings, PrintWriter progress) throws IOException {
    return start(dir, settings, progress, null);
  }

  /** {@link #start(Path, Settings, PrintWriter)}, printing "committed N" to {@code stepLog} after every commit. */
  static Service start(Path dir, Settings settings, PrintWriter progress, PrintWriter stepLog) throws IOException {
    Service[] self = new Service[1];
    Governor.Sleeper sleeper = nanos -> self[0].sleep(nanos);
    Service s = new Service(dir, settings, Clock.SYSTEM, sleeper, progress);
    self[0] = s;
    s.stepLog = stepLog;
    s.trainer.start();
    return s;
  }

  private void sleep(long nanos) throws InterruptedException {
    synchronized (wake) {
      if (!stopping) {
        TimeUnit.NANOSECONDS.timedWait(wake, nanos);
      }
    }
  }

  private void loop() {
    try {
      while (!stopping) {
        if (!governor.mayTrain()) {
          sleep(TimeUnit.MILLISECONDS.toNanos(settings.pollMillis()));
          continue;
        }
        long t0 = clock.nanoTime();
        long forwardsBefore = model.forwards();
        long forwardNanosBefore = model.forwardNanos();
        TrainingJob.Advance a = job.advance(this::stepCommitted);
        metrics.deadLetters.mark(job.deadLetters() - metrics.deadLetters.getCount());
        consumed = source.positions();
        if (a == TrainingJob.Advance.IDLE) {
          if (settings.exitWhenIdle() && source.caughtUp()) {
            break;
          }
          sleep(TimeUnit.MILLISECONDS.toNanos(settings.pollMillis()));
          continue;
        }
        long took = clock.nanoTime() - t0;
        metrics.stepTook(took, model.forwards() - forwardsBefore, model.forwardNanos() - forwardNanosBefore);
        governor.rest(took);
      }
    } catch (Throwable t) {
      failure = t;
      LOG.error("training stopped: {}", Main.oneLine(t), t);
    } finally {
      stopped.countDown();
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
        governor.pause(op.equals("pause"));
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
        synchronized (wake) {
          wake.notifyAll();
        }
        return new JsonLine().put("appended", lines.size()).put("topic", topic).put("offsets", offsets).toString();
      default:
        return ControlChannel.error("unknown request '" + op + "': use status, pause, resume or produce");
    }
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
        .put("service", true)
        .put("last_step", lastStep)
        .put("steps_this_run", lastStep - startStep)
        .put("recent_loss", recentLoss)
        .put("lag", lag.values().stream().mapToLong(Long::longValue).sum())
        .put("lag_by_partition", lag)
        .put("last_checkpoint", checkpointJson(lastCheckpoint))
        .put("duty_cycle", governor.dutyCycle())
        .put("uptime_s", Math.round((clock.nanoTime() - startedNanos) / 1e8) / 10.0)
        .put("data_dir", dir.toString());
    metrics.figures().forEach(j::put);
    if (failure != null) {
      j.put("error", Main.oneLine(failure));
    }
    return j;
  }

  static JsonLine checkpointJson(Checkpoint c) {
    return c == null ? null : new JsonLine().put("id", c.id()).put("step", c.step()).put("label", c.label())
        .put("time", c.time().toString());
  }

  /** Waits until training stops by itself (idle with exit-when-idle, or a failure). */
  void awaitStop() throws InterruptedException {
    stopped.await();
  }

  /** @return whether {@link #close} was called (SIGTERM) */
  boolean stopRequested() {
    return stopping;
  }

  /** @return why training stopped, or null */
  Throwable failure() {
    return failure;
  }

  /** Stops after the step in flight, commits, and closes the store and the log cleanly. Idempotent. */
  @Override
  public synchronized void close() throws IOException {
    if (closed) {
      return;
    }
    closed = true;
    stopping = true;
    synchronized (wake) {
      wake.notifyAll();
    }
    try {
      stopped.await();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    try {
      control.close();
      metrics.close();
    } finally {
      try {
        store.close();
        kernel.close();
        model.close();
      } finally {
        log.close();
      }
    }
  }
}
