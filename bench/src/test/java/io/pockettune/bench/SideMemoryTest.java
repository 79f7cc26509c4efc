package io.pockettune.bench;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * The memory proof: peak RSS while training a side network (MeZO, the backbone cache at
 * its default bound) stays within 10% of inference on the same model and batch (bench10m, 16 x
 * 128 tokens), each measured in a JVM of its own with identical settings.
 */
class SideMemoryTest {
  @Test
  void sideTraining_peakRssWithinTenPercentOfInference() throws Exception {
    long side = MemoryProbe.inChild("train-side", "bench10m", 16, 128, 2);
    long infer = MemoryProbe.inChild("infer", "bench10m", 16, 128, 2);
    double ratio = side / (double) infer;
    System.out.printf("side training %d kB, inference %d kB, ratio %.3f%n", side, infer, ratio);
    assertTrue(ratio <= 1.10, "side training peak RSS " + side + " kB against inference " + infer + " kB: " + ratio);
  }
}
