package io.pockettune.trainer;

import java.nio.charset.StandardCharsets;

/**
 * The default tokenizer: one token per UTF-8 byte, so any text in any script is representable and
 * no vocabulary file is needed. Ids 0..2 are special ({@link #PAD}, {@link #BOS}, {@link #EOS});
 * byte {@code b} is id {@code b + 3}.
 *
 * <p>Thread-safe (stateless).
 */
public final class ByteTokenizer implements TextTokenizer {
  public static final int PAD = 0;
  public static final int BOS = 1;
  public static final int EOS = 2;
  public static final int VOCAB_SIZE = 256 + 3;

  /**
   * @param text      text to encode
   * @param maxTokens upper bound on the result's length, BOS and EOS included (at least 2)
   * @return BOS, the text's bytes, EOS; the bytes cut so the whole fits {@code maxTokens}
   */
  @Override
  public long[] encode(String text, int maxTokens) {
    if (maxTokens < 2) {
      throw new IllegalArgumentException("maxTokens must be at least 2, was " + maxTokens);
    }
    byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
    int n = Math.min(bytes.length, maxTokens - 2);
    long[] ids = new long[n + 2];
    ids[0] = BOS;
    for (int i = 0; i < n; i++) {
      ids[i + 1] = (bytes[i] & 0xFF) + 3;
    }
    ids[n + 1] = EOS;
    return ids;
  }

  @Override
  public int vocabSize() {
    return VOCAB_SIZE;
  }

  /** @return the text of the byte tokens among {@code ids}; special ids are skipped */
  @Override
  public String decode(long[] ids) {
    byte[] out = new byte[ids.length];
    int n = 0;
    for (long id : ids) {
      if (id >= 3 && id < VOCAB_SIZE) {
        out[n++] = (byte) (id - 3);
      }
    }
    return new String(out, 0, n, StandardCharsets.UTF_8);
  }
}
