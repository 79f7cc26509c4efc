package io.pockettune.pipeline;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.KeyPartitioner;
import io.pockettune.ingest.LogRecord;
import io.pockettune.schemas.EventSerde;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.avro.specific.SpecificRecord;

/**
 * What {@code pockettune produce} appends: one event per JSON line, turned into an Avro record and
 * appended to a topic of the embedded log, partitioned by key with Kafka's default partitioner
 * (murmur2 of the key modulo the partition count), as the demo does.
 *
 * <p>A line is a {@code Message} when the topic is {@code messages} or the line has a {@code text}
 * field: {@code {"text": "...", "conversation": "ada", "sender": "maya", "id": "m-1",
 * "eventTime": "2026-09-01T07:00:00Z" | 1788246000000, "attrs": {"label": "x"}}}; it is a
 * {@code Note} when the topic is {@code notes} or the line has a {@code body} field: {@code
 * {"title": "...", "body": "...", ...}}. Only the text (or body) is required; the key is {@code
 * key}, else the conversation (messages) or the id; the event time defaults to now. Whether the
 * text is usable for training is the pipeline's business: an empty text is appended and then
 * dead-lettered.
 *
 * <p>Thread-safe.
 */
final class EventJson {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final EmbeddedLog log;
  private final EventSerde serde;

  EventJson(EmbeddedLog log, EventSerde serde) {
    this.log = log;
    this.serde = serde;
  }

  /** A parsed line: the record and where it goes. */
  record Parsed(int partition, LogRecord record) {}

  /**
   * Appends the lines as events to {@code topic}, durably, one batch per partition.
   *
   * @param firstLine the number of the first line, for messages
   * @return per partition ("topic-p"), the first and last offset given to the events
   * @throws IllegalArgumentException naming the first bad line; then nothing of these lines is appended
   */
  Map<String, List<Long>> append(String topic, List<String> lines, long firstLine) throws IOException {
    if (!log.topics().contains(topic)) {
      throw new IllegalArgumentException("there is no topic '" + topic + "' in the log: use one of " + log.topics());
    }
    int partitions = log.partitionCount(topic);
    List<Parsed> parsed = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      parsed.add(parse(topic, partitions, lines.get(i), firstLine + i));
    }
    Map<Integer, List<LogRecord>> byPartition = new LinkedHashMap<>();
    for (Parsed p : parsed) {
      byPartition.computeIfAbsent(p.partition(), k -> new ArrayList<>()).add(p.record());
    }
    Map<String, List<Long>> ranges = new java.util.TreeMap<>();
    for (Map.Entry<Integer, List<LogRecord>> e : byPartition.entrySet()) {
      long first = log.append(topic, e.getKey(), e.getValue());
      ranges.put(topic + "-" + e.getKey(), List.of(first, first + e.getValue().size() - 1));
    }
    return ranges;
  }

  Parsed parse(String topic, int partitions, String line, long lineNumber) {
    String where = "line " + lineNumber;
    Event event = event(topic, object(line, where), where, System.currentTimeMillis());
    byte[] keyBytes = event.key().getBytes(StandardCharsets.UTF_8);
    int partition = KeyPartitioner.partitionOf(keyBytes, partitions);
    return new Parsed(partition, new LogRecord(event.time().toEpochMilli(), keyBytes, serde.serialize(event.record())));
  }

  /**
   * Converts one JSON object (a Kafka record's value, say) into the Avro event it describes.
   *
   * @param defaultTime the event time when the object has no {@code eventTime}
   * @return the event's single-object encoding
   * @throws IllegalArgumentException naming what is wrong with the object
   */
  byte[] convert(String topic, JsonNode node, long defaultTime) {
    return serde.serialize(event(topic, node, "the JSON value", defaultTime).record());
  }

  /**
   * Reads one line as a JSON object.
   *
   * @param where the line's name in messages ("line 3")
   * @throws IllegalArgumentException naming the line when it is not one JSON object
   */
  static JsonNode object(String line, String where) {
    JsonNode node;
    try {
      node = JSON.readTree(line);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException(where + " is not JSON (" + e.getOriginalMessage()
          + "): write one JSON object per line");
    }
    if (node == null || !node.isObject()) {
      throw new IllegalArgumentException(where + " is not a JSON object: write one object per line");
    }
    return node;
  }

  /** An event read from JSON, with the key that partitions it. */
  record Event(SpecificRecord record, String key, Instant time) {}

  /**
   * Converts one JSON object into the event it describes (the format in the class comment).
   *
   * @param defaultTime the event time when the object has no {@code eventTime}
   * @throws IllegalArgumentException naming {@code where} and what is wrong
   */
  static Event event(String topic, JsonNode node, String where, long defaultTime) {
    Instant time = time(node.get("eventTime"), where, defaultTime);
    Map<String, String> attrs = new LinkedHashMap<>();
    JsonNode a = node.get("attrs");
    if (a != null && a.isObject()) {
      a.properties().forEach(f -> attrs.put(f.getKey(), f.getValue().asText()));
    }
    String id = text(node, "id", UUID.randomUUID().toString());
    boolean message = topic.equals(Topics.MESSAGES) || (!topic.equals(Topics.NOTES) && node.has("text"));
    if (message) {
      String text = required(node, "text", where);
      String conversation = text(node, "conversation", "default");
      SpecificRecord record = Message.newBuilder().setId(id).setConversation(conversation)
          .setSender(text(node, "sender", "me")).setText(text).setEventTime(time).setAttrs(attrs).build();
      return new Event(record, text(node, "key", conversation), time);
    }
    String body = required(node, "body", where);
    SpecificRecord record = Note.newBuilder().setId(id).setTitle(text(node, "title", "")).setBody(body)
        .setEventTime(time).setAttrs(attrs).build();
    return new Event(record, text(node, "key", id), time);
  }

  private static String text(JsonNode node, String field, String otherwise) {
    JsonNode v = node.get(field);
    return v == null || v.isNull() ? otherwise : v.asText();
  }

  private static String required(JsonNode node, String field, String where) {
    JsonNode v = node.get(field);
    if (v == null || !v.isTextual()) {
      throw new IllegalArgumentException(where + " has no string field '" + field
          + "': every event needs one");
    }
    return v.asText();
  }

  private static Instant time(JsonNode v, String where, long defaultTime) {
    if (v == null || v.isNull()) {
      return Instant.ofEpochMilli(defaultTime);
    }
    if (v.isNumber()) {
      return Instant.ofEpochMilli(v.asLong());
    }
    try {
      return Instant.parse(v.asText());
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException(where + " has eventTime '" + v.asText()
          + "', which is neither epoch milliseconds nor an ISO-8601 instant such as 2026-09-01T07:00:00Z");
    }
  }

  static JsonNode parseObject(String line) throws IOException {
    return JSON.readTree(line);
  }
}
