package io.pockettune.fleetbench;

import io.pockettune.fleet.FleetFixture;
import java.util.List;

/**
 * The check of a run's trajectory topic, read back with {@link FleetFixture#trajectories} (one
 * entry per step; an entry published again after a recovery must equal the first), against the
 * direct training.
 */
final class Trajectories {
  private Trajectories() {}

  /**
   * Checks that every user the baseline trained has exactly its steps in {@code read}, ending at
   * the baseline's values (the last entry's fingerprint), and that no one else published.
   *
   * @return the number of steps read
   * @throws IllegalStateException naming the first user that differs
   */
  static long check(FleetFixture.Trajectories read, DirectTraining.Result direct, String run) {
    if (!read.steps().keySet().equals(direct.stepsPerUser().keySet())) {
      throw new IllegalStateException(run + ": " + read.steps().size() + " users published steps, "
          + direct.stepsPerUser().size() + " were trained directly");
    }
    long total = 0;
    for (var u : direct.stepsPerUser().entrySet()) {
      List<FleetFixture.Published> steps = read.steps().get(u.getKey());
      if (steps.size() != u.getValue()) {
        throw new IllegalStateException(run + ": " + u.getKey() + " has " + steps.size() + " steps, expected "
            + u.getValue());
      }
      long fingerprint = steps.get(steps.size() - 1).decoded().fingerprint();
      if (fingerprint != direct.lastFingerprint().get(u.getKey())) {
        throw new IllegalStateException(run + ": " + u.getKey() + "'s values after step " + steps.size()
            + " differ from the direct training's");
      }
      total += steps.size();
    }
    return total;
  }
}
