package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.EmbeddedProducer;
import io.pockettune.ingest.EventSerializer;
import io.pockettune.ingest.KafkaListener;
import io.pockettune.ingest.ListenerCredentials;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Branch;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Prune;
import io.pockettune.store.Rollback;
import io.pockettune.store.SourcePartition;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Time;

/**
 * PocketTune inside an app: one data directory, one model package, training in the background.
 * This is the runtime's one entry type; the {@code pockettune} command line is a client of it and
 * of nothing else. The design, the data flow and the formats are in {@code docs/DESIGN.md}.
 *
 * <pre>{@code
 * try (PocketTune tune = PocketTune.builder(dataDir)   // the app's folder for PocketTune
 *     .model(modelDir)                                  // a package from 'pockettune model init'
 *     .batch(2)
 *     .open()) {
 *   tune.startTraining();
 *   Producer<String, SpecificRecord> events = tune.producer();
 *   for (String text : List.of("see you at the climbing wall at 7", "running late, save me a rope")) {
 *     events.send(new ProducerRecord<>("messages", "ada", Message.newBuilder()
 *         .setId(UUID.randomUUID().toString()).setConversation("ada").setSender("me").setText(text)
 *         .setEventTime(Instant.now()).setAttrs(Map.of()).build())).get();   // durable once acknowledged
 *   }
 *   tune.awaitIdle(Duration.ofMinutes(1));
 *   System.out.println("trained to step " + tune.status().get("last_step"));
 * }
 * }</pre>
 *
 * <p>{@code EmbeddingExampleTest} compiles and runs exactly this example.
 *
 * <p>What it holds open: the data directory's log (and its directory lock) from the first call
 * that needs it ({@link #producer}, {@link #appendJson}, {@link #startTraining}); the store and the
 * model's session while training runs. Read-side operations ({@link #checkpoints}, {@link
 * #replay}, {@link #export}, {@link #status}) open the store read-only and work beside training,
 * in this process or in another. {@link #rollback} and {@link #prune} need training stopped.
 *
 * <p>Thread-safe: operations that change what is open are serialized.
 */
public final class PocketTune implements AutoCloseable {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final DataDirectory dir;
  private final Path modelDir;
  private final Service.Settings settings;
  private final PrintWriter progress;
  private final PrintWriter stepLog;
  private final Time time;
  private ModelPackage pkg;
  private EmbeddedLog log;
  private EventSerde serde;
  private final java.net.InetSocketAddress kafkaAddress;
  private final boolean kafkaAllowRemote;
  private final io.pockettune.ingest.LogConfig logConfig;
  private KafkaListener kafkaListener;
  private EmbeddedProducer<String, SpecificRecord> producer;
  private Service service;
  private Foreground foreground;
  private boolean closed;

  private PocketTune(Builder b) throws IOException {
    this.dir = DataDirectory.at(b.dataDir).withKey(b.encryptionKey, b.encrypt);
    this.modelDir = b.model;
    this.settings = b.settings();
    this.progress = b.progress;
    this.stepLog = b.stepLog;
    this.time = b.time;
    this.kafkaAddress = b.kafkaAddress;
    this.kafkaAllowRemote = b.kafkaAllowRemote;
    this.logConfig = b.logConfig;
  }

  /**
   * @return a builder for the data directory {@code dataDir} (created on first write, owner-only)
   * @throws IllegalArgumentException when {@code dataDir} is a file, not a directory
   */
  public static Builder builder(Path dataDir) {
    return new Builder(dataDir);
  }

  /** @return the data directory, absolute */
  public Path dataDirectory() {
    return dir.root();
  }

  /**
   * The model package in use (the built-in demo model when none was given): its folder, identity
   * hash and card, as JSON.
   */
  public synchronized JsonLine model() throws IOException {
    ModelPackage p = pkg();
    return new JsonLine().put("package", p.isBuiltIn() ? "built-in" : p.directory().toString()).put("hash", p.hash())
        .put("objective", p.card().objective()).put("trainable", p.card().trainable().toString())
        .put("label_attribute", p.card().classification() ? p.card().labelAttributeOrDefault() : null);
  }

  /**
   * A Kafka producer of the app's events ({@code Message}, {@code Note}) into the embedded log,
   * working while training runs in this process. Records are acknowledged once durable; keys pick
   * partitions as Kafka's default partitioner does. Closed by {@link #close}; do not close it.
   */
  public synchronized Producer<String, SpecificRecord> producer() throws IOException {
    return producer(Map.of());
  }

  /**
   * As {@link #producer()}, the first call choosing its Kafka producer configs (e.g. {@code
   * linger.ms}, {@code batch.size}).
   */
  public synchronized Producer<String, SpecificRecord> producer(Map<String, Object> configs) throws IOException {
    if (producer == null) {
      openLog();
      producer = new EmbeddedProducer<>(log, new HashMap<>(configs), new StringSerializer(), new EventSerializer(serde));
    }
    return producer;
  }

  /**
   * Appends events given as JSON lines (the fields of {@code pockettune produce}), all or none: a
   * bad line fails the call before anything is appended. When a service runs on this data directory
   * in another process, the lines go to it over its control socket.
   *
   * @return per partition ("topic-p"), the first and last offset given to the events, and how
   *     ("service" or "log")
   */
  public synchronized Appended appendJson(String topic, List<String> lines) throws IOException {
    if (log == null) {
      Optional<JsonNode> answer = ControlChannel.call(dir.root(),
          new JsonLine().put("op", "produce").put("topic", topic).toString(), lines);
      if (answer.isPresent()) {
        Map<String, List<Long>> offsets = new LinkedHashMap<>();
        answer.get().path("offsets").properties().forEach(e ->
            offsets.put(e.getKey(), List.of(e.getValue().get(0).asLong(), e.getValue().get(1).asLong())));
        return new Appended(answer.get().path("appended").asLong(), offsets, "service");
      }
      openLog();
    }
    Map<String, List<Long>> offsets = lines.isEmpty() ? Map.of() : new EventJson(log, serde).append(topic, lines, 1);
    if (service != null) {
      service.eventsAppended();
    }
    return new Appended(lines.size(), offsets, "log");
  }

