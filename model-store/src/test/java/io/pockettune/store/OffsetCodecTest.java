package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class OffsetCodecTest {

  @ParameterizedTest
  @CsvSource({"messages, 0", "notes, 2147483647", "'größe.topic-ü', 7", "a, 1"})
  void key_roundTrip(String topic, int partition) {
    SourcePartition p = new SourcePartition(topic, partition);
    assertEquals(p, OffsetCodec.partition(OffsetCodec.key(p)));
  }

  @Test
  void key_lengthPrefixKeepsTopicsApart() {
    // Without the length prefix, topic "a" + partition bytes could equal a longer topic's bytes.
    byte[] a = OffsetCodec.key(new SourcePartition("a", 0x62000000));
    byte[] ab = OffsetCodec.key(new SourcePartition("ab", 0));
    assertFalse(Arrays.equals(a, ab));
  }

  @ParameterizedTest
  @CsvSource({"0", "1", "9223372036854775807"})
  void value_roundTrip(long offset) {
    SourcePartition p = new SourcePartition("messages", 0);
    assertEquals(offset, OffsetCodec.decode(p, OffsetCodec.encode(offset)));
  }

  @Test
  void decode_unknownVersion_refusedNamingPartition() {
    byte[] value = OffsetCodec.encode(5);
    value[0] = (byte) 200;
    StoreException e =
        assertThrows(
            StoreException.class, () -> OffsetCodec.decode(new SourcePartition("notes", 3), value));
    assertTrue(e.getMessage().contains("notes-3"), e.getMessage());
    assertTrue(e.getMessage().contains("format version 200"), e.getMessage());
  }

  @Test
  void partition_truncatedKey_isCorruption() {
    byte[] key = OffsetCodec.key(new SourcePartition("messages", 1));
    for (int length = 0; length < key.length; length++) {
      byte[] truncated = Arrays.copyOf(key, length);
      assertThrows(StoreCorruptedException.class, () -> OffsetCodec.partition(truncated));
    }
  }
}
