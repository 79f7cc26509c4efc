package io.pockettune.schemas;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SchemaStoreTest {

  private final Schema v2 = TestEvents.evolutionSchema("MessageV2");
  private final long v2Fingerprint = SchemaNormalization.parsingFingerprint64(v2);

  @Test
  void withBuiltIns_findsMessageAndNote() {
    SchemaStore store = SchemaStore.withBuiltIns();

    for (Schema builtIn : List.of(Message.getClassSchema(), Note.getClassSchema())) {
      assertEquals(Optional.of(builtIn),
          store.find(SchemaNormalization.parsingFingerprint64(builtIn)));
    }
    assertEquals(Optional.empty(), store.find(v2Fingerprint));
  }

  @Test
  void register_returnsFingerprintAndKeepsFirst() {
    SchemaStore store = SchemaStore.inMemory();
    Schema undocumented = new Schema.Parser().parse(v2.toString().replace("\"doc\"", "\"x-doc\""));

    assertEquals(v2Fingerprint, store.register(v2));
    assertEquals(v2Fingerprint, store.register(undocumented)); // same canonical form
    assertEquals(v2.getDoc(), store.find(v2Fingerprint).orElseThrow().getDoc());
  }

  @Test
  void open_reopenFindsRegistered(@TempDir Path folder) throws IOException {
    SchemaStore.open(folder).register(v2);

    SchemaStore reopened = SchemaStore.open(folder);

    Schema found = reopened.find(v2Fingerprint).orElseThrow();
    assertEquals(v2, found);
    assertEquals(v2.getField("eventTime").schema().getLogicalType(),
        found.getField("eventTime").schema().getLogicalType());
    assertTrue(Files.isRegularFile(folder.resolve(String.format("%016x.avsc", v2Fingerprint))));
  }

  @Test
  void open_persistsBuiltInsWithoutLeftovers(@TempDir Path folder) throws IOException {
    SchemaStore.open(folder);

    try (Stream<Path> files = Files.list(folder)) {
      assertEquals(List.of(
              String.format("%016x.avsc", SchemaNormalization.parsingFingerprint64(Message.getClassSchema())),
              String.format("%016x.avsc", SchemaNormalization.parsingFingerprint64(Note.getClassSchema())))
              .stream().sorted().toList(),
          files.map(file -> file.getFileName().toString()).sorted().toList());
    }
  }

  @Test
  void open_reopenedStoreDecodesEvents(@TempDir Path folder) throws IOException {
    byte[] payload = new EventSerde(SchemaStore.open(folder))
        .serialize(TestEvents.message("m-1", "persisted"));

    Message read = new EventSerde(SchemaStore.open(folder)).deserialize(payload, Message.class);

    assertEquals("persisted", read.getText());
  }

  @Test
  void open_ignoresStrayTemporaryFile(@TempDir Path folder) throws IOException {
    Files.writeString(folder.resolve("." + SchemaStore.hex(v2Fingerprint) + "123.tmp"), "{\"ty");

    SchemaStore store = SchemaStore.open(folder);

    assertTrue(store.find(v2Fingerprint).isEmpty());
  }

  @Test
  void open_rejectsDamagedFile(@TempDir Path folder) throws IOException {
    Path file = folder.resolve(String.format("%016x.avsc", v2Fingerprint));
    Files.writeString(file, "{\"type\": \"record\", \"na");

    IOException e = assertThrows(IOException.class, () -> SchemaStore.open(folder));
    assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
  }

  @Test
  void open_rejectsFileNotMatchingItsName(@TempDir Path folder) throws IOException {
    Path file = folder.resolve("0123456789abcdef.avsc");
    Files.writeString(file, v2.toString());

    IOException e = assertThrows(IOException.class, () -> SchemaStore.open(folder));
    assertTrue(e.getMessage().contains(SchemaStore.hex(v2Fingerprint)), e.getMessage());
  }
}
