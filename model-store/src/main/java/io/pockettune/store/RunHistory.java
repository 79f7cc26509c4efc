package io.pockettune.store;

import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import org.apache.kafka.common.utils.Time;
import org.rocksdb.RocksDBException;
import org.rocksdb.RocksIterator;
import org.rocksdb.WriteBatch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The run a store belongs to: its {@link RunIdentity}, fixed at creation but for the run config,
 * and the history of run configs, so that every step can be replayed under the config it was
 * trained with.
 *
 * <h2>Layout (in {@code meta}; bytes in {@link MetaCodec})</h2>
 * <pre>
 * "identity"                      the identity, with the latest run config
 * "run-config/" + 8-byte step     a run config and when it was recorded, keyed by the first
 *                                 step it applies to (big-endian, so entries sort by step)
 * </pre>
 * Creating a store writes both, the config keyed at step 1. A run that opens the store with a
 * different config rewrites the identity and adds an entry keyed at the next step it will commit,
 * in one batch; reopening twice before a commit overwrites that same entry. So the config that
 * trained step n is the entry at or before n ({@link #configAt}). A rollback to step S deletes the
 * entries after S, which describe abandoned steps, and keys the config in force now at S + 1 if it
 * differs from the one at S ({@link #forkAt}), in the rollback's own batch.
 *
 * <p>Thread-safe: changes run under the database's write monitor; {@link #identity} is volatile.
 */
final class RunHistory {
  private static final Logger LOG = LoggerFactory.getLogger(RunHistory.class);

  private final StoreDatabase db;
  private final Time time;
  private volatile RunIdentity identity;

  RunHistory(StoreDatabase db, Time time) {
    this.db = db;
    this.time = time;
  }

  /** Reads the stored identity; call once, after opening. */
  void load() throws RocksDBException {
    byte[] id = db.get(Column.META, MetaCodec.IDENTITY_KEY);
    identity = id == null ? null : MetaCodec.decodeIdentity(id);
  }

  /** @return the identity of the run that opened the store, or the stored one; null if none */
  RunIdentity identity() {
    return identity;
  }

  /**
   * Records {@code requested} in a new store, or checks it against the stored identity and
   * records a changed run config from step {@code lastStep + 1}.
   *
   * @throws StoreMismatchException if the base model, kernel version or trainable layout differ
   */
  void adopt(RunIdentity requested, long lastStep) {
    RunIdentity stored = identity;
    Path dir = db.dir();
    if (stored == null) {
      if (lastStep != 0) {
        throw new StoreCorruptedException(
            "the model store at " + dir + " has steps but no run identity: the store is damaged;"
                + " use a new --data-dir");
      }
      write(requested, 1);
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
      long from = lastStep + 1;
      write(requested, from);
      LOG.info("Run config of the model store at {} changed, from step {}", dir, from);
    }
  }

  /** Writes the identity and a run-config entry starting at {@code fromStep}, atomically. */
  private void write(RunIdentity id, long fromStep) {
    db.write(
        "record the run identity",
        () -> {
          try (WriteBatch batch = new WriteBatch()) {
            batch.put(db.handle(Column.META), MetaCodec.IDENTITY_KEY, MetaCodec.encodeIdentity(id));
            batch.put(
                db.handle(Column.META),
                MetaCodec.runConfigKey(fromStep),
                MetaCodec.encodeRunConfig(time.milliseconds(), id.runConfig()));
            db.apply(batch);
          }
          identity = id;
          return null;
        });
  }

  /** @return every run config recorded, by the first step it applies to; unmodifiable */
  NavigableMap<Long, String> configs() {
    return db.read(
        "read the run configs",
        () -> {
          NavigableMap<Long, String> out = new TreeMap<>();
          try (RocksIterator it = db.iterator(Column.META)) {
            for (it.seek(MetaCodec.runConfigKey(0)); it.isValid(); it.next()) {
              long step = MetaCodec.runConfigStep(it.key());
              if (step < 0) {
                break;
              }
              out.put(step, MetaCodec.decodeRunConfig(step, it.value()));
            }
            it.status();
          }
          return Collections.unmodifiableNavigableMap(out);
        });
  }

  /**
   * @param configs what {@link #configs} returned
   * @return the run config that trained step {@code step}: the entry at or before it; steps before
   *     the first entry (none in a store this PocketTune created) count as trained under the first
   *     entry, and with no entry at all, under the identity's config
   */
  String configAt(NavigableMap<Long, String> configs, long step) {
    Map.Entry<Long, String> e = configs.floorEntry(step);
    if (e == null) {
      e = configs.firstEntry();
    }
    return e == null ? identity.runConfig() : e.getValue();
  }

  /**
   * Adds to a rollback's {@code batch}: forget the configs of the steps after {@code step}, and
   * record the current one from {@code step + 1} if it is not the one in force at {@code step}.
   */
  void forkAt(long step, WriteBatch batch) throws RocksDBException {
    NavigableMap<Long, String> configs = configs();
    batch.deleteRange(db.handle(Column.META), MetaCodec.runConfigKey(step + 1),
        MetaCodec.runConfigKey(Long.MAX_VALUE));
    Map.Entry<Long, String> inForce = configs.floorEntry(step);
    if (inForce == null || !inForce.getValue().equals(identity.runConfig())) {
      batch.put(db.handle(Column.META), MetaCodec.runConfigKey(step + 1),
          MetaCodec.encodeRunConfig(time.milliseconds(), identity.runConfig()));
    }
  }
}
