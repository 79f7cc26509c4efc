package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/** Models the trainer must refuse before training, each in one sentence, and inputs it must feed. */
class ModelChecksTest {
  private static final Objective TWO_PROMPTS = new Objective.EmbeddingClassification(
      Objective.Pooling.MEAN, List.of(new long[] {1, 5, 2}, new long[] {1, 6, 2}), 10f);

  private static byte[] tinyWith(UnaryOperator<OnnxMl.GraphProto.Builder> edit) {
    OnnxMl.ModelProto m = DecoderLmBuilder.buildProto(TinyModels.TINY);
    return m.toBuilder().setGraph(edit.apply(m.getGraph().toBuilder())).build().toByteArray();
  }

  private static String refusal(byte[] onnx, Objective objective, TrainableSelection selection) {
    return assertThrows(ModelException.class, () -> LossModel.open(onnx, objective, selection, 1)).getMessage();
  }

  @Test
  void open_withoutLogitsIsRefused() {
    byte[] encoderLike = tinyWith(g -> g.setOutput(0, g.getOutput(0).toBuilder().setName("hidden")));
    assertEquals("the model has no output named 'logits': this objective needs a language model's logits,"
        + " so choose embedding-classification for an encoder",
        refusal(encoderLike, new Objective.CausalLm(), TrainableSelection.all()));
    assertEquals("the model has no output named 'logits': prompt classification reads a language model's logits,"
        + " so choose embedding-classification for an encoder",
        refusal(encoderLike, new Objective.PromptClassification(new long[] {4, 5}), TrainableSelection.all()));
  }

  @Test
  void open_embeddingClassificationWithoutLastHiddenStateIsRefused() {
    assertEquals("the model has no output named 'last_hidden_state': embedding classification pools an encoder's"
        + " last_hidden_state, so choose causal-lm or prompt-classification for a decoder",
        refusal(DecoderLmBuilder.build(TinyModels.TINY), TWO_PROMPTS, TrainableSelection.all()));
  }

  @Test
  void open_quantizedTrainableIsRefused() {
    byte[] onnx = tinyWith(g -> g.addInitializer(OnnxMl.TensorProto.newBuilder().setName("transformer.h.0.q_weight")
        .setDataType(DataType.INT8.getNumber()).addDims(2).addDims(2)
        .setRawData(com.google.protobuf.ByteString.copyFrom(new byte[4]))));
    assertEquals("trainable tensor transformer.h.0.q_weight is quantized (INT8), and quantized weights cannot train:"
        + " choose float tensors (for example norms or LoRA on float weights) or use a float32 export",
        refusal(onnx, new Objective.CausalLm(), TrainableSelection.matching("transformer\\.h\\.0\\..*")));
    try (LossModel all = LossModel.open(onnx, new Objective.CausalLm(), TrainableSelection.all(), 1)) {
      assertEquals(TinyModels.TINY.parameterCount(), all.parameters().size(), "'all' passes over quantized tensors");
    }
  }

  @Test
  void open_unknownRequiredInputIsRefused() {
    byte[] onnx = tinyWith(g -> g.addInput(GraphBuilder.valueInfo("pixel_values", DataType.FLOAT.getNumber(), "batch", 3L)));
    assertEquals("the model has an input named 'pixel_values' that PocketTune does not know how to feed (it feeds"
        + " input_ids, attention_mask, token_type_ids, position_ids, past_key_values.N.key, past_key_values.N.value,"
        + " use_cache_branch): export the model without it",
        refusal(onnx, new Objective.CausalLm(), TrainableSelection.all()));
  }

  @Test
  void loss_tokenIdsBeyondTheEmbeddingTableAreRefused() {
    try (LossModel m = TinyModels.tinyLm(1)) {
      assertEquals(ByteTokenizer.VOCAB_SIZE, m.embeddingRows());
      TokenBatch tooLarge = TokenBatch.of(List.of(new long[] {1, 300, 2}));
      ModelException e = assertThrows(ModelException.class, () -> m.loss(tooLarge));
      assertEquals("token id 300 is beyond the model's 259 embedding rows: use the tokenizer that belongs to the model", e.getMessage());
    }
  }

  @Test
  void open_feedsTokenTypesAndCacheBranchItDoesNotGet() {
    TokenBatch batch = TinyModels.batch("fed inside the graph", "two rows");
    byte[] hfLike = tinyWith(g -> g
        .addInput(GraphBuilder.valueInfo("token_type_ids", DataType.INT64.getNumber(), "batch", "sequence"))
        .addInput(GraphBuilder.valueInfo("use_cache_branch", DataType.BOOL.getNumber(), 1L)));
    try (LossModel plain = TinyModels.tinyLm(1);
        LossModel fed = LossModel.open(hfLike, new Objective.CausalLm(), TrainableSelection.all(), 1)) {
      assertEquals(plain.loss(batch).loss(), fed.loss(batch).loss(), 0f);
    }
  }

