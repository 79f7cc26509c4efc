package io.pockettune.schemas;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Instant;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageEncoder;

/** Records, schemas and payloads shared by the tests. */
final class TestEvents {

  static final Instant WRITTEN_AT = Instant.ofEpochMilli(1_767_225_600_123L);

  private TestEvents() {}

  static Message message(String id, String text) {
    return Message.newBuilder()
        .setId(id)
        .setConversation("conv-7")
        .setSender("me")
        .setText(text)
        .setEventTime(WRITTEN_AT)
        .setAttrs(Map.of("app", "chat", "länge", "Straße 😀"))
        .build();
  }

  static Note note(String id, String body) {
    return Note.newBuilder()
        .setId(id)
        .setTitle("Einkaufsliste / 買い物リスト")
        .setBody(body)
        .setEventTime(WRITTEN_AT)
        .setAttrs(Map.of("folder", "home"))
        .build();
  }

  /** @return a schema from src/test/resources/evolution */
  static Schema evolutionSchema(String name) {
    try (InputStream in = TestEvents.class.getResourceAsStream("/evolution/" + name + ".avsc")) {
      if (in == null) {
        throw new IllegalStateException("missing test resource " + name);
      }
      return new Schema.Parser().parse(in);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** @return the single-object encoding of a generic record, as another producer would write it */
  static byte[] encodeGeneric(GenericRecord record) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      new BinaryMessageEncoder<GenericRecord>(GenericData.get(), record.getSchema())
          .encode(record, out);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }
}
