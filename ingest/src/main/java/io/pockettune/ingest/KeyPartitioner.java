package io.pockettune.ingest;

import org.apache.kafka.common.utils.Utils;

/**
 * Kafka's default partitioner for keyed records: murmur2 of the serialized key, made positive,
 * modulo the partition count. Every writer of the embedded log that picks a partition from a key
 * uses this one function, so a record lands in the same partition whether it came through the
 * {@link EmbeddedProducer}, the command line or a Kafka broker.
 */
public final class KeyPartitioner {
  private KeyPartitioner() {}

  /**
   * @param key        the serialized key, not null
   * @param partitions the topic's partition count, at least 1
   * @return the partition, in {@code [0, partitions)}
   */
  public static int partitionOf(byte[] key, int partitions) {
    if (partitions < 1) {
      throw new IllegalArgumentException("a topic has at least one partition, not " + partitions);
    }
    return Utils.toPositive(Utils.murmur2(key)) % partitions;
  }
}
