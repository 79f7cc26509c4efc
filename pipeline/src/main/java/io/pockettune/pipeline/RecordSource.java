package io.pockettune.pipeline;

import java.util.Map;
import org.apache.kafka.common.TopicPartition;

/** Where a {@link TrainingJob} reads records: the bounded {@link LogSource} or the unbounded {@link LiveLogSource}. */
interface RecordSource {

  /** @return the next record, or null when none is available now (for a bounded source: ever) */
  LogSource.SourceRecord next();

  /** @return a copy of the next offset to read, per partition */
  Map<TopicPartition, Long> positions();
}
