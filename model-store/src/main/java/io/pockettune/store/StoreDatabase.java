package io.pockettune.store;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.rocksdb.BlockBasedTableConfig;
import org.rocksdb.Cache;
import org.rocksdb.ColumnFamilyDescriptor;
import org.rocksdb.ColumnFamilyHandle;
import org.rocksdb.ColumnFamilyOptions;
import org.rocksdb.CompactionOptions;
import org.rocksdb.DBOptions;
import org.rocksdb.FlushOptions;
import org.rocksdb.LRUCache;
import org.rocksdb.Options;
import org.rocksdb.RocksDB;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.Status;
import org.rocksdb.WriteBatch;
import org.rocksdb.WriteOptions;

/**
 * The RocksDB database under a model store: its column families and their options, the lifecycle
 * of the native handles, synced writes, and the mapping of RocksDB's errors to sentences a user
 * can act on. It knows no key layout; the parts of the store that write a family document its
 * layout (see {@link Column} for which codec describes which family).
 *
 * <h2>Column families</h2>
 * Every {@link Column} is opened, and created when missing, together with any family a later
 * PocketTune added (RocksDB opens a database only with all its families). A read-only open
 * creates nothing: a missing family means the directory is not a model store, except {@code
 * branches}, which a store no rollback has opened for writing since PocketTune added branches
 * lacks; {@link #has} then says so and readers treat it as empty.
 *
 * <h2>Durability</h2>
 * Every write is synced ({@code WriteOptions.sync}): when {@link #apply}, {@link #put} or {@link
 * #delete} returns, what it wrote survives a crash of the process or of the device (as far as the
 * device honours fsync). RocksDB applies a {@link WriteBatch} atomically across column families
 * and across a crash, which is what the store's exactly-once commit rests on.
 *
 * <h2>Concurrency and lifecycle</h2>
 * Thread-safe. Every access runs through {@link #read} or {@link #write}, which hold the read side
 * of a lifecycle lock, so {@link #close} (the write side) waits for the calls in progress and any
 * call after it throws {@link IllegalStateException}. {@link #write} also serializes writers on
 * one monitor, so that state the parts keep beside the database (the last step, the next ids)
 * changes only together with the batch that makes it durable; reads do not wait for it and, since
 * each write is one batch, see whole writes only. One process at a time opens a database for
 * writing (RocksDB's LOCK file); a read-only open takes no lock and sees the database as it was
 * when opened.
 */
final class StoreDatabase implements AutoCloseable {
  /** Informational RocksDB LOG files kept in the store directory. */
  private static final int KEEP_INFO_LOGS = 3;

  static {
    RocksDB.loadLibrary();
  }

  /** Work on the database that may fail in RocksDB. */
  @FunctionalInterface
  interface Action<T> {
    T run() throws RocksDBException;
  }

