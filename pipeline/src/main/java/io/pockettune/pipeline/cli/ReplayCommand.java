package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune replay}: evaluates checkpoints on a slice of the log without training and
 * writes JSON, CSV and an HTML report ({@link PocketTune#replay}).
 *
 * <p>{@code --from}/{@code --to} (to exclusive) are each either an offset, applied to every
 * partition of the chosen topics and clamped to what each holds, or an ISO-8601 instant, resolved
 * per partition to the first record at or after it; the defaults are the whole log, and {@code --from}
 * after {@code --to} is refused. {@code --checkpoints base,latest} evaluates a store that has no
 * checkpoint (the base model and the last committed step). The store is
 * opened read-only and the log through a read-only snapshot, so replay works beside a running
 * service.
 */
@Command(name = "replay", mixinStandardHelpOptions = true,
    description = "Evaluate checkpoints on a slice of the log without training; write JSON, CSV and an HTML report.")
final class ReplayCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--from", paramLabel = "OFFSET|TIME", description = "first offset (every partition) or ISO-8601 instant")
  String from;

  @Option(names = "--to", paramLabel = "OFFSET|TIME", description = "offset or instant to stop before")
  String to;

  @Option(names = "--topic", description = "topic to replay (default: messages and notes)")
  String topic;

  @Option(names = "--checkpoints", description = "comma-separated: all, checkpoint ids, base (the base model) and latest"
      + " (the last committed step, checkpoint or not), such as 1,3 or base,latest (default: ${DEFAULT-VALUE})")
  String checkpoints = "all";

  @Option(names = "--report", paramLabel = "FILE", description = "HTML report to write; CSV and JSON beside it (default: DIR/reports/replay.html)")
  Path report;

  @Option(names = "--batch", description = "events per forward pass (default: ${DEFAULT-VALUE})")
  int batch = 32;

  @Option(names = "--prequential", description = "from the first chosen checkpoint (or the base model), evaluate each batch, then train on it in memory")
  boolean prequential;

  @Option(names = "--no-baseline", description = "do not evaluate the base model (step 0) beside the checkpoints")
  boolean noBaseline;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PocketTune.ReplayOptions options = new PocketTune.ReplayOptions(from, to, topic, checkpoints,
        report == null ? null : report.toAbsolutePath(), batch, prequential, !noBaseline, threads);
    PocketTune.ReplayResult r;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(threads).open()) {
      r = tune.replay(options);
    }
    r.lines().forEach(out::println);
    if (common.json) {
      out.println(r.json());
    }
    return 0;
  }
}
