package io.pockettune.store;

/**
 * A write to the model store failed because the disk is full ({@code ENOSPC}). Nothing of that
 * write is committed, and the store stays usable: the same write can be tried again once space
 * is freed (the store first asks RocksDB to leave the read-only state such an error puts it in).
 * A running service pauses training on it and retries by itself.
 */
public class StoreFullException extends StoreException {
  private static final long serialVersionUID = 1L;

  public StoreFullException(String message, Throwable cause) {
    super(message, cause);
  }
}
