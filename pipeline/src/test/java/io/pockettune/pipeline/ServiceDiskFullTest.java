package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SmallDisk;
import io.pockettune.trainer.StepRecord;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The disk under the data directory fills while the service trains (a real tmpfs, {@link
 * SmallDisk}; skipped where mounting is not allowed): training pauses with {@code training:
 * "paused: disk full (...)"} in the status, the service keeps answering on its control socket, the
 * last committed step never goes down, training resumes by itself once the filler is deleted, and
 * every event is trained exactly once: the steps' batch sizes add up to the events appended. After
 * a restart everything committed is there and the model restores (training starts again on it).
 * A fourth case puts a blank event first after the pause, so that its dead letter is the first
 * write to meet the full disk: it stays pending, is appended once, and training goes on.
 */
class ServiceDiskFullTest {
  private static final int EVENTS = 240;
  private static final int BATCH = 4;

  @TempDir Path dir;

  private static List<String> messages(int from, int count) {
    return messages(from, count, 0);
  }

  /** Events; the first {@code blank} of them have a blank text, which is dead-lettered. */
  private static List<String> messages(int from, int count, int blank) {
    List<String> lines = new ArrayList<>();
    for (int i = from; i < from + count; i++) {
      lines.add("{\"text\":\"" + (i - from < blank ? " " : "meet at the station at " + i) + "\",\"conversation\":\"c" + (i % 5) + "\",\"eventTime\":"
          + (1788246000000L + i * 60_000L) + "}");
    }
    return lines;
  }

  private static JsonNode status(Path data) throws java.io.IOException {
    return ControlChannel.call(data, "{\"op\":\"status\"}", List.of())
        .orElseThrow(() -> new AssertionError("the service does not answer"));
  }

  /** Polls status until {@code done}, checking on every answer that the last step never went down. */
  private static JsonNode awaitStatus(Path data, long[] highest, Predicate<JsonNode> done) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
    while (true) {
      JsonNode s = status(data);
      long step = s.path("last_step").asLong();
      assertTrue(step >= highest[0], "last_step went down from " + highest[0] + " to " + step);
      highest[0] = step;
      if (done.test(s)) {
        return s;
      }
      assertTrue(System.nanoTime() < deadline, "timed out; last status " + s);
      Thread.sleep(20);
    }
  }

  private PocketTune open(Path data, Path pkg, int snapshotEvery, int checkpointEvery) throws java.io.IOException {
    return PocketTune.builder(data).model(pkg).threads(1).batch(BATCH).seed(7).controlSocket(true)
        .snapshotEvery(snapshotEvery).checkpointEvery(checkpointEvery).maxIdle(Duration.ofMillis(20))
        .pollInterval(Duration.ofMillis(10)).open();
  }

  /**
   * Without snapshots and checkpoints only a step's commit can meet the full disk; with one after
   * every step, the snapshot or the checkpoint usually does (after its step committed).
   */
  @ParameterizedTest(name = "snapshot every {0}, checkpoint every {1}")
  @CsvSource({"0, 0, 0, could not commit step", "1, 0, 0, ''", "0, 1, 0, ''",
      "0, 0, 1, cannot write to the dead-letter topic"})
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void trainingPausesOnAFullDiskAndResumesWhenSpaceIsFreed(int snapshotEvery, int checkpointEvery, int deadLetters,
      String failedWrite) throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    long[] highest = {0};
    try (SmallDisk disk = SmallDisk.mount(dir.resolve("disk"), 24)) {
      Path data = disk.dir().resolve("data");
      long committedBeforeRestart;
      try (PocketTune tune = open(data, pkg, snapshotEvery, checkpointEvery)) {
        tune.appendJson("messages", messages(0, 40));
        tune.startTraining();
        assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
        tune.pause();
        tune.appendJson("messages", messages(40, EVENTS - 40, deadLetters));
        disk.fill();
        tune.resume();

        JsonNode paused = awaitStatus(data, highest, s -> s.path("training").asText().startsWith("paused: disk full"));
        String why = paused.path("training").asText();
        assertTrue(why.contains("the disk is full; free some space and try again")
            || why.contains("No space left on device); check free disk space"), paused.toString());
        assertTrue(paused.path("training").asText().contains(failedWrite), paused.toString());
        assertTrue(paused.path("service").asBoolean());
        long stuckAt = paused.path("last_step").asLong();
        Thread.sleep(1_500); // several retries, all on a full disk
        JsonNode still = awaitStatus(data, highest, s -> true);
        assertEquals(stuckAt, still.path("last_step").asLong(), "nothing commits on a full disk: " + still);
        assertTrue(still.path("training").asText().startsWith("paused: disk full"), still.toString());
        assertTrue(stuckAt < (EVENTS - deadLetters) / BATCH, "the disk filled before training was done: " + still);

        disk.free();
        long steps = (EVENTS - deadLetters) / BATCH;
        JsonNode done = awaitStatus(data, highest, s -> s.path("last_step").asLong() == steps);
        assertEquals("running", done.path("training").asText(), done.toString());
        assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
        committedBeforeRestart = tune.lastStep();
        assertEquals(steps, committedBeforeRestart);
        assertEquals(deadLetters, done.path("dead_letters").asLong(), done.toString());
      }
      try (ModelStore store = ModelStore.openReadOnly(data.resolve("store"))) {
        assertEquals(committedBeforeRestart, store.lastStep());
        long trained = store.steps(1, store.lastStep()).stream().mapToLong(StepRecord::batchSize).sum();
        assertEquals(committedBeforeRestart * BATCH, trained, "every event trained exactly once, or dead-lettered");
        long offsets = store.committedOffsets().values().stream().mapToLong(Long::longValue).sum();
        assertTrue(offsets >= EVENTS - BATCH + 1 && offsets <= EVENTS, "committed offsets " + offsets);
      }
      try (PocketTune tune = open(data, pkg, snapshotEvery, checkpointEvery)) {
        tune.startTraining(); // restores the model: nearest snapshot plus replay of the committed steps
        assertEquals(committedBeforeRestart, tune.lastStep());
        tune.appendJson("messages", messages(EVENTS, BATCH));
        assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
        assertEquals(committedBeforeRestart + 1, tune.lastStep());
      }
    }
  }
}
