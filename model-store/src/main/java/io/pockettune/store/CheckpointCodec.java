package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Layout of the {@code checkpoints} column family.
 *
 * <pre>
 * key    8 bytes  checkpoint id, big-endian (ids start at 1)
 * value  1 byte   format version (2; version 1 lacks the last field)
 *        8 bytes  step
 *        8 bytes  time marked, epoch milliseconds
 *        string   label (length -1: none)
 *        4 bytes  number of offsets, then for each:
 *                   string topic, 4 bytes partition, 8 bytes next offset
 *        4 bytes  number of metrics, then for each:
 *                   string name, 8 bytes value (raw IEEE-754 bits of the double)
 *        4 bytes  perturbation kernel version
 *        string   base model hash
 *        string   trainable layout
 *        string   run config
 *        8 bytes  branch: 0 on the live trajectory, else the id of the branch a rollback moved
 *                 the checkpoint's step to (see {@link BranchCodec})
 * </pre>
 *
 * Strings are a 4-byte big-endian length then UTF-8 (see {@link Encoding}). The identity is copied
 * into every checkpoint, although the store holds it too, so that an exported or listed checkpoint
 * explains itself even after the run config has changed.
 */
final class CheckpointCodec {
  static final int VERSION = 2;

  private CheckpointCodec() {}

  static byte[] key(long id) {
    return Encoding.longKey(id);
  }

  static long id(byte[] key) {
    return Encoding.fromLongKey(key, "a checkpoint");
  }

  static byte[] encode(Checkpoint c) {
    byte[] label = Encoding.utf8(c.label());
    List<byte[]> topics = new ArrayList<>();
    List<byte[]> names = new ArrayList<>();
    int size = 1 + Long.BYTES + Long.BYTES + Encoding.stringSize(label);
    size += Integer.BYTES;
    for (SourcePartition p : c.offsets().keySet()) {
      byte[] topic = Encoding.utf8(p.topic());
      topics.add(topic);
      size += Encoding.stringSize(topic) + Integer.BYTES + Long.BYTES;
    }
    size += Integer.BYTES;
    for (String name : c.metrics().keySet()) {
      byte[] utf8 = Encoding.utf8(name);
      names.add(utf8);
      size += Encoding.stringSize(utf8) + Double.BYTES;
    }
    RunIdentity id = c.identity();
    byte[] hash = Encoding.utf8(id.baseModelHash());
    byte[] layout = Encoding.utf8(id.trainableLayout());
    byte[] config = Encoding.utf8(id.runConfig());
    size += Integer.BYTES + Encoding.stringSize(hash) + Encoding.stringSize(layout)
        + Encoding.stringSize(config) + Long.BYTES;

    ByteBuffer out = ByteBuffer.allocate(size);
    out.put((byte) VERSION).putLong(c.step()).putLong(c.time().toEpochMilli());
    Encoding.putString(out, label);
    out.putInt(c.offsets().size());
    int i = 0;
    for (Map.Entry<SourcePartition, Long> e : c.offsets().entrySet()) {
      Encoding.putString(out, topics.get(i++));
      out.putInt(e.getKey().partition()).putLong(e.getValue());
    }
    out.putInt(c.metrics().size());
    i = 0;
    for (Map.Entry<String, Double> e : c.metrics().entrySet()) {
      Encoding.putString(out, names.get(i++));
      out.putLong(Double.doubleToRawLongBits(e.getValue()));
    }
    out.putInt(id.kernelVersion());
    Encoding.putString(out, hash);
    Encoding.putString(out, layout);
    Encoding.putString(out, config);
    out.putLong(c.branch());
    assert !out.hasRemaining() : "size computed wrong";
    return out.array();
  }

  static Checkpoint decode(long id, byte[] value) {
    String what = "checkpoint " + id;
    boolean v1 = value.length > 0 && value[0] == 1;
    ByteBuffer in = v1 ? Encoding.open(value, 1, what) : Encoding.open(value, VERSION, what);
    try {
      long step = in.getLong();
      Instant time = Instant.ofEpochMilli(in.getLong());
      String label = Encoding.getString(in, what);
      int offsetCount = count(in, what);
      Map<SourcePartition, Long> offsets = new HashMap<>();
      for (int k = 0; k < offsetCount; k++) {
        String topic = requireString(Encoding.getString(in, what), what);
        offsets.put(new SourcePartition(topic, in.getInt()), in.getLong());
      }
      int metricCount = count(in, what);
      Map<String, Double> metrics = new HashMap<>();
      for (int k = 0; k < metricCount; k++) {
        String name = requireString(Encoding.getString(in, what), what);
        metrics.put(name, Double.longBitsToDouble(in.getLong()));
      }
      int kernel = in.getInt();
      String hash = requireString(Encoding.getString(in, what), what);
      String layout = requireString(Encoding.getString(in, what), what);
      String config = requireString(Encoding.getString(in, what), what);
      long branch = v1 ? 0 : in.getLong();
      Encoding.expectEnd(in, what);
      return new Checkpoint(id, step, offsets, label, metrics, time,
          new RunIdentity(hash, kernel, layout, config), branch);
    } catch (BufferUnderflowException e) {
      throw Encoding.truncated(what, e);
    } catch (IllegalArgumentException e) {
      throw new StoreCorruptedException(what + " holds an invalid field (" + e.getMessage()
          + "): the store is damaged", e);
    }
  }

  private static int count(ByteBuffer in, String what) {
    int n = in.getInt();
    if (n < 0 || n > in.remaining()) {
      throw new StoreCorruptedException(
          what + " claims " + n + " entries in " + in.remaining() + " bytes: the store is damaged");
    }
    return n;
  }

  private static String requireString(String s, String what) {
    if (s == null) {
      throw new StoreCorruptedException(what + " has a missing string: the store is damaged");
    }
    return s;
  }
}
