package io.pockettune.pipeline;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogRecord;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.List;

/**
 * Where events that cannot train go: one record per event on the topic {@link #TOPIC}, keyed by
 * the event's coordinates, with a JSON value naming the reason and carrying the original bytes.
 * The append is durable before the pipeline commits past the event, so an event is either trained,
 * dead-lettered, or still ahead of the committed offsets: never lost.
 */
final class DeadLetters {
  static final String TOPIC = "pockettune.dead-letters";

  private final EmbeddedLog log;
  private long count;

  DeadLetters(EmbeddedLog log) {
    this.log = log;
    try {
      log.createTopic(TOPIC, 1);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot create the dead-letter topic: " + e.getMessage(), e);
    }
  }

  void send(LogSource.SourceRecord r, String reason) {
    String coordinates = r.partition().topic() + "/" + r.partition().partition() + "/" + r.offset();
    String value = new JsonLine()
        .put("topic", r.partition().topic())
        .put("partition", r.partition().partition())
        .put("offset", r.offset())
        .put("reason", reason)
        .put("payload_base64", r.value() == null ? null : Base64.getEncoder().encodeToString(r.value()))
        .toString();
    try {
      log.append(TOPIC, 0, List.of(new LogRecord(r.timestamp(),
          coordinates.getBytes(StandardCharsets.UTF_8), value.getBytes(StandardCharsets.UTF_8))));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write to the dead-letter topic: " + e.getMessage(), e);
    }
    count++;
  }

  /**
   * Dead-letters a record a Kafka producer sent that was refused before it was appended (so it has
   * no offset), with the reason; durable on return.
   */
  void refused(String topic, int partition, byte[] key, byte[] value, long timestamp, String reason) throws IOException {
    String coordinates = topic + "/" + partition + "/refused";
    String json = new JsonLine()
        .put("topic", topic)
        .put("partition", partition)
        .put("offset", null)
        .put("source", "kafka-listener")
        .put("reason", reason)
        .put("key_base64", key == null ? null : Base64.getEncoder().encodeToString(key))
        .put("payload_base64", Base64.getEncoder().encodeToString(value))
        .toString();
    log.append(TOPIC, 0, List.of(new LogRecord(timestamp, coordinates.getBytes(StandardCharsets.UTF_8),
        json.getBytes(StandardCharsets.UTF_8))));
  }

  long count() {
    return count;
  }
}
