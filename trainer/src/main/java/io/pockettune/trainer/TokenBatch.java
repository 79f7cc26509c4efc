package io.pockettune.trainer;

import java.util.List;

/**
 * A padded batch of token sequences: {@code ids} and {@code mask} are row-major
 * {@code [size, length]}, padding on the right with id 0 and mask 0.
 *
 * <p>Classification objectives read two optional per-row arrays. {@code labels} holds the index of
 * each row's correct label: training and loss need it, while {@link LossModel#predict} and
 * {@link LossModel#labelProbabilities} do not, so unlabelled events can be scored.
 * {@code answerPositions} is read by prompt classification only (the position whose next-token
 * logits are read); when null, each row is answered at its last real token. Embedding
 * classification pools the whole row and ignores it. Language modelling reads neither.
 *
 * @param size            number of sequences
 * @param length          padded length of every sequence
 * @param ids             token ids
 * @param mask            1 for real tokens, 0 for padding
 * @param answerPositions per row, the position of the last prompt token, or null
 * @param labels          per row, the index of the correct label, or null
 */
public record TokenBatch(int size, int length, long[] ids, long[] mask, long[] answerPositions, long[] labels)
    implements Batch {

  public TokenBatch {
    if (size < 1 || length < 2 || ids.length != (long) size * length || mask.length != ids.length) {
      throw new IllegalArgumentException("inconsistent batch: size " + size + ", length " + length);
    }
    if ((labels != null && labels.length != size) || (answerPositions != null && answerPositions.length != size)) {
      throw new IllegalArgumentException("answer positions and labels, when given, must have one entry per row");
    }
  }

  public TokenBatch(int size, int length, long[] ids, long[] mask) {
    this(size, length, ids, mask, null, null);
  }

  /**
   * A labelled classification batch, for either classification objective: each prompt is
   * answered at its last token.
   *
   * @param prompts tokenized prompts (or texts, for embedding classification)
   * @param labels  index of the correct label per prompt
   */
  public static TokenBatch classification(List<long[]> prompts, long[] labels) {
    return of(prompts).withLabels(labels);
  }

  /**
   * @param labels index of the correct label per row
   * @return this batch with labels, answer positions at each row's last real token unless set
   */
  public TokenBatch withLabels(long[] labels) {
    long[] answers = answerPositions;
    if (answers == null) {
      answers = new long[size];
      for (int r = 0; r < size; r++) {
        for (int t = 0; t < length; t++) {
          if (mask[r * length + t] != 0) {
            answers[r] = t;
          }
        }
      }
    }
    return new TokenBatch(size, length, ids, mask, answers, labels.clone());
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
