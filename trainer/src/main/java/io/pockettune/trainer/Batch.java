package io.pockettune.trainer;

/** Inputs of one forward pass: token sequences, or named tensors for models with their own loss. */
public sealed interface Batch permits TokenBatch, TensorBatch {
  /** @return the number of examples */
  int size();
}
