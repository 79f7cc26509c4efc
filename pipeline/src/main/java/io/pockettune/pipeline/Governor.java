package io.pockettune.pipeline;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.LongSupplier;

/**
 * The resource governor of the service: decides before every step whether training may run, and
 * after it how long to rest. Worker threads are fixed when the model loads; the rest is here:
 * <ul>
 *   <li>Duty cycle d in (0, 1]: after a step of t ns the trainer rests t(1-d)/d, so training takes
 *       at most a fraction d of wall time (ingestion and the control channel keep running).
 *   <li>Pause and resume, from {@code pockettune status --pause/--resume}.
 *   <li>Memory ceiling: while the resident set is above it, training waits (state {@code throttled}).
 * </ul>
 * The governor only decides; the service does the waiting (through its {@code Time}, woken early
 * when it stops), so tests never sleep. Thread-safe.
 */
final class Governor {

  private final double dutyCycle;
  private final long maxResidentBytes;
  private final LongSupplier residentBytes;
  private volatile boolean paused;
  private volatile boolean throttled;

  /**
   * @param dutyCycle        largest fraction of wall time spent training, in (0, 1]
   * @param maxResidentBytes memory ceiling; 0 for none
   * @param residentBytes    the process's resident set now
   */
  Governor(double dutyCycle, long maxResidentBytes, LongSupplier residentBytes) {
    if (!(dutyCycle > 0 && dutyCycle <= 1)) {
      throw new IllegalArgumentException("--duty-cycle must be in (0, 1], e.g. 0.5 to train at most half the time; was " + dutyCycle);
    }
    if (maxResidentBytes < 0) {
      throw new IllegalArgumentException("--max-memory-mb must not be negative (0: no ceiling)");
    }
    this.dutyCycle = dutyCycle;
    this.maxResidentBytes = maxResidentBytes;
    this.residentBytes = residentBytes;
  }

  /** @return whether a step may start now (not paused, memory under the ceiling) */
  boolean mayTrain() {
    throttled = maxResidentBytes > 0 && residentBytes.getAsLong() > maxResidentBytes;
    return !paused && !throttled;
  }

  /** @return how long to rest after {@code workedNanos} of training so the duty cycle holds */
  long restNanos(long workedNanos) {
    return dutyCycle < 1 && workedNanos > 0 ? (long) (workedNanos * (1 - dutyCycle) / dutyCycle) : 0;
  }

  void pause(boolean pause) {
    paused = pause;
  }

  /** @return running, paused or throttled */
  String state() {
    return paused ? "paused" : throttled ? "throttled" : "running";
  }

  double dutyCycle() {
    return dutyCycle;
  }

  /** The resident set of this process, from /proc (Linux); -1 where unknown. */
  static long residentSetBytes() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmRSS:")) {
          return 1024 * Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
      }
    } catch (IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }
}
