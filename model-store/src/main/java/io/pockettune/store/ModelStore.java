package io.pockettune.store;

import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.apache.kafka.common.utils.Time;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.FlushOptions;
import org.rocksdb.Options;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.Status;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;
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
 * <h2>Exactly once</h2>
 * {@link #commitStep} writes the step record and the next offset of every source partition the step
 * consumed in ONE {@link WriteBatch}. RocksDB applies a batch atomically, across column families and
 * across a crash, so the store always holds both or neither: the committed offsets are exactly the
 * events the last committed step has trained on. After a crash the trainer restores the model at
 * {@link #lastStep} and the source seeks to {@link #committedOffsets}; no event is trained twice or
 * skipped. Two separate writes would leave a window in which a crash does one or the other.
 *
 * <h2>Durability</h2>
 * Every write is synced ({@code WriteOptions.sync}): when {@link #commitStep}, {@link #putSnapshot}
 * or {@link #markCheckpoint} returns, what it wrote survives a crash of the process or of the device
 * (as far as the device honours fsync). A commit costs one fsync, small next to the two forward
 * passes of the step it records.
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
 *       RunIdentity}), fixed at creation; a run that differs is refused.
 * </ul>
 *
 * <h2>Rollback</h2>
 * Every step record also carries the next offsets its commit wrote (see {@link StepRecordCodec}),
 * so the offsets at any step are known, not only at checkpoints. Rolling back to step S: {@link
 * #restore} S (nearest snapshot at or before S, then {@link MezoTrainer#replay} of the records
 * after it: bit-identical to the parameters the trainer had after S, because the perturbation
 * kernel's arithmetic is canonical), then {@link #rollbackTo} S, after which the next commit is
 * step S + 1 and the source resumes at the offsets of S. Snapshots after S are dropped (they are
 * derived data); checkpoints after S are kept, marked with their branch.
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
  /** Informational RocksDB LOG files kept in the store directory. */
  private static final int KEEP_INFO_LOGS = 3;

  static {
    RocksDB.loadLibrary();
  }

  @FunctionalInterface
  private interface StoreAction<T> {
    T run() throws RocksDBException;
  }

  /** The last committed step and the offsets committed with it, read together. */
  private record Committed(long lastStep, Map<SourcePartition, Long> offsets) {
    Committed advance(long step, Map<SourcePartition, Long> nextOffsets) {
      TreeMap<SourcePartition, Long> merged = new TreeMap<>(offsets);
      merged.putAll(nextOffsets);
      return new Committed(step, Collections.unmodifiableMap(merged));
    }
  }

  private final Path dir;
  private final boolean readOnly;
  private final Time time;
  private final RocksDB db;
  private final DBOptions dbOptions;
  private final List<ColumnFamilyOptions> familyOptions;
  private final List<ColumnFamilyHandle> allHandles;
  private final EnumMap<Column, ColumnFamilyHandle> handles = new EnumMap<>(Column.class);
  private final WriteOptions syncWrite;
  private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
  private final Object writeLock = new Object();

  private volatile boolean closed;
  private volatile RunIdentity identity;
  private volatile Committed committed = new Committed(0, Map.of());
  /** Guarded by {@link #writeLock}. */
  private long nextCheckpointId = 1;
  /** Guarded by {@link #writeLock}. */
  private long nextBranchId = 1;
  /** The partition dictionary ({@link PartitionCodec}); grows under {@link #writeLock}. */
  private final Map<SourcePartition, Integer> partitionIndex = new ConcurrentHashMap<>();
  private final Map<Integer, SourcePartition> partitionByIndex = new ConcurrentHashMap<>();

  private ModelStore(
      Path dir,
      boolean readOnly,
      Time time,
      RocksDB db,
      DBOptions dbOptions,
      List<ColumnFamilyOptions> familyOptions,
      List<ColumnFamilyHandle> allHandles,
      List<Column> opened) {
    this.dir = dir;
    this.readOnly = readOnly;
    this.time = time;
    this.db = db;
    this.dbOptions = dbOptions;
    this.familyOptions = familyOptions;
    this.allHandles = allHandles;
    this.syncWrite = new WriteOptions().setSync(true);
    // Handles come in descriptor order: the default family, then the opened columns, then others.
    for (int i = 0; i < opened.size(); i++) {
      handles.put(opened.get(i), allHandles.get(1 + i));
    }
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
    if (Files.exists(dir) && !Files.isDirectory(dir)) {
      throw new StoreException(
          "the model store path " + dir + " is a file, not a directory: choose a directory");
    }
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new StoreException(
          "cannot create the model store directory " + dir + " (" + e.getMessage()
              + "): check the path and its permissions",
          e);
    }
    ModelStore store = openDatabase(dir, false, time);
    try {
      store.adopt(identity);
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
    if (!Files.isRegularFile(dir.resolve("CURRENT"))) {
      throw new StoreException(
          "there is no model store at " + dir
              + ": check --data-dir, or train first so that one is created");
    }
    ModelStore store = openDatabase(dir, true, Time.SYSTEM);
    if (store.identity == null) {
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
    ModelStore.openReadOnly(dir).close();
    return openDatabase(dir, false, time);
  }

  private static ModelStore openDatabase(Path dir, boolean readOnly, Time time) {
    List<byte[]> existing = existingFamilies(dir);
    List<ColumnFamilyOptions> familyOptions = new ArrayList<>();
    List<ColumnFamilyDescriptor> descriptors = new ArrayList<>();
    ColumnFamilyOptions defaultOptions = new ColumnFamilyOptions();
    familyOptions.add(defaultOptions);
    descriptors.add(new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, defaultOptions));
    List<Column> opened = new ArrayList<>();
    for (Column column : Column.values()) {
      boolean present = existing.stream().anyMatch(n -> Arrays.equals(n, column.nameBytes()));
      if (readOnly && !present && column == Column.BRANCHES) {
        // A store no rollback has opened for writing since PocketTune added branches: none exist.
        continue;
      }
      if (readOnly && !present) {
        familyOptions.forEach(ColumnFamilyOptions::close);
        throw new StoreException(
            dir + " is a RocksDB database but not a PocketTune model store (it has no '"
                + column.familyName + "' column family): check --data-dir");
      }
      ColumnFamilyOptions options = column.newOptions();
      familyOptions.add(options);
      descriptors.add(new ColumnFamilyDescriptor(column.nameBytes(), options));
      opened.add(column);
    }
    // RocksDB opens a database only with all its families, e.g. ones a later PocketTune added.
    for (byte[] name : existing) {
      if (descriptors.stream().noneMatch(d -> Arrays.equals(d.getName(), name))) {
        ColumnFamilyOptions options = new ColumnFamilyOptions();
        familyOptions.add(options);
        descriptors.add(new ColumnFamilyDescriptor(name, options));
      }
    }
    DBOptions dbOptions =
        new DBOptions()
            .setCreateIfMissing(true)
            .setCreateMissingColumnFamilies(true)
            .setKeepLogFileNum(KEEP_INFO_LOGS);
    List<ColumnFamilyHandle> handles = new ArrayList<>();
    RocksDB db;
    try {
      db =
          readOnly
              ? RocksDB.openReadOnly(dbOptions, dir.toString(), descriptors, handles)
              : RocksDB.open(dbOptions, dir.toString(), descriptors, handles);
    } catch (RocksDBException e) {
      handles.forEach(ColumnFamilyHandle::close);
      familyOptions.forEach(ColumnFamilyOptions::close);
      dbOptions.close();
      throw openFailure(dir, e);
    }
    ModelStore store =
        new ModelStore(dir, readOnly, time, db, dbOptions, familyOptions, handles, opened);
    try {
      store.loadState();
      return store;
    } catch (RuntimeException e) {
      store.close();
      throw e;
    }
  }

  private static List<byte[]> existingFamilies(Path dir) {
    if (!Files.isRegularFile(dir.resolve("CURRENT"))) {
      return List.of();
    }
    try (Options options = new Options()) {
      return RocksDB.listColumnFamilies(options, dir.toString());
    } catch (RocksDBException e) {
      throw openFailure(dir, e);
    }
  }

  private static StoreException openFailure(Path dir, RocksDBException e) {
    Status status = e.getStatus();
    String message = String.valueOf(e.getMessage());
    if (status != null
        && status.getCode() == Status.Code.IOError
        && message.toLowerCase(Locale.ROOT).contains("lock")) {
      return new StoreException(
          "the model store at " + dir + " is in use by another process, or already open in this"
              + " one: stop the other pockettune command (such as serve) or use a different"
              + " --data-dir",
          e);
    }
    if (status != null && status.getCode() == Status.Code.Corruption) {
      return new StoreCorruptedException(
          "the model store at " + dir + " is damaged (" + message + "): restore the directory"
              + " from a backup or start over in a new --data-dir",
          e);
    }
    return new StoreException(
        "cannot open the model store at " + dir + " (" + message + "): check that the directory"
            + " is readable and writable and that the disk is not full",
        e);
  }

  private void loadState() {
    guarded(
        "read the state",
        () -> {
          byte[] id = db.get(handle(Column.META), MetaCodec.IDENTITY_KEY);
          identity = id == null ? null : MetaCodec.decodeIdentity(id);
          long last = 0;
          try (RocksIterator it = db.newIterator(handle(Column.STEPS))) {
            it.seekToLast();
            if (it.isValid()) {
              last = StepRecordCodec.step(it.key());
            }
            it.status();
          }
          TreeMap<SourcePartition, Long> offsets = new TreeMap<>();
          try (RocksIterator it = db.newIterator(handle(Column.OFFSETS))) {
            for (it.seekToFirst(); it.isValid(); it.next()) {
              SourcePartition p = OffsetCodec.partition(it.key());
              offsets.put(p, OffsetCodec.decode(p, it.value()));
            }
            it.status();
          }
          committed = new Committed(last, Collections.unmodifiableMap(offsets));
          try (RocksIterator it = db.newIterator(handle(Column.META))) {
            for (it.seek(PartitionCodec.firstKey()); it.isValid(); it.next()) {
              int index = PartitionCodec.index(it.key());
              if (index < 0) {
                break;
              }
              SourcePartition p = PartitionCodec.decode(index, it.value());
              partitionIndex.put(p, index);
              partitionByIndex.put(index, p);
            }
            it.status();
            long lastBranch = 0;
            for (it.seek(BranchCodec.metaKey(0)); it.isValid(); it.next()) {
              long b = BranchCodec.metaBranch(it.key());
              if (b < 0) {
                break;
              }
              lastBranch = b;
            }
            it.status();
            synchronized (writeLock) {
              nextBranchId = lastBranch + 1;
            }
          }
          try (RocksIterator it = db.newIterator(handle(Column.CHECKPOINTS))) {
            it.seekToLast();
            if (it.isValid()) {
              synchronized (writeLock) {
                nextCheckpointId = CheckpointCodec.id(it.key()) + 1;
              }
            }
            it.status();
          }
          return null;
        });
    LOG.debug("Opened model store at {}: last step {}", dir, committed.lastStep());
  }

  /** Records {@code requested} in a new store, or checks it against the stored identity. */
  private void adopt(RunIdentity requested) {
    RunIdentity stored = identity;
    if (stored == null) {
      if (committed.lastStep() != 0) {
        throw new StoreCorruptedException(
            "the model store at " + dir + " has steps but no run identity: the store is damaged;"
                + " use a new --data-dir");
      }
      writeIdentity(requested, 1);
      LOG.info("Created model store at {} for base model {}", dir, requested.baseModelHash());
      return;
    }
    if (!stored.baseModelHash().equals(requested.baseModelHash())) {
      throw new StoreMismatchException(
          "the store at " + dir + " was created for base model " + stored.baseModelHash()
              + " but this run uses " + requested.baseModelHash()
              + ": use a new --data-dir or the original model");
    }
    if (stored.kernelVersion() != requested.kernelVersion()) {
      throw new StoreMismatchException(
          "the store at " + dir + " was created with perturbation kernel version "
              + stored.kernelVersion() + " but this run uses version "
              + requested.kernelVersion() + ", which would not replay its steps to the same model:"
              + " use a new --data-dir or the PocketTune version that created the store");
    }
    if (!stored.trainableLayout().equals(requested.trainableLayout())) {
      throw new StoreMismatchException(
          "the store at " + dir + " was created for trainable layout " + stored.trainableLayout()
              + " but this run uses " + requested.trainableLayout()
              + ": use a new --data-dir or the original choice of trainable tensors");
    }
    if (!stored.runConfig().equals(requested.runConfig())) {
      long from = committed.lastStep() + 1;
      writeIdentity(requested, from);
      LOG.info("Run config of the model store at {} changed, from step {}", dir, from);
    }
  }

  /** Writes the identity and a run-config entry starting at {@code fromStep}, atomically. */
  private void writeIdentity(RunIdentity id, long fromStep) {
    guarded(
        "record the run identity",
        () -> {
          try (WriteBatch batch = new WriteBatch()) {
            ColumnFamilyHandle meta = handle(Column.META);
            batch.put(meta, MetaCodec.IDENTITY_KEY, MetaCodec.encodeIdentity(id));
            batch.put(
                meta,
                MetaCodec.runConfigKey(fromStep),
                MetaCodec.encodeRunConfig(time.milliseconds(), id.runConfig()));
            db.write(syncWrite, batch);
          }
          identity = id;
          return null;
        });
  }

  /** @return the directory of the store */
  public Path directory() {
    return dir;
  }

  /** @return the identity of the run that opened the store, or the stored one if read-only */
  public RunIdentity identity() {
    ensureOpen();
    return identity;
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
    Objects.requireNonNull(record, "record");
    Objects.requireNonNull(nextOffsets, "nextOffsets");
    requireWritable();
    nextOffsets.forEach(
        (p, offset) -> {
          Objects.requireNonNull(p, "null partition in nextOffsets");
          Objects.requireNonNull(offset, () -> "null offset for " + p);
          if (offset < 0) {
            throw new IllegalArgumentException("next offset " + offset + " of " + p + " is negative");
          }
        });
    guarded(
        "commit step " + record.step(),
        () -> {
          synchronized (writeLock) {
            Committed current = committed;
            if (record.step() != current.lastStep() + 1) {
              throw new IllegalStateException(
                  "step " + record.step() + " committed out of order: the last committed step is "
                      + current.lastStep());
            }
            Map<SourcePartition, Integer> added = new TreeMap<>();
            try (WriteBatch batch = new WriteBatch()) {
              Map<Integer, Long> indexed = new TreeMap<>();
              for (Map.Entry<SourcePartition, Long> e : nextOffsets.entrySet()) {
                Integer index = partitionIndex.get(e.getKey());
                if (index == null) {
                  index = partitionIndex.size() + added.size();
                  added.put(e.getKey(), index);
                  batch.put(handle(Column.META), PartitionCodec.key(index),
                      PartitionCodec.encode(e.getKey()));
                }
                indexed.put(index, e.getValue());
              }
              batch.put(
                  handle(Column.STEPS),
                  StepRecordCodec.key(record.step()),
                  StepRecordCodec.encode(record, indexed));
              ColumnFamilyHandle offsets = handle(Column.OFFSETS);
              for (Map.Entry<SourcePartition, Long> e : nextOffsets.entrySet()) {
                batch.put(offsets, OffsetCodec.key(e.getKey()), OffsetCodec.encode(e.getValue()));
              }
              db.write(syncWrite, batch);
            }
            added.forEach((p, index) -> {
              partitionIndex.put(p, index);
              partitionByIndex.put(index, p);
            });
            committed = current.advance(record.step(), nextOffsets);
          }
          return null;
        });
  }

  /** @return the number of the last committed step; 0 if none */
  public long lastStep() {
    ensureOpen();
    return committed.lastStep();
  }

  /** @return the next offset to read per source partition, as of {@link #lastStep()}; sorted */
  public Map<SourcePartition, Long> committedOffsets() {
    ensureOpen();
    return committed.offsets();
  }

  /** @return the record of step {@code n}, or empty if it is not stored */
  public Optional<StepRecord> step(long n) {
    if (n < 1) {
      return Optional.empty();
    }
    return guarded(
        "read step " + n,
        () -> {
          byte[] value = db.get(handle(Column.STEPS), StepRecordCodec.key(n));
          return value == null
              ? Optional.<StepRecord>empty()
              : Optional.of(StepRecordCodec.decode(n, value));
        });
  }

  /**
   * @return the stored steps from {@code fromInclusive} to {@code toInclusive}, in step order;
   *     empty if the range is empty
   * @throws StoreCorruptedException if a step inside the range is missing
   */
  public List<StepRecord> steps(long fromInclusive, long toInclusive) {
    if (fromInclusive < 0) {
      throw new IllegalArgumentException("fromInclusive must be at least 0, was " + fromInclusive);
    }
    long first = Math.max(fromInclusive, 1);
    if (toInclusive < first) {
      return List.of();
    }
    return guarded(
        "read steps " + first + " to " + toInclusive,
        () -> {
          long expectedLast = Math.min(toInclusive, committed.lastStep());
          List<StepRecord> out = new ArrayList<>();
          try (RocksIterator it = db.newIterator(handle(Column.STEPS))) {
            for (it.seek(StepRecordCodec.key(first)); it.isValid(); it.next()) {
              long n = StepRecordCodec.step(it.key());
              if (n > toInclusive) {
                break;
              }
              if (!out.isEmpty() && n != out.get(out.size() - 1).step() + 1) {
                throw missingStep(out.get(out.size() - 1).step() + 1);
              }
              out.add(StepRecordCodec.decode(n, it.value()));
            }
            it.status();
          }
          long last = out.isEmpty() ? first - 1 : out.get(out.size() - 1).step();
          if (!out.isEmpty() && last < expectedLast) {
            throw missingStep(last + 1);
          }
          return out;
        });
  }

  private StoreCorruptedException missingStep(long n) {
    return new StoreCorruptedException(
        "step " + n + " is missing from the model store at " + dir
            + ": the store is damaged; roll back to a checkpoint before it or use a new --data-dir");
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
    Objects.requireNonNull(values, "values");
    requireWritable();
    if (step < 0) {
      throw new IllegalArgumentException("snapshot step must be at least 0, was " + step);
    }
    List<byte[]> chunks = SnapshotCodec.encode(values, SnapshotCodec.CHUNK_FLOATS);
    guarded(
        "store the snapshot of step " + step,
        () -> {
          synchronized (writeLock) {
            long last = committed.lastStep();
            if (step > last) {
              throw new IllegalStateException(
                  "snapshot of step " + step + " is ahead of the last committed step " + last);
            }
            ColumnFamilyHandle snapshots = handle(Column.SNAPSHOTS);
            try (WriteBatch batch = new WriteBatch()) {
              // A snapshot replaced by a smaller one must not keep its old trailing chunks.
              batch.deleteRange(
                  snapshots, SnapshotCodec.key(step, 0), SnapshotCodec.key(step + 1, 0));
              for (int i = 0; i < chunks.size(); i++) {
                batch.put(snapshots, SnapshotCodec.key(step, i), chunks.get(i));
              }
              db.write(syncWrite, batch);
            }
          }
          return null;
        });
  }

  /**
   * @return the latest snapshot at or before {@code step}, checksum-verified; empty if none
   * @throws StoreCorruptedException if that snapshot fails its checksum or is incomplete
   */
  public Optional<Snapshot> snapshotAtOrBefore(long step) {
    if (step < 0) {
      return Optional.empty();
    }
    return guarded(
        "read the snapshot at or before step " + step,
        () -> {
          try (RocksIterator it = db.newIterator(handle(Column.SNAPSHOTS))) {
            // Chunk index 0xFFFFFFFF sorts after every chunk of the step.
            it.seekForPrev(SnapshotCodec.key(step, -1));
            if (!it.isValid()) {
              it.status();
              return Optional.<Snapshot>empty();
            }
            long found = SnapshotCodec.step(it.key());
            try (SnapshotCodec.Assembler assembler = new SnapshotCodec.Assembler(found)) {
              for (it.seek(SnapshotCodec.key(found, 0));
                  it.isValid() && SnapshotCodec.step(it.key()) == found;
                  it.next()) {
                assembler.accept(SnapshotCodec.chunk(it.key()), it.value());
              }
              it.status();
              return Optional.of(assembler.finish());
            }
          }
        });
  }

  /** @return the step of the first snapshot after {@code step}, or -1 if there is none */
  public long snapshotStepAfter(long step) {
    return guarded("find a snapshot after step " + step, () -> {
      try (RocksIterator it = db.newIterator(handle(Column.SNAPSHOTS))) {
        it.seek(SnapshotCodec.key(step + 1, 0));
        long found = it.isValid() ? SnapshotCodec.step(it.key()) : -1;
        it.status();
        return found;
      }
    });
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
    Objects.requireNonNull(metrics, "metrics");
    requireWritable();
    return guarded(
        "mark a checkpoint",
        () -> {
          synchronized (writeLock) {
            Committed current = committed;
            Checkpoint checkpoint =
                new Checkpoint(
                    nextCheckpointId,
                    current.lastStep(),
                    current.offsets(),
                    label,
                    metrics,
                    Instant.ofEpochMilli(time.milliseconds()),
                    identity);
            db.put(
                handle(Column.CHECKPOINTS),
                syncWrite,
                CheckpointCodec.key(checkpoint.id()),
                CheckpointCodec.encode(checkpoint));
            nextCheckpointId++;
            return checkpoint;
          }
        });
  }

  /** @return every checkpoint, by id */
  public List<Checkpoint> checkpoints() {
    return guarded(
        "list the checkpoints",
        () -> {
          List<Checkpoint> out = new ArrayList<>();
          try (RocksIterator it = db.newIterator(handle(Column.CHECKPOINTS))) {
            for (it.seekToFirst(); it.isValid(); it.next()) {
              out.add(CheckpointCodec.decode(CheckpointCodec.id(it.key()), it.value()));
            }
            it.status();
          }
          return out;
        });
  }

  /** @return the checkpoint with this id, or empty if there is none */
  public Optional<Checkpoint> checkpoint(long id) {
    if (id < 1) {
      return Optional.empty();
    }
    return guarded(
        "read checkpoint " + id,
        () -> {
          byte[] value = db.get(handle(Column.CHECKPOINTS), CheckpointCodec.key(id));
          return value == null
              ? Optional.<Checkpoint>empty()
              : Optional.of(CheckpointCodec.decode(id, value));
        });
  }

  /**
   * @return the next offset per source partition as committed with {@code step} (empty at step 0);
   *     sorted. Partitions first read after {@code step} are absent.
   * @throws IllegalArgumentException if {@code step} is negative or after {@link #lastStep()}
   * @throws StoreException if a step record on the way was written by a PocketTune that did not
   *     keep offsets with each step (then only checkpoints give offsets)
   */
  public Map<SourcePartition, Long> offsetsAt(long step) {
    Committed current = committed;
    if (step < 0 || step > current.lastStep()) {
      throw new IllegalArgumentException(
          "step " + step + " is not on the trajectory, which ends at step " + current.lastStep());
    }
    if (step == current.lastStep()) {
      return current.offsets();
    }
    return guarded("read the offsets of step " + step, () -> {
      TreeMap<SourcePartition, Long> out = new TreeMap<>();
      int known = partitionByIndex.size();
      try (RocksIterator it = db.newIterator(handle(Column.STEPS))) {
        for (it.seekForPrev(StepRecordCodec.key(step)); it.isValid() && out.size() < known;
            it.prev()) {
          long n = StepRecordCodec.step(it.key());
          Map<Integer, Long> named = StepRecordCodec.decodeOffsets(n, it.value());
          if (named == null) {
            throw new StoreException(
                "step " + n + " was recorded by an older PocketTune that kept offsets only at"
                    + " checkpoints: roll back to a checkpoint instead of a step");
          }
          for (Map.Entry<Integer, Long> e : named.entrySet()) {
            out.putIfAbsent(partition(e.getKey(), n), e.getValue());
          }
        }
        it.status();
      }
      return Collections.unmodifiableMap(out);
    });
  }

  private SourcePartition partition(int index, long step) {
    SourcePartition p = partitionByIndex.get(index);
    if (p == null) {
      throw new StoreCorruptedException("step " + step + " names source partition #" + index
          + ", which the store does not know: the store is damaged");
    }
    return p;
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
    Checkpoint stored = checkpoint(checkpoint.id()).orElseThrow(() -> new IllegalArgumentException(
        "there is no checkpoint " + checkpoint.id() + ": list them with 'pockettune checkpoints'"));
    if (!stored.live()) {
      throw new IllegalArgumentException("checkpoint " + stored.id() + " (step " + stored.step()
          + ") is on branch " + stored.branch() + ", abandoned by an earlier rollback: choose a"
          + " checkpoint on the live trajectory");
    }
    return rollbackTo(stored.step(), stored.offsets());
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
    requireWritable();
    return guarded("roll back to step " + step, () -> {
      synchronized (writeLock) {
        Committed current = committed;
        if (step < 0 || step > current.lastStep()) {
          throw new IllegalArgumentException("cannot roll back to step " + step
              + ": the trajectory ends at step " + current.lastStep());
        }
        Map<SourcePartition, Long> target = Collections.unmodifiableMap(new TreeMap<>(offsets));
        if (step == current.lastStep()) {
          return new Rollback(step, Optional.empty(), List.of(), 0, current.offsets());
        }
        long branchId = nextBranchId;
        Branch branch = new Branch(branchId, step, step + 1, current.lastStep(),
            Instant.ofEpochMilli(time.milliseconds()));
        List<Long> abandoned = new ArrayList<>();
        int snapshotsDropped = 0;
        try (WriteBatch batch = new WriteBatch()) {
          ColumnFamilyHandle steps = handle(Column.STEPS);
          long moved = 0;
          try (RocksIterator it = db.newIterator(steps)) {
            for (it.seek(StepRecordCodec.key(step + 1)); it.isValid(); it.next()) {
              batch.put(handle(Column.BRANCHES),
                  BranchCodec.stepKey(branchId, StepRecordCodec.step(it.key())), it.value());
              moved++;
            }
            it.status();
          }
          if (moved != branch.steps()) {
            throw missingStep(step + 1 + moved);
          }
          batch.deleteRange(steps, StepRecordCodec.key(step + 1),
              StepRecordCodec.key(Long.MAX_VALUE));
          ColumnFamilyHandle snapshots = handle(Column.SNAPSHOTS);
          try (RocksIterator it = db.newIterator(snapshots)) {
            for (it.seek(SnapshotCodec.key(step + 1, 0)); it.isValid(); it.next()) {
              if (SnapshotCodec.chunk(it.key()) == 0) {
                snapshotsDropped++;
              }
            }
            it.status();
          }
          batch.deleteRange(snapshots, SnapshotCodec.key(step + 1, 0),
              SnapshotCodec.key(Long.MAX_VALUE, 0));
          for (Checkpoint c : checkpoints()) {
            if (c.live() && c.step() > step) {
              batch.put(handle(Column.CHECKPOINTS), CheckpointCodec.key(c.id()),
                  CheckpointCodec.encode(c.abandonedTo(branchId)));
              abandoned.add(c.id());
            }
          }
          ColumnFamilyHandle offsetFamily = handle(Column.OFFSETS);
          for (SourcePartition p : current.offsets().keySet()) {
            if (!target.containsKey(p)) {
              batch.delete(offsetFamily, OffsetCodec.key(p));
            }
          }
          for (Map.Entry<SourcePartition, Long> e : target.entrySet()) {
            batch.put(offsetFamily, OffsetCodec.key(e.getKey()), OffsetCodec.encode(e.getValue()));
          }
          batch.put(handle(Column.META), BranchCodec.metaKey(branchId), BranchCodec.encode(branch));
          // Configs recorded for abandoned steps no longer describe the trajectory; the steps
          // after the fork will be trained under the current config (or one a later open records).
          NavigableMap<Long, String> configs = runConfigs();
          batch.deleteRange(handle(Column.META), MetaCodec.runConfigKey(step + 1),
              MetaCodec.runConfigKey(Long.MAX_VALUE));
          Map.Entry<Long, String> inForce = configs.floorEntry(step);
          if (inForce == null || !inForce.getValue().equals(identity.runConfig())) {
            batch.put(handle(Column.META), MetaCodec.runConfigKey(step + 1),
                MetaCodec.encodeRunConfig(time.milliseconds(), identity.runConfig()));
          }
          db.write(syncWrite, batch);
        }
        nextBranchId++;
        committed = new Committed(step, target);
        LOG.info("Rolled the model store at {} back to step {}: steps {} to {} are branch {}",
            dir, step, branch.firstStep(), branch.lastStep(), branchId);
        return new Rollback(step, Optional.of(branch), List.copyOf(abandoned), snapshotsDropped,
            target);
      }
    });
  }

  /** @return the abandoned branches not yet pruned, by id */
  public List<Branch> branches() {
    return guarded("list the branches", () -> {
      List<Branch> out = new ArrayList<>();
      try (RocksIterator it = db.newIterator(handle(Column.META))) {
        for (it.seek(BranchCodec.metaKey(0)); it.isValid(); it.next()) {
          long b = BranchCodec.metaBranch(it.key());
          if (b < 0) {
            break;
          }
          out.add(BranchCodec.decode(b, it.value()));
        }
        it.status();
      }
      return out;
    });
  }

  /** @return the steps of an abandoned branch, in step order; empty if it was pruned */
  public List<StepRecord> branchSteps(long branchId) {
    if (branchId < 1) {
      return List.of();
    }
    return guarded("read branch " + branchId, () -> {
      List<StepRecord> out = new ArrayList<>();
      if (handle(Column.BRANCHES) == null) {
        return out;
      }
      try (RocksIterator it = db.newIterator(handle(Column.BRANCHES))) {
        for (it.seek(BranchCodec.stepKey(branchId, 0));
            it.isValid() && BranchCodec.branchOf(it.key()) == branchId; it.next()) {
          long n = ByteBuffer.wrap(it.key()).getLong(Long.BYTES);
          out.add(StepRecordCodec.decode(n, it.value()));
        }
        it.status();
      }
      return out;
    });
  }

  /**
   * Deletes every abandoned branch and, if {@code thinSnapshots}, every snapshot except the latest
   * and those at the steps of live checkpoints; then compacts the store so that the space is given
   * back. Checkpoints of pruned branches stay listed (ids are never reused) but can no longer be
   * restored.
   */
  public Prune prune(boolean thinSnapshots) {
    requireWritable();
    return guarded("prune", () -> {
      synchronized (writeLock) {
        long before = flushedSize();
        List<Branch> branches = branches();
        long steps = branches.stream().mapToLong(Branch::steps).sum();
        long snapshots = 0;
        try (WriteBatch batch = new WriteBatch()) {
          if (!branches.isEmpty()) {
            batch.deleteRange(handle(Column.BRANCHES), BranchCodec.stepKey(1, 0),
                BranchCodec.stepKey(nextBranchId, 0));
            for (Branch b : branches) {
              batch.delete(handle(Column.META), BranchCodec.metaKey(b.id()));
            }
          }
          if (thinSnapshots) {
            Set<Long> keep = new HashSet<>();
            for (Checkpoint c : checkpoints()) {
              if (c.live()) {
                keep.add(c.step());
              }
            }
            snapshotAtOrBefore(Long.MAX_VALUE - 1).ifPresent(s -> keep.add(s.step()));
            ColumnFamilyHandle family = handle(Column.SNAPSHOTS);
            try (RocksIterator it = db.newIterator(family)) {
              for (it.seekToFirst(); it.isValid(); it.next()) {
                long n = SnapshotCodec.step(it.key());
                if (!keep.contains(n)) {
                  if (SnapshotCodec.chunk(it.key()) == 0) {
                    snapshots++;
                  }
                  batch.delete(family, it.key());
                }
              }
              it.status();
            }
          }
          db.write(syncWrite, batch);
        }
        for (Column c : Column.values()) {
          db.compactRange(handle(c));
        }
        long after = flushedSize();
        LOG.info("Pruned the model store at {}: {} branches, {} steps, {} snapshots, {} bytes"
            + " reclaimed", dir, branches.size(), steps, snapshots, before - after);
        return new Prune(branches.size(), steps, snapshots, before, after);
      }
    });
  }

  /**
   * @return bytes of RocksDB table and blob files per column family, after flushing the
   *     memtables (the write-ahead log and RocksDB's own logs are not counted)
   */
  public Map<String, Long> sizeOnDisk() {
    return guarded("measure the store", () -> {
      flush();
      Map<String, Long> out = new LinkedHashMap<>();
      for (Column c : handles.keySet()) {
        out.put(c.familyName, familySize(c));
      }
      return out;
    });
  }

  private long flushedSize() throws RocksDBException {
    flush();
    long total = 0;
    for (Column c : handles.keySet()) {
      total += familySize(c);
    }
    return total;
  }

  private void flush() throws RocksDBException {
    if (readOnly) {
      return;
    }
    try (FlushOptions options = new FlushOptions().setWaitForFlush(true)) {
      List<ColumnFamilyHandle> families = new ArrayList<>(handles.values());
      db.flush(options, families);
    }
  }

  private long familySize(Column c) throws RocksDBException {
    return db.getLongProperty(handle(c), "rocksdb.total-sst-files-size")
        + db.getLongProperty(handle(c), "rocksdb.total-blob-file-size");
  }

  /**
   * Brings {@code model} to the parameters it had after {@code step}: loads the nearest snapshot at
   * or before it, or starts from the model's own values if there is none, then replays the step
   * records after the snapshot. The result is bit-identical to what the trainer had after that step
   * (the kernel's arithmetic is canonical).
   *
   * @param model  a model fresh from {@link LossModel#causalLm} on the base model the store was
   *               created for: its parameters must be the base values
   * @param config the run's hyperparameters: replay takes lr and eps from each record, but the
   *               direction distribution and weight decay from this config, so they must be the
   *               ones the steps were trained with
   * @throws StoreMismatchException if the model, its trainable layout or the perturbation kernel
   *     differ from those the trajectory was recorded with
   * @throws IllegalArgumentException if {@code step} is not on the live trajectory
   */
  public Restored restore(long step, LossModel model, MezoConfig config, PerturbationKernel kernel) {
    Objects.requireNonNull(model, "model");
    RunIdentity id = identity();
    if (!id.baseModelHash().equals(model.baseModelHash())) {
      throw new StoreMismatchException("the store at " + dir + " holds a trajectory of base model "
          + id.baseModelHash() + " but the model given is " + model.baseModelHash()
          + ": use the model file the store was trained from");
    }
    if (id.kernelVersion() != PerturbationKernel.VERSION) {
      throw new StoreMismatchException("the store at " + dir + " was recorded with perturbation"
          + " kernel version " + id.kernelVersion() + " but this PocketTune has version "
          + PerturbationKernel.VERSION + ", whose replay would not reproduce the model: use the"
          + " PocketTune version that trained it");
    }
    ParameterSet params = model.parameters();
    if (!id.trainableLayout().equals(params.layout())) {
      throw new StoreMismatchException("the store at " + dir + " trained the tensors "
          + id.trainableLayout() + " but the model's trainable tensors are " + params.layout()
          + ": choose the same trainable tensors");
    }
    long last = lastStep();
    if (step < 0 || step > last) {
      throw new IllegalArgumentException(
          "step " + step + " is not on the trajectory, which ends at step " + last);
    }
    long started = time.nanoseconds();
    long from = 0;
    Optional<Snapshot> snapshot = snapshotAtOrBefore(step);
    if (snapshot.isPresent()) {
      float[] values = snapshot.get().values();
      if (values.length != params.size()) {
        throw new StoreCorruptedException("the snapshot of step " + snapshot.get().step()
            + " holds " + values.length + " values but the model has " + params.size()
            + " trainable values: the store is damaged");
      }
      params.load(values);
      from = snapshot.get().step();
    }
    MezoTrainer trainer = new MezoTrainer(model, config, kernel, from);
    List<StepRecord> records = steps(from + 1, step);
    if (records.size() != step - from) {
      throw missingStep(records.isEmpty() ? from + 1 : records.get(0).step() - 1);
    }
    records.forEach(trainer::replay);
    return new Restored(trainer, step, from, step - from, time.nanoseconds() - started);
  }

  /**
   * Snapshots {@code params} if the last committed step is a positive multiple of {@code every}.
   * Call right after {@link #commitStep}, with the parameters the trainer has after that step.
   *
   * @param every steps between snapshots; 0 or less never snapshots
   * @return whether a snapshot was written
   */
  public boolean snapshotIfDue(ParameterSet params, long every) {
    long last = lastStep();
    if (every <= 0 || last == 0 || last % every != 0) {
      return false;
    }
    putSnapshot(last, params.floats());
    return true;
  }

  /** @return every run config recorded, by the first step it applies to */
  NavigableMap<Long, String> runConfigs() {
    return guarded(
        "read the run configs",
        () -> {
          NavigableMap<Long, String> out = new TreeMap<>();
          try (RocksIterator it = db.newIterator(handle(Column.META))) {
            for (it.seek(MetaCodec.runConfigKey(0)); it.isValid(); it.next()) {
              long step = MetaCodec.runConfigStep(it.key());
              if (step < 0) {
                break;
              }
              out.put(step, MetaCodec.decodeRunConfig(step, it.value()));
            }
            it.status();
          }
          return out;
        });
  }

  /** Test hook: the raw value under {@code key}, or null. */
  byte[] rawGet(Column column, byte[] key) {
    return guarded("read a raw value", () -> db.get(handle(column), key));
  }

  /** Test hook: writes {@code value} under {@code key}, bypassing every codec and invariant. */
  void rawPut(Column column, byte[] key, byte[] value) {
    guarded(
        "write a raw value",
        () -> {
          db.put(handle(column), syncWrite, key, value);
          return null;
        });
  }

  /** Test hook: deletes the value under {@code key}, bypassing every invariant. */
  void rawDelete(Column column, byte[] key) {
    guarded(
        "delete a raw value",
        () -> {
          db.delete(handle(column), syncWrite, key);
          return null;
        });
  }

  /** Test hook: writes key/value pairs in one batch, bypassing every codec and invariant. */
  void rawPutAll(Column column, Map<byte[], byte[]> entries) {
    guarded(
        "write raw values",
        () -> {
          try (WriteBatch batch = new WriteBatch()) {
            for (Map.Entry<byte[], byte[]> e : entries.entrySet()) {
              batch.put(handle(column), e.getKey(), e.getValue());
            }
            db.write(syncWrite, batch);
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
    Lock lock = lifecycle.writeLock();
    lock.lock();
    try {
      if (closed) {
        return;
      }
      closed = true;
      allHandles.forEach(ColumnFamilyHandle::close);
      try {
        db.closeE();
      } catch (RocksDBException e) {
        throw new StoreException(
            "could not close the model store at " + dir + " cleanly (" + e.getMessage()
                + "): committed steps are safe; the next open recovers the rest",
            e);
      } finally {
        syncWrite.close();
        familyOptions.forEach(ColumnFamilyOptions::close);
        dbOptions.close();
      }
    } finally {
      lock.unlock();
    }
  }

  private <T> T guarded(String what, StoreAction<T> action) {
    Lock lock = lifecycle.readLock();
    lock.lock();
    try {
      ensureOpen();
      return action.run();
    } catch (RocksDBException e) {
      throw failure(what, e);
    } finally {
      lock.unlock();
    }
  }

  private StoreException failure(String what, RocksDBException e) {
    Status status = e.getStatus();
    String message = String.valueOf(e.getMessage());
    if (status != null && status.getSubCode() == Status.SubCode.NoSpace) {
      return new StoreException(
          "could not " + what + " in the model store at " + dir
              + ": the disk is full; free some space and start again",
          e);
    }
    if (status != null && status.getCode() == Status.Code.Corruption) {
      return new StoreCorruptedException(
          "could not " + what + " in the model store at " + dir + " (" + message
              + "): the store is damaged; restore it from a backup or use a new --data-dir",
          e);
    }
    return new StoreException(
        "could not " + what + " in the model store at " + dir + " (" + message
            + "): check the disk and the directory's permissions",
        e);
  }

  private ColumnFamilyHandle handle(Column column) {
    return handles.get(column);
  }

  private void ensureOpen() {
    if (closed) {
      throw new IllegalStateException("the model store at " + dir + " is closed");
    }
  }

  private void requireWritable() {
    ensureOpen();
    if (readOnly) {
      throw new IllegalStateException("the model store at " + dir + " was opened read-only");
    }
  }
}
