package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.LogRecord;
import io.pockettune.pipeline.cli.PersonaStream;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TrainableSelection;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The service in child JVMs: killed with SIGKILL at random moments it still trains every
 * acknowledged event exactly once and ends bit-identical to a run that never stopped; stopped with
 * SIGTERM it commits and closes the log cleanly.
 */
class ServiceKillTest {
  private static final Instant T0 = Instant.parse("2026-09-01T07:00:00Z");
  private static final int EVENTS = 300;
  private static final int BATCH = 4;
  private static final String[] SERVE = {"--threads", "1", "--batch", Integer.toString(BATCH), "--max-tokens", "64",
      "--max-idle-ms", "0", "--checkpoint-every", "10", "--snapshot-every", "8"};

  @TempDir Path dir;
  private Path seed;

  /** A data directory with the tiny model and a log of acknowledged events, malformed ones among them. */
  @BeforeEach
  void produce() throws IOException {
    seed = dir.resolve("seed");
    Files.createDirectories(seed.resolve("model"));
    Files.write(seed.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    try (EmbeddedLog log = EmbeddedLog.open(seed.resolve("log"))) {
      Topics.create(log);
      EventSerde serde = new EventSerde(SchemaStore.open(seed.resolve("schemas")));
      PipelineFixture.appendPersona(log, serde, new PersonaStream(3, T0), EVENTS / 2);
      long t = T0.plusSeconds(3600).toEpochMilli();
      byte[] good = serde.serialize(Message.newBuilder().setId("x").setConversation("ada").setSender("maya")
          .setText("back at 6 x").setEventTime(T0).build());
      byte[] unknown = good.clone();
      unknown[3] ^= 0x33;
      byte[] empty = serde.serialize(Message.newBuilder().setId("e").setConversation("ada").setSender("maya")
          .setText(" ").setEventTime(T0).build());
      byte[] oversize = serde.serialize(Message.newBuilder().setId("o").setConversation("ada").setSender("maya")
          .setText("y".repeat(TrainingJob.DEFAULT_MAX_EVENT_BYTES)).setEventTime(T0).build());
      log.append(Topics.MESSAGES, 1, List.of(new LogRecord(t, null, "corrupt".getBytes(StandardCharsets.UTF_8)),
          new LogRecord(t + 1, null, unknown), new LogRecord(t + 2, null, empty), new LogRecord(t + 3, null, oversize)));
      PipelineFixture.appendPersona(log, serde, new PersonaStream(4, T0.plusSeconds(3000)), EVENTS / 2);
    }
  }

  @Test
  @Timeout(value = 150, unit = TimeUnit.SECONDS)
  void serve_killedAtRandomMoments_trainsEveryEventOnceAndEndsBitIdentical() throws Exception {
    Path reference = copy(seed, dir.resolve("reference"));
    serveInProcess(reference);

    Path killed = copy(seed, dir.resolve("killed"));
    SplittableRandom random = new SplittableRandom(2026);
    List<Long> stepsAtKill = new ArrayList<>();
    long last = 0;
    for (int trial = 0; trial < 10; trial++) {
      // Die a few steps further on each time, a few milliseconds after a commit: mid-step or mid-commit.
      long target = last + 1 + random.nextInt(10);
      Process child = start(killed, "--print-steps");
      BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
      for (String line; (line = out.readLine()) != null; ) {
        if (line.startsWith("committed ") && Long.parseLong(line.substring(10)) >= target) {
          break;
        }
      }
      Thread.sleep(random.nextInt(8));
      child.destroyForcibly();
      child.waitFor();
      try (ModelStore store = ModelStore.openReadOnly(killed.resolve("store"))) {
        last = store.lastStep();
        stepsAtKill.add(last);
      }
    }
    serveInProcess(killed);

    long expectedSteps;
    try (ModelStore ref = ModelStore.openReadOnly(reference.resolve("store"));
        ModelStore store = ModelStore.openReadOnly(killed.resolve("store"))) {
      expectedSteps = ref.lastStep();
      assertEquals(expectedSteps, store.lastStep(), "steps at each kill: " + stepsAtKill);
      assertEquals(ref.committedOffsets(), store.committedOffsets());
      assertEquals(digest(ref), digest(store), "parameters after kills equal the uninterrupted run's");
    }
    assertTiles(killed, 4);
    assertTrue(expectedSteps >= (EVENTS - BATCH) / BATCH, "trained " + expectedSteps + " steps");
    System.out.println("SIGKILL trials: last committed step at each kill " + stepsAtKill + " of " + expectedSteps);
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void serve_sigterm_commitsAndClosesTheLogCleanly() throws Exception {
    Path data = copy(seed, dir.resolve("term"));
    Process child = start(data, "--duty-cycle", "0.5", "--print-steps");
    BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8));
    String line;
    while ((line = out.readLine()) != null && !line.equals("committed 3")) {
      assertTrue(line.startsWith("committed ") || line.startsWith("serving "), line);
    }
    assertEquals("committed 3", line, () -> "the service exited early: " + read(dir.resolve("child.err")));
    child.destroy();
    assertTrue(child.waitFor(30, TimeUnit.SECONDS), "the service stopped on SIGTERM");
    assertTrue(Files.exists(data.resolve("log").resolve(".clean-shutdown")),
        "the log was closed cleanly: the next start validates nothing");
    assertTrue(Files.notExists(ControlChannel.socketOf(data)), "the control socket is gone");
    try (ModelStore store = ModelStore.openReadOnly(data.resolve("store"));
        LossModel model = LossModel.causalLm(PipelineFixture.MODEL, TrainableSelection.all(), 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      long last = store.lastStep();
      assertTrue(last >= 3, "trained " + last + " steps before SIGTERM");
      assertEquals(store.committedOffsets(), store.offsetsAt(last), "the last step is whole");
      store.restore(last, model, RunConfig::replayConfig, kernel);
    }
    assertTiles(data, -1);
  }

  /**
   * Every acknowledged offset lies in exactly one step's range (consecutive steps' committed
   * offsets) or in the uncommitted tail; each range holds exactly the step's batch plus the events
   * dead-lettered inside it.
   */
  private static void assertTiles(Path data, int deadLetters) throws IOException {
    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"));
        ModelStore store = ModelStore.openReadOnly(data.resolve("store"))) {
      HashSet<String> dead = new HashSet<>();
      for (LogEntry e : log.read(DeadLetters.TOPIC, 0, 0, 10_000)) {
        dead.add(new String(e.key(), StandardCharsets.UTF_8));
      }
      if (deadLetters >= 0) {
        assertEquals(deadLetters, dead.size(), "the malformed events were dead-lettered: " + dead);
      }
      Map<SourcePartition, Long> previous = new TreeMap<>();
      for (TopicPartition tp : Topics.sources()) {
        previous.put(new SourcePartition(tp.topic(), tp.partition()), 0L);
      }
      for (long s = 1; s <= store.lastStep(); s++) {
        Map<SourcePartition, Long> next = new TreeMap<>(previous);
        next.putAll(store.offsetsAt(s));
        long consumed = 0;
        long deadInRange = 0;
        for (Map.Entry<SourcePartition, Long> e : next.entrySet()) {
          long from = previous.get(e.getKey());
          assertTrue(e.getValue() >= from, "step " + s + " moved " + e.getKey() + " back: no overlap allowed");
          consumed += e.getValue() - from;
          for (long o = from; o < e.getValue(); o++) {
            deadInRange += dead.contains(e.getKey().topic() + "/" + e.getKey().partition() + "/" + o) ? 1 : 0;
          }
        }
        StepRecord r = store.step(s).orElseThrow();
        assertEquals(r.batchSize() + deadInRange, consumed, "step " + s + " consumed exactly its batch");
        previous = next;
      }
      long tail = 0;
      for (Map.Entry<SourcePartition, Long> e : previous.entrySet()) {
        tail += log.endOffset(e.getKey().topic(), e.getKey().partition()) - e.getValue();
      }
      if (deadLetters >= 0) {
        assertTrue(tail < BATCH + dead.size(), "only a partial batch is left uncommitted, found " + tail);
      }
    }
  }

