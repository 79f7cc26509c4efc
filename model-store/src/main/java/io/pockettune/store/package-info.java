/**
 * The model store: the durable history of a personalized model in RocksDB. {@link
 * io.pockettune.store.ModelStore} is the entry type and the only public class with behaviour; it
 * explains the design (trajectory instead of weights, one write batch per step for exactly-once
 * training) and names the package-private parts behind it: {@code StoreDatabase} (RocksDB, column
 * families, synced writes, lifecycle, errors), {@code RunHistory} (identity and run configs),
 * {@code Trajectory} (steps and offsets), {@code SnapshotStore}, {@code CheckpointStore}, {@code
 * BranchStore} (rollback, branches, prune) and {@code TrajectoryReplay} (restore). Each part
 * summarizes the keys it writes; the byte layouts are in the codec of each column family: {@code
 * meta} ({@code MetaCodec}), {@code steps} ({@code StepRecordCodec}), {@code snapshots} ({@code
 * SnapshotCodec}), {@code checkpoints} ({@code CheckpointCodec}), {@code offsets} ({@code
 * OffsetCodec}) and {@code branches} ({@code BranchCodec}); the source-partition dictionary in
 * {@code meta} is {@code PartitionCodec}.
 */
package io.pockettune.store;
