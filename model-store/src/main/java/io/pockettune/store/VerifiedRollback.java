package io.pockettune.store;

import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.PerturbationKernel;
import java.util.Arrays;
import java.util.function.Function;

/**
 * A rollback that proves itself before it writes: restore the target's parameters (nearest
 * snapshot, then replay), and if a snapshot after the target exists, replay on to it and require
 * the snapshot's bits (then put the target's parameters back); only then move the later steps to
 * an abandoned branch ({@link ModelStore#rollbackTo}), and snapshot the restored parameters so the
 * next start needs no replay. A wrong restore cannot pass the check, and a failed check writes
 * nothing.
 *
 * @param rollback        the store's account of the rollback
 * @param restored        how the target was restored
 * @param digest          SHA-256 of the restored parameters
 * @param verified        whether replaying on to the next snapshot reproduced it; null when there is none
 * @param verifiedAgainst the step of that snapshot (0 when none)
 * @param millis          time taken, restore and check included
 */
public record VerifiedRollback(Rollback rollback, Restored restored, String digest, Boolean verified,
    long verifiedAgainst, long millis) {

  /**
   * @param checkpoint the checkpoint rolled back to (its offsets are used), or null for a step
   * @param model      a model fresh from the base (its parameters hold the base values)
   * @param configOf   the config each stored run config replays with
   */
  static VerifiedRollback run(ModelStore store, long step, Checkpoint checkpoint, LossModel model,
      Function<String, MezoConfig> configOf, PerturbationKernel kernel) {
    long started = System.nanoTime();
    Restored restored = store.restore(step, model, configOf, kernel);
    ParameterSet params = model.parameters();
    String digest = params.digest();
    Boolean verified = null;
    long next = store.snapshotStepAfter(step);
    if (next > 0) {
      float[] atStep = params.toArray();
      store.steps(step + 1, next).forEach(restored.trainer()::replay);
      Snapshot expected = store.snapshotAtOrBefore(next).orElseThrow();
      verified = Arrays.equals(params.toArray(), expected.values());
      params.load(atStep);
      if (!verified) {
        throw new StoreCorruptedException("replaying from step " + step + " does not reproduce the snapshot of step "
            + next + ": the store is inconsistent; nothing was rolled back");
      }
    }
    Rollback rb = checkpoint == null ? store.rollbackTo(step) : store.rollbackTo(checkpoint);
    if (step > 0 && restored.replayed() > 0) {
      store.putSnapshot(step, params.floats());
    }
    return new VerifiedRollback(rb, restored, digest, verified, verified == null ? 0 : next,
        (System.nanoTime() - started) / 1_000_000);
  }
}
