package io.pockettune.trainer;

/**
 * Everything needed to replay one MeZO step: the direction is regenerated from {@code seed}, and the
 * update applied was {@code -lr * projectedGradient * z(seed)}. The losses, batch size and time are
 * provenance; they do not take part in replay.
 *
 * @param step              1-based number of the step in the run
 * @param seed              seed of the perturbation direction z
 * @param projectedGradient (L+ - L-) / (2 eps), the directional derivative along z
 * @param learningRate      learning rate used for this step
 * @param eps               perturbation scale
 * @param lossPlus          loss at theta + eps z
 * @param lossMinus         loss at theta - eps z
 * @param batchSize         number of examples in the batch
 * @param timeMillis        wall-clock time the step finished, epoch milliseconds
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
    long timeMillis) {}
