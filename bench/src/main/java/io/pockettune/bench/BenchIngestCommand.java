package io.pockettune.bench;

import io.pockettune.events.Message;
import io.pockettune.ingest.EmbeddedConsumer;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.EmbeddedProducer;
import io.pockettune.ingest.EventDeserializer;
import io.pockettune.ingest.EventSerializer;
import io.pockettune.ingest.LocalKafkaBroker;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench ingest}: the embedded log against a real Kafka broker, in one run on one
 * machine, with the same ~200-byte Avro {@code Message} events, serializers and producer settings.
 *
 * <p>Embedded: {@link EmbeddedProducer} on a log with the default flush policy (group commit:
 * nothing is acknowledged before an fsync covers it). Kafka: {@code KafkaProducer} with
 * {@code acks=all} to a single KRaft node (broker and controller) started in this JVM on loopback,
 * with Kafka's default flush settings, under which the broker does NOT fsync before acknowledging
 * ({@code log.flush.interval.messages} = Long.MAX_VALUE; Kafka's durability comes from replication,
 * which one device does not have). Each side first sends a warm-up of the same events to another
 * topic; then they take turns for three rounds of {@code --events} events each (so that both meet the
 * same background load) and the medians are reported. Replay reads the last embedded round back
 * through {@link EmbeddedConsumer}, deserializing every event. Ack latency is the time from
 * {@code send} to its callback, with all events sent as fast as {@code send} returns (saturation,
 * so it includes queueing in the producer).
 */
@Command(name = "ingest", mixinStandardHelpOptions = true,
    description = "Measure the embedded log against a Kafka broker started in this process.")
final class BenchIngestCommand implements Callable<Integer> {
  private static final String TOPIC = "messages";
  private static final int ROUNDS = 3;
  /** Rate and length of the latency run, where the producer is not saturated. */
  private static final int PACED_RATE = 2_000;
  private static final int PACED_EVENTS = 4_000;
  private static final String[] WORDS = ("the of and to in is you that it he was for on are as with his they at be this"
      + " from have or one had by word but not what all were we when your can said there use an each which she do"
      + " how their if will up other about out many then them these so some her would make like him into time has"
      + " look two more write go see number no way could people my than first water been call who oil its now find"
      + " long down day did get come made may part dinner tomorrow meeting train weekend coffee later sounds good").split(" ");

  @Spec CommandSpec spec;

  @Option(names = "--data-dir", paramLabel = "DIR",
      description = "where to put the benchmark's logs, under DIR/bench-ingest, replaced on each run"
          + " (default: a temporary directory, deleted afterwards)")
  Path dataDir;

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  @Option(names = "--events", paramLabel = "N", description = "events per side (default: ${DEFAULT-VALUE})")
  int events = 200_000;

