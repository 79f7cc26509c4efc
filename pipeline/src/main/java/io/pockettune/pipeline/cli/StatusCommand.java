package io.pockettune.pipeline.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune status [--pause | --resume] [--json]}: lag, steps, recent loss, last
 * checkpoint, state and the service's metrics ({@link PocketTune#status}: from a running service,
 * else read-only from the files). Pause and resume need a running service.
 */
@Command(name = "status", mixinStandardHelpOptions = true,
    description = "Show lag, steps, recent loss, last checkpoint and state; --pause/--resume the training.")
final class StatusCommand implements Callable<Integer> {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

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
    JsonLine status;
    try (PocketTune tune = common.builder().model(modelOption.model).open()) {
      if (pause) {
        tune.pause();
      } else if (resume) {
        tune.resume();
      }
      status = tune.status();
    }
    JsonNode s = JSON.readTree(status.toString());
    if (s.path("service").asBoolean()) {
      out.printf(Locale.ROOT, "service %s: step %d (%d this run), recent loss %.4f, lag %d events, %.2f steps/s, %d events in, %d dead letters, rss %d MB%n",
          s.path("state").asText(), s.path("last_step").asLong(), s.path("steps_this_run").asLong(),
          s.path("recent_loss").asDouble(Double.NaN), s.path("lag").asLong(), s.path("steps_per_second").asDouble(),
          s.path("events_in").asLong(), s.path("dead_letters").asLong(), s.path("rss_bytes").asLong() / (1 << 20));
      out.printf(Locale.ROOT, "step latency ms: p50 %.1f p99 %.1f; last checkpoint: %s%n",
          s.path("step_latency_ms").path("p50").asDouble(), s.path("step_latency_ms").path("p99").asDouble(),
          checkpoint(s));
    } else {
      out.printf(Locale.ROOT, "no service running: step %d, recent loss %.4f, last checkpoint %s%n",
          s.path("last_step").asLong(), s.path("recent_loss").asDouble(Double.NaN), checkpoint(s));
      if (!s.path("lag").isNull()) {
        out.printf(Locale.ROOT, "lag: %d events not trained yet%n", s.path("lag").asLong());
      }
    }
    if (common.json) {
      out.println(status);
    }
    return 0;
  }

  private static String checkpoint(JsonNode s) {
    JsonNode c = s.path("last_checkpoint");
    return c.isNull() || c.isMissingNode() ? "none" : "#" + c.path("id").asLong() + " at step " + c.path("step").asLong();
  }
}
