package io.pockettune.ingest;

import java.nio.ByteBuffer;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Arrays;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Encryption at rest of record batches: the one place where a batch's bytes are sealed on their
 * way into a segment file and opened on their way out of one ({@link LogSegment} for appends,
 * recovery and reads, {@link LogSnapshot} for read-only views).
 *
 * <p>A sealed batch keeps the batch framing, so recovery and the header walks work unchanged:
 *
 * <pre>
 *  position      size  field
 *         0         h  the plaintext batch's header (h = 29 for format 1, 43 for format 2) in the
 *                      clear, except batchLength = plaintext batchLength + {@link #OVERHEAD} and
 *                      crc = 0 (the GCM tag authenticates the whole frame instead)
 *         h        12  nonce, fresh from SecureRandom for every seal
 *      h+12         n  the records section, AES-256-GCM encrypted (n = plaintext size - h)
 *    h+12+n        16  GCM tag
 * </pre>
 *
 * <p>The associated data is the stored header, bytes [0, h): base offset, length, magic, record
 * count, first timestamp and the producer fields are authenticated though readable. So a sealed
 * batch is exactly {@link #OVERHEAD} bytes longer than its plaintext, whatever the records hold:
 * rewriting a batch in place (open, change a record keeping the size, seal) keeps its length. A
 * batch that fails authentication (damaged bytes, another key) is reported as a
 * {@link RecordBatch.CorruptBatchException}, so recovery cuts the log there exactly as at a bad CRC.
 *
 * <p>Thread-safe: each thread uses its own {@link Cipher}.
 */
final class BatchCipher {

    /** Bytes a sealed batch has beyond its plaintext: nonce and tag. */
    static final int OVERHEAD = 12 + 16;
    /** The key size: AES-256. */
    static final int KEY_BYTES = 32;
    private static final int NONCE_BYTES = 12;
    private static final int TAG_BITS = 128;
    private static final SecureRandom RANDOM = new SecureRandom();
    /**
     * Encryption feeds the cipher in pieces of this size: JDK 17 runs AES-GCM's intrinsics only in
     * callers the JIT has compiled, which many small calls reach within megabytes and a few large
     * ones reach late (measured: about 40 MB/s for single calls of 400 KB, 1.7 GB/s in 4 KiB
     * pieces once warm). The output is the same either way.
     */
    static final int PIECE_BYTES = 4096;

    private final SecretKeySpec key;
    private final ThreadLocal<Cipher> ciphers = ThreadLocal.withInitial(BatchCipher::newCipher);

    /** @param key 32 bytes; copied */
    BatchCipher(byte[] key) {
        checkKey(key);
        this.key = new SecretKeySpec(key.clone(), "AES");
    }

    /** @throws IllegalArgumentException if {@code key} is not 32 bytes */
    static void checkKey(byte[] key) {
        if (key == null || key.length != KEY_BYTES) {
            throw new IllegalArgumentException("the encryption key has " + (key == null ? "no" : key.length)
                    + " bytes but must have " + KEY_BYTES + " (AES-256); pass the 32 bytes of the data directory's key");
        }
    }

    /** @return the stored size of a batch of {@code plainSize} bytes */
    static int sealedSize(int plainSize) {
        return plainSize + OVERHEAD;
    }

    /**
     * Seals one plaintext batch (base offset already stamped).
     *
     * @param plain a buffer whose remaining bytes are exactly one encoded batch (not consumed)
     * @return a new buffer positioned at 0 holding the sealed batch
     */
    ByteBuffer seal(ByteBuffer plain) {
        ByteBuffer p = plain.slice();
        int h = RecordBatch.recordsOffset(p.get(RecordBatch.MAGIC_OFFSET));
        ByteBuffer out = ByteBuffer.allocate(sealedSize(p.remaining()));
        out.put(p.duplicate().limit(h));
        out.putInt(RecordBatch.LENGTH_OFFSET, p.remaining() + OVERHEAD - RecordBatch.LOG_OVERHEAD);
        out.putInt(RecordBatch.CRC_OFFSET, 0);
        byte[] nonce = new byte[NONCE_BYTES];
        RANDOM.nextBytes(nonce);
        out.put(nonce);
        try {
            Cipher c = ciphers.get();
            c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, nonce));
            c.updateAAD(out.array(), 0, h);
            ByteBuffer in = p.position(h);
            while (in.remaining() > PIECE_BYTES) {
                c.update(in.duplicate().limit(in.position() + PIECE_BYTES), out);
                in.position(in.position() + PIECE_BYTES);
            }
            c.doFinal(in, out);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM encryption failed (" + e + "); this JVM's crypto provider is broken", e);
        }
        assert !out.hasRemaining() : "sealed size differs from sealedSize";
        return out.flip();
    }

    /**
     * Authenticates and decrypts one sealed batch into its plaintext batch, CRC included, so that
     * {@link RecordBatch#verify} and {@link RecordBatch#decode} take it as written.
     *
     * @param stored a buffer whose remaining bytes are exactly one sealed batch (not consumed)
     * @return a new buffer positioned at 0 holding the plaintext batch
     * @throws RecordBatch.CorruptBatchException if the frame is malformed or fails authentication
     */
    ByteBuffer open(ByteBuffer stored) throws RecordBatch.CorruptBatchException {
        ByteBuffer s = stored.slice();
        if (s.remaining() < RecordBatch.HEADER_SIZE + OVERHEAD) {
            throw new RecordBatch.CorruptBatchException("encrypted batch of " + s.remaining()
                    + " bytes is shorter than the smallest encrypted batch");
        }
        byte magic = s.get(RecordBatch.MAGIC_OFFSET);
        if (magic != RecordBatch.MAGIC && magic != RecordBatch.PRODUCER_MAGIC) {
            throw new RecordBatch.CorruptBatchException("unknown batch format version " + magic);
        }
        int h = RecordBatch.recordsOffset(magic);
        int length = s.getInt(RecordBatch.LENGTH_OFFSET);
        if (length != s.remaining() - RecordBatch.LOG_OVERHEAD || s.remaining() < h + OVERHEAD) {
            throw new RecordBatch.CorruptBatchException("encrypted batch length " + length + " does not match the "
                    + (s.remaining() - RecordBatch.LOG_OVERHEAD) + " bytes present");
        }
        ByteBuffer out = ByteBuffer.allocate(s.remaining() - OVERHEAD);
        out.put(s.duplicate().limit(h));
        out.putInt(RecordBatch.LENGTH_OFFSET, length - OVERHEAD);
        byte[] header = new byte[h];
        s.get(0, header);
        try {
            Cipher c = ciphers.get();
            c.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(TAG_BITS, s.array(), s.arrayOffset() + h, NONCE_BYTES));
            c.updateAAD(header);
            c.doFinal(s.duplicate().position(h + NONCE_BYTES), out);
        } catch (AEADBadTagException e) {
            throw new RecordBatch.CorruptBatchException("encrypted batch fails authentication (damaged bytes or another key)");
        } catch (GeneralSecurityException e) {
            throw new RecordBatch.CorruptBatchException("encrypted batch cannot be decrypted (" + e + ")");
        }
        out.flip();
        RecordBatch.stampCrc(out);
        return out;
    }

    /**
     * @return a value that identifies {@code key} without revealing it: HMAC-SHA256 of a constant
     */
    static byte[] keyCheck(byte[] key) {
        checkKey(key);
        try {
            javax.crypto.Mac mac = javax.crypto.Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal("PocketTune key check v1".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("HmacSHA256 is not available (" + e + "); use a standard JDK", e);
        }
    }

    /** @return whether two key checks are equal, in constant time */
    static boolean sameCheck(byte[] a, byte[] b) {
        return java.security.MessageDigest.isEqual(a, b);
    }

    private static Cipher newCipher() {
        try {
            return Cipher.getInstance("AES/GCM/NoPadding");
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES/GCM/NoPadding is not available (" + e + "); use a standard JDK", e);
        }
    }

    @Override
    public String toString() {
        return "BatchCipher[AES-256-GCM]";
    }

    static byte[] copy(byte[] key) {
        return key == null ? null : Arrays.copyOf(key, key.length);
    }
}