  /** What {@link #appendJson} appended. */
  public record Appended(long events, Map<String, List<Long>> offsets, String via) {}

  /** @return the next offset of every event partition (what has been appended so far) */
  public synchronized Map<TopicPartition, Long> endOffsets() throws IOException {
    openLog();
    Map<TopicPartition, Long> ends = new LinkedHashMap<>();
    for (TopicPartition tp : Topics.sources()) {
      ends.put(tp, log.endOffset(tp.topic(), tp.partition()));
    }
    return ends;
  }

  /**
   * Starts training in the background: restores the model (nearest snapshot plus replay of the
   * committed steps) and trains on every event from the committed offsets on, exactly once, under
   * the governor. The first start binds the data directory to the model package.
   */
  public synchronized void startTraining() throws IOException {
    checkOpen();
    if (service != null) {
      throw new IllegalStateException("training already runs on " + dir);
    }
    closeForeground();
    openLog();
    service = Service.start(dir, pkg(), log, serde, settings, time, progress, stepLog);
    if (kafkaAddress != null) {
      try {
        startKafkaListener();
      } catch (IOException | RuntimeException e) {
        stopTraining();
        throw e;
      }
    }
  }

  private void startKafkaListener() throws IOException {
    ListenerCredentials.Loaded loaded = ListenerCredentials.loadOrCreate(dir.kafkaCredentials());
    kafkaListener = KafkaListener.start(log, new KafkaListener.Settings(kafkaAddress, kafkaAllowRemote,
        loaded.credentials(), new EventAdmission(log, serde)), time);
    if (progress != null && loaded.created()) {
      progress.println("wrote new SASL/PLAIN credentials for the Kafka listener to " + dir.kafkaCredentials()
          + " (kept across restarts; clients use its username and password)");
      progress.flush();
    }
  }

  /** @return where the Kafka listener listens while training runs, if one was asked for */
  public synchronized Optional<java.net.InetSocketAddress> kafkaListenerAddress() {
    return kafkaListener == null ? Optional.empty() : Optional.of(kafkaListener.address());
  }

  /** Pauses training after the step in flight (ingestion goes on); also a service in another process. */
  public void pause() throws IOException {
    control("pause", true);
  }

  /** Resumes paused training; also a service in another process. */
  public void resume() throws IOException {
    control("resume", false);
  }

  private synchronized void control(String op, boolean pause) throws IOException {
    if (service != null) {
      service.pause(pause);
      return;
    }
    if (ControlChannel.call(dir.root(), new JsonLine().put("op", op).toString(), List.of()).isEmpty()) {
      throw new IllegalArgumentException("no service runs on " + dir + ": start one with 'pockettune serve --data-dir "
          + dir + "' or startTraining()");
    }
  }

  /**
   * Waits until training has consumed every event appended so far (a partial batch may stay open
   * until more events, or its maximum wait, close it), or training stopped.
   *
   * @return false if that did not happen within {@code timeout}
   */
  public boolean awaitIdle(Duration timeout) throws InterruptedException {
    Service s;
    synchronized (this) {
      s = service;
    }
    if (s == null) {
      throw new IllegalStateException("training does not run: call startTraining() first");
    }
    return s.awaitIdle(timeout.toNanos());
  }

  /**
   * Waits until training stops by itself: with {@link Builder#exitWhenIdle}, once every event is
   * consumed; otherwise only on a failure or {@link #stopTraining} from another thread.
   */
  public void awaitTrainingStopped() throws InterruptedException {
    Service s;
    synchronized (this) {
      s = service;
    }
    if (s != null) {
      s.awaitStop();
    }
  }

  /** @return why training stopped by itself, or null */
  public synchronized Throwable trainingFailure() {
    return service == null ? null : service.failure();
  }

  /** Stops training after the step in flight, which commits; the log stays open. */
  public synchronized void stopTraining() throws IOException {
    if (kafkaListener != null) {
      try {
        kafkaListener.close();
      } finally {
        kafkaListener = null;
      }
    }
    if (service != null) {
      try {
        service.close();
      } finally {
        service = null;
      }
    }
  }

  /**
   * Status: state, steps, recent loss, lag, last checkpoint and the service's metrics, from
   * training in this process, else from a service running in another, else from the files.
   */
  public synchronized JsonLine status() throws IOException {
    if (service != null) {
      return service.status();
    }
    Optional<JsonNode> answer = ControlChannel.call(dir.root(), new JsonLine().put("op", "status").toString(), List.of());
    if (answer.isPresent()) {
      @SuppressWarnings("unchecked")
      Map<String, Object> m = JSON.convertValue(answer.get(), LinkedHashMap.class);
      return JsonLine.of(m);
    }
    return OfflineStatus.of(dir);
  }

  /** @return the checkpoints, oldest first, abandoned ones included */
  public synchronized List<Checkpoint> checkpoints() {
    return readStore(ModelStore::checkpoints);
  }

  /** @return the branches rollbacks abandoned (until pruned) */
  public synchronized List<Branch> branches() {
    return readStore(ModelStore::branches);
  }

  /** @return the last committed step */
  public synchronized long lastStep() {
    return readStore(ModelStore::lastStep);
  }

