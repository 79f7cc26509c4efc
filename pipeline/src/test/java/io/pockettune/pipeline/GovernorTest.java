package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class GovernorTest {
  private final AtomicLong rss = new AtomicLong(100);

  @Test
  void restNanos_keepsTrainingWithinDutyCycle() {
    Governor g = new Governor(0.25, 0, rss::get);
    assertEquals(30_000_000L, g.restNanos(10_000_000), "10 ms of work at 25% needs 30 ms of rest");
    assertEquals(0L, new Governor(1.0, 0, rss::get).restNanos(10_000_000), "a full duty cycle never rests");
  }

  @Test
  void mayTrain_falseWhenPausedOrOverMemoryCeiling() {
    Governor g = new Governor(1.0, 1000, rss::get);
    assertTrue(g.mayTrain());
    assertEquals("running", g.state());
    g.pause(true);
    assertFalse(g.mayTrain());
    assertEquals("paused", g.state());
    g.pause(false);
    rss.set(1001);
    assertFalse(g.mayTrain());
    assertEquals("throttled", g.state());
    rss.set(999);
    assertTrue(g.mayTrain());
  }

  @Test
  void constructor_badDutyCycleIsAUserError() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new Governor(1.5, 0, rss::get));
    assertTrue(e.getMessage().contains("--duty-cycle"), e.getMessage());
  }
}
