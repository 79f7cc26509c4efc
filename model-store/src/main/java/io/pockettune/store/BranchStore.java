package io.pockettune.store;

import io.pockettune.trainer.StepRecord;
import java.nio.ByteBuffer;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.kafka.common.utils.Time;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rollback, the abandoned branches it leaves, and prune, which deletes them.
 *
 * <h2>Layout</h2>
 * <pre>
 * branches  8-byte big-endian branch id + 8-byte big-endian step -> the step's value, unchanged
 * meta      "branch/" + 8-byte big-endian branch id -> fork step, first and last abandoned step,
 *           time ({@link BranchCodec})
 * </pre>
 * Branch ids are sequential from 1 and never reused: the next id is one more than the last
 * {@code branch/} key, which stays until prune, and prune deletes every branch at once.
 *
 * <h2>Rollback</h2>
 * Every step record carries the offsets its commit wrote (see {@link StepRecordCodec}), so the
 * offsets at any step are known, not only at checkpoints. Rolling back to step S is ONE synced
 * write batch: the steps after S move to a new branch, the live checkpoints on them are marked with
 * it, the snapshots after S are deleted (they are derived data), the run configs recorded for the
 * abandoned steps are forgotten ({@link RunHistory#forkAt}) and the committed offsets become those
 * of S. A crash leaves the rollback whole or absent. Afterwards the next commit is step S + 1 and
 * the source resumes at the offsets of S; the caller brings the parameters to S with a restore
 * (nearest snapshot at or before S, then replay: bit-identical to what the trainer had after S).
 *
 * <p>Thread-safe: rollback and prune run under the database's write monitor, which guards the next
 * branch id.
 */
final class BranchStore {
  private static final Logger LOG = LoggerFactory.getLogger(BranchStore.class);

  private final StoreDatabase db;
  private final RunHistory run;
  private final Trajectory trajectory;
  private final SnapshotStore snapshots;
  private final CheckpointStore checkpoints;
  private final Time time;
  /** Guarded by the database's write monitor. */
  private long nextId = 1;

  BranchStore(StoreDatabase db, RunHistory run, Trajectory trajectory, SnapshotStore snapshots,
      CheckpointStore checkpoints, Time time) {
    this.db = db;
    this.run = run;
    this.trajectory = trajectory;
    this.snapshots = snapshots;
    this.checkpoints = checkpoints;
    this.time = time;
  }

  /** Reads the next branch id; call once, under the write monitor. */
  void load() throws RocksDBException {
    long last = 0;
    try (RocksIterator it = db.iterator(Column.META)) {
      for (it.seek(BranchCodec.metaKey(0)); it.isValid(); it.next()) {
        long b = BranchCodec.metaBranch(it.key());
        if (b < 0) {
          break;
        }
        last = b;
      }
      it.status();
    }
    nextId = last + 1;
  }

  /** See {@link ModelStore#rollbackTo(Checkpoint)}. */
  Rollback rollbackTo(Checkpoint checkpoint) {
    Checkpoint stored = checkpoints.get(checkpoint.id()).orElseThrow(() ->
        new IllegalArgumentException("there is no checkpoint " + checkpoint.id()
            + ": list them with 'pockettune checkpoints'"));
    if (!stored.live()) {
      throw new IllegalArgumentException("checkpoint " + stored.id() + " (step " + stored.step()
          + ") is on branch " + stored.branch() + ", abandoned by an earlier rollback: choose a"
          + " checkpoint on the live trajectory");
    }
    return rollbackTo(stored.step(), stored.offsets());
  }

  /** See {@link ModelStore#rollbackTo(long, Map)}. */
  Rollback rollbackTo(long step, Map<SourcePartition, Long> offsets) {
    db.requireWritable();
    return db.write("roll back to step " + step, () -> {
      long last = trajectory.lastStep();
      if (step < 0 || step > last) {
        throw new IllegalArgumentException("cannot roll back to step " + step
            + ": the trajectory ends at step " + last);
      }
      Map<SourcePartition, Long> target = Collections.unmodifiableMap(new TreeMap<>(offsets));
      if (step == last) {
        return new Rollback(step, Optional.empty(), List.of(), 0, trajectory.committedOffsets());
      }
      long branchId = nextId;
      Branch branch = new Branch(branchId, step, step + 1, last,
          Instant.ofEpochMilli(time.milliseconds()));
      List<Long> abandoned;
      int snapshotsDropped;
      try (WriteBatch batch = new WriteBatch()) {
        long moved = trajectory.stepsAfter(step, (n, value) ->
            batch.put(db.handle(Column.BRANCHES), BranchCodec.stepKey(branchId, n), value));
        if (moved != branch.steps()) {
          throw trajectory.missingStep(step + 1 + moved);
        }
        trajectory.truncateAfter(step, target, batch);
        snapshotsDropped = snapshots.dropAfter(step, batch);
        abandoned = checkpoints.abandonAfter(step, branchId, batch);
        batch.put(db.handle(Column.META), BranchCodec.metaKey(branchId),
            BranchCodec.encode(branch));
        run.forkAt(step, batch);
        db.apply(batch);
      }
      nextId++;
      trajectory.rolledBack(step, target);
      LOG.info("Rolled the model store at {} back to step {}: steps {} to {} are branch {}",
          db.dir(), step, branch.firstStep(), branch.lastStep(), branchId);
      return new Rollback(step, Optional.of(branch), List.copyOf(abandoned), snapshotsDropped,
          target);
    });
  }

  /** See {@link ModelStore#branches}. */
  List<Branch> branches() {
    return db.read("list the branches", () -> {
      List<Branch> out = new ArrayList<>();
      try (RocksIterator it = db.iterator(Column.META)) {
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

  /** See {@link ModelStore#branchSteps}. */
  List<StepRecord> branchSteps(long branchId) {
    if (branchId < 1) {
      return List.of();
    }
    return db.read("read branch " + branchId, () -> {
      List<StepRecord> out = new ArrayList<>();
      if (!db.has(Column.BRANCHES)) {
        return out;
      }
      try (RocksIterator it = db.iterator(Column.BRANCHES)) {
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

  /** See {@link ModelStore#forgetBranches}. */
  List<Branch> forgetBranches(Map<SourcePartition, Long> earliest) {
    db.requireWritable();
    return db.write("delete the branches that learned from forgotten events", () -> {
      List<Branch> forgotten = new ArrayList<>();
      try (WriteBatch batch = new WriteBatch()) {
        for (Branch b : branches()) {
          if (b.forgotten() || !consumedAny(b.id(), earliest)) {
            continue;
          }
          batch.deleteRange(db.handle(Column.BRANCHES), BranchCodec.stepKey(b.id(), 0),
              BranchCodec.stepKey(b.id() + 1, 0));
          Branch f = new Branch(b.id(), b.forkStep(), b.firstStep(), b.lastStep(), b.time(), true);
          batch.put(db.handle(Column.META), BranchCodec.metaKey(b.id()), BranchCodec.encode(f));
          forgotten.add(f);
        }
        if (!forgotten.isEmpty()) {
          db.apply(batch);
        }
      }
      if (!forgotten.isEmpty()) {
        db.compactAll(); // so that the deleted step records leave the files, not only the index
        LOG.info("Deleted the steps of branches {} of the model store at {}: they had learned from forgotten"
            + " events", forgotten.stream().map(Branch::id).toList(), db.dir());
      }
      return forgotten;
    });
  }

  private boolean consumedAny(long branchId, Map<SourcePartition, Long> earliest) throws RocksDBException {
    if (!db.has(Column.BRANCHES)) {
      return false;
    }
    try (RocksIterator it = db.iterator(Column.BRANCHES)) {
      for (it.seek(BranchCodec.stepKey(branchId, 0));
          it.isValid() && BranchCodec.branchOf(it.key()) == branchId; it.next()) {
        long n = ByteBuffer.wrap(it.key()).getLong(Long.BYTES);
        if (trajectory.consumedAny(n, it.value(), earliest)) {
          return true;
        }
      }
      it.status();
    }
    return false;
  }

  /** See {@link ModelStore#prune}. */
  Prune prune(boolean thinSnapshots) {
    db.requireWritable();
    return db.write("prune", () -> {
      long before = db.flushedSize();
      List<Branch> branches = branches();
      long steps = branches.stream().mapToLong(Branch::steps).sum();
      long snapshotsDeleted = 0;
      try (WriteBatch batch = new WriteBatch()) {
        if (!branches.isEmpty()) {
          batch.deleteRange(db.handle(Column.BRANCHES), BranchCodec.stepKey(1, 0),
              BranchCodec.stepKey(nextId, 0));
          for (Branch b : branches) {
            batch.delete(db.handle(Column.META), BranchCodec.metaKey(b.id()));
          }
        }
        if (thinSnapshots) {
          snapshotsDeleted = snapshots.thin(checkpoints.liveSteps(), batch);
        }
        db.apply(batch);
      }
      db.compactAll();
      long after = db.flushedSize();
      LOG.info("Pruned the model store at {}: {} branches, {} steps, {} snapshots, {} bytes"
          + " reclaimed", db.dir(), branches.size(), steps, snapshotsDeleted, before - after);
      return new Prune(branches.size(), steps, snapshotsDeleted, before, after);
    });
  }
}
