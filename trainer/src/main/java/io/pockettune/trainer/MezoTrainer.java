package io.pockettune.trainer;

import java.nio.FloatBuffer;
import java.util.List;

/**
 * Memory-efficient zeroth-order optimization (MeZO, Malladi et al. 2023, arXiv 2305.17333): SGD
 * whose gradient is estimated from two forward passes along a random direction z, which is
 * regenerated from a seed rather than stored. One step:
 *
 * <pre>
 *   theta += eps z            L+ = loss(theta)
 *   theta -= 2 eps z          L- = loss(theta)
 *   g = (L+ - L-) / (2 eps)   the projected gradient, one scalar
 *   theta += (eps - lr g) z   restore and update fused in one pass
 * </pre>
 *
 * So training needs the memory of inference (no gradients, no optimizer state, no activations
 * kept), and a step is fully described by (seed, g, lr, eps): the {@link StepRecord}. Because the
 * {@link PerturbationKernel}'s arithmetic is canonical, {@link #replay} of the records from the
 * base parameters performs the same three passes and reproduces the trained parameters bit for bit.
 * The third pass does not restore theta exactly before the update (float rounding); the replay
 * reproduces that rounding too, which is why it replays three passes rather than one net update.
 *
 * <p>Not thread-safe.
 */
public final class MezoTrainer {
  private final LossModel model;
  private final MezoConfig config;
  private final PerturbationKernel kernel;
  private final FloatBuffer params;
  private long step;

  /**
   * @param model     the loss model whose parameters train
   * @param config    hyperparameters
   * @param kernel    perturbation kernel (its thread count never changes results)
   * @param stepsDone steps already applied to the model's parameters (0 for a fresh run)
   */
  public MezoTrainer(LossModel model, MezoConfig config, PerturbationKernel kernel, long stepsDone) {
    this.model = model;
    this.config = config;
    this.kernel = kernel;
    this.params = model.parameters().floats();
    this.step = stepsDone;
  }

  /** @return the number of steps applied so far */
  public long stepsDone() {
    return step;
  }

  public MezoConfig config() {
    return config;
  }

  /** Takes one MeZO step on {@code batch} and returns its record. */
  public StepRecord step(TokenBatch batch) {
    long n = step + 1;
    long seed = PerturbationKernel.stepSeed(config.runSeed(), n);
    float eps = config.eps();
    float lr = config.learningRate();

    kernel.axpy(params, seed, plusAlpha(eps));
    float lossPlus = model.loss(batch).loss();
    kernel.axpy(params, seed, minusAlpha(eps));
    float lossMinus = model.loss(batch).loss();
    float g = projectedGradient(lossPlus, lossMinus, eps);
    kernel.axpy(params, seed, updateAlpha(eps, lr, g));

    step = n;
    return new StepRecord(n, seed, g, lr, eps, lossPlus, lossMinus, batch.size(), System.currentTimeMillis());
  }

  /** Re-applies a recorded step to the parameters, exactly as {@link #step} applied it. */
  public void replay(StepRecord r) {
    if (r.step() != step + 1) {
      throw new IllegalStateException("replaying step " + r.step() + " after step " + step);
    }
    kernel.axpy(params, r.seed(), plusAlpha(r.eps()));
    kernel.axpy(params, r.seed(), minusAlpha(r.eps()));
    kernel.axpy(params, r.seed(), updateAlpha(r.eps(), r.learningRate(), r.projectedGradient()));
    step = r.step();
  }

  /** Token-weighted mean loss over batches, at the current parameters, without training. */
  public double evaluate(List<TokenBatch> batches) {
    double sum = 0;
    double tokens = 0;
    for (TokenBatch b : batches) {
      LossModel.Loss l = model.loss(b);
      sum += (double) l.loss() * l.tokens();
      tokens += l.tokens();
    }
    return tokens == 0 ? Double.NaN : sum / tokens;
  }

  /**
   * A non-finite loss (overflow in a perturbed model) gives no usable direction: g = 0 makes the
   * step a plain restore, and the record says so.
   */
  static float projectedGradient(float lossPlus, float lossMinus, float eps) {
    float g = (lossPlus - lossMinus) / (2f * eps);
    return Float.isFinite(g) ? g : 0f;
  }

  static float plusAlpha(float eps) {
    return eps;
  }

  static float minusAlpha(float eps) {
    return -2f * eps;
  }

  static float updateAlpha(float eps, float lr, float g) {
    return eps - lr * g;
  }
}
