package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.LogSnapshot;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import org.apache.kafka.common.TopicPartition;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune status [--pause | --resume] [--json]}: lag, steps, recent loss, last
 * checkpoint, state and the service's metrics. Asks the running service over the {@link
 * ControlChannel}; with none running, reads the store read-only and, if nobody holds it, the log
 * (state {@code stopped}). Pause and resume need a running service.
 */
@Command(name = "status", mixinStandardHelpOptions = true,
    description = "Show lag, steps, recent loss, last checkpoint and state; --pause/--resume the training.")
final class StatusCommand implements Callable<Integer> {
  private static final int RECENT = 50;

  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--pause", description = "pause training (ingestion goes on)")
  boolean pause;

  @Option(names = "--resume", description = "resume training")
  boolean resume;

  @Override
  public Integer call() throws IOException {
    if (pause && resume) {
      throw new IllegalArgumentException("--pause and --resume exclude each other: give one");
    }
    PrintWriter out = spec.commandLine().getOut();
    Path dir = common.dataDir.toAbsolutePath();
    String op = pause ? "pause" : resume ? "resume" : "status";
    Optional<JsonNode> answer = ControlChannel.call(dir, new JsonLine().put("op", op).toString(), List.of());
    String json;
    if (answer.isPresent()) {
      JsonNode s = answer.get();
      out.printf(Locale.ROOT, "service %s: step %d (%d this run), recent loss %.4f, lag %d events, %.2f steps/s, %d events in, %d dead letters, rss %d MB%n",
          s.path("state").asText(), s.path("last_step").asLong(), s.path("steps_this_run").asLong(),
          s.path("recent_loss").asDouble(Double.NaN), s.path("lag").asLong(), s.path("steps_per_second").asDouble(),
          s.path("events_in").asLong(), s.path("dead_letters").asLong(), s.path("rss_bytes").asLong() / (1 << 20));
      out.printf(Locale.ROOT, "step latency ms: p50 %.1f p99 %.1f; last checkpoint: %s%n",
          s.path("step_latency_ms").path("p50").asDouble(), s.path("step_latency_ms").path("p99").asDouble(),
          s.path("last_checkpoint").isNull() ? "none" : "#" + s.path("last_checkpoint").path("id").asLong() + " at step "
              + s.path("last_checkpoint").path("step").asLong());
      json = s.toString();
    } else {
      if (pause || resume) {
        throw new IllegalArgumentException("no service runs on " + dir + ": start one with 'pockettune serve --data-dir " + common.dataDir + "'");
      }
      json = offline(dir, out).toString();
    }
    if (common.json) {
      out.println(json);
    }
    return 0;
  }

  /** Status from the files, with no service running. */
  private static JsonLine offline(Path dir, PrintWriter out) throws IOException {
    JsonLine j = new JsonLine().put("state", "stopped").put("service", false);
    Map<SourcePartition, Long> committed;
    try (ModelStore store = StoreCommands.openReadOnly(dir)) {
      long last = store.lastStep();
      double loss = Double.NaN;
      if (last > 0) {
        List<StepRecord> recent = store.steps(Math.max(1, last - RECENT + 1), last);
        loss = recent.stream().mapToDouble(r -> (r.lossPlus() + r.lossMinus()) / 2.0).average().orElse(Double.NaN);
      }
      List<Checkpoint> checkpoints = store.checkpoints();
      Checkpoint c = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);
      committed = store.committedOffsets();
      j.put("last_step", last).put("recent_loss", loss).put("last_checkpoint", Service.checkpointJson(c));
      out.printf(Locale.ROOT, "no service running: step %d, recent loss %.4f, last checkpoint %s%n", last, loss,
          c == null ? "none" : "#" + c.id() + " at step " + c.step());
    }
    Long total = null;
    Map<String, Long> byPartition = new LinkedHashMap<>();
    if (Files.isDirectory(dir.resolve("log"))) {
      // Read-only: status never recovers, locks or writes the log.
      try (LogSnapshot log = LogSnapshot.open(dir.resolve("log"))) {
        total = 0L;
        for (Iterator<TopicPartition> it = Topics.sources().iterator(); it.hasNext(); ) {
          TopicPartition tp = it.next();
          if (!log.topics().contains(tp.topic())) {
            continue;
          }
          long lag = log.endOffset(tp.topic(), tp.partition())
              - committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()), log.startOffset(tp.topic(), tp.partition()));
          byPartition.put(tp.topic() + "-" + tp.partition(), lag);
          total += lag;
        }
        out.printf(Locale.ROOT, "lag: %d events not trained yet%n", total);
      }
    }
    return j.put("lag", total).put("lag_by_partition", byPartition).put("data_dir", dir.toString());
  }
}
