package io.pockettune.pipeline;

/** Source of time for triggers, so tests drive time instead of sleeping. */
interface Clock {
  Clock SYSTEM = System::nanoTime;

  /** @return a monotonic time in nanoseconds */
  long nanoTime();
}
