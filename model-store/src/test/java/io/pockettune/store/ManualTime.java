package io.pockettune.store;

import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;
import org.apache.kafka.common.utils.Time;

/** A time that moves only when a test calls {@link #sleep}. Thread-safe. */
final class ManualTime implements Time {
  private final AtomicLong nowMs;

  ManualTime(long startMs) {
    this.nowMs = new AtomicLong(startMs);
  }

  @Override
  public long milliseconds() {
    return nowMs.get();
  }

  @Override
  public long nanoseconds() {
    return nowMs.get() * 1_000_000L;
  }

  @Override
  public void sleep(long ms) {
    nowMs.addAndGet(ms);
  }

  @Override
  public void waitObject(Object obj, Supplier<Boolean> condition, long deadlineMs) {
    throw new UnsupportedOperationException("not used by the model store");
  }
}
