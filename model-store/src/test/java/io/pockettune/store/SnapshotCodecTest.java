package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SnapshotCodecTest {

  /** Values shaped like trained weights, plus the bit patterns that must survive untouched. */
  static float[] weights(int n, long seed) {
    Random random = new Random(seed);
    float[] values = new float[n];
    for (int i = 0; i < n; i++) {
      values[i] = (float) (random.nextGaussian() * 0.02);
    }
    float[] special = {
      -0.0f, Float.NaN, Float.intBitsToFloat(0x7fc0_beef), Float.intBitsToFloat(0xff80_0001),
      Float.MIN_VALUE, Float.MAX_VALUE, Float.NEGATIVE_INFINITY
    };
    for (int i = 0; i < Math.min(n, special.length); i++) {
      values[(int) ((long) i * n / special.length)] = special[i];
    }
    return values;
  }

  static int[] bits(float[] values) {
    int[] out = new int[values.length];
    for (int i = 0; i < values.length; i++) {
      out[i] = Float.floatToRawIntBits(values[i]);
    }
    return out;
  }

  static Snapshot decode(long step, List<byte[]> chunks) {
    try (SnapshotCodec.Assembler assembler = new SnapshotCodec.Assembler(step)) {
      for (int i = 0; i < chunks.size(); i++) {
        assembler.accept(i, chunks.get(i));
      }
      return assembler.finish();
    }
  }

  @ParameterizedTest
  @CsvSource({"0, 16", "1, 16", "16, 16", "17, 16", "1000, 7", "300000, 1048576"})
  void decode_roundTripIsBitExact(int floats, int chunkFloats) {
    float[] values = weights(floats, floats);
    List<byte[]> chunks = SnapshotCodec.encode(FloatBuffer.wrap(values), chunkFloats);
    assertEquals(Math.max(1, (floats + chunkFloats - 1) / chunkFloats), chunks.size());
    Snapshot back = decode(5, chunks);
    assertEquals(5, back.step());
    assertArrayEquals(bits(values), bits(back.values()));
  }

  @Test
  void encode_directBuffer_readsPositionToLimitAndLeavesThemAlone() {
    float[] values = weights(1000, 1);
    FloatBuffer direct =
        ByteBuffer.allocateDirect(values.length * Float.BYTES)
            .order(ByteOrder.BIG_ENDIAN)
            .asFloatBuffer()
            .put(values);
    direct.position(10).limit(900);
    List<byte[]> chunks = SnapshotCodec.encode(direct, 64);
    assertEquals(10, direct.position());
    assertEquals(900, direct.limit());
    float[] expected = Arrays.copyOfRange(values, 10, 900);
    assertArrayEquals(bits(expected), bits(decode(1, chunks).values()));
  }

  @Test
  void encode_weights_shuffledDeflateShrinksThem() {
    List<byte[]> chunks = SnapshotCodec.encode(FloatBuffer.wrap(weights(100_000, 2)), 1 << 20);
    byte[] value = chunks.get(0);
    assertEquals(SnapshotCodec.SHUFFLED_DEFLATE, value[1]);
    assertTrue(value.length < 100_000 * Float.BYTES * 0.9, "compressed to " + value.length);
  }

  @Test
  void encode_randomBits_storedRaw() {
    Random random = new Random(3);
    float[] noise = new float[10_000];
    for (int i = 0; i < noise.length; i++) {
      noise[i] = Float.intBitsToFloat(random.nextInt());
    }
    List<byte[]> chunks = SnapshotCodec.encode(FloatBuffer.wrap(noise), 1 << 20);
    assertEquals(SnapshotCodec.RAW, chunks.get(0)[1]);
    assertEquals(SnapshotCodec.HEADER_SIZE + noise.length * Float.BYTES, chunks.get(0).length);
    assertArrayEquals(bits(noise), bits(decode(0, chunks).values()));
  }

  @Test
  void accept_flippedPayloadBit_isCorruptionNamingStep() {
    List<byte[]> chunks = SnapshotCodec.encode(FloatBuffer.wrap(weights(5000, 4)), 1 << 20);
    Random random = new Random(5);
    for (int trial = 0; trial < 50; trial++) {
      byte[] damaged = chunks.get(0).clone();
      int at = SnapshotCodec.HEADER_SIZE + random.nextInt(damaged.length - SnapshotCodec.HEADER_SIZE);
      damaged[at] ^= (byte) (1 << random.nextInt(8));
      StoreCorruptedException e =
          assertThrows(StoreCorruptedException.class, () -> decode(77, List.of(damaged)));
      assertTrue(e.getMessage().contains("step 77"), e.getMessage());
    }
  }

  @Test
  void accept_wrongChecksum_failsChecksum() {
    List<byte[]> chunks = SnapshotCodec.encode(FloatBuffer.wrap(weights(5000, 6)), 1 << 20);
    byte[] damaged = chunks.get(0).clone();
    damaged[14] ^= 1;
    StoreCorruptedException e =
        assertThrows(StoreCorruptedException.class, () -> decode(8, List.of(damaged)));
    assertTrue(e.getMessage().contains("snapshot of step 8 fails its checksum"), e.getMessage());
  }

  @Test
  void finish_missingChunk_isCorruption() {
    List<byte[]> chunks = SnapshotCodec.encode(FloatBuffer.wrap(weights(100, 7)), 30);
    assertEquals(4, chunks.size());
    StoreCorruptedException e =
        assertThrows(
            StoreCorruptedException.class, () -> decode(2, chunks.subList(0, 3)));
    assertTrue(e.getMessage().contains("incomplete"), e.getMessage());
    try (SnapshotCodec.Assembler assembler = new SnapshotCodec.Assembler(2)) {
      assembler.accept(0, chunks.get(0));
      StoreCorruptedException gap =
          assertThrows(StoreCorruptedException.class, () -> assembler.accept(2, chunks.get(2)));
      assertTrue(gap.getMessage().contains("chunk 1 of the snapshot of step 2 is missing"),
          gap.getMessage());
    }
  }

  @Test
  void accept_chunkOfAnotherSnapshot_isCorruption() {
    List<byte[]> small = SnapshotCodec.encode(FloatBuffer.wrap(weights(60, 8)), 30);
    List<byte[]> large = SnapshotCodec.encode(FloatBuffer.wrap(weights(90, 9)), 30);
    assertThrows(
        StoreCorruptedException.class, () -> decode(1, List.of(small.get(0), large.get(1))));
  }

  @Test
  void accept_unknownVersion_refused() {
    byte[] value = SnapshotCodec.encode(FloatBuffer.wrap(weights(10, 1)), 16).get(0);
    value[0] = 3;
    StoreException e = assertThrows(StoreException.class, () -> decode(4, List.of(value)));
    assertTrue(e.getMessage().contains("format version 3"), e.getMessage());
  }
}
