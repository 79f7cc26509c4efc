package io.pockettune.store;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.apache.kafka.common.utils.Time;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;

/**
 * Checkpoints: named points on the trajectory, with the offsets, metrics and run identity of the
 * moment they were marked, so that any of them can be restored and explained later.
 *
 * <h2>Layout</h2>
 * <pre>
 * checkpoints  8-byte big-endian id (from 1) -> step, time, label, offsets, metrics, identity,
 *              branch ({@link CheckpointCodec})
 * </pre>
 * Ids are sequential and never reused, not even after prune: the next id is one more than the
 * last key. A checkpoint is written once, when marked, and rewritten only by a rollback that
 * moves its step to a branch ({@link #abandonAfter}, in the rollback's batch).
 *
 * <p>Thread-safe: marking runs under the database's write monitor, which guards the next id.
 */
final class CheckpointStore {
  private final StoreDatabase db;
  private final Trajectory trajectory;
  private final RunHistory run;
  private final Time time;
  /** Guarded by the database's write monitor. */
  private long nextId = 1;

  CheckpointStore(StoreDatabase db, Trajectory trajectory, RunHistory run, Time time) {
    this.db = db;
    this.trajectory = trajectory;
    this.run = run;
    this.time = time;
  }

  /** Reads the next id; call once, under the write monitor. */
  void load() throws RocksDBException {
    try (RocksIterator it = db.iterator(Column.CHECKPOINTS)) {
      it.seekToLast();
      if (it.isValid()) {
        nextId = CheckpointCodec.id(it.key()) + 1;
      }
      it.status();
    }
  }

  /** See {@link ModelStore#markCheckpoint}. */
  Checkpoint mark(String label, Map<String, Double> metrics) {
    Objects.requireNonNull(metrics, "metrics");
    db.requireWritable();
    return db.write(
        "mark a checkpoint",
        () -> {
          Checkpoint checkpoint =
              new Checkpoint(
                  nextId,
                  trajectory.lastStep(),
                  trajectory.committedOffsets(),
                  label,
                  metrics,
                  Instant.ofEpochMilli(time.milliseconds()),
                  run.identity());
          db.put(Column.CHECKPOINTS, CheckpointCodec.key(checkpoint.id()),
              CheckpointCodec.encode(checkpoint));
          nextId++;
          return checkpoint;
        });
  }

  /** See {@link ModelStore#checkpoints}. */
  List<Checkpoint> all() {
    return db.read(
        "list the checkpoints",
        () -> {
          List<Checkpoint> out = new ArrayList<>();
          try (RocksIterator it = db.iterator(Column.CHECKPOINTS)) {
            for (it.seekToFirst(); it.isValid(); it.next()) {
              out.add(CheckpointCodec.decode(CheckpointCodec.id(it.key()), it.value()));
            }
            it.status();
          }
          return out;
        });
  }

  /** See {@link ModelStore#checkpoint}. */
  Optional<Checkpoint> get(long id) {
    if (id < 1) {
      return Optional.empty();
    }
    return db.read(
        "read checkpoint " + id,
        () -> {
          byte[] value = db.get(Column.CHECKPOINTS, CheckpointCodec.key(id));
          return value == null
              ? Optional.<Checkpoint>empty()
              : Optional.of(CheckpointCodec.decode(id, value));
        });
  }

  /** @return the steps of the checkpoints on the live trajectory */
  Set<Long> liveSteps() {
    Set<Long> steps = new HashSet<>();
    for (Checkpoint c : all()) {
      if (c.live()) {
        steps.add(c.step());
      }
    }
    return steps;
  }

  /**
   * Adds to a rollback's {@code batch}: mark the live checkpoints after {@code step} as on
   * branch {@code branchId}.
   *
   * @return their ids, in order
   */
  List<Long> abandonAfter(long step, long branchId, WriteBatch batch) throws RocksDBException {
    List<Long> abandoned = new ArrayList<>();
    for (Checkpoint c : all()) {
      if (c.live() && c.step() > step) {
        batch.put(db.handle(Column.CHECKPOINTS), CheckpointCodec.key(c.id()),
            CheckpointCodec.encode(c.abandonedTo(branchId)));
        abandoned.add(c.id());
      }
    }
    return abandoned;
  }
}
