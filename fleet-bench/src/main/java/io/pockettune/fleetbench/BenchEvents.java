package io.pockettune.fleetbench;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The benchmark's input: {@code users} users with {@code perUser} events each, interleaved at
 * random (seeded), about a quarter of them notes and the rest messages, keyed by user.
 *
 * <p>Event times are spread evenly over three hours ending an hour ago: the local broker deletes
 * records older than its retention (7 days, by timestamp) and refuses ones more than an hour in the
 * future, and the spread keeps every event time distinct, so the job's training order (event time
 * first) is the order of {@link #byUser}.
 */
final class BenchEvents {
  private static final EventSerde SERDE = new EventSerde(SchemaStore.withBuiltIns());
  private static final String[] WORDS = ("the morning train was late again so I read the news and wrote a note about"
      + " the garden tomatoes coffee meeting moved to friday call mum about the weekend trip bring the charger")
      .split(" ");
  private static final long SPAN_MS = 3 * 3_600_000L;

  /** One event: its user, topic, time and Avro value. */
  record Event(String user, String topic, long time, byte[] value) {}

  private BenchEvents() {}

  static List<Event> generate(int users, int perUser, long seed, long nowMillis) {
    Random rnd = new Random(seed);
    List<String> pending = new ArrayList<>(users * perUser);
    for (int u = 0; u < users; u++) {
      for (int k = 0; k < perUser; k++) {
        pending.add(String.format("user-%04d", u));
      }
    }
    Collections.shuffle(pending, rnd);
    long start = nowMillis - 3_600_000L - SPAN_MS;
    long gap = Math.max(1, SPAN_MS / Math.max(1, pending.size()));
    List<Event> out = new ArrayList<>(pending.size());
    Map<String, Integer> counts = new HashMap<>();
    for (int i = 0; i < pending.size(); i++) {
      String user = pending.get(i);
      out.add(event(user, counts.merge(user, 1, Integer::sum), start + i * gap, rnd));
    }
    return out;
  }

  private static Event event(String user, int n, long time, Random rnd) {
    StringBuilder text = new StringBuilder();
    int words = 4 + rnd.nextInt(10);
    for (int w = 0; w < words; w++) {
      text.append(w == 0 ? "" : " ").append(WORDS[rnd.nextInt(WORDS.length)]);
    }
    SpecificRecord r;
    String topic;
    if (rnd.nextInt(4) == 0) {
      topic = "notes";
      r = Note.newBuilder().setId(user + "-n" + n).setTitle("note " + n).setBody(text.toString())
          .setEventTime(Instant.ofEpochMilli(time)).setAttrs(Map.of()).build();
    } else {
      topic = "messages";
      r = Message.newBuilder().setId(user + "-m" + n).setConversation(user).setSender(user).setText(text.toString())
          .setEventTime(Instant.ofEpochMilli(time)).setAttrs(Map.of()).build();
    }
    return new Event(user, topic, time, SERDE.serialize(r));
  }

  /** Sends the events keyed by user, timestamped with their event time, and waits for every ack. */
  static void produce(String bootstrap, List<Event> events) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap, "acks", "all",
        "linger.ms", "5"), new ByteArraySerializer(), new ByteArraySerializer())) {
      List<Future<?>> acks = new ArrayList<>(events.size());
      for (Event e : events) {
        acks.add(p.send(new ProducerRecord<>(e.topic(), null, e.time(), e.user().getBytes(StandardCharsets.UTF_8),
            e.value())));
      }
      for (Future<?> a : acks) {
        a.get();
      }
    }
  }

  /** Each user's events in the order the job trains them (event time; times are distinct). */
  static Map<String, List<Event>> byUser(List<Event> events) {
    return events.stream().sorted(Comparator.comparingLong(Event::time))
        .collect(Collectors.groupingBy(Event::user, LinkedHashMap::new, Collectors.toList()));
  }
}
