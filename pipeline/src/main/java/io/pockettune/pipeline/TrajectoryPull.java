package io.pockettune.pipeline;

import io.pockettune.store.ModelStore;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.NavigableMap;

/**
 * {@code pockettune pull}: makes a data directory's store hold the trajectory the fleet job
 * published for one user, so that the device serves (and may go on training) the model the job
 * trained, without ever seeing the user's events.
 *
 * <h2>Checks, in order</h2>
 * Nothing is written until the read prefix of the topic passes the first three.
 * <ol>
 *   <li>The user's entries are contiguous from step 1 (a fresh directory) or from at most one past
 *       the store's last step; a gap is refused, naming the first missing step.
 *   <li>A fresh directory needs step 1 with its run-config header, and that config must name the
 *       package given; the store is created with it, so later training and restores replay the
 *       steps under the job's distribution and weight decay.
 *   <li>Entries at or below the store's last step must equal the stored records, time aside (the
 *       job stamps its batch's event time, a device its clock): otherwise the trajectories diverged.
 *       So a second pull is incremental, and a store trained locally is accepted only if its steps
 *       are a prefix of the job's.
 *   <li>Each new step is replayed onto the restored values and its SHA-256 fingerprint compared
 *       with the entry's before it is committed; a mismatch stops the pull with the steps before it
 *       committed and nothing of it or after.
 * </ol>
 * Steps commit with no source offsets (the events were never on this device), so training here
 * later starts at the beginning of the device's own log. A snapshot of the last step is written at
 * the end, so that the read side restores it without replay.
 */
final class TrajectoryPull {
  /** Snapshot interval while pulling, as training's default: bounds a restore after an interrupted pull. */
  private static final int SNAPSHOT_EVERY = 500;

  private TrajectoryPull() {}

  static PocketTune.PullResult pull(Path dataDir, Path modelDir, PocketTune.PullOptions o) throws IOException {
    long started = System.nanoTime();
    DataDirectory dir = DataDirectory.at(dataDir).withKey(null, false);
    try (ModelPackage pkg = ModelPackage.resolve(modelDir, dir)) {
      pkg.checkBinding(dir);
      TrajectoryReader.Read read = TrajectoryReader.read(o);
      NavigableMap<Long, TrajectoryEntry> entries = read.entries();
      if (entries.isEmpty()) {
        throw new IllegalArgumentException("topic " + o.topic() + " holds no steps of user " + o.user() + " ("
            + read.recordsRead() + " records of other users read): check --user and --topic");
      }
      boolean fresh = !Files.isDirectory(dir.store());
      long lastStep = fresh ? 0 : verifyStored(dir, entries, o.user());
      requireContiguous(entries, lastStep, o);
      if (fresh && read.runConfig() == null) {
        throw new IllegalArgumentException("step 1 of user " + o.user() + " on topic " + o.topic() + " carries no "
            + TrajectoryEntry.RUN_CONFIG_HEADER + " header, so the run config to replay it under is unknown: publish"
            + " the trajectory with the fleet job, which sets it");
      }
      if (read.runConfig() != null) {
        requirePackage(read.runConfig(), pkg, o.user());
      }
      boolean news = entries.lastKey() > lastStep;
      try (StoreSession session = open(dir, pkg, news, read.runConfig(), o.threads())) {
        ModelStore store = session.store();
        if (news && store.lastStep() != lastStep) {
          throw new IllegalArgumentException("the store in " + dir + " went from step " + lastStep + " to "
              + store.lastStep() + " while the topic was read: stop training on it, then pull again");
        }
        MezoTrainer trainer = session.restore(store.lastStep()).trainer();
        ParameterSet params = session.model().parameters();
        long pulled = 0;
        for (TrajectoryEntry e : entries.tailMap(store.lastStep(), false).values()) {
          StepRecord r = e.record();
          trainer.replay(r);
          long fingerprint = fingerprint(params);
          if (fingerprint != e.fingerprint()) {
            throw new IllegalArgumentException("step " + r.step() + " of user " + o.user() + " does not replay to the"
                + " values the fleet job had (fingerprint " + Long.toHexString(fingerprint) + ", the entry says "
                + Long.toHexString(e.fingerprint()) + "), so it and later steps were not pulled ("
                + pulled + " were): the job trains another package or PocketTune version");
          }
          store.commitStep(r, Map.of());
          store.snapshotIfDue(params, SNAPSHOT_EVERY);
          pulled++;
        }
        long last = store.lastStep();
        if (pulled > 0 && store.snapshotStepAfter(last - 1) != last) {
          store.putSnapshot(last, params.floats());
        }
        return new PocketTune.PullResult(o.user(), pulled, last, params.digest(), read.recordsRead(),
            (System.nanoTime() - started) / 1_000_000);
      }
    }
  }

