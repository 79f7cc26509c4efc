package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * Layout of the {@code offsets} column family: the next offset to read per source partition, as of
 * the last committed step (it is written in the same batch as the step).
 *
 * <pre>
 * key    2 bytes  length n of the topic name in UTF-8, big-endian unsigned
 *        n bytes  topic name, UTF-8
 *        4 bytes  partition, big-endian
 * value  1 byte   format version (1)
 *        8 bytes  next offset to read, big-endian
 * </pre>
 *
 * The length prefix keeps keys unambiguous whatever characters a topic name holds.
 */
final class OffsetCodec {
  static final int VERSION = 1;
  private static final int MAX_TOPIC_BYTES = 0xFFFF;

  private OffsetCodec() {}

  static byte[] key(SourcePartition p) {
    byte[] topic = Encoding.utf8(p.topic());
    if (topic.length > MAX_TOPIC_BYTES) {
      throw new IllegalArgumentException(
          "topic name of " + topic.length + " bytes is longer than " + MAX_TOPIC_BYTES);
    }
    return ByteBuffer.allocate(Short.BYTES + topic.length + Integer.BYTES)
        .putShort((short) topic.length)
        .put(topic)
        .putInt(p.partition())
        .array();
  }

  static SourcePartition partition(byte[] key) {
    String what = "an offset key";
    try {
      ByteBuffer in = ByteBuffer.wrap(key);
      byte[] topic = new byte[Short.toUnsignedInt(in.getShort())];
      in.get(topic);
      int partition = in.getInt();
      Encoding.expectEnd(in, what);
      if (topic.length == 0 || partition < 0) {
        throw new StoreCorruptedException(what + " names no valid partition: the store is damaged");
      }
      return new SourcePartition(new String(topic, StandardCharsets.UTF_8), partition);
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }

  static byte[] encode(long nextOffset) {
    assert nextOffset >= 0 : "negative offset " + nextOffset;
    return ByteBuffer.allocate(1 + Long.BYTES).put((byte) VERSION).putLong(nextOffset).array();
  }

  static long decode(SourcePartition p, byte[] value) {
    String what = "the committed offset of " + p;
    ByteBuffer in = Encoding.open(value, VERSION, what);
    try {
      long offset = in.getLong();
      Encoding.expectEnd(in, what);
      return offset;
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }
}
