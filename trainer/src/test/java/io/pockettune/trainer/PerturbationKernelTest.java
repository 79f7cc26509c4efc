package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

class PerturbationKernelTest {

  private static FloatBuffer buffer(int n, long seed) {
    FloatBuffer b = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder()).asFloatBuffer();
    java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
    for (int i = 0; i < n; i++) {
      b.put(i, (float) r.nextDouble(-1, 1));
    }
    return b;
  }

  private static int[] bits(FloatBuffer b) {
    int[] out = new int[b.capacity()];
    for (int i = 0; i < out.length; i++) {
      out[i] = Float.floatToRawIntBits(b.get(i));
    }
    return out;
  }

  @ParameterizedTest
  @EnumSource(PerturbationKernel.Distribution.class)
  void axpy_matchesScalarReference(PerturbationKernel.Distribution d) {
    int n = PerturbationKernel.CHUNK * 2 + 7; // chunks plus a ragged tail
    FloatBuffer b = buffer(n, 1);
    float[] expected = new float[n];
    long seed = 0x1234_5678_9ABCL;
    float alpha = 1e-3f;
    float keep = 0.75f;
    PerturbationKernel.Ranges decayed = new PerturbationKernel.Ranges(new int[] {10, 70_000}, new int[] {500, 131_000});
    for (int i = 0; i < n; i++) {
      expected[i] = b.get(i) + alpha * PerturbationKernel.z(seed, i, d);
      if ((i >= 10 && i < 500) || (i >= 70_000 && i < 131_000)) {
        expected[i] *= keep;
      }
    }
    try (PerturbationKernel k = new PerturbationKernel(2)) {
      k.axpy(b, seed, alpha, d, decayed, keep);
    }
    for (int i = 0; i < n; i++) {
      assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(b.get(i)), "index " + i);
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {2, 3, 5})
  void axpy_threadCountDoesNotChangeBits(int threads) {
    int n = PerturbationKernel.CHUNK * 5 + 3;
    FloatBuffer single = buffer(n, 2);
    FloatBuffer multi = buffer(n, 2);
    try (PerturbationKernel one = new PerturbationKernel(1);
        PerturbationKernel many = new PerturbationKernel(threads)) {
      for (long seed = 1; seed <= 3; seed++) {
        one.axpy(single, seed, 0.01f);
        many.axpy(multi, seed, 0.01f);
        one.axpy(single, seed, -0.02f);
        many.axpy(multi, seed, -0.02f);
      }
    }
    assertArrayEquals(bits(single), bits(multi));
  }

  @Test
  void z_isStandardNormalInItsMoments() {
    int n = 2_000_000;
    double sum = 0;
    double sumSq = 0;
    double sum4 = 0;
    long seed = PerturbationKernel.stepSeed(42, 1);
    for (int i = 0; i < n; i++) {
      double z = PerturbationKernel.z(seed, i);
      sum += z;
      sumSq += z * z;
      sum4 += z * z * z * z;
    }
    double mean = sum / n;
    double var = sumSq / n - mean * mean;
    assertEquals(0.0, mean, 0.005);
    assertEquals(1.0, var, 0.005);
    assertEquals(3.0, sum4 / n, 0.05); // Gaussian kurtosis, unlike Rademacher (1) or uniform (1.8)
  }

  @Test
  void z_rademacherIsBalancedSigns() {
    long seed = PerturbationKernel.stepSeed(3, 9);
    int n = 1_000_000;
    double sum = 0;
    double lag1 = 0;
    for (int i = 0; i < n; i++) {
      float z = PerturbationKernel.z(seed, i, PerturbationKernel.Distribution.RADEMACHER);
      assertTrue(z == 1f || z == -1f);
      sum += z;
      lag1 += z * PerturbationKernel.z(seed, i + 1, PerturbationKernel.Distribution.RADEMACHER);
    }
    assertEquals(0.0, sum / n, 0.005);
    assertEquals(0.0, lag1 / n, 0.005);
  }

  @Test
  void fill_writesTheDirection() {
    FloatBuffer b = buffer(1000, 4);
    try (PerturbationKernel k = new PerturbationKernel(1)) {
      k.fill(b, 77L, PerturbationKernel.Distribution.GAUSSIAN);
    }
    for (int i = 0; i < 1000; i++) {
      assertEquals(PerturbationKernel.z(77L, i), b.get(i));
    }
  }

  @Test
  void z_neighbouringIndicesAreUncorrelated() {
    long seed = PerturbationKernel.stepSeed(7, 3);
    int n = 1_000_000;
    double lag1 = 0;
    double lag4 = 0;
    for (int i = 0; i < n; i++) {
      lag1 += PerturbationKernel.z(seed, i) * PerturbationKernel.z(seed, i + 1);
      lag4 += PerturbationKernel.z(seed, i) * PerturbationKernel.z(seed, i + 4);
    }
    assertEquals(0.0, lag1 / n, 0.005);
    assertEquals(0.0, lag4 / n, 0.005);
  }

  @Test
  void stepSeed_distinctPerStepAndRun() {
    assertNotEquals(PerturbationKernel.stepSeed(1, 1), PerturbationKernel.stepSeed(1, 2));
    assertNotEquals(PerturbationKernel.stepSeed(1, 1), PerturbationKernel.stepSeed(2, 1));
    assertEquals(PerturbationKernel.stepSeed(9, 77), PerturbationKernel.stepSeed(9, 77));
  }

  @Test
  void inverseNormalCdf_knownQuantiles() {
    assertEquals(0.0, PerturbationKernel.inverseNormalCdf(0.5), 1e-12);
    assertEquals(1.959963985, PerturbationKernel.inverseNormalCdf(0.975), 1e-7);
    assertEquals(-2.326347874, PerturbationKernel.inverseNormalCdf(0.01), 1e-7);
    assertTrue(PerturbationKernel.inverseNormalCdf(1e-6) < -4.7);
  }
}
