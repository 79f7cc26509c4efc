package io.pockettune.pipeline;

import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.Rollback;
import io.pockettune.store.Snapshot;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import java.util.Arrays;

/**
 * A checked rollback: restores the target's parameters (nearest snapshot, then replay), checks
 * them, moves the later steps to an abandoned branch with the source offsets moving back in the
 * same write, and snapshots the restored parameters so that the next start needs no replay.
 *
 * <p>The check: if a snapshot after the target exists, the restored parameters are replayed on to
 * it and must reproduce it bit for bit (then put back); a wrong restore cannot pass that.
 */
final class Rollbacks {
  private Rollbacks() {}

  /** @param target a checkpoint id, or {@code step:N} */
  static PocketTune.RollbackResult rollback(StoreSession session, String target) {
    ModelStore store = session.store();
    Checkpoint checkpoint = null;
    long step;
    if (target.startsWith("step:")) {
      step = parse(target.substring(5));
    } else {
      long id = parse(target);
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
    long started = System.nanoTime();
    Restored restored = session.restore(step);
    ParameterSet params = session.model().parameters();
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
    return new PocketTune.RollbackResult(rb, checkpoint, restored.snapshotStep(), restored.replayed(), digest, verified,
        next, (System.nanoTime() - started) / 1_000_000);
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
}
