package io.pockettune.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pockettune bench} as the launcher runs it, on small sizes: each area runs end to end and
 * keeps the {@code --json} contract. The figures themselves are not asserted (shared machines).
 */
class BenchCommandTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path dir;

  /** One {@code pockettune bench} command line run in this JVM, with what it printed. */
  private record Run(int exit, String out, String err) {
    static Run of(String... args) {
      StringWriter out = new StringWriter();
      StringWriter err = new StringWriter();
      int exit = BenchCommand.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
      return new Run(exit, out.toString(), err.toString());
    }

    /** The {@code --json} contract's line: the last line of standard output, parsed. */
    JsonNode json() throws Exception {
      String[] lines = out.strip().split("\n");
      return JSON.readTree(lines[lines.length - 1]);
    }
  }

  @Test
  void help_listsEveryArea() {
    Run help = Run.of("--help");
    assertEquals(0, help.exit());
    for (String area : new String[] {"trainer", "store", "ingest", "inference"}) {
      assertTrue(help.out().contains(area), "help lists " + area);
    }
  }

  @Test
  void run_badArgumentIsOneLineWithExit2() {
    Run r = Run.of("store", "--steps", "many");
    assertEquals(2, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertTrue(r.err().startsWith("pockettune bench store: "), r.err());
  }

  @Test
  void run_failureIsOneLineWithExit1() {
    Run r = Run.of("trainer", "--model", "gpt5");
    assertEquals(1, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertTrue(r.err().startsWith("pockettune bench trainer: unknown --model gpt5"), r.err());
  }

  @Test
  void store_smallRun_reportsRollbackReplayingAtMostOneSnapshotInterval() throws Exception {
    Run r = Run.of("store", "--steps", "40", "--snapshot-every", "10", "--data-dir", dir.toString(), "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode figures = r.json();
    assertEquals(40, figures.get("steps").asInt());
    assertEquals(39, figures.get("rollback_end_step").asLong());
    assertEquals(9, figures.get("replayed_max").asLong());
    assertTrue(figures.get("bytes_per_step").asDouble() > 0, r.out());
  }

  @Test
  void inference_smallRun_reportsClassifyRatioAndSwap() throws Exception {
    Run r = Run.of("inference", "--repeats", "10", "--swap-steps", "4", "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode figures = r.json();
    assertTrue(figures.get("classify_p50_ms").asDouble() > 0, r.out());
    assertTrue(figures.get("classify_over_plain_ort").asDouble() > 0, r.out());
    assertTrue(figures.get("swap_steps_seen").asInt() >= 2, r.out());
    assertTrue(figures.get("swap_ms").isNumber() && figures.get("swap_ms").asDouble() < 60_000,
        "the reader answered on a new step within a minute of its commit: " + r.out());
  }

  @Test
  void trainer_smallRun_reportsKernelAndStepRatios() throws Exception {
    Run r = Run.of("trainer", "--model", "demo", "--batch", "2", "--seq", "16", "--repeats", "1", "--skip-memory",
        "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode figures = r.json();
    assertEquals("demo", figures.get("model").asText());
    for (String key : new String[] {"kernel_speedup_vs_jdk", "step_over_two_forwards", "lora_step_over_one_forward"}) {
      assertTrue(figures.get(key).asDouble() > 0, key + " in " + r.out());
    }
  }

  @Test
  void ingest_smallRun_comparesTheEmbeddedLogWithALocalBroker() throws Exception {
    Run r = Run.of("ingest", "--events", "500", "--data-dir", dir.toString(), "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode figures = r.json();
    assertEquals(500, figures.get("events").asInt());
    assertTrue(figures.get("kafka_events_per_s").asLong() > 0, r.out());
    assertTrue(figures.get("ratio").asDouble() > 0, r.out());
  }
}
