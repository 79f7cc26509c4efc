package io.pockettune.store;

import java.util.Objects;

/**
 * What a step trajectory is only meaningful against. Replaying (seed, g) pairs reproduces a model
 * only on the same base weights, the same trainable tensors in the same order, and the same
 * perturbation kernel (generator and arithmetic), so a store refuses to be opened by a run that
 * differs in any of these. The run config (learning rate, batching, objective...) may change from
 * one run to the next: the store keeps the latest and records every change with the step it took
 * effect at.
 *
 * @param baseModelHash   digest of the base model's weights, not blank
 * @param kernelVersion   version of the perturbation kernel, at least 0
 * @param trainableLayout names and shapes of the trainable tensors, in buffer order
 * @param runConfig       the run's configuration as text (e.g. JSON); may be empty
 */
public record RunIdentity(
    String baseModelHash, int kernelVersion, String trainableLayout, String runConfig) {

  public RunIdentity {
    Objects.requireNonNull(baseModelHash, "baseModelHash");
    Objects.requireNonNull(trainableLayout, "trainableLayout");
    Objects.requireNonNull(runConfig, "runConfig");
    if (baseModelHash.isBlank()) {
      throw new IllegalArgumentException("baseModelHash must not be blank");
    }
    if (kernelVersion < 0) {
      throw new IllegalArgumentException("kernelVersion must be at least 0, was " + kernelVersion);
    }
  }

  /** @return this identity with another run config */
  RunIdentity withRunConfig(String newRunConfig) {
    return new RunIdentity(baseModelHash, kernelVersion, trainableLayout, newRunConfig);
  }
}
