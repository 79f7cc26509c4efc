package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Kills a process that is committing steps (SIGKILL, no shutdown hooks, no close) and checks what
 * a reopen finds: every acknowledged step, and offsets that belong to the last step found. Run
 * twice in a row on the same store, so the second kill lands on a store recovered from the first.
 */
class CrashTest {
  @TempDir Path dir;

  @ParameterizedTest
  @ValueSource(ints = {1, 40, 400})
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void commitStep_killedProcess_stepAndOffsetsAgree(int acknowledgedBeforeKill)
      throws IOException, InterruptedException {
    Path store = dir.resolve("store");
    long acknowledged = 0;
    for (int round = 0; round < 2; round++) {
      acknowledged = runAndKill(store, acknowledged + acknowledgedBeforeKill, round);
      try (ModelStore reopened = ModelStore.open(store, ModelStoreTest.IDENTITY)) {
        long last = reopened.lastStep();
        assertTrue(last >= acknowledged, "acknowledged " + acknowledged + " but found " + last);
        assertEquals(ModelStoreTest.offsetsOf(last), reopened.committedOffsets());
        assertEquals(last, reopened.steps(1, last).size());
        assertEquals(ModelStoreTest.record(last), reopened.step(last).orElseThrow());
        acknowledged = last;
      }
    }
  }

  /** @return the highest step the child acknowledged before it was killed */
  private long runAndKill(Path store, long killAfter, int round)
      throws IOException, InterruptedException {
    Path stderr = dir.resolve("child-" + round + ".err");
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String classpath =
        System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    Process child =
        new ProcessBuilder(
                List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp", classpath,
                    CommitLoop.class.getName(), store.toString()))
            .redirectError(stderr.toFile())
            .start();
    long acknowledged = 0;
    try (BufferedReader out =
        new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
      while (acknowledged < killAfter) {
        String line = out.readLine();
        assertNotNull(line, () -> "child exited early: " + read(stderr));
        acknowledged = Long.parseLong(line.substring("committed ".length()));
      }
      // Through the handle: Process.destroyForcibly would also close the pipe still to be read.
      child.toHandle().destroyForcibly();
      // Lines already printed before the kill are acknowledged commits too.
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
