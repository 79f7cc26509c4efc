package io.pockettune.pipeline;

import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.Rollback;
import io.pockettune.store.Snapshot;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.PerturbationKernel;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune rollback --to <checkpoint id | step:N>}: makes an earlier point of the
 * trajectory the live model. Restores its parameters (nearest snapshot, then replay), checks them,
 * moves the later steps to an abandoned branch with the source offsets moving back in the same
 * write, and snapshots the restored parameters so that the next start needs no replay. The next
 * training run continues from there.
 *
 * <p>The check: if a snapshot after the target exists, the restored parameters are replayed on to
 * it and must reproduce it bit for bit (then put back); a wrong restore cannot pass that.
 */
@Command(name = "rollback", mixinStandardHelpOptions = true,
    description = "Roll the model back to a checkpoint (--to 7) or a step (--to step:1200).")
final class RollbackCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--to", required = true, paramLabel = "ID|step:N",
      description = "a checkpoint id (see 'pockettune checkpoints') or step:N for step N (step:0 is the base model)")
  String to;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  /** What a rollback did, with its check. */
  record Result(Rollback rollback, Restored restored, String digest, Boolean verified, long verifiedAgainst,
      long millis) {}

  @Override
  public Integer call() throws IOException {
    if (threads < 1) {
      throw new IllegalArgumentException("--threads must be positive");
    }
    PrintWriter out = spec.commandLine().getOut();
    byte[] onnx = StoreCommands.baseModel(common.dataDir);
    try (ModelStore store = ModelStore.openExisting(StoreCommands.storeDir(common.dataDir))) {
      Checkpoint checkpoint = null;
      long step;
      if (to.startsWith("step:")) {
        step = parse(to.substring(5));
      } else {
        long id = parse(to);
        checkpoint = store.checkpoint(id).orElseThrow(() -> new IllegalArgumentException(
            "there is no checkpoint " + id + ": list them with 'pockettune checkpoints', or give step:N"));
        if (!checkpoint.live()) {
          throw new IllegalArgumentException("checkpoint " + id + " (step " + checkpoint.step() + ") is on branch "
              + checkpoint.branch() + ", abandoned by an earlier rollback: choose a checkpoint on the live trajectory");
        }
        step = checkpoint.step();
      }
      if (step > store.lastStep()) {
        throw new IllegalArgumentException("step " + step + " is after the last committed step "
            + store.lastStep() + ": choose an earlier step or checkpoint");
      }
      try (LossModel model = StoreCommands.loadModel(onnx, store.identity(), threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        Result r = rollback(store, model, kernel, step, checkpoint);
        Rollback rb = r.rollback();
        out.printf(Locale.ROOT, "rolled back to step %d%s in %d ms (snapshot of step %d + %d steps replayed)%n",
            rb.step(), checkpoint == null ? "" : " (checkpoint #" + checkpoint.id() + ")", r.millis(),
            r.restored().snapshotStep(), r.restored().replayed());
        out.printf(Locale.ROOT, "abandoned: %d steps%s%s%n", rb.stepsAbandoned(),
            rb.branch().map(b -> " (" + b.firstStep() + " to " + b.lastStep() + ", kept as branch " + b.id()
                + " until 'pockettune checkpoints --prune')").orElse(""),
            rb.checkpointsAbandoned().isEmpty() ? "" : ", checkpoints " + rb.checkpointsAbandoned());
        out.printf("committed offsets now: %s%n", StoreCommands.offsetsText(rb.offsets()));
        out.printf("parameters sha256 %s: %s%n", r.digest(), r.verified() == null
            ? "not cross-checked (no later snapshot to replay into)"
            : "verified, replaying on to the snapshot of step " + r.verifiedAgainst() + " reproduces it bit for bit");
        if (common.json) {
          out.println(new JsonLine()
              .put("step", rb.step())
              .put("checkpoint", checkpoint == null ? null : checkpoint.id())
              .put("steps_abandoned", rb.stepsAbandoned())
              .put("branch", rb.branch().map(b -> (Object) b.id()).orElse(null))
              .put("checkpoints_abandoned", rb.checkpointsAbandoned())
              .put("snapshots_dropped", rb.snapshotsDropped())
              .put("offsets", StoreCommands.offsetsJson(rb.offsets()))
              .put("parameters_sha256", r.digest())
              .put("verified", r.verified())
              .put("snapshot_step", r.restored().snapshotStep())
              .put("replayed", r.restored().replayed())
              .put("rollback_ms", r.millis()));
        }
      }
    }
    return 0;
  }

  private static long parse(String s) {
    try {
      long n = Long.parseLong(s.strip());
      if (n < 0) {
        throw new NumberFormatException();
      }
      return n;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--to takes a checkpoint id or step:N with N a step number, not '"
          + s + "'");
    }
  }

  /**
   * Restores {@code step} into {@code model} (whose parameters must be the base values), checks
   * it against the next snapshot if there is one, rolls the store back and snapshots the result.
   */
  static Result rollback(ModelStore store, LossModel model, PerturbationKernel kernel, long step,
      Checkpoint checkpoint) {
    long started = System.nanoTime();
    Restored restored = store.restore(step, model, StoreCommands.replayConfig(store.identity()), kernel);
    ParameterSet params = model.parameters();
    String digest = params.digest();
    Boolean verified = null;
    long next = store.snapshotStepAfter(step);
    if (next > 0) {
      float[] atStep = params.toArray();
      MezoTrainer trainer = restored.trainer();
      store.steps(step + 1, next).forEach(trainer::replay);
      Snapshot expected = store.snapshotAtOrBefore(next).orElseThrow();
      verified = Arrays.equals(params.toArray(), expected.values());
      params.load(atStep);
      if (!verified) {
        throw new IllegalStateException("replaying from step " + step + " does not reproduce the snapshot of step "
            + next + ": the store is inconsistent; nothing was rolled back");
      }
    }
    Rollback rb = checkpoint == null ? store.rollbackTo(step) : store.rollbackTo(checkpoint);
    if (step > 0 && restored.replayed() > 0) {
      store.putSnapshot(step, params.floats());
    }
    return new Result(rb, restored, digest, verified, next, (System.nanoTime() - started) / 1_000_000);
  }
}
