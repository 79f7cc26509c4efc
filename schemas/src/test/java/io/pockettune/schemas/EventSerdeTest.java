package io.pockettune.schemas;

import static io.pockettune.schemas.TestEvents.message;
import static io.pockettune.schemas.TestEvents.note;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.specific.SpecificRecord;
import org.apache.avro.specific.SpecificRecordBase;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class EventSerdeTest {

  private final EventSerde serde = new EventSerde(SchemaStore.withBuiltIns());

  static Stream<SpecificRecord> events() {
    return Stream.of(
        message("m-1", "hello"),
        message("m-2", "Grüße aus Köln 👋🏽 — مرحبا — 你好 — e\u0301 — \u0000 end"),
        message("m-3", ""),
        note("n-1", "milk\neggs\t🍞"),
        Note.newBuilder().setId("n-2").setTitle("").setBody("x".repeat(200_000))
            .setEventTime(TestEvents.WRITTEN_AT).build());
  }

  @ParameterizedTest
  @MethodSource("events")
  void serialize_roundTrip(SpecificRecord event) {
    byte[] payload = serde.serialize(event);

    assertEquals(event, serde.deserialize(payload, event.getClass()));
    assertEquals(event, serde.deserialize(payload));
  }

  @Test
  void serialize_attrsDefaultToEmptyMap() {
    Message message = Message.newBuilder().setId("m").setConversation("c").setSender("s")
        .setText("t").setEventTime(TestEvents.WRITTEN_AT).build();

    Message read = serde.deserialize(serde.serialize(message), Message.class);

    assertEquals(Map.of(), read.getAttrs());
    assertEquals(TestEvents.WRITTEN_AT, read.getEventTime());
  }

  @Test
  void serialize_singleObjectLayout() throws IOException {
    byte[] payload = serde.serialize(message("m-1", "hi"));

    long expected = SchemaNormalization.parsingFingerprint64(Message.getClassSchema());
    assertArrayEquals(new byte[] {(byte) 0xC3, 0x01}, Arrays.copyOf(payload, 2));
    assertEquals(expected, ByteBuffer.wrap(payload, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong());
    assertEquals(expected, EventSerde.fingerprintOf(payload));
    // The body is plain Avro binary: what the generated class's own encoder writes.
    assertArrayEquals(Message.getEncoder().encode(message("m-1", "hi")).array(), payload);
  }

  @Test
  void serialize_registersWriterSchema() {
    SchemaStore empty = SchemaStore.inMemory();
    EventSerde fresh = new EventSerde(empty);

    byte[] payload = fresh.serialize(note("n", "b"));

    assertEquals(Note.getClassSchema(), empty.find(EventSerde.fingerprintOf(payload)).orElseThrow());
  }

  @Test
  void serialize_missingRequiredField() {
    Message incomplete = new Message();
    incomplete.setId("m");

    IllegalArgumentException e =
        assertThrows(IllegalArgumentException.class, () -> serde.serialize(incomplete));
    assertTrue(e.getMessage().contains("io.pockettune.events.Message"), e.getMessage());
  }

  @Test
  void deserialize_untypedReturnsBuiltInClass() {
    assertInstanceOf(Message.class, serde.deserialize(serde.serialize(message("m", "t"))));
    assertInstanceOf(Note.class, serde.deserialize(serde.serialize(note("n", "b"))));
  }

  @Test
  void deserialize_otherTypeIsIncompatible() {
    byte[] notePayload = serde.serialize(note("n", "b"));

    EventDecodingException e = assertThrows(EventDecodingException.class,
        () -> serde.deserialize(notePayload, Message.class));
    assertTrue(e.getMessage().contains("io.pockettune.events.Note"), e.getMessage());
    assertTrue(e.getMessage().contains("cannot be read as io.pockettune.events.Message"),
        e.getMessage());
  }

  @Test
  void deserialize_trailingBytes() {
    byte[] payload = serde.serialize(message("m", "t"));
    byte[] longer = Arrays.copyOf(payload, payload.length + 1);

    EventDecodingException e =
        assertThrows(EventDecodingException.class, () -> serde.deserialize(longer));
    assertTrue(e.getMessage().contains("1 byte after the end"), e.getMessage());
  }

  @Test
  void deserialize_unknownRecordName() {
    SchemaStore store = SchemaStore.withBuiltIns();
    EventSerde withForeign = new EventSerde(store);
    Schema foreign = new Schema.Parser().parse(
        "{\"type\":\"record\",\"name\":\"Reminder\",\"namespace\":\"com.example\","
            + "\"fields\":[{\"name\":\"at\",\"type\":\"long\"}]}");
    store.register(foreign);
    byte[] payload = TestEvents.encodeGeneric(
        new GenericRecordBuilder(foreign).set("at", 1L).build());

    EventDecodingException e =
        assertThrows(EventDecodingException.class, () -> withForeign.deserialize(payload));
    assertTrue(e.getMessage().contains("com.example.Reminder"), e.getMessage());
    assertEquals(EventSerde.fingerprintOf(payload), e.fingerprint().orElseThrow());
  }

  @Test
  void deserialize_notGeneratedType() {
    byte[] payload = serde.serialize(message("m", "t"));

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> serde.deserialize(payload, SpecificRecordBase.class));
    assertTrue(e.getMessage().contains("not an Avro generated class"), e.getMessage());
  }

  @Test
  void deserialize_concurrentThreads() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<Integer>> results = new ArrayList<>();
      for (int t = 0; t < 8; t++) {
        int thread = t;
        results.add(pool.submit(() -> {
          int matched = 0;
          for (int i = 0; i < 500; i++) {
            SpecificRecord event = i % 2 == 0
                ? message("m-" + thread + "-" + i, "text " + i)
                : note("n-" + thread + "-" + i, "body " + i);
            if (event.equals(serde.deserialize(serde.serialize(event)))) {
              matched++;
            }
          }
          return matched;
        }));
      }
      for (Future<Integer> result : results) {
        assertEquals(500, result.get());
      }
    } finally {
      pool.shutdownNow();
    }
  }
}
