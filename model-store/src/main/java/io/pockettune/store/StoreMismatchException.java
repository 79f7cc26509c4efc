package io.pockettune.store;

/**
 * The store was created for another base model, perturbation kernel or trainable layout than the
 * run opening it: replaying its steps onto this run's model would not reproduce anything.
 */
public final class StoreMismatchException extends StoreException {
  private static final long serialVersionUID = 1L;

  public StoreMismatchException(String message) {
    super(message);
  }
}
