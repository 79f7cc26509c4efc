package io.pockettune.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link LmComparison}: its evaluation schedule, and one tiny real run on ../shared/data (a
 * 10-step pretraining, budget 36, side vs side-fzoo) whose JSON must hold together: one base for
 * every method, the budget spent exactly, the target block recomputable from the curves.
 */
class LmComparisonTest {
  private static final Path SHARED = Path.of(System.getProperty("pockettune.sharedData", "../../shared/data"));

  @Test
  void evaluationSteps_areTheStepsNearestEveryTwelfthOfTheBudget() {
    assertArrayEquals(new long[] {0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200},
        LmComparison.evaluationSteps(2400, 2, 1200));
    // FZOO: 9 loss evaluations a step, 266 steps; 2400 / 12 = 200 loss evaluations = 22.2 steps.
    assertArrayEquals(new long[] {0, 22, 44, 67, 89, 111, 133, 156, 178, 200, 222, 244, 266},
        LmComparison.evaluationSteps(2400, 9, 266));
    // Tiny budgets: no step twice, the last step always.
    assertArrayEquals(new long[] {0, 1, 2, 3, 4}, LmComparison.evaluationSteps(36, 9, 4));
  }

  @Test
  void sampleStd_isTheNMinusOneForm() {
    assertEquals(1.0, LmComparison.sampleStd(new double[] {1, 2, 3}), 1e-12);
    assertTrue(Double.isNaN(LmComparison.sampleStd(new double[] {1})));
  }

  @Test
  void settings_refuseAMethodWithoutAGrid() {
    assertThrows(IllegalArgumentException.class, () -> new LmComparison.Settings(36, 1, List.of(1L),
        Map.of("side", List.of(1e-2f)), 1, List.of("side", "side-fzoo")));
    assertThrows(IllegalArgumentException.class, () -> new LmComparison.Settings(36, 1, List.of(1L),
        Map.of("x", List.of(1e-2f)), 1, List.of("x")));
    assertEquals(LmComparison.ALL_METHODS, LmComparison.Settings.defaults(2).methods());
  }