  private <T> T readStore(java.util.function.Function<ModelStore, T> read) {
    if (service != null) {
      return read.apply(service.store());
    }
    if (foreground != null) {
      return read.apply(foreground.store());
    }
    StoreSession.requireStore(dir);
    try (ModelStore store = dir.withSnapshotKey(ModelStore.openReadOnly(dir.store()))) {
      return read.apply(store);
    }
  }

  /** Deletes abandoned branches (and with {@code thinSnapshots} unneeded snapshots); training must be stopped. */
  public synchronized Prune prune(boolean thinSnapshots) {
    requireStopped("prune");
    closeForeground();
    StoreSession.requireStore(dir);
    try (ModelStore store = dir.withSnapshotKey(ModelStore.openExisting(dir.store()))) {
      return store.prune(thinSnapshots);
    }
  }

  /**
   * Makes an earlier point of the trajectory the live model: {@code target} is a checkpoint id or
   * {@code step:N}. Later steps become an abandoned branch and the source offsets move back in the
   * same write; training must be stopped.
   */
  public synchronized RollbackResult rollback(String target) throws IOException {
    requireStopped("rollback");
    closeForeground();
    StoreSession.requireStore(dir);
    try (StoreSession session = StoreSession.writable(dir, pkg(), settings.threads())) {
      return Rollbacks.rollback(session, target);
    }
  }

  /**
   * What a rollback did.
   *
   * @param rollback        the store's account (step, abandoned steps and checkpoints, branch, offsets)
   * @param checkpoint      the checkpoint rolled back to, or null for a step
   * @param snapshotStep    the snapshot the restore started from (0: the base model)
   * @param replayed        steps replayed from it
   * @param digest          SHA-256 of the restored parameters
   * @param verified        whether replaying on to the next snapshot reproduced it (null: no later snapshot)
   * @param verifiedAgainst the step of that snapshot (0 when none)
   * @param millis          time taken
   */
  public record RollbackResult(Rollback rollback, Checkpoint checkpoint, long snapshotStep, long replayed, String digest,
      Boolean verified, long verifiedAgainst, long millis) {

    public JsonLine json() {
      return new JsonLine()
          .put("step", rollback.step())
          .put("checkpoint", checkpoint == null ? null : checkpoint.id())
          .put("steps_abandoned", rollback.stepsAbandoned())
          .put("branch", rollback.branch().map(b -> (Object) b.id()).orElse(null))
          .put("checkpoints_abandoned", rollback.checkpointsAbandoned())
          .put("snapshots_dropped", rollback.snapshotsDropped())
          .put("offsets", offsetsJson(rollback.offsets()))
          .put("parameters_sha256", digest)
          .put("verified", verified)
          .put("verified_against", verified == null ? null : verifiedAgainst)
          .put("snapshot_step", snapshotStep)
          .put("replayed", replayed)
          .put("rollback_ms", millis);
    }
  }

  /**
   * Forgets events for good, model included ({@code pockettune forget}): erases them from the log
   * and their dead letters, rolls the model back to the last step before any step that trained on
   * them, deletes the steps that had (superseding their checkpoints), and trains again on every
   * later event in the original order, so that the model is bit for bit the one a run over the log
   * without them would have trained. Several events cost one rollback. Beside training in this
   * process, or a service in another, training pauses for it and resumes after. A forget that a
   * crash interrupted is finished first; with no {@code events}, that is all it does.
   *
   * @param events {@code topic-partition@offset} (such as {@code messages-0@17}) or event ids
   * @return what was done, or null when {@code events} is empty and nothing was unfinished
   * @throws IllegalArgumentException in one sentence when a reference names no event
   */
  public synchronized ForgetResult forget(List<String> events) throws IOException {
    checkOpen();
    List<String> refs = List.copyOf(events);
    if (service != null) {
      return service.forget(refs);
    }
    Optional<JsonNode> answer = ControlChannel.call(dir.root(), new JsonLine().put("op", "forget").put("events", refs)
        .toString(), List.of());
    if (answer.isPresent()) {
      return ForgetResult.of(answer.get());
    }
    closeForeground();
    openLog();
    StoreSession.requireStore(dir);
    Forgetting.Batching batching = batchingOf(settings);
    try (StoreSession session = StoreSession.forForget(dir, pkg(), settings.threads())) {
      RunConfig config = session.runConfig();
      if (config.batch() > 0) {
        batching = new Forgetting.Batching(config.batch(), batching.batchTokens(),
            config.maxTokens() > 0 ? config.maxTokens() : batching.maxTokens(), batching.checkpointEvery(),
            batching.snapshotEvery());
      }
      Forgetting.Context ctx = new Forgetting.Context(dir, pkg(), log, serde, session, batching);
      if (refs.isEmpty()) {
        return Forgetting.finishPending(ctx).map(Forgetting.Outcome::result).orElse(null);
      }
      return Forgetting.forget(ctx, Forgetting.resolve(log, serde, refs)).result();
    }
  }

  private Forgetting.Batching batchingOf(Service.Settings given) throws IOException {
    return Forgetting.Batching.of(given.withDefaults(pkg().card()));
  }

