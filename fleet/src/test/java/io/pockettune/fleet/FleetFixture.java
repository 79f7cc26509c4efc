package io.pockettune.fleet;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.pipeline.TrajectoryEntry;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Collectors;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Events for many users on a real broker, and the trajectories a job published, read back: for
 * fleet's tests and, through fleet's test-jar, for {@code pockettune bench fleet}.
 */
public final class FleetFixture {
  public static final EventSerde SERDE = new EventSerde(SchemaStore.withBuiltIns());
  private static final String[] WORDS = ("the morning train was late again so I read the news and wrote a note about"
      + " the garden tomatoes coffee meeting moved to friday call mum about the weekend trip bring the charger")
      .split(" ");

  /** One event as produced: its user, topic, time and Avro value. */
  public record Produced(String user, String topic, long time, byte[] value) {}

  private FleetFixture() {}

  /**
   * Events of {@code users} users, {@code perUser.apply(i)} each, interleaved at random (seeded),
   * {@code spacingMillis} apart in event time from {@code startMillis} (distinct times, so the
   * job's training order is the order of {@link #byUser}), about a quarter of them notes.
   */
  public static List<Produced> events(int users, java.util.function.IntUnaryOperator perUser, long seed,
      long startMillis, long spacingMillis) {
    Random rnd = new Random(seed);
    List<String> pending = new ArrayList<>();
    for (int u = 0; u < users; u++) {
      for (int k = 0; k < perUser.applyAsInt(u); k++) {
        pending.add(user(u));
      }
    }
    java.util.Collections.shuffle(pending, rnd);
    List<Produced> out = new ArrayList<>();
    Map<String, Integer> counts = new HashMap<>();
    long t = startMillis;
    for (String user : pending) {
      int n = counts.merge(user, 1, Integer::sum);
      out.add(event(user, n, t, rnd));
      t += spacingMillis;
    }
    return out;
  }

  public static String user(int u) {
    return String.format("user-%04d", u);
  }

  public static Produced event(String user, int n, long time, Random rnd) {
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
    return new Produced(user, topic, time, SERDE.serialize(r));
  }

  /** Sends the events keyed by user, timestamped with their event time, and waits for every ack. */
  public static void produce(String bootstrap, List<Produced> events) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap, "acks", "all",
        "linger.ms", "5"), new ByteArraySerializer(), new ByteArraySerializer())) {
      List<java.util.concurrent.Future<?>> acks = new ArrayList<>();
      for (Produced e : events) {
        acks.add(p.send(new ProducerRecord<>(e.topic(), null, e.time(), e.user().getBytes(StandardCharsets.UTF_8),
            e.value())));
      }
      for (var a : acks) {
        a.get();
      }
    }
  }

  /** Sends raw values (not events) for a user, to test the dead letters. */
  public static void produceRaw(String bootstrap, String topic, String user, long time, byte[] value) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(Map.of("bootstrap.servers", bootstrap, "acks", "all"),
        new ByteArraySerializer(), new ByteArraySerializer())) {
      p.send(new ProducerRecord<>(topic, null, time, user.getBytes(StandardCharsets.UTF_8), value)).get();
    }
  }

  /** One published step: the user, the entry's bytes and the run-config header if it had one. */
  public record Published(String user, byte[] entry, String runConfig) {
    public TrajectoryEntry decoded() {
      return TrajectoryEntry.decode(entry);
    }
  }

  /** A trajectory topic read back: per user, one entry per step in step order; duplicates dropped. */
  public record Trajectories(Map<String, List<Published>> steps, int duplicates) {}

  /**
   * Everything on {@code topic}, per user in step order, one entry per step: an entry published
   * again after a recovery must equal the first, and is dropped (counted); a user's steps must
   * come 1, 2, ... in their partition.
   *
   * @throws AssertionError naming the user and step when two entries of a step differ, a step is
   *     missing, or the topic cannot be read to its end in 60 s
   */
  public static Trajectories trajectories(String bootstrap, String topic) {
    Map<String, List<Published>> out = new LinkedHashMap<>();
    int duplicates = 0;
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(Map.of("bootstrap.servers", bootstrap,
        "enable.auto.commit", "false"), new ByteArrayDeserializer(),
        new ByteArrayDeserializer())) {
      List<TopicPartition> parts = new ArrayList<>();
      for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30))) {
        parts.add(new TopicPartition(topic, pi.partition()));
      }
      c.assign(parts);
      c.seekToBeginning(parts);
      Map<TopicPartition, Long> end = c.endOffsets(parts);
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (parts.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("could not read " + topic + " to its end " + end + " within 60 s");
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          var h = r.headers().lastHeader(TrajectoryEntry.RUN_CONFIG_HEADER);
          String user = new String(r.key(), StandardCharsets.UTF_8);
          List<Published> steps = out.computeIfAbsent(user, k -> new ArrayList<>());
          Published p = new Published(user, r.value(), h == null ? null : new String(h.value(), StandardCharsets.UTF_8));
          long step = p.decoded().record().step();
          if (step <= steps.size()) {
            // Published again after a recovery: it must be the very same step.
            if (!java.util.Arrays.equals(steps.get((int) step - 1).entry(), p.entry())) {
              throw new AssertionError(user + " step " + step + " was published twice with different contents");
            }
            duplicates++;
          } else if (step == steps.size() + 1) {
            steps.add(p);
          } else {
            throw new AssertionError(user + " step " + step + " follows step " + steps.size() + " in " + topic);
          }
        }
      }
    }
    return new Trajectories(out, duplicates);
  }

  /** A user's events in the order the job trains them (event time, topic, partition, offset). */
  public static Map<String, List<Produced>> byUser(List<Produced> events) {
    return events.stream().sorted(java.util.Comparator.comparingLong(Produced::time))
        .collect(Collectors.groupingBy(Produced::user, LinkedHashMap::new, Collectors.toList()));
  }
}
