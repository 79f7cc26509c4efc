package io.pockettune.store;

import io.pockettune.trainer.StepRecord;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;

/**
 * The live trajectory: the committed steps and the source offsets they consumed.
 *
 * <h2>Layout</h2>
 * <pre>
 * steps    8-byte big-endian step -> step record with the offsets its commit named
 *                                    ({@link StepRecordCodec}); every step from 1 to the last
 * offsets  topic + partition      -> next offset to read as of the last step ({@link OffsetCodec})
 * meta     "partition/" + 4 bytes -> a source partition, by the small index step records name it
 *                                    by ({@link PartitionCodec}); assigned on first use, never
 *                                    changed
 * </pre>
 *
 * <h2>Exactly once</h2>
 * {@link #commit} writes the step record, the next offset of every source partition the step
 * consumed, and the dictionary entry of any partition named for the first time, in ONE {@link
 * WriteBatch}. RocksDB applies a batch atomically, across column families and across a crash, so
 * the store always holds both or neither: the committed offsets are exactly the events the last
 * committed step has trained on. After a crash the trainer restores the model at {@link #lastStep}
 * and the source seeks to {@link #committedOffsets}; no event is trained twice or skipped. Two
 * separate writes would leave a window in which a crash does one or the other.
 *
 * <h2>Offsets at any step</h2>
 * Offsets in a record are absolute, so the offsets at step n are, per partition, those of the
 * latest record at or before n that names it ({@link #offsetsAt}); the {@code offsets} family is
 * the same answer for the last step, kept so that opening a store reads it directly.
 *
 * <p>Thread-safe. Commits and rollbacks run under the database's write monitor and replace the
 * last step and its offsets together, in one volatile field, after their batch is durable; readers
 * see both from the same commit.
 */
final class Trajectory {
  /** Receives a stored step as it is, e.g. to copy it to a branch. */
  @FunctionalInterface
  interface RawStepSink {
    void accept(long step, byte[] value) throws RocksDBException;
  }

  /** The last committed step and the offsets committed with it, read together. */
  private record Committed(long lastStep, Map<SourcePartition, Long> offsets) {
    Committed advance(long step, Map<SourcePartition, Long> nextOffsets) {
      TreeMap<SourcePartition, Long> merged = new TreeMap<>(offsets);
      merged.putAll(nextOffsets);
      return new Committed(step, Collections.unmodifiableMap(merged));
    }
  }

  private final StoreDatabase db;
  private volatile Committed committed = new Committed(0, Map.of());
  /** The partition dictionary ({@link PartitionCodec}); grows under the write monitor. */
  private final Map<SourcePartition, Integer> partitionIndex = new ConcurrentHashMap<>();
  private final Map<Integer, SourcePartition> partitionByIndex = new ConcurrentHashMap<>();

  Trajectory(StoreDatabase db) {
    this.db = db;
  }

  /** Reads the last step, the committed offsets and the partition dictionary; call once. */
  void load() throws RocksDBException {
    long last = 0;
    try (RocksIterator it = db.iterator(Column.STEPS)) {
      it.seekToLast();
      if (it.isValid()) {
        last = StepRecordCodec.step(it.key());
      }
      it.status();
    }
    TreeMap<SourcePartition, Long> offsets = new TreeMap<>();
    try (RocksIterator it = db.iterator(Column.OFFSETS)) {
      for (it.seekToFirst(); it.isValid(); it.next()) {
        SourcePartition p = OffsetCodec.partition(it.key());
        offsets.put(p, OffsetCodec.decode(p, it.value()));
      }
      it.status();
    }
    committed = new Committed(last, Collections.unmodifiableMap(offsets));
    try (RocksIterator it = db.iterator(Column.META)) {
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
    }
  }

