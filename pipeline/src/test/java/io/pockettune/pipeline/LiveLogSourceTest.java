package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogRecord;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.MockTime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LiveLogSourceTest {
  private static final TopicPartition P0 = new TopicPartition("t", 0);
  private static final TopicPartition P1 = new TopicPartition("t", 1);

  @TempDir Path dir;
  private final MockTime now = new MockTime(0, 0, 0);

  private static long ms(long millis) {
    return java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(millis);
  }

  private static LogRecord at(long time) {
    return new LogRecord(time, null, Long.toString(time).getBytes(StandardCharsets.UTF_8));
  }

  private static List<Long> drain(RecordSource source) {
    List<Long> times = new ArrayList<>();
    for (LogSource.SourceRecord r = source.next(); r != null; r = source.next()) {
      times.add(r.timestamp());
    }
    return times;
  }

  @Test
  void next_backlogInBoundedMergeOrderFromAnyStart() throws Exception {
    try (EmbeddedLog log = EmbeddedLog.open(dir)) {
      log.createTopic("t", 2);
      log.append("t", 0, List.of(at(1), at(4), at(5), at(9)));
      log.append("t", 1, List.of(at(2), at(3), at(8)));
      Map<TopicPartition, Long> start = new LinkedHashMap<>(Map.of(P0, 1L, P1, 0L));
      List<Long> bounded = drain(new LogSource(log, start, Map.of(P0, 4L, P1, 3L)));
      List<Long> live = drain(new LiveLogSource(log, start, 0, now));
      assertEquals(bounded, live);
      assertEquals(List.of(2L, 3L, 4L, 5L, 8L, 9L), live);
    }
  }

  @Test
  void next_emptyPartitionHoldsBackOthersUntilIdleTimeout() throws Exception {
    try (EmbeddedLog log = EmbeddedLog.open(dir)) {
      log.createTopic("t", 2);
      log.append("t", 0, List.of(at(10), at(30)));
      LiveLogSource source = new LiveLogSource(log, new LinkedHashMap<>(Map.of(P0, 0L, P1, 0L)), ms(100), now);
      assertNull(source.next(), "partition 1 may still receive an earlier record");
      now.setCurrentTimeMs(99);
      assertNull(source.next());
      log.append("t", 1, List.of(at(20)));
      assertEquals(10, source.next().timestamp());
      assertEquals(20, source.next().timestamp(), "the late record keeps its place in time order");
      now.setCurrentTimeMs(150);
      assertNull(source.next(), "partition 1 is empty again: a new idle period starts");
      now.setCurrentTimeMs(250);
      assertEquals(30, source.next().timestamp(), "idle for the timeout: the others go on");
      assertTrue(source.caughtUp());
      assertEquals(Map.of(P0, 2L, P1, 1L), source.positions());
    }
  }

  /**
   * Retention deleting records before the source read them: both sources go on from the first
   * record left, counting the loss, instead of failing on an offset out of range; erased records
   * (forgotten events) at the end are stepped over, so the live source counts as caught up.
   */
  @Test
  void next_goesOnAfterRecordsRetentionDeletedAndStepsOverErasedOnes() throws Exception {
    io.pockettune.ingest.LogConfig small = io.pockettune.ingest.LogConfig.defaults().withSegmentBytes(200)
        .withRetention(-1, 300);
    try (EmbeddedLog log = EmbeddedLog.open(dir, small)) {
      log.createTopic("t", 2);
      for (long t = 0; t < 40; t++) {
        log.append("t", 0, List.of(at(t)));
      }
      Map<TopicPartition, Long> start = new LinkedHashMap<>(Map.of(P0, 0L, P1, 0L));
      LiveLogSource live = new LiveLogSource(log, start, 0, now);
      assertTrue(log.enforceRetention() > 0, "retention deleted segments");
      long first = log.startOffset("t", 0);
      assertTrue(first > 0);
      List<Long> read = drain(live);
      assertEquals(first, (long) read.get(0), "the live source goes on from the first record left");
      assertEquals(first, live.skippedByRetention());
      List<Long> bounded = drain(new LogSource(log, start, Map.of(P0, 40L, P1, 0L)));
      assertEquals(read, bounded, "so does the bounded one");

      log.erase("t", 0, java.util.Set.of(38L, 39L));
      LiveLogSource again = new LiveLogSource(log, new LinkedHashMap<>(Map.of(P0, 38L, P1, 0L)), 0, now);
      assertNull(again.next());
      assertTrue(again.caughtUp(), "erased records at the end count as consumed");
      assertEquals(40L, again.positions().get(P0));
    }
  }
}
