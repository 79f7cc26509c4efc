package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogRecord;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LogSourceTest {
  @TempDir Path dir;

  private static LogRecord at(long time) {
    return new LogRecord(time, null, Long.toString(time).getBytes(java.nio.charset.StandardCharsets.UTF_8));
  }

  @Test
  void next_mergesPartitionsByTimestampWithinBounds() throws Exception {
    try (EmbeddedLog log = EmbeddedLog.open(dir)) {
      log.createTopic("t", 2);
      log.append("t", 0, List.of(at(1), at(4), at(5), at(9)));
      log.append("t", 1, List.of(at(2), at(3), at(8)));
      TopicPartition p0 = new TopicPartition("t", 0);
      TopicPartition p1 = new TopicPartition("t", 1);
      Map<TopicPartition, Long> start = new LinkedHashMap<>(Map.of(p0, 1L, p1, 0L));
      Map<TopicPartition, Long> end = Map.of(p0, 3L, p1, 3L);

      LogSource source = new LogSource(log, start, end);
      List<Long> times = new ArrayList<>();
      for (LogSource.SourceRecord r = source.next(); r != null; r = source.next()) {
        times.add(r.timestamp());
      }
      assertEquals(List.of(2L, 3L, 4L, 5L, 8L), times);
      assertEquals(Map.of(p0, 3L, p1, 3L), source.positions());
      assertNull(source.next());
    }
  }
}