  /** See {@link ModelStore#commitStep}. */
  void commit(StepRecord record, Map<SourcePartition, Long> nextOffsets) {
    Objects.requireNonNull(record, "record");
    Objects.requireNonNull(nextOffsets, "nextOffsets");
    db.requireWritable();
    nextOffsets.forEach(
        (p, offset) -> {
          Objects.requireNonNull(p, "null partition in nextOffsets");
          Objects.requireNonNull(offset, () -> "null offset for " + p);
          if (offset < 0) {
            throw new IllegalArgumentException("next offset " + offset + " of " + p + " is negative");
          }
        });
    db.write(
        "commit step " + record.step(),
        () -> {
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
                batch.put(db.handle(Column.META), PartitionCodec.key(index),
                    PartitionCodec.encode(e.getKey()));
              }
              indexed.put(index, e.getValue());
            }
            batch.put(
                db.handle(Column.STEPS),
                StepRecordCodec.key(record.step()),
                StepRecordCodec.encode(record, indexed));
            for (Map.Entry<SourcePartition, Long> e : nextOffsets.entrySet()) {
              batch.put(db.handle(Column.OFFSETS), OffsetCodec.key(e.getKey()),
                  OffsetCodec.encode(e.getValue()));
            }
            db.apply(batch);
          }
          added.forEach((p, index) -> {
            partitionIndex.put(p, index);
            partitionByIndex.put(index, p);
          });
          committed = current.advance(record.step(), nextOffsets);
          return null;
        });
  }

  /** @return the number of the last committed step; 0 if none */
  long lastStep() {
    return committed.lastStep();
  }

  /** @return the next offset to read per source partition, as of {@link #lastStep()}; sorted */
  Map<SourcePartition, Long> committedOffsets() {
    return committed.offsets();
  }

  /** See {@link ModelStore#step}. */
  Optional<StepRecord> step(long n) {
    if (n < 1) {
      return Optional.empty();
    }
    return db.read(
        "read step " + n,
        () -> {
          byte[] value = db.get(Column.STEPS, StepRecordCodec.key(n));
          return value == null
              ? Optional.<StepRecord>empty()
              : Optional.of(StepRecordCodec.decode(n, value));
        });
  }

  /** See {@link ModelStore#steps}. */
  List<StepRecord> steps(long fromInclusive, long toInclusive) {
    if (fromInclusive < 0) {
      throw new IllegalArgumentException("fromInclusive must be at least 0, was " + fromInclusive);
    }
    long first = Math.max(fromInclusive, 1);
    if (toInclusive < first) {
      return List.of();
    }
    return db.read(
        "read steps " + first + " to " + toInclusive,
        () -> {
          long expectedLast = Math.min(toInclusive, committed.lastStep());
          List<StepRecord> out = new ArrayList<>();
          try (RocksIterator it = db.iterator(Column.STEPS)) {
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

  /** @return the error for a step the live trajectory should hold but does not */
  StoreCorruptedException missingStep(long n) {
    return new StoreCorruptedException(
        "step " + n + " is missing from the model store at " + db.dir()
            + ": the store is damaged; roll back to a checkpoint before it or use a new --data-dir");
  }

  /** See {@link ModelStore#offsetsAt}. */
  Map<SourcePartition, Long> offsetsAt(long step) {
    Committed current = committed;
    if (step < 0 || step > current.lastStep()) {
      throw new IllegalArgumentException(
          "step " + step + " is not on the trajectory, which ends at step " + current.lastStep());
    }
    if (step == current.lastStep()) {
      return current.offsets();
    }
    return db.read("read the offsets of step " + step, () -> {
      TreeMap<SourcePartition, Long> out = new TreeMap<>();
      int known = partitionByIndex.size();
      try (RocksIterator it = db.iterator(Column.STEPS)) {
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

  /**
   * @return whether a stored step value names a partition of {@code events} with a next offset
   *     past one of its offsets there, that is, whether the step's commit had consumed one of them
   */
  boolean consumedAny(long step, byte[] value, Map<SourcePartition, Long> earliest) {
    Map<Integer, Long> named = StepRecordCodec.decodeOffsets(step, value);
    if (named == null) {
      return true; // an older PocketTune kept no offsets with steps: it may have, so assume it did
    }
    for (Map.Entry<Integer, Long> e : named.entrySet()) {
      Long first = earliest.get(partition(e.getKey(), step));
      if (first != null && e.getValue() > first) {
        return true;
      }
    }
    return false;
  }

  /** See {@link ModelStore#firstStepConsuming}. */
  long firstStepConsuming(Map<SourcePartition, Long> earliest) {
    return db.read("find the first step past the forgotten events", () -> {
      try (RocksIterator it = db.iterator(Column.STEPS)) {
        for (it.seekToFirst(); it.isValid(); it.next()) {
          long n = StepRecordCodec.step(it.key());
          if (consumedAny(n, it.value(), earliest)) {
            return n;
          }
        }
        it.status();
      }
      return 0L;
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
   * Hands every stored step after {@code step} to {@code sink}, in step order, its value as
   * stored. Call under the write monitor, so that no commit runs meanwhile.
   *
   * @return the number of steps handed over
   */
  long stepsAfter(long step, RawStepSink sink) throws RocksDBException {
    long n = 0;
    try (RocksIterator it = db.iterator(Column.STEPS)) {
      for (it.seek(StepRecordCodec.key(step + 1)); it.isValid(); it.next()) {
        sink.accept(StepRecordCodec.step(it.key()), it.value());
        n++;
      }
      it.status();
    }
    return n;
  }

  /**
   * Adds to a rollback's {@code batch}: delete the steps after {@code step} and make {@code
   * offsets} the committed offsets. Call {@link #rolledBack} once the batch is durable.
   */
  void truncateAfter(long step, Map<SourcePartition, Long> offsets, WriteBatch batch)
      throws RocksDBException {
    batch.deleteRange(db.handle(Column.STEPS), StepRecordCodec.key(step + 1),
        StepRecordCodec.key(Long.MAX_VALUE));
    for (SourcePartition p : committed.offsets().keySet()) {
      if (!offsets.containsKey(p)) {
        batch.delete(db.handle(Column.OFFSETS), OffsetCodec.key(p));
      }
    }
    for (Map.Entry<SourcePartition, Long> e : offsets.entrySet()) {
      batch.put(db.handle(Column.OFFSETS), OffsetCodec.key(e.getKey()),
          OffsetCodec.encode(e.getValue()));
    }
  }

  /** Makes {@code step} the last step, with {@code offsets}, after {@link #truncateAfter}. */
  void rolledBack(long step, Map<SourcePartition, Long> offsets) {
    committed = new Committed(step, offsets);
  }
}
