package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class GovernorTest {
  private final List<Long> slept = new ArrayList<>();
  private final AtomicLong rss = new AtomicLong(100);

  @Test
  void rest_keepsTrainingWithinDutyCycle() throws Exception {
    Governor g = new Governor(0.25, 0, rss::get, slept::add);
    g.rest(10_000_000);
    assertEquals(List.of(30_000_000L), slept, "10 ms of work at 25% needs 30 ms of rest");
    new Governor(1.0, 0, rss::get, slept::add).rest(10_000_000);
    assertEquals(1, slept.size(), "a full duty cycle never rests");
  }

  @Test
  void mayTrain_falseWhenPausedOrOverMemoryCeiling() {
    Governor g = new Governor(1.0, 1000, rss::get, slept::add);
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
        () -> new Governor(1.5, 0, rss::get, slept::add));
    assertTrue(e.getMessage().contains("--duty-cycle"), e.getMessage());
  }
}
