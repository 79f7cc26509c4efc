package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pockettune forget --event <topic-partition@offset | event id> ...}: exact forgetting
 * ({@link PocketTune#forget}). Beside a running service it asks the service, which pauses training
 * for it; otherwise it opens the data directory itself. Without {@code --event}, it finishes a
 * forget that a crash interrupted, if there is one.
 */
@Command(name = "forget", mixinStandardHelpOptions = true,
    description = "Forget events for good, model included: erase them from the log, roll the model back to before"
        + " it learnt from them, and train again on everything after, as if they had never been appended.")
final class ForgetCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--event", paramLabel = "EVENT",
      description = "an event: topic-partition@offset (such as messages-0@17) or its id; repeat for several (one"
          + " rollback for all)")
  List<String> events = new ArrayList<>();

  @Option(names = "--batch-tokens", paramLabel = "N",
      description = "the token budget per batch training ran with, if serve was given --batch-tokens (not recorded in"
          + " the store; the count and tokens per example are)")
  long batchTokens = Long.MAX_VALUE;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PocketTune.ForgetResult r;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(threads).batchTokens(batchTokens).open()) {
      r = tune.forget(events);
    }
    if (r == null) {
      out.println("nothing to forget: give --event topic-partition@offset or an event id (no forget was unfinished)");
      return 0;
    }
    out.printf(Locale.ROOT, "%s %s in %d ms: %d record(s) and %d dead letter(s) erased%n",
        r.resumed() ? "finished forgetting" : "forgot", String.join(", ", r.events()), r.millis(), r.recordsErased(),
        r.deadLettersErased());
    out.printf(Locale.ROOT, "model: rolled back to step %d (%d step(s) undone), %d step(s) trained again, now at step %d%n",
        r.rolledBackTo(), r.stepsUndone(), r.stepsRetrained(), r.lastStep());
    if (!r.checkpointsSuperseded().isEmpty()) {
      out.printf("checkpoints superseded (they had learnt from the events; export refuses them): %s%n",
          r.checkpointsSuperseded());
    }
    out.printf("parameters sha256 %s%n", r.digest());
    if (common.json) {
      out.println(r.json());
    }
    return 0;
  }
}