  /**
   * What a forget did.
   *
   * @param events                the events forgotten, as {@code topic-partition@offset}
   * @param recordsErased         log records erased by this call (0 for those a crash left erased)
   * @param deadLettersErased     dead letters of them erased
   * @param rolledBackTo          the step the model went back to (the last before any that trained on them)
   * @param stepsUndone           steps deleted from the live trajectory
   * @param stepsRetrained        steps trained again after the rollback
   * @param lastStep              the last committed step now
   * @param checkpointsSuperseded checkpoints that had learnt from the events (no longer restorable)
   * @param branchesForgotten     abandoned branches whose steps were deleted by this call
   * @param digest                SHA-256 of the trainable values now
   * @param millis                time taken
   * @param resumed               true when this finished a forget a crash had interrupted
   */
  public record ForgetResult(List<String> events, long recordsErased, long deadLettersErased, long rolledBackTo,
      long stepsUndone, long stepsRetrained, long lastStep, List<Long> checkpointsSuperseded,
      List<Long> branchesForgotten, String digest, long millis, boolean resumed) {

    public JsonLine json() {
      return new JsonLine().put("forgotten", events).put("records_erased", recordsErased)
          .put("dead_letters_erased", deadLettersErased).put("rolled_back_to", rolledBackTo)
          .put("steps_undone", stepsUndone).put("steps_retrained", stepsRetrained).put("last_step", lastStep)
          .put("checkpoints_superseded", checkpointsSuperseded).put("branches_forgotten", branchesForgotten)
          .put("parameters_sha256", digest).put("forget_ms", millis).put("resumed", resumed);
    }

    static ForgetResult of(JsonNode n) {
      List<String> events = new ArrayList<>();
      n.path("forgotten").forEach(e -> events.add(e.asText()));
      List<Long> superseded = new ArrayList<>();
      n.path("checkpoints_superseded").forEach(e -> superseded.add(e.asLong()));
      List<Long> branches = new ArrayList<>();
      n.path("branches_forgotten").forEach(e -> branches.add(e.asLong()));
      return new ForgetResult(List.copyOf(events), n.path("records_erased").asLong(), n.path("dead_letters_erased").asLong(),
          n.path("rolled_back_to").asLong(), n.path("steps_undone").asLong(), n.path("steps_retrained").asLong(),
          n.path("last_step").asLong(), List.copyOf(superseded), List.copyOf(branches),
          n.path("parameters_sha256").asText(), n.path("forget_ms").asLong(), n.path("resumed").asBoolean());
    }
  }

  /**
   * Pulls a personalized model that the fleet job trained: reads the user's trajectory from a Kafka
   * topic (every partition, from the beginning to the end offsets at the start, read committed) and
   * makes the store of {@code dataDir} hold exactly it. Each step is replayed and its fingerprint
   * checked before it commits; a second pull appends only the steps after the store's last. Training
   * and services must not run on the directory meanwhile.
   *
   * @param modelDir the model package the job trains, or null for the built-in demo model
   * @throws IllegalArgumentException one sentence: a missing step or run-config header, another
   *     package, a diverged trajectory, a step that does not replay, no steps for the user, or the
   *     cluster not reachable within the timeout
   */
  public static PullResult pull(Path dataDir, Path modelDir, PullOptions options) throws IOException {
    Objects.requireNonNull(dataDir, "dataDir");
    Objects.requireNonNull(options, "options");
    return TrajectoryPull.pull(dataDir, modelDir, options);
  }

  /**
   * Where and whose trajectory to pull.
   *
   * @param bootstrapServers the Kafka cluster ({@code bootstrap.servers})
   * @param topic            the topic the fleet job publishes to (null: {@link TrajectoryEntry#DEFAULT_TOPIC})
   * @param user             the user id, the records' key
   * @param consumerConfigs  further Kafka consumer configs (security, say); {@code isolation.level} is
   *                         always read_committed
   * @param timeout          how long reading the topic to its end may take
   * @param threads          threads of the perturbation kernel and the model's session (results do
   *                         not depend on it)
   */
  public record PullOptions(String bootstrapServers, String topic, String user, Map<String, Object> consumerConfigs,
      Duration timeout, int threads) {
    public PullOptions {
      if (bootstrapServers == null || bootstrapServers.isBlank()) {
        throw new IllegalArgumentException("--bootstrap-servers is required: give the Kafka cluster as HOST:PORT");
      }
      if (user == null || user.isEmpty()) {
        throw new IllegalArgumentException("--user is required: give the user id the fleet job keys the steps by");
      }
      if (timeout == null || timeout.isNegative() || timeout.isZero() || threads < 1) {
        throw new IllegalArgumentException("--timeout-ms and --threads must be positive");
      }
      topic = topic == null ? TrajectoryEntry.DEFAULT_TOPIC : topic;
      consumerConfigs = consumerConfigs == null ? Map.of() : Map.copyOf(consumerConfigs);
    }

    /** Options with one thread. */
    public PullOptions(String bootstrapServers, String topic, String user, Map<String, Object> consumerConfigs,
        Duration timeout) {
      this(bootstrapServers, topic, user, consumerConfigs, timeout, 1);
    }
  }

  /**
   * What a pull did.
   *
   * @param user        the user pulled
   * @param stepsPulled steps committed by this pull (0: the store already held the topic's steps)
   * @param lastStep    the store's last step now
   * @param digest      SHA-256 of the parameters at {@code lastStep}, as {@code ParameterSet.digest()}
   * @param recordsRead records read on the topic, of every user
   * @param millis      time taken
   */
  public record PullResult(String user, long stepsPulled, long lastStep, String digest, long recordsRead,
      long millis) {

    public JsonLine json() {
      return new JsonLine().put("user", user).put("steps_pulled", stepsPulled).put("last_step", lastStep)
          .put("parameters_sha256", digest).put("records_read", recordsRead).put("pull_ms", millis);
    }
  }

  /**
   * Writes the model at a live checkpoint as a standalone ONNX file (the base graph with the
   * trained values; LoRA adapters merged, or kept as nodes with {@code keepAdapters}).
   */
  public synchronized ExportResult export(long checkpointId, Path out, boolean keepAdapters) throws IOException {
    StoreSession.requireStore(dir);
    return Exports.export(dir, pkg(), settings.threads(), checkpointId, out, keepAdapters);
  }

