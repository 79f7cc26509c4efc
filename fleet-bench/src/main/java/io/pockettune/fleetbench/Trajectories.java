package io.pockettune.fleetbench;

import io.pockettune.pipeline.TrajectoryEntry;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * A run's trajectory topic read back: per user, one entry per step in step order. The sink is at
 * least once, so an entry published again must equal the first and is dropped (counted); two that
 * differ fail the benchmark.
 */
final class Trajectories {
  /** Per user, the steps' entries (bytes) in step order, and how many duplicates were dropped. */
  record Read(Map<String, List<byte[]>> steps, int duplicates) {}

  private Trajectories() {}

  static Read read(String bootstrap, String topic) {
    Map<String, List<byte[]>> out = new LinkedHashMap<>();
    int duplicates = 0;
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(Map.of("bootstrap.servers", bootstrap,
        "enable.auto.commit", "false"), new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
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
          throw new IllegalStateException("could not read " + topic + " to its end " + end + " within 60 s");
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          String user = new String(r.key(), StandardCharsets.UTF_8);
          List<byte[]> steps = out.computeIfAbsent(user, k -> new ArrayList<>());
          long step = TrajectoryEntry.decode(r.value()).record().step();
          if (step <= steps.size()) {
            if (!Arrays.equals(steps.get((int) step - 1), r.value())) {
              throw new IllegalStateException(user + " step " + step + " was published twice with different contents");
            }
            duplicates++;
          } else if (step == steps.size() + 1) {
            steps.add(r.value());
          } else {
            throw new IllegalStateException(user + " step " + step + " follows step " + steps.size() + " in " + topic);
          }
        }
      }
    }
    return new Read(out, duplicates);
  }

  /**
   * Checks that every user the baseline trained has exactly its steps in {@code read}, ending at
   * the baseline's values (the last entry's fingerprint), and that no one else published.
   *
   * @return the number of steps read
   * @throws IllegalStateException naming the first user that differs
   */
  static long check(Read read, DirectTraining.Result direct, String run) {
    if (!read.steps().keySet().equals(direct.stepsPerUser().keySet())) {
      throw new IllegalStateException(run + ": " + read.steps().size() + " users published steps, "
          + direct.stepsPerUser().size() + " were trained directly");
    }
    long total = 0;
    for (var u : direct.stepsPerUser().entrySet()) {
      List<byte[]> steps = read.steps().get(u.getKey());
      if (steps.size() != u.getValue()) {
        throw new IllegalStateException(run + ": " + u.getKey() + " has " + steps.size() + " steps, expected "
            + u.getValue());
      }
      long fingerprint = TrajectoryEntry.decode(steps.get(steps.size() - 1)).fingerprint();
      if (fingerprint != direct.lastFingerprint().get(u.getKey())) {
        throw new IllegalStateException(run + ": " + u.getKey() + "'s values after step " + steps.size()
            + " differ from the direct training's");
      }
      total += steps.size();
    }
    return total;
  }
}
