package io.pockettune.trainer;

/**
 * Shape of a GPT-2-style decoder-only language model built by {@link DecoderLmBuilder}.
 *
 * @param vocabSize    number of token ids
 * @param maxPositions longest sequence the position table covers
 * @param dModel       width of the residual stream; divisible by {@code heads}
 * @param layers       number of transformer blocks
 * @param heads        attention heads per block
 * @param mlpRatio     width of the MLP relative to {@code dModel}
 * @param seed         seed of the deterministic initialization
 */
public record DecoderLmConfig(
    int vocabSize, int maxPositions, int dModel, int layers, int heads, int mlpRatio, long seed) {

  public DecoderLmConfig {
    if (vocabSize < 2 || maxPositions < 2 || dModel < 1 || layers < 1 || heads < 1 || mlpRatio < 1) {
      throw new IllegalArgumentException("model dimensions must be positive: " + this);
    }
    if (dModel % heads != 0) {
      throw new IllegalArgumentException(
          "dModel " + dModel + " is not divisible by heads " + heads + ": choose a multiple");
    }
  }

  /** The demo's model: byte-level vocabulary, 2 blocks of width 128 (about 0.45M parameters). */
  public static DecoderLmConfig demo() {
    return new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 128, 128, 2, 4, 4, 20261122L);
  }

  /** The trainer benchmark's model: byte-level, 6 blocks of width 384 (about 10.7M parameters). */
  public static DecoderLmConfig bench10m() {
    return new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 128, 384, 6, 6, 4, 20261122L);
  }

  /** GPT-2 small's shapes (124M parameters with its 50,257-token vocabulary), for memory and speed. */
  public static DecoderLmConfig gpt2Small() {
    return new DecoderLmConfig(50257, 1024, 768, 12, 12, 4, 20261122L);
  }

  /** Number of float parameters the builder creates. */
  public long parameterCount() {
    long d = dModel;
    long perLayer = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * mlpRatio * d + mlpRatio * d) + (mlpRatio * d * d + d);
    return (long) vocabSize * d + (long) maxPositions * d + layers * perLayer + 2 * d;
  }
}
