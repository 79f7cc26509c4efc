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
 * @param forgotten true once {@code forget} deleted the branch's steps because they had learned
 *                  from a forgotten event: its checkpoints are superseded and cannot be restored
 */
public record Branch(long id, long forkStep, long firstStep, long lastStep, Instant time, boolean forgotten) {

  /** A branch that still holds its steps. */
  public Branch(long id, long forkStep, long firstStep, long lastStep, Instant time) {
    this(id, forkStep, firstStep, lastStep, time, false);
  }

  /** @return the number of steps on the branch */
  public long steps() {
    return lastStep - firstStep + 1;
  }
}
