package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DemoCommandTest {
  @TempDir Path dir;



  @Test
  void demo_trainsAndReportsHeldOutLossAsJson() throws Exception {
    Path data = dir.resolve("data");
    CliRun r = CliRun.of("demo", "--data-dir", data.toString(), "--steps", "40", "--json");
    assertEquals(0, r.exit(), r.err());
    assertTrue(r.lastLine().startsWith("{") && r.lastLine().endsWith("}"), r.lastLine());
    assertEquals(40, r.number("steps"));
    assertEquals(40 * 16 + 256, r.number("events"));
    assertTrue(r.number("checkpoints") >= 1);
    assertTrue(r.number("heldout_loss_after") < r.number("heldout_loss_before"), r.lastLine());
    assertTrue(r.number("seconds") > 0);
    JsonNode completions = r.json().path("completions");
    assertEquals(3, completions.size(), r.lastLine());
    assertEquals("Heading to the", completions.get(0).path("prompt").asText());
    assertTrue(completions.get(0).has("base") && completions.get(0).has("personalized"), r.lastLine());
    assertTrue(Files.isDirectory(data.resolve("log").resolve("messages-0")), "events are on disk");
    assertTrue(Files.exists(data.resolve("store").resolve("CURRENT")), "steps are in RocksDB");

    CliRun again = CliRun.of("demo", "--data-dir", data.toString(), "--steps", "10", "--json");
    assertEquals(0, again.exit(), again.err());
    assertEquals(50, again.number("total_steps"), "a second run continues the first");
    assertTrue(again.err().contains("restored the model to step 40 first"), again.err());

    Path report = dir.resolve("replay.html");
    CliRun replay;
    // Replay and status read the log through a read-only snapshot, so they work while another
    // process (here: this test, standing in for a running service) owns the log.
    try (io.pockettune.ingest.EmbeddedLog owner = io.pockettune.ingest.EmbeddedLog.open(data.resolve("log"))) {
      assertTrue(owner.topics().contains(Topics.MESSAGES));
      replay = CliRun.of("replay", "--data-dir", data.toString(), "--report", report.toString(), "--threads", "1", "--json");
      CliRun status = CliRun.of("status", "--data-dir", data.toString(), "--json");
      assertEquals(0, status.exit(), status.err());
      assertTrue(status.out().contains("events not trained yet"), status.out());
    }
    assertEquals(0, replay.exit(), replay.err());
    assertEquals(2, replay.number("checkpoints_evaluated"), "the two demo checkpoints");
    assertTrue(replay.lastLine().contains("\"loss\":"), replay.lastLine());
    assertTrue(Files.readString(report).contains("<svg"), "the HTML report has its chart");
  }

  @Test
  void demo_badArgumentIsOneLine() {
    CliRun r = CliRun.of("demo", "--data-dir", dir.toString(), "--steps", "0");
    assertEquals(1, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertTrue(r.err().contains("--steps"), r.err());
  }

  @Test
  void main_helpListsEveryCommandOfTheContract() {
    CliRun help = CliRun.of("--help");
    assertEquals(0, help.exit());
    for (String c : new String[] {"demo", "serve", "produce", "status", "checkpoints", "rollback", "replay", "export", "model", "generate", "classify", "score", "pull", "bench"}) {
      assertTrue(help.out().contains(c), "help lists " + c);
    }
  }

  @Test
  void main_unknownOptionIsOneLineWithExit2() {
    CliRun r = CliRun.of("demo", "--no-such-option");
    assertEquals(2, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
  }
}
