package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.Arrays;

/**
 * Layouts of abandoned branches: their steps in the {@code branches} column family, their
 * description in {@code meta}.
 *
 * <pre>
 * branches
 *   key    8 bytes  branch id, big-endian (from 1)
 *          8 bytes  step, big-endian
 *   value  the step's value from the steps family, unchanged ({@link StepRecordCodec})
 *
 * meta
 *   key "branch/" (ASCII) + 8 bytes: branch id, big-endian
 *   value  1 byte   format version (2; version 1 lacks the last byte)
 *          8 bytes  fork step (the step rolled back to)
 *          8 bytes  first abandoned step
 *          8 bytes  last abandoned step
 *          8 bytes  time of the rollback, epoch milliseconds
 *          1 byte   1 when forget deleted the branch's steps, else 0
 * </pre>
 *
 * A rollback moves the steps, rewrites the checkpoints on them (see {@link CheckpointCodec}), and
 * writes this description in the same write batch, so a branch is always whole or absent.
 */
final class BranchCodec {
  static final int VERSION = 2;
  private static final byte[] PREFIX = "branch/".getBytes(StandardCharsets.US_ASCII);

  private BranchCodec() {}

  static byte[] stepKey(long branch, long step) {
    assert branch >= 1 && step >= 0 : "branch " + branch + " step " + step;
    return ByteBuffer.allocate(2 * Long.BYTES).putLong(branch).putLong(step).array();
  }

  static long branchOf(byte[] stepKey) {
    if (stepKey.length != 2 * Long.BYTES) {
      throw new StoreCorruptedException(
          "a branch step key is " + stepKey.length + " bytes instead of 16: the store is damaged");
    }
    return ByteBuffer.wrap(stepKey).getLong();
  }

  static byte[] metaKey(long branch) {
    return ByteBuffer.allocate(PREFIX.length + Long.BYTES).put(PREFIX).putLong(branch).array();
  }

  /** @return the branch id of a meta key, or -1 if {@code key} is not a branch key */
  static long metaBranch(byte[] key) {
    if (key.length != PREFIX.length + Long.BYTES
        || !Arrays.equals(key, 0, PREFIX.length, PREFIX, 0, PREFIX.length)) {
      return -1;
    }
    return ByteBuffer.wrap(key, PREFIX.length, Long.BYTES).getLong();
  }

  static byte[] encode(Branch b) {
    return ByteBuffer.allocate(2 + 4 * Long.BYTES)
        .put((byte) VERSION)
        .putLong(b.forkStep())
        .putLong(b.firstStep())
        .putLong(b.lastStep())
        .putLong(b.time().toEpochMilli())
        .put((byte) (b.forgotten() ? 1 : 0))
        .array();
  }

  static Branch decode(long id, byte[] value) {
    String what = "branch " + id;
    ByteBuffer in = ByteBuffer.wrap(value);
    int version = value.length == 0 ? -1 : Byte.toUnsignedInt(value[0]);
    Encoding.readVersion(in, version == 1 ? 1 : VERSION, what);
    try {
      long fork = in.getLong();
      long first = in.getLong();
      long last = in.getLong();
      Instant time = Instant.ofEpochMilli(in.getLong());
      Branch b = new Branch(id, fork, first, last, time, version == 1 ? false : in.get() == 1);
      Encoding.expectEnd(in, what);
      return b;
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }
}