  /** What an export wrote. */
  public record ExportResult(long checkpoint, long step, Path out, long bytes, List<String> outputs, String digest,
      long replayed, long restoreMillis) {

    public JsonLine json() {
      return new JsonLine().put("checkpoint", checkpoint).put("step", step).put("out", out.toString())
          .put("bytes", bytes).put("parameters_sha256", digest).put("replayed", replayed)
          .put("restore_ms", restoreMillis);
    }
  }

  /**
   * Evaluates checkpoints on a slice of the log without training (or, prequential, tests then
   * trains in memory), and writes a JSON, CSV and HTML report.
   */
  public synchronized ReplayResult replay(ReplayOptions options) throws IOException {
    StoreSession.requireStore(dir);
    return ReplayRun.run(dir, pkg(), options);
  }

  /**
   * What to replay.
   *
   * @param from        first offset (every partition) or ISO-8601 instant; null for the start
   * @param to          offset or instant to stop before; null for the end
   * @param topic       one topic, or null for messages and notes
   * @param checkpoints comma-separated {@code all}, checkpoint ids, {@code base} (the base model) and
   *                    {@code latest} (the last committed step, which needs no checkpoint), such as
   *                    {@code 1,3} or {@code base,latest}
   * @param report      the HTML report to write (CSV and JSON beside it); null for {@code reports/replay.html}
   * @param batch       events per forward pass
   * @param prequential test-then-train from the first chosen checkpoint instead
   * @param baseline    also evaluate the base model (step 0)
   * @param threads     worker threads
   */
  public record ReplayOptions(String from, String to, String topic, String checkpoints, Path report, int batch,
      boolean prequential, boolean baseline, int threads) {
    public ReplayOptions {
      Objects.requireNonNull(checkpoints, "checkpoints");
      if (batch < 1 || threads < 1) {
        throw new IllegalArgumentException("--batch and --threads must be positive");
      }
    }
  }

  /** A replay's summary lines (for people) and its figures (the JSON document the report holds). */
  public record ReplayResult(List<String> lines, JsonLine json) {}

  /**
   * Trains in the foreground: up to {@code maxSteps} steps on the events before {@code until}
   * (per partition), from the committed offsets, each step committed. Training must not run in the
   * background meanwhile.
   *
   * @param listener called after every committed step with (step, mean loss of its two passes)
   */
  public synchronized TrainResult train(long maxSteps, Map<TopicPartition, Long> until, StepListener listener)
      throws IOException {
    return foreground("train").train(maxSteps, until, listener);
  }

  /**
   * The loss (per target token, or per example for classification) of the latest committed model
   * on the events in [{@code from}, {@code to}), in batches of {@code batch}. Training must not run.
   */
  public synchronized double evaluate(Map<TopicPartition, Long> from, Map<TopicPartition, Long> to, int batch)
      throws IOException {
    return foreground("evaluate").evaluate(from, to, batch);
  }

  /**
   * The personalized model at {@code pin}: {@code base}, {@code latest} (following every new
   * committed step of training in this process), a checkpoint id or {@code step:N}. Without a
   * store, only {@code base} (the package alone). Close it when done.
   */
  public synchronized PersonalModel personalModel(String pin) throws IOException {
    checkOpen();
    if (service != null) {
      return PersonalModel.open(pkg(), service.store(), false, pin, settings.threads());
    }
    if (foreground != null) {
      return PersonalModel.open(pkg(), foreground.store(), false, pin, settings.threads());
    }
    if (pin.equals("base") && !Files.isDirectory(dir.store())) {
      return PersonalModel.open(pkg(), null, false, pin, settings.threads());
    }
    StoreSession.requireStore(dir);
    ModelPackage p = pkg();
    p.checkBinding(dir);
    ModelStore store = dir.withSnapshotKey(ModelStore.openReadOnly(dir.store()));
    try {
      return PersonalModel.open(p, store, true, pin, settings.threads());
    } catch (RuntimeException e) {
      store.close();
      throw e;
    }
  }

  /**
   * Classifies texts at {@code pin} ({@link #personalModel}): through a service running on this
   * data directory in another process when there is one (it holds the model), else in this process.
   */
  public synchronized List<PersonalModel.Classification> classify(String pin, List<String> texts) throws IOException {
    Optional<JsonNode> remote = service == null ? remote("classify", pin, texts, null) : Optional.empty();
    if (remote.isPresent()) {
      List<PersonalModel.Classification> out = new java.util.ArrayList<>();
      for (JsonNode r : remote.get().path("results")) {
        Map<String, Double> p = new LinkedHashMap<>();
        r.path("probabilities").properties().forEach(e -> p.put(e.getKey(), e.getValue().asDouble()));
        out.add(new PersonalModel.Classification(r.path("label").asText(), p, r.path("step").asLong()));
      }
      return out;
    }
    try (PersonalModel m = personalModel(pin)) {
      List<PersonalModel.Classification> out = new java.util.ArrayList<>();
      for (String t : texts) {
        out.add(m.classify(t));
      }
      return out;
    }
  }

  /** Scores texts at {@code pin} (labels: per text, for a classifier; else null), as {@link #classify} routes. */
  public synchronized List<PersonalModel.Score> score(String pin, List<String> texts, List<String> labels)
      throws IOException {
    Optional<JsonNode> remote = service == null ? remote("score", pin, texts, labels) : Optional.empty();
    if (remote.isPresent()) {
      List<PersonalModel.Score> out = new java.util.ArrayList<>();
      for (JsonNode r : remote.get().path("results")) {
        out.add(new PersonalModel.Score(r.path("loss").asDouble(), r.path("perplexity").asDouble(),
            r.path("tokens").asLong(), r.path("label_probability").isNumber() ? r.path("label_probability").asDouble()
            : null, r.path("step").asLong()));
      }
      return out;
    }
    try (PersonalModel m = personalModel(pin)) {
      List<PersonalModel.Score> out = new java.util.ArrayList<>();
      for (int i = 0; i < texts.size(); i++) {
        out.add(m.score(texts.get(i), labels == null ? null : labels.get(i)));
      }
      return out;
    }
  }

