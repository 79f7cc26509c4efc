package io.pockettune.store;

import java.time.Instant;
import java.util.Collections;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * A named point on the step trajectory with enough provenance to rebuild and explain the model
 * there: the step, the source offsets the model has consumed up to it, and the run identity (base
 * model, kernel version, trainable layout, run config) in force when it was marked.
 *
 * @param id       sequential id, starting at 1
 * @param step     last committed step when marked (0: the base model)
 * @param offsets  next offset to read per source partition at that step, sorted
 * @param label    free text given by the user, or null
 * @param metrics  figures recorded with it (e.g. eval loss), sorted by name
 * @param time     when it was marked, millisecond precision
 * @param identity the run identity in force when it was marked
 * @param branch   0 while the checkpoint is on the live trajectory; the id of the {@link Branch}
 *                 its step went to when a rollback abandoned it
 */
public record Checkpoint(
    long id,
    long step,
    Map<SourcePartition, Long> offsets,
    String label,
    Map<String, Double> metrics,
    Instant time,
    RunIdentity identity,
    long branch) {

  /** A checkpoint on the live trajectory. */
  public Checkpoint(
      long id,
      long step,
      Map<SourcePartition, Long> offsets,
      String label,
      Map<String, Double> metrics,
      Instant time,
      RunIdentity identity) {
    this(id, step, offsets, label, metrics, time, identity, 0);
  }

  /** @return true while the checkpoint's step is on the live trajectory */
  public boolean live() {
    return branch == 0;
  }

  /** @return this checkpoint moved to an abandoned branch */
  Checkpoint abandonedTo(long branchId) {
    return new Checkpoint(id, step, offsets, label, metrics, time, identity, branchId);
  }

  public Checkpoint {
    if (id < 1) {
      throw new IllegalArgumentException("checkpoint id must be at least 1, was " + id);
    }
    if (step < 0) {
      throw new IllegalArgumentException("checkpoint step must be at least 0, was " + step);
    }
    offsets = sortedCopy(offsets, "offsets");
    metrics = sortedCopy(metrics, "metrics");
    Objects.requireNonNull(time, "time");
    Objects.requireNonNull(identity, "identity");
    if (branch < 0) {
      throw new IllegalArgumentException("checkpoint branch must be at least 0, was " + branch);
    }
  }

  private static <K extends Comparable<K>, V> Map<K, V> sortedCopy(Map<K, V> map, String what) {
    Objects.requireNonNull(map, what);
    TreeMap<K, V> copy = new TreeMap<>();
    map.forEach(
        (k, v) ->
            copy.put(
                Objects.requireNonNull(k, () -> "null key in " + what),
                Objects.requireNonNull(v, () -> "null value in " + what + " for " + k)));
    return Collections.unmodifiableMap(copy);
  }
}
