package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.events.Message;
import io.pockettune.ingest.ListenerCredentials;
import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.LogSnapshot;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Encryption at rest through the runtime and the CLI, on real files and a real RocksDB store: an
 * encrypted data directory holds none of the produced texts in any file (the same flow in the
 * clear holds all of them), it reopens with its key file, the Kafka listener serves plaintext
 * from it, and the key mistakes are refused in one sentence.
 */
class EncryptionAtRestTest {
  @TempDir Path dir;

  private static List<String> texts(String tag) {
    List<String> texts = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      texts.add("confidential " + tag + " note " + i + ": the surprise party is on friday");
    }
    return texts;
  }

  private static List<String> lines(List<String> texts) {
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < texts.size(); i++) {
      lines.add("{\"text\":\"" + texts.get(i) + "\",\"conversation\":\"c0\",\"eventTime\":"
          + (1788246000000L + i * 60_000L) + "}");
    }
    return lines;
  }

  /** Runs one flow: events by the runtime, a dead letter and a consumer through the Kafka listener, training. */
  private List<String> flow(Path pkg, Path dataDir, boolean encrypt) throws Exception {
    List<String> produced = new ArrayList<>(texts(encrypt ? "sealed" : "clear"));
    String deadLetter = "undecodable plain text for the dead letter topic " + (encrypt ? "sealed" : "clear");
    produced.add(deadLetter);
    try (PocketTune tune = PocketTune.builder(dataDir).model(pkg).batch(2).threads(1).snapshotEvery(1)
        .checkpointEvery(2).encrypt(encrypt).kafkaListener(new InetSocketAddress("127.0.0.1", 0), false).open()) {
      tune.appendJson(Topics.MESSAGES, lines(produced.subList(0, 8)));
      tune.startTraining();
      InetSocketAddress address = tune.kafkaListenerAddress().orElseThrow();
      Map<String, Object> config = new HashMap<>(ListenerCredentials.loadOrCreate(dataDir.resolve("kafka-credentials"))
          .credentials().clientConfig(address));
      try (KafkaProducer<String, String> producer = new KafkaProducer<>(config, new StringSerializer(),
          new StringSerializer())) {
        producer.send(new ProducerRecord<>(Topics.NOTES, 0, "ada", deadLetter)).get();
      }
      assertTrue(tune.awaitIdle(Duration.ofMinutes(1)));
      // the listener serves the log's records as plaintext Kafka batches
      try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config, new ByteArrayDeserializer(),
          new ByteArrayDeserializer())) {
        TopicPartition tp = new TopicPartition(Topics.MESSAGES, 0);
        consumer.assign(List.of(tp));
        consumer.seekToBeginning(List.of(tp));
        EventSerde serde = new EventSerde(SchemaStore.open(dataDir.resolve("schemas")));
        List<String> read = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (read.size() < 8 && System.nanoTime() < deadline) {
          for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
            read.add(((Message) serde.deserialize(r.value())).getText().toString());
          }
        }
        assertEquals(produced.subList(0, 8), read, "a Kafka consumer reads the events in the clear");
      }
      assertTrue(tune.lastStep() >= 4, "8 events, batch 2");
      tune.stopTraining();
    }
    return produced;
  }

  @Test
  @Timeout(value = 180, unit = TimeUnit.SECONDS)
  void encryptedDirectoryHoldsNoTextAndReopensWithItsKey() throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    Path clear = dir.resolve("clear");
    Path sealed = dir.resolve("sealed");
    List<String> clearTexts = flow(pkg, clear, false);
    List<String> sealedTexts = flow(pkg, sealed, true);

    for (String text : clearTexts) {
      assertTrue(anyFileContains(clear, text), "the clear flow must hold '" + text + "', or the check proves nothing");
    }
    assertTrue(anyFileContains(clear.resolve("log"), "pockettune.dead-letters"), "the dead letter topic exists");
    assertTrue(Files.walk(clear.resolve("log")).anyMatch(p -> p.toString().contains("pockettune.dead-letters-0")));
    for (String text : sealedTexts) {
      assertFalse(anyFileContains(sealed, text), "no file of an encrypted directory may hold '" + text + "'");
    }
    assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE),
        Files.getPosixFilePermissions(sealed.resolve("key")));
    assertEquals(32, Files.size(sealed.resolve("key")));
    assertFalse(Files.exists(clear.resolve("key")));

    // Later commands detect the encryption and load the key file: status, the log, a rollback
    // that restores from an encrypted snapshot.
    try (PocketTune tune = PocketTune.builder(sealed).model(pkg).threads(1).open()) {
      assertTrue(tune.lastStep() >= 4);
      PocketTune.RollbackResult r = tune.rollback(Long.toString(tune.checkpoints().get(0).id()));
      assertTrue(r.snapshotStep() > 0, "the rollback restored from an encrypted snapshot: " + r.json());
      assertEquals(Boolean.TRUE, r.verified(), "replay from one encrypted snapshot reproduces the next bit for bit: "
          + r.json());
    }
    byte[] key = Files.readAllBytes(sealed.resolve("key"));
    try (LogSnapshot log = LogSnapshot.open(sealed.resolve("log"), key)) {
      EventSerde serde = new EventSerde(SchemaStore.open(sealed.resolve("schemas")));
      List<LogEntry> entries = log.read(Topics.MESSAGES, 0, 0, 100);
      List<String> read = new ArrayList<>();
      for (LogEntry e : entries) {
        read.add(((Message) serde.deserialize(e.value())).getText().toString());
      }
      assertEquals(sealedTexts.subList(0, 8), read);
      List<LogEntry> letters = log.read(DeadLetters.TOPIC, 0, 0, 10);
      assertEquals(1, letters.size(), "the undecodable note went to the dead letters");
      assertTrue(new String(letters.get(0).value(), StandardCharsets.UTF_8).contains("payload_base64"));
    }
    CliRun status = CliRun.of("status", "--data-dir", sealed.toString(), "--model", pkg.toString(), "--json");
    assertEquals(0, status.exit(), status.err());
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void keyMistakesAreRefusedInOneSentence() throws Exception {
    Path sealed = dir.resolve("sealed");
    Path clear = dir.resolve("clear");
    Path events = dir.resolve("events.jsonl");
    Files.write(events, lines(texts("x")));
    CliRun made = CliRun.of("produce", "--encrypt", "--data-dir", sealed.toString(), "--topic", "messages",
        "--file", events.toString());
    assertEquals(0, made.exit(), made.err());
    assertTrue(Files.exists(sealed.resolve("key")));
    CliRun plain = CliRun.of("produce", "--data-dir", clear.toString(), "--topic", "messages", "--file",
        events.toString());
    assertEquals(0, plain.exit(), plain.err());
    CliRun again = CliRun.of("produce", "--data-dir", sealed.toString(), "--topic", "messages", "--file",
        events.toString(), "--json");
    assertEquals(0, again.exit(), "a later command detects the encryption: " + again.err());

    CliRun encryptClear = CliRun.of("produce", "--encrypt", "--data-dir", clear.toString(), "--topic", "messages",
        "--file", events.toString());
    assertNotEquals(0, encryptClear.exit());
    assertOneSentence(encryptClear.err(), "already holds unencrypted data");

    byte[] key = Files.readAllBytes(sealed.resolve("key"));
    Files.move(sealed.resolve("key"), dir.resolve("key.moved"));
    CliRun missing = CliRun.of("produce", "--data-dir", sealed.toString(), "--topic", "messages", "--file",
        events.toString());
    assertNotEquals(0, missing.exit());
    assertOneSentence(missing.err(), "is encrypted but its key file");
    IllegalStateException noKey = assertThrows(IllegalStateException.class,
        () -> PocketTune.builder(sealed).open());
    assertTrue(noKey.getMessage().contains("is encrypted"), noKey.getMessage());

    byte[] wrong = key.clone();
    wrong[0] ^= 1;
    IllegalStateException wrongKey = assertThrows(IllegalStateException.class,
        () -> PocketTune.builder(sealed).encryptionKey(wrong).open());
    assertTrue(wrongKey.getMessage().contains("is not the key"), wrongKey.getMessage());
    IllegalStateException onClear = assertThrows(IllegalStateException.class,
        () -> PocketTune.builder(clear).encryptionKey(key).open());
    assertTrue(onClear.getMessage().contains("is not encrypted"), onClear.getMessage());

    // the app's own key opens it, and no key file is written
    try (PocketTune tune = PocketTune.builder(sealed).encryptionKey(key).open()) {
      assertEquals(16L, tune.endOffsets().get(new TopicPartition(Topics.MESSAGES, 0)));
    }
    assertFalse(Files.exists(sealed.resolve("key")));
    // a new directory opened with the app's key becomes encrypted without a key file
    Path appDir = dir.resolve("app");
    try (PocketTune tune = PocketTune.builder(appDir).encryptionKey(key).open()) {
      tune.appendJson(Topics.MESSAGES, lines(texts("app")));
    }
    assertFalse(Files.exists(appDir.resolve("key")));
    for (String text : texts("app")) {
      assertFalse(anyFileContains(appDir, text), text);
    }
    assertThrows(IllegalStateException.class, () -> PocketTune.builder(appDir).open());
  }

  @Test
  @Timeout(value = 300, unit = TimeUnit.SECONDS)
  void demoWithEncryptLeavesNoEventTextInAnyFile() throws Exception {
    Path data = dir.resolve("demo");
    CliRun r = CliRun.of("demo", "--encrypt", "--data-dir", data.toString(), "--steps", "4", "--batch", "4",
        "--heldout", "8", "--snapshot-every", "2", "--threads", "1", "--json");
    assertEquals(0, r.exit(), r.err());
    byte[] key = Files.readAllBytes(data.resolve("key"));
    List<String> texts = new ArrayList<>();
    try (LogSnapshot log = LogSnapshot.open(data.resolve("log"), key)) {
      EventSerde serde = new EventSerde(SchemaStore.open(data.resolve("schemas")));
      for (String topic : log.topics()) {
        if (topic.equals(DeadLetters.TOPIC)) {
          continue;
        }
        for (int p = 0; p < log.partitionCount(topic); p++) {
          for (LogEntry e : log.read(topic, p, 0, 10_000)) {
            Object event = serde.deserialize(e.value());
            texts.add(event instanceof Message m ? m.getText().toString()
                : ((io.pockettune.events.Note) event).getBody().toString());
          }
        }
      }
    }
    assertEquals(4 * 4 + 8, texts.size(), "the demo's events read back with the key");
    for (String text : texts) {
      if (text.length() >= 12) {
        assertFalse(anyFileContains(data, text), "no file of the encrypted demo may hold '" + text + "'");
      }
    }
    CliRun again = CliRun.of("demo", "--data-dir", data.toString(), "--steps", "2", "--batch", "4", "--heldout", "4",
        "--threads", "1", "--json");
    assertEquals(0, again.exit(), "the demo detects the encryption on its second run: " + again.err());
  }

  /** {@code pockettune serve --encrypt} in a child JVM: the key file, events trained, no text in any file. */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void serveWithEncryptMakesAnEncryptedDirectoryAndTrainsInIt() throws Exception {
    Path data = dir.resolve("serve");
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    List<String> texts = texts("served");
    try (ServeProcess serve = ServeProcess.start(data, dir.resolve("serve.err"), List.of("--encrypt", "--threads", "1",
        "--batch", "4", "--max-idle-ms", "0", "--snapshot-every", "1", "--print-steps"))) {
      CrashImageTest.awaitService(data, serve);
      JsonNode answer = ControlChannel.call(data, "{\"op\":\"produce\",\"topic\":\"messages\"}", lines(texts))
          .orElseThrow();
      assertEquals(texts.size(), answer.path("appended").asInt(), answer.toString());
      serve.awaitCommitted(texts.size() / 4, 60_000);
      serve.stop(data);
    }
    assertEquals(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE),
        Files.getPosixFilePermissions(data.resolve("key")));
    assertTrue(io.pockettune.ingest.EmbeddedLog.isEncrypted(data.resolve("log")), "the log holds the encryption marker");
    for (String text : texts) {
      assertFalse(anyFileContains(data, text), "no file of the served directory may hold '" + text + "'");
    }
    try (PocketTune tune = PocketTune.builder(data).open()) { // the key file is found by itself
      assertEquals(texts.size() / 4, tune.lastStep());
    }
  }

  private static void assertOneSentence(String err, String expected) {
    String line = err.strip();
    assertFalse(line.contains("\n"), "one line: " + err);
    assertTrue(line.contains(expected), err);
  }

  static boolean anyFileContains(Path root, String text) throws IOException {
    byte[] needle = text.getBytes(StandardCharsets.UTF_8);
    try (Stream<Path> files = Files.walk(root)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        byte[] bytes;
        try {
          bytes = Files.readAllBytes(f);
        } catch (IOException e) {
          continue; // a socket or a file removed meanwhile
        }
        outer:
        for (int i = 0; i + needle.length <= bytes.length; i++) {
          for (int j = 0; j < needle.length; j++) {
            if (bytes[i + j] != needle[j]) {
              continue outer;
            }
          }
          return true;
        }
      }
    }
    return false;
  }
}
