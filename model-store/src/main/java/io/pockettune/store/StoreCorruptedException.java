package io.pockettune.store;

/**
 * Bytes in the store that fail their checksum or do not decode (truncated value, missing step or
 * snapshot chunk). The message names the record affected.
 */
public final class StoreCorruptedException extends StoreException {
  private static final long serialVersionUID = 1L;

  public StoreCorruptedException(String message) {
    super(message);
  }

  public StoreCorruptedException(String message, Throwable cause) {
    super(message, cause);
  }
}
