package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.OwnerOnly;
import io.pockettune.schemas.EventSerde;
import io.pockettune.store.Branch;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.MezoTrainer;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.avro.Schema;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.TopicPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code forget}: exact forgetting of events, model included.
 *
 * <h2>Why it can be exact</h2>
 * The model is the base plus a trajectory of steps, each committed with the log offsets it had
 * consumed, and training order is a function of the log's contents (see {@link LogSource}). So
 * forgetting an event is: erase it from the log ({@link EmbeddedLog#erase}, which leaves a hole
 * every reader skips) and its dead letter; roll the store back to the last step before the first
 * step that consumed it ({@link ModelStore#firstStepConsuming}); delete the steps that had learnt
 * from it, on the live trajectory and on abandoned branches ({@link ModelStore#forgetBranches}),
 * which supersedes their checkpoints; and train again, in the original order, on every event
 * from there up to where training had gone (never further: an event training had not reached
 * stays untrained). Since the other events keep their order and the step seeds
 * depend on the step number alone, the model is bit for bit the one a run over the same log
 * without the event would have trained (with the count and token-budget batch triggers; a
 * max-wait trigger cuts batches by the clock, not by the log). Several events cost one rollback,
 * to before the earliest.
 *
 * <h2>Crash safety</h2>
 * Before anything is erased, a journal {@code forget.pending} in the data directory names the
 * events (coordinates only, no text), the step to roll back to and the phase. Erasing, the
 * rollback and the branch deletion are each idempotent, so whatever opens the data directory next
 * for training (the service, foreground training, or {@code forget} itself) finishes the job from
 * the journal before anything else; while the journal is in its first phase the store may still
 * hold the event's influence, so nothing opens the model to answer or export
 * ({@link #refuseIfUnfinished}). Once the rollback is durable the journal moves to the retrain
 * phase: the store then holds no trace of the events, only fewer steps, and retraining resumes
 * exactly like training after a crash. The journal goes once the retraining is done.
 *
 * <p>Fault injection for tests: the system property {@code pockettune.forget.haltAt} ({@code
 * journal}, {@code erase}, {@code rollback} or {@code retrain}) halts the JVM right after that
 * phase (for {@code retrain}, after the first step retrained), as a SIGKILL would.
 */
final class Forgetting {
  private static final Logger LOG = LoggerFactory.getLogger(Forgetting.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  static final String JOURNAL = "forget.pending";
  static final String HALT_PROPERTY = "pockettune.forget.haltAt";
  private static final Pattern COORDINATES = Pattern.compile("(.+)-(\\d+)@(\\d+)");

  private Forgetting() {}

  /** One event, by its coordinates in the log. */
  record Event(String topic, int partition, long offset) implements Comparable<Event> {
    String coordinates() {
      return topic + "-" + partition + "@" + offset;
    }

    TopicPartition topicPartition() {
      return new TopicPartition(topic, partition);
    }

    @Override
    public int compareTo(Event o) {
      int c = topic.compareTo(o.topic);
      if (c == 0) {
        c = Integer.compare(partition, o.partition);
      }
      return c != 0 ? c : Long.compare(offset, o.offset);
    }
  }

  /** What training needs to retrain after the rollback. */
  record Context(DataDirectory dir, ModelPackage pkg, EmbeddedLog log, EventSerde serde, StoreSession session,
      Batching batching) {}

  /**
   * How training cut batches: the count from the store's run config, the token budget (not
   * recorded in the store: {@code serve --batch-tokens}), tokens per example, and the periodic
   * checkpoints and snapshots.
   */
  record Batching(int batch, long batchTokens, int maxTokens, int checkpointEvery, int snapshotEvery) {
    static Batching of(Service.Settings s) {
      return new Batching(s.batch(), s.batchTokens(), s.maxTokens(), s.checkpointEvery(), s.snapshotEvery());
    }
  }

  /** What a forget did, and the trainer, at the last step, that training goes on with. */
  record Outcome(PocketTune.ForgetResult result, MezoTrainer trainer) {}

  /**
   * Finds the events {@code refs} name: {@code topic-partition@offset}, or an event id (the
   * {@code id} field of a message or note; every event with that id).
   *
   * @throws IllegalArgumentException in one sentence when a reference names no event
   */
  static List<Event> resolve(EmbeddedLog log, EventSerde serde, List<String> refs) throws IOException {
    if (refs.isEmpty()) {
      throw new IllegalArgumentException("name at least one event to forget: --event messages-0@17 (topic-partition@offset)"
          + " or --event <event id>");
    }
    Set<Event> out = new TreeSet<>();
    Set<String> ids = new LinkedHashSet<>();
    for (String ref : refs) {
      String r = ref.strip();
      Matcher m = COORDINATES.matcher(r);
      if (m.matches()) {
        if (Topics.sources().stream().noneMatch(tp -> tp.topic().equals(m.group(1)))) {
          throw new IllegalArgumentException("'" + m.group(1) + "' in " + r + " is not an event topic: forget events of "
              + Topics.MESSAGES + " or " + Topics.NOTES + ", such as messages-0@17");
        }
        Event e = new Event(m.group(1), Integer.parseInt(m.group(2)), Long.parseLong(m.group(3)));
        if (!Topics.sources().contains(e.topicPartition())) {
          throw new IllegalArgumentException("topic " + e.topic() + " has no partition " + e.partition() + ": see the"
              + " partitions with 'pockettune status'");
        }
        List<LogEntry> at = e.offset() < log.startOffset(e.topic(), e.partition())
            || e.offset() >= log.endOffset(e.topic(), e.partition())
            ? List.of() : log.read(e.topic(), e.partition(), e.offset(), 1);
        if (at.isEmpty() || at.get(0).offset() != e.offset()) {
          throw new IllegalArgumentException("there is no event at " + e.coordinates() + ": it was forgotten already,"
              + " removed by retention, or not appended yet (the partition holds offsets "
              + log.startOffset(e.topic(), e.partition()) + " to " + (log.endOffset(e.topic(), e.partition()) - 1) + ")");
        }
        out.add(e);
      } else if (r.isEmpty()) {
        throw new IllegalArgumentException("an empty --event names nothing: give topic-partition@offset or an event id");
      } else {
        ids.add(r);
      }
    }
    if (!ids.isEmpty()) {
      Map<String, List<Event>> found = byId(log, serde, ids);
      for (String id : ids) {
        List<Event> events = found.get(id);
        if (events == null) {
          throw new IllegalArgumentException("no event in " + Topics.MESSAGES + " or " + Topics.NOTES + " has the id '"
              + id + "' (it may be forgotten already): give its topic-partition@offset, such as messages-0@17");
        }
        out.addAll(events);
      }
    }
    return List.copyOf(out);
  }

  private static Map<String, List<Event>> byId(EmbeddedLog log, EventSerde serde, Set<String> ids) throws IOException {
    Map<String, List<Event>> found = new LinkedHashMap<>();
    for (TopicPartition tp : Topics.sources()) {
      long next = log.startOffset(tp.topic(), tp.partition());
      long end = log.endOffset(tp.topic(), tp.partition());
      while (next < end) {
        List<LogEntry> chunk = log.read(tp.topic(), tp.partition(), next, 512);
        if (chunk.isEmpty()) {
          break;
        }
        for (LogEntry e : chunk) {
          String id = idOf(serde, e.value());
          if (id != null && ids.contains(id)) {
            found.computeIfAbsent(id, k -> new ArrayList<>()).add(new Event(tp.topic(), tp.partition(), e.offset()));
          }
        }
        next = chunk.get(chunk.size() - 1).offset() + 1;
      }
    }
    return found;
  }

  private static String idOf(EventSerde serde, byte[] value) {
    try {
      SpecificRecord event = serde.deserialize(value);
      Schema.Field f = event.getSchema().getField("id");
      Object id = f == null ? null : event.get(f.pos());
      return id == null ? null : id.toString();
    } catch (RuntimeException undecodable) {
      return null; // not an event this PocketTune can read: it has no id to match
    }
  }

  /** Forgets {@code events} (after finishing any forget a crash interrupted). */
  static Outcome forget(Context ctx, List<Event> events) throws IOException {
    Optional<Journal> pending = Journal.read(ctx.dir());
    if (pending.isPresent()) {
      LOG.warn("finishing a forget that did not finish before: {}", pending.get().describe());
      run(ctx, pending.get(), true);
    }
    ModelStore store = ctx.session().store();
    Map<SourcePartition, Long> earliest = earliest(events);
    long first = store.firstStepConsuming(earliest);
    long last = store.lastStep();
    // Retraining goes as far as training had gone, never further: events training had not reached
    // (a demo's held-out tail, a slice not trained yet) stay untrained.
    Map<String, Long> until = new TreeMap<>();
    store.committedOffsets().forEach((p, next) -> until.put(p.topic() + "-" + p.partition(), next));
    Journal j = new Journal(events, first == 0 ? last : first - 1, last, until, Journal.ERASE,
        System.currentTimeMillis());
    j.write(ctx.dir());
    halt("journal");
    return run(ctx, j, false);
  }

  /**
   * Finishes a forget a crash interrupted, if the data directory has one; what opens the data
   * directory for training calls this first.
   */
  static Optional<Outcome> finishPending(Context ctx) throws IOException {
    Optional<Journal> pending = Journal.read(ctx.dir());
    if (pending.isEmpty()) {
      return Optional.empty();
    }
    LOG.warn("finishing a forget that did not finish before: {}", pending.get().describe());
    return Optional.of(run(ctx, pending.get(), true));
  }

  /**
   * Refuses, in one sentence, to open the model of a data directory whose forget stopped before its
   * rollback was durable: the store may still hold what the events taught it.
   */
  static void refuseIfUnfinished(DataDirectory dir) {
    Optional<Journal> j;
    try {
      j = Journal.read(dir);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read " + dir.forgetJournal() + " (" + e.getMessage() + "): check"
          + " its permissions; a forget may be unfinished", e);
    }
    if (j.isPresent() && j.get().phase().equals(Journal.ERASE)) {
      throw new IllegalStateException("a forget of " + j.get().events().size() + " event(s) in " + dir + " did not"
          + " finish, so the model may still hold what they taught it: run 'pockettune forget --data-dir " + dir.root()
          + "' (or start 'pockettune serve'), which finishes it, before using the model");
    }
  }

  private static Outcome run(Context ctx, Journal j, boolean resumed) throws IOException {
    long started = System.nanoTime();
    EmbeddedLog log = ctx.log();
    ModelStore store = ctx.session().store();
    long erased = 0;
    Map<TopicPartition, Set<Long>> byPartition = new TreeMap<>(java.util.Comparator.comparing(TopicPartition::toString));
    for (Event e : j.events()) {
      byPartition.computeIfAbsent(e.topicPartition(), k -> new TreeSet<>()).add(e.offset());
    }
    for (Map.Entry<TopicPartition, Set<Long>> e : byPartition.entrySet()) {
      erased += log.erase(e.getKey().topic(), e.getKey().partition(), e.getValue()).size();
    }
    long deadLetters = eraseDeadLetters(log, j.events());
    halt("erase");
    long stepsUndone = 0;
    List<Long> superseded = new ArrayList<>();
    List<Long> branches = new ArrayList<>();
    if (j.phase().equals(Journal.ERASE)) {
      if (store.lastStep() > j.rollbackTo()) {
        stepsUndone = store.rollbackTo(j.rollbackTo()).stepsAbandoned();
      }
      for (Branch b : store.forgetBranches(earliest(j.events()))) {
        branches.add(b.id());
      }
      Set<Long> forgotten = store.branches().stream().filter(Branch::forgotten).map(Branch::id)
          .collect(Collectors.toSet());
      for (Checkpoint c : store.checkpoints()) {
        if (forgotten.contains(c.branch())) {
          superseded.add(c.id());
        }
      }
      j = j.inPhase(Journal.RETRAIN);
      j.write(ctx.dir());
      halt("rollback");
    }
    long from = store.lastStep();
    MezoTrainer trainer = retrain(ctx, j.until());
    Journal.delete(ctx.dir());
    long millis = (System.nanoTime() - started) / 1_000_000;
    PocketTune.ForgetResult result = new PocketTune.ForgetResult(j.events().stream().map(Event::coordinates).toList(),
        erased, deadLetters, j.rollbackTo(), stepsUndone, store.lastStep() - from, store.lastStep(), superseded,
        branches, ctx.session().model().parameters().digest(), millis, resumed);
    LOG.info("forgot {}: erased {} record(s) and {} dead letter(s), rolled back to step {}, retrained {} step(s) in {} ms",
        result.events(), erased, deadLetters, j.rollbackTo(), result.stepsRetrained(), millis);
    return new Outcome(result, trainer);
  }

  /** Erases the dead letters of the events (keyed by their coordinates; see {@link DeadLetters}). */
  private static long eraseDeadLetters(EmbeddedLog log, List<Event> events) throws IOException {
    if (!log.topics().contains(DeadLetters.TOPIC)) {
      return 0;
    }
    Set<String> keys = events.stream().map(e -> e.topic() + "/" + e.partition() + "/" + e.offset())
        .collect(Collectors.toSet());
    Set<Long> hits = new TreeSet<>();
    long next = log.startOffset(DeadLetters.TOPIC, 0);
    long end = log.endOffset(DeadLetters.TOPIC, 0);
    while (next < end) {
      List<LogEntry> chunk = log.read(DeadLetters.TOPIC, 0, next, 512);
      if (chunk.isEmpty()) {
        break;
      }
      for (LogEntry e : chunk) {
        if (e.key() != null && keys.contains(new String(e.key(), StandardCharsets.UTF_8))) {
          hits.add(e.offset());
        }
      }
      next = chunk.get(chunk.size() - 1).offset() + 1;
    }
    return hits.isEmpty() ? 0 : log.erase(DeadLetters.TOPIC, 0, hits).size();
  }

  /**
   * Trains from the store's last step on every event training had reached before the forget
   * ({@code until}, the committed offsets then), in the bounded merge order, with the count and
   * token-budget triggers (no clock): what a run over the log from which the events were never
   * appended does up to there. A batch left open at the end is not committed; the next training
   * (the service at once) reads its events again, as after any restart.
   */
  private static MezoTrainer retrain(Context ctx, Map<String, Long> until) throws IOException {
    StoreSession session = ctx.session();
    ModelStore store = session.store();
    session.resetToBase();
    Restored restored = session.restore(store.lastStep());
    Batching s = ctx.batching();
    Map<TopicPartition, Long> start = new LinkedHashMap<>();
    Map<TopicPartition, Long> end = new LinkedHashMap<>();
    Map<SourcePartition, Long> committed = store.committedOffsets();
    for (TopicPartition tp : Topics.sources()) {
      start.put(tp, committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()),
          ctx.log().startOffset(tp.topic(), tp.partition())));
      long trainedTo = until.getOrDefault(tp.topic() + "-" + tp.partition(), start.get(tp));
      end.put(tp, Math.max(start.get(tp), Math.min(trainedTo, ctx.log().endOffset(tp.topic(), tp.partition()))));
    }
    MicroBatcher batcher = new MicroBatcher(s.batch(), s.batchTokens(), Long.MAX_VALUE,
        org.apache.kafka.common.utils.Time.SYSTEM);
    TrainingJob job = new TrainingJob(new LogSource(ctx.log(), start, end), ctx.serde(), ctx.pkg().mapper(),
        ctx.pkg().exampleTokenizer(), s.maxTokens(), batcher, restored.trainer(), store, new DeadLetters(ctx.log()),
        s.checkpointEvery(), session.model().parameters(), s.snapshotEvery());
    if (ctx.pkg().card().classification()) {
      job.labelsOnly();
    }
    job.run(Long.MAX_VALUE, (rec, events) -> halt("retrain"));
    return restored.trainer();
  }

  private static Map<SourcePartition, Long> earliest(List<Event> events) {
    Map<SourcePartition, Long> out = new TreeMap<>();
    for (Event e : events) {
      out.merge(new SourcePartition(e.topic(), e.partition()), e.offset(), Math::min);
    }
    return out;
  }

  private static void halt(String phase) {
    if (phase.equals(System.getProperty(HALT_PROPERTY))) {
      LOG.warn("halting after the {} phase of forget ({} is set)", phase, HALT_PROPERTY);
      Runtime.getRuntime().halt(137);
    }
    if (phase.equals(faultAfter) && FAULTS_LEFT.getAndUpdate(n -> Math.max(0, n - 1)) > 0) {
      String what = "injected fault after the " + phase + " phase of forget";
      throw new java.io.UncheckedIOException(what, new IOException(what));
    }
  }

  /**
   * Fault injection for tests in this JVM: the next {@link #FAULTS_LEFT} times a forget passes the
   * phase named here, it fails with an I/O error, as a full disk would make it fail half way.
   */
  static volatile String faultAfter;
  static final java.util.concurrent.atomic.AtomicInteger FAULTS_LEFT = new java.util.concurrent.atomic.AtomicInteger();

  /** The journal {@code forget.pending}: the events by coordinates, the rollback step, the phase. */
  record Journal(List<Event> events, long rollbackTo, long lastStepBefore, Map<String, Long> until, String phase,
      long startedMillis) {
    static final String ERASE = "erase";
    static final String RETRAIN = "retrain";

    Journal inPhase(String p) {
      return new Journal(events, rollbackTo, lastStepBefore, until, p, startedMillis);
    }

    String describe() {
      return events.stream().map(Event::coordinates).toList() + ", phase " + phase + ", rolling back to step "
          + rollbackTo;
    }

    /** Writes the journal durably and atomically (a new file, forced, renamed over the old, the folder forced). */
    void write(DataDirectory dir) throws IOException {
      ObjectNode root = JSON.createObjectNode();
      ArrayNode list = root.putArray("events");
      for (Event e : events) {
        list.addObject().put("topic", e.topic()).put("partition", e.partition()).put("offset", e.offset());
      }
      root.put("rollback_to", rollbackTo).put("last_step_before", lastStepBefore).put("phase", phase)
          .put("started_ms", startedMillis);
      ObjectNode trained = root.putObject("trained_until");
      until.forEach(trained::put);
      Path file = dir.forgetJournal();
      Path tmp = file.resolveSibling(JOURNAL + ".tmp");
      Files.deleteIfExists(tmp);
      Files.createFile(tmp);
      OwnerOnly.restrict(tmp); // it names events of the user's: owner only, as the log is
      try (FileChannel c = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
        c.write(java.nio.ByteBuffer.wrap(JSON.writeValueAsBytes(root)));
        c.force(true);
      }
      Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
      forceDirectory(dir.root());
    }

    static Optional<Journal> read(DataDirectory dir) throws IOException {
      Path file = dir.forgetJournal();
      if (!Files.isRegularFile(file)) {
        return Optional.empty();
      }
      JsonNode root;
      try {
        root = JSON.readTree(file.toFile());
      } catch (IOException e) {
        throw new IOException("the forget journal " + file + " is damaged (" + e.getMessage() + "): it names the events a"
            + " forget was removing; restore it from a backup, or delete it and forget those events again", e);
      }
      List<Event> events = new ArrayList<>();
      root.path("events").forEach(n -> events.add(new Event(n.path("topic").asText(), n.path("partition").asInt(),
          n.path("offset").asLong())));
      Map<String, Long> until = new TreeMap<>();
      root.path("trained_until").fields().forEachRemaining(e -> until.put(e.getKey(), e.getValue().asLong()));
      return Optional.of(new Journal(List.copyOf(events), root.path("rollback_to").asLong(),
          root.path("last_step_before").asLong(), until, root.path("phase").asText(ERASE), root.path("started_ms").asLong()));
    }

    static void delete(DataDirectory dir) throws IOException {
      Files.deleteIfExists(dir.forgetJournal());
      forceDirectory(dir.root());
    }

    private static void forceDirectory(Path dir) throws IOException {
      try (FileChannel c = FileChannel.open(dir, StandardOpenOption.READ)) {
        c.force(true);
      }
    }
  }
}