  private final Path dir;
  private final boolean readOnly;
  // Replaced (under the lifecycle's write lock) when the database is reopened after a write error.
  private RocksDB db;
  private DBOptions dbOptions;
  private List<ColumnFamilyOptions> familyOptions;
  private Cache blockCache;
  private List<ColumnFamilyHandle> allHandles;
  private final EnumMap<Column, ColumnFamilyHandle> handles = new EnumMap<>(Column.class);
  private final WriteOptions syncWrite = new WriteOptions().setSync(true);
  private final ReentrantReadWriteLock lifecycle = new ReentrantReadWriteLock();
  private final Object writeLock = new Object();
  private volatile boolean closed;
  /** Writes so far, for {@link #WRITES_BETWEEN_FILE_CHECKS}. */
  private final java.util.concurrent.atomic.AtomicLong writes = new java.util.concurrent.atomic.AtomicLong();
  /**
   * Set when a write failed with an I/O error (a full disk, say). RocksDB then holds a background
   * error and refuses every later write, also once space is free, and this RocksDB JNI (11.8) has
   * no {@code DB::Resume}: so the next write first closes and reopens the database ({@link
   * #reopenAfterError}), which recovers it from its write-ahead log.
   */
  private volatile boolean reopenBeforeWrite;
  /** Set while a reopen after an error failed: the database is closed until a write reopens it. */
  private volatile StoreException down;
  /**
   * Memtable bytes across all column families before RocksDB flushes one (its {@code
   * db_write_buffer_size}; it picks the family with the oldest memtable). RocksDB's default is 64 MiB a family, unflushed for as long as that
   * takes: a snapshot is over a megabyte, so a service snapshotting every 100 steps grew its
   * resident set by its snapshots for half an hour ({@code bench soak}). Every write is synced to
   * the write-ahead log anyway, so a small budget costs only more, smaller flushes.
   */
  static final long MEMTABLE_BYTES = 8L * 1024 * 1024;
  /** Small table files a family may hold before {@link #compactCrowded} merges them. */
  static final int MAX_SMALL_FILES_PER_FAMILY = 8;
  /** A table file smaller than this is small. */
  static final long SMALL_FILE_BYTES = 4L * 1024 * 1024;
  /** Writes between two looks at the families' file counts. */
  private static final int WRITES_BETWEEN_FILE_CHECKS = 64;
  /** Capacity of the block cache shared by every column family (by default each family makes its own). */
  static final long BLOCK_CACHE_BYTES = 8L * 1024 * 1024;
  /** Free bytes below which a reopen is not tried: recovery itself writes a table file. */
  static final long MIN_FREE_BYTES_TO_REOPEN = 1024 * 1024;

  private StoreDatabase(
      Path dir,
      boolean readOnly,
      RocksDB db,
      DBOptions dbOptions,
      List<ColumnFamilyOptions> familyOptions,
      Cache blockCache,
      List<ColumnFamilyHandle> allHandles,
      List<Column> opened) {
    this.dir = dir;
    this.readOnly = readOnly;
    this.db = db;
    this.dbOptions = dbOptions;
    this.familyOptions = familyOptions;
    this.blockCache = blockCache;
    this.allHandles = allHandles;
    // Handles come in descriptor order: the default family, then the opened columns, then others.
    for (int i = 0; i < opened.size(); i++) {
      handles.put(opened.get(i), allHandles.get(1 + i));
    }
  }

  /**
   * Makes sure {@code dir} is a directory, creating it and its parents if missing.
   *
   * @throws StoreException if it is a file or cannot be created
   */
  static void createDirectory(Path dir) {
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
  }

  /**
   * @throws StoreException if {@code dir} holds no RocksDB database (nothing is created)
   */
  static void requireExisting(Path dir) {
    if (!Files.isRegularFile(dir.resolve("CURRENT"))) {
      throw new StoreException(
          "there is no model store at " + dir
              + ": check --data-dir, or train first so that one is created");
    }
  }