  @Override
  public Integer call() throws Exception {
    if (events < 1) {
      throw new IllegalArgumentException("--events is " + events + "; pass 1 or more");
    }
    quietKafkaLogging();
    boolean explicitDir = dataDir != null;
    Path root = explicitDir ? dataDir.resolve("bench-ingest") : Files.createTempDirectory("pockettune-bench-ingest-");
    if (explicitDir && Files.exists(root)) {
      Utils.delete(root.toFile());
    }
    Files.createDirectories(root);
    var out = spec.commandLine().getOut();
    try {
      List<Message> pool = messages(1000);
      EventSerializer serializer = new EventSerializer();
      int eventBytes = serializer.serialize(TOPIC, pool.get(0)).length;
      double meanBytes = pool.stream().mapToInt(m -> serializer.serialize(TOPIC, m).length).average().orElse(0);
      Map<String, Object> producerConfig = Map.of("linger.ms", 5, "batch.size", 16384);

      Run embedded;
      Run kafka;
      Run embeddedPaced;
      Run kafkaPaced;
      long embeddedSyncs;
      double replayPerS;
      String flushMessages;
      String flushMs;
      try (LocalKafkaBroker broker = LocalKafkaBroker.start(root.resolve("kafka"));
          EmbeddedLog log = EmbeddedLog.open(root.resolve("embedded"))) {
        AbstractConfig brokerConfig = broker.config();
        flushMessages = String.valueOf(brokerConfig.getLong("log.flush.interval.messages"));
        Long ms = brokerConfig.getLong("log.flush.interval.ms");
        flushMs = ms == null ? "null (falls back to log.flush.scheduler.interval.ms = "
            + brokerConfig.getLong("log.flush.scheduler.interval.ms") + ")" : ms.toString();
        Map<String, Object> kafkaConfig = new HashMap<>(producerConfig);
        kafkaConfig.put("bootstrap.servers", broker.bootstrapServers());
        kafkaConfig.put("acks", "all");
        List<Run> embeddedRuns = new ArrayList<>();
        List<Run> kafkaRuns = new ArrayList<>();
        try (EmbeddedProducer<String, SpecificRecord> ours =
                new EmbeddedProducer<>(log, producerConfig, new StringSerializer(), new EventSerializer());
            KafkaProducer<String, SpecificRecord> theirs =
                new KafkaProducer<>(kafkaConfig, new StringSerializer(), new EventSerializer())) {
          log.createTopic("warmup", 1);
          broker.createTopic("warmup", 1);
          produce(ours, "warmup", pool, Math.min(events, 100_000));
          produce(theirs, "warmup", pool, Math.min(events, 100_000));
          // Alternate the sides so that both meet the same background load; report the medians.
          for (int round = 1; round <= ROUNDS; round++) {
            String topic = TOPIC + "-" + round;
            log.createTopic(topic, 1);
            broker.createTopic(topic, 1);
            embeddedRuns.add(produce(ours, topic, pool, events));
            kafkaRuns.add(produce(theirs, topic, pool, events));
            out.printf("round %d: embedded %,.0f events/s, kafka %,.0f events/s%n", round,
                embeddedRuns.get(round - 1).perSecond(), kafkaRuns.get(round - 1).perSecond());
          }
          embeddedSyncs = (long) metric(ours, "durability-wait-total");
          log.createTopic(TOPIC + "-paced", 1);
          broker.createTopic(TOPIC + "-paced", 1);
          embeddedPaced = producePaced(ours, TOPIC + "-paced", pool);
          kafkaPaced = producePaced(theirs, TOPIC + "-paced", pool);
          out.printf("paced at %d events/s: p99 ack embedded %.2f ms, kafka %.2f ms%n", PACED_RATE,
              embeddedPaced.p99Ms(), kafkaPaced.p99Ms());
        }
        embedded = median(embeddedRuns);
        kafka = median(kafkaRuns);
        out.printf("embedded: %,.0f events/s (median), p99 ack %.2f ms, %,d fsync groups in all%n",
            embedded.perSecond(), embedded.p99Ms(), embeddedSyncs);
        out.printf("kafka:    %,.0f events/s (median), p99 ack %.2f ms (acks=all, log.flush.interval.messages=%s)%n",
            kafka.perSecond(), kafka.p99Ms(), flushMessages);
        replay(log, "warmup");
        replayPerS = replay(log, TOPIC + "-" + ROUNDS);
        out.printf("replay:   %,.0f events/s through EmbeddedConsumer%n", replayPerS);
      }

      double ratio = embedded.perSecond() / kafka.perSecond();
      out.printf("ratio:    %.2f (embedded fsyncs before every ack; the broker does not fsync by default)%n", ratio);
      if (json) {
        out.println(new Figures()
            .put("command", "bench ingest")
            .put("events", events)
            .put("rounds", ROUNDS)
            .put("event_bytes", eventBytes)
            .put("event_bytes_mean", Math.round(meanBytes * 10) / 10.0)
            .put("embedded_events_per_s", Math.round(embedded.perSecond()))
            .put("kafka_events_per_s", Math.round(kafka.perSecond()))
            .put("ratio", Math.round(ratio * 100) / 100.0)
            .put("replay_events_per_s", Math.round(replayPerS))
            .put("p99_ack_ms", Math.round(embedded.p99Ms() * 100) / 100.0)
            .put("kafka_p99_ack_ms", Math.round(kafka.p99Ms() * 100) / 100.0)
            .put("paced_events_per_s", PACED_RATE)
            .put("paced_p99_ack_ms", Math.round(embeddedPaced.p99Ms() * 100) / 100.0)
            .put("kafka_paced_p99_ack_ms", Math.round(kafkaPaced.p99Ms() * 100) / 100.0)
            .put("embedded_fsync_groups", embeddedSyncs)
            .put("embedded_flush_policy", "group commit: fsync before every acknowledgement")
            .put("kafka_acks", "all")
            .put("kafka_log_flush_interval_messages", flushMessages)
            .put("kafka_log_flush_interval_ms", flushMs)
            .put("producer_linger_ms", 5)
            .put("producer_batch_size", 16384)
            .put("cpus", Runtime.getRuntime().availableProcessors())
            .put("java", System.getProperty("java.version"))
            .put("note", "medians of " + ROUNDS + " alternating rounds; p99_ack_ms is under saturation (all events sent"
                + " at once, so it includes queueing), paced_p99_ack_ms at " + PACED_RATE + " events/s; the embedded"
                + " log fsyncs before acknowledging, the broker does not"));
      }
      return 0;
    } finally {
      if (!explicitDir) {
        Utils.delete(root.toFile());
      }
    }
  }

  /** The result of one timed produce run. */
  private record Run(int events, long nanos, long[] ackNanos) {
    double perSecond() {
      return events * 1e9 / nanos;
    }

    double p99Ms() {
      long[] sorted = ackNanos.clone();
      Arrays.sort(sorted);
      return sorted[(int) Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] / 1e6;
    }
  }

