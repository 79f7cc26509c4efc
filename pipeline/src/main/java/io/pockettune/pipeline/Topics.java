package io.pockettune.pipeline;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.KeyPartitioner;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.TopicPartition;

/**
 * The topics a data directory's log holds for app events, and how a key picks a partition. Apps
 * write messages (two partitions, keyed by conversation) and notes (one partition); the pipeline
 * trains on both, merged in event-time order. Events that cannot train go to {@link
 * DeadLetters#TOPIC}, which is not a source.
 */
final class Topics {
  static final String MESSAGES = "messages";
  static final String NOTES = "notes";
  static final int MESSAGE_PARTITIONS = 2;
  static final int NOTE_PARTITIONS = 1;

  private Topics() {}

  /** Creates the event topics if they are missing (a no-op on an existing log). */
  static void create(EmbeddedLog log) throws IOException {
    log.createTopic(MESSAGES, MESSAGE_PARTITIONS);
    log.createTopic(NOTES, NOTE_PARTITIONS);
  }

  /** @return every partition the pipeline reads, in a fixed order */
  static List<TopicPartition> sources() {
    List<TopicPartition> list = new ArrayList<>();
    for (int p = 0; p < MESSAGE_PARTITIONS; p++) {
      list.add(new TopicPartition(MESSAGES, p));
    }
    for (int p = 0; p < NOTE_PARTITIONS; p++) {
      list.add(new TopicPartition(NOTES, p));
    }
    return list;
  }

  /** @return the partition a record with this key goes to (Kafka's default partitioner) */
  static int partitionOf(String key, int partitions) {
    return KeyPartitioner.partitionOf(key.getBytes(StandardCharsets.UTF_8), partitions);
  }
}
