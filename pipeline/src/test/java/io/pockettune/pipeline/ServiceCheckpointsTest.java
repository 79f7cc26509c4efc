package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.store.Checkpoint;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.common.utils.MockTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The checkpoints the service marks besides the periodic ones: on a clean stop and when idle, so a
 * run shorter than {@code checkpointEvery} (500 by default) still leaves one to replay. The clock is
 * a {@link MockTime}: the idle period passes when the test says so, never by sleeping through it.
 */
class ServiceCheckpointsTest {
  private static final long IDLE_MS = 1_000;

  @TempDir Path dir;
  private final MockTime time = new MockTime(0, 0, 0);

  private PocketTune open(Path pkg) throws java.io.IOException {
    return PocketTune.builder(dir.resolve("data")).model(pkg).threads(1).batch(4).seed(7)
        .maxIdle(Duration.ofMillis(IDLE_MS)).pollInterval(Duration.ofMillis(10)).time(time).open();
  }

  private static List<String> messages(int from, int count) {
    List<String> lines = new ArrayList<>();
    for (int i = from; i < from + count; i++) {
      lines.add("{\"text\":\"running late, there in " + i + "\",\"conversation\":\"c0\",\"eventTime\":"
          + (1788246000000L + i * 60_000L) + "}");
    }
    return lines;
  }

  /**
   * Advances the clock in ticks of a tenth of the idle period until {@code done}: enough for the
   * other partitions to count as idle and release the events, too little for an idle checkpoint
   * once the steps are in.
   */
  private void advanceUntil(BooleanSupplier done) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (!done.getAsBoolean()) {
      assertTrue(System.nanoTime() < deadline, "timed out");
      time.sleep(IDLE_MS / 10);
      Thread.sleep(5);
    }
  }

  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void stopTraining_afterShortRun_marksStopCheckpointThatReplays() throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    try (PocketTune tune = open(pkg)) {
      tune.appendJson("messages", messages(0, 12));
      tune.startTraining();
      advanceUntil(() -> tune.lastStep() == 3);
      assertTrue(tune.checkpoints().isEmpty(), "no periodic checkpoint within 500 steps, and not idle long enough");
      tune.stopTraining();
      List<Checkpoint> checkpoints = tune.checkpoints();
      assertEquals(1, checkpoints.size(), checkpoints.toString());
      assertEquals("stop", checkpoints.get(0).label());
      assertEquals(3, checkpoints.get(0).step());
      assertTrue(Double.isFinite(checkpoints.get(0).metrics().get("train_loss")), checkpoints.toString());
      tune.stopTraining();
      assertEquals(1, tune.checkpoints().size(), "stopping again marks nothing");
    }
    CliRun replay = CliRun.of("replay", "--data-dir", dir.resolve("data").toString(), "--model", pkg.toString(),
        "--threads", "1", "--report", dir.resolve("r").resolve("r.html").toString(), "--json");
    assertEquals(0, replay.exit(), replay.err());
    JsonNode json = replay.json();
    assertEquals(1, json.path("checkpoints_evaluated").asLong());
    assertEquals("stop", json.path("checkpoints").get(0).path("label").asText());
    assertEquals(3, json.path("checkpoints").get(0).path("step").asLong());
  }

  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void idle_afterSteps_marksOneCheckpointPerQuietSpell() throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    try (PocketTune tune = open(pkg)) {
      tune.appendJson("messages", messages(0, 8));
      tune.startTraining();
      advanceUntil(() -> tune.lastStep() == 2);
      assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
      assertTrue(tune.checkpoints().isEmpty(), "quiet for less than the idle period");

      advanceUntil(() -> !tune.checkpoints().isEmpty());
      Checkpoint idle = tune.checkpoints().get(0);
      assertEquals("idle", idle.label());
      assertEquals(2, idle.step());
      assertTrue(Double.isFinite(idle.metrics().get("train_loss")), idle.toString());
      for (int i = 0; i < 3; i++) {
        time.sleep(Service.IDLE_CHECKPOINT_MILLIS);
        Thread.sleep(20);
      }
      assertEquals(1, tune.checkpoints().size(), "one checkpoint per quiet spell, not one per idle period");
      assertEquals(idle.id(), ((JsonLine) tune.status().get("last_checkpoint")).get("id"), "status shows it");

      tune.appendJson("messages", messages(8, 4));
      advanceUntil(() -> tune.lastStep() == 3);
      advanceUntil(() -> tune.checkpoints().size() == 2);
      assertEquals("idle", tune.checkpoints().get(1).label());
      assertEquals(3, tune.checkpoints().get(1).step());

      tune.stopTraining();
      assertEquals(2, tune.checkpoints().size(), "the last step has its checkpoint: the stop marks none");
    }
  }
}
