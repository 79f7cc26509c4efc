package io.pockettune.pipeline;

import io.pockettune.trainer.StepRecord;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;

/**
 * One step of a user's trajectory as the fleet job publishes it (the value of a record keyed by the
 * user on the trajectory topic) and a device pulls it: the step record that replays the step, and
 * the fingerprint of the user's values after it ({@link UserTrainer#fingerprint}), so that the
 * device checks, step by step, that its replay reproduces the job's values bit for bit.
 *
 * <p>The encoding is fixed-width, big-endian, 59 bytes for a MeZO step: a version byte (1), step,
 * seed (8 bytes each), projected gradient, learning rate, eps, the two losses (4 each), batch size
 * (4), time (8), fingerprint (8), and the count of FZOO coefficients (2) followed by each (4).
 *
 * @param record      the step
 * @param fingerprint the first 8 bytes of the SHA-256 of the user's values after the step
 */
public record TrajectoryEntry(StepRecord record, long fingerprint) {
  /** The topic the fleet job publishes to unless told otherwise. */
  public static final String DEFAULT_TOPIC = "pockettune-trajectories";

  /**
   * The header that the entry of a user's step 1 carries: the run config (JSON, as
   * {@link UserTrainer#runConfig()} gives it), which a device pulling the trajectory records in its
   * store, so that its replay and any training it does next run under the job's settings.
   */
  public static final String RUN_CONFIG_HEADER = "pockettune.run-config";

  static final byte VERSION = 1;
  static final int FIXED_BYTES = 1 + 8 + 8 + 4 * 5 + 4 + 8 + 8 + 2;

  /** @return the entry's encoding */
  public byte[] encode() {
    float[] c = record.coefficients();
    int n = c == null ? 0 : c.length;
    ByteBuffer b = ByteBuffer.allocate(FIXED_BYTES + 4 * n);
    b.put(VERSION).putLong(record.step()).putLong(record.seed()).putFloat(record.projectedGradient())
        .putFloat(record.learningRate()).putFloat(record.eps()).putFloat(record.lossPlus()).putFloat(record.lossMinus())
        .putInt(record.batchSize()).putLong(record.timeMillis()).putLong(fingerprint);
    // A MeZO record (no coefficients) is -1; an FZOO record with N coefficients is N.
    b.putShort((short) (c == null ? -1 : n));
    for (int i = 0; i < n; i++) {
      b.putFloat(c[i]);
    }
    return b.array();
  }

  /**
   * Decodes one entry.
   *
   * @throws IllegalArgumentException one sentence saying what is wrong with the bytes
   */
  public static TrajectoryEntry decode(byte[] bytes) {
    if (bytes == null || bytes.length < FIXED_BYTES) {
      throw new IllegalArgumentException("a trajectory entry needs at least " + FIXED_BYTES + " bytes, this one has "
          + (bytes == null ? "none" : bytes.length) + ": the topic holds something other than PocketTune steps");
    }
    ByteBuffer b = ByteBuffer.wrap(bytes);
    byte version = b.get();
    if (version != VERSION) {
      throw new IllegalArgumentException("a trajectory entry has version " + version + ", this build reads version "
          + VERSION + ": pull with the PocketTune version the fleet job runs");
    }
    try {
      long step = b.getLong();
      long seed = b.getLong();
      float g = b.getFloat();
      float lr = b.getFloat();
      float eps = b.getFloat();
      float lossPlus = b.getFloat();
      float lossMinus = b.getFloat();
      int batch = b.getInt();
      long time = b.getLong();
      long fingerprint = b.getLong();
      int n = b.getShort();
      float[] c = null;
      if (n >= 0) {
        c = new float[n];
        for (int i = 0; i < n; i++) {
          c[i] = b.getFloat();
        }
      }
      if (b.hasRemaining()) {
        throw new IllegalArgumentException("a trajectory entry has " + b.remaining() + " bytes after its end: the topic"
            + " holds something other than PocketTune steps");
      }
      if (step < 1 || batch < 0) {
        throw new IllegalArgumentException("a trajectory entry names step " + step + " of batch size " + batch
            + ": the topic holds something other than PocketTune steps");
      }
      return new TrajectoryEntry(new StepRecord(step, seed, g, lr, eps, lossPlus, lossMinus, batch, time, c),
          fingerprint);
    } catch (BufferUnderflowException e) {
      throw new IllegalArgumentException("a trajectory entry of " + bytes.length + " bytes ends inside its"
          + " coefficients: the topic holds something other than PocketTune steps", e);
    }
  }
}
