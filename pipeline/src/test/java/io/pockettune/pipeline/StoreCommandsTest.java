package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TrainableSelection;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** The store commands on a data directory whose trainer was killed with SIGKILL mid-commits. */
class StoreCommandsTest {
  @TempDir Path dir;



  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void commands_onStoreOfKilledProcess() throws Exception {
    Path data = dir.resolve("data");
    long acknowledged = trainAndKill(data, 80);
    String d = data.toString();

    CliRun list = CliRun.of("checkpoints", "--data-dir", d, "--json");
    assertEquals(0, list.exit(), list.err());
    long last = (long) list.number("last_step");
    assertTrue(last >= acknowledged, "acknowledged " + acknowledged + ", found " + last);
    assertTrue(list.out().contains("at 50"), list.out());

    // Export checkpoint 2 (step 50): its loss under our loss head equals the trainer's there.
    Path exported = dir.resolve("out").resolve("model.onnx");
    CliRun export = CliRun.of("export", "--data-dir", d, "--checkpoint", "2", "--out", exported.toString(), "--threads", "1",
        "--json");
    assertEquals(0, export.exit(), export.err());
    assertEquals(50, export.number("step"));
    float trainerLoss;
    try (ModelStore store = ModelStore.openReadOnly(data.resolve("store"));
        LossModel model = LossModel.causalLm(PipelineFixture.MODEL, TrainableSelection.all(), 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      store.restore(50, model, PipelineFixture.MEZO, kernel);
      trainerLoss = model.loss(StoreCommandsTrainer.batch(1)).loss();
      assertEquals('"' + model.parameters().digest() + '"', export.field("parameters_sha256"));
    }
    try (LossModel fromFile = LossModel.causalLm(Files.readAllBytes(exported), TrainableSelection.all(), 1)) {
      assertEquals(trainerLoss, fromFile.loss(StoreCommandsTrainer.batch(1)).loss());
    }

    // Roll back to a step between snapshots: verified against the next one, offsets of that step.
    CliRun back = CliRun.of("rollback", "--data-dir", d, "--to", "step:57", "--threads", "1", "--json");
    assertEquals(0, back.exit(), back.err());
    assertEquals(57, back.number("step"));
    assertEquals(last - 57, back.number("steps_abandoned"));
    assertEquals("true", back.field("verified"));
    assertEquals("{\"messages-0\":114,\"notes-0\":28}", back.field("offsets"));
    assertTrue(back.out().contains("committed offsets now: messages-0=114, notes-0=28"), back.out());

    CliRun toCheckpoint = CliRun.of("rollback", "--data-dir", d, "--to", "1", "--threads", "1", "--json");
    assertEquals(0, toCheckpoint.exit(), toCheckpoint.err());
    assertEquals(25, toCheckpoint.number("step"));
    assertEquals(32, toCheckpoint.number("steps_abandoned"));

    CliRun abandoned = CliRun.of("export", "--data-dir", d, "--checkpoint", "2", "--out", exported.toString());
    assertEquals(1, abandoned.exit());
    assertTrue(abandoned.err().contains("abandoned by a rollback"), abandoned.err());
    CliRun backToAbandoned = CliRun.of("rollback", "--data-dir", d, "--to", "2");
    assertEquals(1, backToAbandoned.exit());
    assertTrue(backToAbandoned.err().contains("checkpoint 2 (step 50) is on branch 2"), backToAbandoned.err());

    CliRun prune = CliRun.of("checkpoints", "--data-dir", d, "--prune", "--thin-snapshots", "--json");
    assertEquals(0, prune.exit(), prune.err());
    assertTrue(prune.lastLine().contains("\"branches\":2"), prune.lastLine());
    assertTrue(prune.out().contains("reclaimed"), prune.out());
    assertEquals(25, prune.number("last_step"));
  }

  @Test
  void replayConfig_readsDistributionAndDecayFromRunConfig() {
    RunIdentity plain = new RunIdentity("h", 1, "w[2];", "{\"lr\":0.001}");
    assertEquals(PerturbationKernel.Distribution.GAUSSIAN, RunConfig.replayConfig(plain.runConfig()).distribution());
    assertEquals(0f, RunConfig.replayConfig(plain.runConfig()).weightDecay());
    RunIdentity tuned = new RunIdentity("h", 1, "w[2];", "{\"distribution\":\"rademacher\",\"weight_decay\":0.01}");
    assertEquals(PerturbationKernel.Distribution.RADEMACHER, RunConfig.replayConfig(tuned.runConfig()).distribution());
    assertEquals(0.01f, RunConfig.replayConfig(tuned.runConfig()).weightDecay());
  }

  @Test
  void runConfig_mezoText_isTheTextBeforeEstimators() {
    // The exact text stores written before estimators hold: a MeZO run must compare equal to it.
    String before = "{\"version\":1,\"model_package\":\"h\",\"objective\":\"causal-lm\",\"trainable\":\"all\","
        + "\"eps\":0.001,\"lr\":0.001,\"seed\":17,\"batch\":4,\"max_tokens\":32,\"distribution\":\"GAUSSIAN\","
        + "\"weight_decay\":0.0}";
    assertEquals(before, RunConfig.of("h", "causal-lm", "all", PipelineFixture.MEZO, 4, 32).toJson());
    assertEquals(before, RunConfig.of("h", "causal-lm", "all", PipelineFixture.MEZO.withFzoo(4).withMezo()
        .withDistribution(PerturbationKernel.Distribution.GAUSSIAN), 4, 32).toJson());
    RunConfig read = RunConfig.parse(before);
    assertEquals("MEZO", read.estimatorOrDefault());
    assertEquals(1, read.directionsOrDefault());
    assertEquals(before, read.toJson(), "parse and write give the text back");
    assertEquals(MezoConfig.Estimator.MEZO, read.mezo().estimator());
    assertEquals(1, read.mezo().directions());
  }

  @Test
  void runConfig_fzoo_roundTripsAndReplaysAsFzoo() {
    MezoConfig fzoo = PipelineFixture.MEZO.withFzoo(4);
    RunConfig c = RunConfig.of("h", "causal-lm", "side r=8", fzoo, 4, 32);
    String text = c.toJson();
    assertTrue(text.endsWith("\"distribution\":\"RADEMACHER\",\"weight_decay\":0.0,\"estimator\":\"FZOO\","
        + "\"directions\":4}"), text);
    assertEquals(c, RunConfig.parse(text));
    assertEquals(text, RunConfig.parse(text).toJson());
    assertEquals(fzoo, RunConfig.replayConfig(text), "replay trains with the FZOO config the run had");
  }

  @Test
  void runConfig_unknownEstimator_isOneSentence() {
    String text = "{\"lr\":0.001,\"estimator\":\"ADAM\"}";
    IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> RunConfig.replayConfig(text));
    assertEquals("the store's run config names the gradient estimator 'ADAM', which this PocketTune does not know:"
        + " use the version that trained it", e.getMessage());
  }

