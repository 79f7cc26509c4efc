package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.ListenerCredentials;
import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.LogSnapshot;
import io.pockettune.ingest.RecordAdmission;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Kafka listener as the runtime runs it: {@link EventAdmission}'s treatment of values, and a
 * stock {@code KafkaProducer} sending JSON strings to {@link PocketTune.Builder#kafkaListener},
 * whose events are appended as Avro events and trained on.
 */
class KafkaListenerRuntimeTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir Path dir;

  @Test
  void admission_convertsJsonEvents_keepsEverythingElse_refusesTheDeadLetterTopic() throws Exception {
    try (EmbeddedLog log = EmbeddedLog.open(dir.resolve("log"))) {
      Topics.create(log);
      EventSerde serde = new EventSerde(SchemaStore.withBuiltIns());
      EventAdmission admission = new EventAdmission(log, serde);
      long ts = 1_788_246_000_000L;

      RecordAdmission.Verdict message = admission.admit(Topics.MESSAGES, null,
          bytes(" {\"text\": \"on my way\", \"conversation\": \"ada\", \"attrs\": {\"label\": \"x\"}}"), ts);
      Message m = assertInstanceOf(Message.class, serde.deserialize(message.value()));
      assertEquals("on my way", m.getText());
      assertEquals("ada", m.getConversation());
      assertEquals(Instant.ofEpochMilli(ts), m.getEventTime(), "the Kafka timestamp is the default event time");
      assertEquals(Map.of("label", "x"), m.getAttrs());

      RecordAdmission.Verdict note = admission.admit(Topics.NOTES, null,
          bytes("{\"title\": \"t\", \"body\": \"buy rope\", \"eventTime\": \"2026-09-01T07:00:00Z\"}"), ts);
      Note n = assertInstanceOf(Note.class, serde.deserialize(note.value()));
      assertEquals("buy rope", n.getBody());
      assertEquals(Instant.parse("2026-09-01T07:00:00Z"), n.getEventTime());

      byte[] avro = serde.serialize(m);
      assertArrayEquals(avro, admission.admit(Topics.MESSAGES, null, avro, ts).value(), "an Avro event as it is");
      for (String other : List.of("plain text", "{\"no_text\": 1}", "{not json", "[1, 2]", "")) {
        RecordAdmission.Verdict v = admission.admit(Topics.MESSAGES, null, bytes(other), ts);
        assertFalse(v.refused(), other);
        assertArrayEquals(bytes(other), v.value(), "appended as sent, for the pipeline to dead-letter: " + other);
      }

      RecordAdmission.Verdict dlq = admission.admit(DeadLetters.TOPIC, null, bytes("{\"text\": \"x\"}"), ts);
      assertTrue(dlq.refused());
      assertTrue(dlq.refusal().contains("written by PocketTune only"), dlq.refusal());
      admission.deadLetter(DeadLetters.TOPIC, 0, bytes("k"), bytes("{\"text\": \"x\"}"), ts, dlq.refusal());
      List<LogEntry> letters = log.read(DeadLetters.TOPIC, 0, 0, 10);
      assertEquals(1, letters.size());
      JsonNode letter = JSON.readTree(letters.get(0).value());
      assertEquals("kafka-listener", letter.get("source").asText());
      assertEquals(dlq.refusal(), letter.get("reason").asText());
      assertTrue(letter.get("offset").isNull());
      assertEquals("{\"text\": \"x\"}", new String(java.util.Base64.getDecoder()
          .decode(letter.get("payload_base64").asText()), StandardCharsets.UTF_8));
    }
  }

  @Test
  void kafkaProducer_jsonStrings_areAppendedAsEventsAndTrained() throws Exception {
    Path modelDir = PipelineFixture.tinyPackage(dir, null, null);
    Path dataDir = dir.resolve("data");
    List<String> texts = new ArrayList<>();
    try (PocketTune tune = PocketTune.builder(dataDir).model(modelDir).batch(2).threads(1)
        .kafkaListener(new InetSocketAddress("127.0.0.1", 0), false).open()) {
      assertTrue(tune.kafkaListenerAddress().isEmpty(), "nothing listens before training starts");
      tune.startTraining();
      InetSocketAddress address = tune.kafkaListenerAddress().orElseThrow();
      assertEquals(Set.of(java.nio.file.attribute.PosixFilePermission.OWNER_READ,
          java.nio.file.attribute.PosixFilePermission.OWNER_WRITE),
          Files.getPosixFilePermissions(dataDir.resolve("kafka-credentials")));
      ListenerCredentials credentials = ListenerCredentials.loadOrCreate(dataDir.resolve("kafka-credentials"))
          .credentials();
      Map<String, Object> config = new HashMap<>(credentials.clientConfig(address));
      try (KafkaProducer<String, String> producer = new KafkaProducer<>(config, new StringSerializer(),
          new StringSerializer())) {
        for (int i = 0; i < 6; i++) {
          String text = "message " + i + " sent by a Kafka client";
          texts.add(text);
          RecordMetadata m = producer.send(new ProducerRecord<>(Topics.MESSAGES, 0, "ada",
              "{\"text\": \"" + text + "\", \"conversation\": \"ada\"}")).get();
          assertEquals(i, m.offset());
        }
        ExecutionException refused = assertThrows(ExecutionException.class, () -> producer.send(
            new ProducerRecord<>(DeadLetters.TOPIC, 0, "x", "{\"text\": \"sneaky\"}")).get());
        assertInstanceOf(InvalidRecordException.class, refused.getCause());
      }
      assertTrue(tune.awaitIdle(Duration.ofMinutes(1)));
      assertEquals(3L, ((Number) tune.status().get("last_step")).longValue(), "6 events, batch 2: 3 steps");
    }
    try (LogSnapshot log = LogSnapshot.open(dataDir.resolve("log"))) {
      EventSerde serde = new EventSerde(SchemaStore.open(dataDir.resolve("schemas")));
      List<LogEntry> entries = log.read(Topics.MESSAGES, 0, 0, 100);
      assertEquals(6, entries.size());
      for (int i = 0; i < 6; i++) {
        assertEquals(texts.get(i), ((Message) serde.deserialize(entries.get(i).value())).getText());
        assertArrayEquals(bytes("ada"), entries.get(i).key(), "the Kafka record's key is kept");
      }
    }
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
