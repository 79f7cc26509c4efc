package io.pockettune.store;

import java.time.Instant;

/**
 * Steps a rollback took off the live trajectory, kept until {@link ModelStore#prune}. The live
 * trajectory keeps steps 1 to {@code forkStep}; this branch holds {@code firstStep} (= forkStep + 1)
 * to {@code lastStep} as they were, with the checkpoints marked on them.
 *
 * @param id        sequential id, starting at 1
 * @param forkStep  the step rolled back to
 * @param firstStep first abandoned step
 * @param lastStep  last abandoned step
 * @param time      when the rollback happened
 */
public record Branch(long id, long forkStep, long firstStep, long lastStep, Instant time) {
  /** @return the number of steps on the branch */
  public long steps() {
    return lastStep - firstStep + 1;
  }
}
