package io.pockettune.trainer;

/**
 * Hyperparameters of a MeZO run. Everything here that replay needs beyond the step records
 * (direction distribution, weight decay, dual forward) must be recorded with the run; the
 * learning rate actually used and the clipped gradient are in every {@link StepRecord}.
 *
 * @param eps          perturbation scale (MeZO's default 1e-3; 1e-2 with LoRA)
 * @param learningRate base learning rate; the schedule scales it per step
 * @param runSeed      seed from which every step's direction seed is derived
 * @param schedule     how the learning rate changes over {@code totalSteps}
 * @param totalSteps   length of the schedule (ignored by {@link Schedule#CONSTANT})
 * @param distribution distribution of the direction's entries
 * @param directions   n of n-SPSA: directions evaluated per batch (1 = plain MeZO)
 * @param weightDecay  decoupled weight decay per unit learning rate, on tensors of rank >= 2 only
 * @param gradientClip bound on |projected gradient|; 0 means no clipping
 * @param estimator    how a step estimates the gradient: MeZO's two-point estimate, or FZOO's
 *                     {@code directions} one-sided Rademacher estimates normalised by their spread
 */
public record MezoConfig(
    float eps,
    float learningRate,
    long runSeed,
    Schedule schedule,
    long totalSteps,
    PerturbationKernel.Distribution distribution,
    int directions,
    float weightDecay,
    float gradientClip,
    Estimator estimator) {

  /** Gradient estimators. */
  public enum Estimator {
    /**
     * MeZO (SPSA): one direction z per record, {@code g = (L(theta + eps z) - L(theta - eps z)) / (2 eps)},
     * update {@code -lr g z}; with {@code directions = n > 1}, n such records per batch (n-SPSA).
     */
    MEZO,
    /**
     * FZOO (Dang et al., ICLR 2026): per batch, {@code N = directions} Rademacher directions u_i
     * (seeds derived from the record's seed), one loss l_i at {@code theta + eps u_i} each and
     * one l_0 at theta (N + 1 forwards), sigma the population standard deviation of l_1..l_N,
     * update {@code theta -= lr sum_i (l_i - l_0) / (N sigma) u_i}. One record per batch, holding
     * the N coefficients.
     */
    FZOO
  }

  /** Learning-rate schedules. */
  public enum Schedule {
    CONSTANT,
    /** Linear decay from the base rate to 0 at {@code totalSteps}. */
    LINEAR,
    /** Half a cosine from the base rate to 0 at {@code totalSteps}. */
    COSINE
  }

  public MezoConfig {
    if (!(eps > 0) || !Float.isFinite(eps)) {
      throw new IllegalArgumentException("eps must be a positive number, was " + eps);
    }
    if (!(learningRate >= 0) || !Float.isFinite(learningRate)) {
      throw new IllegalArgumentException("learning rate must be a non-negative number, was " + learningRate);
    }
    if (schedule != Schedule.CONSTANT && totalSteps < 1) {
      throw new IllegalArgumentException("a " + schedule + " schedule needs the total number of steps");
    }
    if (directions < 1) {
      throw new IllegalArgumentException("directions must be at least 1, was " + directions);
    }
    if (!(weightDecay >= 0) || !(gradientClip >= 0)) {
      throw new IllegalArgumentException("weight decay and gradient clip must not be negative");
    }
    if (estimator == null) {
      estimator = Estimator.MEZO;
    }
    if (estimator == Estimator.FZOO && directions < 2) {
      throw new IllegalArgumentException("FZOO needs at least 2 directions per step (their spread normalises the step), was " + directions);
    }
  }

  /** A MeZO config (the form before estimators were configurable). */
  public MezoConfig(float eps, float learningRate, long runSeed, Schedule schedule, long totalSteps,
      PerturbationKernel.Distribution distribution, int directions, float weightDecay, float gradientClip) {
    this(eps, learningRate, runSeed, schedule, totalSteps, distribution, directions, weightDecay, gradientClip, Estimator.MEZO);
  }

  /** Plain MeZO: constant rate, Gaussian directions, one direction per batch, no decay or clipping. */
  public MezoConfig(float eps, float learningRate, long runSeed) {
    this(eps, learningRate, runSeed, Schedule.CONSTANT, 0, PerturbationKernel.Distribution.GAUSSIAN, 1, 0f, 0f);
  }

  /** FZOO with {@code n} Rademacher directions per step (the paper's default is 8). */
  public MezoConfig withFzoo(int n) {
    return new MezoConfig(eps, learningRate, runSeed, schedule, totalSteps, PerturbationKernel.Distribution.RADEMACHER, n,
        weightDecay, gradientClip, Estimator.FZOO);
  }

  /** Plain MeZO again, one direction per record. */
  public MezoConfig withMezo() {
    return new MezoConfig(eps, learningRate, runSeed, schedule, totalSteps, distribution, 1, weightDecay, gradientClip, Estimator.MEZO);
  }

  public MezoConfig withSchedule(Schedule s, long total) {
    return new MezoConfig(eps, learningRate, runSeed, s, total, distribution, directions, weightDecay, gradientClip, estimator);
  }

  public MezoConfig withDistribution(PerturbationKernel.Distribution d) {
    return new MezoConfig(eps, learningRate, runSeed, schedule, totalSteps, d, directions, weightDecay, gradientClip, estimator);
  }

  public MezoConfig withDirections(int n) {
    return new MezoConfig(eps, learningRate, runSeed, schedule, totalSteps, distribution, n, weightDecay, gradientClip, estimator);
  }

  public MezoConfig withWeightDecay(float wd) {
    return new MezoConfig(eps, learningRate, runSeed, schedule, totalSteps, distribution, directions, wd, gradientClip, estimator);
  }

  public MezoConfig withGradientClip(float clip) {
    return new MezoConfig(eps, learningRate, runSeed, schedule, totalSteps, distribution, directions, weightDecay, clip, estimator);
  }

  /** Learning rate of 1-based step {@code step} (StrictMath: the same float on every JVM). */
  public float learningRateAt(long step) {
    double progress = totalSteps <= 0 ? 0 : Math.min(1.0, (step - 1) / (double) totalSteps);
    double factor = switch (schedule) {
      case CONSTANT -> 1.0;
      case LINEAR -> 1.0 - progress;
      case COSINE -> 0.5 * (1.0 + StrictMath.cos(StrictMath.PI * progress));
    };
    return (float) (learningRate * factor);
  }
}
