package io.pockettune.store;

/**
 * The trainable values at one step, decoded and checksum-verified. Restoring the model at step n is
 * loading the snapshot at or before n and replaying the step records after it.
 */
public final class Snapshot {
  private final long step;
  private final float[] values;

  Snapshot(long step, float[] values) {
    this.step = step;
    this.values = values;
  }

  /** @return the step the values are the state after (0: the base model) */
  public long step() {
    return step;
  }

  /**
   * @return the values, in parameter-buffer order; the array belongs to the caller (the store keeps
   *     no reference), so it can be loaded into a parameter set without a copy
   */
  public float[] values() {
    return values;
  }

  @Override
  public String toString() {
    return "Snapshot[step=" + step + ", floats=" + values.length + "]";
  }
}
