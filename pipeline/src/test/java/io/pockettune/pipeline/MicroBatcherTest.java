package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.TokenBatch;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class MicroBatcherTest {
  private final AtomicLong now = new AtomicLong();
  private final Clock clock = now::get;

  private static long[] tokens(int n) {
    long[] t = new long[n];
    java.util.Arrays.fill(t, 5L);
    return t;
  }

  @Test
  void ready_afterCountReached() {
    MicroBatcher b = new MicroBatcher(3, Long.MAX_VALUE, Long.MAX_VALUE, clock);
    b.add(tokens(4));
    b.add(tokens(5));
    assertFalse(b.ready());
    b.add(tokens(6));
    assertTrue(b.ready());
    TokenBatch batch = b.drain();
    assertEquals(3, batch.size());
    assertEquals(6, batch.length());
    assertEquals(0, b.pendingExamples());
  }

  @Test
  void fits_falseWhenTokenBudgetWouldBeExceeded() {
    MicroBatcher b = new MicroBatcher(100, 10, Long.MAX_VALUE, clock);
    assertTrue(b.fits(tokens(12)), "an empty batch takes any example, even one over budget");
    b.add(tokens(6));
    assertTrue(b.fits(tokens(4)));
    assertFalse(b.fits(tokens(5)));
  }

  @Test
  void ready_afterMaxWaitOnInjectedClock() {
    MicroBatcher b = new MicroBatcher(100, Long.MAX_VALUE, 1_000, clock);
    assertFalse(b.ready(), "an empty batch is never ready");
    now.set(500);
    b.add(tokens(3));
    now.set(1_499);
    assertFalse(b.ready());
    now.set(1_500);
    assertTrue(b.ready());
    assertEquals(1, b.drain().size());
  }
}
