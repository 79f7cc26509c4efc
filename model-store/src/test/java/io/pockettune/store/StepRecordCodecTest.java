package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.StepRecord;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

class StepRecordCodecTest {

  static Stream<StepRecord> extremeRecords() {
    float nanWithPayload = Float.intBitsToFloat(0x7fc0_1234);
    float signallingNan = Float.intBitsToFloat(0x7f80_0001);
    return Stream.of(
        new StepRecord(1, 42, 0.5f, 1e-6f, 1e-3f, 2.5f, 2.4f, 16, 1_700_000_000_000L),
        new StepRecord(Long.MAX_VALUE, Long.MIN_VALUE, -0.0f, Float.MIN_VALUE, Float.MAX_VALUE,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Integer.MIN_VALUE, Long.MIN_VALUE),
        new StepRecord(7, Long.MAX_VALUE, nanWithPayload, signallingNan, -Float.MIN_NORMAL,
            Float.NaN, -0.0f, Integer.MAX_VALUE, Long.MAX_VALUE),
        new StepRecord(65_536, -1, Float.NaN, 0.0f, -0.0f, -Float.MAX_VALUE, Float.MIN_VALUE, 0, 0));
  }

  @ParameterizedTest
  @MethodSource("extremeRecords")
  void encode_fitsIn64Bytes(StepRecord record) {
    // Three partitions at offsets up to 2^21, as the demo commits: 54 bytes.
    byte[] value = StepRecordCodec.encode(record, THREE_PARTITIONS);
    assertEquals(54, value.length);
    assertTrue(value.length <= 64, "step value is " + value.length + " bytes");
    assertEquals(8, StepRecordCodec.key(record.step()).length);
  }

  private static final Map<Integer, Long> THREE_PARTITIONS =
      Map.of(0, (1L << 21) - 1, 1, 1_000_000L, 2, 20_000L);

  @Test
  void decodeOffsets_roundTrip() {
    StepRecord r = extremeRecords().findFirst().orElseThrow();
    Map<Integer, Long> offsets = Map.of(0, 5L, 7, Long.MAX_VALUE, 300, 128L);
    assertEquals(offsets, StepRecordCodec.decodeOffsets(1, StepRecordCodec.encode(r, offsets)));
    assertEquals(Map.of(), StepRecordCodec.decodeOffsets(1, StepRecordCodec.encode(r)));
  }

  @Test
  void decode_version1_readsWithoutOffsets() {
    StepRecord r = extremeRecords().findFirst().orElseThrow();
    byte[] v1 = Arrays.copyOf(StepRecordCodec.encode(r), StepRecordCodec.FIXED_SIZE);
    v1[0] = 1;
    assertEquals(r, StepRecordCodec.decode(r.step(), v1));
    assertNull(StepRecordCodec.decodeOffsets(r.step(), v1));
  }

  @ParameterizedTest
  @MethodSource("extremeRecords")
  void decode_roundTripIsBitExact(StepRecord record) {
    StepRecord back =
        StepRecordCodec.decode(record.step(), StepRecordCodec.encode(record, THREE_PARTITIONS));
    assertEquals(record.step(), back.step());
    assertEquals(record.seed(), back.seed());
    assertBits(record.projectedGradient(), back.projectedGradient());
    assertBits(record.learningRate(), back.learningRate());
    assertBits(record.eps(), back.eps());
    assertBits(record.lossPlus(), back.lossPlus());
    assertBits(record.lossMinus(), back.lossMinus());
    assertEquals(record.batchSize(), back.batchSize());
    assertEquals(record.timeMillis(), back.timeMillis());
    assertEquals(record.step(), StepRecordCodec.step(StepRecordCodec.key(record.step())));
  }

  private static void assertBits(float expected, float actual) {
    assertEquals(
        Integer.toHexString(Float.floatToRawIntBits(expected)),
        Integer.toHexString(Float.floatToRawIntBits(actual)));
  }

  @ParameterizedTest
  @CsvSource({"1, 2", "255, 256", "65535, 65536", "16777215, 16777216", "2147483647, 2147483648",
      "4294967295, 4294967296", "9223372036854775806, 9223372036854775807"})
  void key_bytewiseOrderIsNumericOrder(long smaller, long larger) {
    assertTrue(
        Arrays.compareUnsigned(StepRecordCodec.key(smaller), StepRecordCodec.key(larger)) < 0,
        smaller + " must sort before " + larger);
  }

