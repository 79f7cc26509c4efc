package io.pockettune.bench;

import io.pockettune.events.Message;
import io.pockettune.ingest.EmbeddedConsumer;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.EmbeddedProducer;
import io.pockettune.ingest.EventDeserializer;
import io.pockettune.ingest.EventSerializer;
import io.pockettune.ingest.KafkaListener;
import io.pockettune.ingest.ListenerCredentials;
import io.pockettune.ingest.LocalKafkaBroker;
import io.pockettune.ingest.LogConfig;
import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.RecordAdmission;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
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
import org.apache.kafka.common.utils.Time;
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
 *
 * <p>Listener: the same {@code KafkaProducer} (its defaults: idempotent, acks=all; the same linger,
 * batch size and serializers) over TCP and SASL/PLAIN to a {@link KafkaListener} on its own embedded
 * log, which answers a produce request only after an fsync covers it. It takes its turn in the same
 * rounds as the other two, each round starting with the next side. Its admission is
 * {@link RecordAdmission#ANY}, which costs what the runtime's admission costs for Avro values (it
 * only looks at the first non-blank byte for a JSON '{'). After every round the listener's log is
 * read back and must hold exactly the events sent, in order, or the bench fails. kcat: {@code
 * kcat -P} of {@code --kcat-events} JSON lines to the listener and, as the baseline that shows what
 * kcat itself costs, to the broker, alternately for three rounds, timed from process start to exit
 * and checked the same way; skipped with a printed reason if {@code /usr/bin/kcat} is absent. CPU:
 * per side, the process's and each thread group's CPU time during its timed rounds
 * ({@link ThreadCpu}).
 *
 * <p>Encryption at rest: a fourth side, the same {@link EmbeddedProducer} on its own embedded log
 * opened with a random AES-256 key ({@link LogConfig#withEncryptionKey}), takes its turn in the
 * same rounds; {@code encrypted_vs_clear_throughput} is its median over the clear embedded side's,
 * and the last round is replayed from both logs for {@code encrypted_vs_clear_replay}.
 */
@Command(name = "ingest", mixinStandardHelpOptions = true,
    description = "Measure the embedded log and its Kafka listener against a Kafka broker started in this process.")
final class BenchIngestCommand implements Callable<Integer> {
  private static final String TOPIC = "messages";
  private static final int ROUNDS = 3;
  /** Rate and length of the latency run, where the producer is not saturated. */
  private static final int PACED_RATE = 2_000;
  private static final int PACED_EVENTS = 4_000;
  /** The diagnostic's batch.size, 16 times the default 16384. */
  private static final int WIDE_BATCH_BYTES = 262_144;
  private static final int FSYNC_PROBES = 50;
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

  @Option(names = "--kcat-events", paramLabel = "N",
      description = "lines per kcat -P run, if /usr/bin/kcat is installed (default: ${DEFAULT-VALUE})")
  int kcatEvents = 100_000;

  @Override
  public Integer call() throws Exception {
    if (events < 1) {
      throw new IllegalArgumentException("--events is " + events + "; pass 1 or more");
    }
    if (kcatEvents < 1) {
      throw new IllegalArgumentException("--kcat-events is " + kcatEvents + "; pass 1 or more");
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

      Side embedded = new Side("embedded");
      Side encrypted = new Side("encrypted");
      Side kafka = new Side("kafka");
      Side listened = new Side("listener");
      Run embeddedPaced;
      Run kafkaPaced;
      Run listenerPaced;
      long embeddedSyncs;
      double replayPerS;
      double encryptedReplayPerS;
      String flushMessages;
      String flushMs;
      KcatFigures kcat;
      double kafkaRequestMs;
      double listenerRequestMs;
      double kafkaRecordsPerRequest;
      double listenerRecordsPerRequest;
      double[] fsyncMs;
      Map<String, Double> listenerStates;
      double wideKafkaPerS;
      double wideListenerPerS;
      try (LocalKafkaBroker broker = LocalKafkaBroker.start(root.resolve("kafka"));
          EmbeddedLog log = EmbeddedLog.open(root.resolve("embedded"));
          EmbeddedLog listenerLog = EmbeddedLog.open(root.resolve("listener"));
          EmbeddedLog encryptedLog = EmbeddedLog.open(root.resolve("embedded-encrypted"),
              LogConfig.defaults().withEncryptionKey(randomKey()))) {
        ListenerCredentials credentials =
            ListenerCredentials.loadOrCreate(root.resolve("kafka-credentials")).credentials();
        try (KafkaListener listener = KafkaListener.start(listenerLog, new KafkaListener.Settings(
            new InetSocketAddress("127.0.0.1", 0), false, credentials, RecordAdmission.ANY), Time.SYSTEM)) {
          AbstractConfig brokerConfig = broker.config();
          flushMessages = String.valueOf(brokerConfig.getLong("log.flush.interval.messages"));
          Long ms = brokerConfig.getLong("log.flush.interval.ms");
          flushMs = ms == null ? "null (falls back to log.flush.scheduler.interval.ms = "
              + brokerConfig.getLong("log.flush.scheduler.interval.ms") + ")" : ms.toString();
          Map<String, Object> kafkaConfig = new HashMap<>(producerConfig);
          kafkaConfig.put("bootstrap.servers", broker.bootstrapServers());
          kafkaConfig.put("acks", "all");
          // The same producer, settings and serializers; only the address and SASL/PLAIN differ.
          Map<String, Object> listenerConfig = new HashMap<>(kafkaConfig);
          listenerConfig.putAll(credentials.clientConfig(listener.address()));
          byte[][] expected = pool.stream().map(m -> serializer.serialize(TOPIC, m)).toArray(byte[][]::new);
          try (EmbeddedProducer<String, SpecificRecord> ours =
                  new EmbeddedProducer<>(log, producerConfig, new StringSerializer(), new EventSerializer());
              EmbeddedProducer<String, SpecificRecord> oursEncrypted =
                  new EmbeddedProducer<>(encryptedLog, producerConfig, new StringSerializer(), new EventSerializer());
              KafkaProducer<String, SpecificRecord> theirs =
                  new KafkaProducer<>(kafkaConfig, new StringSerializer(), new EventSerializer());
              KafkaProducer<String, SpecificRecord> toListener =
                  new KafkaProducer<>(listenerConfig, new StringSerializer(), new EventSerializer())) {
            embedded.producer = ours;
            embedded.topics = topic -> log.createTopic(topic, 1);
            kafka.producer = theirs;
            kafka.topics = topic -> broker.createTopic(topic, 1);
            listened.producer = toListener;
            listened.topics = topic -> listenerLog.createTopic(topic, 1);
            encrypted.producer = oursEncrypted;
            encrypted.topics = topic -> encryptedLog.createTopic(topic, 1);
            List<Side> sides = List.of(embedded, kafka, listened, encrypted);
            int warmup = Math.min(events, 100_000);
            for (Side side : sides) {
              side.topics.create("warmup");
              produce(side.producer, "warmup", pool, warmup);
            }
            verifyLog(listenerLog, "warmup", pool, expected, warmup);
            // Take turns so that every side meets the same background load, starting each round
            // with the next side so that none always follows the same one; report the medians.
            for (int round = 1; round <= ROUNDS; round++) {
              String topic = TOPIC + "-" + round;
              List<String> order = new ArrayList<>();
              for (int k = 0; k < sides.size(); k++) {
                Side side = sides.get((round - 1 + k) % sides.size());
                side.topics.create(topic);
                ThreadCpu.Mark mark = ThreadCpu.mark();
                side.runs.add(produce(side.producer, topic, pool, events));
                side.cpu.addSince(mark);
                order.add(side.name);
              }
              verifyLog(listenerLog, topic, pool, expected, events);
              out.printf("round %d: embedded %,.0f events/s, kafka %,.0f events/s, listener %,.0f events/s,"
                      + " embedded encrypted %,.0f events/s (listener/kafka %.2f; encrypted/clear %.2f; order %s;"
                      + " listener log verified: %,d events)%n", round,
                  embedded.last().perSecond(), kafka.last().perSecond(), listened.last().perSecond(),
                  encrypted.last().perSecond(), listened.last().perSecond() / kafka.last().perSecond(),
                  encrypted.last().perSecond() / embedded.last().perSecond(), String.join(", ", order), events);
            }
            embeddedSyncs = (long) metric(ours, "durability-wait-total");
            // The producer's own view of the two sides over its last 30 to 60 s (Kafka's sample window).
            kafkaRequestMs = metric(theirs, "request-latency-avg");
            listenerRequestMs = metric(toListener, "request-latency-avg");
            kafkaRecordsPerRequest = metric(theirs, "records-per-request-avg");
            listenerRecordsPerRequest = metric(toListener, "records-per-request-avg");
            out.printf("producer metrics: request latency avg kafka %.2f ms, listener %.2f ms; records per request"
                    + " kafka %.1f, listener %.1f (max.in.flight.requests.per.connection=5)%n", kafkaRequestMs,
                listenerRequestMs, kafkaRecordsPerRequest, listenerRecordsPerRequest);
            for (Side side : sides) {
              side.topics.create(TOPIC + "-paced");
            }
            embeddedPaced = producePaced(ours, TOPIC + "-paced", pool);
            kafkaPaced = producePaced(theirs, TOPIC + "-paced", pool);
            listenerPaced = producePaced(toListener, TOPIC + "-paced", pool);
            verifyLog(listenerLog, TOPIC + "-paced", pool, expected, PACED_EVENTS);
            out.printf("paced at %d events/s: p99 ack embedded %.2f ms, kafka %.2f ms, listener %.2f ms%n",
                PACED_RATE, embeddedPaced.p99Ms(), kafkaPaced.p99Ms(), listenerPaced.p99Ms());
            // Untimed, so that sampling does not slow the figures: what the listener's threads wait for.
            try (ThreadStateSampler sampler = new ThreadStateSampler(
                List.of("pockettune-kafka-read", "pockettune-kafka-write"))) {
              listened.topics.create(TOPIC + "-profile");
              sampler.resume();
              Run profiled = produce(listened.producer, TOPIC + "-profile", pool, events);
              sampler.pause();
              verifyLog(listenerLog, TOPIC + "-profile", pool, expected, events);
              listenerStates = sampler.percentages(2);
              out.printf("listener threads, sampled every %d ms during an untimed run (%,.0f events/s): %s%n",
                  ThreadStateSampler.INTERVAL_MS, profiled.perSecond(), listenerStates);
            }
          }
          fsyncMs = fsyncMillis(root.resolve("listener"));
          out.printf("fsync of a 16 KiB append in the listener's directory: median %.2f ms, p90 %.2f ms%n",
              fsyncMs[0], fsyncMs[1]);
          // Diagnostic, not in the ratio: the same two producers with a 16x larger batch.size, which
          // widens what idempotence's 5 requests in flight can carry per fsync.
          Map<String, Object> wide = Map.of("batch.size", WIDE_BATCH_BYTES);
          Map<String, Object> wideKafkaConfig = new HashMap<>(kafkaConfig);
          wideKafkaConfig.putAll(wide);
          Map<String, Object> wideListenerConfig = new HashMap<>(listenerConfig);
          wideListenerConfig.putAll(wide);
          try (KafkaProducer<String, SpecificRecord> theirs =
                  new KafkaProducer<>(wideKafkaConfig, new StringSerializer(), new EventSerializer());
              KafkaProducer<String, SpecificRecord> toListener =
                  new KafkaProducer<>(wideListenerConfig, new StringSerializer(), new EventSerializer())) {
            Side wideKafka = new Side("kafka");
            wideKafka.producer = theirs;
            wideKafka.topics = kafka.topics;
            Side wideListener = new Side("listener");
            wideListener.producer = toListener;
            wideListener.topics = listened.topics;
            List<Side> pair = List.of(wideKafka, wideListener);
            for (Side side : pair) {
              side.topics.create("warmup-wide");
              produce(side.producer, "warmup-wide", pool, Math.min(events, 20_000));
            }
            for (int round = 1; round <= ROUNDS; round++) {
              String topic = TOPIC + "-wide-" + round;
              for (int k = 0; k < pair.size(); k++) {
                Side side = pair.get((round - 1 + k) % pair.size());
                side.topics.create(topic);
                side.runs.add(produce(side.producer, topic, pool, events));
              }
              verifyLog(listenerLog, topic, pool, expected, events);
            }
            wideKafkaPerS = wideKafka.median().perSecond();
            wideListenerPerS = wideListener.median().perSecond();
            out.printf("batch.size=%d (diagnostic): kafka %,.0f events/s, listener %,.0f events/s (medians of %s and"
                    + " %s; listener/kafka %.2f)%n", WIDE_BATCH_BYTES, wideKafkaPerS, wideListenerPerS,
                wideKafka.rounds(), wideListener.rounds(), wideListenerPerS / wideKafkaPerS);
          }
          out.printf("embedded: %,.0f events/s (median), p99 ack %.2f ms, %,d fsync groups in all%n",
              embedded.median().perSecond(), embedded.median().p99Ms(), embeddedSyncs);
          out.printf("kafka:    %,.0f events/s (median), p99 ack %.2f ms (acks=all, log.flush.interval.messages=%s)%n",
              kafka.median().perSecond(), kafka.median().p99Ms(), flushMessages);
          out.printf("listener: %,.0f events/s (median), p99 ack %.2f ms (KafkaProducer acks=all, idempotent,"
                  + " SASL/PLAIN; fsync before every answer)%n",
              listened.median().perSecond(), listened.median().p99Ms());
          long cpuEvents = (long) events * ROUNDS;
          for (Side side : List.of(embedded, kafka, listened, encrypted)) {
            out.printf("cpu %-8s %.1f ms per 1,000 events, %.2f cores busy: %s%n", side.name + ":",
                side.cpu.processMsPer1kEvents(cpuEvents), side.cpu.coresBusy(),
                side.cpu.groupsMsPer1kEvents(cpuEvents, 0.03));
            out.printf("heap %-7s %,d KB per 1,000 events allocated: %s%n", side.name + ":",
                side.cpu.kbPer1kEvents(cpuEvents), side.cpu.groupsKbPer1kEvents(cpuEvents, 0.03));
          }
          kcat = kcat(out, broker, listener, listenerLog, credentials, root, pool);
        }
        replay(log, "warmup");
        replayPerS = replay(log, TOPIC + "-" + ROUNDS);
        out.printf("replay:   %,.0f events/s through EmbeddedConsumer%n", replayPerS);
        replay(encryptedLog, "warmup");
        encryptedReplayPerS = replay(encryptedLog, TOPIC + "-" + ROUNDS);
        out.printf("replay encrypted: %,.0f events/s through EmbeddedConsumer (encrypted/clear %.2f)%n",
            encryptedReplayPerS, encryptedReplayPerS / replayPerS);
      }

      double ratio = embedded.median().perSecond() / kafka.median().perSecond();
      double listenerRatio = listened.median().perSecond() / kafka.median().perSecond();
      double encryptedRatio = encrypted.median().perSecond() / embedded.median().perSecond();
      out.printf("encrypted_vs_clear_throughput: %.2f (embedded log with AES-256-GCM batches / in the clear, same"
          + " rounds; encrypted %,.0f events/s median, p99 ack %.2f ms)%n", encryptedRatio,
          encrypted.median().perSecond(), encrypted.median().p99Ms());
      out.printf("ratio:    %.2f (embedded fsyncs before every ack; the broker does not fsync by default)%n", ratio);
      out.printf("listener_ratio: %.2f (listener / kafka, the same KafkaProducer; the listener fsyncs before every"
          + " answer, the broker does not)%n", listenerRatio);
      if (json) {
        long cpuEvents = (long) events * ROUNDS;
        out.println(new Figures()
            .put("command", "bench ingest")
            .put("events", events)
            .put("rounds", ROUNDS)
            .put("event_bytes", eventBytes)
            .put("event_bytes_mean", Math.round(meanBytes * 10) / 10.0)
            .put("embedded_events_per_s", Math.round(embedded.median().perSecond()))
            .put("kafka_events_per_s", Math.round(kafka.median().perSecond()))
            .put("ratio", Math.round(ratio * 100) / 100.0)
            .put("listener_events_per_s", Math.round(listened.median().perSecond()))
            .put("listener_ratio", Math.round(listenerRatio * 100) / 100.0)
            .put("encrypted_events_per_s", Math.round(encrypted.median().perSecond()))
            .put("encrypted_vs_clear_throughput", Math.round(encryptedRatio * 100) / 100.0)
            .put("encrypted_rounds_events_per_s", encrypted.rounds())
            .put("encrypted_p99_ack_ms", Math.round(encrypted.median().p99Ms() * 100) / 100.0)
            .put("encrypted_replay_events_per_s", Math.round(encryptedReplayPerS))
            .put("encrypted_vs_clear_replay", Math.round(encryptedReplayPerS / replayPerS * 100) / 100.0)
            .put("embedded_rounds_events_per_s", embedded.rounds())
            .put("kafka_rounds_events_per_s", kafka.rounds())
            .put("listener_rounds_events_per_s", listened.rounds())
            .put("kcat_events", kcatEvents)
            .put("kcat_events_per_s", kcat.listener())
            .put("kcat_kafka_events_per_s", kcat.kafka())
            .put("kcat_line_bytes_mean", kcat.lineBytesMean())
            .put("kcat_unavailable", kcat.unavailable())
            .put("kcat_version", kcat.version())
            .put("replay_events_per_s", Math.round(replayPerS))
            .put("p99_ack_ms", Math.round(embedded.median().p99Ms() * 100) / 100.0)
            .put("kafka_p99_ack_ms", Math.round(kafka.median().p99Ms() * 100) / 100.0)
            .put("listener_p99_ack_ms", Math.round(listened.median().p99Ms() * 100) / 100.0)
            .put("paced_events_per_s", PACED_RATE)
            .put("paced_p99_ack_ms", Math.round(embeddedPaced.p99Ms() * 100) / 100.0)
            .put("kafka_paced_p99_ack_ms", Math.round(kafkaPaced.p99Ms() * 100) / 100.0)
            .put("listener_paced_p99_ack_ms", Math.round(listenerPaced.p99Ms() * 100) / 100.0)
            .put("encrypted_cpu_ms_per_1k_events", Math.round(encrypted.cpu.processMsPer1kEvents(cpuEvents) * 100) / 100.0)
            .put("embedded_cpu_ms_per_1k_events", Math.round(embedded.cpu.processMsPer1kEvents(cpuEvents) * 100) / 100.0)
            .put("kafka_cpu_ms_per_1k_events", Math.round(kafka.cpu.processMsPer1kEvents(cpuEvents) * 100) / 100.0)
            .put("listener_cpu_ms_per_1k_events", Math.round(listened.cpu.processMsPer1kEvents(cpuEvents) * 100) / 100.0)
            .put("kafka_cores_busy", Math.round(kafka.cpu.coresBusy() * 100) / 100.0)
            .put("listener_cores_busy", Math.round(listened.cpu.coresBusy() * 100) / 100.0)
            .put("kafka_alloc_kb_per_1k_events", kafka.cpu.kbPer1kEvents(cpuEvents))
            .put("listener_alloc_kb_per_1k_events", listened.cpu.kbPer1kEvents(cpuEvents))
            .put("kafka_alloc_by_thread_kb_per_1k_events", kafka.cpu.groupsKbPer1kEvents(cpuEvents, 0.03))
            .put("listener_alloc_by_thread_kb_per_1k_events", listened.cpu.groupsKbPer1kEvents(cpuEvents, 0.03))
            .put("kafka_cpu_by_thread_ms_per_1k_events", kafka.cpu.groupsMsPer1kEvents(cpuEvents, 0.03))
            .put("listener_cpu_by_thread_ms_per_1k_events", listened.cpu.groupsMsPer1kEvents(cpuEvents, 0.03))
            .put("kafka_request_latency_avg_ms", Math.round(kafkaRequestMs * 100) / 100.0)
            .put("listener_request_latency_avg_ms", Math.round(listenerRequestMs * 100) / 100.0)
            .put("kafka_records_per_request_avg", Math.round(kafkaRecordsPerRequest * 10) / 10.0)
            .put("listener_records_per_request_avg", Math.round(listenerRecordsPerRequest * 10) / 10.0)
            .put("listener_thread_states_percent", listenerStates)
            .put("fsync_16k_median_ms", Math.round(fsyncMs[0] * 100) / 100.0)
            .put("fsync_16k_p90_ms", Math.round(fsyncMs[1] * 100) / 100.0)
            .put("wide_batch_size", WIDE_BATCH_BYTES)
            .put("wide_kafka_events_per_s", Math.round(wideKafkaPerS))
            .put("wide_listener_events_per_s", Math.round(wideListenerPerS))
            .put("embedded_fsync_groups", embeddedSyncs)
            .put("embedded_flush_policy", "group commit: fsync before every acknowledgement")
            .put("listener_flush_policy", "group commit: fsync before every produce answer")
            .put("listener_admission", "RecordAdmission.ANY (values stored as sent)")
            .put("kafka_acks", "all")
            .put("kafka_log_flush_interval_messages", flushMessages)
            .put("kafka_log_flush_interval_ms", flushMs)
            .put("producer_linger_ms", 5)
            .put("producer_batch_size", 16384)
            .put("cpus", Runtime.getRuntime().availableProcessors())
            .put("java", System.getProperty("java.version"))
            .put("note", "medians of " + ROUNDS + " alternating rounds; p99_ack_ms is under saturation (all events sent"
                + " at once, so it includes queueing), paced_p99_ack_ms at " + PACED_RATE + " events/s; the embedded"
                + " log and the listener fsync before acknowledging, the broker does not; the listener's log is"
                + " checked after every round to hold exactly the events sent"));
      }
      return 0;
    } finally {
      if (!explicitDir) {
        Utils.delete(root.toFile());
      }
    }
  }

  /** @return a random AES-256 key for the encrypted side */
  private static byte[] randomKey() {
    byte[] key = new byte[32];
    new java.security.SecureRandom().nextBytes(key);
    return key;
  }

  /** Creates a one-partition topic on one side. */
  private interface TopicMaker {
    void create(String topic) throws IOException;
  }

  /** One side of the comparison: its producer, where it creates topics, its timed runs and their CPU. */
  private static final class Side {
    final String name;
    final List<Run> runs = new ArrayList<>();
    final ThreadCpu cpu = new ThreadCpu();
    Producer<String, SpecificRecord> producer;
    TopicMaker topics;

    Side(String name) {
      this.name = name;
    }

    Run last() {
      return runs.get(runs.size() - 1);
    }

    Run median() {
      return BenchIngestCommand.median(runs);
    }

    List<Long> rounds() {
      return runs.stream().map(r -> Math.round(r.perSecond())).toList();
    }
  }

  /** kcat's figures: medians in events per second, or nulls and the reason. */
  private record KcatFigures(Long listener, Long kafka, Double lineBytesMean, String unavailable, String version) {}

  /**
   * {@code kcat -P} of {@link #kcatEvents} JSON lines, to the listener and to the broker in turn for
   * {@link #ROUNDS} rounds; each listener topic is checked to hold exactly the lines sent, each broker
   * topic to end at their count.
   */
  private KcatFigures kcat(java.io.PrintWriter out, LocalKafkaBroker broker, KafkaListener listener,
      EmbeddedLog listenerLog, ListenerCredentials credentials, Path root, List<Message> pool) throws Exception {
    String unavailable = KcatRun.unavailable();
    if (unavailable != null) {
      out.printf("kcat:     skipped, %s%n", unavailable);
      return new KcatFigures(null, null, null, unavailable, null);
    }
    String version = KcatRun.version();
    ObjectMapper mapper = new ObjectMapper();
    List<String> lines = new ArrayList<>(kcatEvents);
    for (int i = 0; i < kcatEvents; i++) {
      Message m = pool.get(i % pool.size());
      Map<String, Object> event = new LinkedHashMap<>();
      event.put("conversation", m.getConversation());
      event.put("sender", m.getSender());
      event.put("text", m.getText());
      lines.add(mapper.writeValueAsString(event));
    }
    double lineBytes = lines.stream().mapToInt(l -> l.getBytes(StandardCharsets.UTF_8).length).average().orElse(0);
    Path input = root.resolve("kcat-input.jsonl");
    KcatRun.writeLines(input, lines);
    // The password goes in a file (kcat -F), not on a command line other processes can read.
    Path saslConfig = root.resolve("kcat-listener.conf");
    Files.writeString(saslConfig, "security.protocol=sasl_plaintext\nsasl.mechanisms=PLAIN\nsasl.username="
        + credentials.username() + "\nsasl.password=" + credentials.password() + "\n", StandardCharsets.UTF_8);
    String listenerBootstrap = "127.0.0.1:" + listener.address().getPort();
    List<KcatRun.Result> toListener = new ArrayList<>();
    List<KcatRun.Result> toKafka = new ArrayList<>();
    try (Admin admin = Admin.create(Map.of("bootstrap.servers", broker.bootstrapServers()))) {
      for (int round = 1; round <= ROUNDS; round++) {
        String topic = "kcat-" + round;
        listenerLog.createTopic(topic, 1);
        broker.createTopic(topic, 1);
        boolean listenerFirst = round % 2 == 1;
        for (int k = 0; k < 2; k++) {
          if ((k == 0) == listenerFirst) {
            toListener.add(KcatRun.produce(listenerBootstrap, topic, List.of("-F", saslConfig.toString()), input,
                kcatEvents, root.resolve("kcat-stderr.txt")));
            verifyLines(listenerLog, topic, lines);
          } else {
            toKafka.add(KcatRun.produce(broker.bootstrapServers(), topic, List.of(), input, kcatEvents,
                root.resolve("kcat-stderr.txt")));
            long end = admin.listOffsets(Map.of(new TopicPartition(topic, 0), OffsetSpec.latest())).all()
                .get(30, TimeUnit.SECONDS).get(new TopicPartition(topic, 0)).offset();
            if (end != kcatEvents) {
              throw new IllegalStateException("kcat sent " + kcatEvents + " lines to the broker's " + topic
                  + " but it ends at offset " + end);
            }
          }
        }
        out.printf("kcat round %d: listener %,.0f events/s, kafka %,.0f events/s (%,d lines each, start to exit;"
                + " listener log verified)%n", round, toListener.get(round - 1).perSecond(),
            toKafka.get(round - 1).perSecond(), kcatEvents);
      }
    }
    double listenerMedian = medianPerSecond(toListener);
    double kafkaMedian = medianPerSecond(toKafka);
    out.printf("kcat:     listener %,.0f events/s, kafka %,.0f events/s (medians; %s)%n", listenerMedian, kafkaMedian,
        version);
    return new KcatFigures(Math.round(listenerMedian), Math.round(kafkaMedian), Math.round(lineBytes * 10) / 10.0,
        null, version);
  }

  /**
   * Appends 16 KiB to a scratch file in {@code dir} and forces it, {@link #FSYNC_PROBES} times: what
   * one group commit costs on this disk now, next to the listener's log.
   *
   * @return the median and the 90th percentile, in milliseconds
   */
  private static double[] fsyncMillis(Path dir) throws IOException {
    Path file = dir.resolve("fsync-probe");
    double[] ms = new double[FSYNC_PROBES];
    ByteBuffer block = ByteBuffer.allocate(16 * 1024);
    try (FileChannel channel = FileChannel.open(file,
        StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.APPEND)) {
      for (int i = 0; i < FSYNC_PROBES; i++) {
        block.clear();
        channel.write(block);
        long start = System.nanoTime();
        channel.force(false);
        ms[i] = (System.nanoTime() - start) / 1e6;
      }
    } finally {
      Files.deleteIfExists(file);
    }
    Arrays.sort(ms);
    return new double[] {ms[FSYNC_PROBES / 2], ms[(int) (FSYNC_PROBES * 0.9)]};
  }

  private static double medianPerSecond(List<KcatRun.Result> results) {
    double[] rates = results.stream().mapToDouble(KcatRun.Result::perSecond).sorted().toArray();
    return rates[rates.length / 2];
  }

  /**
   * Fails unless {@code topic} holds exactly {@code n} records whose keys and values are the
   * events sent: the i-th is {@code pool[i % pool.size()]}, so a listener that loses, duplicates,
   * reorders or alters records cannot report a speed.
   */
  private static void verifyLog(EmbeddedLog log, String topic, List<Message> pool, byte[][] expected, int n)
      throws IOException {
    long start = log.startOffset(topic, 0);
    long end = log.endOffset(topic, 0);
    if (start != 0 || end != n) {
      throw new IllegalStateException("the listener's log holds offsets " + start + ".." + end + " of " + topic
          + " after " + n + " events were sent and acknowledged");
    }
    long offset = 0;
    while (offset < end) {
      for (LogEntry e : log.read(topic, 0, offset, 5000)) {
        int i = (int) (e.offset() % pool.size());
        byte[] key = pool.get(i).getConversation().getBytes(StandardCharsets.UTF_8);
        if (!Arrays.equals(e.value(), expected[i]) || !Arrays.equals(e.key(), key)) {
          throw new IllegalStateException("the listener's log holds another record than the one sent at offset "
              + e.offset() + " of " + topic);
        }
        offset = e.offset() + 1;
      }
    }
  }

  /** Fails unless {@code topic} holds exactly {@code lines}, in order, as values. */
  private static void verifyLines(EmbeddedLog log, String topic, List<String> lines) throws IOException {
    long end = log.endOffset(topic, 0);
    if (log.startOffset(topic, 0) != 0 || end != lines.size()) {
      throw new IllegalStateException("kcat sent " + lines.size() + " lines to the listener's " + topic
          + " but its log holds offsets " + log.startOffset(topic, 0) + ".." + end);
    }
    long offset = 0;
    while (offset < end) {
      for (LogEntry e : log.read(topic, 0, offset, 5000)) {
        if (!Arrays.equals(e.value(), lines.get((int) e.offset()).getBytes(StandardCharsets.UTF_8))) {
          throw new IllegalStateException("the listener's log holds another value than the line kcat sent at offset "
              + e.offset() + " of " + topic);
        }
        offset = e.offset() + 1;
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

  /** @return the producer's metric of that name, from the group "producer-metrics" if it has one there */
  private static double metric(Producer<?, ?> producer, String name) {
    for (Map.Entry<MetricName, ? extends Metric> e : producer.metrics().entrySet()) {
      if (e.getKey().name().equals(name) && e.getKey().group().equals("producer-metrics")) {
        return ((Number) e.getValue().metricValue()).doubleValue();
      }
    }
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
