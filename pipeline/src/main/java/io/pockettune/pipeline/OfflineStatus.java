package io.pockettune.pipeline;

import io.pockettune.ingest.LogSnapshot;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.file.Files;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;

/** Status from the files, with no service running: read-only, it never recovers, locks or writes. */
final class OfflineStatus {
  private static final int RECENT = 50;

  private OfflineStatus() {}

  static JsonLine of(DataDirectory dir) throws IOException {
    JsonLine j = new JsonLine().put("state", "stopped").put("service", false);
    StoreSession.requireStore(dir);
    Map<SourcePartition, Long> committed;
    try (ModelStore store = dir.withSnapshotKey(ModelStore.openReadOnly(dir.store()))) {
      long last = store.lastStep();
      double loss = Double.NaN;
      if (last > 0) {
        List<StepRecord> recent = store.steps(Math.max(1, last - RECENT + 1), last);
        loss = recent.stream().mapToDouble(r -> (r.lossPlus() + r.lossMinus()) / 2.0).average().orElse(Double.NaN);
      }
      List<Checkpoint> checkpoints = store.checkpoints();
      Checkpoint c = checkpoints.isEmpty() ? null : checkpoints.get(checkpoints.size() - 1);
      committed = store.committedOffsets();
      j.put("last_step", last).put("recent_loss", loss).put("last_checkpoint", Service.checkpointJson(c));
    }
    Long total = null;
    Map<String, Long> byPartition = new LinkedHashMap<>();
    if (Files.isDirectory(dir.log())) {
      try (LogSnapshot log = dir.logSnapshot()) {
        total = 0L;
        for (TopicPartition tp : Topics.sources()) {
          if (!log.topics().contains(tp.topic())) {
            continue;
          }
          long lag = log.endOffset(tp.topic(), tp.partition())
              - committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()), log.startOffset(tp.topic(), tp.partition()));
          byPartition.put(tp.topic() + "-" + tp.partition(), lag);
          total += lag;
        }
      }
    }
    return j.put("lag", total).put("lag_by_partition", byPartition).put("data_dir", dir.toString());
  }
}
