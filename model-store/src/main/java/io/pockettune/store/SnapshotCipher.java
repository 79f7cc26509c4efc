package io.pockettune.store;

import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Encryption at rest of snapshot chunks (the trained values are derived from the user's text).
 * A sealed value is:
 *
 * <pre>
 *  offset  size  field
 *       0     1  marker 0xE5 (a clear chunk starts with its format version, 1)
 *       1    12  nonce, fresh from SecureRandom for every chunk
 *      13     n  the clear chunk value ({@link SnapshotCodec}), AES-256-GCM encrypted
 *    13+n    16  GCM tag
 * </pre>
 *
 * The associated data is the chunk's RocksDB key (step and chunk index) and the marker, so a chunk
 * moved to another step or position fails authentication. Keys and the other column families stay
 * in the clear.
 *
 * <p>Thread-safe: each thread uses its own {@link Cipher}.
 */
final class SnapshotCipher {
  /** First byte of a sealed chunk value. */
  static final byte MARKER = (byte) 0xE5;
  /** Bytes a sealed value has beyond its clear value. */
  static final int OVERHEAD = 1 + 12 + 16;
  private static final SecureRandom RANDOM = new SecureRandom();
  /** Encryption feeds the cipher in pieces of this size, as ingest's BatchCipher does (why: there). */
  private static final int PIECE_BYTES = 4096;

  private final SecretKeySpec key;
  private final ThreadLocal<Cipher> ciphers =
      ThreadLocal.withInitial(
          () -> {
            try {
              return Cipher.getInstance("AES/GCM/NoPadding");
            } catch (GeneralSecurityException e) {
              throw new IllegalStateException(
                  "AES/GCM/NoPadding is not available (" + e + "); use a standard JDK", e);
            }
          });

  /** @param key the 32-byte AES-256 key; copied */
  SnapshotCipher(byte[] key) {
    if (key == null || key.length != 32) {
      throw new IllegalArgumentException(
          "the encryption key has " + (key == null ? "no" : key.length)
              + " bytes but must have 32 (AES-256); pass the 32 bytes of the data directory's key");
    }
    this.key = new SecretKeySpec(key.clone(), "AES");
  }

  /** @return whether a stored chunk value is sealed */
  static boolean isSealed(byte[] value) {
    return value.length > 0 && value[0] == MARKER;
  }

  /** Seals the clear chunk {@code value} stored under {@code rowKey}. */
  byte[] seal(byte[] rowKey, byte[] value) {
    byte[] out = new byte[value.length + OVERHEAD];
    out[0] = MARKER;
    byte[] nonce = new byte[12];
    RANDOM.nextBytes(nonce);
    System.arraycopy(nonce, 0, out, 1, 12);
    try {
      Cipher c = ciphers.get();
      c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(128, nonce));
      c.updateAAD(rowKey);
      c.updateAAD(out, 0, 1);
      int in = 0;
      int at = 13;
      while (value.length - in > PIECE_BYTES) {
        at += c.update(value, in, PIECE_BYTES, out, at);
        in += PIECE_BYTES;
      }
      c.doFinal(value, in, value.length - in, out, at);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException(
          "AES-GCM encryption failed (" + e + "); this JVM's crypto provider is broken", e);
    }
    return out;
  }

  /**
   * @return the clear chunk value of a sealed one
   * @throws StoreCorruptedException if it fails authentication
   */
  byte[] open(byte[] rowKey, byte[] sealed, String what) {
    if (sealed.length < OVERHEAD || sealed[0] != MARKER) {
      throw new StoreCorruptedException(
          what + " is not an encrypted snapshot chunk: restore from an earlier snapshot and replay,"
              + " or use a backup of the data dir");
    }
    try {
      Cipher c = ciphers.get();
      c.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(128, sealed, 1, 12));
      c.updateAAD(rowKey);
      c.updateAAD(sealed, 0, 1);
      return c.doFinal(sealed, 13, sealed.length - 13);
    } catch (AEADBadTagException e) {
      throw new StoreCorruptedException(
          what + " fails authentication (damaged bytes or another key): use this data directory's"
              + " own key, or restore from an earlier snapshot and replay");
    } catch (GeneralSecurityException e) {
      throw new StoreCorruptedException(what + " cannot be decrypted (" + e + "); use a backup of the data dir");
    }
  }
}
