package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/**
 * Conventions shared by every codec of the store. All numbers are big-endian. Numeric keys are
 * 8-byte big-endian, so RocksDB's bytewise (unsigned lexicographic) comparator orders non-negative
 * numbers numerically. Every value starts with one format-version byte, so a later PocketTune can
 * change a layout and an older one refuses what it cannot read instead of misreading it. Strings
 * are a 4-byte length (-1 for null) followed by UTF-8 bytes. RocksDB checksums every block and WAL
 * record itself, so values other than snapshots carry no checksum of their own.
 */
final class Encoding {
  private Encoding() {}

  /** @return {@code n} as an 8-byte big-endian key */
  static byte[] longKey(long n) {
    assert n >= 0 : "negative key " + n;
    return ByteBuffer.allocate(Long.BYTES).putLong(n).array();
  }

  /** @return the number in an 8-byte key written by {@link #longKey} */
  static long fromLongKey(byte[] key, String what) {
    if (key.length != Long.BYTES) {
      throw new StoreCorruptedException(
          "a key of " + what + " is " + key.length + " bytes instead of 8: the store is damaged");
    }
    return ByteBuffer.wrap(key).getLong();
  }

  /** Reads the leading version byte and refuses any version other than {@code supported}. */
  static void readVersion(ByteBuffer value, int supported, String what) {
    if (!value.hasRemaining()) {
      throw new StoreCorruptedException(what + " is empty: the store is damaged");
    }
    int version = Byte.toUnsignedInt(value.get());
    if (version != supported) {
      throw new StoreException(
          what + " has format version " + version + " but this PocketTune reads only version "
              + supported + ": open the store with the PocketTune version that wrote it");
    }
  }

  /** @return the UTF-8 bytes of {@code s}, or null for null */
  static byte[] utf8(String s) {
    return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
  }

  /** @return bytes taken by a string written with {@link #putString} */
  static int stringSize(byte[] utf8) {
    return Integer.BYTES + (utf8 == null ? 0 : utf8.length);
  }

  static void putString(ByteBuffer out, byte[] utf8) {
    if (utf8 == null) {
      out.putInt(-1);
    } else {
      out.putInt(utf8.length).put(utf8);
    }
  }

  /** @return the string, or null if null was written */
  static String getString(ByteBuffer in, String what) {
    int length = in.getInt();
    if (length == -1) {
      return null;
    }
    if (length < 0 || length > in.remaining()) {
      throw new StoreCorruptedException(
          what + " holds a string of " + length + " bytes where " + in.remaining()
              + " remain: the store is damaged");
    }
    byte[] bytes = new byte[length];
    in.get(bytes);
    return new String(bytes, StandardCharsets.UTF_8);
  }

  /** @return {@code value} wrapped for reading, after its version byte */
  static ByteBuffer open(byte[] value, int supported, String what) {
    ByteBuffer in = ByteBuffer.wrap(value);
    readVersion(in, supported, what);
    return in;
  }

  /** Fails unless every byte of {@code in} was consumed. */
  static void expectEnd(ByteBuffer in, String what) {
    if (in.hasRemaining()) {
      throw new StoreCorruptedException(
          what + " has " + in.remaining() + " unexpected trailing bytes: the store is damaged");
    }
  }

  /** A value shorter than its layout. */
  static StoreCorruptedException truncated(String what, BufferUnderflowException e) {
    return new StoreCorruptedException(what + " is truncated: the store is damaged", e);
  }
}
