package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CheckpointCodecTest {
  private static final RunIdentity IDENTITY = new RunIdentity("hash", 1, "layout;", "{\"lr\":1e-6}");

  private static final Checkpoint FULL =
      new Checkpoint(
          12,
          70_000,
          Map.of(new SourcePartition("messages", 0), 1_234L, new SourcePartition("notes", 3), 0L),
          "after the holidays ✓",
          Map.of("eval.loss", 2.75, "ppl", Double.POSITIVE_INFINITY, "nan", Double.NaN),
          Instant.ofEpochMilli(1_700_000_123_456L),
          IDENTITY);

  private static final Checkpoint BARE =
      new Checkpoint(1, 0, Map.of(), null, Map.of(), Instant.EPOCH, new RunIdentity("h", 0, "", ""));

  @Test
  void decode_roundTrip() {
    for (Checkpoint c : List.of(FULL, BARE, FULL.abandonedTo(3))) {
      assertEquals(c, CheckpointCodec.decode(c.id(), CheckpointCodec.encode(c)));
    }
  }

  @Test
  void decode_everyTruncation_isCorruption() {
    byte[] value = CheckpointCodec.encode(FULL);
    for (int length = 0; length < value.length; length++) {
      byte[] truncated = Arrays.copyOf(value, length);
      assertThrows(
          StoreCorruptedException.class,
          () -> CheckpointCodec.decode(12, truncated),
          "prefix of " + length + " bytes");
    }
  }

  @Test
  void decode_unknownVersion_refusedNamingCheckpoint() {
    byte[] value = CheckpointCodec.encode(FULL);
    value[0] = 3;
    StoreException e = assertThrows(StoreException.class, () -> CheckpointCodec.decode(12, value));
    assertTrue(e.getMessage().contains("checkpoint 12"), e.getMessage());
    assertTrue(e.getMessage().contains("format version 3"), e.getMessage());
  }

  @Test
  void decode_version1_isLive() {
    byte[] v2 = CheckpointCodec.encode(FULL);
    byte[] v1 = Arrays.copyOf(v2, v2.length - Long.BYTES);
    v1[0] = 1;
    assertEquals(FULL, CheckpointCodec.decode(12, v1));
  }

  @Test
  void key_ordersIdsNumerically() {
    assertTrue(Arrays.compareUnsigned(CheckpointCodec.key(255), CheckpointCodec.key(256)) < 0);
    assertEquals(65_536, CheckpointCodec.id(CheckpointCodec.key(65_536)));
  }
}
