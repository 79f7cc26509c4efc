package io.pockettune.store;

import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.DBOptions;
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
 * T step records of 41 bytes each, and this store keeps exactly that: the step records, occasional
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
 *   <li>{@code steps} holds the live trajectory, every step from the first stored one to {@link
 *       #lastStep}. Rollback (not here yet) will move abandoned steps out of it to a branch, and
 *       pruning may remove a prefix covered by a snapshot, both keeping this true.
 *   <li>No snapshot is ahead of {@link #lastStep}, so a restore never runs past the committed
 *       offsets.
 *   <li>The store belongs to one base model, kernel version and trainable layout ({@link
 *       RunIdentity}), fixed at creation; a run that differs is refused.
 * </ul>
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
  private final Clock clock;
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

  private ModelStore(
      Path dir,
      boolean readOnly,
      Clock clock,
      RocksDB db,
      DBOptions dbOptions,
      List<ColumnFamilyOptions> familyOptions,
      List<ColumnFamilyHandle> allHandles) {
    this.dir = dir;
    this.readOnly = readOnly;
    this.clock = clock;
    this.db = db;
    this.dbOptions = dbOptions;
    this.familyOptions = familyOptions;
    this.allHandles = allHandles;
    this.syncWrite = new WriteOptions().setSync(true);
    // Handles come in descriptor order: the default family, then Column.values(), then others.
    for (Column column : Column.values()) {
      handles.put(column, allHandles.get(1 + column.ordinal()));
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
    return open(dir, identity, Clock.systemUTC());
  }

  /** {@link #open(Path, RunIdentity)} with the clock that timestamps checkpoints. */
  static ModelStore open(Path dir, RunIdentity identity, Clock clock) {
    Objects.requireNonNull(dir, "dir");
    Objects.requireNonNull(identity, "identity");
    Objects.requireNonNull(clock, "clock");
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
    ModelStore store = openDatabase(dir, false, clock);
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
    ModelStore store = openDatabase(dir, true, Clock.systemUTC());
    if (store.identity == null) {
      store.close();
      throw new StoreException(
          dir + " is a RocksDB database but not a PocketTune model store (it has no run"
              + " identity): check --data-dir");
    }
    return store;
  }

  private static ModelStore openDatabase(Path dir, boolean readOnly, Clock clock) {
    List<byte[]> existing = existingFamilies(dir);
    List<ColumnFamilyOptions> familyOptions = new ArrayList<>();
    List<ColumnFamilyDescriptor> descriptors = new ArrayList<>();
    ColumnFamilyOptions defaultOptions = new ColumnFamilyOptions();
    familyOptions.add(defaultOptions);
    descriptors.add(new ColumnFamilyDescriptor(RocksDB.DEFAULT_COLUMN_FAMILY, defaultOptions));
    for (Column column : Column.values()) {
      boolean present = existing.stream().anyMatch(n -> Arrays.equals(n, column.nameBytes()));
      if (readOnly && !present) {
        familyOptions.forEach(ColumnFamilyOptions::close);
        throw new StoreException(
            dir + " is a RocksDB database but not a PocketTune model store (it has no '"
                + column.familyName + "' column family): check --data-dir");
      }
      ColumnFamilyOptions options = column.newOptions();
      familyOptions.add(options);
      descriptors.add(new ColumnFamilyDescriptor(column.nameBytes(), options));
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
    ModelStore store = new ModelStore(dir, readOnly, clock, db, dbOptions, familyOptions, handles);
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
                MetaCodec.encodeRunConfig(clock.millis(), id.runConfig()));
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
            try (WriteBatch batch = new WriteBatch()) {
              batch.put(
                  handle(Column.STEPS),
                  StepRecordCodec.key(record.step()),
                  StepRecordCodec.encode(record));
              ColumnFamilyHandle offsets = handle(Column.OFFSETS);
              for (Map.Entry<SourcePartition, Long> e : nextOffsets.entrySet()) {
                batch.put(offsets, OffsetCodec.key(e.getKey()), OffsetCodec.encode(e.getValue()));
              }
              db.write(syncWrite, batch);
            }
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
                    Instant.ofEpochMilli(clock.millis()),
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
