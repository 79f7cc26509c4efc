package io.pockettune.store;

import io.pockettune.trainer.ParameterSet;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;

/**
 * Snapshots of the trainable values, so that restoring a step replays a bounded number of steps.
 * They are derived data: any of them can be rebuilt by replay from the base model, which is why a
 * rollback may drop them and prune may thin them.
 *
 * <h2>Layout</h2>
 * <pre>
 * snapshots  8-byte big-endian step + 4-byte big-endian chunk index -> one chunk of compressed,
 *            checksummed floats ({@link SnapshotCodec}); step 0 is the base model
 * </pre>
 * A snapshot is all its chunks, written in one batch that first deletes the range of its step, so
 * that a snapshot replaced by a smaller one keeps no stale trailing chunk. Keys sort by step then
 * chunk, so "the latest snapshot at or before n" is one reverse seek from chunk 0xFFFFFFFF of n.
 *
 * <h2>Invariant</h2>
 * No snapshot is ahead of the last committed step (checked under the write monitor, against
 * which commits and rollbacks run), so a restore never runs past the committed offsets.
 *
 * <p>Thread-safe.
 */
final class SnapshotStore {
  private final StoreDatabase db;
  private final Trajectory trajectory;
  /** Seals chunk values when the store is encrypted; null in the clear. */
  private volatile SnapshotCipher cipher;

  SnapshotStore(StoreDatabase db, Trajectory trajectory) {
    this.db = db;
    this.trajectory = trajectory;
  }

  /** See {@link ModelStore#encryptSnapshots}. */
  void useKey(byte[] key) {
    cipher = key == null ? null : new SnapshotCipher(key);
  }

  /** @return the value to store for a clear chunk under {@code rowKey} */
  private byte[] stored(byte[] rowKey, byte[] chunk) {
    SnapshotCipher c = cipher;
    return c == null ? chunk : c.seal(rowKey, chunk);
  }

  /** @return the clear chunk of a stored value, refusing a mix of encrypted and clear */
  private byte[] clear(byte[] rowKey, byte[] value) {
    SnapshotCipher c = cipher;
    long step = SnapshotCodec.step(rowKey);
    String what = "chunk " + SnapshotCodec.chunk(rowKey) + " of the snapshot of step " + step;
    boolean sealed = SnapshotCipher.isSealed(value);
    if (c == null && sealed) {
      throw new StoreException("the snapshot of step " + step + " is encrypted but the store was opened without"
          + " a key; open the data directory with its key");
    }
    if (c != null && !sealed) {
      throw new StoreException("the snapshot of step " + step + " is stored in the clear but the store is"
          + " encrypted; restore this data directory from a backup, or delete the snapshot and replay");
    }
    return c == null ? value : c.open(rowKey, value, what);
  }

  /** See {@link ModelStore#putSnapshot}. */
  void put(long step, FloatBuffer values) {
    Objects.requireNonNull(values, "values");
    db.requireWritable();
    if (step < 0) {
      throw new IllegalArgumentException("snapshot step must be at least 0, was " + step);
    }
    List<byte[]> chunks = SnapshotCodec.encode(values, SnapshotCodec.CHUNK_FLOATS);
    db.write(
        "store the snapshot of step " + step,
        () -> {
          long last = trajectory.lastStep();
          if (step > last) {
            throw new IllegalStateException(
                "snapshot of step " + step + " is ahead of the last committed step " + last);
          }
          try (WriteBatch batch = new WriteBatch()) {
            batch.deleteRange(
                db.handle(Column.SNAPSHOTS), SnapshotCodec.key(step, 0),
                SnapshotCodec.key(step + 1, 0));
            for (int i = 0; i < chunks.size(); i++) {
              byte[] rowKey = SnapshotCodec.key(step, i);
              batch.put(db.handle(Column.SNAPSHOTS), rowKey, stored(rowKey, chunks.get(i)));
            }
            db.apply(batch);
          }
          return null;
        });
  }

  /** See {@link ModelStore#snapshotIfDue}. */
  boolean putIfDue(ParameterSet params, long every) {
    long last = trajectory.lastStep();
    if (every <= 0 || last == 0 || last % every != 0) {
      return false;
    }
    put(last, params.floats());
    return true;
  }

  /** See {@link ModelStore#snapshotAtOrBefore}. */
  /** The step of the newest snapshot at or before {@code step}, without reading its values. */
  Optional<Long> stepAtOrBefore(long step) {
    if (step < 0) {
      return Optional.empty();
    }
    return db.read(
        "find the snapshot at or before step " + step,
        () -> {
          try (RocksIterator it = db.iterator(Column.SNAPSHOTS)) {
            it.seekForPrev(SnapshotCodec.key(step, -1));
            if (!it.isValid()) {
              it.status();
              return Optional.<Long>empty();
            }
            return Optional.of(SnapshotCodec.step(it.key()));
          }
        });
  }

  Optional<Snapshot> atOrBefore(long step) {
    if (step < 0) {
      return Optional.empty();
    }
    return db.read(
        "read the snapshot at or before step " + step,
        () -> {
          try (RocksIterator it = db.iterator(Column.SNAPSHOTS)) {
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
                byte[] rowKey = it.key();
                assembler.accept(SnapshotCodec.chunk(rowKey), clear(rowKey, it.value()));
              }
              it.status();
              return Optional.of(assembler.finish());
            }
          }
        });
  }

  /** See {@link ModelStore#snapshotStepAfter}. */
  long stepAfter(long step) {
    return db.read("find a snapshot after step " + step, () -> {
      try (RocksIterator it = db.iterator(Column.SNAPSHOTS)) {
        it.seek(SnapshotCodec.key(step + 1, 0));
        long found = it.isValid() ? SnapshotCodec.step(it.key()) : -1;
        it.status();
        return found;
      }
    });
  }

  /**
   * Adds to a rollback's {@code batch}: delete the snapshots after {@code step}.
   *
   * @return the number of snapshots deleted
   */
  int dropAfter(long step, WriteBatch batch) throws RocksDBException {
    int dropped = 0;
    try (RocksIterator it = db.iterator(Column.SNAPSHOTS)) {
      for (it.seek(SnapshotCodec.key(step + 1, 0)); it.isValid(); it.next()) {
        if (SnapshotCodec.chunk(it.key()) == 0) {
          dropped++;
        }
      }
      it.status();
    }
    batch.deleteRange(db.handle(Column.SNAPSHOTS), SnapshotCodec.key(step + 1, 0),
        SnapshotCodec.key(Long.MAX_VALUE, 0));
    return dropped;
  }

  /**
   * Adds to a prune's {@code batch}: delete every snapshot except the latest and those at the
   * steps in {@code keep}.
   *
   * @return the number of snapshots deleted
   */
  long thin(Set<Long> keep, WriteBatch batch) throws RocksDBException {
    Optional<Long> latest = atOrBefore(Long.MAX_VALUE - 1).map(Snapshot::step);
    long deleted = 0;
    try (RocksIterator it = db.iterator(Column.SNAPSHOTS)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        long n = SnapshotCodec.step(it.key());
        if (!keep.contains(n) && !latest.equals(Optional.of(n))) {
          if (SnapshotCodec.chunk(it.key()) == 0) {
            deleted++;
          }
          batch.delete(db.handle(Column.SNAPSHOTS), it.key());
        }
      }
      it.status();
    }
    return deleted;
  }
}
