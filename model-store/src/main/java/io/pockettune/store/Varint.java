package io.pockettune.store;

import java.nio.ByteBuffer;

/** Unsigned LEB128 varints of non-negative longs (7 bits per byte, low bits first), as protobuf. */
final class Varint {
  private Varint() {}

  static int size(long v) {
    assert v >= 0 : "negative varint " + v;
    int n = 1;
    while ((v >>>= 7) != 0) {
      n++;
    }
    return n;
  }

  static void put(ByteBuffer out, long v) {
    assert v >= 0 : "negative varint " + v;
    while ((v & ~0x7FL) != 0) {
      out.put((byte) ((v & 0x7F) | 0x80));
      v >>>= 7;
    }
    out.put((byte) v);
  }

  static long get(ByteBuffer in, String what) {
    long v = 0;
    for (int shift = 0; shift < 63; shift += 7) {
      byte b = in.get();
      v |= (long) (b & 0x7F) << shift;
      if (b >= 0) {
        return v;
      }
    }
    throw new StoreCorruptedException(what + " holds a varint longer than 9 bytes: the store is damaged");
  }
}
