package io.pockettune.store;

import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Function;
import org.apache.kafka.common.utils.Time;
import org.rocksdb.WriteBatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The durable history of one personalized model, in a RocksDB database.
 *
 * <h2>A trajectory, not weights</h2>
 * A MeZO step is fully described by (seed, projected gradient, lr, eps): the direction is
 * regenerated from the seed. The model after T steps is therefore the base model plus the replay of
 * T step records of about 50 bytes each (41 for the step, a few for its offsets), and this store
 * keeps exactly that: the step records, occasional
 * snapshots of the trainable values (so that restoring replays a bounded number of steps),
 * checkpoints naming points on the trajectory, and the source offsets consumed. Restoring step n
 * is {@link #snapshotAtOrBefore} n plus replay of {@link #steps} after it.
 *
 * <h2>Parts</h2>
 * This class is the facade; each responsibility, with the layout of the keys it writes, is a
 * package-private part:
 * <ul>
 *   <li>{@link StoreDatabase}: RocksDB, its column families, synced writes, the lifecycle and the
 *       error sentences;
 *   <li>{@link RunHistory}: the {@link RunIdentity} and the history of run configs;
 *   <li>{@link Trajectory}: the steps and the offsets they committed, exactly once;
 *   <li>{@link SnapshotStore}: snapshots of the trainable values;
 *   <li>{@link CheckpointStore}: checkpoints;
 *   <li>{@link BranchStore}: rollback, abandoned branches and prune;
 *   <li>{@link TrajectoryReplay}: restore, by snapshot and replay.
 * </ul>
 *
 * <h2>Exactly once</h2>
 * {@link #commitStep} writes the step record and the next offset of every source partition the step
 * consumed in ONE {@link WriteBatch}, so the store always holds both or neither: after a crash the
 * trainer restores the model at {@link #lastStep} and the source seeks to {@link
 * #committedOffsets}; no event is trained twice or skipped (see {@link Trajectory}).
 *
 * <h2>Durability</h2>
 * Every write is synced: when {@link #commitStep}, {@link #putSnapshot} or {@link #markCheckpoint}
 * returns, what it wrote survives a crash of the process or of the device (as far as the device
 * honours fsync). A commit costs one fsync, small next to the two forward passes of the step it
 * records.
 *
 * <h2>Invariants</h2>
 * <ul>
 *   <li>{@code steps} holds the live trajectory, every step from 1 to {@link #lastStep}.
 *       {@link #rollbackTo} moves the steps after its target to an abandoned {@link Branch} in
 *       the {@code branches} family, in one write batch with the offsets of the target, so the
 *       source moves back with the model; {@link #prune} deletes abandoned branches.
 *   <li>No snapshot is ahead of {@link #lastStep}, so a restore never runs past the committed
 *       offsets.
 *   <li>The store belongs to one base model, kernel version and trainable layout ({@link
 *       RunIdentity}), fixed at creation; a run that differs is refused. The run config may
 *       change between runs; {@link #runConfigs} records each with the first step it trained.
 * </ul>
 *
 * <h2>Rollback</h2>
 * Every step record also carries the next offsets its commit wrote, so the offsets at any step are
 * known, not only at checkpoints. Rolling back to step S: {@link #restore} S (nearest snapshot at
 * or before S, then {@link MezoTrainer#replay} of the records after it: bit-identical to the
 * parameters the trainer had after S, because the perturbation kernel's arithmetic is canonical),
 * then {@link #rollbackTo} S, after which the next commit is step S + 1 and the source resumes at
 * the offsets of S. Snapshots after S are dropped (they are derived data); checkpoints after S are
 * kept, marked with their branch (see {@link BranchStore}).
 *
 * <h2>Concurrency</h2>
 * Thread-safe. Writes are serialized; reads run concurrently with them and see whole commits only.
 * {@link #close} waits for the calls in progress, and any call after it throws {@link
 * IllegalStateException}. One process at a time opens a store for writing (RocksDB's LOCK file);
 * {@link #openReadOnly} takes no lock, so commands can inspect a store while another process
 * trains into it, seeing it as it was when opened.
 */
public final class ModelStore implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ModelStore.class);

  private final StoreDatabase db;
  private final RunHistory run;
  private final Trajectory trajectory;
  private final SnapshotStore snapshots;
  private final CheckpointStore checkpoints;
  private final BranchStore branches;
  private final TrajectoryReplay replay;

  private ModelStore(StoreDatabase db, Time time) {
    this.db = db;
    this.run = new RunHistory(db, time);
    this.trajectory = new Trajectory(db);
    this.snapshots = new SnapshotStore(db, trajectory);
    this.checkpoints = new CheckpointStore(db, trajectory, run, time);
    this.branches = new BranchStore(db, run, trajectory, snapshots, checkpoints, time);
    this.replay = new TrajectoryReplay(db, run, trajectory, snapshots, time);
  }

  /**
   * Opens the store in {@code dir} for training, creating it (and the directory) if missing. A new
   * store records {@code identity}; an existing one must have been created for the same base model,
   * kernel version and trainable layout. A changed run config replaces the stored one and is
   * recorded with the step it takes effect at.
   *
   * @throws StoreMismatchException if the store was created for another model, kernel or layout
   * @throws StoreException if the store is in use by another process or cannot be opened
   */
  public static ModelStore open(Path dir, RunIdentity identity) {
    return open(dir, identity, Time.SYSTEM);
  }

  /**
   * {@link #open(Path, RunIdentity)} with the time that stamps checkpoints, branches and run-config
   * changes (Kafka's {@link Time}, the project's one time seam; {@link Time#SYSTEM} in production).
   */
  public static ModelStore open(Path dir, RunIdentity identity, Time time) {
    Objects.requireNonNull(dir, "dir");
    Objects.requireNonNull(identity, "identity");
    Objects.requireNonNull(time, "time");
    StoreDatabase.createDirectory(dir);
    ModelStore store = load(StoreDatabase.open(dir, false), time);
    try {
      store.run.adopt(identity, store.trajectory.lastStep());
      return store;
    } catch (RuntimeException e) {
      store.close();
      throw e;
    }
  }

  /**
   * Opens an existing store for reading only, e.g. to list its checkpoints. It takes no lock, so it
   * works while another process trains into the store, and sees the store as of this call.
   *
   * @throws StoreException if {@code dir} holds no model store
   */
  public static ModelStore openReadOnly(Path dir) {
    Objects.requireNonNull(dir, "dir");
    StoreDatabase.requireExisting(dir);
    ModelStore store = load(StoreDatabase.open(dir, true), Time.SYSTEM);
    if (store.run.identity() == null) {
      store.close();
      throw new StoreException(
          dir + " is a RocksDB database but not a PocketTune model store (it has no run"
              + " identity): check --data-dir");
    }
    return store;
  }

  /**
   * Opens an existing store for writing with the identity it was created with, for commands that
   * change its history (rollback, prune) rather than train.
   *
   * @throws StoreException if {@code dir} holds no model store or another process has it open
   */
  public static ModelStore openExisting(Path dir) {
    return openExisting(dir, Time.SYSTEM);
  }

  /** {@link #openExisting(Path)} with the time that stamps checkpoints and branches. */
  public static ModelStore openExisting(Path dir, Time time) {
    Objects.requireNonNull(time, "time");
    // Read-only first: a writable open would create the column families a non-store lacks.
    ModelStore.openReadOnly(dir).close();
    return load(StoreDatabase.open(dir, false), time);
  }

  /**
   * Encrypts snapshot values at rest with {@code key} (32 bytes, AES-256-GCM, a fresh nonce per
   * chunk, the chunk's key as associated data); null keeps them in the clear. Call it right after
   * opening, before the first snapshot is read or written. The other column families (steps,
   * checkpoints, offsets, meta) hold no user text and stay in the clear. A snapshot stored the
   * other way (encrypted without a key, clear with one) is refused when read.
   *
   * @return this store
   * @throws IllegalArgumentException if {@code key} is not 32 bytes
   */
  public ModelStore encryptSnapshots(byte[] key) {
    snapshots.useKey(key);
    return this;
  }

  /** @return a store over {@code db} with its state read; closes {@code db} if that fails */
  private static ModelStore load(StoreDatabase db, Time time) {
    ModelStore store = new ModelStore(db, time);
    try {
      db.load("read the state", () -> {
        store.run.load();
        store.trajectory.load();
        store.checkpoints.load();
        store.branches.load();
        return null;
      });
    } catch (RuntimeException e) {
      store.close();
      throw e;
    }
    LOG.debug("Opened model store at {}: last step {}", db.dir(), store.trajectory.lastStep());
    return store;
  }

  /** @return the directory of the store */
  public Path directory() {
    return db.dir();
  }

  /** @return the identity of the run that opened the store, or the stored one if read-only */
  public RunIdentity identity() {
    db.ensureOpen();
    return run.identity();
  }

  /**
   * @return every run config recorded, by the first step it applies to: the config that trained
   *     step n is the entry at or before n ({@code floorEntry(n)}); the last entry is the current
   *     config, which the next committed step is trained under. Unmodifiable.
   */
  public NavigableMap<Long, String> runConfigs() {
    return run.configs();
  }

  /**
   * Commits one step and the source offsets it consumed, atomically and durably: when this method
   * returns, both survive a crash; if it throws, neither was written. Partitions not in {@code
   * nextOffsets} keep their committed offset.
   *
   * @param record      the step; its number must be {@link #lastStep()} + 1
   * @param nextOffsets for each partition the step read from, the next offset to read
   * @throws IllegalStateException if the step is out of order (a bug in the caller)
   */
  public void commitStep(StepRecord record, Map<SourcePartition, Long> nextOffsets) {
    trajectory.commit(record, nextOffsets);
  }

  /** @return the number of the last committed step; 0 if none */
  public long lastStep() {
    db.ensureOpen();
    return trajectory.lastStep();
  }

  /** @return the next offset to read per source partition, as of {@link #lastStep()}; sorted */
  public Map<SourcePartition, Long> committedOffsets() {
    db.ensureOpen();
    return trajectory.committedOffsets();
  }

  /** @return the record of step {@code n}, or empty if it is not stored */
  public Optional<StepRecord> step(long n) {
    return trajectory.step(n);
  }

  /**
   * @return the stored steps from {@code fromInclusive} to {@code toInclusive}, in step order;
   *     empty if the range is empty
   * @throws StoreCorruptedException if a step inside the range is missing
   */
  public List<StepRecord> steps(long fromInclusive, long toInclusive) {
    return trajectory.steps(fromInclusive, toInclusive);
  }

  /**
   * Stores the trainable values after {@code step}, replacing any earlier snapshot of that step.
   * Reads {@code values} from its position to its limit without moving them (direct buffers are
   * fine). Durable when it returns.
   *
   * @param step the step the values are the state after: 0 (base model) to {@link #lastStep()}
   * @throws IllegalStateException if {@code step} is after the last committed step
   */
  public void putSnapshot(long step, FloatBuffer values) {
    snapshots.put(step, values);
  }

  /**
   * @return the latest snapshot at or before {@code step}, checksum-verified; empty if none
   * @throws StoreCorruptedException if that snapshot fails its checksum or is incomplete
   */
  public Optional<Snapshot> snapshotAtOrBefore(long step) {
    return snapshots.atOrBefore(step);
  }

  /** @return the step of the first snapshot after {@code step}, or -1 if there is none */
  public long snapshotStepAfter(long step) {
    return snapshots.stepAfter(step);
  }

  /**
   * Snapshots {@code params} if the last committed step is a positive multiple of {@code every}.
   * Call right after {@link #commitStep}, with the parameters the trainer has after that step.
   *
   * @param every steps between snapshots; 0 or less never snapshots
   * @return whether a snapshot was written
   */
  public boolean snapshotIfDue(ParameterSet params, long every) {
    db.ensureOpen();
    return snapshots.putIfDue(params, every);
  }

  /**
   * Marks the current state (the last committed step and its offsets) as a checkpoint. Durable when
   * it returns.
   *
   * @param label   free text, or null
   * @param metrics figures to keep with it, e.g. an evaluation loss; may be empty
   * @return the checkpoint, with the next sequential id
   */
  public Checkpoint markCheckpoint(String label, Map<String, Double> metrics) {
    return checkpoints.mark(label, metrics);
  }

  /** @return every checkpoint, by id */
  public List<Checkpoint> checkpoints() {
    return checkpoints.all();
  }

  /** @return the checkpoint with this id, or empty if there is none */
  public Optional<Checkpoint> checkpoint(long id) {
    return checkpoints.get(id);
  }

  /**
   * @return the next offset per source partition as committed with {@code step} (empty at step 0);
   *     sorted. Partitions first read after {@code step} are absent.
   * @throws IllegalArgumentException if {@code step} is negative or after {@link #lastStep()}
   * @throws StoreException if a step record on the way was written by a PocketTune that did not
   *     keep offsets with each step (then only checkpoints give offsets)
   */
  public Map<SourcePartition, Long> offsetsAt(long step) {
    return trajectory.offsetsAt(step);
  }

  /**
   * Rolls back to {@code step} (or to {@code checkpoint}, when not null) only after proving the
   * restore: see {@link VerifiedRollback}. {@code model}'s parameters must hold the base values;
   * they hold the target's afterwards.
   */
  public VerifiedRollback rollbackVerified(long step, Checkpoint checkpoint, LossModel model,
      Function<String, MezoConfig> configOf, PerturbationKernel kernel) {
    return VerifiedRollback.run(this, step, checkpoint, model, configOf, kernel);
  }

  /**
   * Rolls the live trajectory back to {@code step}, with the offsets committed with it. See
   * {@link #rollbackTo(long, Map)}.
   */
  public Rollback rollbackTo(long step) {
    return rollbackTo(step, offsetsAt(step));
  }

  /**
   * Rolls the live trajectory back to a checkpoint, with the offsets it recorded.
   *
   * @throws IllegalArgumentException if the checkpoint is on an abandoned branch
   */
  public Rollback rollbackTo(Checkpoint checkpoint) {
    return branches.rollbackTo(checkpoint);
  }

  /**
   * Makes {@code step} the last committed step, in ONE synced write batch: the steps after it move
   * to a new {@link Branch} (kept until {@link #prune}), the checkpoints on them are marked with
   * that branch, the snapshots after it are deleted, and the committed offsets become {@code
   * offsets}. The next commit is step {@code step + 1}. The caller restores the parameters of
   * {@code step} with {@link #restore}. Rolling back to {@link #lastStep()} changes nothing.
   *
   * @throws IllegalArgumentException if {@code step} is negative or after {@link #lastStep()}
   */
  Rollback rollbackTo(long step, Map<SourcePartition, Long> offsets) {
    return branches.rollbackTo(step, offsets);
  }

  /**
   * For exact forgetting: the first step of the live trajectory whose commit consumed one of the
   * forgotten events, given as the earliest forgotten offset per source partition (a step consumed
   * it when the next offset it committed for that partition is past it).
   *
   * @return that step, or 0 when no committed step has consumed any of them yet
   */
  public long firstStepConsuming(Map<SourcePartition, Long> earliest) {
    return trajectory.firstStepConsuming(earliest);
  }

  /**
   * For exact forgetting: deletes the steps of every abandoned branch that consumed one of the
   * forgotten events (earliest forgotten offset per source partition), or forked from a model that
   * had, and marks the branch {@link Branch#forgotten}: its checkpoints are superseded. Compacts
   * the database so that the deleted records leave its files. Idempotent.
   *
   * @return the branches this call forgot
   */
  public List<Branch> forgetBranches(Map<SourcePartition, Long> earliest) {
    return branches.forgetBranches(earliest);
  }

  /** @return the abandoned branches not yet pruned, by id */
  public List<Branch> branches() {
    return branches.branches();
  }

  /** @return the steps of an abandoned branch, in step order; empty if it was pruned */
  public List<StepRecord> branchSteps(long branchId) {
    return branches.branchSteps(branchId);
  }

  /**
   * Deletes every abandoned branch and, if {@code thinSnapshots}, every snapshot except the latest
   * and those at the steps of live checkpoints; then compacts the store so that the space is given
   * back. Checkpoints of pruned branches stay listed (ids are never reused) but can no longer be
   * restored.
   */
  public Prune prune(boolean thinSnapshots) {
    return branches.prune(thinSnapshots);
  }

  /**
   * @return the native memory RocksDB holds for this store, in bytes: {@code memtables}, {@code
   *     block_cache} and {@code table_readers}
   */
  public Map<String, Long> memoryUsage() {
    return db.read("measure the store's memory", db::memoryUsage);
  }

  /** @return RocksDB table files per column family (for tests) */
  Map<String, Long> tableFiles() {
    return db.read("count the store's files", db::tableFiles);
  }

  /**
   * @return bytes of RocksDB table and blob files per column family, after flushing the
   *     memtables (the write-ahead log and RocksDB's own logs are not counted)
   */
  public Map<String, Long> sizeOnDisk() {
    return db.read("measure the store", db::sizeOnDisk);
  }

  /**
   * Brings {@code model} to the parameters it had after {@code step}: loads the nearest snapshot at
   * or before it, or starts from the model's own values if there is none, then replays the step
   * records after the snapshot. The result is bit-identical to what the trainer had after that step
   * (the kernel's arithmetic is canonical).
   *
   * @param model  a model fresh from {@link LossModel#causalLm} on the base model the store was
   *               created for: its parameters must be the base values
   * <p>This form applies ONE config to every step, which is right only if the distribution and
   * weight decay never changed over the run; {@link #restore(long, LossModel, Function,
   * PerturbationKernel)} follows the recorded history instead.
   *
   * @param config the run's hyperparameters: replay takes lr and eps from each record, but the
   *               direction distribution and weight decay from this config, so they must be the
   *               ones the steps were trained with; the returned trainer continues under it
   * @throws StoreMismatchException if the model, its trainable layout or the perturbation kernel
   *     differ from those the trajectory was recorded with
   * @throws IllegalArgumentException if {@code step} is not on the live trajectory
   */
  public Restored restore(long step, LossModel model, MezoConfig config, PerturbationKernel kernel) {
    return replay.restore(step, model, config, kernel);
  }

  /**
   * Brings {@code model} to the parameters it had after {@code step}, like {@link #restore(long,
   * LossModel, MezoConfig, PerturbationKernel)}, but replays every step under the run config that
   * trained it ({@link #runConfigs}: the entry at or before the step), switching at each recorded
   * change. Bit-identical to the trained parameters even when the distribution or the weight decay
   * changed between runs.
   *
   * @param model    a model fresh from {@link LossModel#causalLm} on the base model the store was
   *                 created for: its parameters must be the base values
   * @param configOf the hyperparameters a run config stands for, given its text as the store keeps
   *                 it; called once per distinct text on the way and for the current config. For
   *                 replay only the direction distribution and weight decay matter (lr and eps come
   *                 from each record); the returned trainer uses all of the current config's
   * @return the restored state; its trainer continues under {@code configOf} of the store's
   *     current run config ({@link #identity()}), the one the next committed step is recorded
   *     under, and {@link Restored#configs()} says which configs replay applied from which step
   * @throws StoreMismatchException if the model, its trainable layout or the perturbation kernel
   *     differ from those the trajectory was recorded with
   * @throws IllegalArgumentException if {@code step} is not on the live trajectory
   */
  public Restored restore(long step, LossModel model, Function<String, MezoConfig> configOf,
      PerturbationKernel kernel) {
    return replay.restore(step, model, configOf, kernel);
  }

  /** Test hook: the raw value under {@code key}, or null. */
  byte[] rawGet(Column column, byte[] key) {
    return db.read("read a raw value", () -> db.get(column, key));
  }

  /** Test hook: writes {@code value} under {@code key}, bypassing every codec and invariant. */
  void rawPut(Column column, byte[] key, byte[] value) {
    db.write("write a raw value", () -> {
      db.put(column, key, value);
      return null;
    });
  }

  /** Test hook: deletes the value under {@code key}, bypassing every invariant. */
  void rawDelete(Column column, byte[] key) {
    db.write("delete a raw value", () -> {
      db.delete(column, key);
      return null;
    });
  }

  /** Test hook: writes key/value pairs in one batch, bypassing every codec and invariant. */
  void rawPutAll(Column column, Map<byte[], byte[]> entries) {
    db.write("write raw values", () -> {
      try (WriteBatch batch = new WriteBatch()) {
        for (Map.Entry<byte[], byte[]> e : entries.entrySet()) {
          batch.put(db.handle(column), e.getKey(), e.getValue());
        }
        db.apply(batch);
      }
      return null;
    });
  }

  /**
   * Releases every RocksDB resource: the column family handles, then the database, then the
   * options. Waits for calls in progress; idempotent.
   */
  @Override
  public void close() {
    db.close();
  }
}
