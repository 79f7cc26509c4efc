package io.pockettune.fleet;

import io.pockettune.pipeline.TrajectoryEntry;
import io.pockettune.pipeline.UserTrainer;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.KafkaSourceBuilder;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Per-user personalization as a Flink job: {@code KafkaSource} over the event topics (the record
 * key is the user), event-time watermarks, {@code keyBy(user)}, {@link UserTrainingFunction} (the
 * device's batching and MeZO steps on the user's values, one shared model per task slot), and a
 * {@code KafkaSink} of every step to the trajectory topic, keyed by user, which a device pulls
 * ({@code pockettune pull}) and replays into bit-identical values.
 *
 * <p>Training is exactly once: the source's offsets, the waiting events, the open batches and the
 * users' steps are all in Flink's checkpoints (RocksDB state backend, incremental), so after a
 * failure the job resumes from the last checkpoint with no event trained twice or skipped.
 * Publishing is at least once, and the same step is always the same bytes: after a recovery the
 * steps since the last checkpoint are trained again into identical entries and published again,
 * and every reader keeps one entry per (user, step), refusing two that differ.
 */
public final class FleetJob {
  /** The topics read unless {@code --topics} says otherwise. */
  public static final List<String> DEFAULT_TOPICS = List.of("messages", "notes");
  /** The consumer group whose offsets the source commits at checkpoints: for monitoring lag only. */
  public static final String DEFAULT_GROUP_ID = "pockettune-fleet";
  /** Every option {@link #parse} accepts. */
  public static final List<String> OPTIONS = List.of("--bootstrap-servers", "--topics", "--trajectory-topic",
      "--group-id", "--model", "--work-dir", "--batch", "--batch-tokens", "--max-wait-ms", "--max-tokens", "--lr",
      "--eps", "--seed", "--threads", "--snapshot-every", "--no-history", "--checkpoint-interval-ms",
      "--checkpoint-dir", "--parallelism", "--bounded", "--out-of-orderness-ms", "--idleness-ms");

  private FleetJob() {}

  /**
   * Everything the job can be told.
   *
   * @param modelDir        the model package on every TaskManager (null: the built-in demo model)
   * @param workDir         where a slot writes the built-in model
   * @param snapshotEvery   steps between snapshots of a user's values in state (0: never)
   * @param keepHistory     keep every step entry of a user in state, as the device store does
   * @param cacheBytes      memory for users' values kept between their steps, per slot
   * @param checkpointDir   the checkpoint storage URI (null: the cluster's configuration)
   * @param bounded         stop at the end offsets found at start (tests, benchmarks, backfills)
   * @param outOfOrderness  how far behind the newest event an event may be and still train in order
   * @param idleness        a partition without events this long stops holding the watermark back
   */
  public record Settings(String bootstrapServers, List<String> topics, String trajectoryTopic, String groupId,
      String modelDir, String workDir, UserTrainer.Settings trainer, int snapshotEvery, boolean keepHistory,
      long cacheBytes, long checkpointIntervalMs, String checkpointDir, int parallelism, boolean bounded,
      Duration outOfOrderness, Duration idleness) implements Serializable {

    public Settings {
      if (bootstrapServers == null || bootstrapServers.isBlank()) {
        throw new IllegalArgumentException("--bootstrap-servers is required: give the Kafka cluster as HOST:PORT[,...]");
      }
      topics = List.copyOf(topics);
      if (topics.isEmpty()) {
        throw new IllegalArgumentException("--topics names no topic: give the event topics, e.g. messages,notes");
      }
      if (snapshotEvery < 0 || cacheBytes < 0 || checkpointIntervalMs < 1 || parallelism < 0) {
        throw new IllegalArgumentException("--snapshot-every must not be negative, --checkpoint-interval-ms must be"
            + " positive and --parallelism must not be negative");
      }
    }

    /** Defaults for everything but the cluster's address. */
    public static Settings defaults(String bootstrapServers) {
      return new Settings(bootstrapServers, DEFAULT_TOPICS, TrajectoryEntry.DEFAULT_TOPIC, DEFAULT_GROUP_ID, null,
          Path.of(System.getProperty("java.io.tmpdir"), "pockettune-fleet").toString(), UserTrainer.Settings.defaults(),
          100, true, 256L << 20, 10_000, null, 0, false, Duration.ZERO, Duration.ofSeconds(30));
    }

    public Settings withTrainer(UserTrainer.Settings t) {
      return new Settings(bootstrapServers, topics, trajectoryTopic, groupId, modelDir, workDir, t, snapshotEvery,
          keepHistory, cacheBytes, checkpointIntervalMs, checkpointDir, parallelism, bounded, outOfOrderness, idleness);
    }

    public Settings withModel(String dir, String work) {
      return new Settings(bootstrapServers, topics, trajectoryTopic, groupId, dir, work, trainer, snapshotEvery,
          keepHistory, cacheBytes, checkpointIntervalMs, checkpointDir, parallelism, bounded, outOfOrderness, idleness);
    }

    public Settings withOutput(String topic, String groupId) {
      return new Settings(bootstrapServers, topics, topic, groupId, modelDir, workDir, trainer, snapshotEvery,
          keepHistory, cacheBytes, checkpointIntervalMs, checkpointDir, parallelism, bounded, outOfOrderness, idleness);
    }

    public Settings withRun(int snapshotEvery, long checkpointIntervalMs, int parallelism, boolean bounded) {
      return new Settings(bootstrapServers, topics, trajectoryTopic, groupId, modelDir, workDir, trainer, snapshotEvery,
          keepHistory, cacheBytes, checkpointIntervalMs, checkpointDir, parallelism, bounded, outOfOrderness, idleness);
    }

    public Settings withCheckpointDir(String uri) {
      return new Settings(bootstrapServers, topics, trajectoryTopic, groupId, modelDir, workDir, trainer, snapshotEvery,
          keepHistory, cacheBytes, checkpointIntervalMs, uri, parallelism, bounded, outOfOrderness, idleness);
    }
  }

