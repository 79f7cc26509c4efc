package io.pockettune.trainer;

import java.util.List;

/**
 * A padded batch of token sequences: {@code ids} and {@code mask} are row-major
 * {@code [size, length]}, padding on the right with id {@link ByteTokenizer#PAD} and mask 0.
 *
 * @param size   number of sequences
 * @param length padded length of every sequence
 * @param ids    token ids
 * @param mask   1 for real tokens, 0 for padding
 */
public record TokenBatch(int size, int length, long[] ids, long[] mask) {

  public TokenBatch {
    if (size < 1 || length < 2 || ids.length != (long) size * length || mask.length != ids.length) {
      throw new IllegalArgumentException("inconsistent batch: size " + size + ", length " + length);
    }
  }

  /** Pads the given sequences to the longest of them. */
  public static TokenBatch of(List<long[]> sequences) {
    if (sequences.isEmpty()) {
      throw new IllegalArgumentException("a batch needs at least one sequence");
    }
    int length = 2;
    for (long[] s : sequences) {
      length = Math.max(length, s.length);
    }
    int size = sequences.size();
    long[] ids = new long[size * length];
    long[] mask = new long[size * length];
    for (int r = 0; r < size; r++) {
      long[] s = sequences.get(r);
      System.arraycopy(s, 0, ids, r * length, s.length);
      java.util.Arrays.fill(mask, r * length, r * length + s.length, 1L);
    }
    return new TokenBatch(size, length, ids, mask);
  }

  /** @return the number of predicted tokens: real tokens that have a real token before them */
  public long targetTokens() {
    long n = 0;
    for (int r = 0; r < size; r++) {
      for (int t = 1; t < length; t++) {
        n += mask[r * length + t];
      }
    }
    return n;
  }
}
