package io.pockettune.fleet;

import io.pockettune.pipeline.EventLines;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Replays a JSON-lines file of events into a Kafka cluster, for the fleet job to train on: {@code
 * JsonlProducer --bootstrap-servers HOST:PORT --file events.jsonl [--topic T]}. A line is what
 * {@code pockettune produce} reads, with an optional {@code topic} field ({@link EventLines});
 * {@code --topic} is the topic of the lines without one. Each event is sent as its Avro
 * single-object encoding ({@link EventSerde}), keyed by the line's {@code key} (the user id the job
 * keys by), with the event time as the record's timestamp, from an idempotent producer with {@code
 * acks=all}.
 *
 * <p>Every line is parsed before anything is sent, so a bad line sends nothing: it is one sentence
 * on standard error naming the file and the line, exit code 2. Topics must exist (the compose
 * file's {@code kafka-init} creates them); a cluster that refuses an event is exit code 1.
 */
public final class JsonlProducer {

  private static final Duration METADATA_WAIT = Duration.ofSeconds(30);

  private JsonlProducer() {}

  public static void main(String[] args) {
    System.exit(run(List.of(args), System.out, System.err));
  }

  /** @return the exit code: 0 sent, 1 the cluster failed, 2 bad arguments or a bad line */
  static int run(List<String> args, PrintStream out, PrintStream err) {
    Map<String, String> options;
    List<EventLines.Line> events;
    try {
      options = options(args);
      events = read(Path.of(options.get("--file")), options.get("--topic"));
    } catch (IllegalArgumentException e) {
      err.println(e.getMessage());
      return 2;
    }
    String bootstrap = options.get("--bootstrap-servers");
    EventSerde serde = new EventSerde(SchemaStore.withBuiltIns());
    Map<String, Integer> perTopic = new TreeMap<>();
    AtomicReference<Exception> failure = new AtomicReference<>();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config(bootstrap))) {
      for (String topic : events.stream().map(EventLines.Line::topic).distinct().toList()) {
        try {
          producer.partitionsFor(topic);
        } catch (KafkaException e) {
          err.println("topic '" + topic + "' is not on the cluster at " + bootstrap + " (" + e.getMessage()
              + "): create it first, or check --bootstrap-servers");
          return 1;
        }
      }
      for (EventLines.Line e : events) {
        byte[] key = e.key().getBytes(StandardCharsets.UTF_8);
        producer.send(new ProducerRecord<>(e.topic(), null, e.eventTime().toEpochMilli(), key,
            serde.serialize(e.event())), (metadata, exception) -> {
              if (exception != null) {
                failure.compareAndSet(null, exception);
              }
            });
        perTopic.merge(e.topic(), 1, Integer::sum);
      }
      producer.flush();
    }
    if (failure.get() != null) {
      err.println("the cluster at " + bootstrap + " did not take every event (" + failure.get().getMessage()
          + "): some were sent; fix the cluster and send the file again");
      return 1;
    }
    out.println("sent " + events.size() + " events to " + bootstrap + ": " + perTopic);
    return 0;
  }

  private static Map<String, String> options(List<String> args) {
    List<String> known = List.of("--bootstrap-servers", "--file", "--topic");
    Map<String, String> options = new HashMap<>();
    for (int i = 0; i < args.size(); i += 2) {
      String a = args.get(i);
      if (!known.contains(a)) {
        throw new IllegalArgumentException("unknown option " + a + ": the options are " + String.join(" ", known));
      }
      if (i + 1 >= args.size()) {
        throw new IllegalArgumentException(a + " needs a value");
      }
      options.put(a, args.get(i + 1));
    }
    for (String required : List.of("--bootstrap-servers", "--file")) {
      if (!options.containsKey(required)) {
        throw new IllegalArgumentException(required + " is required: JsonlProducer --bootstrap-servers HOST:PORT"
            + " --file events.jsonl [--topic T]");
      }
    }
    return options;
  }

  private static List<EventLines.Line> read(Path file, String defaultTopic) {
    List<String> lines;
    try {
      lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException("there is no file " + file + ": give --file the JSON-lines file of events");
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read " + file + " (" + e.getMessage() + ")");
    }
    List<EventLines.Line> events = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      if (lines.get(i).isBlank()) {
        continue;
      }
      try {
        events.add(EventLines.parse(lines.get(i), defaultTopic, i + 1));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException(file + ": " + e.getMessage() + "; nothing was sent");
      }
    }
    return events;
  }

  private static Map<String, Object> config(String bootstrap) {
    return Map.of(
        ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
        ProducerConfig.ACKS_CONFIG, "all",
        ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
        ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) METADATA_WAIT.toMillis(),
        ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class,
        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
  }
}