  /**
   * The job's configuration: RocksDB state (Flink's own, incremental checkpoints), exactly-once
   * checkpoints every {@code checkpointIntervalMs}, and, for a bounded run, a last checkpoint when
   * the sources finish so that the last steps' transaction commits.
   */
  public static Configuration configuration(Settings s) {
    Configuration c = new Configuration();
    c.setString("state.backend.type", "rocksdb");
    c.setString("execution.checkpointing.incremental", "true");
    c.setString("execution.checkpointing.interval", s.checkpointIntervalMs() + " ms");
    c.setString("execution.checkpointing.mode", "EXACTLY_ONCE");
    if (s.checkpointDir() != null) {
      c.setString("execution.checkpointing.dir", s.checkpointDir());
    }
    return c;
  }

  /**
   * Adds the job to {@code env}: source, watermarks, {@code beforeKeyBy} (the identity, except in
   * tests that inject a fault), keyBy(user), training, sink. The model package is opened here once,
   * so a bad {@code --model} fails before the job is submitted, and the run config it gives goes into
   * the header of every user's step 1.
   */
  public static void define(StreamExecutionEnvironment env, Settings s, UnaryOperator<DataStream<FleetEvent>> beforeKeyBy)
      throws IOException {
    String runConfig;
    try (UserTrainer t = UserTrainer.open(s.modelDir() == null ? null : Path.of(s.modelDir()),
        Path.of(s.workDir(), "client"), s.trainer())) {
      runConfig = t.runConfig();
    }
    KafkaSourceBuilder<FleetEvent> source = KafkaSource.<FleetEvent>builder()
        .setBootstrapServers(s.bootstrapServers())
        .setTopics(s.topics())
        .setGroupId(s.groupId())
        // From the beginning, not from the group's committed offsets: a job started without its
        // state (no checkpoint or savepoint) must not skip the events its users were trained on.
        // A restored job starts from the offsets in its checkpoint, whatever this says.
        .setStartingOffsets(OffsetsInitializer.earliest())
        .setDeserializer(new FleetEventDeserializer())
        .setProperty("isolation.level", "read_committed")
        .setProperty("commit.offsets.on.checkpoint", "true");
    if (s.bounded()) {
      source.setBounded(OffsetsInitializer.latest());
    }
    WatermarkStrategy<FleetEvent> watermarks = WatermarkStrategy.<FleetEvent>forBoundedOutOfOrderness(s.outOfOrderness())
        .withTimestampAssigner((e, ts) -> e.timestamp);
    if (!s.idleness().isZero()) {
      watermarks = watermarks.withIdleness(s.idleness());
    }
    DataStream<FleetEvent> events = env.fromSource(source.build(), watermarks, "events").uid("events");
    DataStream<Tuple2<String, byte[]>> steps = beforeKeyBy.apply(events)
        .keyBy(e -> e.user, Types.STRING)
        .process(new UserTrainingFunction(s), Types.TUPLE(Types.STRING, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO))
        .uid("train").name("train per user");
    KafkaSink<Tuple2<String, byte[]>> sink = KafkaSink.<Tuple2<String, byte[]>>builder()
        .setBootstrapServers(s.bootstrapServers())
        .setRecordSerializer(new TrajectorySerializer(s.trajectoryTopic(), runConfig))
        // At least once: every step is acknowledged before the checkpoint that covers it completes.
        // The connector's EXACTLY_ONCE writer reaches into Kafka producer internals that
        // kafka-clients 4.3.1 no longer has (NoSuchMethodError on TransactionalRequestResult.await()),
        // so a step published after the last checkpoint is published again after a recovery: with
        // the same bytes, because training is deterministic, and readers keep one entry per step.
        .setDeliveryGuarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        .setProperty("enable.idempotence", "true")
        .setProperty("acks", "all")
        .build();
    steps.sinkTo(sink).uid("trajectories").name("trajectories");
  }