  private static Run median(List<Run> runs) {
    List<Run> sorted = new ArrayList<>(runs);
    sorted.sort(java.util.Comparator.comparingDouble(Run::perSecond));
    return sorted.get(sorted.size() / 2);
  }

  /** Sends {@code n} events as fast as send accepts them and waits until all are acknowledged. */
  private static Run produce(Producer<String, SpecificRecord> producer, String topic, List<Message> pool, int n) {
    return produce(producer, topic, pool, n, 0);
  }

  /** Sends {@link #PACED_EVENTS} events at {@link #PACED_RATE} per second, for latency without queueing. */
  private static Run producePaced(Producer<String, SpecificRecord> producer, String topic, List<Message> pool) {
    return produce(producer, topic, pool, PACED_EVENTS, 1_000_000_000L / PACED_RATE);
  }

  /**
   * Sends {@code n} events, the i-th not before {@code i * intervalNanos} after the start (0: no
   * pacing), and waits until all are acknowledged; records each send's acknowledgement latency.
   */
  private static Run produce(Producer<String, SpecificRecord> producer, String topic, List<Message> pool, int n,
      long intervalNanos) {
    long[] latency = new long[n];
    AtomicReference<Exception> failure = new AtomicReference<>();
    long start = System.nanoTime();
    for (int i = 0; i < n; i++) {
      long due = start + i * intervalNanos;
      while (System.nanoTime() < due) {
        java.util.concurrent.locks.LockSupport.parkNanos(due - System.nanoTime());
      }
      Message m = pool.get(i % pool.size());
      int index = i;
      long sent = System.nanoTime();
      producer.send(new ProducerRecord<>(topic, m.getConversation(), m), (meta, e) -> {
        latency[index] = System.nanoTime() - sent;
        if (e != null) {
          failure.compareAndSet(null, e);
        }
      });
    }
    producer.flush();
    long nanos = System.nanoTime() - start;
    if (failure.get() != null) {
      throw new IllegalStateException("a send to " + topic + " failed: " + failure.get().getMessage(), failure.get());
    }
    return new Run(n, nanos, latency);
  }

  private static double replay(EmbeddedLog log, String topic) {
    TopicPartition tp = new TopicPartition(topic, 0);
    long end = log.endOffset(topic, 0);
    Map<String, Object> config = Map.of("max.poll.records", 2000);
    try (EmbeddedConsumer<String, SpecificRecord> consumer =
        new EmbeddedConsumer<>(log, config, new StringDeserializer(), new EventDeserializer())) {
      consumer.assign(List.of(tp));
      consumer.seekToBeginning(List.of(tp));
      long start = System.nanoTime();
      long read = 0;
      long checksum = 0;
      while (read < end) {
        for (var r : consumer.poll(Duration.ofMillis(100))) {
          checksum += ((Message) r.value()).getText().length();
          read++;
        }
      }
      long nanos = System.nanoTime() - start;
      if (checksum == 0) {
        throw new IllegalStateException("replay decoded no text");
      }
      return read * 1e9 / nanos;
    }
  }

  /** Realistic chat messages whose Avro encoding is about 200 bytes. */
  private static List<Message> messages(int count) {
    Random random = new Random(7);
    List<Message> out = new ArrayList<>(count);
    long t0 = 1_763_000_000_000L;
    for (int i = 0; i < count; i++) {
      StringBuilder text = new StringBuilder();
      while (text.length() < 135) {
        text.append(WORDS[random.nextInt(WORDS.length)]).append(' ');
      }
      text.setLength(text.length() - 1);
      text.setCharAt(0, Character.toUpperCase(text.charAt(0)));
      text.append('.');
      out.add(Message.newBuilder()
          .setId(Uuid.randomUuid().toString().substring(0, 12))
          .setConversation("conv-" + random.nextInt(40))
          .setSender(random.nextBoolean() ? "me" : "contact-" + random.nextInt(200))
          .setText(text.toString())
          .setEventTime(Instant.ofEpochMilli(t0 + i * 1500L))
          .setAttrs(Map.of("app", "chat", "lang", "en"))
          .build());
    }
    return out;
  }

  private static double metric(Producer<?, ?> producer, String name) {
    for (Map.Entry<MetricName, ? extends Metric> e : producer.metrics().entrySet()) {
      if (e.getKey().name().equals(name)) {
        return ((Number) e.getValue().metricValue()).doubleValue();
      }
    }
    return Double.NaN;
  }

  /** slf4j-simple reads per-logger levels from system properties when each logger is created. */
  private static void quietKafkaLogging() {
    for (String name : List.of("kafka", "org.apache.kafka", "state.change.logger", "org.apache.kafka.raft")) {
      System.setProperty("org.slf4j.simpleLogger.log." + name, "error");
    }
  }
}
