package io.pockettune.trainer;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.common.utils.Time;

/**
 * Memory-efficient zeroth-order optimization (MeZO, Malladi et al. 2023, arXiv 2305.17333): SGD
 * whose gradient is estimated from two forward passes along a random direction z, which is
 * regenerated from a seed rather than stored. One step:
 *
 * <pre>
 *   theta += eps z            L+ = loss(theta)
 *   theta -= 2 eps z          L- = loss(theta)
 *   g = (L+ - L-) / (2 eps)   the projected gradient, one scalar (clipped if configured)
 *   theta += (eps - lr g) z   restore and update fused in one pass
 *   theta *= 1 - lr wd        on tensors of rank >= 2, in the same pass (decoupled weight decay)
 * </pre>
 *
 * So training needs the memory of inference (no gradients, no optimizer state, no activations
 * kept), and a step is fully described by (seed, g, lr, eps): the {@link StepRecord}. Because the
 * {@link PerturbationKernel}'s arithmetic is canonical, {@link #replay} of the records from the
 * base parameters performs the same three passes and reproduces the trained parameters bit for bit.
 * The third pass does not restore theta exactly before the update (float rounding); the replay
 * reproduces that rounding too, which is why it replays three passes rather than one net update.
 *
 * <h2>n-SPSA</h2>
 * With {@code directions = n > 1}, a batch is used for n directions in turn, each a full step with
 * learning rate {@code lr / n} applied as soon as its gradient is known (each direction is measured
 * at the parameters the previous one left). The batch's update is thus the average of n directional
 * estimates, as in n-SPSA, except that the evaluation point moves by O(lr) between directions; in
 * exchange every direction is an ordinary, independently replayable step record.
 *
 * <h2>Side networks: perturbed copies, one backbone pass</h2>
 * When the model's trainable values sit beside a frozen backbone ({@link LossModel#sharesBackbone()}),
 * a step never perturbs them in place: it writes theta + eps z and theta - eps z as two copies,
 * the model evaluates both over one backbone pass ({@link LossModel#losses}), and the update
 * {@code theta = theta * keep + (-lr g) z} is one pass. Replay of such a record is that one pass.
 *
 * <h2>FZOO</h2>
 * With {@link MezoConfig.Estimator#FZOO}, a batch is one step of N = {@code directions} Rademacher
 * directions u_i (seeds {@link StepRecord#directionSeed}), evaluated as N + 1 copies (theta and
 * theta + eps u_i; for a side network in one side pass over one backbone pass, otherwise one
 * forward each through a scratch copy): sigma is the population standard deviation of l_1..l_N,
 * c_i = (l_i - l_0) / (N sigma), and the update is N passes {@code theta += (-lr c_i) u_i}, the
 * first also applying weight decay. The record holds the c_i, so replay repeats those N passes
 * exactly. A batch whose losses do not spread (sigma = 0) or are not finite updates nothing, and
 * its coefficients say so (all 0). Gradient clipping does not apply to FZOO (its normalisation by
 * sigma bounds the step already).
 *
 * <p>The time stamped on each {@link StepRecord} (provenance only; replay never reads it) comes from
 * a Kafka {@link Time}, the project's one time seam, so tests pin it with a fixed clock.
 *
 * <p>Not thread-safe.
 */
public final class MezoTrainer {
  private final LossModel model;
  private final MezoConfig config;
  private final PerturbationKernel kernel;
  private final FloatBuffer params;
  private final PerturbationKernel.Ranges decayed;
  private final Time time;
  private long step;

  /**
   * @param model     the loss model whose parameters train
   * @param config    hyperparameters
   * @param kernel    perturbation kernel (its thread count never changes results)
   * @param stepsDone steps already applied to the model's parameters (0 for a fresh run)
   */
  public MezoTrainer(LossModel model, MezoConfig config, PerturbationKernel kernel, long stepsDone) {
    this(model, config, kernel, stepsDone, Time.SYSTEM);
  }

