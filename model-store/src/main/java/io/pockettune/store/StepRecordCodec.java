package io.pockettune.store;

import io.pockettune.trainer.StepRecord;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.TreeMap;

/**
 * Layout of the {@code steps} column family (and of the step values kept in {@code branches}): one
 * entry per committed step, the whole of what replay needs plus the source offsets the step
 * committed, small enough that tens of thousands of steps cost a few megabytes.
 *
 * <pre>
 * key    8 bytes   step number, big-endian (steps start at 1): bytewise order is step order
 * value  big-endian
 *   offset size  field
 *        0    1  format version: 2 for a MeZO record, 3 for an FZOO record (one with
 *                coefficients); version 1 is the same 41 bytes without the offsets
 *        1    8  seed of the direction z (FZOO: from which the N direction seeds derive)
 *        9    4  projected gradient g        } float32 as raw IEEE-754 bits
 *       13    4  learning rate               } (floatToRawIntBits: NaN payloads
 *       17    4  eps                         }  and negative zero survive, so
 *       21    4  loss at theta + eps z (L+)  }  replay is bit-exact)
 *       25    4  loss at theta - eps z (L-)  }
 *       29    4  batch size
 *       33    8  time the step finished, epoch milliseconds
 *   version 2:
 *       41    v  number n of partitions the commit named (unsigned LEB128 varint)
 *             n times: varint partition index (see {@link PartitionCodec}), varint next offset
 *   version 3:
 *       41    v  number c of coefficients, c >= 1 (unsigned LEB128 varint)
 *             c times: 4 bytes, coefficient c_i as float32 raw IEEE-754 bits, i = 1..c
 *             then the offsets exactly as in version 2: varint n, n times (index, next offset)
 * </pre>
 *
 * The step number lives only in the key. A record without coefficients is always written as
 * version 2, so MeZO stores stay byte-identical to those of earlier PocketTune versions; only FZOO
 * records take version 3. The offsets are the same ones {@link OffsetCodec} keeps as "current":
 * repeating them in the record is what lets a rollback to ANY step move the source back with the
 * model, for a few bytes (a demo step with three partitions at offsets below 2^21 is at most 54
 * bytes; an FZOO step with 8 coefficients adds 33, at most 87). Offsets are absolute, not deltas,
 * so every record stands alone: the offsets at step n are, per partition, those of the latest
 * record at or before n that names it.
 */
final class StepRecordCodec {
  /** Version of a record without coefficients (MeZO). */
  static final int VERSION_MEZO = 2;
  /** Version of a record with coefficients (FZOO). */
  static final int VERSION_FZOO = 3;
  /** Size of the fixed part, which is the whole of a version-1 value. */
  static final int FIXED_SIZE = 41;

  private StepRecordCodec() {}

  static byte[] key(long step) {
    return Encoding.longKey(step);
  }

  static long step(byte[] key) {
    return Encoding.fromLongKey(key, "a step record");
  }

  /** @return the value of a step that names no partition */
  static byte[] encode(StepRecord r) {
    return encode(r, Map.of());
  }

  /**
   * @param offsets next offset per partition index, as named by the commit
   * @throws IllegalArgumentException if the record holds an empty coefficient array, which no
   *     version can keep (version 2 would read it back as null)
   */
  static byte[] encode(StepRecord r, Map<Integer, Long> offsets) {
    float[] coefficients = r.coefficients();
    if (coefficients != null && coefficients.length == 0) {
      throw new IllegalArgumentException("step " + r.step()
          + " holds an empty coefficient array: an FZOO record needs at least one coefficient,"
          + " a MeZO record none (null)");
    }
    int size = FIXED_SIZE + Varint.size(offsets.size());
    if (coefficients != null) {
      size += Varint.size(coefficients.length) + Float.BYTES * coefficients.length;
    }
    for (Map.Entry<Integer, Long> e : offsets.entrySet()) {
      size += Varint.size(e.getKey()) + Varint.size(e.getValue());
    }
    ByteBuffer out = ByteBuffer.allocate(size)
        .put((byte) (coefficients == null ? VERSION_MEZO : VERSION_FZOO))
        .putLong(r.seed())
        .putInt(Float.floatToRawIntBits(r.projectedGradient()))
        .putInt(Float.floatToRawIntBits(r.learningRate()))
        .putInt(Float.floatToRawIntBits(r.eps()))
        .putInt(Float.floatToRawIntBits(r.lossPlus()))
        .putInt(Float.floatToRawIntBits(r.lossMinus()))
        .putInt(r.batchSize())
        .putLong(r.timeMillis());
    if (coefficients != null) {
      Varint.put(out, coefficients.length);
      for (float c : coefficients) {
        out.putInt(Float.floatToRawIntBits(c));
      }
    }
    Varint.put(out, offsets.size());
    for (Map.Entry<Integer, Long> e : offsets.entrySet()) {
      Varint.put(out, e.getKey());
      Varint.put(out, e.getValue());
    }
    assert !out.hasRemaining() : "size computed wrong";
    return out.array();
  }

