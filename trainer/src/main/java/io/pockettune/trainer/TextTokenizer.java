package io.pockettune.trainer;

/** Turns text into token ids for a model. Implementations are thread-safe. */
public interface TextTokenizer {

  /**
   * @param text      text to encode
   * @param maxTokens upper bound on the result's length, special tokens included
   * @return the token ids, cut to {@code maxTokens}
   */
  long[] encode(String text, int maxTokens);

  /** @return the number of distinct ids this tokenizer can produce */
  int vocabSize();

  /** @return the text of {@code ids}, special tokens left out */
  String decode(long[] ids);
}
