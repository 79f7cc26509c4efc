package io.pockettune.store;

import io.pockettune.trainer.StepRecord;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;

/**
 * Layout of the {@code steps} column family: one entry per committed step, the whole of what replay
 * needs, small enough that tens of thousands of steps cost a few megabytes.
 *
 * <pre>
 * key    8 bytes   step number, big-endian (steps start at 1): bytewise order is step order
 * value 41 bytes   big-endian
 *   offset size  field
 *        0    1  format version (1)
 *        1    8  seed of the direction z
 *        9    4  projected gradient g        } float32 as raw IEEE-754 bits
 *       13    4  learning rate               } (floatToRawIntBits: NaN payloads
 *       17    4  eps                         }  and negative zero survive, so
 *       21    4  loss at theta + eps z (L+)  }  replay is bit-exact)
 *       25    4  loss at theta - eps z (L-)  }
 *       29    4  batch size
 *       33    8  time the step finished, epoch milliseconds
 * </pre>
 *
 * The step number lives only in the key.
 */
final class StepRecordCodec {
  static final int VERSION = 1;
  static final int VALUE_SIZE = 41;

  private StepRecordCodec() {}

  static byte[] key(long step) {
    return Encoding.longKey(step);
  }

  static long step(byte[] key) {
    return Encoding.fromLongKey(key, "a step record");
  }

  static byte[] encode(StepRecord r) {
    return ByteBuffer.allocate(VALUE_SIZE)
        .put((byte) VERSION)
        .putLong(r.seed())
        .putInt(Float.floatToRawIntBits(r.projectedGradient()))
        .putInt(Float.floatToRawIntBits(r.learningRate()))
        .putInt(Float.floatToRawIntBits(r.eps()))
        .putInt(Float.floatToRawIntBits(r.lossPlus()))
        .putInt(Float.floatToRawIntBits(r.lossMinus()))
        .putInt(r.batchSize())
        .putLong(r.timeMillis())
        .array();
  }

  static StepRecord decode(long step, byte[] value) {
    String what = "the record of step " + step;
    ByteBuffer in = Encoding.open(value, VERSION, what);
    if (value.length != VALUE_SIZE) {
      throw new StoreCorruptedException(
          what + " is " + value.length + " bytes instead of " + VALUE_SIZE
              + ": the store is damaged");
    }
    try {
      return new StepRecord(
          step,
          in.getLong(),
          Float.intBitsToFloat(in.getInt()),
          Float.intBitsToFloat(in.getInt()),
          Float.intBitsToFloat(in.getInt()),
          Float.intBitsToFloat(in.getInt()),
          Float.intBitsToFloat(in.getInt()),
          in.getInt(),
          in.getLong());
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }
}