  private static void serveInProcess(Path data) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    List<String> args = new ArrayList<>(List.of("serve", "--data-dir", data.toString(), "--exit-when-idle", "--json"));
    args.addAll(List.of(SERVE));
    int exit = io.pockettune.pipeline.cli.Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args.toArray(String[]::new));
    assertEquals(0, exit, err.toString());
  }

  private Process start(Path data, String... more) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-DOPT_OUT_TRACKING=true",
        "-Dai.djl.offline=true", "-cp", classpath, io.pockettune.pipeline.cli.Main.class.getName(), "serve", "--data-dir", data.toString()));
    command.addAll(List.of(SERVE));
    command.addAll(List.of(more));
    return new ProcessBuilder(command).redirectError(dir.resolve("child.err").toFile()).start();
  }

  private static String digest(ModelStore store) {
    try (LossModel model = LossModel.causalLm(PipelineFixture.MODEL, TrainableSelection.all(), 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      store.restore(store.lastStep(), model, RunConfig::replayConfig, kernel);
      return model.parameters().digest();
    }
  }

  private static Path copy(Path from, Path to) throws IOException {
    try (Stream<Path> files = Files.walk(from)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        Path target = to.resolve(from.relativize(f).toString());
        if (Files.isDirectory(f)) {
          Files.createDirectories(target);
        } else if (!f.getFileName().toString().equals(".lock")) {
          Files.copy(f, target);
        }
      }
    }
    return to;
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      return "(no stderr: " + e.getMessage() + ")";
    }
  }
}
