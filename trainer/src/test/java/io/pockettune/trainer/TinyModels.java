package io.pockettune.trainer;

import java.util.ArrayList;
import java.util.List;

/** Small models and batches shared by the trainer's tests. */
final class TinyModels {
  static final DecoderLmConfig TINY = new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 48, 32, 1, 2, 2, 7L);

  private TinyModels() {}

  static LossModel tinyLm(int threads) {
    return LossModel.causalLm(DecoderLmBuilder.build(TINY), TrainableSelection.all(), threads);
  }

  static TokenBatch batch(String... texts) {
    ByteTokenizer tok = new ByteTokenizer();
    List<long[]> seqs = new ArrayList<>();
    for (String t : texts) {
      seqs.add(tok.encode(t, TINY.maxPositions()));
    }
    return TokenBatch.of(seqs);
  }

  /**
   * Adds 0.3 z to every parameter. The builder's std-0.02 weights make greedy decoding repeat one
   * token whatever the context, which would hide a generator that forgets where it is.
   */
  static void loud(ParameterSet parameters) {
    float[] v = parameters.toArray();
    for (int i = 0; i < v.length; i++) {
      v[i] += 0.3f * PerturbationKernel.z(1L, i);
    }
    parameters.load(v);
  }
}