  /** Runs the job on the environment Flink gives (a cluster, or a local one when run from an IDE). */
  public static JobExecutionResult run(Settings s) throws Exception {
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(configuration(s));
    if (s.parallelism() > 0) {
      env.setParallelism(s.parallelism());
    }
    define(env, s, UnaryOperator.identity());
    return env.execute("pockettune fleet (" + String.join(",", s.topics()) + " -> " + s.trajectoryTopic() + ")");
  }

  public static void main(String[] args) throws Exception {
    Settings s;
    try {
      s = parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("pockettune fleet: " + e.getMessage());
      System.exit(2);
      return;
    }
    run(s);
  }

  /**
   * Parses the command line ({@link #OPTIONS}).
   *
   * @throws IllegalArgumentException one sentence naming the bad option and what to give
   */
  public static Settings parse(String[] args) {
    Map<String, String> o = new LinkedHashMap<>();
    List<String> flags = List.of("--no-history", "--bounded");
    for (int i = 0; i < args.length; i++) {
      String a = args[i];
      if (!OPTIONS.contains(a)) {
        throw new IllegalArgumentException("unknown option " + a + ": the options are " + String.join(" ", OPTIONS));
      }
      if (flags.contains(a)) {
        o.put(a, "true");
      } else {
        if (i + 1 >= args.length) {
          throw new IllegalArgumentException(a + " needs a value");
        }
        o.put(a, args[++i]);
      }
    }
    Settings d = Settings.defaults(o.get("--bootstrap-servers"));
    UserTrainer.Settings t = d.trainer();
    t = new UserTrainer.Settings(integer(o, "--batch", t.batch()), longValue(o, "--batch-tokens", t.batchTokens()),
        longValue(o, "--max-wait-ms", t.maxWaitMillis()), integer(o, "--max-tokens", t.maxTokens()),
        o.containsKey("--lr") ? floatValue(o, "--lr") : null, o.containsKey("--eps") ? floatValue(o, "--eps") : null,
        longValue(o, "--seed", t.seed()), integer(o, "--threads", t.threads()));
    List<String> topics = o.containsKey("--topics") ? topics(o.get("--topics")) : d.topics();
    return new Settings(d.bootstrapServers(), topics, o.getOrDefault("--trajectory-topic", d.trajectoryTopic()),
        o.getOrDefault("--group-id", d.groupId()), o.get("--model"), o.getOrDefault("--work-dir", d.workDir()), t,
        integer(o, "--snapshot-every", d.snapshotEvery()), !o.containsKey("--no-history"), d.cacheBytes(),
        longValue(o, "--checkpoint-interval-ms", d.checkpointIntervalMs()), o.get("--checkpoint-dir"),
        integer(o, "--parallelism", d.parallelism()), o.containsKey("--bounded"),
        Duration.ofMillis(longValue(o, "--out-of-orderness-ms", d.outOfOrderness().toMillis())),
        Duration.ofMillis(longValue(o, "--idleness-ms", d.idleness().toMillis())));
  }

  private static List<String> topics(String list) {
    List<String> out = new ArrayList<>();
    for (String t : list.split(",")) {
      if (!t.isBlank()) {
        out.add(t.strip());
      }
    }
    return out;
  }

  private static int integer(Map<String, String> o, String name, int fallback) {
    long v = longValue(o, name, fallback);
    if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
      throw new IllegalArgumentException(name + " " + v + " is out of range");
    }
    return (int) v;
  }

  private static long longValue(Map<String, String> o, String name, long fallback) {
    String v = o.get(name);
    if (v == null) {
      return fallback;
    }
    try {
      return Long.parseLong(v);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be a whole number, not '" + v + "'");
    }
  }

  private static float floatValue(Map<String, String> o, String name) {
    try {
      return Float.parseFloat(o.get(name));
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(name + " must be a number, not '" + o.get(name) + "'");
    }
  }
}
