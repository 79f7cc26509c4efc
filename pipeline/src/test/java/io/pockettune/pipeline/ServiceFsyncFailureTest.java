package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.FaultyChannels;
import io.pockettune.ingest.KeyPartitioner;
import io.pockettune.ingest.LogConfig;
import io.pockettune.ingest.LogEntry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A failed fsync under a running service, injected into the real segment files of {@code messages-0}
 * ({@link FaultyChannels}): a {@code produce} over the control socket whose events needed that force
 * is answered with an error, never with offsets; later produces to that partition are refused in one
 * sentence; {@code status} still answers, says {@code running} and names the failed partition;
 * events of the other partition are still appended and trained; and after the service closes and
 * the directory is opened again, every offset a produce acknowledged holds its event and the
 * partition takes appends again.
 */
class ServiceFsyncFailureTest {
  @TempDir Path dir;

  /** @return a conversation name whose events go to messages partition {@code p} */
  private static String conversationOn(int p) {
    for (int i = 0; ; i++) {
      String c = "c" + i;
      if (KeyPartitioner.partitionOf(c.getBytes(StandardCharsets.UTF_8), 2) == p) {
        return c;
      }
    }
  }

  private static List<String> messages(String conversation, int from, int count) {
    List<String> lines = new ArrayList<>();
    for (int i = from; i < from + count; i++) {
      lines.add("{\"text\":\"see you at " + i + "\",\"conversation\":\"" + conversation + "\",\"eventTime\":"
          + (1788246000000L + i * 60_000L) + "}");
    }
    return lines;
  }

  /** @return the service's answer; an {@code {"error"}} answer (which the client raises) as that object */
  private static JsonNode call(Path data, String request, List<String> body) throws java.io.IOException {
    try {
      return ControlChannel.call(data, request, body).orElseThrow(() -> new AssertionError("no service answered"));
    } catch (IllegalArgumentException error) {
      return new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode().put("error", error.getMessage());
    }
  }