  @Test
  void promptClassifier_predictsWithoutLabels() {
    ByteTokenizer tok = new ByteTokenizer();
    List<long[]> prompts = List.of(tok.encode("good. It was", 48), tok.encode("a much longer bad one. It was", 48));
    try (LossModel m = LossModel.open(DecoderLmBuilder.build(TinyModels.TINY),
        new Objective.PromptClassification(new long[] {'t' + 3, 'g' + 3}), TrainableSelection.all(), 1)) {
      TokenBatch unlabelled = TokenBatch.of(prompts);
      TokenBatch labelled = TokenBatch.classification(prompts, new long[] {1, 0});
      assertArrayEquals(m.predict(labelled), m.predict(unlabelled), "rows are answered at their last real token");
      float[][] p = m.labelProbabilities(unlabelled);
      assertEquals(1f, p[0][0] + p[0][1], 1e-6f);
      assertEquals(p[1][1] > p[1][0] ? 1 : 0, m.predict(unlabelled)[1]);
      assertThrows(IllegalArgumentException.class, () -> m.loss(unlabelled));
      assertEquals(2, m.labelCount());
      assertEquals(new Objective.PromptClassification(new long[] {'t' + 3, 'g' + 3}), m.objective());
    }
  }

  @Test
  void open_loraOnQuantizedWeightsOnlyIsRefused() {
    byte[] onnx = tinyWith(g -> g.addInitializer(OnnxMl.TensorProto.newBuilder().setName("q.weight")
        .setDataType(DataType.UINT8.getNumber()).addDims(2).addDims(2)
        .setRawData(com.google.protobuf.ByteString.copyFrom(new byte[4]))));
    assertEquals("the LoRA targets (q\\.weight) match only quantized weights, which LoRA here cannot adapt:"
        + " target float MatMul weights or use a float32 export",
        refusal(onnx, new Objective.CausalLm(), TrainableSelection.lora(2, 4f, "q\\.weight")));
  }

  @Test
  void open_positionIdsRespectLeftPadding() {
    long[] prompt = new ByteTokenizer().encode("left or right. It was", 48);
    int pad = 5;
    int n = prompt.length + pad;
    long[] leftIds = new long[n];
    long[] leftMask = new long[n];
    System.arraycopy(prompt, 0, leftIds, pad, prompt.length);
    java.util.Arrays.fill(leftMask, pad, n, 1L);
    TokenBatch left = new TokenBatch(1, n, leftIds, leftMask, new long[] {n - 1}, null);
    TokenBatch alone = TokenBatch.of(List.of(prompt));
    byte[] withPast = DecoderLmBuilder.build(TinyModels.TINY, DecoderLmBuilder.Signature.WITH_PAST);
    try (LossModel m = LossModel.open(withPast, new Objective.PromptClassification(new long[] {'t' + 3, 'g' + 3, 'o' + 3}),
        TrainableSelection.all(), 1)) {
      float[] expected = m.labelProbabilities(alone)[0];
      float[] padded = m.labelProbabilities(left)[0];
      for (int j = 0; j < 3; j++) {
        assertEquals(expected[j], padded[j], 1e-5f, "label " + j + ": positions count real tokens only");
      }
    }
  }

  @Test
  void objective_comparesArraysByContentAndCopiesThem() {
    long[] words = {4, 5};
    Objective.PromptClassification p = new Objective.PromptClassification(words);
    words[0] = 9;
    assertEquals(new Objective.PromptClassification(new long[] {4, 5}), p);
    assertEquals(new Objective.PromptClassification(new long[] {4, 5}).hashCode(), p.hashCode());
    p.labelTokens()[1] = 9;
    assertEquals(5, p.labelTokens()[1]);
    assertEquals(TWO_PROMPTS, new Objective.EmbeddingClassification(
        Objective.Pooling.MEAN, List.of(new long[] {1, 5, 2}, new long[] {1, 6, 2}), 10f));
    assertEquals(0, new Objective.CausalLm().labelCount());
    assertEquals(2, TWO_PROMPTS.labelCount());
    assertThrows(IllegalArgumentException.class, () -> new Objective.PromptClassification(new long[] {4}));
  }

  @Test
  void build_demoModelBytesAreStable() {
    // Data directories are bound to the base model's hash: the demo decoder must never change.
    assertEquals("9e32d17f6b8a89efbc984300ae2bde8f6c0e05fc38baa65d0471de42f9fa27a9",
        LossModel.sha256(DecoderLmBuilder.build(DecoderLmConfig.demo())));
  }
}
