package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import java.time.Instant;
import org.apache.avro.specific.SpecificRecord;

/**
 * JSON lines of events for a Kafka cluster rather than the device's log: the line format of {@code
 * pockettune produce} (a {@code Message} from {@code text}, a {@code Note} from {@code body}; the key
 * is {@code key}, else the conversation or the id; the event time defaults to now), parsed by the
 * same code, plus an optional {@code topic} field that names the line's topic in place of the
 * file's default. The caller encodes the record (with {@code EventSerde}) and sends it keyed by
 * {@link Line#key()}, which on a cluster is the user id.
 *
 * <p>Thread-safe.
 */
public final class EventLines {

  private EventLines() {}

  /**
   * One line's event and where it goes.
   *
   * @param topic the line's {@code topic}, else the default topic
   * @param key the Kafka record key
   * @param eventTime the event's time, also the Kafka record's timestamp
   * @param event the Avro record ({@code Message} or {@code Note})
   */
  public record Line(String topic, String key, Instant eventTime, SpecificRecord event) {}

  /**
   * Parses one line.
   *
   * @param defaultTopic the topic of a line without a {@code topic} field; null for none
   * @param lineNumber the line's number, for messages
   * @throws IllegalArgumentException one sentence naming the line and what is wrong with it
   */
  public static Line parse(String line, String defaultTopic, long lineNumber) {
    String where = "line " + lineNumber;
    JsonNode node = EventJson.object(line, where);
    JsonNode t = node.get("topic");
    if (t != null && !t.isNull() && !t.isTextual()) {
      throw new IllegalArgumentException(where + " has a topic that is not a string: write \"topic\": \"messages\"");
    }
    String topic = t != null && t.isTextual() ? t.asText() : defaultTopic;
    if (topic == null || topic.isEmpty()) {
      throw new IllegalArgumentException(where + " has no topic: give it a \"topic\" field or give a default topic");
    }
    EventJson.Event e = EventJson.event(topic, node, where, System.currentTimeMillis());
    return new Line(topic, e.key(), e.time(), e.record());
  }
}
