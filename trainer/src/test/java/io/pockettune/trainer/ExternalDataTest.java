package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.TensorProto;
import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ExternalDataTest {
  @TempDir Path dir;

  /** Saves the tiny model with every weight in one external file, as exporters do past 2 GB. */
  private Path saveWithExternalData() throws Exception {
    OnnxMl.ModelProto model = DecoderLmBuilder.buildProto(TinyModels.TINY);
    OnnxMl.GraphProto.Builder graph = model.getGraph().toBuilder();
    ByteArrayOutputStream weights = new ByteArrayOutputStream();
    for (int i = 0; i < graph.getInitializerCount(); i++) {
      TensorProto t = graph.getInitializer(i);
      long offset = weights.size();
      t.getRawData().writeTo(weights);
      graph.setInitializer(i, t.toBuilder().clearRawData()
          .setDataLocation(TensorProto.DataLocation.EXTERNAL)
          .addExternalData(OnnxMl.StringStringEntryProto.newBuilder().setKey("location").setValue("weights.bin"))
          .addExternalData(OnnxMl.StringStringEntryProto.newBuilder().setKey("offset").setValue(Long.toString(offset)))
          .addExternalData(OnnxMl.StringStringEntryProto.newBuilder().setKey("length").setValue(Integer.toString(t.getRawData().size()))));
    }
    Files.write(dir.resolve("weights.bin"), weights.toByteArray());
    Path file = dir.resolve("model.onnx");
    Files.write(file, model.toBuilder().setGraph(graph).build().toByteArray());
    assertTrue(Files.size(file) < 10_000, "weights are outside the model file");
    return file;
  }

  @Test
  void causalLm_readsExternalDataForTrainableAndFrozenWeights() throws Exception {
    Path file = saveWithExternalData();
    TokenBatch batch = TinyModels.batch("weights live beside the model");
    float expected;
    try (LossModel inMemory = TinyModels.tinyLm(1)) {
      expected = inMemory.loss(batch).loss();
    }
    try (LossModel all = LossModel.causalLm(file, TrainableSelection.all(), 1)) {
      assertEquals(expected, all.loss(batch).loss(), 1e-6f);
      assertEquals(TinyModels.TINY.parameterCount(), all.parameters().size());
    }
    try (LossModel lora = LossModel.causalLm(file, TrainableSelection.lora(), 1)) {
      assertEquals(expected, lora.loss(batch).loss(), 1e-6f, "frozen weights are read from the external file by ONNX Runtime");
    }
  }

  @Test
  void generator_readsExternalDataLikeTheInMemoryModel() throws Exception {
    Path file = saveWithExternalData();
    long[] prompt = new ByteTokenizer().encode("weights live", TinyModels.TINY.maxPositions());
    for (TrainableSelection selection : new TrainableSelection[] {TrainableSelection.all(), TrainableSelection.lora()}) {
      try (Generator external = Generator.open(file, selection, 1);
          Generator inMemory = Generator.open(DecoderLmBuilder.build(TinyModels.TINY), selection, 1)) {
        assertEquals(inMemory.parameters().digest(), external.parameters().digest());
        TinyModels.loud(external.parameters());
        TinyModels.loud(inMemory.parameters());
        Generator.Options greedy = Generator.Options.greedy(8);
        assertArrayEquals(inMemory.generate(prompt, greedy, t -> false).tokens(), external.generate(prompt, greedy, t -> false).tokens(),
            selection.description());
      }
    }
  }

  @Test
  void causalLm_missingWeightsFileIsAClearError() throws Exception {
    Path file = saveWithExternalData();
    Files.delete(dir.resolve("weights.bin"));
    ModelException e = assertThrows(ModelException.class, () -> LossModel.causalLm(file, TrainableSelection.all(), 1));
    assertTrue(e.getMessage().contains("weights.bin"), e.getMessage());
  }

  @Test
  void causalLm_fromBytesRefusesExternalData() throws Exception {
    byte[] bytes = Files.readAllBytes(saveWithExternalData());
    ModelException e = assertThrows(ModelException.class, () -> LossModel.causalLm(bytes, TrainableSelection.all(), 1));
    assertTrue(e.getMessage().contains("load the model from its file path"), e.getMessage());
  }
}
