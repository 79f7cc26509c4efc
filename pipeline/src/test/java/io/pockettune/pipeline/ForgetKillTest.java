package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.store.ModelStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A forget killed at any point ({@code pockettune forget} in a child JVM, halted as a SIGKILL
 * would halt it after each of its phases, or killed with SIGKILL at a random moment): nothing
 * half-forgotten is served (the model refuses to open while the store may still hold what the
 * event taught), and the next forget or training finishes the job, into the same bits as a run
 * that never saw the event.
 */
class ForgetKillTest {
  @TempDir Path dir;
  private Path pkg;
  private String expected;
  private long expectedSteps;

  @BeforeEach
  void setUp() throws Exception {
    pkg = PipelineFixture.tinyPackage(dir, null, null);
    Path b = dir.resolve("never");
    try (PocketTune tune = open(b)) {
      append(tune, Set.of(5));
      tune.train(Long.MAX_VALUE, tune.endOffsets(), (s, l) -> {});
    }
    expectedSteps = lastStep(b);
    expected = digest(b);
  }

  private PocketTune open(Path data) throws IOException {
    return PocketTune.builder(data).model(pkg).threads(1).batch(2).seed(3).checkpointEvery(5).snapshotEvery(3).open();
  }

  private static void append(PocketTune tune, Set<Integer> skip) throws IOException {
    for (int i = 0; i < 40; i++) {
      if (!skip.contains(i)) {
        tune.appendJson(i % 5 == 4 ? "notes" : "messages", List.of(ForgetTest.event(i)));
      }
    }
  }

  private Path trained() throws IOException {
    Path a = dir.resolve("a");
    try (PocketTune tune = open(a)) {
      append(tune, Set.of());
      tune.train(Long.MAX_VALUE, tune.endOffsets(), (s, l) -> {});
    }
    return a;
  }

  private Process forget(Path data, String haltAt) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    List<String> command = new ArrayList<>(List.of(java, "-Dai.djl.offline=true"));
    if (haltAt != null) {
      command.add("-D" + Forgetting.HALT_PROPERTY + "=" + haltAt);
    }
    command.addAll(List.of("-cp", classpath, io.pockettune.pipeline.cli.Main.class.getName(), "forget", "--data-dir",
        data.toString(), "--model", pkg.toString(), "--threads", "1", "--event", "m5"));
    return new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(dir.resolve("child.log").toFile())
        .start();
  }

  @ParameterizedTest
  @ValueSource(strings = {"journal", "erase", "rollback", "retrain"})
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void aForgetHaltedAfterAnyPhaseIsFinishedByTheNextAndServesNothingHalfForgotten(String phase) throws Exception {
    Path a = trained();
    Process p = forget(a, phase);
    assertEquals(137, p.waitFor(), Files.readString(dir.resolve("child.log")));
    assertTrue(Files.exists(a.resolve(Forgetting.JOURNAL)), "the journal outlives the halt");
    assertEquals("rw-------", java.nio.file.attribute.PosixFilePermissions.toString(
        Files.getPosixFilePermissions(a.resolve(Forgetting.JOURNAL))), "the journal is the owner's only");
    CliRun ask = CliRun.of("export", "--data-dir", a.toString(), "--model", pkg.toString(), "--checkpoint", "1",
        "--out", dir.resolve("x.onnx").toString());
    if (phase.equals("journal") || phase.equals("erase")) {
      assertEquals(1, ask.exit(), "the model must not open before the rollback is durable: " + ask.out());
      assertTrue(ask.err().contains("did not finish, so the model may still hold what they taught it"), ask.err());
    } else {
      assertFalse(ask.err().contains("did not finish"), "after the rollback the store holds no trace: " + ask.err());
    }
    // The next training run finishes the forget first (here, foreground training through the API).
    try (PocketTune tune = open(a)) {
      tune.train(Long.MAX_VALUE, tune.endOffsets(), (s, l) -> {});
    }
    assertFalse(Files.exists(a.resolve(Forgetting.JOURNAL)), "finished");
    assertFalse(ForgetTest.grep(a, "secret plan number 5 for"));
    assertEquals(expectedSteps, lastStep(a));
    assertEquals(expected, digest(a), "bit-identical to the run that never saw the event");
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void aForgetKilledAtARandomMomentIsFinishedByForgetAgain() throws Exception {
    Path a = trained();
    Process p = forget(a, null);
    Thread.sleep(300 + new java.util.Random().nextInt(1500));
    p.destroyForcibly(); // SIGKILL
    p.waitFor();
    boolean pending = Files.exists(a.resolve(Forgetting.JOURNAL));
    boolean untouched = !pending && ForgetTest.grep(a, "secret plan number 5 for");
    // Killed with the journal written: forget without --event finishes it. Killed before it: nothing
    // was done, and the event is forgotten now. Killed after: it was done.
    CliRun again = untouched
        ? CliRun.of("forget", "--data-dir", a.toString(), "--model", pkg.toString(), "--threads", "1", "--event", "m5")
        : CliRun.of("forget", "--data-dir", a.toString(), "--model", pkg.toString(), "--threads", "1");
    assertEquals(0, again.exit(), again.err());
    if (pending) {
      assertTrue(again.out().startsWith("finished forgetting messages-"), again.out());
    }
    assertFalse(Files.exists(a.resolve(Forgetting.JOURNAL)));
    assertFalse(ForgetTest.grep(a, "secret plan number 5 for"));
    assertEquals(expectedSteps, lastStep(a));
    assertEquals(expected, digest(a));
  }

  private static long lastStep(Path data) {
    try (ModelStore store = ModelStore.openReadOnly(DataDirectory.at(data).store())) {
      return store.lastStep();
    }
  }

  private String digest(Path data) throws IOException {
    DataDirectory d = DataDirectory.at(data);
    try (StoreSession s = StoreSession.readOnly(d, ModelPackage.resolve(pkg, d), 1)) {
      s.restore(s.store().lastStep());
      return s.model().parameters().digest();
    }
  }
}