  @Test
  void tinyRealRun_curvesShareTheBaseAndTheBudgetIsSpentExactly() throws Exception {
    assumeTrue(Files.isRegularFile(SHARED.resolve("sms").resolve("SMSSpamCollection"))
            && Files.isDirectory(SHARED.resolve("sst2-kshot").resolve("512-42")),
        "../shared/data (sms, sst2-kshot/512-42) is absent: the real-data run of the LM comparison is skipped");
    int budget = 36;
    LmComparison.Settings s = new LmComparison.Settings(budget, 10, List.of(1L),
        Map.of("side", List.of(1e-2f), "side-fzoo", List.of(1e-2f)), 2, List.of("side", "side-fzoo"));
    ByteArrayOutputStream logBytes = new ByteArrayOutputStream();
    ObjectNode r;
    try (PrintStream log = new PrintStream(logBytes, true, StandardCharsets.UTF_8)) {
      r = LmComparison.run(SHARED, s, log);
    }
    String log = logBytes.toString(StandardCharsets.UTF_8);
    System.out.println(log);
    System.out.println(r.toPrettyString());
    assertTrue(log.contains("pretraining:") && log.contains("side-fzoo:"), log);

    JsonNode pre = r.get("pretraining");
    assertEquals(10, pre.get("steps").asInt());
    assertEquals(20, pre.get("loss_evaluations").asInt());
    double before = pre.get("sms_heldout_loss_before").asDouble();
    double after = pre.get("sms_heldout_loss_after").asDouble();
    assertTrue(Double.isFinite(before) && Double.isFinite(after));
    assertNotEquals(before, after, "10 pretraining steps change the model");
    assertEquals(400, r.get("data").get("heldout_messages").asInt());
    assertEquals(200, r.get("data").get("dev_messages").asInt());
    assertEquals(r.get("data").get("sms_ham_messages").asInt() - 600, r.get("data").get("train_messages").asInt());

    JsonNode side = r.get("methods").get("side");
    JsonNode fzoo = r.get("methods").get("side-fzoo");
    assertEquals(18, side.get("steps").asInt());
    assertEquals(4, fzoo.get("steps").asInt());
    for (JsonNode m : List.of(side, fzoo)) {
      int perStep = m.get("loss_evaluations_per_step").asInt();
      int steps = m.get("steps").asInt();
      assertEquals((long) steps * perStep, m.get("loss_evaluations").asLong());
      assertTrue(steps * perStep <= budget && (steps + 1) * perStep > budget, "the most steps the budget allows");
      assertEquals(1, m.get("lr_grid").size());
      assertEquals(1e-2, m.get("chosen_lr").asDouble(), 1e-9);
      assertTrue(Double.isFinite(m.get("lr_grid").get(0).get("dev_loss").asDouble()));
      assertEquals(1, m.get("seeds").size());
      double fin = m.get("seeds").get(0).get("final_heldout_loss").asDouble();
      assertTrue(Double.isFinite(fin));
      assertEquals(fin, m.get("final_heldout_loss_mean").asDouble());
      assertTrue(m.get("final_heldout_loss_std").isNull(), "one seed: no sample std");
      JsonNode curve = m.get("curve");
      assertEquals(0, curve.get(0).get("forward_passes").asLong());
      assertEquals(m.get("loss_evaluations").asLong(), curve.get(curve.size() - 1).get("forward_passes").asLong());
      assertEquals(fin, curve.get(curve.size() - 1).get("heldout_loss").asDouble());
      for (int i = 0; i < curve.size(); i++) {
        assertTrue(Double.isFinite(curve.get(i).get("heldout_loss").asDouble()));
        assertEquals(curve.get(i).get("step").asLong() * perStep, curve.get(i).get("forward_passes").asLong());
        if (i > 0) {
          assertTrue(curve.get(i).get("step").asLong() > curve.get(i - 1).get("step").asLong());
        }
      }
      // Same base for every method: step 0 is the pretrained model (the side network's up-projection starts at 0).
      assertEquals(after, curve.get(0).get("heldout_loss").asDouble(), 1e-4);
    }
    assertEquals(side.get("curve").get(0).get("heldout_loss").asDouble(),
        fzoo.get("curve").get(0).get("heldout_loss").asDouble(), 1e-6);
    assertNotEquals(side.get("curve").get(0).get("heldout_loss").asDouble(), side.get("final_heldout_loss_mean").asDouble(),
        "training moved the side network");

    JsonNode t = r.get("forwards_to_target").get("side");
    assertFalse(r.get("forwards_to_target").has("full"), "mezo-full-fzoo was not run");
    double target = side.get("final_heldout_loss_mean").asDouble();
    assertEquals(target, t.get("target_loss").asDouble());
    Long mz = firstAtOrBelow(side.get("curve"), target);
    Long fz = firstAtOrBelow(fzoo.get("curve"), target);
    assertEquals(mz.longValue(), t.get("mezo_forwards_to_target").asLong(), "MeZO reaches its own final loss at the latest at the end");
    if (fz == null) {
      assertTrue(t.get("fzoo_forwards_to_target").isNull());
      assertTrue(t.get("mezo_over_fzoo").isNull());
      assertTrue(t.get("note").asText().contains("never reaches"), t.toString());
    } else {
      assertEquals(fz.longValue(), t.get("fzoo_forwards_to_target").asLong());
      if (fz > 0) {
        assertEquals(mz / (double) fz, t.get("mezo_over_fzoo").asDouble(), 1e-12);
      } else {
        assertTrue(t.get("mezo_over_fzoo").isNull());
      }
    }
  }

  private static Long firstAtOrBelow(JsonNode curve, double target) {
    for (JsonNode p : curve) {
      if (p.get("heldout_loss").asDouble() <= target) {
        return p.get("forward_passes").asLong();
      }
    }
    return null;
  }
}
