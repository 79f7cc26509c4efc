package io.pockettune.pipeline;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads one user's trajectory from the fleet job's topic on a Kafka cluster: every partition from
 * its beginning to the end offsets taken when reading starts, so that a pull sees a fixed prefix
 * of the topic however fast the job publishes. Read committed, because the job publishes in
 * transactions: an aborted or open transaction's entries are never pulled. No consumer group:
 * partitions are assigned, and nothing is committed to the cluster.
 *
 * <p>Not thread-safe; each {@link #read} makes and closes its own consumer.
 */
final class TrajectoryReader {
  private TrajectoryReader() {}

  /**
   * What the topic holds for one user.
   *
   * @param entries     the user's entries by step
   * @param runConfig   the run-config header of step 1, or null (no step 1, or no header on it)
   * @param recordsRead records read on the topic, of every user
   */
  record Read(NavigableMap<Long, TrajectoryEntry> entries, String runConfig, long recordsRead) {}

  /**
   * @throws IllegalArgumentException one sentence: the cluster cannot be reached in time, the
   *     topic does not exist, or the user's records are not trajectory entries
   */
  static Read read(PocketTune.PullOptions o) {
    Map<String, Object> config = new HashMap<>(o.consumerConfigs());
    config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrapServers());
    config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    config.putIfAbsent(ConsumerConfig.CLIENT_ID_CONFIG, "pockettune-pull");
    long deadline = System.nanoTime() + o.timeout().toNanos();
    String topic = o.topic();
    try (KafkaConsumer<String, byte[]> consumer =
        new KafkaConsumer<>(config, new StringDeserializer(), new ByteArrayDeserializer())) {
      List<PartitionInfo> infos = consumer.partitionsFor(topic, remaining(deadline));
      if (infos == null || infos.isEmpty()) {
        throw new IllegalArgumentException("there is no topic " + topic + " on " + o.bootstrapServers()
            + ": check --topic (the fleet job publishes to " + TrajectoryEntry.DEFAULT_TOPIC + " unless told otherwise)");
      }
      List<TopicPartition> partitions = new ArrayList<>();
      for (PartitionInfo p : infos) {
        partitions.add(new TopicPartition(topic, p.partition()));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, remaining(deadline));
      NavigableMap<Long, TrajectoryEntry> entries = new TreeMap<>();
      Map<Long, String> where = new HashMap<>();
      String runConfig = null;
      long read = 0;
      List<TopicPartition> pending = new ArrayList<>(partitions);
      pending.removeIf(tp -> consumer.position(tp, remaining(deadline)) >= ends.get(tp));
      while (!pending.isEmpty()) {
        if (System.nanoTime() > deadline) {
          throw new IllegalArgumentException("could not read topic " + topic + " to its end on " + o.bootstrapServers()
              + " within " + o.timeout().toMillis() + " ms (" + read + " records read): raise --timeout-ms");
        }
        for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(Math.min(200,
            Math.max(1, remaining(deadline).toMillis()))))) {
          TopicPartition tp = new TopicPartition(r.topic(), r.partition());
          if (r.offset() >= ends.get(tp)) {
            continue;
          }
          read++;
          if (!o.user().equals(r.key())) {
            continue;
          }
          String at = tp + "@" + r.offset();
          TrajectoryEntry e;
          try {
            e = TrajectoryEntry.decode(r.value());
          } catch (IllegalArgumentException x) {
            throw new IllegalArgumentException("the record of user " + o.user() + " at " + at + ": " + x.getMessage(), x);
          }
          long step = e.record().step();
          TrajectoryEntry earlier = entries.putIfAbsent(step, e);
          if (earlier == null) {
            where.put(step, at);
          } else if (!earlier.equals(e)) {
            throw new IllegalArgumentException("topic " + topic + " holds two different entries for step " + step
                + " of user " + o.user() + " (at " + where.get(step) + " and " + at + "): the trajectory forked, so"
                + " there is no one model to pull");
          }
          if (step == 1 && runConfig == null) {
            Header h = r.headers().lastHeader(TrajectoryEntry.RUN_CONFIG_HEADER);
            runConfig = h == null || h.value() == null ? null : new String(h.value(), StandardCharsets.UTF_8);
          }
        }
        List<TopicPartition> done = new ArrayList<>();
        for (TopicPartition tp : pending) {
          if (consumer.position(tp, remaining(deadline)) >= ends.get(tp)) {
            done.add(tp);
          }
        }
        consumer.pause(done);
        pending.removeAll(done);
      }
      return new Read(entries, runConfig, read);
    } catch (org.apache.kafka.common.errors.TimeoutException e) {
      throw new IllegalArgumentException("could not reach Kafka at " + o.bootstrapServers() + " to read topic " + topic
          + " within " + o.timeout().toMillis() + " ms: check --bootstrap-servers and that the cluster runs", e);
    } catch (KafkaException e) {
      throw new IllegalArgumentException("cannot read topic " + topic + " on " + o.bootstrapServers() + ": "
          + PocketTune.message(e), e);
    }
  }

  private static Duration remaining(long deadline) {
    return Duration.ofNanos(Math.max(0, deadline - System.nanoTime()));
  }
}