  /**
   * Opens the database in {@code dir}; for writing, it and its column families are created when
   * missing.
   *
   * @throws StoreException if it is in use by another process, damaged or cannot be opened, or
   *     (read-only) lacks a column family of a model store
   */
  static StoreDatabase open(Path dir, boolean readOnly) {
    List<byte[]> existing = existingFamilies(dir);
    List<ColumnFamilyOptions> familyOptions = new ArrayList<>();
    List<ColumnFamilyDescriptor> descriptors = new ArrayList<>();
    Cache cache = new LRUCache(BLOCK_CACHE_BYTES);
    BlockBasedTableConfig table = new BlockBasedTableConfig().setBlockCache(cache);
    ColumnFamilyOptions defaultOptions = new ColumnFamilyOptions().setTableFormatConfig(table);
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
        cache.close();
        throw new StoreException(
            dir + " is a RocksDB database but not a PocketTune model store (it has no '"
                + column.familyName + "' column family): check --data-dir");
      }
      ColumnFamilyOptions options = column.newOptions().setTableFormatConfig(table);
      familyOptions.add(options);
      descriptors.add(new ColumnFamilyDescriptor(column.nameBytes(), options));
      opened.add(column);
    }
    for (byte[] name : existing) {
      if (descriptors.stream().noneMatch(d -> Arrays.equals(d.getName(), name))) {
        ColumnFamilyOptions options = new ColumnFamilyOptions().setTableFormatConfig(table);
        familyOptions.add(options);
        descriptors.add(new ColumnFamilyDescriptor(name, options));
      }
    }
    DBOptions dbOptions =
        new DBOptions()
            .setCreateIfMissing(true)
            .setCreateMissingColumnFamilies(true)
            .setKeepLogFileNum(KEEP_INFO_LOGS)
            .setDbWriteBufferSize(MEMTABLE_BYTES)
            // Files grow as they are written: a full disk fails the write that needs the space.
            // With fallocate, RocksDB reserves write-ahead log space ahead (1.1 x the memtable
            // budget) and commits go on into it on a full disk until it runs out, far from the
            // write that filled the disk.
            .setAllowFAllocate(false);
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
      cache.close();
      throw openFailure(dir, e);
    }
    return new StoreDatabase(dir, readOnly, db, dbOptions, familyOptions, cache, handles, opened);
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

  /** @return the directory of the database */
  Path dir() {
    return dir;
  }

  /**
   * Runs {@code action} while the database is open; RocksDB errors become a {@link
   * StoreException} saying what could not be done ({@code what}, e.g. "read step 4").
   *
   * @throws IllegalStateException if the database is closed
   */
  <T> T read(String what, Action<T> action) {
    Lock lock = lifecycle.readLock();
    lock.lock();
    try {
      ensureOpen();
      return action.run();
    } catch (RocksDBException e) {
      throw failure(what, e);
    } catch (StoreCorruptedException e) {
      throw located(e);
    } finally {
      lock.unlock();
    }
  }

  /**
   * A damaged record, said with where it is and what to do (once: nested reads pass it on as it is).
   */
  private StoreCorruptedException located(StoreCorruptedException e) {
    String where = " (in the model store " + dir + ")";
    if (e.getMessage() != null && e.getMessage().contains(where)) {
      return e;
    }
    return new StoreCorruptedException(e.getMessage() + where + ": roll back to a checkpoint or step before the"
        + " damaged record with 'pockettune rollback', or restore that directory from a backup", e);
  }

  /**
   * {@link #read}, holding the write monitor: writers run one at a time.
   *
   * @throws IllegalStateException if the database is closed or read-only
   */
  <T> T write(String what, Action<T> action) {
    if (reopenBeforeWrite) {
      reopenAfterError(what);
    }
    return read(what, () -> {
      requireWritable();
      synchronized (writeLock) {
        try {
          return action.run();
        } catch (RocksDBException e) {
          Status status = e.getStatus();
          if (status != null && status.getCode() == Status.Code.IOError || isNoSpace(e)) {
            reopenBeforeWrite = true;
          }
          throw e;
        }
      }
    });
  }

  /**
   * Closes and reopens the database after a write failed with an I/O error, waiting for calls in
   * progress. Nothing the parts keep in memory goes stale: a failed write changed none of it, and a
   * write the reopen finds whole in the write-ahead log anyway is one the caller retries with the
   * same content (the store's writes are idempotent by key).
   *
   * @throws StoreFullException if the disk still has less than {@link #MIN_FREE_BYTES_TO_REOPEN}
   *     free, or the reopen found it full
   */
  private void reopenAfterError(String what) {
    Lock lock = lifecycle.writeLock();
    lock.lock();
    try {
      ensureNotClosed();
      if (!reopenBeforeWrite) {
        return;
      }
      long free;
      try {
        free = Files.getFileStore(dir).getUsableSpace();
      } catch (IOException e) {
        free = Long.MAX_VALUE; // unknown: try
      }
      if (free < MIN_FREE_BYTES_TO_REOPEN) {
        throw new StoreFullException(fullMessage(what), null);
      }
      if (down == null) {
        allHandles.forEach(ColumnFamilyHandle::close);
        try {
          db.closeE();
        } catch (RocksDBException expected) {
          // "Seen error": the memtable cannot be flushed; the write-ahead log holds it
        }
        familyOptions.forEach(ColumnFamilyOptions::close);
        dbOptions.close();
        blockCache.close();
      }
      StoreDatabase fresh;
      try {
        fresh = open(dir, readOnly);
      } catch (StoreException e) {
        boolean full = String.valueOf(e.getMessage()).contains("No space left on device")
            || e.getCause() instanceof RocksDBException r && isNoSpace(r);
        down = full ? new StoreFullException(fullMessage(what), e) : e;
        throw down;
      }
      fresh.syncWrite.close();
      db = fresh.db;
      dbOptions = fresh.dbOptions;
      familyOptions = fresh.familyOptions;
      blockCache = fresh.blockCache;
      allHandles = fresh.allHandles;
      handles.clear();
      handles.putAll(fresh.handles);
      down = null;
      reopenBeforeWrite = false;
      org.slf4j.LoggerFactory.getLogger(StoreDatabase.class).info(
          "Reopened the model store at {} after a write error; it recovered from its write-ahead log", dir);
    } finally {
      lock.unlock();
    }
  }

  private static boolean isNoSpace(RocksDBException e) {
    Status status = e.getStatus();
    return status != null && status.getSubCode() == Status.SubCode.NoSpace
        || String.valueOf(e.getMessage()).contains("No space left on device");
  }

  private String fullMessage(String what) {
    return "could not " + what + " in the model store at " + dir
        + ": the disk is full; free some space and try again (nothing of it was committed)";
  }

  /**
   * {@link #read}, holding the write monitor, on a read-only database too: for loading the state
   * that writers change under that monitor.
   */
  <T> T load(String what, Action<T> action) {
    return read(what, () -> {
      synchronized (writeLock) {
        return action.run();
      }
    });
  }

  /** @return whether the database has this family (only {@code branches} may be missing) */
  boolean has(Column column) {
    return handles.containsKey(column);
  }

  ColumnFamilyHandle handle(Column column) {
    return handles.get(column);
  }

  /** @return a new iterator over {@code column}; the caller closes it */
  RocksIterator iterator(Column column) {
    return db.newIterator(handle(column));
  }

  /** @return the value under {@code key}, or null */
  byte[] get(Column column, byte[] key) throws RocksDBException {
    return db.get(handle(column), key);
  }

  /** Writes one value, synced. */
  void put(Column column, byte[] key, byte[] value) throws RocksDBException {
    db.put(handle(column), syncWrite, key, value);
    wrote();
  }

  /** Deletes one value, synced. */
  void delete(Column column, byte[] key) throws RocksDBException {
    db.delete(handle(column), syncWrite, key);
    wrote();
  }

  /** Applies {@code batch} atomically and synced. */
  void apply(WriteBatch batch) throws RocksDBException {
    db.write(syncWrite, batch);
    wrote();
  }

  private void wrote() {
    if (writes.incrementAndGet() % WRITES_BETWEEN_FILE_CHECKS == 0) {
      try {
        compactCrowded();
      } catch (RocksDBException | RuntimeException e) {
        // The write is durable; a compaction that failed (a full disk, say) is tried again later.
        org.slf4j.LoggerFactory.getLogger(StoreDatabase.class).warn(
            "could not compact the model store at {} ({}); it is tried again later", dir, e.getMessage());
      }
    }
  }

  /**
   * Merges the small table files of every family that holds more than {@link
   * #MAX_SMALL_FILES_PER_FAMILY} of them (under {@link #SMALL_FILE_BYTES}) into one. Keys only grow
   * (steps, snapshot steps, checkpoint ids), so a flushed file never overlaps the files below it:
   * RocksDB moves it down whole and never merges, and each flush would stay a file of its own, with
   * its descriptor and reader, for ever (a soak had 40 after 43 minutes, one more every few
   * minutes). Only the small files are rewritten, so a long trajectory is not copied again.
   *
   * @return how many families were compacted
   */
  int compactCrowded() throws RocksDBException {
    if (readOnly) {
      return 0;
    }
    int compacted = 0;
    for (ColumnFamilyHandle h : handles.values()) {
      List<org.rocksdb.LevelMetaData> levels = db.getColumnFamilyMetaData(h).levels();
      List<String> small = new ArrayList<>();
      for (org.rocksdb.LevelMetaData level : levels) {
        for (org.rocksdb.SstFileMetaData f : level.files()) {
          if (f.size() < SMALL_FILE_BYTES && !f.beingCompacted()) {
            small.add(f.fileName());
          }
        }
      }
      if (small.size() > MAX_SMALL_FILES_PER_FAMILY) {
        try (CompactionOptions options = new CompactionOptions()) {
          db.compactFiles(options, h, small, levels.size() - 1, -1, null);
        }
        compacted++;
      }
    }
    return compacted;
  }

  /** @return table files per family */
  Map<String, Long> tableFiles() {
    Map<String, Long> out = new LinkedHashMap<>();
    for (Map.Entry<Column, ColumnFamilyHandle> e : handles.entrySet()) {
      out.put(e.getKey().familyName, db.getColumnFamilyMetaData(e.getValue()).fileCount());
    }
    return out;
  }

  /**
   * @return bytes of table and blob files per column family, after flushing the memtables (the
   *     write-ahead log and RocksDB's own logs are not counted)
   */
  Map<String, Long> sizeOnDisk() throws RocksDBException {
    flush();
    Map<String, Long> out = new LinkedHashMap<>();
    for (Column c : handles.keySet()) {
      out.put(c.familyName, familySize(c));
    }
    return out;
  }

  /**
   * @return RocksDB's native memory in bytes: {@code memtables} (active, immutable and pinned, over
   *     every column family; bounded by {@link #MEMTABLE_BYTES} plus the memtable being flushed),
   *     {@code block_cache} (the one cache of every family, at most {@link #BLOCK_CACHE_BYTES}) and
   *     {@code table_readers} (index and filter blocks held outside the cache)
   */
  Map<String, Long> memoryUsage() throws RocksDBException {
    long memtables = 0;
    long readers = 0;
    for (ColumnFamilyHandle h : allHandles) {
      memtables += db.getLongProperty(h, "rocksdb.size-all-mem-tables");
      readers += db.getLongProperty(h, "rocksdb.estimate-table-readers-mem");
    }
    Map<String, Long> out = new LinkedHashMap<>();
    out.put("memtables", memtables);
    out.put("block_cache", blockCache.getUsage());
    out.put("table_readers", readers);
    return out;
  }

  /** @return the total of {@link #sizeOnDisk} */
  long flushedSize() throws RocksDBException {
    return sizeOnDisk().values().stream().mapToLong(Long::longValue).sum();
  }

  /** Compacts every family, so that deleted data gives its space back. */
  void compactAll() throws RocksDBException {
    for (ColumnFamilyHandle h : handles.values()) {
      db.compactRange(h);
    }
  }

  private void flush() throws RocksDBException {
    if (readOnly) {
      return;
    }
    try (FlushOptions options = new FlushOptions().setWaitForFlush(true)) {
      db.flush(options, new ArrayList<>(handles.values()));
    }
  }

  private long familySize(Column c) throws RocksDBException {
    return db.getLongProperty(handle(c), "rocksdb.total-sst-files-size")
        + db.getLongProperty(handle(c), "rocksdb.total-blob-file-size");
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
      if (down != null) {
        syncWrite.close(); // a reopen after an error failed: the database is closed already
        return;
      }
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
        blockCache.close();
      }
    } finally {
      lock.unlock();
    }
  }

  private StoreException failure(String what, RocksDBException e) {
    Status status = e.getStatus();
    String message = String.valueOf(e.getMessage());
    if (isNoSpace(e)) {
      return new StoreFullException(fullMessage(what), e);
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

  /**
   * @throws IllegalStateException if the database is closed
   * @throws StoreException if a reopen after a write error failed (the next write tries again)
   */
  void ensureOpen() {
    ensureNotClosed();
    StoreException d = down;
    if (d != null) {
      throw d;
    }
  }

  private void ensureNotClosed() {
    if (closed) {
      throw new IllegalStateException("the model store at " + dir + " is closed");
    }
  }

  /** @throws IllegalStateException if the database is closed or read-only */
  void requireWritable() {
    ensureOpen();
    if (readOnly) {
      throw new IllegalStateException("the model store at " + dir + " was opened read-only");
    }
  }
}
