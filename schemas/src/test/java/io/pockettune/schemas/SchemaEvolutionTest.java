package io.pockettune.schemas;

import static io.pockettune.schemas.TestEvents.WRITTEN_AT;
import static io.pockettune.schemas.TestEvents.encodeGeneric;
import static io.pockettune.schemas.TestEvents.evolutionSchema;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.pockettune.events.Message;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.generic.GenericRecordBuilder;
import org.apache.avro.message.BinaryMessageDecoder;
import org.junit.jupiter.api.Test;

/**
 * Events written with one version of a schema and read with another. MessageV1 predates
 * {@code attrs}; MessageV2 adds an optional {@code replyTo}; the built-in Message sits between.
 */
class SchemaEvolutionTest {

  private final Schema v1 = evolutionSchema("MessageV1");
  private final Schema v2 = evolutionSchema("MessageV2");
  private final SchemaStore store = SchemaStore.withBuiltIns();
  private final EventSerde serde = new EventSerde(store);

  @Test
  void versions_haveDistinctFingerprints() {
    long current = SchemaNormalization.parsingFingerprint64(Message.getClassSchema());
    assertNotEquals(current, SchemaNormalization.parsingFingerprint64(v1));
    assertNotEquals(current, SchemaNormalization.parsingFingerprint64(v2));
  }

  @Test
  void deserialize_olderWriterFillsDefaults() {
    store.register(v1);
    byte[] payload = encodeGeneric(new GenericRecordBuilder(v1)
        .set("id", "m-1").set("conversation", "c").set("sender", "me").set("text", "alt 🙂")
        .set("eventTime", WRITTEN_AT.toEpochMilli()).build());

    Message read = serde.deserialize(payload, Message.class);

    assertEquals("m-1", read.getId());
    assertEquals("alt 🙂", read.getText());
    assertEquals(WRITTEN_AT, read.getEventTime());
    assertEquals(Map.of(), read.getAttrs());
    assertEquals(read, serde.deserialize(payload));
  }

  @Test
  void deserialize_newerWriterWithOptionalField() {
    store.register(v2);
    byte[] payload = encodeGeneric(new GenericRecordBuilder(v2)
        .set("id", "m-2").set("conversation", "c").set("sender", "you").set("text", "neu")
        .set("eventTime", WRITTEN_AT.toEpochMilli()).set("attrs", Map.of("k", "v"))
        .set("replyTo", "m-1").build());

    Message read = serde.deserialize(payload, Message.class);

    assertEquals("m-2", read.getId());
    assertEquals("you", read.getSender());
    assertEquals("neu", read.getText());
    assertEquals(WRITTEN_AT, read.getEventTime());
    assertEquals(Map.of("k", "v"), read.getAttrs());
  }

  @Test
  void serialize_readableByNewerGenericReader() throws IOException {
    byte[] payload = serde.serialize(TestEvents.message("m-3", "für dich"));
    // A newer consumer using plain Avro, its own schema and our store to resolve the writer's.
    BinaryMessageDecoder<GenericRecord> newer =
        new BinaryMessageDecoder<>(GenericData.get(), v2, fp -> store.find(fp).orElse(null));

    GenericRecord read = newer.decode(new ByteArrayInputStream(payload), null);

    assertEquals("für dich", read.get("text").toString());
    assertEquals(WRITTEN_AT.toEpochMilli(), read.get("eventTime"));
    assertNull(read.get("replyTo"));
  }

  @Test
  void serialize_readableByOlderGenericReader() throws IOException {
    byte[] payload = serde.serialize(TestEvents.message("m-4", "old reader"));
    BinaryMessageDecoder<GenericRecord> older =
        new BinaryMessageDecoder<>(GenericData.get(), v1, fp -> store.find(fp).orElse(null));

    GenericRecord read = older.decode(new ByteArrayInputStream(payload), null);

    assertEquals("m-4", read.get("id").toString());
    assertEquals("old reader", read.get("text").toString());
    assertFalse(read.hasField("attrs"));
  }
}
