package io.pockettune.store;

import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.function.Function;
import org.apache.kafka.common.utils.Time;

/**
 * Restore: brings a model to any step of the live trajectory from the nearest snapshot at or
 * before it and the replay of the step records after that snapshot. It writes nothing.
 *
 * <h2>Why the result is bit-identical</h2>
 * {@link MezoTrainer#replay} performs the same three kernel passes per record as the step did,
 * with the record's seed, eps, learning rate and projected gradient, and the perturbation kernel's
 * arithmetic is canonical (the same floats on any thread count), so replay reproduces the trained
 * parameters bit for bit, float rounding of the imperfect restore included. It does so only on
 * the same base values, trainable layout and kernel version, which is why those are checked
 * against the store's {@link RunIdentity} first.
 *
 * <h2>Run configs</h2>
 * Replay takes lr and eps from each record but the direction distribution and the weight decay
 * from the run's {@link MezoConfig}, and the run config may change between runs. So every step is
 * replayed under the config that trained it: the entry of {@link RunHistory} at or before its
 * step, turned into a {@link MezoConfig} by the caller's function (the store keeps configs as
 * text and does not parse them). A {@link MezoTrainer}'s config is fixed, so replay continues with
 * a new trainer, at the same step, where the config changes. The trainer handed back is a fresh
 * one at the restored step under the store's current run config, the one the next committed step
 * is recorded under: after a reopen with a new config that is the new one, and after a rollback
 * the config {@link RunHistory#forkAt} recorded.
 *
 * <p>Thread-safe as far as the store goes; the model and kernel are the caller's, not shared.
 */
final class TrajectoryReplay {
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(TrajectoryReplay.class);
  private final StoreDatabase db;
  private final RunHistory run;
  private final Trajectory trajectory;
  private final SnapshotStore snapshots;
  private final Time time;

  TrajectoryReplay(StoreDatabase db, RunHistory run, Trajectory trajectory,
      SnapshotStore snapshots, Time time) {
    this.db = db;
    this.run = run;
    this.trajectory = trajectory;
    this.snapshots = snapshots;
    this.time = time;
  }

  /** See {@link ModelStore#restore(long, LossModel, MezoConfig, PerturbationKernel)}. */
  Restored restore(long step, LossModel model, MezoConfig config, PerturbationKernel kernel) {
    Objects.requireNonNull(config, "config");
    return restore(step, model, text -> config, kernel);
  }

  /** See {@link ModelStore#restore(long, LossModel, Function, PerturbationKernel)}. */
  Restored restore(long step, LossModel model, Function<String, MezoConfig> configOf,
      PerturbationKernel kernel) {
    Objects.requireNonNull(model, "model");
    Objects.requireNonNull(configOf, "configOf");
    Objects.requireNonNull(kernel, "kernel");
    db.ensureOpen();
    RunIdentity id = run.identity();
    if (!id.baseModelHash().equals(model.baseModelHash())) {
      throw new StoreMismatchException("the store at " + db.dir() + " holds a trajectory of base"
          + " model " + id.baseModelHash() + " but the model given is " + model.baseModelHash()
          + ": use the model file the store was trained from");
    }
    if (id.kernelVersion() != PerturbationKernel.VERSION) {
      throw new StoreMismatchException("the store at " + db.dir() + " was recorded with"
          + " perturbation kernel version " + id.kernelVersion() + " but this PocketTune has"
          + " version " + PerturbationKernel.VERSION + ", whose replay would not reproduce the"
          + " model: use the PocketTune version that trained it");
    }
    ParameterSet params = model.parameters();
    if (!id.trainableLayout().equals(params.layout())) {
      throw new StoreMismatchException("the store at " + db.dir() + " trained the tensors "
          + id.trainableLayout() + " but the model's trainable tensors are " + params.layout()
          + ": choose the same trainable tensors");
    }
    long last = trajectory.lastStep();
    if (step < 0 || step > last) {
      throw new IllegalArgumentException(
          "step " + step + " is not on the trajectory, which ends at step " + last);
    }
    long started = time.nanoseconds();
    long from = 0;
    // A damaged snapshot is passed over for the one before it (or the base), which the step
    // records then replay further: the result is the same bits, only slower, and said so.
    List<String> skipped = new ArrayList<>();
    for (Optional<Long> at = snapshots.stepAtOrBefore(step); at.isPresent();
        at = snapshots.stepAtOrBefore(at.get() - 1)) {
      float[] values;
      try {
        values = snapshots.atOrBefore(at.get()).orElseThrow().values();
        if (values.length != params.size()) {
          throw new StoreCorruptedException("the snapshot of step " + at.get() + " holds " + values.length
              + " values but the model has " + params.size() + " trainable values: the store is damaged");
        }
      } catch (StoreCorruptedException e) {
        skipped.add(e.getMessage());
        LOG.warn("{}; restoring step {} from an earlier snapshot instead, replaying the steps after it", e.getMessage(),
            step);
        continue;
      }
      params.load(values);
      from = at.get();
      break;
    }
    List<StepRecord> records = trajectory.steps(from + 1, step);
    if (records.size() != step - from) {
      throw trajectory.missingStep(records.isEmpty() ? from + 1 : records.get(0).step() - 1);
    }
    Map<String, MezoConfig> parsed = new HashMap<>();
    Function<String, MezoConfig> config = text -> parsed.computeIfAbsent(text, t ->
        Objects.requireNonNull(configOf.apply(t), () -> "configOf gave no MezoConfig for " + t));
    NavigableMap<Long, String> history = run.configs();
    NavigableMap<Long, MezoConfig> used = new TreeMap<>();
    MezoTrainer trainer = null;
    for (StepRecord r : records) {
      MezoConfig c = config.apply(run.configAt(history, r.step()));
      if (trainer == null || !c.equals(trainer.config())) {
        // A trainer's config is fixed: the segment from here on gets its own, at the same step.
        trainer = new MezoTrainer(model, c, kernel, r.step() - 1);
        used.put(r.step(), c);
      }
      trainer.replay(r);
    }
    MezoTrainer next = new MezoTrainer(model, config.apply(id.runConfig()), kernel, step);
    return new Restored(next, step, from, step - from, time.nanoseconds() - started,
        Collections.unmodifiableNavigableMap(used), List.copyOf(skipped));
  }
}
