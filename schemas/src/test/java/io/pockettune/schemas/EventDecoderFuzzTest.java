package io.pockettune.schemas;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.util.Arrays;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;
import org.apache.avro.specific.SpecificRecord;

/**
 * Fuzzing the Avro event decoder (jqwik): any bytes, and valid payloads mutated (bytes flipped,
 * cut, inserted, length fields made huge), decode to an event or end in an {@link
 * EventDecodingException} with a message; nothing else is thrown and no payload allocates past its
 * size (the guarded decoder's promise, which an OutOfMemoryError here would break). The seed is
 * jqwik's: a failure prints it, and {@code @Property(seed = "...")} replays it.
 */
class EventDecoderFuzzTest {
  private static final EventSerde SERDE = new EventSerde(SchemaStore.withBuiltIns());
  private static final byte[][] VALID = {
      SERDE.serialize(TestEvents.message("m-1", "héllo wörld")),
      SERDE.serialize(TestEvents.message("m-2", "")),
      SERDE.serialize(TestEvents.note("n-1", "a body with some words in it")),
  };

  @Property(tries = 3000)
  void anyBytesDecodeOrFailWithADecodingError(@ForAll @Size(max = 300) byte[] payload) {
    decodeOrRefuse(payload);
  }

  @Property(tries = 5000)
  void mutatedEventsDecodeOrFailWithADecodingError(@ForAll("mutated") byte[] payload) {
    decodeOrRefuse(payload);
  }

  private static void decodeOrRefuse(byte[] payload) {
    try {
      SpecificRecord r = SERDE.deserialize(payload);
      assertNotNull(r);
    } catch (EventDecodingException e) {
      assertNotNull(e.getMessage());
      assertFalse(e.getMessage().isBlank());
    }
  }

  @Provide
  Arbitrary<byte[]> mutated() {
    Arbitrary<byte[]> base = Arbitraries.of(VALID);
    return Combinators.combine(base, Arbitraries.integers().between(0, 4), Arbitraries.integers().between(0, 1 << 16),
        Arbitraries.bytes()).as((valid, kind, where, value) -> mutate(valid, kind, where, value));
  }

  /** One mutation of a valid payload: flip, cut, insert, overwrite with 0xFF (huge varints), or duplicate a tail. */
  static byte[] mutate(byte[] valid, int kind, int where, byte value) {
    int at = where % valid.length;
    byte[] out;
    switch (kind) {
      case 0 -> {
        out = valid.clone();
        out[at] ^= (byte) (value == 0 ? 1 : value);
      }
      case 1 -> out = Arrays.copyOf(valid, at);
      case 2 -> {
        out = new byte[valid.length + 1];
        System.arraycopy(valid, 0, out, 0, at);
        out[at] = value;
        System.arraycopy(valid, at, out, at + 1, valid.length - at);
      }
      case 3 -> {
        out = valid.clone();
        for (int i = at; i < Math.min(out.length, at + 5); i++) {
          out[i] = (byte) 0xFF;
        }
      }
      default -> {
        out = Arrays.copyOf(valid, valid.length + valid.length - at);
        System.arraycopy(valid, at, out, valid.length, valid.length - at);
      }
    }
    return out;
  }
}