  @Test
  void decode_unknownVersion_refusedNamingIt() {
    byte[] value = StepRecordCodec.encode(extremeRecords().findFirst().orElseThrow());
    value[0] = 4;
    StoreException e = assertThrows(StoreException.class, () -> StepRecordCodec.decode(9, value));
    assertTrue(e.getMessage().contains("step 9"), e.getMessage());
    assertTrue(e.getMessage().contains("format version 4"), e.getMessage());
    assertTrue(e.getMessage().contains("only versions 1, 2 and 3"), e.getMessage());
    assertThrows(StoreException.class, () -> StepRecordCodec.decodeOffsets(9, value));
  }

  @Test
  void decode_wrongLength_isCorruption() {
    byte[] value =
        StepRecordCodec.encode(extremeRecords().findFirst().orElseThrow(), THREE_PARTITIONS);
    assertEveryPrefixIsCorruption(value);
    byte[] longer = Arrays.copyOf(value, value.length + 1);
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, longer));
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decode(3, new byte[0]));
  }

  // --- version 3: FZOO records, with coefficients ---

  static final float NAN_WITH_PAYLOAD = Float.intBitsToFloat(0x7fc0_1234);
  static final float SIGNALLING_NAN = Float.intBitsToFloat(0x7f80_0001);

  /** An FZOO record: N = 8 coefficients, among them NaN payloads, -0 and infinities. */
  static StepRecord fzooRecord(long step) {
    float[] c = {0.125f, -0.0f, NAN_WITH_PAYLOAD, SIGNALLING_NAN, Float.NEGATIVE_INFINITY,
        Float.MIN_VALUE, -3.5e-7f, 0.0f};
    return new StepRecord(step, 0xDEAD_BEEFL * step, 0f, 1e-6f, 1e-3f, 2.5f, 2.5f, 16,
        1_700_000_000_000L + step, c);
  }

  private static final Map<Integer, Long> OFFSETS = Map.of(0, 5L, 7, Long.MAX_VALUE, 300, 128L);

  @Test
  void fzoo_roundTripWithOffsets_equalIncludingCoefficients() {
    StepRecord r = fzooRecord(12);
    byte[] value = StepRecordCodec.encode(r, OFFSETS);
    assertEquals(StepRecordCodec.VERSION_FZOO, value[0]);
    assertEquals(3, value[0]);
    StepRecord back = StepRecordCodec.decode(12, value);
    assertEquals(r, back);
    assertTrue(back.fzoo());
    assertEquals(8, back.coefficients().length);
    assertEquals(OFFSETS, StepRecordCodec.decodeOffsets(12, value));
    // Without offsets too, and with two coefficients (the smallest FZOO).
    StepRecord two = new StepRecord(1, 2, 0f, 1e-6f, 1e-3f, 1f, 1f, 4, 5, new float[] {1f, -1f});
    byte[] bare = StepRecordCodec.encode(two);
    assertEquals(StepRecordCodec.FIXED_SIZE + 1 + 8 + 1, bare.length);
    assertEquals(two, StepRecordCodec.decode(1, bare));
    assertEquals(Map.of(), StepRecordCodec.decodeOffsets(1, bare));
  }

  @Test
  void fzoo_layoutIsTheDocumentedOne() {
    StepRecord r = fzooRecord(3);
    byte[] value = StepRecordCodec.encode(r, Map.of(1, 300L));
    assertEquals(StepRecordCodec.FIXED_SIZE + 1 + 8 * 4 + 1 + 1 + 2, value.length);
    ByteBuffer in = ByteBuffer.wrap(value);
    in.position(StepRecordCodec.FIXED_SIZE);
    assertEquals(8, in.get());
    float[] c = r.coefficients();
    for (float f : c) {
      assertEquals(Float.floatToRawIntBits(f), in.getInt());
    }
    // Then the offsets exactly as version 2: count 1, index 1, offset 300.
    assertArrayEquals(new byte[] {1, 1, (byte) 0xac, 2},
        Arrays.copyOfRange(value, in.position(), value.length));
  }

  @Test
  void fzoo_nanAndNegativeZeroCoefficientBitsSurvive() {
    StepRecord r = fzooRecord(5);
    float[] back = StepRecordCodec.decode(5, StepRecordCodec.encode(r, OFFSETS)).coefficients();
    float[] sent = r.coefficients();
    assertEquals(sent.length, back.length);
    for (int i = 0; i < sent.length; i++) {
      assertBits(sent[i], back[i]);
    }
    assertBits(-0.0f, back[1]);
    assertBits(NAN_WITH_PAYLOAD, back[2]);
    assertBits(SIGNALLING_NAN, back[3]);
  }

  @Test
  void mezo_stillVersion2_byteIdenticalToBefore() {
    StepRecord r = extremeRecords().findFirst().orElseThrow();
    assertFalse(r.fzoo());
    // Bytes the version-2 codec wrote before FZOO existed (layout as documented, computed apart).
    byte[] before = HexFormat.of().parseHex(
        "02000000000000002a3f000000358637bd3a83126f402000004019999a000000100000018bcfe5680002000507ac02");
    // In index order, as Trajectory hands them over (a TreeMap).
    byte[] value = StepRecordCodec.encode(r, new TreeMap<>(Map.of(0, 5L, 7, 300L)));
    assertArrayEquals(before, value);
    assertEquals(StepRecordCodec.VERSION_MEZO, value[0]);
    StepRecord back = StepRecordCodec.decode(r.step(), value);
    assertEquals(r, back);
    assertNull(back.coefficients());
  }

  @Test
  void fzoo_emptyCoefficients_refusedOnEncode() {
    StepRecord r = new StepRecord(1, 2, 0f, 1e-6f, 1e-3f, 1f, 1f, 4, 5, new float[0]);
    assertThrows(IllegalArgumentException.class, () -> StepRecordCodec.encode(r, OFFSETS));
  }

  @Test
  void fzoo_truncated_isCorruption() {
    byte[] value = StepRecordCodec.encode(fzooRecord(3), THREE_PARTITIONS);
    assertEveryPrefixIsCorruption(value);
    // Cut inside the coefficients, decode itself refuses (it reads them).
    int inside = StepRecordCodec.FIXED_SIZE + 1 + 4 * 5 + 2;
    byte[] cut = Arrays.copyOf(value, inside);
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decode(3, cut));
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, cut));
    // Cut right after the coefficients, before the offsets' count: decode refuses too.
    byte[] noOffsets = Arrays.copyOf(value, StepRecordCodec.FIXED_SIZE + 1 + 4 * 8);
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decode(3, noOffsets));
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, noOffsets));
    byte[] longer = Arrays.copyOf(value, value.length + 1);
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, longer));
  }

  @Test
  void fzoo_claimingTooManyCoefficients_isCorruption() {
    byte[] value = StepRecordCodec.encode(fzooRecord(3), THREE_PARTITIONS);
    int after = value.length - StepRecordCodec.FIXED_SIZE - 1;
    // One more than the bytes after the count can hold, and counts far beyond: refused outright.
    for (long claimed : new long[] {after / 4 + 1, 1L << 40, Long.MAX_VALUE >>> 1}) {
      byte[] bad = withCoefficientCount(value, claimed);
      StoreCorruptedException e =
          assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decode(3, bad));
      assertTrue(e.getMessage().contains("claims " + claimed + " coefficients"), e.getMessage());
      assertTrue(e.getMessage().contains("step 3"), e.getMessage());
      assertTrue(e.getMessage().endsWith("the store is damaged"), e.getMessage());
      assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, bad));
    }
    byte[] none = withCoefficientCount(value, 0);
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decode(3, none));
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, none));
  }

  /** {@code value} (a v3 value with 8 coefficients, one-byte count) with its count replaced. */
  private static byte[] withCoefficientCount(byte[] value, long n) {
    ByteBuffer out = ByteBuffer.allocate(value.length + Varint.size(n) - 1);
    out.put(value, 0, StepRecordCodec.FIXED_SIZE);
    Varint.put(out, n);
    out.put(value, StepRecordCodec.FIXED_SIZE + 1, value.length - StepRecordCodec.FIXED_SIZE - 1);
    return out.array();
  }

  /** Every proper prefix of {@code value} is refused as corruption by decode or decodeOffsets. */
  private static void assertEveryPrefixIsCorruption(byte[] value) {
    for (int length = 1; length < value.length; length++) {
      byte[] truncated = Arrays.copyOf(value, length);
      assertThrows(StoreCorruptedException.class, () -> {
        StepRecordCodec.decode(3, truncated);
        StepRecordCodec.decodeOffsets(3, truncated);
      }, "prefix of " + length);
    }
  }
}
