package io.pockettune.trainer;

/**
 * Hyperparameters of a MeZO run.
 *
 * @param eps          perturbation scale (MeZO's default 1e-3)
 * @param learningRate constant learning rate
 * @param runSeed      seed from which every step's direction seed is derived
 */
public record MezoConfig(float eps, float learningRate, long runSeed) {

  public MezoConfig {
    if (!(eps > 0) || !Float.isFinite(eps)) {
      throw new IllegalArgumentException("eps must be a positive number, was " + eps);
    }
    if (!(learningRate >= 0) || !Float.isFinite(learningRate)) {
      throw new IllegalArgumentException("learning rate must be a non-negative number, was " + learningRate);
    }
  }
}
