package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.StepRecord;
import java.util.Arrays;
import java.util.Map;
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
    value[0] = 3;
    StoreException e = assertThrows(StoreException.class, () -> StepRecordCodec.decode(9, value));
    assertTrue(e.getMessage().contains("step 9"), e.getMessage());
    assertTrue(e.getMessage().contains("format version 3"), e.getMessage());
    assertTrue(e.getMessage().contains("only versions 1 and 2"), e.getMessage());
  }

  @Test
  void decode_wrongLength_isCorruption() {
    byte[] value =
        StepRecordCodec.encode(extremeRecords().findFirst().orElseThrow(), THREE_PARTITIONS);
    for (int length = 1; length < value.length; length++) {
      byte[] truncated = Arrays.copyOf(value, length);
      assertThrows(StoreCorruptedException.class, () -> {
        StepRecordCodec.decode(3, truncated);
        StepRecordCodec.decodeOffsets(3, truncated);
      }, "prefix of " + length);
    }
    byte[] longer = Arrays.copyOf(value, value.length + 1);
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decodeOffsets(3, longer));
    assertThrows(StoreCorruptedException.class, () -> StepRecordCodec.decode(3, new byte[0]));
  }
}
