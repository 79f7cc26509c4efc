package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import io.pockettune.store.Rollback;
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
 * {@code pockettune rollback --to <checkpoint id | step:N>}: makes an earlier point of the
 * trajectory the live model ({@link PocketTune#rollback}: restored, checked against the next
 * snapshot, later steps kept as an abandoned branch, source offsets moved back). The next training
 * run continues from there.
 */
@Command(name = "rollback", mixinStandardHelpOptions = true,
    description = "Roll the model back to a checkpoint (--to 7) or a step (--to step:1200).")
final class RollbackCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--to", required = true, paramLabel = "ID|step:N",
      description = "a checkpoint id (see 'pockettune checkpoints') or step:N for step N (step:0 is the base model)")
  String to;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PocketTune.RollbackResult r;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(threads).open()) {
      r = tune.rollback(to);
    }
    Rollback rb = r.rollback();
    out.printf(Locale.ROOT, "rolled back to step %d%s in %d ms (snapshot of step %d + %d steps replayed)%n",
        rb.step(), r.checkpoint() == null ? "" : " (checkpoint #" + r.checkpoint().id() + ")", r.millis(),
        r.snapshotStep(), r.replayed());
    out.printf(Locale.ROOT, "abandoned: %d steps%s%s%n", rb.stepsAbandoned(),
        rb.branch().map(b -> " (" + b.firstStep() + " to " + b.lastStep() + ", kept as branch " + b.id()
            + " until 'pockettune checkpoints --prune')").orElse(""),
        rb.checkpointsAbandoned().isEmpty() ? "" : ", checkpoints " + rb.checkpointsAbandoned());
    out.printf("committed offsets now: %s%n", Offsets.text(rb.offsets()));
    out.printf("parameters sha256 %s: %s%n", r.digest(), r.verified() == null
        ? "not cross-checked (no later snapshot to replay into)"
        : "verified, replaying on to the snapshot of step " + r.verifiedAgainst() + " reproduces it bit for bit");
    if (common.json) {
      out.println(r.json());
    }
    return 0;
  }
}
