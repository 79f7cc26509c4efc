package io.pockettune.pipeline;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogEntry;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Time;

/**
 * An unbounded source over partitions of the embedded log, for the service: it polls for records
 * appended after it started and never ends.
 *
 * <h2>Order, and why it makes restarts exact</h2>
 * Records are merged across partitions by (timestamp, topic, partition, offset), the order of the
 * bounded {@link LogSource}, under a watermark rule: the head of a partition is emitted only when
 * every other partition also has a record available to compare it with, or has had none for
 * {@code maxIdleNanos} (then it counts as idle, as with Kafka Streams' {@code max.task.idle.ms}).
 * Whenever the records are in the log before the source reaches them (a backlog, a restart, the
 * service catching up), the order is therefore exactly the bounded merge order: a pure function
 * of the log's contents and the start offsets, independent of when polls happen. That is what
 * makes a count-batched run that was killed and restarted end bit-identical to one that never
 * stopped. Records that arrive while the source is live keep timestamp order as long as no
 * partition lags the others by more than the idle timeout; beyond it, order follows arrival, which
 * can never lose or repeat a record (offsets are committed per partition) but is no longer a
 * function of the contents alone.
 *
 * <p>Time comes from a Kafka {@link Time}, so tests drive the idle timeout without sleeping.
 *
 * <p>Not thread-safe.
 */
final class LiveLogSource implements RecordSource {
  private static final int READ_CHUNK = 512;
  private static final Comparator<Cursor> ORDER =
      Comparator.<Cursor>comparingLong(c -> c.buffer.peek().timestamp())
          .thenComparing(c -> c.partition.topic())
          .thenComparingInt(c -> c.partition.partition())
          .thenComparingLong(c -> c.buffer.peek().offset());

  private final EmbeddedLog log;
  private final List<Cursor> cursors = new ArrayList<>();
  private final long maxIdleNanos;
  private final Time time;

  /**
   * @param start        first offset to read, per partition
   * @param maxIdleNanos how long a partition with nothing to read may hold back the others
   */
  LiveLogSource(EmbeddedLog log, Map<TopicPartition, Long> start, long maxIdleNanos, Time time) {
    if (maxIdleNanos < 0) {
      throw new IllegalArgumentException("the idle timeout must not be negative, was " + maxIdleNanos);
    }
    this.log = log;
    this.maxIdleNanos = maxIdleNanos;
    this.time = time;
    start.forEach((tp, offset) -> cursors.add(new Cursor(tp, offset)));
  }

  @Override
  public LogSource.SourceRecord next() {
    long now = time.nanoseconds();
    Cursor best = null;
    for (Cursor c : cursors) {
      if (c.fill()) {
        c.idleSince = Long.MIN_VALUE;
        if (best == null || ORDER.compare(c, best) < 0) {
          best = c;
        }
      } else if (c.idleSince == Long.MIN_VALUE) {
        c.idleSince = now;
      }
    }
    if (best == null) {
      return null;
    }
    for (Cursor c : cursors) {
      if (c.buffer.isEmpty() && now - c.idleSince < maxIdleNanos) {
        return null; // it may yet receive an earlier record: wait for it, up to the idle timeout
      }
    }
    LogEntry e = best.buffer.poll();
    best.position = e.offset() + 1;
    return new LogSource.SourceRecord(best.partition, e.offset(), e.timestamp(), e.key(), e.value());
  }

  @Override
  public Map<TopicPartition, Long> positions() {
    Map<TopicPartition, Long> out = new LinkedHashMap<>();
    for (Cursor c : cursors) {
      out.put(c.partition, c.position);
    }
    return out;
  }

  /** @return acknowledged records not consumed yet, per partition */
  Map<TopicPartition, Long> lag() {
    Map<TopicPartition, Long> out = new LinkedHashMap<>();
    for (Cursor c : cursors) {
      out.put(c.partition, log.endOffset(c.partition.topic(), c.partition.partition()) - c.position);
    }
    return out;
  }

  private long skippedByRetention;

  /** @return records retention deleted before this source read them */
  long skippedByRetention() {
    return skippedByRetention;
  }

  /** @return true when every record acknowledged so far has been consumed */
  boolean caughtUp() {
    return lag().values().stream().allMatch(l -> l == 0);
  }

  private final class Cursor {
    final TopicPartition partition;
    final ArrayDeque<LogEntry> buffer = new ArrayDeque<>();
    long position;
    long nextRead;
    long idleSince = Long.MIN_VALUE;

    Cursor(TopicPartition partition, long start) {
      this.partition = partition;
      this.position = start;
      this.nextRead = start;
    }

    /** @return true when a record is buffered */
    boolean fill() {
      long end = log.endOffset(partition.topic(), partition.partition());
      if (buffer.isEmpty() && end > nextRead) {
        long start = log.startOffset(partition.topic(), partition.partition());
        if (nextRead < start) {
          // Retention deleted records before training read them: they are gone; go on after them.
          org.slf4j.LoggerFactory.getLogger(LiveLogSource.class).warn("retention deleted offsets {} to {} of {}"
              + " before training read them; training goes on from offset {}", nextRead, start - 1, partition, start);
          skippedByRetention += start - nextRead;
          nextRead = start;
          position = start;
        }
        List<LogEntry> entries;
        try {
          entries = log.read(partition.topic(), partition.partition(), nextRead, READ_CHUNK);
        } catch (IllegalArgumentException deletedMeanwhile) {
          return false; // retention deleted the segment between the check and the read: the next call skips it
        } catch (IOException e) {
          throw new UncheckedIOException("cannot read " + partition + " at offset " + nextRead + ": " + e.getMessage(), e);
        }
        for (LogEntry e : entries) {
          buffer.add(e);
          nextRead = e.offset() + 1;
        }
        if (entries.isEmpty()) {
          // Only erased records (forgotten events) lie before the end: step over them, so that the
          // source counts as caught up and commits past them.
          nextRead = end;
          position = end;
        }
      }
      return !buffer.isEmpty();
    }
  }
}
