package io.pockettune.store;

import java.nio.charset.StandardCharsets;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.CompressionType;

/** The column families of a model store; layouts are in the codec named beside each. */
enum Column {
  /** {@link MetaCodec}. */
  META("meta"),
  /** {@link StepRecordCodec}. */
  STEPS("steps"),
  /** {@link SnapshotCodec}. */
  SNAPSHOTS("snapshots"),
  /** {@link CheckpointCodec}. */
  CHECKPOINTS("checkpoints"),
  /** {@link OffsetCodec}. */
  OFFSETS("offsets"),
  /** {@link BranchCodec}: steps abandoned by a rollback, until pruned. */
  BRANCHES("branches");

  /** Snapshot chunks at least this large go to blob files. */
  private static final long MIN_BLOB_SIZE = 64 * 1024;

  final String familyName;

  Column(String familyName) {
    this.familyName = familyName;
  }

  byte[] nameBytes() {
    return familyName.getBytes(StandardCharsets.UTF_8);
  }

  /** @return new options for this family; the caller closes them after the database */
  ColumnFamilyOptions newOptions() {
    ColumnFamilyOptions options = new ColumnFamilyOptions();
    if (this == SNAPSHOTS) {
      // Values are compressed by SnapshotCodec and large: keep them out of the LSM tree, where
      // every compaction would copy them again.
      options
          .setCompressionType(CompressionType.NO_COMPRESSION)
          .setEnableBlobFiles(true)
          .setMinBlobSize(MIN_BLOB_SIZE)
          .setEnableBlobGarbageCollection(true);
    }
    return options;
  }
}
