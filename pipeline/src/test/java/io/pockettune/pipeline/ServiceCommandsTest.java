package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/** serve, produce, status and replay on one data directory, the service running in this JVM. */
class ServiceCommandsTest {
  @TempDir Path dir;



  private static PocketTune.Builder settings(Path data) {
    return PocketTune.builder(data).threads(1).batch(4).maxTokens(64).checkpointEvery(5).snapshotEvery(8)
        .learningRate(1e-3f).eps(1e-3f).seed(7).maxIdle(java.time.Duration.ZERO)
        .pollInterval(java.time.Duration.ofMillis(10)).metricsCsv(true).controlSocket(true);
  }

  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void serveProduceStatusReplay_endToEnd() throws Exception {
    Path data = dir.resolve("data");
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    StringBuilder lines = new StringBuilder();
    for (int i = 0; i < 60; i++) {
      lines.append("{\"text\":\"hiya, are you about at " + i + "? x\",\"conversation\":\"c" + (i % 3) + "\",\"eventTime\":" + (1788246000000L + i * 60_000L) + "}")
          .append('\n');
    }
    lines.append("{\"text\":\"\",\"conversation\":\"c0\",\"eventTime\":1788249600000}\n");
    Path file = dir.resolve("events.jsonl");
    Files.writeString(file, lines.toString());
    Path bad = dir.resolve("bad.jsonl");
    Files.writeString(bad, "{\"text\":\"fine\"}\n{\"no_text\":1}\n");

    PocketTune service = settings(data).open();
    service.startTraining();
    try {
      CliRun paused = CliRun.of("status", "--data-dir", data.toString(), "--pause", "--json");
      assertEquals(0, paused.exit(), paused.err());
      assertEquals("paused", paused.json().path("state").asText());

      CliRun produced = CliRun.of("produce", "--data-dir", data.toString(), "--topic", "messages", "--file", file.toString(), "--json");
      assertEquals(0, produced.exit(), produced.err());
      assertEquals(61, produced.json().path("appended").asLong());
      assertEquals("service", produced.json().path("via").asText());
      long appended = 0;
      for (JsonNode range : produced.json().path("offsets")) {
        appended += range.get(1).asLong() - range.get(0).asLong() + 1;
      }
      assertEquals(61, appended, produced.out());
      CliRun refused = CliRun.of("produce", "--data-dir", data.toString(), "--topic", "messages", "--file", bad.toString());
      assertEquals(1, refused.exit());
      assertTrue(refused.err().contains("line 2 has no string field 'text'"), refused.err());

      JsonNode status = CliRun.of("status", "--data-dir", data.toString(), "--json").json();
      assertEquals(61, status.path("lag").asLong(), "paused: nothing trained yet");
      assertEquals(61, status.path("events_in").asLong());
      assertEquals(0, status.path("last_step").asLong());

      assertEquals("running", CliRun.of("status", "--data-dir", data.toString(), "--resume", "--json").json().path("state").asText());
      while (CliRun.of("status", "--data-dir", data.toString(), "--json").json().path("lag").asLong() > 0) {
        Thread.sleep(20);
      }
      status = CliRun.of("status", "--data-dir", data.toString(), "--json").json();
      assertEquals(15, status.path("last_step").asLong(), "60 good events in batches of 4");
      assertEquals(1, status.path("dead_letters").asLong(), "the empty text");
      assertEquals(3, status.path("last_checkpoint").path("id").asLong());
      assertTrue(status.path("step_latency_ms").has("p99"), status.toString());
      assertEquals(15L, java.lang.management.ManagementFactory.getPlatformMBeanServer()
          .getAttribute(new javax.management.ObjectName("io.pockettune:type=Service"), "Steps"), "JMX shows the steps");
    } finally {
      service.close();
    }
    assertTrue(Files.exists(data.resolve("metrics").resolve("pockettune.steps.csv")), "CSV metrics written");

    CliRun direct = CliRun.of("produce", "--data-dir", data.toString(), "--topic", "notes", "--file", bad.toString(), "--json");
    assertEquals(1, direct.exit(), "a note needs a body");
    Path note = dir.resolve("note.jsonl");
    Files.writeString(note, "{\"title\":\"to do\",\"body\":\"- oat milk\",\"eventTime\":1788249600001}\n");
    direct = CliRun.of("produce", "--data-dir", data.toString(), "--topic", "notes", "--file", note.toString(), "--json");
    assertEquals(0, direct.exit(), direct.err());
    assertEquals("log", direct.json().path("via").asText(), "with no service, produce appends to the log itself");

    JsonNode offline = CliRun.of("status", "--data-dir", data.toString(), "--json").json();
    assertEquals("stopped", offline.path("state").asText());
    assertEquals(15, offline.path("last_step").asLong());
    assertEquals(2, offline.path("lag").asLong(), "the empty text after the last committed batch, and the note");

    Path report = dir.resolve("out").resolve("replay.html");
    CliRun replay = CliRun.of("replay", "--data-dir", data.toString(), "--report", report.toString(), "--batch", "8",
        "--threads", "1", "--json");
    assertEquals(0, replay.exit(), replay.err());
    JsonNode json = replay.json();
    assertEquals(3, json.path("checkpoints_evaluated").asLong());
    assertEquals(61, json.path("events").asLong());
    assertEquals(1, json.path("skipped").asLong());
    String html = Files.readString(report);
    assertTrue(html.contains("<svg") && html.contains("<polyline") && !html.contains("<script"), html);
    assertEquals(4, Files.readAllLines(dir.resolve("out").resolve("replay.csv")).size());
    assertTrue(Files.exists(dir.resolve("out").resolve("replay.json")));

    // The report's figures are the trainer's own evaluation of each restored checkpoint on the same events.
    try (ModelStore store = ModelStore.openReadOnly(data.resolve("store"))) {
      List<TokenBatch> batches = allEvents(data, 8);
      List<Checkpoint> checkpoints = store.checkpoints();
      for (int i = 0; i < checkpoints.size(); i++) {
        try (LossModel model = LossModel.causalLm(PipelineFixture.MODEL, TrainableSelection.all(), 1);
            PerturbationKernel kernel = new PerturbationKernel(1)) {
          MezoTrainer trainer = store.restore(checkpoints.get(i).step(), model,
              RunConfig::replayConfig, kernel).trainer();
          double loss = trainer.evaluate(batches);
          JsonNode reported = json.path("checkpoints").get(i);
          assertEquals(checkpoints.get(i).id(), reported.path("id").asLong());
          assertEquals(loss, reported.path("loss").asDouble(), 0.0);
          assertEquals(Math.exp(loss), reported.path("perplexity").asDouble(), 1e-12);
        }
      }
    }

    CliRun prequential = CliRun.of("replay", "--data-dir", data.toString(), "--prequential", "--checkpoints", "1",
        "--report", dir.resolve("pq").resolve("p.html").toString(), "--batch", "8", "--threads", "1", "--json");
    assertEquals(0, prequential.exit(), prequential.err());
    assertEquals(8, prequential.json().path("points").size());
    assertEquals(5, prequential.json().path("start_step").asLong());
  }