  /**
   * Completes a prompt at {@code pin} ({@link #personalModel}), through a service running on this
   * data directory in another process when there is one, else in this process.
   */
  public synchronized PersonalModel.Completion generate(String pin, String prompt, PersonalModel.CompletionOptions o)
      throws IOException {
    if (service == null) {
      JsonLine request = new JsonLine().put("op", "generate").put("checkpoint", pin).put("prompt", prompt)
          .put("max_new_tokens", o.maxNewTokens()).put("temperature", o.temperature()).put("top_k", o.topK())
          .put("top_p", o.topP()).put("seed", o.seed()).put("stop", o.stop()).put("kv_cache", o.kvCache());
      Optional<JsonNode> remote = ControlChannel.call(dir.root(), request.toString(), List.of());
      if (remote.isPresent()) {
        JsonNode r = remote.get();
        return new PersonalModel.Completion(r.path("text").asText(), r.path("tokens").asInt(),
            r.path("tokens_per_s").asDouble(), r.path("kv_cache").asBoolean(), r.path("step").asLong());
      }
    }
    try (PersonalModel m = personalModel(pin)) {
      return m.complete(prompt, o);
    }
  }

  /** Asks a service running in another process, if one listens on this data directory. */
  private Optional<JsonNode> remote(String op, String pin, List<String> texts, List<String> labels) throws IOException {
    List<String> body = new java.util.ArrayList<>();
    for (int i = 0; i < texts.size(); i++) {
      body.add(new JsonLine().put("text", texts.get(i)).put("label", labels == null ? null : labels.get(i)).toString());
    }
    return ControlChannel.call(dir.root(), new JsonLine().put("op", op).put("checkpoint", pin).toString(), body);
  }

  /** Marks a checkpoint at the last committed step with a label and figures. */
  public synchronized Checkpoint markCheckpoint(String label, Map<String, Double> metrics) {
    if (service != null) {
      return service.store().markCheckpoint(label, metrics);
    }
    if (foreground != null) {
      return foreground.store().markCheckpoint(label, metrics);
    }
    StoreSession.requireStore(dir);
    try (ModelStore store = dir.withSnapshotKey(ModelStore.openExisting(dir.store()))) {
      return store.markCheckpoint(label, metrics);
    }
  }

  /** Called after every committed step of {@link #train}. */
  @FunctionalInterface
  public interface StepListener {
    void stepCommitted(long step, double loss);
  }

  /** What {@link #train} did. */
  public record TrainResult(long steps, long lastStep, long eventsTrained, long deadLetters, long unlabelled,
      long parameters, long restoredFrom, long replayed) {}

  private Foreground foreground(String what) throws IOException {
    requireStopped(what);
    if (foreground == null) {
      openLog();
      foreground = Foreground.open(dir, pkg(), log, serde, settings);
    }
    return foreground;
  }

  /** Closes foreground training's store and model, so that another user of the store can open it. */
  private void closeForeground() {
    if (foreground != null) {
      try {
        foreground.close();
      } finally {
        foreground = null;
      }
    }
  }

  private void requireStopped(String what) {
    checkOpen();
    if (service != null) {
      throw new IllegalStateException(what + " needs training stopped: call stopTraining() first");
    }
  }

  private ModelPackage pkg() throws IOException {
    checkOpen();
    if (pkg == null) {
      pkg = ModelPackage.resolve(modelDir, dir);
    }
    return pkg;
  }

