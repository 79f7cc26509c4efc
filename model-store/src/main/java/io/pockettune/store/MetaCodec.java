package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Layout of the {@code meta} column family: the run identity the store was created for, and the
 * history of run configs.
 *
 * <pre>
 * key "identity" (ASCII)
 * value  1 byte   format version (1)
 *        4 bytes  perturbation kernel version
 *        string   base model hash
 *        string   trainable layout
 *        string   run config (the latest one)
 *
 * key "run-config/" (ASCII) + 8 bytes: first step the config applies to, big-endian
 * value  1 byte   format version (1)
 *        8 bytes  time it was recorded, epoch milliseconds
 *        string   run config
 * </pre>
 *
 * Strings are a 4-byte big-endian length then UTF-8 (see {@link Encoding}). A run-config entry is
 * written when the store is created and whenever a run opens it with a different config, keyed by
 * the next step that run will commit, so the config that produced step n is the entry at or before
 * n.
 */
final class MetaCodec {
  static final int VERSION = 1;
  static final byte[] IDENTITY_KEY = "identity".getBytes(StandardCharsets.US_ASCII);
  private static final byte[] RUN_CONFIG_PREFIX = "run-config/".getBytes(StandardCharsets.US_ASCII);

  private MetaCodec() {}

  static byte[] encodeIdentity(RunIdentity id) {
    byte[] hash = Encoding.utf8(id.baseModelHash());
    byte[] layout = Encoding.utf8(id.trainableLayout());
    byte[] config = Encoding.utf8(id.runConfig());
    ByteBuffer out =
        ByteBuffer.allocate(
            1 + Integer.BYTES
                + Encoding.stringSize(hash)
                + Encoding.stringSize(layout)
                + Encoding.stringSize(config));
    out.put((byte) VERSION).putInt(id.kernelVersion());
    Encoding.putString(out, hash);
    Encoding.putString(out, layout);
    Encoding.putString(out, config);
    return out.array();
  }

  static RunIdentity decodeIdentity(byte[] value) {
    String what = "the run identity";
    ByteBuffer in = Encoding.open(value, VERSION, what);
    try {
      int kernel = in.getInt();
      String hash = Encoding.getString(in, what);
      String layout = Encoding.getString(in, what);
      String config = Encoding.getString(in, what);
      Encoding.expectEnd(in, what);
      if (hash == null || hash.isBlank() || layout == null || config == null || kernel < 0) {
        throw new StoreCorruptedException(what + " has missing fields: the store is damaged");
      }
      return new RunIdentity(hash, kernel, layout, config);
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }

  static byte[] runConfigKey(long firstStep) {
    return ByteBuffer.allocate(RUN_CONFIG_PREFIX.length + Long.BYTES)
        .put(RUN_CONFIG_PREFIX)
        .putLong(firstStep)
        .array();
  }

  /** @return the first step of a run-config key, or -1 if {@code key} is not one */
  static long runConfigStep(byte[] key) {
    if (key.length != RUN_CONFIG_PREFIX.length + Long.BYTES
        || !Arrays.equals(key, 0, RUN_CONFIG_PREFIX.length, RUN_CONFIG_PREFIX, 0, RUN_CONFIG_PREFIX.length)) {
      return -1;
    }
    return ByteBuffer.wrap(key, RUN_CONFIG_PREFIX.length, Long.BYTES).getLong();
  }

  static byte[] encodeRunConfig(long timeMillis, String runConfig) {
    byte[] config = Encoding.utf8(runConfig);
    ByteBuffer out = ByteBuffer.allocate(1 + Long.BYTES + Encoding.stringSize(config));
    out.put((byte) VERSION).putLong(timeMillis);
    Encoding.putString(out, config);
    return out.array();
  }

  /** @return the run config of an entry written by {@link #encodeRunConfig} */
  static String decodeRunConfig(long firstStep, byte[] value) {
    String what = "the run config recorded at step " + firstStep;
    ByteBuffer in = Encoding.open(value, VERSION, what);
    try {
      in.getLong();
      String config = Encoding.getString(in, what);
      Encoding.expectEnd(in, what);
      if (config == null) {
        throw new StoreCorruptedException(what + " is null: the store is damaged");
      }
      return config;
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    }
  }
}
