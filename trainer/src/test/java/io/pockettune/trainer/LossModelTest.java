package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class LossModelTest {

  @Test
  void loss_atInitIsNearUniform() {
    try (LossModel model = TinyModels.tinyLm(1)) {
      TokenBatch b = TinyModels.batch("hello there", "a longer message to pad the first one");
      LossModel.Loss l = model.loss(b);
      assertEquals(Math.log(ByteTokenizer.VOCAB_SIZE), l.loss(), 0.05);
      assertEquals(b.targetTokens(), (long) l.tokens());
    }
  }

  @Test
  void loss_ignoresPadding() {
    try (LossModel model = TinyModels.tinyLm(1)) {
      ByteTokenizer tok = new ByteTokenizer();
      long[] shortSeq = tok.encode("hi mum", 48);
      long[] longSeq = tok.encode("this one is much longer than the other", 48);
      float alone = model.loss(TokenBatch.of(List.of(shortSeq))).loss();
      LossModel.Loss other = model.loss(TokenBatch.of(List.of(longSeq)));
      LossModel.Loss both = model.loss(TokenBatch.of(List.of(shortSeq, longSeq)));
      long shortTargets = shortSeq.length - 1;
      double pooled = (alone * shortTargets + other.loss() * other.tokens()) / (shortTargets + other.tokens());
      assertEquals(pooled, both.loss(), 1e-5);
    }
  }

  @Test
  void loss_seesParameterChangesInPlace() {
    try (LossModel model = TinyModels.tinyLm(1)) {
      TokenBatch b = TinyModels.batch("in place");
      float before = model.loss(b).loss();
      java.nio.FloatBuffer p = model.parameters().floats();
      for (int i = 0; i < p.capacity(); i++) {
        p.put(i, p.get(i) * 3f);
      }
      float after = model.loss(b).loss();
      assertTrue(Math.abs(after - before) > 1e-4, "before " + before + " after " + after);
    }
  }

  @Test
  void causalLm_rejectsBytesThatAreNotOnnx() {
    ModelException e = assertThrows(ModelException.class,
        () -> LossModel.causalLm("not a model".getBytes(StandardCharsets.UTF_8), TrainableSelection.all(), 1));
    assertTrue(e.getMessage().contains("not an ONNX model"), e.getMessage());
  }

  @Test
  void causalLm_rejectsSelectionMatchingNothing() {
    byte[] onnx = DecoderLmBuilder.build(TinyModels.TINY);
    ModelException e = assertThrows(ModelException.class,
        () -> LossModel.causalLm(onnx, TrainableSelection.matching("no\\.such\\.weight"), 1));
    assertTrue(e.getMessage().contains("no float initializer"), e.getMessage());
  }

  @Test
  void causalLm_trainsOnlySelectedTensors() {
    byte[] onnx = DecoderLmBuilder.build(TinyModels.TINY);
    try (LossModel model = LossModel.causalLm(onnx, TrainableSelection.matching(".*ln_.*"), 1)) {
      assertTrue(model.parameters().tensors().stream().allMatch(t -> t.name().contains("ln_")));
      assertEquals(3 * 2 * TinyModels.TINY.dModel(), model.parameters().size());
      assertEquals(Math.log(ByteTokenizer.VOCAB_SIZE), model.loss(TinyModels.batch("norms only")).loss(), 0.05);
    }
  }

  @Test
  void causalLm_missingInputIsAClearError() {
    ai.onnx.proto.OnnxMl.ModelProto m = DecoderLmBuilder.buildProto(TinyModels.TINY);
    ai.onnx.proto.OnnxMl.GraphProto.Builder g = m.getGraph().toBuilder();
    g.setInput(1, g.getInput(1).toBuilder().setName("mask_renamed"));
    byte[] onnx = m.toBuilder().setGraph(g).build().toByteArray();
    ModelException e = assertThrows(ModelException.class, () -> LossModel.causalLm(onnx, TrainableSelection.all(), 1));
    assertTrue(e.getMessage().contains("no input named 'attention_mask'"), e.getMessage());
  }

  @Test
  void causalLm_nonFloatTrainableTensorIsAClearError() {
    ai.onnx.proto.OnnxMl.ModelProto m = DecoderLmBuilder.buildProto(TinyModels.TINY);
    ai.onnx.proto.OnnxMl.GraphProto.Builder g = m.getGraph().toBuilder();
    g.addInitializer(ai.onnx.proto.OnnxMl.TensorProto.newBuilder().setName("transformer.h.0.step_count")
        .setDataType(ai.onnx.proto.OnnxMl.TensorProto.DataType.INT64.getNumber()).addDims(1).addInt64Data(3));
    byte[] onnx = m.toBuilder().setGraph(g).build().toByteArray();
    ModelException e = assertThrows(ModelException.class,
        () -> LossModel.causalLm(onnx, TrainableSelection.matching("transformer\\.h\\.0\\..*"), 1));
    assertTrue(e.getMessage().contains("not float32"), e.getMessage());
  }

  @Test
  void build_parameterCountMatchesConfig() {
    try (LossModel model = TinyModels.tinyLm(1)) {
      assertEquals(TinyModels.TINY.parameterCount(), model.parameters().size());
    }
  }

  @Test
  void build_isDeterministic() {
    assertEquals(LossModel.sha256(DecoderLmBuilder.build(TinyModels.TINY)),
        LossModel.sha256(DecoderLmBuilder.build(TinyModels.TINY)));
  }
}
