package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Layout of the source-partition dictionary in the {@code meta} column family. Step records name
 * partitions by a small index instead of their topic name, so that a step with its offsets stays
 * within 64 bytes; an index is assigned the first time a commit names the partition, in the same
 * write batch as that commit, and never changes.
 *
 * <pre>
 * key "partition/" (ASCII) + 4 bytes: index, big-endian, from 0
 * value  1 byte   format version (1)
 *        string   topic
 *        4 bytes  partition
 * </pre>
 */
final class PartitionCodec {
  static final int VERSION = 1;
  private static final byte[] PREFIX = "partition/".getBytes(StandardCharsets.US_ASCII);

  private PartitionCodec() {}

  static byte[] key(int index) {
    return ByteBuffer.allocate(PREFIX.length + Integer.BYTES).put(PREFIX).putInt(index).array();
  }

  static byte[] firstKey() {
    return key(0);
  }

  /** @return the index of a dictionary key, or -1 if {@code key} is not one */
  static int index(byte[] key) {
    if (key.length != PREFIX.length + Integer.BYTES
        || !Arrays.equals(key, 0, PREFIX.length, PREFIX, 0, PREFIX.length)) {
      return -1;
    }
    return ByteBuffer.wrap(key, PREFIX.length, Integer.BYTES).getInt();
  }

  static byte[] encode(SourcePartition p) {
    byte[] topic = Encoding.utf8(p.topic());
    ByteBuffer out = ByteBuffer.allocate(1 + Encoding.stringSize(topic) + Integer.BYTES);
    out.put((byte) VERSION);
    Encoding.putString(out, topic);
    return out.putInt(p.partition()).array();
  }

  static SourcePartition decode(int index, byte[] value) {
    String what = "source partition #" + index;
    ByteBuffer in = Encoding.open(value, VERSION, what);
    try {
      String topic = Encoding.getString(in, what);
      int partition = in.getInt();
      Encoding.expectEnd(in, what);
      if (topic == null || topic.isEmpty() || partition < 0) {
        throw new StoreCorruptedException(what + " names no valid partition: the store is damaged");
      }
      return new SourcePartition(topic, partition);
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }
}
