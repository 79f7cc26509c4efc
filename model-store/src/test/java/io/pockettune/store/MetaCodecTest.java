package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class MetaCodecTest {
  private static final RunIdentity IDENTITY =
      new RunIdentity("sha256:abc", 3, "q[8, 8];v[8, 8];", "{\"lr\": 1e-6, \"note\": \"é\"}");

  @Test
  void identity_roundTrip() {
    assertEquals(IDENTITY, MetaCodec.decodeIdentity(MetaCodec.encodeIdentity(IDENTITY)));
  }

  @Test
  void identity_everyTruncation_isCorruption() {
    byte[] value = MetaCodec.encodeIdentity(IDENTITY);
    for (int length = 0; length < value.length; length++) {
      byte[] truncated = Arrays.copyOf(value, length);
      assertThrows(StoreCorruptedException.class, () -> MetaCodec.decodeIdentity(truncated));
    }
  }

  @Test
  void identity_unknownVersion_refused() {
    byte[] value = MetaCodec.encodeIdentity(IDENTITY);
    value[0] = 9;
    StoreException e = assertThrows(StoreException.class, () -> MetaCodec.decodeIdentity(value));
    assertTrue(e.getMessage().contains("format version 9"), e.getMessage());
  }

  @Test
  void runConfig_keyAndValueRoundTrip() {
    byte[] key = MetaCodec.runConfigKey(70_000);
    assertEquals(70_000, MetaCodec.runConfigStep(key));
    assertEquals(-1, MetaCodec.runConfigStep(MetaCodec.IDENTITY_KEY));
    assertTrue(Arrays.compareUnsigned(MetaCodec.runConfigKey(255), MetaCodec.runConfigKey(256)) < 0);
    assertEquals("{}", MetaCodec.decodeRunConfig(1, MetaCodec.encodeRunConfig(123L, "{}")));
  }
}
