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
  /** Version of the generator and the arithmetic; recorded with every run. */
  public static final int VERSION = 1;

  /** Parameters per work unit; a multiple of 4 so no hash group spans two chunks. */
  static final int CHUNK = 1 << 16;

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

  /** {@code params[i] += alpha * z(seed, i)} for every i. */
  public void axpy(FloatBuffer params, long seed, float alpha) {
    int n = params.capacity();
    int chunks = (n + CHUNK - 1) / CHUNK;
    if (pool == null || chunks == 1) {
      for (int c = 0; c < chunks; c++) {
        axpyRange(params, seed, alpha, c * CHUNK, Math.min(n, (c + 1) * CHUNK));
      }
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
      futures.add(pool.submit(() -> axpyRange(params, seed, alpha, from, to)));
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

  /** The direction's value at index i (reference form of what {@link #axpy} computes). */
  public static float z(long seed, long i) {
    long h = mix(seed + (i >>> 2) * GOLDEN);
    return TABLE[(int) (h >>> ((i & 3) * 16)) & 0xFFFF];
  }

  /** Seed of step {@code step} of a run: distinct, well-mixed seeds from one run seed. */
  public static long stepSeed(long runSeed, long step) {
    return mix(runSeed ^ mix(step * GOLDEN + 0x632BE59BD9B4E019L));
  }

  private static void axpyRange(FloatBuffer p, long seed, float alpha, int from, int to) {
    int i = from;
    int groupEnd = to & ~3;
    long counter = seed + (long) (from >>> 2) * GOLDEN;
    for (; i < groupEnd; i += 4, counter += GOLDEN) {
      long h = mix(counter);
      p.put(i, p.get(i) + alpha * TABLE[(int) h & 0xFFFF]);
      p.put(i + 1, p.get(i + 1) + alpha * TABLE[(int) (h >>> 16) & 0xFFFF]);
      p.put(i + 2, p.get(i + 2) + alpha * TABLE[(int) (h >>> 32) & 0xFFFF]);
      p.put(i + 3, p.get(i + 3) + alpha * TABLE[(int) (h >>> 48) & 0xFFFF]);
    }
    for (; i < to; i++) {
      p.put(i, p.get(i) + alpha * z(seed, i));
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
