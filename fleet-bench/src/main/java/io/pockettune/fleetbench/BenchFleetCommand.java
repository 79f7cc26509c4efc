package io.pockettune.fleetbench;

import io.pockettune.fleet.FleetFixture;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.fleet.FleetJob;
import io.pockettune.ingest.LocalKafkaBroker;
import io.pockettune.pipeline.UserTrainer;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.apache.flink.runtime.minicluster.MiniCluster;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench fleet}: the fleet job (Flink, RocksDB state, incremental checkpoints) on
 * a MiniCluster over an in-JVM KRaft broker, against the same users' events trained directly with
 * {@link UserTrainer} in one thread, in the same run.
 *
 * <p>Order: the events are produced; the baseline trains every user; a warm-up job; then, for
 * each parallelism, an empty bounded job (the startup: scheduling, a model per slot, the sources
 * finding nothing, the final checkpoint) and the real one, whose trajectory topic is read back and
 * checked user by user against the baseline (steps and final values); and the baseline once more,
 * so that the jobs are held to the baseline's rate over both passes on a machine whose load moves. Nothing is subtracted from a rate unless its
 * name says so ({@code _excluding_startup}).
 *
 * <p>The main class of {@code fleet-bench/target/pockettune-fleet-bench.jar}, which {@code
 * ./pockettune bench fleet ...} runs. Its own module and jar: Flink's frocksdbjni and the device
 * store's rocksdbjni cannot share a JVM.
 */
@Command(name = "pockettune bench fleet", mixinStandardHelpOptions = true, version = "pockettune bench fleet 0.1.0",
    description = "Measure the fleet job on a Flink MiniCluster against training the same users directly.")
public final class BenchFleetCommand implements Callable<Integer> {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String TIME_COVERS = "job_ms: submission of the job graph to the job's result (source, training,"
      + " Kafka sink, checkpoints, final checkpoint); startup_ms: the same for the job over empty topics, after a"
      + " warm-up job (warmup_ms); checkpoint_ms: trigger to last acknowledgement, checkpoint_write_ms: the slowest"
      + " subtask's synchronous and asynchronous parts; rates divide by job_ms; direct: the training loop only (decode, prepare, train),"
      + " model opening excluded (direct_open_ms), once before and once after the jobs, direct_events_per_s over both";

  @Spec CommandSpec spec;

  @Option(names = "--users", description = "users (default: ${DEFAULT-VALUE})")
  int users = 200;

  @Option(names = "--events-per-user", description = "events per user (default: ${DEFAULT-VALUE})")
  int eventsPerUser = 16;

  @Option(names = "--batch", description = "examples per step (default: ${DEFAULT-VALUE})")
  int batch = 4;

  @Option(names = "--parallelism", split = ",", description = "job parallelisms to run, on a MiniCluster with as many"
      + " slots as the largest (default: 1,2)")
  List<Integer> parallelism = new ArrayList<>(List.of(1, 2));

  @Option(names = "--checkpoint-interval-ms", description = "checkpoint interval (default: ${DEFAULT-VALUE})")
  long checkpointIntervalMs = 1000;

  @Option(names = "--snapshot-every", description = "steps between snapshots of a user's values in state"
      + " (default: ${DEFAULT-VALUE}, the job's)")
  int snapshotEvery = 100;

  @Option(names = "--seed", description = "seed of the events (default: ${DEFAULT-VALUE})")
  long seed = 7;

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  public static void main(String[] args) {
    // Flink, the broker and the clients log at INFO through slf4j-simple: keep the figures readable.
    quietLogging();
    System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
  }

  /**
   * Flink, the broker and the clients log at INFO through slf4j-simple, and Flink warns once per
   * Kafka client metric that two clients in one TaskManager register: keep the figures readable.
   * A property given on the command line wins.
   */
  static void quietLogging() {
    for (String[] level : new String[][] {{"org.slf4j.simpleLogger.defaultLogLevel", "warn"},
        {"org.slf4j.simpleLogger.log.org.apache.flink.metrics.MetricGroup", "error"},
        // Checkpoints declined while the bounded job's tasks finish, each with a stack trace: counted
        // in the figures (pN_checkpoints_failed) instead.
        {"org.slf4j.simpleLogger.log.org.apache.flink.runtime.checkpoint.CheckpointFailureManager", "error"}}) {
      if (System.getProperty(level[0]) == null) {
        System.setProperty(level[0], level[1]);
      }
    }
  }

