package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogRecord;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Exact forgetting ({@link PocketTune#forget}), on real log segments, a real RocksDB store and ONNX
 * Runtime sessions of the tiny decoder: the model after forgetting equals, bit for bit and step for
 * step, the model of an independent run over the same events minus the forgotten ones; their text
 * is gone from every file of the data directory; checkpoints that had learnt from them are
 * superseded and export refuses them.
 */
class ForgetTest {
  @TempDir Path dir;
  private Path pkg;

  @BeforeEach
  void model() throws Exception {
    pkg = PipelineFixture.tinyPackage(dir, null, null);
  }

  /** Event {@code i}: a message in one of three conversations (both message partitions), or a note. */
  static String event(int i) {
    long time = 1788246000000L + i * 60_000L;
    if (i % 5 == 4) {
      return "{\"id\":\"n" + i + "\",\"title\":\"note " + i + "\",\"body\":\"buy oat milk and " + i
          + " eggs\",\"eventTime\":" + time + "}";
    }
    return "{\"id\":\"m" + i + "\",\"conversation\":\"c" + (i % 3) + "\",\"sender\":\"me\",\"text\":\"secret plan number "
        + i + " for the weekend\",\"eventTime\":" + time + "}";
  }

  private static boolean isNote(int i) {
    return i % 5 == 4;
  }

  private PocketTune open(Path data) throws IOException {
    return open(data, null);
  }

  private PocketTune open(Path data, byte[] key) throws IOException {
    PocketTune.Builder b = PocketTune.builder(data).model(pkg).threads(1).batch(3).seed(11).snapshotEvery(4)
        .checkpointEvery(0);
    return (key == null ? b : b.encryptionKey(key)).open();
  }

  /** Appends events {@code [0, n)} except {@code skip}, one append per event so that each is its own batch. */
  private static void append(PocketTune tune, int n, Set<Integer> skip) throws IOException {
    for (int i = 0; i < n; i++) {
      if (!skip.contains(i)) {
        tune.appendJson(isNote(i) ? "notes" : "messages", List.of(event(i)));
      }
    }
  }

  private static PocketTune.TrainResult trainAll(PocketTune tune) throws IOException {
    Map<TopicPartition, Long> ends = tune.endOffsets();
    return tune.train(Long.MAX_VALUE, ends, (step, loss) -> {});
  }

  /** In the clear, and in an encrypted directory (where the erased batch is sealed again). */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
  @Timeout(value = 180, unit = TimeUnit.SECONDS)
  void forgettingIsBitIdenticalToARunThatNeverSawTheEvents(boolean encrypted) throws Exception {
    byte[] key = encrypted ? new byte[32] : null;
    if (encrypted) {
      new java.security.SecureRandom().nextBytes(key);
    }
    Path a = dir.resolve("a");
    int n = 40;
    Checkpoint early;
    Checkpoint late;
    PocketTune.ForgetResult r;
    String forgottenMessage;
    try (PocketTune tune = open(a, key)) {
      append(tune, 20, Set.of());
      trainAll(tune);
      early = tune.markCheckpoint("early", Map.of());
      append(tune, n, Set.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19));
      trainAll(tune);
      late = tune.markCheckpoint("late", Map.of());
      assertTrue(tune.lastStep() >= 12, "steps: " + tune.lastStep());
      // Event 22 is a message; find its coordinates from the log through its id, and forget the
      // note n24 by its id: two events, one call.
      forgottenMessage = "secret plan number 22 for";
      assertEquals(!encrypted, grep(a, forgottenMessage), "the check can fail: the text is on disk before, unless"
          + " encrypted");
      r = tune.forget(List.of("m22", "n24"));
    }
    assertEquals(2, r.events().size(), r.toString());
    assertEquals(2, r.recordsErased());
    assertTrue(r.stepsUndone() > 0 && r.stepsRetrained() > 0, r.toString());
    assertFalse(r.resumed());
    assertEquals(List.of(late.id()), r.checkpointsSuperseded(), "the checkpoint after the events is superseded, the"
        + " one before is not: " + r);
    assertTrue(r.rolledBackTo() >= early.step(), r.toString());
    assertFalse(grep(a, forgottenMessage), "the forgotten message is still in a file of the data directory");
    assertFalse(grep(a, "buy oat milk and 24 eggs"), "the forgotten note is still in a file of the data directory");
    if (!encrypted) {
      assertTrue(grep(a, "secret plan number 23 for"), "the other events are still there");
    }

    Path b = dir.resolve("b");
    try (PocketTune tune = open(b)) {
      append(tune, 20, Set.of());
      trainAll(tune);
      append(tune, n, Set.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 22, 24));
      trainAll(tune);
    }
    assertEquals(lastStep(b), r.lastStep(), "as many steps as the run that never saw the events");
    assertSameSteps(a, b);
    assertEquals(digest(b), r.digest(), "bit-identical parameters");
    assertEquals(digest(a, key), r.digest(), "the store restores what forget reported");
    if (encrypted) {
      try (PocketTune tune = open(a, key)) {
        assertFalse(tune.forget(List.of("m23")).events().isEmpty(), "the other events read back through the key");
      }
      return; // the CLI below reads the clear directory (the key is the app's, not in a key file)
    }

    CliRun export = CliRun.of("export", "--data-dir", a.toString(), "--model", pkg.toString(), "--checkpoint",
        Long.toString(late.id()), "--out", dir.resolve("late.onnx").toString());
    assertEquals(1, export.exit());
    assertTrue(export.err().contains("checkpoint " + late.id() + " (step " + late.step() + ") was superseded when forget"
        + " removed events it had learnt from"), export.err());
    CliRun list = CliRun.of("checkpoints", "--data-dir", a.toString(), "--model", pkg.toString(), "--json");
    assertEquals(0, list.exit(), list.err());
    assertTrue(list.out().contains("[superseded: forget removed events it had learnt from]"), list.out());
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void aDeadLetterOfAForgottenEventIsErasedAndAnEventNotYetTrainedNeedsNoRollback() throws Exception {
    Path a = dir.resolve("a");
    try (PocketTune tune = open(a)) {
      append(tune, 12, Set.of());
    }
    // An undecodable record straight into the log: it goes to the dead-letter topic when trained.
    try (EmbeddedLog log = EmbeddedLog.open(DataDirectory.at(a).log())) {
      log.append("messages", 1, List.of(new LogRecord(1788246000000L + 12 * 60_000L, "c9".getBytes(StandardCharsets.UTF_8),
          "not avro, private words".getBytes(StandardCharsets.UTF_8))));
    }
    long junk;
    try (PocketTune tune = open(a)) {
      junk = tune.endOffsets().get(new TopicPartition("messages", 1)) - 1;
      PocketTune.TrainResult t = trainAll(tune);
      assertEquals(1, t.deadLetters());
      assertTrue(grep(a, "private words"), "the check can fail: the dead letter holds the bytes");
      long steps = tune.lastStep();
      PocketTune.ForgetResult r = tune.forget(List.of("messages-1@" + junk));
      assertEquals(1, r.deadLettersErased(), r.toString());
      assertFalse(grep(a, "private words"), "neither the record nor its dead letter keeps the bytes");
      assertEquals(steps, r.lastStep(), "a dead letter taught the model nothing: the same steps again");

      IllegalArgumentException none = assertThrows(IllegalArgumentException.class,
          () -> tune.forget(List.of("messages-0@999")));
      assertTrue(none.getMessage().startsWith("there is no event at messages-0@999"), none.getMessage());
      IllegalArgumentException noId = assertThrows(IllegalArgumentException.class, () -> tune.forget(List.of("nope")));
      assertTrue(noId.getMessage().contains("has the id 'nope'"), noId.getMessage());
      IllegalArgumentException twice = assertThrows(IllegalArgumentException.class,
          () -> tune.forget(List.of("messages-1@" + junk)));
      assertTrue(twice.getMessage().contains("forgotten already"), twice.getMessage());

      tune.appendJson("messages", List.of(event(13)));
      PocketTune.ForgetResult untrained = tune.forget(List.of("m13"));
      assertEquals(0, untrained.stepsUndone(), "no step had trained on it: " + untrained);
      assertEquals(steps, untrained.lastStep());
      assertFalse(grep(a, "secret plan number 13 for"));
    }
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void aForgetTrainsAgainOnlyAsFarAsTrainingHadGone() throws Exception {
    Path a = dir.resolve("a");
    Path b = dir.resolve("b");
    try (PocketTune tune = open(a)) {
      append(tune, 12, Set.of());
      assertEquals(4, trainAll(tune).steps());
      append(tune, 18, Set.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)); // six events training has not reached
      PocketTune.ForgetResult r = tune.forget(List.of("m1"));
      assertEquals(0, r.rolledBackTo(), r.toString());
      assertEquals(3, r.lastStep(), "eleven trained events make three steps; the six untrained ones stay untrained");
    }
    try (PocketTune tune = open(b)) {
      append(tune, 12, Set.of(1));
      trainAll(tune);
    }
    assertSameSteps(a, b);
    assertEquals(digest(b), digest(a));
  }

  @Test
  @Timeout(value = 180, unit = TimeUnit.SECONDS)
  void forgetBesideARunningServicePausesTrainingAndGoesOn() throws Exception {
    Path a = dir.resolve("a");
    Path b = dir.resolve("b");
    try (PocketTune tune = serviceOn(a)) {
      PocketTune.ForgetResult r = tune.forget(List.of("m7"));
      assertTrue(r.stepsUndone() > 0, r.toString());
      assertFalse(grep(a, "secret plan number 7 for"));
      append(tune, 36, FIRST_30);
      assertTrue(tune.awaitIdle(Duration.ofSeconds(60)), "training goes on after the forget");
      tune.stopTraining();
    }
    assertLikeARunThatNeverSaw7(a, b);
  }

  /**
   * A forget beside the service that fails half way (an injected I/O error, three times running, after
   * the erase or after the first retrained step) leaves training paused with its journal until a
   * retry finishes it; then training goes on, and the result is that of a run that never saw the event.
   */
  @org.junit.jupiter.params.ParameterizedTest
  @org.junit.jupiter.params.provider.ValueSource(strings = {"erase", "retrain"})
  @Timeout(value = 180, unit = TimeUnit.SECONDS)
  void aForgetThatFailsHalfWayBesideTheServiceIsFinishedBeforeTrainingGoesOn(String phase) throws Exception {
    Path a = dir.resolve("a");
    Path b = dir.resolve("b");
    try (PocketTune tune = serviceOn(a)) {
      Forgetting.faultAfter = phase;
      Forgetting.FAULTS_LEFT.set(3);
      try {
        RuntimeException e = assertThrows(RuntimeException.class, () -> tune.forget(List.of("m7")));
        assertTrue(PocketTune.message(e).contains("injected fault after the " + phase), PocketTune.message(e));
        assertTrue(Files.exists(DataDirectory.at(a).forgetJournal()), "the journal stays until the forget is done");
        append(tune, 36, FIRST_30);
        // Two retries fail, each followed by a 500 ms wait: status shows the pause meanwhile, and
        // nothing trains on the events appended during it.
        Set<Object> stepsWhilePaused = new java.util.HashSet<>();
        Set<String> seen = new java.util.LinkedHashSet<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (Files.exists(DataDirectory.at(a).forgetJournal()) && System.nanoTime() < deadline) {
          JsonLine status = tune.status();
          seen.add(status.get("training") + " @" + status.get("last_step"));
          if (String.valueOf(status.get("training")).startsWith("paused: finishing a forget that failed (injected")) {
            stepsWhilePaused.add(status.get("last_step"));
          }
          Thread.sleep(20);
        }
        assertEquals(1, stepsWhilePaused.size(), "status showed the pause, and no step was taken during it: "
            + stepsWhilePaused + "; training was " + seen);
        assertEquals(0, Forgetting.FAULTS_LEFT.get(), "the retries met the faults");
        assertFalse(Files.exists(DataDirectory.at(a).forgetJournal()), "a retry finished the forget");
      } finally {
        Forgetting.faultAfter = null;
        Forgetting.FAULTS_LEFT.set(0);
      }
      assertTrue(tune.awaitIdle(Duration.ofSeconds(60)), "training goes on after the forget is finished");
      assertFalse(String.valueOf(tune.status().get("training")).startsWith("paused"), tune.status().toString());
      assertFalse(grep(a, "secret plan number 7 for"));
      tune.stopTraining();
    }
    assertLikeARunThatNeverSaw7(a, b);
  }

  private static final Set<Integer> FIRST_30 =
      java.util.stream.IntStream.range(0, 30).boxed().collect(java.util.stream.Collectors.toSet());

  /** A service on {@code data} that has trained events 0 to 29 and gone idle. */
  private PocketTune serviceOn(Path data) throws Exception {
    PocketTune tune = PocketTune.builder(data).model(pkg).threads(1).batch(3).seed(11).checkpointEvery(0)
        .maxIdle(Duration.ofMillis(50)).pollInterval(Duration.ofMillis(10)).open();
    append(tune, 30, Set.of());
    tune.startTraining();
    assertTrue(tune.awaitIdle(Duration.ofSeconds(60)));
    return tune;
  }

  /** Trains events 0 to 35 but 7 in {@code b} and asserts {@code a} equals it, step for step and bit for bit. */
  private void assertLikeARunThatNeverSaw7(Path a, Path b) throws Exception {
    try (PocketTune tune = open(b)) {
      append(tune, 36, Set.of(7));
      trainAll(tune);
    }
    assertEquals(lastStep(b), lastStep(a));
    assertSameSteps(a, b);
    assertEquals(digest(b), digest(a), "bit-identical to the run that never saw event 7");
  }

  /** Whether any file under {@code root} holds {@code text} (see {@link EncryptionAtRestTest#anyFileContains}). */
  static boolean grep(Path root, String text) throws IOException {
    return EncryptionAtRestTest.anyFileContains(root, text);
  }

  private static long lastStep(Path data) {
    try (ModelStore store = ModelStore.openReadOnly(DataDirectory.at(data).store())) {
      return store.lastStep();
    }
  }

  /** Every step record of both stores equal, but for the wall-clock time of the step. */
  private static void assertSameSteps(Path a, Path b) {
    try (ModelStore sa = ModelStore.openReadOnly(DataDirectory.at(a).store());
        ModelStore sb = ModelStore.openReadOnly(DataDirectory.at(b).store())) {
      assertEquals(sb.lastStep(), sa.lastStep());
      List<StepRecord> ra = sa.steps(1, sa.lastStep());
      List<StepRecord> rb = sb.steps(1, sb.lastStep());
      List<String> da = new ArrayList<>();
      List<String> db = new ArrayList<>();
      for (int i = 0; i < ra.size(); i++) {
        da.add(strip(ra.get(i)));
        db.add(strip(rb.get(i)));
      }
      assertEquals(db, da);
      assertNotEquals(0, ra.size());
    }
  }

  private static String strip(StepRecord r) {
    return r.step() + " " + r.seed() + " " + Float.floatToIntBits(r.projectedGradient()) + " " + r.batchSize() + " "
        + Float.floatToIntBits(r.lossPlus()) + " " + Float.floatToIntBits(r.lossMinus());
  }

  private String digest(Path data) throws IOException {
    return digest(data, null);
  }

  private String digest(Path data, byte[] key) throws IOException {
    DataDirectory d = key == null ? DataDirectory.at(data) : DataDirectory.at(data).withKey(key, false);
    try (StoreSession s = StoreSession.readOnly(d, ModelPackage.resolve(pkg, d), 1)) {
      s.restore(s.store().lastStep());
      return s.model().parameters().digest();
    }
  }
}
