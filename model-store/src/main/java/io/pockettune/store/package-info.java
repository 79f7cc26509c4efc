/**
 * The model store: the durable history of a personalized model in RocksDB. {@link
 * io.pockettune.store.ModelStore} is the entry type; it explains the design (trajectory instead of
 * weights, one write batch per step for exactly-once training). Byte layouts are documented in the
 * codec of each column family: {@code meta} ({@code MetaCodec}), {@code steps} ({@code
 * StepRecordCodec}), {@code snapshots} ({@code SnapshotCodec}), {@code checkpoints} ({@code
 * CheckpointCodec}), {@code offsets} ({@code OffsetCodec}) and {@code branches} ({@code
 * BranchCodec}); the source-partition dictionary in {@code meta} is {@code PartitionCodec}.
 */
package io.pockettune.store;
