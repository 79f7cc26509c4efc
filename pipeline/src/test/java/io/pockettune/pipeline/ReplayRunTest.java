package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code pockettune replay} on a store that has steps but no checkpoint, and its argument checks. */
class ReplayRunTest {
  @TempDir Path dir;

  /** 12 messages trained in the foreground, 3 steps of 4, no checkpoint; returns the package. */
  private Path trainWithoutCheckpoints() throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      lines.add("{\"text\":\"see you at the wall at " + i + "\",\"conversation\":\"c" + (i % 3) + "\",\"eventTime\":"
          + (1788246000000L + i * 60_000L) + "}");
    }
    try (PocketTune tune = PocketTune.builder(data()).model(pkg).threads(1).batch(4).seed(7).checkpointEvery(0).open()) {
      tune.appendJson("messages", lines);
      assertEquals(3, tune.train(10, tune.endOffsets(), (step, loss) -> { }).steps());
      assertTrue(tune.checkpoints().isEmpty());
    }
    return pkg;
  }

  private Path data() {
    return dir.resolve("data");
  }

  private CliRun replay(Path pkg, String... args) {
    List<String> all = new ArrayList<>(List.of("replay", "--data-dir", data().toString(), "--model", pkg.toString(),
        "--threads", "1", "--report", dir.resolve("r").resolve("replay.html").toString()));
    all.addAll(List.of(args));
    return CliRun.of(all.toArray(String[]::new));
  }

  @Test
  void replay_baseAndLatestWithoutCheckpoints_evaluatesBoth() throws Exception {
    Path pkg = trainWithoutCheckpoints();
    CliRun none = replay(pkg);
    assertEquals(1, none.exit());
    assertTrue(none.err().contains("no checkpoints to evaluate: give --checkpoints base,latest"), none.err());

    CliRun r = replay(pkg, "--checkpoints", "base,latest", "--json");
    assertEquals(0, r.exit(), r.err());
    JsonNode json = r.json();
    assertEquals(2, json.path("checkpoints_evaluated").asLong());
    assertFalse(json.has("baseline"), "the base model is in the list: not evaluated twice");
    JsonNode base = json.path("checkpoints").get(0);
    JsonNode latest = json.path("checkpoints").get(1);
    assertEquals("base", base.path("label").asText());
    assertEquals(0, base.path("step").asLong());
    assertTrue(base.path("id").isNull(), base.toString());
    assertEquals("latest", latest.path("label").asText());
    assertEquals(3, latest.path("step").asLong());
    assertTrue(latest.path("id").isNull(), latest.toString());

    // latest is the model the foreground run ended with, restored by replaying its steps.
    try (PocketTune tune = PocketTune.builder(data()).model(pkg).threads(1).batch(4).seed(7).open()) {
      Map<TopicPartition, Long> start = new LinkedHashMap<>();
      tune.endOffsets().keySet().forEach(tp -> start.put(tp, 0L));
      assertEquals(tune.evaluate(start, tune.endOffsets(), 32), latest.path("loss").asDouble(), 0.0);
    }
    List<String> csv = Files.readAllLines(dir.resolve("r").resolve("replay.csv"));
    assertEquals(3, csv.size(), csv.toString());
    assertTrue(csv.get(1).startsWith(",0,base,") && csv.get(2).startsWith(",3,latest,"), csv.toString());
    String html = Files.readString(dir.resolve("r").resolve("replay.html"));
    assertTrue(html.contains("<td>base</td>") && html.contains("<td>latest</td>"), html);
    assertTrue(r.out().contains("latest"), r.out());
  }

  @ParameterizedTest
  @CsvSource(delimiter = '|', value = {
      "10|5|--from 10 is after --to 5: --from is the first offset or instant to evaluate and --to the one to stop"
          + " before, so give a --from at or before --to",
      "2026-09-02T00:00:00Z|2026-09-01T00:00:00Z|--from 2026-09-02T00:00:00Z is after --to 2026-09-01T00:00:00Z:",
      "11|2026-01-01T00:00:00Z|--from 11 is after --to 2026-01-01T00:00:00Z in messages-",
      "yesterday|5|--from 'yesterday' is neither an offset nor an ISO-8601 instant",
      "0|soon|--to 'soon' is neither an offset nor an ISO-8601 instant",
      "99999999999999999999|5|--from 99999999999999999999 is too large for an offset",
      "4|4|is empty (--from equals --to, or is past the end of the log): widen --from/--to",
      "500|900|is empty (--from equals --to, or is past the end of the log): widen --from/--to"})
  void replay_badSlice_saysWhatToDo(String from, String to, String message) throws Exception {
    Path pkg = trainWithoutCheckpoints();
    CliRun r = replay(pkg, "--checkpoints", "base,latest", "--from", from, "--to", to);
    assertEquals(1, r.exit(), r.out());
    assertTrue(r.err().contains(message), r.err());
    assertEquals(1, r.err().strip().lines().count(), r.err());
  }
}
