package io.pockettune.trainer;

import java.util.List;

/**
 * A padded batch of token sequences: {@code ids} and {@code mask} are row-major
 * {@code [size, length]}, padding on the right with id 0 and mask 0. For prompt classification,
 * {@code answerPositions} gives per row the position whose next-token logits are read, and
 * {@code labels} the index of the correct label word; both are null for language modelling.
 *
 * @param size            number of sequences
 * @param length          padded length of every sequence
 * @param ids             token ids
 * @param mask            1 for real tokens, 0 for padding
 * @param answerPositions per row, the position of the last prompt token (classification only)
 * @param labels          per row, the index of the correct label word (classification only)
 */
public record TokenBatch(int size, int length, long[] ids, long[] mask, long[] answerPositions, long[] labels)
    implements Batch {

  public TokenBatch {
    if (size < 1 || length < 2 || ids.length != (long) size * length || mask.length != ids.length) {
      throw new IllegalArgumentException("inconsistent batch: size " + size + ", length " + length);
    }
    if ((answerPositions == null) != (labels == null)
        || (labels != null && (labels.length != size || answerPositions.length != size))) {
      throw new IllegalArgumentException("answer positions and labels must both be given, one per row");
    }
  }

  public TokenBatch(int size, int length, long[] ids, long[] mask) {
    this(size, length, ids, mask, null, null);
  }

  /**
   * A classification batch: each prompt is answered at its last token.
   *
   * @param prompts tokenized prompts
   * @param labels  index of the correct label word per prompt
   */
  public static TokenBatch classification(List<long[]> prompts, long[] labels) {
    TokenBatch b = of(prompts);
    long[] answers = new long[prompts.size()];
    for (int r = 0; r < answers.length; r++) {
      answers[r] = prompts.get(r).length - 1;
    }
    return new TokenBatch(b.size(), b.length(), b.ids(), b.mask(), answers, labels.clone());
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
