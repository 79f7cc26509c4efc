package io.pockettune.store;

import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.zip.CRC32C;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Layout of the {@code snapshots} column family: the trainable values after a step, split into
 * chunks so that no RocksDB value, and no buffer of this codec, grows with the model.
 *
 * <pre>
 * key   8 bytes  step, big-endian (0: the base model)
 *       4 bytes  chunk index, big-endian, from 0
 * value 18-byte header, big-endian, then the payload
 *   offset size  field
 *        0    1  format version (1)
 *        1    1  payload codec: 0 = raw, 1 = byte-shuffled raw deflate
 *        2    4  number of chunks of this snapshot
 *        6    4  number of floats of the whole snapshot
 *       10    4  number of floats in this chunk
 *       14    4  CRC32C of this chunk's floats as little-endian IEEE-754 bytes
 *       18       payload
 * </pre>
 *
 * Every chunk but the last holds {@link #CHUNK_FLOATS} floats; a snapshot of no floats is one empty
 * chunk, so that it still exists. Repeating the totals in every chunk lets a reader detect a
 * missing or stale chunk.
 *
 * <p><b>Why compress here and not with RocksDB's per-column-family compression.</b> Trained float32
 * weights compress poorly byte by byte: their sign and exponent bytes repeat, their low mantissa
 * bytes are noise. Shuffling the bytes (all first bytes of the chunk, then all second bytes, ...,
 * as Blosc and HDF5 do) puts the repetitive bytes side by side, where deflate finds them; a block
 * compressor inside RocksDB only sees the interleaved bytes. Deflate (java.util.zip, fastest level,
 * raw stream without zlib's own checksum) needs no native codec, and the CRC32C over the raw bytes
 * checks decompression and storage together. A chunk that does not shrink is stored raw. The
 * column family itself is therefore uncompressed, and its large values live in RocksDB blob files so
 * that compactions do not rewrite them.
 */
final class SnapshotCodec {
  static final int VERSION = 1;
  static final int HEADER_SIZE = 18;
  /** Floats per chunk: 4 MiB of raw bytes. */
  static final int CHUNK_FLOATS = 1 << 20;
  /** A snapshot's raw bytes must fit one Java array, as the trainer's parameter buffer does. */
  static final int MAX_FLOATS = Integer.MAX_VALUE / Float.BYTES;

  static final byte RAW = 0;
  static final byte SHUFFLED_DEFLATE = 1;

  private SnapshotCodec() {}

  static byte[] key(long step, int chunk) {
    assert step >= 0 : "negative step " + step;
    return ByteBuffer.allocate(Long.BYTES + Integer.BYTES).putLong(step).putInt(chunk).array();
  }

  static long step(byte[] key) {
    checkKey(key);
    return ByteBuffer.wrap(key).getLong();
  }

  static int chunk(byte[] key) {
    checkKey(key);
    return ByteBuffer.wrap(key).getInt(Long.BYTES);
  }

  private static void checkKey(byte[] key) {
    if (key.length != Long.BYTES + Integer.BYTES) {
      throw new StoreCorruptedException(
          "a snapshot key is " + key.length + " bytes instead of 12: the store is damaged");
    }
  }

  /**
   * Encodes the floats from {@code values}' position to its limit, leaving the buffer untouched.
   *
   * @return the value of every chunk, in chunk order
   */
  static List<byte[]> encode(FloatBuffer values, int chunkFloats) {
    FloatBuffer in = values.duplicate();
    int total = in.remaining();
    if (total > MAX_FLOATS) {
      throw new IllegalArgumentException(
          "a snapshot holds at most " + MAX_FLOATS + " floats, got " + total);
    }
    int chunks = Math.max(1, (total + chunkFloats - 1) / chunkFloats);
    List<byte[]> out = new ArrayList<>(chunks);
    byte[] raw = new byte[Math.min(total, chunkFloats) * Float.BYTES];
    byte[] shuffled = new byte[raw.length];
    Deflater deflater = new Deflater(Deflater.BEST_SPEED, true);
    try {
      for (int c = 0; c < chunks; c++) {
        int n = Math.min(chunkFloats, total - c * chunkFloats);
        int bytes = n * Float.BYTES;
        FloatBuffer chunk = in.slice().limit(n);
        ByteBuffer.wrap(raw, 0, bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(chunk);
        in.position(in.position() + n);
        CRC32C crc = new CRC32C();
        crc.update(raw, 0, bytes);
        shuffle(raw, shuffled, n);
        deflater.reset();
        byte[] packed = deflate(deflater, shuffled, bytes);
        boolean compress = packed.length < bytes;
        byte[] payload = compress ? packed : raw;
        int payloadLength = compress ? packed.length : bytes;
        out.add(
            ByteBuffer.allocate(HEADER_SIZE + payloadLength)
                .put((byte) VERSION)
                .put(compress ? SHUFFLED_DEFLATE : RAW)
                .putInt(chunks)
                .putInt(total)
                .putInt(n)
                .putInt((int) crc.getValue())
                .put(payload, 0, payloadLength)
                .array());
      }
    } finally {
      deflater.end();
    }
    return out;
  }

  /** Byte j of float i goes to {@code j * n + i}. */
  private static void shuffle(byte[] raw, byte[] out, int n) {
    for (int i = 0; i < n; i++) {
      int src = i * Float.BYTES;
      out[i] = raw[src];
      out[n + i] = raw[src + 1];
      out[2 * n + i] = raw[src + 2];
      out[3 * n + i] = raw[src + 3];
    }
  }

  private static void unshuffle(byte[] shuffled, byte[] raw, int n) {
    for (int i = 0; i < n; i++) {
      int dst = i * Float.BYTES;
      raw[dst] = shuffled[i];
      raw[dst + 1] = shuffled[n + i];
      raw[dst + 2] = shuffled[2 * n + i];
      raw[dst + 3] = shuffled[3 * n + i];
    }
  }

  private static byte[] deflate(Deflater deflater, byte[] input, int length) {
    deflater.setInput(input, 0, length);
    deflater.finish();
    byte[] out = new byte[Math.max(64, length / 2)];
    int size = 0;
    while (!deflater.finished()) {
      if (size == out.length) {
        out = Arrays.copyOf(out, out.length * 2);
      }
      size += deflater.deflate(out, size, out.length - size);
    }
    return Arrays.copyOf(out, size);
  }

  /**
   * Reassembles one snapshot from its chunks, fed in key order, checking every chunk's checksum and
   * that the chunks agree with each other. Not thread-safe; close it to free the native inflater.
   */
  static final class Assembler implements AutoCloseable {
    private final long step;
    private final Inflater inflater = new Inflater(true);
    private float[] values;
    private int chunks;
    private int nextChunk;
    private int filled;
    private byte[] raw = new byte[0];
    private byte[] shuffled = new byte[1];

    Assembler(long step) {
      this.step = step;
    }

    void accept(int chunkIndex, byte[] value) {
      String what = "chunk " + chunkIndex + " of the snapshot of step " + step;
      ByteBuffer in = Encoding.open(value, VERSION, what);
      try {
        byte codec = in.get();
        int chunkCount = in.getInt();
        int total = in.getInt();
        int n = in.getInt();
        int expectedCrc = in.getInt();
        if (values == null) {
          if (chunkCount < 1 || total < 0 || total > MAX_FLOATS) {
            throw damaged(what, "has an invalid header");
          }
          values = new float[total];
          chunks = chunkCount;
        } else if (chunkCount != chunks || total != values.length) {
          throw damaged(what, "disagrees with chunk 0 on the snapshot's size");
        }
        if (chunkIndex != nextChunk) {
          throw damaged("chunk " + nextChunk + " of the snapshot of step " + step, "is missing");
        }
        if (n < 0 || n > values.length - filled) {
          throw damaged(what, "holds more floats than the snapshot");
        }
        int bytes = n * Float.BYTES;
        if (raw.length < bytes) {
          raw = new byte[bytes];
          shuffled = new byte[bytes + 1];
        }
        if (codec == RAW) {
          if (in.remaining() != bytes) {
            throw damaged(what, "has a payload of the wrong length");
          }
          in.get(raw, 0, bytes);
        } else if (codec == SHUFFLED_DEFLATE) {
          inflate(in, bytes, what);
          unshuffle(shuffled, raw, n);
        } else {
          throw damaged(what, "uses unknown payload codec " + codec);
        }
        CRC32C crc = new CRC32C();
        crc.update(raw, 0, bytes);
        if ((int) crc.getValue() != expectedCrc) {
          throw new StoreCorruptedException(
              "the snapshot of step " + step + " fails its checksum (chunk " + chunkIndex
                  + "): its bytes are damaged; restore from an earlier snapshot and replay, or"
                  + " use a backup of the data dir");
        }
        ByteBuffer.wrap(raw, 0, bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            .get(values, filled, n);
        filled += n;
        nextChunk++;
      } catch (BufferUnderflowException e) {
        throw Encoding.truncated(what, e);
      }
    }

    private void inflate(ByteBuffer in, int bytes, String what) {
      inflater.reset();
      inflater.setInput(in);
      try {
        // One spare byte of room (see accept) lets the inflater reach the end of the stream, and
        // shows a stream that inflates to more than it should.
        byte[] out = shuffled;
        int size = 0;
        while (size < out.length && !inflater.finished()) {
          int n = inflater.inflate(out, size, out.length - size);
          if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
            break;
          }
          size += n;
        }
        if (size != bytes || !inflater.finished()) {
          throw damaged(what, "does not inflate to " + bytes + " bytes");
        }
      } catch (DataFormatException e) {
        throw new StoreCorruptedException(
            what + " does not inflate (" + e.getMessage() + "): the store is damaged", e);
      }
    }

    /** @return the snapshot, once every chunk has been accepted */
    Snapshot finish() {
      if (values == null || nextChunk != chunks || filled != values.length) {
        throw damaged(
            "the snapshot of step " + step, "is incomplete (" + nextChunk + " of "
                + Math.max(chunks, 1) + " chunks)");
      }
      return new Snapshot(step, values);
    }

    @Override
    public void close() {
      inflater.end();
    }

    private static StoreCorruptedException damaged(String what, String problem) {
      return new StoreCorruptedException(what + " " + problem + ": the store is damaged");
    }
  }
}
