package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.TokenBatch;
import org.apache.kafka.common.utils.MockTime;
import org.junit.jupiter.api.Test;

class MicroBatcherTest {
  private final MockTime clock = new MockTime(0, 0, 0);

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
    MicroBatcher b = new MicroBatcher(100, Long.MAX_VALUE, java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(1_000), clock);
    assertFalse(b.ready(), "an empty batch is never ready");
    clock.setCurrentTimeMs(500);
    b.add(tokens(3));
    clock.setCurrentTimeMs(1_499);
    assertFalse(b.ready());
    clock.setCurrentTimeMs(1_500);
    assertTrue(b.ready());
    assertEquals(1, b.drain().size());
  }
}
