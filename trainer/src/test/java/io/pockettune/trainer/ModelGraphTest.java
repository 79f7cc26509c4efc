package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

class ModelGraphTest {
  private static final DecoderLmConfig C = TinyModels.TINY;

  @Test
  void read_withPastDecoder(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("model.onnx");
    Files.write(file, DecoderLmBuilder.build(C, DecoderLmBuilder.Signature.WITH_PAST));
    ModelGraph g = ModelGraph.read(file);
    assertEquals(ModelGraph.Kind.DECODER, g.kind());
    assertEquals(List.of("input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value"),
        g.inputs().stream().map(ModelGraph.Port::name).toList());
    assertEquals(new ModelGraph.Port("past_key_values.0.key", "FLOAT", List.of("batch", "2", "past_sequence", "16")), g.inputs().get(3));
    assertEquals(List.of("logits", "present.0.key", "present.0.value"), g.outputs().stream().map(ModelGraph.Port::name).toList());
    assertEquals(OptionalInt.of(C.layers()), g.layers());
    assertEquals(OptionalInt.of(C.heads()), g.heads());
    assertEquals(C.vocabSize(), g.embeddingRows());
  }

  @Test
  void parameterCounts_groupsTheDecodersWeights() {
    ModelGraph g = ModelGraph.of(DecoderLmBuilder.build(C));
    long d = C.dModel();
    long ff = d * C.mlpRatio();
    assertEquals(C.parameterCount(), g.parameters());
    assertEquals(C.parameterCount(), g.floatParameters());
    assertEquals(0, g.quantizedParameters());
    assertEquals(C.vocabSize() * d, g.parameterCounts().get(ModelGraph.ParameterGroup.TOKEN_EMBEDDING));
    assertEquals(C.layers() * (d * 3 * d + 3 * d + d * d + d), g.parameterCounts().get(ModelGraph.ParameterGroup.ATTENTION));
    assertEquals(C.layers() * (d * ff + ff + ff * d + d), g.parameterCounts().get(ModelGraph.ParameterGroup.MLP));
    assertEquals((2L * C.layers() + 1) * 2 * d, g.parameterCounts().get(ModelGraph.ParameterGroup.NORM));
    assertEquals(C.maxPositions() * d, g.parameterCounts().get(ModelGraph.ParameterGroup.OTHER), "the position table");
    assertEquals(OptionalInt.empty(), g.layers());
  }

  static Stream<TrainableSelection> selections() {
    return Stream.of(TrainableSelection.all(), TrainableSelection.biasesAndNorms(), TrainableSelection.matching(".*ln_.*"),
        TrainableSelection.lora(), TrainableSelection.lora(2, 4f, ".*mlp.*"));
  }

  @ParameterizedTest
  @MethodSource("selections")
  void trainableCount_equalsWhatLossModelTrains(TrainableSelection selection) {
    byte[] onnx = DecoderLmBuilder.build(C, DecoderLmBuilder.Signature.WITH_PAST);
    try (LossModel m = LossModel.open(onnx, new Objective.CausalLm(), selection, 1)) {
      assertEquals(m.parameters().size(), ModelGraph.of(onnx).trainableCount(selection));
    }
  }

  @Test
  void trainableCount_refusesWhatLossModelRefuses() {
    ModelException e = assertThrows(ModelException.class,
        () -> ModelGraph.of(DecoderLmBuilder.build(C)).trainableCount(TrainableSelection.matching("nothing")));
    assertTrue(e.getMessage().startsWith("no float initializer of the model matches"), e.getMessage());
  }

  @Test
  void read_notOnnxIsAClearError(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("notes.txt");
    Files.writeString(file, "not a model");
    ModelException e = assertThrows(ModelException.class, () -> ModelGraph.read(file));
    assertTrue(e.getMessage().contains("not an ONNX model"), e.getMessage());
  }
}