  /** Runs the command line with the given outputs; returns 0, 1 for a failure, 2 for a bad argument. */
  static int run(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cl = new CommandLine(new BenchFleetCommand()).setOut(out).setErr(err);
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + oneLine(e));
      return 1;
    });
    cl.setParameterExceptionHandler((e, parsedArgs) -> {
      e.getCommandLine().getErr().println(e.getCommandLine().getCommandSpec().qualifiedName() + ": " + e.getMessage()
          + " (see --help)");
      return 2;
    });
    return cl.execute(args);
  }

  @Override
  public Integer call() throws Exception {
    if (users < 1 || eventsPerUser < 1 || batch < 1 || checkpointIntervalMs < 1 || snapshotEvery < 0
        || parallelism.isEmpty() || parallelism.stream().anyMatch(p -> p < 1)) {
      throw new CommandLine.ParameterException(spec.commandLine(), "--users, --events-per-user, --batch,"
          + " --checkpoint-interval-ms and every --parallelism must be positive, --snapshot-every not negative");
    }
    String rocksdb = rocksdbCodeSource();
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    double[] loadStart = loadAverage();
    Path work = Files.createTempDirectory("pockettune-fleet-bench-");
    try (LocalKafkaBroker kafka = LocalKafkaBroker.start()) {
      return run(kafka, work, rocksdb, loadStart, out, err);
    } finally {
      delete(work);
    }
  }

  private int run(LocalKafkaBroker kafka, Path work, String rocksdb, double[] loadStart, PrintWriter out,
      PrintWriter err) throws Exception {
    kafka.createTopic("messages", 4);
    kafka.createTopic("notes", 2);
    kafka.createTopic("empty-messages", 4);
    kafka.createTopic("empty-notes", 2);
    List<FleetFixture.Produced> events = BenchEvents.generate(users, eventsPerUser, seed, System.currentTimeMillis());
    FleetFixture.produce(kafka.bootstrapServers(), events);
    Map<String, List<FleetFixture.Produced>> byUser = FleetFixture.byUser(events);
    // A batch closes by count, or at the end of the input (the watermark's end runs every user's
    // wait timer): no wait can expire inside the three hours of event time.
    UserTrainer.Settings trainer = UserTrainer.Settings.defaults().withBatch(batch)
        .withMaxWaitMillis(Duration.ofDays(1).toMillis());

    progress(err, "training %,d users directly...", users);
    DirectTraining.Result direct = DirectTraining.run(byUser, work.resolve("direct"), trainer);

    Map<String, Object> f = new LinkedHashMap<>();
    f.put("users", users);
    f.put("events_per_user", eventsPerUser);
    f.put("events", events.size());
    f.put("batch", batch);
    f.put("model", "built-in demo model");
    f.put("trainable_values", direct.trainableValues());
    f.put("steps_per_user", direct.steps() / (double) users);
    f.put("checkpoint_interval_ms", checkpointIntervalMs);
    f.put("snapshot_every", snapshotEvery);
    f.put("direct_open_ms", direct.openMillis());
    f.put("direct_steps", direct.steps());
    // Filled in after the second pass of the baseline; put here to keep the figures in reading order.
    for (String k : List.of("direct_train_ms", "direct_after_train_ms", "direct_before_events_per_s",
        "direct_after_events_per_s", "direct_events_per_s", "direct_steps_per_s")) {
      f.put(k, null);
    }
    out.printf(Locale.ROOT, "%,d users x %,d events (%,d), batch %d, built-in demo model (%,d trainable values)%n",
        users, eventsPerUser, events.size(), batch, direct.trainableValues());
    out.printf(Locale.ROOT, "direct before the jobs (UserTrainer, 1 thread, no Flink, no Kafka): %,d steps in %.1f s:"
        + " %.1f events/s%n", direct.steps(), direct.trainNanos() / 1e9, direct.events() * 1e9 / direct.trainNanos());

    int slots = parallelism.stream().mapToInt(Integer::intValue).max().orElseThrow();
    Map<Integer, Double> rates = new LinkedHashMap<>();
    MiniCluster cluster = FlinkRun.start(slots);
    try {
      // The first job on a fresh cluster also pays for loading Flink's classes and warming the JIT:
      // an empty job at the largest parallelism takes that, reported apart (warmup_ms).
      progress(err, "warm-up: the job over empty topics at parallelism %d...", slots);
      kafka.createTopic("traj-warmup", 4);
      FleetJob.Settings warm = FleetJob.Settings.defaults(kafka.bootstrapServers()).withTrainer(trainer)
          .withRun(snapshotEvery, checkpointIntervalMs, slots, true);
      f.put("warmup_ms", FlinkRun.run(cluster, settings(warm, work, "traj-warmup", List.of("empty-messages",
          "empty-notes")), "fleet bench warm-up").jobMillis());
      for (int p : parallelism) {
        FleetJob.Settings base = FleetJob.Settings.defaults(kafka.bootstrapServers()).withTrainer(trainer)
            .withRun(snapshotEvery, checkpointIntervalMs, p, true);
        progress(err, "parallelism %d: the job over empty topics...", p);
        String empty = "traj-startup-p" + p;
        kafka.createTopic(empty, 4);
        FlinkRun.Result startup = FlinkRun.run(cluster, settings(base, work, empty, List.of("empty-messages",
            "empty-notes")), "fleet bench startup p" + p);
        progress(err, "parallelism %d: the job over %,d events...", p, events.size());
        String topic = "traj-p" + p;
        kafka.createTopic(topic, 4);
        FlinkRun.Result run = FlinkRun.run(cluster, settings(base, work, topic, FleetJob.DEFAULT_TOPICS),
            "fleet bench p" + p);
        if (!run.stateBackend().toLowerCase(Locale.ROOT).contains("rocksdb")) {
          throw new IllegalStateException("the job ran on the " + run.stateBackend() + " state backend, not RocksDB");
        }
        FleetFixture.Trajectories read = FleetFixture.trajectories(kafka.bootstrapServers(), topic);
        long steps = Trajectories.check(read, direct, "parallelism " + p);
        double seconds = run.jobMillis() / 1e3;
        double rate = events.size() / seconds;
        rates.put(p, rate);
        long[] durations = run.checkpoints().stream().mapToLong(FlinkRun.Checkpoint::endToEndMillis).sorted().toArray();
        FlinkRun.Checkpoint last = run.last();
        String k = "p" + p + "_";
        f.put(k + "job_ms", run.jobMillis());
        f.put(k + "net_runtime_ms", run.netRuntimeMillis());
        f.put(k + "startup_ms", startup.jobMillis());
        f.put(k + "events_per_s", round(rate));
        f.put(k + "steps_per_s", round(steps / seconds));
        f.put(k + "events_per_s_excluding_startup",
            run.jobMillis() > startup.jobMillis() ? round(events.size() * 1e3 / (run.jobMillis() - startup.jobMillis()))
                : null);
        f.put(k + "steps", steps);
        f.put(k + "steps_checked", true);
        f.put(k + "duplicates", read.duplicates());
        f.put(k + "checkpoints_completed", durations.length);
        f.put(k + "checkpoints_failed", run.failedCheckpoints());
        f.put(k + "checkpoint_ms_median", durations.length == 0 ? null : median(durations));
        f.put(k + "checkpoint_ms_max", durations.length == 0 ? null : durations[durations.length - 1]);
        long[] writes = run.checkpoints().stream().mapToLong(FlinkRun.Checkpoint::writeMillis).sorted().toArray();
        f.put(k + "checkpoint_write_ms_median", writes.length == 0 ? null : median(writes));
        f.put(k + "checkpoint_write_ms_max", writes.length == 0 ? null : writes[writes.length - 1]);
        f.put(k + "last_checkpoint_id", last == null ? null : last.id());
        f.put(k + "state_bytes", last == null ? null : last.stateBytes());
        f.put(k + "state_bytes_per_user", last == null ? null : round(last.stateBytes() / (double) users));
        f.put(k + "last_checkpointed_bytes", last == null ? null : last.checkpointedBytes());
        f.put(k + "state_backend", run.stateBackend());
        out.printf(Locale.ROOT, "flink p%d: job %,d ms (submit to finished; over empty topics %,d ms): %.1f events/s,"
            + " %.1f steps/s; %,d steps checked against direct%n", p, run.jobMillis(), startup.jobMillis(), rate,
            steps / seconds, steps);
        out.printf(Locale.ROOT, "  %d checkpoints completed (%d declined or failed), end to end median %s ms, max %s ms"
            + " (writing the state: median %s ms, max %s ms); last (%s) state %s bytes = %s bytes a user%n",
            durations.length, run.failedCheckpoints(), durations.length == 0 ? "-" : median(durations),
            durations.length == 0 ? "-" : durations[durations.length - 1], writes.length == 0 ? "-" : median(writes),
            writes.length == 0 ? "-" : writes[writes.length - 1], last == null ? "none" : "#" + last.id(),
            last == null ? "-" : String.format(Locale.ROOT, "%,d", last.stateBytes()),
            last == null ? "-" : String.format(Locale.ROOT, "%,.0f", last.stateBytes() / (double) users));
      }
    } finally {
      cluster.close();
    }
    // The baseline again after the jobs, so that a change in the machine's load during the run
    // shows, and the rate the jobs are held to is the pair's: all events over both passes' time.
    progress(err, "training %,d users directly again...", users);
    DirectTraining.Result after = DirectTraining.run(byUser, work.resolve("direct-after"), trainer);
    if (!after.lastFingerprint().equals(direct.lastFingerprint())) {
      throw new IllegalStateException("the second direct training gave other values than the first");
    }
    double directSeconds = (direct.trainNanos() + after.trainNanos()) / 1e9;
    double directRate = 2 * direct.events() / directSeconds;
    f.put("direct_train_ms", Math.round(direct.trainNanos() / 1e6));
    f.put("direct_after_train_ms", Math.round(after.trainNanos() / 1e6));
    f.put("direct_before_events_per_s", round(direct.events() * 1e9 / direct.trainNanos()));
    f.put("direct_after_events_per_s", round(after.events() * 1e9 / after.trainNanos()));
    f.put("direct_events_per_s", round(directRate));
    f.put("direct_steps_per_s", round(2 * direct.steps() / directSeconds));
    out.printf(Locale.ROOT, "direct after the jobs: %.1f s: %.1f events/s; both passes: %.1f events/s, %.1f steps/s%n",
        after.trainNanos() / 1e9, after.events() * 1e9 / after.trainNanos(), directRate,
        2 * direct.steps() / directSeconds);
    Double p1 = rates.get(1);
    f.put("flink_p1_vs_direct", p1 == null ? null : round3(p1 / directRate));
    for (var e : rates.entrySet()) {
      if (e.getKey() != 1 && p1 != null) {
        f.put("p" + e.getKey() + "_vs_p1", round3(e.getValue() / p1));
      }
    }
    double stepsPerUser = direct.steps() / (double) users;
    f.put("full_parameter_state_bytes_per_user_estimate", Math.round(4.0 * direct.trainableValues() + 59 * stepsPerUser));
    f.put("rocksdb_code_source", rocksdb);
    f.put("load_average_start", loadStart);
    f.put("load_average_end", loadAverage());
    f.put("time_covers", TIME_COVERS);
    out.printf(Locale.ROOT, "flink p1 / direct: %s; %s%n", f.get("flink_p1_vs_direct"), rates.keySet().stream()
        .filter(p -> p != 1 && p1 != null).map(p -> "p" + p + " / p1: " + f.get("p" + p + "_vs_p1")).toList());
    out.printf(Locale.ROOT, "a user's values in state would take about %,d bytes (4 x %,d values + 59 x %.1f steps)%n",
        f.get("full_parameter_state_bytes_per_user_estimate"), direct.trainableValues(), stepsPerUser);
    out.printf(Locale.ROOT, "load average %s at the start, %s at the end%n", Arrays.toString(loadStart),
        Arrays.toString((double[]) f.get("load_average_end")));
    if (json) {
      out.println(JSON.writeValueAsString(f));
    }
    return 0;
  }

  private static FleetJob.Settings settings(FleetJob.Settings base, Path work, String topic, List<String> sources) {
    FleetJob.Settings s = base.withModel(null, work.resolve("job-" + topic).toString()).withOutput(topic, "g-" + topic)
        .withCheckpointDir(work.resolve("checkpoints-" + topic).toUri().toString());
    return new FleetJob.Settings(s.bootstrapServers(), sources, s.trajectoryTopic(), s.groupId(), s.modelDir(),
        s.workDir(), s.trainer(), s.snapshotEvery(), s.keepHistory(), s.cacheBytes(), s.checkpointIntervalMs(),
        s.checkpointDir(), s.parallelism(), s.bounded(), s.outOfOrderness(), s.idleness());
  }

  /**
   * Where {@code org.rocksdb.RocksDB} comes from: it must be Flink's frocksdbjni; the device store's
   * rocksdbjni on this classpath would break Flink's state backend.
   */
  static String rocksdbCodeSource() throws ClassNotFoundException {
    var source = Class.forName("org.rocksdb.RocksDB", false, BenchFleetCommand.class.getClassLoader())
        .getProtectionDomain().getCodeSource();
    String where = source == null ? "unknown" : source.getLocation().toString();
    if (!where.contains("frocksdbjni")) {
      throw new IllegalStateException("org.rocksdb.RocksDB comes from " + where + ", not Flink's frocksdbjni: the"
          + " device store's rocksdbjni is on the classpath; run the jar fleet-bench/target/pockettune-fleet-bench.jar");
    }
    return where.substring(where.lastIndexOf('/') + 1);
  }

  /** The 1, 5 and 15 minute load averages (/proc/loadavg), or nulls where there is none. */
  static double[] loadAverage() {
    try {
      String[] p = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
      return new double[] {Double.parseDouble(p[0]), Double.parseDouble(p[1]), Double.parseDouble(p[2])};
    } catch (IOException | RuntimeException e) {
      return new double[0];
    }
  }

  private static void progress(PrintWriter err, String format, Object... args) {
    err.printf(Locale.ROOT, "bench fleet: " + format + "%n", args);
    err.flush();
  }

  private static long median(long[] sorted) {
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  private static double round(double v) {
    return Math.round(v * 10) / 10.0;
  }

  private static double round3(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  private static void delete(Path dir) throws IOException {
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  private static String oneLine(Throwable e) {
    Throwable t = e;
    while (t.getMessage() == null && t.getCause() != null) {
      t = t.getCause();
    }
    String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    return message.replace('\n', ' ');
  }
}