  /**
   * Opens the store: read-only when there is nothing to pull (a service may be training into it),
   * else for writing, recording the job's run config when the topic still holds step 1.
   */
  private static StoreSession open(DataDirectory dir, ModelPackage pkg, boolean news, String runConfig, int threads)
      throws IOException {
    if (!news) {
      return StoreSession.readOnly(dir, pkg, threads);
    }
    return runConfig != null ? StoreSession.forRunConfig(dir, pkg, runConfig, threads)
        : StoreSession.writable(dir, pkg, threads);
  }

  /** @return the store's last step, after checking that the entries at or below it are its records */
  private static long verifyStored(DataDirectory dir, NavigableMap<Long, TrajectoryEntry> entries, String user) {
    StoreSession.requireStore(dir);
    try (ModelStore store = dir.withSnapshotKey(ModelStore.openReadOnly(dir.store()))) {
      long last = store.lastStep();
      for (TrajectoryEntry e : entries.headMap(last, true).values()) {
        StepRecord pulled = e.record();
        StepRecord stored = store.step(pulled.step()).orElseThrow(() -> new AssertionError("steps 1.." + last
            + " are stored"));
        if (!sameStep(stored, pulled)) {
          throw new IllegalArgumentException("step " + pulled.step() + " of user " + user + " on the topic differs from"
              + " step " + pulled.step() + " in the store of " + dir + ": the trajectories diverged, so pull into a"
              + " fresh --data-dir");
        }
      }
      return last;
    }
  }

  /** Equal as replay sees them: every field but the time, which is provenance. */
  private static boolean sameStep(StepRecord a, StepRecord b) {
    return a.equals(new StepRecord(b.step(), b.seed(), b.projectedGradient(), b.learningRate(), b.eps(), b.lossPlus(),
        b.lossMinus(), b.batchSize(), a.timeMillis(), b.coefficients()));
  }

  private static void requireContiguous(NavigableMap<Long, TrajectoryEntry> entries, long lastStep,
      PocketTune.PullOptions o) {
    long expected = Math.min(entries.firstKey(), lastStep + 1);
    for (long step : entries.keySet()) {
      if (step != expected) {
        break;
      }
      expected++;
    }
    if (expected <= entries.lastKey()) {
      throw new IllegalArgumentException("step " + expected + " of user " + o.user() + " is missing from topic "
          + o.topic() + " (" + entries.size() + " steps found, up to step " + entries.lastKey() + "), so the steps"
          + " after it cannot be replayed: check the topic's retention and that the fleet job published every step");
    }
  }

  private static void requirePackage(String runConfig, ModelPackage pkg, String user) {
    String named = RunConfig.parse(runConfig).modelPackage();
    if (!pkg.hash().equals(named)) {
      throw new IllegalArgumentException("the trajectory of user " + user + " was trained on model package "
          + (named == null ? "(none named)" : named) + ", but " + pkg.describe() + " is " + pkg.hash()
          + ": pass the package the fleet job trains with --model");
    }
  }

  /** {@link UserTrainer#fingerprint} of the parameters, without copying them out. */
  private static long fingerprint(ParameterSet params) {
    return Long.parseUnsignedLong(params.digest().substring(0, 16), 16);
  }
}
