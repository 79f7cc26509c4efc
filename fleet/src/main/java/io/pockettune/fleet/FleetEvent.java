package io.pockettune.fleet;

import java.util.Comparator;

/**
 * One event as the job reads it from Kafka: whose it is (the record key), where it was (topic,
 * partition, offset), when (the record timestamp, the event's time) and the Avro value as sent. A
 * Flink POJO (public fields, a no-argument constructor), so Flink serializes it without Kryo.
 */
public final class FleetEvent {
  /** The order in which one user's events train: event time, then topic, partition and offset. */
  public static final Comparator<FleetEvent> TRAINING_ORDER = Comparator.comparingLong((FleetEvent e) -> e.timestamp)
      .thenComparing(e -> e.topic).thenComparingInt(e -> e.partition).thenComparingLong(e -> e.offset);

  public String user;
  public String topic;
  public int partition;
  public long offset;
  public long timestamp;
  public byte[] value;

  public FleetEvent() {}

  public FleetEvent(String user, String topic, int partition, long offset, long timestamp, byte[] value) {
    this.user = user;
    this.topic = topic;
    this.partition = partition;
    this.offset = offset;
    this.timestamp = timestamp;
    this.value = value;
  }

  /** @return "topic-partition@offset", as the CLI names an event */
  public String position() {
    return topic + "-" + partition + "@" + offset;
  }

  @Override
  public String toString() {
    return "FleetEvent[" + user + " " + position() + " t=" + timestamp + "]";
  }
}