  /**
   * Like {@link #MezoTrainer(LossModel, MezoConfig, PerturbationKernel, long)}, with the clock whose
   * {@link Time#milliseconds()} stamps each step record.
   */
  public MezoTrainer(LossModel model, MezoConfig config, PerturbationKernel kernel, long stepsDone, Time time) {
    this.time = time;
    this.model = model;
    this.config = config;
    this.kernel = kernel;
    this.params = model.parameters().floats();
    this.decayed = config.weightDecay() > 0 ? model.parameters().decayRanges() : PerturbationKernel.Ranges.NONE;
    this.step = stepsDone;
  }

  /** @return the number of steps (directions) applied so far */
  public long stepsDone() {
    return step;
  }

  public MezoConfig config() {
    return config;
  }

  /** Takes one MeZO step on {@code batch} (a config with one direction) and returns its record. */
  public StepRecord step(Batch batch) {
    if (config.estimator() == MezoConfig.Estimator.FZOO) {
      return fzoo(batch);
    }
    if (config.directions() != 1) {
      throw new IllegalStateException("this run uses " + config.directions() + " directions per batch: call steps(batch)");
    }
    return direction(batch, 1);
  }

  /** Takes the configured number of directions on {@code batch}; one record per direction. */
  public List<StepRecord> steps(Batch batch) {
    if (config.estimator() == MezoConfig.Estimator.FZOO) {
      return List.of(fzoo(batch));
    }
    int n = config.directions();
    List<StepRecord> records = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      records.add(direction(batch, n));
    }
    return records;
  }

  private StepRecord direction(Batch batch, int directions) {
    long n = step + 1;
    long seed = PerturbationKernel.stepSeed(config.runSeed(), n);
    float eps = config.eps();
    float lr = config.learningRateAt(n) / directions;
    PerturbationKernel.Distribution d = config.distribution();
    if (model.sharesBackbone()) {
      float[] l = model.losses(batch, 2, (m, target) -> {
        target.put(0, params, 0, params.capacity());
        kernel.axpy(target, seed, m == 0 ? eps : -eps, d, PerturbationKernel.Ranges.NONE, 1f);
      });
      float g = projectedGradient(l[0], l[1], eps, config.gradientClip());
      kernel.axpy(params, seed, onlyUpdateAlpha(lr, g), d, decayed, keep(lr));
      step = n;
      return new StepRecord(n, seed, g, lr, eps, l[0], l[1], batch.size(), time.milliseconds());
    }

    kernel.axpy(params, seed, plusAlpha(eps), d, PerturbationKernel.Ranges.NONE, 1f);
    float lossPlus = model.loss(batch).loss();
    kernel.axpy(params, seed, minusAlpha(eps), d, PerturbationKernel.Ranges.NONE, 1f);
    float lossMinus = model.loss(batch).loss();
    float g = projectedGradient(lossPlus, lossMinus, eps, config.gradientClip());
    kernel.axpy(params, seed, updateAlpha(eps, lr, g), d, decayed, keep(lr));

    step = n;
    return new StepRecord(n, seed, g, lr, eps, lossPlus, lossMinus, batch.size(), time.milliseconds());
  }

  /**
   * Re-applies a recorded step to the parameters, exactly as {@link #step} applied it. The run's
   * distribution and weight decay come from this trainer's config, which must be the recorded one.
   */
  public void replay(StepRecord r) {
    if (r.step() != step + 1) {
      throw new IllegalStateException("replaying step " + r.step() + " after step " + step);
    }
    if (r.fzoo()) {
      applyFzoo(r.seed(), r.learningRate(), r.coefficients());
      step = r.step();
      return;
    }
    PerturbationKernel.Distribution d = config.distribution();
    if (model.sharesBackbone()) {
      kernel.axpy(params, r.seed(), onlyUpdateAlpha(r.learningRate(), r.projectedGradient()), d, decayed, keep(r.learningRate()));
      step = r.step();
      return;
    }
    kernel.axpy(params, r.seed(), plusAlpha(r.eps()), d, PerturbationKernel.Ranges.NONE, 1f);
    kernel.axpy(params, r.seed(), minusAlpha(r.eps()), d, PerturbationKernel.Ranges.NONE, 1f);
    kernel.axpy(params, r.seed(), updateAlpha(r.eps(), r.learningRate(), r.projectedGradient()), d, decayed,
        keep(r.learningRate()));
    step = r.step();
  }

  /** One FZOO step: N + 1 losses (theta, then theta + eps u_i), N update passes; one record. */
  private StepRecord fzoo(Batch batch) {
    long n = step + 1;
    long seed = PerturbationKernel.stepSeed(config.runSeed(), n);
    float eps = config.eps();
    float lr = config.learningRateAt(n);
    int directions = config.directions();
    float[] l = model.losses(batch, directions + 1, (m, target) -> {
      target.put(0, params, 0, params.capacity());
      if (m > 0) {
        kernel.axpy(target, StepRecord.directionSeed(seed, m), eps, PerturbationKernel.Distribution.RADEMACHER,
            PerturbationKernel.Ranges.NONE, 1f);
      }
    });
    float[] c = fzooCoefficients(l);
    applyFzoo(seed, lr, c);
    step = n;
    return new StepRecord(n, seed, 0f, lr, eps, l[0], l[0], batch.size(), time.milliseconds(), c);
  }

  /**
   * FZOO's coefficients from the losses {@code l_0, l_1..l_N}: {@code (l_i - l_0) / (N sigma)},
   * sigma the population standard deviation of l_1..l_N (in double, rounded once to float); all
   * zero when sigma is 0 or any loss is not finite.
   */
  static float[] fzooCoefficients(float[] losses) {
    int n = losses.length - 1;
    float[] c = new float[n];
    double mean = 0;
    for (float x : losses) {
      if (!Float.isFinite(x)) {
        return c;
      }
    }
    for (int i = 1; i <= n; i++) {
      mean += losses[i];
    }
    mean /= n;
    double variance = 0;
    for (int i = 1; i <= n; i++) {
      variance += (losses[i] - mean) * (losses[i] - mean);
    }
    double sigma = Math.sqrt(variance / n);
    if (!(sigma > 0)) {
      return c;
    }
    for (int i = 1; i <= n; i++) {
      c[i - 1] = (float) ((losses[i] - (double) losses[0]) / (n * sigma));
    }
    return c;
  }

  /** {@code theta += (-lr c_i) u_i} for each direction in turn; weight decay with the first. */
  private void applyFzoo(long seed, float lr, float[] c) {
    for (int i = 1; i <= c.length; i++) {
      boolean first = i == 1;
      kernel.axpy(params, StepRecord.directionSeed(seed, i), onlyUpdateAlpha(lr, c[i - 1]),
          PerturbationKernel.Distribution.RADEMACHER, first ? decayed : PerturbationKernel.Ranges.NONE, first ? keep(lr) : 1f);
    }
  }

  /** Token-weighted mean loss over batches, at the current parameters, without training. */
  public double evaluate(List<? extends Batch> batches) {
    double sum = 0;
    double tokens = 0;
    for (Batch b : batches) {
      LossModel.Loss l = model.loss(b);
      sum += (double) l.loss() * l.tokens();
      tokens += l.tokens();
    }
    return tokens == 0 ? Double.NaN : sum / tokens;
  }

  private float keep(float lr) {
    return decayed == PerturbationKernel.Ranges.NONE ? 1f : 1f - lr * config.weightDecay();
  }

  /**
   * A non-finite loss (overflow in a perturbed model) gives no usable direction: g = 0 makes the
   * step a plain restore, and the record says so. With {@code clip > 0}, |g| is bounded by it.
   */
  static float projectedGradient(float lossPlus, float lossMinus, float eps, float clip) {
    float g = (lossPlus - lossMinus) / (2f * eps);
    if (!Float.isFinite(g)) {
      return 0f;
    }
    return clip > 0 ? Math.max(-clip, Math.min(clip, g)) : g;
  }

  static float plusAlpha(float eps) {
    return eps;
  }

  static float minusAlpha(float eps) {
    return -2f * eps;
  }

  /** The update of a step that never perturbed theta in place: {@code -lr g}. */
  static float onlyUpdateAlpha(float lr, float g) {
    return -lr * g;
  }

  static float updateAlpha(float eps, float lr, float g) {
    return eps - lr * g;
  }
}
