package io.pockettune.fleetbench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@code bench fleet} with tiny numbers (6 users x 8 events, parallelism 1 and 2): the run passes
 * its own per-user check against the direct training and keeps the {@code --json} contract. The
 * figures themselves are not asserted beyond being positive (shared machines).
 */
class BenchFleetCommandTest {
  private static final List<String> FIELDS = List.of("users", "events_per_user", "events", "batch",
      "trainable_values", "steps_per_user", "checkpoint_interval_ms", "snapshot_every", "direct_open_ms",
      "direct_train_ms", "direct_after_train_ms", "direct_before_events_per_s", "direct_after_events_per_s",
      "direct_steps", "direct_events_per_s", "direct_steps_per_s", "warmup_ms",
      "flink_p1_vs_direct", "p2_vs_p1", "full_parameter_state_bytes_per_user_estimate", "rocksdb_code_source",
      "load_average_start", "load_average_end", "time_covers");
  private static final List<String> PER_RUN = List.of("job_ms", "net_runtime_ms", "startup_ms", "events_per_s",
      "steps_per_s", "events_per_s_excluding_startup", "steps", "steps_checked", "duplicates",
      "checkpoints_completed", "checkpoints_failed", "checkpoint_ms_median", "checkpoint_ms_max", "checkpoint_write_ms_median",
      "checkpoint_write_ms_max", "last_checkpoint_id",
      "state_bytes", "state_bytes_per_user", "last_checkpointed_bytes", "state_backend");

  @Test
  void run_tinyFleet_checksEveryUsersStepsAndReportsEveryFigure() throws Exception {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int code = BenchFleetCommand.run(new PrintWriter(out, true), new PrintWriter(err, true), "--users", "6",
        "--events-per-user", "8", "--parallelism", "1,2", "--json");
    assertEquals(0, code, out + "\n" + err);
    String[] lines = out.toString().strip().split("\n");
    JsonNode f = new ObjectMapper().readTree(lines[lines.length - 1]);
    for (String field : FIELDS) {
      assertTrue(f.hasNonNull(field), field + " in " + f);
    }
    for (int p : new int[] {1, 2}) {
      for (String field : PER_RUN) {
        // Excluding the startup is undefined (null) when the empty job took as long as the real one.
        assertTrue(f.has("p" + p + "_" + field), "p" + p + "_" + field + " in " + f);
      }
      assertTrue(f.get("p" + p + "_steps_checked").asBoolean(), f.toString());
      assertEquals(12, f.get("p" + p + "_steps").asLong(), "6 users x 2 steps of 4 events");
      assertTrue(f.get("p" + p + "_events_per_s").asDouble() > 0, f.toString());
      assertTrue(f.get("p" + p + "_steps_per_s").asDouble() > 0, f.toString());
      assertTrue(f.get("p" + p + "_checkpoints_completed").asInt() > 0, f.toString());
      assertTrue(f.get("p" + p + "_state_bytes_per_user").asDouble() > 0, f.toString());
      assertTrue(f.get("p" + p + "_state_backend").asText().contains("RocksDB"), f.toString());
    }
    assertTrue(f.get("direct_events_per_s").asDouble() > 0, f.toString());
    assertTrue(f.get("flink_p1_vs_direct").asDouble() > 0, f.toString());
    assertTrue(f.get("p2_vs_p1").asDouble() > 0, f.toString());
    assertEquals(4 * f.get("trainable_values").asLong() + 59 * 2,
        f.get("full_parameter_state_bytes_per_user_estimate").asLong(), "4 bytes a value and 59 a step, 2 steps a user");
    assertTrue(f.get("rocksdb_code_source").asText().startsWith("frocksdbjni"), f.toString());
  }

  @Test
  void run_badArgumentIsOneLineWithExit2() {
    StringWriter err = new StringWriter();
    int code = BenchFleetCommand.run(new PrintWriter(new StringWriter(), true), new PrintWriter(err, true),
        "--users", "0");
    assertEquals(2, code);
    assertTrue(err.toString().startsWith("pockettune bench fleet: --users"), err.toString());
  }
}
