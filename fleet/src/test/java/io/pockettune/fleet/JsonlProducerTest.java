package io.pockettune.fleet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.ingest.LocalKafkaBroker;
import io.pockettune.pipeline.EventLines;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link JsonlProducer} against a real Kafka broker, with the sample the compose file replays. */
class JsonlProducerTest {

  private static final Path SAMPLE = Path.of(System.getProperty("pockettune.repoRoot", ".."))
      .resolve("fleet/docker/events.jsonl").toAbsolutePath().normalize();
  private static final int PARTITIONS = 4;

  @Test
  void run_sampleFile_everyEventArrivesKeyedByUserAtItsEventTime() throws Exception {
    List<String> expected = new ArrayList<>();
    Map<String, Integer> expectedPerTopic = new TreeMap<>();
    List<String> lines = Files.readAllLines(SAMPLE, StandardCharsets.UTF_8);
    for (int i = 0; i < lines.size(); i++) {
      EventLines.Line line = EventLines.parse(lines.get(i), null, i + 1);
      expected.add(line.topic() + " " + line.key() + " " + line.eventTime().toEpochMilli() + " " + text(line.event()));
      expectedPerTopic.merge(line.topic(), 1, Integer::sum);
    }
    assertTrue(expectedPerTopic.keySet().containsAll(List.of("messages", "notes")),
        "the sample " + SAMPLE + " should hold messages and notes: run fleet/docker/make-events.py again");

    try (LocalKafkaBroker broker = LocalKafkaBroker.start()) {
      for (String topic : expectedPerTopic.keySet()) {
        broker.createTopic(topic, PARTITIONS);
      }
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      int rc = JsonlProducer.run(List.of("--bootstrap-servers", broker.bootstrapServers(), "--file", SAMPLE.toString()),
          new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
      assertEquals(0, rc, "JsonlProducer failed: " + err.toString(StandardCharsets.UTF_8));
      assertTrue(out.toString(StandardCharsets.UTF_8).contains("sent " + lines.size() + " events"), out.toString());

      List<String> received = consume(broker.bootstrapServers(), expectedPerTopic.keySet(), lines.size());
      Map<String, Integer> receivedPerTopic = new TreeMap<>();
      received.forEach(r -> receivedPerTopic.merge(r.substring(0, r.indexOf(' ')), 1, Integer::sum));
      assertEquals(expectedPerTopic, receivedPerTopic, "events per topic");
      assertEquals(expected.stream().sorted().toList(), received.stream().sorted().toList(),
          "topic, key (the user), timestamp (the event time) and decoded text of every event");
    }
  }

  @Test
  void run_badLine_exitsTwoNamingTheLineAndSendsNothing(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("events.jsonl");
    Files.writeString(file, """
        {"topic": "messages", "key": "ada", "text": "fine"}
        {"topic": "messages", "key": "ada", "txt": "misspelt"}
        """);
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    // Nothing listens on port 1: a bad line must stop the run before any connection is tried.
    int rc = JsonlProducer.run(List.of("--bootstrap-servers", "127.0.0.1:1", "--file", file.toString()),
        new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    String message = err.toString(StandardCharsets.UTF_8).strip();
    assertEquals(2, rc, message);
    assertEquals(file + ": line 2 has no string field 'text': every event needs one; nothing was sent", message);
  }

  @Test
  void run_lineWithoutTopic_takesTheDefaultTopicOrExitsTwo(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("events.jsonl");
    Files.writeString(file, "{\"key\": \"ada\", \"text\": \"no topic\"}\n");
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int rc = JsonlProducer.run(List.of("--bootstrap-servers", "127.0.0.1:1", "--file", file.toString()),
        new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    assertEquals(2, rc);
    assertTrue(err.toString(StandardCharsets.UTF_8).contains("line 1 has no topic"), err.toString(StandardCharsets.UTF_8));
    assertEquals("messages", EventLines.parse(Files.readString(file), "messages", 1).topic());
  }

  private static List<String> consume(String bootstrap, Iterable<String> topics, int count) {
    Map<String, Object> config = Map.of(
        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
        ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed",
        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class,
        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    EventSerde serde = new EventSerde(SchemaStore.withBuiltIns());
    List<String> received = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (String topic : topics) {
        for (int p = 0; p < PARTITIONS; p++) {
          partitions.add(new TopicPartition(topic, p));
        }
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (received.size() < count && System.nanoTime() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          received.add(r.topic() + " " + new String(r.key(), StandardCharsets.UTF_8) + " " + r.timestamp() + " "
              + text(serde.deserialize(r.value())));
        }
      }
    }
    return received;
  }

  private static String text(SpecificRecord event) {
    return String.valueOf(event instanceof Message m ? m.getText() : ((Note) event).getBody());
  }
}
