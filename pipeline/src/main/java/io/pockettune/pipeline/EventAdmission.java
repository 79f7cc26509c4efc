package io.pockettune.pipeline;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.RecordAdmission;
import io.pockettune.schemas.EventSerde;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * What the Kafka listener appends for each record a Kafka producer sends, so that producers in any
 * language can send events:
 * <ul>
 *   <li>a JSON object with the fields {@code pockettune produce} accepts ({@code text} for a
 *       message, {@code body} for a note, optional {@code eventTime}, {@code attrs}, ...) is
 *       converted to that Avro event, with the Kafka record's timestamp as the default event time;
 *       the Kafka record's key and partition stay the producer's;
 *   <li>anything else (an Avro single-object event as {@code EventSerializer} writes it, or bytes
 *       that are no event) is appended as it is, as a Kafka broker would store it. The pipeline
 *       decodes it as any other event and dead-letters what does not decode, with the reason.
 *       Appending it keeps the offsets a producer is told its records' own: dropping a record from
 *       a batch would shift every later offset of the batch.
 * </ul>
 * Writes to the dead-letter topic are refused (it is PocketTune's own record of what could not
 * train) and dead-lettered with that reason, so the attempt is visible.
 * Thread-safe.
 */
final class EventAdmission implements RecordAdmission {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final EventJson json;
  private final DeadLetters deadLetters;

  EventAdmission(EmbeddedLog log, EventSerde serde) {
    this.json = new EventJson(log, serde);
    this.deadLetters = new DeadLetters(log);
  }

  @Override
  public Verdict admit(String topic, byte[] key, byte[] value, long timestamp) {
    if (topic.equals(DeadLetters.TOPIC)) {
      return Verdict.refuse("the dead-letter topic is written by PocketTune only; produce events to "
          + Topics.MESSAGES + " or " + Topics.NOTES);
    }
    int first = 0;
    while (first < value.length && Character.isWhitespace(value[first])) {
      first++;
    }
    if (first < value.length && value[first] == '{') {
      try {
        JsonNode node = JSON.readTree(new String(value, StandardCharsets.UTF_8));
        if (node != null && node.isObject()) {
          return Verdict.keep(json.convert(topic, node, timestamp));
        }
      } catch (JsonProcessingException | IllegalArgumentException notAnEvent) {
        // appended as it is; the pipeline dead-letters it with the reason
      }
    }
    return Verdict.keep(value);
  }

  @Override
  public void deadLetter(String topic, int partition, byte[] key, byte[] value, long timestamp, String reason)
      throws IOException {
    deadLetters.refused(topic, partition, key, value, timestamp, reason);
  }
}
