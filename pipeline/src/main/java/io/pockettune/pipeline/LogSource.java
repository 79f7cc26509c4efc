package io.pockettune.pipeline;

import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.LogReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import org.apache.kafka.common.TopicPartition;

/**
 * A bounded source over partitions of the embedded log: for each partition it reads from a start
 * offset up to (not including) an end offset, and merges the partitions into one stream ordered by
 * (timestamp, topic, partition, offset). The order is a pure function of the log's contents and the
 * start offsets, so a run resumed from committed offsets sees exactly the records an uninterrupted
 * run would have seen next.
 *
 * <p>Not thread-safe.
 */
final class LogSource implements RecordSource {

  /** One record read from the log, with its coordinates. */
  record SourceRecord(TopicPartition partition, long offset, long timestamp, byte[] key, byte[] value) {}

  private static final int READ_CHUNK = 512;
  private static final Comparator<Cursor> ORDER =
      Comparator.<Cursor>comparingLong(c -> c.head().timestamp())
          .thenComparing(c -> c.partition.topic())
          .thenComparingInt(c -> c.partition.partition())
          .thenComparingLong(c -> c.head().offset());

  private final LogReader log;
  private final Map<TopicPartition, Long> positions = new LinkedHashMap<>();
  private final PriorityQueue<Cursor> ready = new PriorityQueue<>(ORDER);

  /**
   * @param log   the log to read
   * @param start first offset to read per partition
   * @param end   offset to stop before, per partition (same keys as {@code start})
   */
  LogSource(LogReader log, Map<TopicPartition, Long> start, Map<TopicPartition, Long> end) {
    this.log = log;
    for (Map.Entry<TopicPartition, Long> e : start.entrySet()) {
      TopicPartition tp = e.getKey();
      Long stop = end.get(tp);
      if (stop == null) {
        throw new IllegalArgumentException("no end offset for " + tp);
      }
      positions.put(tp, e.getValue());
      Cursor c = new Cursor(tp, e.getValue(), stop);
      if (c.fill()) {
        ready.add(c);
      }
    }
  }

  /** @return the next record in merge order, or null when every partition reached its end */
  @Override
  public SourceRecord next() {
    Cursor c = ready.poll();
    if (c == null) {
      return null;
    }
    LogEntry e = c.buffer.poll();
    positions.put(c.partition, e.offset() + 1);
    if (c.fill()) {
      ready.add(c);
    }
    return new SourceRecord(c.partition, e.offset(), e.timestamp(), e.key(), e.value());
  }

  @Override
  public Map<TopicPartition, Long> positions() {
    return new LinkedHashMap<>(positions);
  }

  private final class Cursor {
    final TopicPartition partition;
    final long end;
    long nextRead;
    final ArrayDeque<LogEntry> buffer = new ArrayDeque<>();

    Cursor(TopicPartition partition, long start, long end) {
      this.partition = partition;
      this.nextRead = start;
      this.end = end;
    }

    LogEntry head() {
      return buffer.peek();
    }

    /** @return true when a record is buffered */
    boolean fill() {
      if (buffer.isEmpty() && nextRead < end) {
        long first = log.startOffset(partition.topic(), partition.partition());
        if (nextRead < first) {
          // Retention deleted records before they were read: they are gone; go on after them.
          nextRead = Math.min(first, end);
          positions.put(partition, nextRead);
          if (nextRead >= end) {
            return false;
          }
        }
        int max = (int) Math.min(READ_CHUNK, end - nextRead);
        // Taken before the read: a read that finds nothing before it found only erased records.
        long stop = Math.min(end, log.endOffset(partition.topic(), partition.partition()));
        List<LogEntry> entries;
        try {
          entries = log.read(partition.topic(), partition.partition(), nextRead, max);
        } catch (IOException e) {
          throw new UncheckedIOException("cannot read " + partition + " at offset " + nextRead + ": " + e.getMessage(), e);
        }
        for (LogEntry e : entries) {
          if (e.offset() >= end) {
            break;
          }
          buffer.add(e);
          nextRead = e.offset() + 1;
        }
        if (buffer.isEmpty()) {
          // Only erased records (forgotten events) are left before the end: step over them.
          if (stop > nextRead) {
            nextRead = stop;
            positions.put(partition, stop);
          }
        }
      }
      return !buffer.isEmpty();
    }
  }
}