  private void openLog() throws IOException {
    checkOpen();
    if (log == null) {
      dir.createRoot();
      EmbeddedLog l = dir.openLog(logConfig);
      try {
        Topics.create(l);
        serde = new EventSerde(SchemaStore.open(dir.schemas()));
      } catch (IOException | RuntimeException e) {
        l.close();
        throw e;
      }
      log = l;
    }
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("this PocketTune is closed");
    }
  }

  /**
   * Makes a model package from an ONNX export ({@code pockettune model init}): inspects the graph,
   * writes {@code model.onnx} (hard-linked or copied, with its external data), the tokenizer and a
   * card that fits, then loads it as training will.
   *
   * @return the package's description, as {@link #inspectModel} gives it, plus {@code out}
   */
  public static JsonLine initModel(ModelInit init) throws IOException {
    return ModelPackages.init(init);
  }

  /**
   * Validates a model package with one forward pass on a dummy batch and describes it: inputs,
   * outputs, parameter counts per group, the trainable count under its card, memory.
   */
  public static JsonLine inspectModel(Path packageDir, int threads) throws IOException {
    return ModelPackages.inspect(packageDir, threads);
  }

  /**
   * What {@link #initModel} makes; null fields take defaults (the objective from the graph: a
   * decoder gets causal-lm, an encoder embedding-classification).
   *
   * @param onnx           the ONNX export
   * @param tokenizer      its tokenizer.json, or null for byte tokens
   * @param objective      causal-lm, prompt-classification, embedding-classification or scalar-loss
   * @param labels         label names (classification)
   * @param labelPrompts   one prompt per label (embedding-classification)
   * @param labelWords     one word per label (prompt-classification)
   * @param template       prompt around {@code {text}} (prompt-classification)
   * @param pooling        mean or cls (embedding-classification; default mean)
   * @param temperature    cosine scale (embedding-classification; default 20)
   * @param lossOutput     the loss output (scalar-loss)
   * @param trainable      all, norms, lora[:R:ALPHA[:TARGETS]], side[:R[:TAPS]] or name patterns (default all)
   * @param labelAttribute the event attribute holding the label (default label)
   * @param maxTokens      tokens per example (default 128)
   * @param lr             suggested learning rate (default by trainable choice)
   * @param eps            suggested perturbation scale (default by trainable choice)
   * @param estimator      mezo, fzoo or fzoo:N (default mezo; fzoo takes 8 directions per step)
   * @param out            the package folder to write
   */
  public record ModelInit(Path onnx, Path tokenizer, String objective, List<String> labels, List<String> labelPrompts,
      List<String> labelWords, String template, String pooling, Float temperature, String lossOutput, String trainable,
      String labelAttribute, Integer maxTokens, Float lr, Float eps, String estimator, Path out) {
    public ModelInit {
      Objects.requireNonNull(out, "out");
    }

    /** A MeZO package (the form before estimators were configurable). */
    public ModelInit(Path onnx, Path tokenizer, String objective, List<String> labels, List<String> labelPrompts,
        List<String> labelWords, String template, String pooling, Float temperature, String lossOutput, String trainable,
        String labelAttribute, Integer maxTokens, Float lr, Float eps, Path out) {
      this(onnx, tokenizer, objective, labels, labelPrompts, labelWords, template, pooling, temperature, lossOutput,
          trainable, labelAttribute, maxTokens, lr, eps, null, out);
    }
  }

  /** @return the first message in the cause chain of {@code e}, on one line: what a user should read */
  public static String message(Throwable e) {
    Throwable t = e;
    while (t.getMessage() == null && t.getCause() != null) {
      t = t.getCause();
    }
    String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    return message.replace('\n', ' ');
  }

  /** @return offsets keyed by "topic-partition", for JSON */
  public static Map<String, Long> offsetsJson(Map<SourcePartition, Long> offsets) {
    Map<String, Long> out = new LinkedHashMap<>();
    offsets.forEach((p, o) -> out.put(p.toString(), o));
    return out;
  }

  /** Stops training (the step in flight commits), closes the producer, the store and the log. */
  @Override
  public synchronized void close() throws IOException {
    if (closed) {
      return;
    }
    try {
      stopTraining();
      closeForeground();
    } finally {
      closed = true;
      try {
        if (producer != null) {
          producer.close();
        }
      } finally {
        try {
          if (pkg != null) {
            pkg.close();
          }
        } finally {
          if (log != null) {
            log.close();
          }
        }
      }
    }
  }

  /** Settings of a {@link PocketTune}; every value has a default. */
  public static final class Builder {
    private final Path dataDir;
    private Path model;
    private int threads = Runtime.getRuntime().availableProcessors();
    private int batch = 16;
    private long batchTokens = Long.MAX_VALUE;
    private long maxWaitMillis = Long.MAX_VALUE;
    private Integer maxTokens;
    private double dutyCycle = 1.0;
    private long maxMemoryMb;
    private int checkpointEvery = 500;
    private int snapshotEvery = 500;
    private Float learningRate;
    private Float eps;
    private long seed = 42;
    private long maxIdleMillis = 200;
    private long pollMillis = 50;
    private boolean exitWhenIdle;
    private boolean metricsCsv;
    private boolean controlSocket;
    private java.net.InetSocketAddress kafkaAddress;
    private boolean kafkaAllowRemote;
    private PrintWriter progress;
    private PrintWriter stepLog;
    private Time time = Time.SYSTEM;
    private io.pockettune.ingest.LogConfig logConfig = io.pockettune.ingest.LogConfig.defaults();
    private byte[] encryptionKey;
    private boolean encrypt;

    private Builder(Path dataDir) {
      this.dataDir = Objects.requireNonNull(dataDir, "dataDir");
      DataDirectory.at(dataDir); // a regular file is refused here, before any command does work
    }

    /**
     * The embedded log's configuration: segment size, flush policy and retention (default: {@link
     * io.pockettune.ingest.LogConfig#defaults}, which keeps every record). With retention, the log
     * deletes its oldest segments (checked every {@link io.pockettune.ingest.LogConfig#retentionCheckIntervalMs()} ms),
     * and training skips what retention deleted before it was read, with a warning.
     */
    public Builder logConfig(io.pockettune.ingest.LogConfig config) {
      this.logConfig = Objects.requireNonNull(config, "config");
      return this;
    }

    /**
     * Encrypts the data directory at rest with {@code key}, 32 bytes (AES-256), which the embedding
     * app keeps (in Android's keystore, say): no key file is written. A new directory becomes
     * encrypted; an encrypted one must be given its own key; a directory already holding clear data
     * is refused. Log batches (events, dead letters) and snapshots are encrypted; see DESIGN 4.1.9.
     *
     * @throws IllegalArgumentException if {@code key} is not 32 bytes
     */
    public Builder encryptionKey(byte[] key) {
      if (key != null && key.length != DataDirectory.KEY_BYTES) {
        throw new IllegalArgumentException("the encryption key has " + key.length + " bytes but must have "
            + DataDirectory.KEY_BYTES + " (AES-256); pass 32 random bytes");
      }
      this.encryptionKey = key == null ? null : key.clone();
      return this;
    }

    /**
     * {@code --encrypt}: when the data directory is new, makes it encrypted with a random key kept
     * in {@code <data-dir>/key} (mode 0600); an encrypted directory is detected without this flag.
     * A directory that already holds clear data is refused in one sentence.
     */
    public Builder encrypt(boolean on) {
      this.encrypt = on;
      return this;
    }

    /** The model package (a folder made by {@code pockettune model init}); default: the built-in demo model. */
    public Builder model(Path packageDir) {
      this.model = packageDir;
      return this;
    }

    /** Worker threads of ONNX Runtime and the perturbation kernel (default: all cores). */
    public Builder threads(int n) {
      this.threads = n;
      return this;
    }

    /** Examples per step, the count trigger (default 16). */
    public Builder batch(int examples) {
      this.batch = examples;
      return this;
    }

    /** Token budget per step (default: none). */
    public Builder batchTokens(long tokens) {
      this.batchTokens = tokens;
      return this;
    }

    /** Longest a partial batch waits before it trains (default: until full). */
    public Builder maxWait(Duration wait) {
      this.maxWaitMillis = wait.toMillis();
      return this;
    }

    /** Tokens per example (default: the model card's {@code max_tokens}). */
    public Builder maxTokens(int tokens) {
      this.maxTokens = tokens;
      return this;
    }

    /** Largest fraction of wall time spent training, in (0, 1] (default 1). */
    public Builder dutyCycle(double fraction) {
      this.dutyCycle = fraction;
      return this;
    }

    /** Pause training while the resident set is above this (default: no ceiling). */
    public Builder maxMemoryMb(long mb) {
      this.maxMemoryMb = mb;
      return this;
    }

    /** Steps between periodic checkpoints (default 500; 0: none). */
    public Builder checkpointEvery(int steps) {
      this.checkpointEvery = steps;
      return this;
    }

    /** Steps between parameter snapshots (default 500; 0: never). */
    public Builder snapshotEvery(int steps) {
      this.snapshotEvery = steps;
      return this;
    }

    /** Learning rate (default: the model card's {@code lr}). */
    public Builder learningRate(float lr) {
      this.learningRate = lr;
      return this;
    }

    /** Perturbation scale (default: the model card's {@code eps}). */
    public Builder eps(float eps) {
      this.eps = eps;
      return this;
    }

    /** Run seed, from which every step's direction derives (default 42). */
    public Builder seed(long seed) {
      this.seed = seed;
      return this;
    }

    /**
     * How long an empty partition holds back the time order (default 200 ms). Training stays caught
     * up for 30 s, or this if longer, before the service marks an {@code idle} checkpoint at new steps.
     */
    public Builder maxIdle(Duration idle) {
      this.maxIdleMillis = idle.toMillis();
      return this;
    }

    /** How often an idle trainer looks for new events (default 50 ms). */
    public Builder pollInterval(Duration interval) {
      this.pollMillis = interval.toMillis();
      return this;
    }

    /** Stop training once every acknowledged event is consumed (for scripts). */
    public Builder exitWhenIdle(boolean exit) {
      this.exitWhenIdle = exit;
      return this;
    }

    /** Write the Dropwizard metrics as CSV under {@code metrics/} every 10 s (default: off). */
    public Builder metricsCsv(boolean on) {
      this.metricsCsv = on;
      return this;
    }

    /**
     * While training runs, serve other processes (produce, status, pause, resume) on the data
     * directory's Unix-domain control socket (default: off; nothing listens unless asked).
     */
    public Builder controlSocket(boolean on) {
      this.controlSocket = on;
      return this;
    }

    /**
     * While training runs, serve Kafka clients on {@code address}: the Kafka wire protocol over this
     * data directory's log (default: off). SASL/PLAIN with the credentials in
     * {@code <data-dir>/kafka-credentials}, written with a random password on first start. Only a
     * loopback address is accepted unless {@code allowRemote}.
     */
    public Builder kafkaListener(java.net.InetSocketAddress address, boolean allowRemote) {
      this.kafkaAddress = Objects.requireNonNull(address, "address");
      this.kafkaAllowRemote = allowRemote;
      return this;
    }

    /**
     * The clock of batch waits, idle timeouts and rests (Kafka's {@code Time}, the project's one
     * time seam; default the system clock). Tests pass Kafka's {@code MockTime}.
     */
    public Builder time(Time clock) {
      this.time = Objects.requireNonNull(clock, "time");
      return this;
    }

    /** Where progress lines go (default: nowhere). */
    public Builder progress(PrintWriter out) {
      this.progress = out;
      return this;
    }

    /** Prints "committed N" after every commit of background training (for tests and scripts). */
    public Builder stepLog(PrintWriter out) {
      this.stepLog = out;
      return this;
    }

    /**
     * Opens the runtime. Cheap: the log, the store and the model open when first needed. A model
     * package given is checked now, and so is the data directory's binding to it.
     *
     * @throws IllegalArgumentException for a setting out of range, a model package that is wrong,
     *     or a data directory bound to another package
     * @throws IllegalStateException for an encrypted data directory without its key (no key file,
     *     none given) or with another key, a key for a directory in the clear, or {@link #encrypt}
     *     for a directory that already holds clear data (one sentence each)
     */
    public PocketTune open() throws IOException {
      PocketTune t = new PocketTune(this);
      if (model != null) {
        t.pkg().checkBinding(t.dir);
      }
      return t;
    }

    private Service.Settings settings() {
      if (threads < 1 || batch < 1 || (maxTokens != null && maxTokens < 2) || checkpointEvery < 0 || snapshotEvery < 0
          || maxIdleMillis < 0 || batchTokens < 2 || maxWaitMillis < 0 || pollMillis < 1) {
        throw new IllegalArgumentException("--threads and --batch must be positive, --max-tokens and --batch-tokens at"
            + " least 2, and --checkpoint-every, --snapshot-every, --max-idle-ms and --max-wait-ms not negative");
      }
      return new Service.Settings(threads, batch, batchTokens, maxWaitMillis, maxTokens == null ? 0 : maxTokens,
          dutyCycle, maxMemoryMb, checkpointEvery, snapshotEvery, learningRate == null ? Float.NaN : learningRate,
          eps == null ? Float.NaN : eps, seed, maxIdleMillis, pollMillis, exitWhenIdle, metricsCsv, controlSocket);
    }
  }
}
