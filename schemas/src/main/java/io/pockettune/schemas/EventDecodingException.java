package io.pockettune.schemas;

import java.util.OptionalLong;

/**
 * Thrown when bytes that should hold one event cannot be turned back into a record: the payload is
 * shorter than the single-object header, does not start with the marker {@code C3 01}, names a
 * writer schema the {@link SchemaStore} does not know, has a body that is corrupt, or was written
 * with a schema that cannot be resolved to the requested type.
 *
 * <p>The message is one sentence naming what is wrong and what to do. The pipeline sends such
 * events to the dead-letter topic with this message as the reason and goes on.
 */
public final class EventDecodingException extends RuntimeException {

  private final boolean hasFingerprint;
  private final long fingerprint;

  EventDecodingException(String message) {
    super(message);
    this.hasFingerprint = false;
    this.fingerprint = 0L;
  }

  EventDecodingException(String message, long fingerprint, Throwable cause) {
    super(message, cause);
    this.hasFingerprint = true;
    this.fingerprint = fingerprint;
  }

  /**
   * @return the writer schema fingerprint named in the payload's header, or empty when the header
   *     itself was unreadable (payload too short or without the single-object marker)
   */
  public OptionalLong fingerprint() {
    return hasFingerprint ? OptionalLong.of(fingerprint) : OptionalLong.empty();
  }
}
