package io.pockettune.fleetbench;

import io.pockettune.fleet.FleetFixture;

import io.pockettune.pipeline.TrajectoryEntry;
import io.pockettune.pipeline.UserTrainer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The baseline: the same users' events trained with {@link UserTrainer} in one thread, no Flink
 * and no Kafka. Per user, from the base values, in the job's order: decode and prepare each event,
 * close a batch at {@code batch} examples (or before one the token budget refuses), the last partial
 * batch at the end of the user's events, as the job's end of input does, and train it.
 */
final class DirectTraining {
  /** What the baseline did: its training time (open excluded), steps and each user's last fingerprint. */
  record Result(long openMillis, long trainNanos, long events, long steps, Map<String, Long> stepsPerUser,
      Map<String, Long> lastFingerprint, int trainableValues) {}

  private DirectTraining() {}

  static Result run(Map<String, List<FleetFixture.Produced>> byUser, Path work, UserTrainer.Settings settings)
      throws IOException {
    long opened = System.nanoTime();
    try (UserTrainer t = UserTrainer.open(null, work, settings)) {
      long openMillis = (System.nanoTime() - opened) / 1_000_000;
      Map<String, Long> steps = new LinkedHashMap<>();
      Map<String, Long> fingerprints = new LinkedHashMap<>();
      long events = 0;
      long total = 0;
      long started = System.nanoTime();
      for (var u : byUser.entrySet()) {
        float[] values = t.baseValues();
        long done = 0;
        long last = 0;
        List<UserTrainer.Example> open = new ArrayList<>();
        long openTokens = 0;
        long openLast = 0;
        for (FleetFixture.Produced e : u.getValue()) {
          UserTrainer.Prepared p = t.prepare(e.value());
          events++;
          if (!p.trains()) {
            throw new IllegalStateException("benchmark event of " + u.getKey() + " at " + e.time()
                + " cannot train: " + p.deadLetterReason());
          }
          long[] tokens = p.example().tokens();
          if (!t.fits(open.size(), openTokens, tokens)) {
            done = commit(t, values, done, open, openLast);
            openTokens = 0;
          }
          open.add(p.example());
          openTokens += tokens.length;
          openLast = e.time();
          if (open.size() >= t.batch()) {
            done = commit(t, values, done, open, openLast);
            openTokens = 0;
          }
        }
        if (!open.isEmpty()) {
          done = commit(t, values, done, open, openLast);
        }
        steps.put(u.getKey(), done);
        fingerprints.put(u.getKey(), UserTrainer.fingerprint(values));
        total += done;
      }
      return new Result(openMillis, System.nanoTime() - started, events, total, steps, fingerprints, t.size());
    }
  }

  private static long commit(UserTrainer t, float[] values, long done, List<UserTrainer.Example> open, long time) {
    List<TrajectoryEntry> entries = t.train(values, done, List.copyOf(open), time);
    open.clear();
    return entries.get(entries.size() - 1).record().step();
  }
}
