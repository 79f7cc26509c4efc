package io.pockettune.store;

import java.util.Comparator;
import java.util.Objects;

/**
 * One partition of a source topic (embedded log or Kafka) whose next offset is committed with every
 * step. Ordered by topic, then partition.
 *
 * @param topic     topic name, not empty
 * @param partition partition number, at least 0
 */
public record SourcePartition(String topic, int partition) implements Comparable<SourcePartition> {
  private static final Comparator<SourcePartition> ORDER =
      Comparator.comparing(SourcePartition::topic).thenComparingInt(SourcePartition::partition);

  public SourcePartition {
    Objects.requireNonNull(topic, "topic");
    if (topic.isEmpty()) {
      throw new IllegalArgumentException("topic must not be empty");
    }
    if (partition < 0) {
      throw new IllegalArgumentException("partition must be at least 0, was " + partition);
    }
  }

  @Override
  public int compareTo(SourcePartition other) {
    return ORDER.compare(this, other);
  }

  @Override
  public String toString() {
    return topic + "-" + partition;
  }
}
