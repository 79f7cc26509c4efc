package io.pockettune.store;

/**
 * A model store that cannot be opened, read or written for a reason the user can act on (missing
 * directory, store in use, disk full, format written by another version). The message is one
 * sentence naming what is wrong and what to do.
 */
public class StoreException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  public StoreException(String message) {
    super(message);
  }

  public StoreException(String message, Throwable cause) {
    super(message, cause);
  }
}
