package io.pockettune.ingest;

import java.io.IOException;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Reading a log's partitions: what replay and evaluation need, whether from the owning
 * {@link EmbeddedLog} or from a read-only {@link LogSnapshot} beside a running owner.
 */
public interface LogReader {

    Set<String> topics();

    int partitionCount(String topic);

    /** @return the first offset still in the partition */
    long startOffset(String topic, int partition);

    /** @return the offset after the last record readable */
    long endOffset(String topic, int partition);

    /** @return up to {@code maxRecords} records from {@code fromOffset}, in offset order */
    List<LogEntry> read(String topic, int partition, long fromOffset, int maxRecords) throws IOException;

    /** @return the first record whose timestamp is at or after {@code timestamp}, if any */
    Optional<LogEntry> findByTimestamp(String topic, int partition, long timestamp) throws IOException;
}
