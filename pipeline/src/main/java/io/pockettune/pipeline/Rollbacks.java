package io.pockettune.pipeline;

import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.VerifiedRollback;

/**
 * {@code rollback --to <checkpoint id | step:N>}: the target parsed and checked against the store,
 * then the store's {@link ModelStore#rollbackVerified verified rollback} (restore, cross-check
 * against the next snapshot, branch, snapshot).
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
    VerifiedRollback v = store.rollbackVerified(step, checkpoint, session.model(), RunConfig::replayConfig,
        session.kernel());
    return new PocketTune.RollbackResult(v.rollback(), checkpoint, v.restored().snapshotStep(), v.restored().replayed(),
        v.digest(), v.verified(), v.verifiedAgainst(), v.millis());
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