  static StepRecord decode(long step, byte[] value) {
    String what = "the record of step " + step;
    ByteBuffer in = open(value, what);
    try {
      long seed = in.getLong();
      float projectedGradient = Float.intBitsToFloat(in.getInt());
      float learningRate = Float.intBitsToFloat(in.getInt());
      float eps = Float.intBitsToFloat(in.getInt());
      float lossPlus = Float.intBitsToFloat(in.getInt());
      float lossMinus = Float.intBitsToFloat(in.getInt());
      int batchSize = in.getInt();
      long timeMillis = in.getLong();
      float[] coefficients = null;
      if (value[0] == VERSION_FZOO) {
        coefficients = new float[coefficientCount(in, what)];
        for (int i = 0; i < coefficients.length; i++) {
          coefficients[i] = Float.intBitsToFloat(in.getInt());
        }
        if (!in.hasRemaining()) {
          // The offsets' count must follow; decodeOffsets checks the rest.
          throw new StoreCorruptedException(
              what + " ends after its coefficients, without its offsets: the store is damaged");
        }
      }
      return new StepRecord(step, seed, projectedGradient, learningRate, eps, lossPlus, lossMinus,
          batchSize, timeMillis, coefficients);
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }

  /**
   * @return next offset per partition index named by the step's commit, sorted; null for a
   *     version-1 record, which did not keep them
   */
  static Map<Integer, Long> decodeOffsets(long step, byte[] value) {
    String what = "the record of step " + step;
    ByteBuffer in = open(value, what);
    if (value[0] == 1) {
      return null;
    }
    in.position(FIXED_SIZE);
    try {
      if (value[0] == VERSION_FZOO) {
        int c = coefficientCount(in, what);
        in.position(in.position() + Float.BYTES * c);
      }
      long n = Varint.get(in, what);
      if (n > in.remaining()) {
        throw new StoreCorruptedException(what + " claims " + n + " offsets: the store is damaged");
      }
      Map<Integer, Long> out = new TreeMap<>();
      for (long i = 0; i < n; i++) {
        long index = Varint.get(in, what);
        if (index > Integer.MAX_VALUE) {
          throw new StoreCorruptedException(what + " names partition index " + index
              + ": the store is damaged");
        }
        out.put((int) index, Varint.get(in, what));
      }
      Encoding.expectEnd(in, what);
      return out;
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }

  /**
   * Reads a version-3 record's coefficient count, positioned at {@link #FIXED_SIZE}, and checks
   * that the coefficients fit in what remains; leaves {@code in} at the first coefficient.
   */
  private static int coefficientCount(ByteBuffer in, String what) {
    long n = Varint.get(in, what);
    if (n < 1) {
      throw new StoreCorruptedException(
          what + " is format version 3 but claims no coefficients: the store is damaged");
    }
    if (n > in.remaining() / Float.BYTES) {
      throw new StoreCorruptedException(what + " claims " + n + " coefficients but only "
          + in.remaining() + " bytes follow, room for at most " + in.remaining() / Float.BYTES
          + ": the store is damaged");
    }
    return (int) n;
  }

  /** Checks the version and the length; positions after the version byte. */
  private static ByteBuffer open(byte[] value, String what) {
    if (value.length == 0) {
      throw new StoreCorruptedException(what + " is empty: the store is damaged");
    }
    int version = Byte.toUnsignedInt(value[0]);
    if (version != 1 && version != VERSION_MEZO && version != VERSION_FZOO) {
      throw new StoreException(
          what + " has format version " + version + " but this PocketTune reads only versions 1, "
              + VERSION_MEZO + " and " + VERSION_FZOO
              + ": open the store with the PocketTune version that wrote it");
    }
    if (version == 1 ? value.length != FIXED_SIZE : value.length <= FIXED_SIZE) {
      throw new StoreCorruptedException(
          what + " is " + value.length + " bytes, which format version " + version
              + " does not allow: the store is damaged");
    }
    ByteBuffer in = ByteBuffer.wrap(value);
    in.get();
    return in;
  }
}
