package io.pockettune.schemas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.pockettune.events.Message;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Supplier;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Every malformed payload must end in an {@link EventDecodingException}, and nothing else. */
class CorruptPayloadTest {

  private final EventSerde serde = new EventSerde(SchemaStore.withBuiltIns());
  private final byte[] valid = serde.serialize(TestEvents.message("m-1", "héllo wörld"));

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 2, 9})
  void deserialize_shorterThanHeader(int length) {
    EventDecodingException e = assertThrows(EventDecodingException.class,
        () -> serde.deserialize(Arrays.copyOf(valid, length)));

    assertTrue(e.getMessage().contains(length + " bytes long"), e.getMessage());
    assertTrue(e.fingerprint().isEmpty());
  }

  @ParameterizedTest
  @ValueSource(ints = {0, 1})
  void deserialize_flippedMarker(int index) {
    byte[] payload = valid.clone();
    payload[index] ^= 0x40;

    EventDecodingException e =
        assertThrows(EventDecodingException.class, () -> serde.deserialize(payload, Message.class));
    assertTrue(e.getMessage().contains("single-object marker"), e.getMessage());
  }

  @Test
  void deserialize_unknownFingerprint() {
    byte[] payload = TestEvents.encodeGeneric(new GenericRecordBuilder(
        TestEvents.evolutionSchema("MessageV2")).set("id", "m").set("conversation", "c")
        .set("sender", "s").set("text", "t").set("eventTime", 0L).build());
    long fingerprint = SchemaNormalization.parsingFingerprint64(
        TestEvents.evolutionSchema("MessageV2"));

    EventDecodingException e =
        assertThrows(EventDecodingException.class, () -> serde.deserialize(payload, Message.class));

    assertTrue(e.getMessage().contains(String.format("0x%016x", fingerprint)), e.getMessage());
    assertTrue(e.getMessage().contains("register the writer's schema"), e.getMessage());
    assertEquals(fingerprint, e.fingerprint().orElseThrow());
    assertEquals(fingerprint, EventSerde.fingerprintOf(payload));
  }

  @Test
  void deserialize_everyTruncatedBody() {
    for (int length = 10; length < valid.length; length++) {
      byte[] truncated = Arrays.copyOf(valid, length);
      EventDecodingException e = assertThrows(EventDecodingException.class,
          () -> serde.deserialize(truncated), "truncated to " + length);
      assertTrue(e.getMessage().contains("is corrupt"), e.getMessage());
      assertTrue(e.fingerprint().isPresent());
    }
  }

  @Test
  void deserialize_everyFlippedBodyByte() {
    int rejected = 0;
    for (int i = 10; i < valid.length; i++) {
      for (int bit = 0; bit < 8; bit++) {
        byte[] payload = valid.clone();
        payload[i] ^= (byte) (1 << bit);
        if (rejects(() -> serde.deserialize(payload))) {
          rejected++;
        }
      }
    }
    assertTrue(rejected > 0);
  }

  @Test
  void deserialize_randomGarbage() {
    Random random = new Random(20_240_601L);
    int rejected = 0;
    for (int i = 0; i < 5_000; i++) {
      byte[] payload = new byte[random.nextInt(64)];
      random.nextBytes(payload);
      if (i % 2 == 0 && payload.length >= 10) {
        System.arraycopy(valid, 0, payload, 0, 10); // a valid header, so the body gets decoded
      }
      if (rejects(() -> serde.deserialize(payload, Message.class))) {
        rejected++;
      }
    }
    assertTrue(rejected > 4_900, "rejected " + rejected);
  }

  @Test
  void deserialize_hugeDeclaredStringLengthAllocatesLittle() throws IOException {
    byte[] payload = withMessageHeader(body -> body.writeLong(1L << 30)); // id: 1 GiB claimed
    serde.deserialize(valid); // warm up: resolver grammars, class loading

    long allocated = allocatedBy(() -> assertThrows(EventDecodingException.class,
        () -> serde.deserialize(payload)));

    assertTrue(allocated < 16 << 20, "allocated " + allocated + " bytes");
  }

  @Test
  void deserialize_hugeDeclaredMapCountAllocatesLittle() throws IOException {
    byte[] payload = withMessageHeader(body -> {
      for (int i = 0; i < 4; i++) {
        body.writeString(""); // id, conversation, sender, text
      }
      body.writeLong(0L); // eventTime
      body.writeMapStart();
      body.setItemCount(1L << 30); // attrs: 2^30 entries claimed, one present
      body.startItem();
      body.writeString("k");
      body.writeString("v");
    });
    serde.deserialize(valid);

    long allocated = allocatedBy(() -> assertThrows(EventDecodingException.class,
        () -> serde.deserialize(payload)));

    assertTrue(allocated < 16 << 20, "allocated " + allocated + " bytes");
  }

  /** @return true if decoding threw EventDecodingException, false if it decoded; fails otherwise */
  private static boolean rejects(Supplier<?> decode) {
    try {
      decode.get();
      return false;
    } catch (EventDecodingException e) {
      assertFalse(e.getMessage().isBlank());
      return true;
    } catch (RuntimeException | Error e) {
      return fail("expected EventDecodingException, got " + e, e);
    }
  }

  private interface BodyWriter {
    void write(BinaryEncoder body) throws IOException;
  }

  private static byte[] withMessageHeader(BodyWriter writer) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    out.write(new byte[] {(byte) 0xC3, 0x01});
    long fingerprint = SchemaNormalization.parsingFingerprint64(Message.getClassSchema());
    for (int i = 0; i < 8; i++) {
      out.write((int) (fingerprint >>> (8 * i)));
    }
    BinaryEncoder body = EncoderFactory.get().directBinaryEncoder(out, null);
    writer.write(body);
    body.flush();
    return out.toByteArray();
  }

  private static long allocatedBy(Runnable action) {
    com.sun.management.ThreadMXBean threads =
        (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    long before = threads.getCurrentThreadAllocatedBytes();
    action.run();
    return threads.getCurrentThreadAllocatedBytes() - before;
  }
}