  @Test
  void rollback_badTarget_oneLineMessage() {
    CliRun r = CliRun.of("rollback", "--data-dir", dir.resolve("nothing").toString(), "--to", "step:x");
    assertEquals(1, r.exit());
    assertTrue(r.err().contains("there is no model store"), r.err());
    CliRun missing = CliRun.of("checkpoints", "--data-dir", dir.resolve("nothing").toString());
    assertEquals(1, missing.exit());
    assertTrue(missing.err().contains("there is no model store"), missing.err());
    assertEquals(1, missing.err().strip().lines().count(), missing.err());
  }

  /** @return the highest step the child acknowledged before it was killed */
  private long trainAndKill(Path data, long killAfter) throws IOException, InterruptedException {
    Path stderr = dir.resolve("child.err");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    Process child = new ProcessBuilder(List.of(java, "--enable-native-access=ALL-UNNAMED", "-DOPT_OUT_TRACKING=true",
        "-Dai.djl.offline=true", "-cp", classpath, StoreCommandsTrainer.class.getName(), data.toString()))
        .redirectError(stderr.toFile())
        .start();
    long acknowledged = 0;
    try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      while (acknowledged < killAfter) {
        String line = out.readLine();
        assertNotNull(line, () -> "child exited early: " + read(stderr));
        acknowledged = Long.parseLong(line.substring("committed ".length()));
      }
      child.toHandle().destroyForcibly();
      for (String line; (line = out.readLine()) != null; ) {
        acknowledged = Long.parseLong(line.substring("committed ".length()));
      }
    } finally {
      child.destroyForcibly();
      child.waitFor();
    }
    return acknowledged;
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      return "(no stderr: " + e.getMessage() + ")";
    }
  }
}
