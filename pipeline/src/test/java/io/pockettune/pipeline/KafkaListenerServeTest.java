package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.events.Message;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogEntry;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code serve --kafka-listener} in a child JVM, with kcat (librdkafka) as the Kafka client: JSON
 * values produced with acks=all become Avro messages the service trains on, a consumer group reads
 * them back and its offsets survive a restart, a wrong password appends nothing.
 */
class KafkaListenerServeTest {
  private static final int EVENTS = 20;
  private static final int BATCH = 4;
  private static final List<String> SERVE = List.of("--threads", "1", "--batch", Integer.toString(BATCH),
      "--max-tokens", "64", "--max-idle-ms", "0", "--checkpoint-every", "10", "--snapshot-every", "8",
      "--kafka-listener", "127.0.0.1:0", "--print-steps");

  @TempDir Path dir;
  private Path data;

  @BeforeEach
  void model() throws Exception {
    Kcat.assumeInstalled();
    data = dir.resolve("data");
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void serve_kcatProducesAndConsumesThroughTheListener() throws Exception {
    List<String> texts = new ArrayList<>();
    StringBuilder lines = new StringBuilder();
    for (int i = 0; i < EVENTS; i++) {
      texts.add("kcat says hello " + i + " x");
      lines.append("c").append(i % 3).append('\t').append("{\"text\":\"").append(texts.get(i))
          .append("\",\"conversation\":\"c").append(i % 3).append("\"}\n");
    }
    byte[] credentialsFile;
    try (ServeProcess serve = ServeProcess.start(data, dir.resolve("serve.err"), SERVE)) {
      int port = serve.awaitListenerPort();
      Path file = data.resolve("kafka-credentials");
      assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
      credentialsFile = Files.readAllBytes(file);
      Properties credentials = Kcat.credentials(data);
      assertEquals("pockettune", credentials.getProperty("username"));

      Kcat.Run refused = Kcat.run(Kcat.command(port, "pockettune", credentials.getProperty("password") + "-wrong",
          "-P", "-t", Topics.MESSAGES, "-K", "\\t", "-X", "acks=all", "-X", "message.timeout.ms=5000"), lines.toString(), 30);
      assertNotEquals(0, refused.exit(), refused.err());
      assertTrue(refused.err().contains("SASL authentication error: Authentication failed: invalid username or password"),
          refused.err());

      Kcat.Run produced = Kcat.run(Kcat.command(port, credentials, "-P", "-t", Topics.MESSAGES, "-K", "\\t",
          "-X", "acks=all", "-v", "-v", "-v"), lines.toString(), 60);
      assertEquals(0, produced.exit(), produced.err());
      assertEquals(EVENTS, produced.err().lines().filter(l -> l.startsWith("% Message delivered to partition ")).count(),
          produced.err());

      assertEquals(EVENTS / BATCH, serve.awaitCommitted(EVENTS / BATCH, 60_000), "one step per batch of 4");
      JsonNode status = CliRun.of("status", "--data-dir", data.toString(), "--json").json();
      assertEquals(EVENTS / BATCH, status.path("last_step").asLong(), status.toString());
      assertEquals(0, status.path("lag").asLong(), status.toString());
      assertEquals(0, status.path("dead_letters").asLong(), status.toString());

      Kcat.Run group = consumeGroup(port, credentials);
      assertEquals(EVENTS, new TreeSet<>(group.out().lines().toList()).size(), group.out() + group.err());
      Kcat.Run again = consumeGroup(port, credentials);
      assertEquals("", again.out(), "the group's offsets were committed: nothing new to read\n" + again.err());
      serve.stop(data);
    }

    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"))) {
      EventSerde serde = new EventSerde(SchemaStore.open(data.resolve("schemas")));
      List<String> logged = new ArrayList<>();
      for (int p = 0; p < Topics.MESSAGE_PARTITIONS; p++) {
        for (LogEntry e : log.read(Topics.MESSAGES, p, 0, 10_000)) {
          Message m = (Message) serde.deserialize(e.value());
          logged.add(m.getText());
          assertEquals(m.getConversation(), new String(e.key(), java.nio.charset.StandardCharsets.UTF_8),
              "the producer's key is kept");
        }
      }
      logged.sort(null);
      List<String> sent = new ArrayList<>(texts);
      sent.sort(null);
      assertEquals(sent, logged, "every event once as an Avro message, none from the wrong password");
    }

    try (ServeProcess serve = ServeProcess.start(data, dir.resolve("serve.err"), SERVE)) {
      int port = serve.awaitListenerPort();
      Path file = data.resolve("kafka-credentials");
      assertArrayEquals(credentialsFile, Files.readAllBytes(file), "a restart keeps the credentials");
      assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file)));
      Kcat.Run afterRestart = consumeGroup(port, Kcat.credentials(data));
      assertEquals("", afterRestart.out(), "the group's offsets survived the restart\n" + afterRestart.err());
      serve.stop(data);
    }
  }

  /** A kcat consumer in group {@code g} reading {@code messages} to its end: one "partition offset" line a record. */
  private static Kcat.Run consumeGroup(int port, Properties credentials) throws Exception {
    Kcat.Run run = Kcat.run(Kcat.command(port, credentials, "-G", "g", "-X", "auto.offset.reset=earliest", "-e",
        "-f", "%p %o\\n", Topics.MESSAGES), null, 60);
    assertEquals(0, run.exit(), run.err());
    return run;
  }
}