  private static JsonNode produce(Path data, List<String> lines) throws java.io.IOException {
    return call(data, "{\"op\":\"produce\",\"topic\":\"messages\"}", lines);
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void produceOverTheControlSocketIsNeverAcknowledgedWithoutItsForce() throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    Path data = dir.resolve("data");
    String on0 = conversationOn(0);
    String on1 = conversationOn(1);
    FaultyChannels faults = FaultyChannels.forPartitionDir("messages-0");
    Map<Long, String> acknowledged0 = new LinkedHashMap<>();
    try (PocketTune tune = PocketTune.builder(data).model(pkg).threads(1).batch(4).seed(7).controlSocket(true)
        .maxIdle(Duration.ofMillis(20)).pollInterval(Duration.ofMillis(10))
        .logConfig(LogConfig.defaults().withChannels(faults)).open()) {
      tune.startTraining();
      JsonNode ok = produce(data, messages(on0, 0, 8));
      assertEquals(8, ok.path("appended").asInt(), ok.toString());
      long first = ok.path("offsets").path("messages-0").get(0).asLong();
      for (int i = 0; i < 8; i++) {
        acknowledged0.put(first + i, "see you at " + i);
      }
      assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
      long stepsBefore = tune.lastStep();
      assertEquals(2, stepsBefore);

      faults.failForces(true);
      JsonNode failed = produce(data, messages(on0, 8, 4));
      assertTrue(failed.path("appended").isMissingNode(), failed.toString());
      assertTrue(failed.path("error").asText().contains("could not force messages-0"), failed.toString());
      faults.failForces(false);
      JsonNode refused = produce(data, messages(on0, 12, 4));
      assertTrue(refused.path("error").asText().startsWith("messages-0 refuses appends since forcing it to disk failed"),
          refused.toString());
      assertTrue(refused.path("error").asText().endsWith("close the log and open it again to recover the partition"),
          refused.toString());

      JsonNode status = call(data, "{\"op\":\"status\"}", List.of());
      assertEquals("running", status.path("state").asText(), status.toString());
      assertEquals(List.of("messages-0"), fieldNames(status.path("failed_partitions")), status.toString());
      assertEquals(refused.path("error").asText(), status.path("failed_partitions").path("messages-0").asText());

      JsonNode other = produce(data, messages(on1, 100, 8));
      assertEquals(8, other.path("appended").asInt(), "the other partition takes appends: " + other);
      assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
      assertEquals(stepsBefore + 2, tune.lastStep(), "and its events are trained");
      tune.stopTraining();
    } catch (java.io.IOException closing) {
      assertTrue(closing.getMessage().contains("validate and repair"), closing.getMessage());
    }

    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"))) {
      assertTrue(log.failedPartitions().isEmpty());
      for (Map.Entry<Long, String> ack : acknowledged0.entrySet()) {
        List<LogEntry> read = log.read("messages", 0, ack.getKey(), 1);
        assertEquals(1, read.size(), "acknowledged offset " + ack.getKey());
        assertEquals(on0, new String(read.get(0).key(), StandardCharsets.UTF_8));
      }
    }
    try (PocketTune tune = PocketTune.builder(data).model(pkg).threads(1).batch(4).seed(7).controlSocket(true)
        .maxIdle(Duration.ofMillis(20)).pollInterval(Duration.ofMillis(10)).open()) {
      tune.startTraining();
      JsonNode again = produce(data, messages(on0, 200, 4));
      assertEquals(4, again.path("appended").asInt(), "the reopened partition takes appends: " + again);
      JsonNode status = call(data, "{\"op\":\"status\"}", List.of());
      assertFalse(status.path("failed_partitions").fieldNames().hasNext(), status.toString());
    }
  }

  /**
   * The same through the Kafka listener: a stock KafkaProducer (acks=all, no retries) whose record
   * needed the failed force gets KAFKA_STORAGE_ERROR, never an offset; so does every later record to
   * that partition, while the other partition takes records; every acknowledged offset holds its
   * record after a reopen.
   */
  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void aKafkaProducerIsNeverAcknowledgedWithoutItsForce() throws Exception {
    Path pkg = PipelineFixture.tinyPackage(dir, null, null);
    Path data = dir.resolve("data");
    FaultyChannels faults = FaultyChannels.forPartitionDir("messages-0");
    Map<Long, String> acknowledged0 = new LinkedHashMap<>();
    try (PocketTune tune = PocketTune.builder(data).model(pkg).threads(1).batch(4).seed(7)
        .kafkaListener(new java.net.InetSocketAddress("127.0.0.1", 0), false)
        .logConfig(LogConfig.defaults().withChannels(faults)).open()) {
      tune.startTraining();
      java.net.InetSocketAddress address = tune.kafkaListenerAddress().orElseThrow();
      Map<String, Object> config = new java.util.HashMap<>(io.pockettune.ingest.ListenerCredentials
          .loadOrCreate(data.resolve("kafka-credentials")).credentials().clientConfig(address));
      config.put("acks", "all");
      config.put("retries", 0);
      config.put("enable.idempotence", false);
      try (org.apache.kafka.clients.producer.KafkaProducer<String, String> producer =
          new org.apache.kafka.clients.producer.KafkaProducer<>(config,
              new org.apache.kafka.common.serialization.StringSerializer(),
              new org.apache.kafka.common.serialization.StringSerializer())) {
        for (int i = 0; i < 4; i++) {
          String text = "durable message " + i;
          long offset = producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(Topics.MESSAGES, 0, "ada",
              "{\"text\": \"" + text + "\", \"conversation\": \"ada\"}")).get().offset();
          acknowledged0.put(offset, text);
        }
        faults.failForces(true);
        for (int i = 0; i < 2; i++) { // the record whose force fails, then one to the failed partition
          java.util.concurrent.ExecutionException e = org.junit.jupiter.api.Assertions.assertThrows(
              java.util.concurrent.ExecutionException.class, () -> producer.send(
                  new org.apache.kafka.clients.producer.ProducerRecord<>(Topics.MESSAGES, 0, "ada",
                      "{\"text\": \"never acknowledged\", \"conversation\": \"ada\"}")).get());
          org.junit.jupiter.api.Assertions.assertInstanceOf(
              org.apache.kafka.common.errors.KafkaStorageException.class, e.getCause(), e.toString());
          faults.failForces(false);
        }
        long other = producer.send(new org.apache.kafka.clients.producer.ProducerRecord<>(Topics.MESSAGES, 1, "bob",
            "{\"text\": \"the other partition\", \"conversation\": \"bob\"}")).get().offset();
        assertEquals(0, other, "the other partition takes records");
      }
      JsonLine status = tune.status();
      assertEquals("running", status.get("state"), status.toString());
      assertTrue(String.valueOf(status.get("failed_partitions")).contains("messages-0"), status.toString());
      tune.stopTraining();
    } catch (java.io.IOException closing) {
      assertTrue(closing.getMessage().contains("validate and repair"), closing.getMessage());
    }
    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"))) {
      for (Map.Entry<Long, String> ack : acknowledged0.entrySet()) {
        List<LogEntry> read = log.read("messages", 0, ack.getKey(), 1);
        assertEquals(1, read.size(), "acknowledged offset " + ack.getKey());
        assertTrue(new String(read.get(0).value(), StandardCharsets.UTF_8).contains(ack.getValue()),
            "acknowledged offset " + ack.getKey() + " holds its record");
      }
    }
  }

  private static List<String> fieldNames(JsonNode node) {
    List<String> names = new ArrayList<>();
    node.fieldNames().forEachRemaining(names::add);
    return names;
  }
}