  /** Every trainable event of the log in merge order, batched: what replay should evaluate on. */
  private static List<TokenBatch> allEvents(Path data, int batch) throws Exception {
    List<TokenBatch> batches = new ArrayList<>();
    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"))) {
      EventSerde serde = new EventSerde(SchemaStore.open(data.resolve("schemas")));
      Map<TopicPartition, Long> start = new LinkedHashMap<>();
      Map<TopicPartition, Long> end = new LinkedHashMap<>();
      for (TopicPartition tp : Topics.sources()) {
        start.put(tp, 0L);
        end.put(tp, log.endOffset(tp.topic(), tp.partition()));
      }
      LogSource source = new LogSource(log, start, end);
      List<long[]> pending = new ArrayList<>();
      for (LogSource.SourceRecord r = source.next(); r != null; r = source.next()) {
        Object event = serde.deserialize(r.value());
        String text = event instanceof io.pockettune.events.Message m ? m.getText()
            : ((io.pockettune.events.Note) event).getTitle() + "\n" + ((io.pockettune.events.Note) event).getBody();
        if (text.isBlank()) {
          continue;
        }
        pending.add(new ByteTokenizer().encode(text, 64));
        if (pending.size() == batch) {
          batches.add(TokenBatch.of(pending));
          pending = new ArrayList<>();
        }
      }
      if (!pending.isEmpty()) {
        batches.add(TokenBatch.of(pending));
      }
    }
    return batches;
  }
}
