package io.pockettune.trainer;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Applies {@code theta[i] += alpha * z(seed, i)} over a flat parameter buffer, where z is a random
 * direction that is never stored: it is regenerated from the seed on every pass.
 *
 * <h2>The generator</h2>
 * z is <em>counter-based</em>: the value at index i is a pure function of (seed, i), so any chunk of
 * the buffer can be perturbed independently, on any thread, in any order, with bit-identical
 * results. Four consecutive parameters share one 64-bit hash, the SplitMix64 finalizer applied to
 * {@code seed + (i / 4) * golden}. Each 16-bit quarter of the hash indexes a table of 65,536
 * Gaussian quantiles, {@code Phi^-1((j + 0.5) / 65536)} rescaled to unit variance. This is an
 * inverse-CDF sampler with 16-bit resolution: its marginal distribution is the standard normal
 * truncated at about 4.3 sigma and quantized, which MeZO does not mind (it needs E[z z^T] = I,
 * which the rescaled table gives up to float rounding), and it costs one multiply-xorshift hash per four
 * parameters plus four L2-resident loads, instead of a logarithm and a square root per value.
 *
 * <h2>Canonical arithmetic</h2>
 * Each pass computes {@code theta + alpha * z} in float32 with Java's strict IEEE semantics (no
 * fused multiply-add), and the table is built with {@link StrictMath}. The same (seed, alpha)
 * sequence therefore produces the same bits on every JVM, machine and thread count: this is what
 * makes replaying a (seed, g) trajectory reproduce the trained parameters exactly. Any change to
 * the generator or the arithmetic must bump {@link #VERSION}; a store refuses to replay a run
 * recorded under another version.
 *
 * <p>Thread-safe: passes on disjoint buffers may run concurrently; the worker pool is shared.
 */
public final class PerturbationKernel implements AutoCloseable {
  /** Distribution of the direction's entries. */
  public enum Distribution {
    /** Standard normal, from the quantile table (the MeZO default). */
    GAUSSIAN,
    /** +1 or -1 with equal probability, one bit of the hash per parameter. */
    RADEMACHER
  }

  /**
   * Parameter ranges {@code [starts[k], ends[k])}, sorted and disjoint, that an update pass also
   * multiplies by a decay factor (decoupled weight decay).
   */
  public record Ranges(int[] starts, int[] ends) {
    public static final Ranges NONE = new Ranges(new int[0], new int[0]);
  }

  /** Version of the generator and the arithmetic; recorded with every run. */
  public static final int VERSION = 1;

  /** Parameters per work unit; a multiple of 4 so no hash group spans two chunks. */
  static final int CHUNK = 1 << 16;

  /** Floats per block of the inner loop; a multiple of 4, dividing {@link #CHUNK}. */
  private static final int BLOCK = 2048;

  private static final long GOLDEN = 0x9E3779B97F4A7C15L;
  private static final float[] TABLE = gaussianTable();

  private final int threads;
  private final ExecutorService pool;

  /** @param threads worker threads for a pass (1 runs on the caller's thread) */
  public PerturbationKernel(int threads) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be at least 1, was " + threads);
    }
    this.threads = threads;
    this.pool =
        threads == 1
            ? null
            : Executors.newFixedThreadPool(
                threads,
                r -> {
                  Thread t = new Thread(r, "pockettune-perturb");
                  t.setDaemon(true);
                  return t;
                });
  }

  public int threads() {
    return threads;
  }

  /** {@code params[i] += alpha * z(seed, i)} for every i, with Gaussian z. */
  public void axpy(FloatBuffer params, long seed, float alpha) {
    axpy(params, seed, alpha, Distribution.GAUSSIAN, Ranges.NONE, 1f);
  }

  /**
   * {@code params[i] = params[i] + alpha * z(seed, i)}, then, for i inside {@code decayed},
   * {@code params[i] = params[i] * keep}; one pass over memory.
   */
  public void axpy(FloatBuffer params, long seed, float alpha, Distribution distribution, Ranges decayed, float keep) {
    int n = params.capacity();
    int chunks = (n + CHUNK - 1) / CHUNK;
    if (pool == null || chunks == 1) {
      axpyRange(params, seed, alpha, distribution, decayed, keep, 0, n);
      return;
    }
    List<Future<?>> futures = new ArrayList<>(threads);
    int perThread = (chunks + threads - 1) / threads;
    for (int t = 0; t < threads; t++) {
      int from = t * perThread * CHUNK;
      int to = Math.min(n, (t + 1) * perThread * CHUNK);
      if (from >= to) {
        break;
      }
      futures.add(pool.submit(() -> axpyRange(params, seed, alpha, distribution, decayed, keep, from, to)));
    }
    for (Future<?> f : futures) {
      try {
        f.get();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted during a perturbation pass", e);
      } catch (ExecutionException e) {
        throw new IllegalStateException("perturbation pass failed", e.getCause());
      }
    }
  }

  /** Writes z(seed, i) itself into {@code out} (for graphs that take the direction as an input). */
  public void fill(FloatBuffer out, long seed, Distribution distribution) {
    int n = out.capacity();
    for (int i = 0; i < n; i++) {
      out.put(i, 0f);
    }
    axpy(out, seed, 1f, distribution, Ranges.NONE, 1f);
  }

  /** The Gaussian direction's value at index i (reference form of what {@link #axpy} computes). */
  public static float z(long seed, long i) {
    long h = mix(seed + (i >>> 2) * GOLDEN);
    return TABLE[(int) (h >>> ((i & 3) * 16)) & 0xFFFF];
  }

  /** The direction's value at index i for either distribution. */
  public static float z(long seed, long i, Distribution distribution) {
    if (distribution == Distribution.GAUSSIAN) {
      return z(seed, i);
    }
    long h = mix(seed + (i >>> 6) * GOLDEN);
    return ((h >>> (i & 63)) & 1L) == 0 ? 1f : -1f;
  }

  /** Seed of step {@code step} of a run: distinct, well-mixed seeds from one run seed. */
  public static long stepSeed(long runSeed, long step) {
    return mix(runSeed ^ mix(step * GOLDEN + 0x632BE59BD9B4E019L));
  }

  /**
   * Works through a range in blocks: copy the block out of the direct buffer (one bulk copy), update
   * it in a plain array loop free of per-element buffer checks, apply decay to the parts of the
   * block inside decayed ranges, copy it back. Chunk and block boundaries are multiples of 64, so no
   * hash group (4 Gaussian or 64 Rademacher values) is ever split.
   */
  private static void axpyRange(FloatBuffer p, long seed, float alpha, Distribution distribution,
      Ranges decayed, float keep, int from, int to) {
    float[] block = new float[BLOCK];
    for (int start = from; start < to; start += BLOCK) {
      int len = Math.min(BLOCK, to - start);
      p.get(start, block, 0, len);
      if (distribution == Distribution.GAUSSIAN) {
        gaussianBlock(block, len, seed, alpha, start);
      } else {
        rademacherBlock(block, len, seed, alpha, start);
      }
      if (keep != 1f) {
        decayBlock(block, start, len, decayed, keep);
      }
      p.put(start, block, 0, len);
    }
  }

  private static void gaussianBlock(float[] block, int len, long seed, float alpha, int start) {
    int groups = len & ~3;
    long counter = seed + (long) (start >>> 2) * GOLDEN;
    for (int j = 0; j < groups; j += 4, counter += GOLDEN) {
      long h = mix(counter);
      block[j] += alpha * TABLE[(int) h & 0xFFFF];
      block[j + 1] += alpha * TABLE[(int) (h >>> 16) & 0xFFFF];
      block[j + 2] += alpha * TABLE[(int) (h >>> 32) & 0xFFFF];
      block[j + 3] += alpha * TABLE[(int) (h >>> 48) & 0xFFFF];
    }
    for (int j = groups; j < len; j++) {
      block[j] += alpha * z(seed, start + j);
    }
  }

  private static void rademacherBlock(float[] block, int len, long seed, float alpha, int start) {
    float minus = -alpha;
    for (int g = 0; g < len; g += 64) {
      long h = mix(seed + (long) ((start + g) >>> 6) * GOLDEN);
      int end = Math.min(64, len - g);
      for (int b = 0; b < end; b++) {
        block[g + b] += ((h >>> b) & 1L) == 0 ? alpha : minus;
      }
    }
  }

  private static void decayBlock(float[] block, int start, int len, Ranges decayed, float keep) {
    int end = start + len;
    for (int k = 0; k < decayed.starts().length; k++) {
      int from = Math.max(start, decayed.starts()[k]);
      int to = Math.min(end, decayed.ends()[k]);
      for (int i = from; i < to; i++) {
        block[i - start] *= keep;
      }
    }
  }

  /** SplitMix64's output function (Stafford's variant 13). */
  static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  private static float[] gaussianTable() {
    int n = 1 << 16;
    double[] q = new double[n];
    double sumSq = 0;
    for (int j = 0; j < n; j++) {
      q[j] = inverseNormalCdf((j + 0.5) / n);
      sumSq += q[j] * q[j];
    }
    double scale = 1.0 / StrictMath.sqrt(sumSq / n);
    float[] table = new float[n];
    for (int j = 0; j < n; j++) {
      table[j] = (float) (q[j] * scale);
    }
    return table;
  }

  /** Acklam's rational approximation of the normal quantile (relative error below 1.2e-9). */
  static double inverseNormalCdf(double p) {
    final double[] a = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
        1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    final double[] b = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
        6.680131188771972e+01, -1.328068155288572e+01};
    final double[] c = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
        -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    final double[] d = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
        3.754408661907416e+00};
    double low = 0.02425;
    if (p < low) {
      double q = StrictMath.sqrt(-2 * StrictMath.log(p));
      return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5])
          / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    if (p > 1 - low) {
      return -inverseNormalCdf(1 - p);
    }
    double q = p - 0.5;
    double r = q * q;
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }

  @Override
  public void close() {
    if (pool != null) {
      pool.shutdownNow();
    }
  }
}
