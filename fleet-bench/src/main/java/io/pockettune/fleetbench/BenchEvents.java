package io.pockettune.fleetbench;

import io.pockettune.fleet.FleetFixture;
import java.util.List;

/**
 * The benchmark's input: {@code users} users with {@code perUser} events each, interleaved at
 * random (seeded), about a quarter of them notes and the rest messages, keyed by user.
 *
 * <p>Event times are spread evenly over three hours ending an hour ago: the local broker deletes
 * records older than its retention (7 days, by timestamp) and refuses ones more than an hour in the
 * future, and the spread keeps every event time distinct, so the job's training order (event time
 * first) is the order of {@link FleetFixture#byUser}.
 */
final class BenchEvents {
  private static final long SPAN_MS = 3 * 3_600_000L;

  private BenchEvents() {}

  /** {@code users} users with {@code perUser} events each, over the three hours ending an hour ago. */
  static List<FleetFixture.Produced> generate(int users, int perUser, long seed, long nowMillis) {
    long start = nowMillis - 3_600_000L - SPAN_MS;
    long gap = Math.max(1, SPAN_MS / Math.max(1, (long) users * perUser));
    return FleetFixture.events(users, u -> perUser, seed, start, gap);
  }
}
