package io.pockettune.trainer;

import java.util.Arrays;

/**
 * Everything needed to replay one step. A MeZO record's direction is regenerated from {@code
 * seed}, and the update applied was {@code -lr * projectedGradient * z(seed)}. An FZOO record
 * ({@link MezoConfig.Estimator#FZOO}) holds one coefficient c_i per direction instead: the
 * update was {@code -lr * sum_i c_i * u_i}, u_i regenerated from {@link #directionSeed(long, int)
 * directionSeed(seed, i)}; its {@code projectedGradient} is 0 and both losses are the unperturbed
 * l_0. The losses, batch size and time are provenance; they do not take part in replay.
 *
 * @param step              1-based number of the step in the run
 * @param seed              seed of the perturbation direction z (FZOO: from which the N seeds derive)
 * @param projectedGradient (L+ - L-) / (2 eps), the directional derivative along z
 * @param learningRate      learning rate used for this step
 * @param eps               perturbation scale
 * @param lossPlus          loss at theta + eps z
 * @param lossMinus         loss at theta - eps z
 * @param batchSize         number of examples in the batch
 * @param timeMillis        wall-clock time the step finished, epoch milliseconds
 * @param coefficients      FZOO's (l_i - l_0) / (N sigma) per direction, or null for a MeZO step
 */
public record StepRecord(
    long step,
    long seed,
    float projectedGradient,
    float learningRate,
    float eps,
    float lossPlus,
    float lossMinus,
    int batchSize,
    long timeMillis,
    float[] coefficients) {

  public StepRecord {
    coefficients = coefficients == null ? null : coefficients.clone();
  }

  /** A MeZO step's record. */
  public StepRecord(long step, long seed, float projectedGradient, float learningRate, float eps, float lossPlus,
      float lossMinus, int batchSize, long timeMillis) {
    this(step, seed, projectedGradient, learningRate, eps, lossPlus, lossMinus, batchSize, timeMillis, null);
  }

  @Override
  public float[] coefficients() {
    return coefficients == null ? null : coefficients.clone();
  }

  /** @return true for an FZOO record (it holds coefficients) */
  public boolean fzoo() {
    return coefficients != null;
  }

  /** The seed of FZOO direction {@code i} (1-based) of a step whose record seed is {@code seed}. */
  public static long directionSeed(long seed, int i) {
    return PerturbationKernel.stepSeed(seed, i);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof StepRecord r && step == r.step && seed == r.seed
        && Float.floatToRawIntBits(projectedGradient) == Float.floatToRawIntBits(r.projectedGradient)
        && Float.floatToRawIntBits(learningRate) == Float.floatToRawIntBits(r.learningRate)
        && Float.floatToRawIntBits(eps) == Float.floatToRawIntBits(r.eps)
        && Float.floatToRawIntBits(lossPlus) == Float.floatToRawIntBits(r.lossPlus)
        && Float.floatToRawIntBits(lossMinus) == Float.floatToRawIntBits(r.lossMinus)
        && batchSize == r.batchSize && timeMillis == r.timeMillis && Arrays.equals(coefficients, r.coefficients);
  }

  @Override
  public int hashCode() {
    return Long.hashCode(step) * 31 + Long.hashCode(seed) * 17 + Float.hashCode(projectedGradient)
        + Arrays.hashCode(coefficients);
  }

  @Override
  public String toString() {
    return "StepRecord[step=" + step + ", seed=" + seed + ", g=" + projectedGradient + ", lr=" + learningRate
        + ", eps=" + eps + ", L+=" + lossPlus + ", L-=" + lossMinus + ", batch=" + batchSize + ", time=" + timeMillis
        + (coefficients == null ? "" : ", coefficients=" + Arrays.toString(coefficients)) + "]";
  }
}
