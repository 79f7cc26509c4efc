package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.LongBuffer;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class ModelExportTest {
  private static final TokenBatch BATCH =
      TinyModels.batch("see you at the cafe at 6?", "ok running late, 10 min", "lol");

  @Test
  void withTrainedValues_plainOnnxRuntimeGivesTrainerLoss() throws OrtException {
    byte[] base = DecoderLmBuilder.build(TinyModels.TINY);
    try (LossModel model = LossModel.causalLm(base, TrainableSelection.all(), 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      float baseLoss = model.loss(BATCH).loss();
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 5e-2f, 4L), kernel, 0);
      for (int i = 0; i < 20; i++) {
        trainer.step(BATCH);
      }
      float trainedLoss = model.loss(BATCH).loss();
      assertNotEquals(baseLoss, trainedLoss);

      byte[] exported = ModelExport.withTrainedValues(base, model.parameters(), Map.of("step", "20"));
      assertEquals(ModelExport.outputs(base), ModelExport.outputs(exported));

      // Our loss head on the exported file, nothing else trained: the very same loss, bit for bit.
      try (LossModel again = LossModel.causalLm(exported, TrainableSelection.all(), 1)) {
        assertEquals(model.parameters().digest(), again.parameters().digest());
        assertEquals(Float.floatToRawIntBits(trainedLoss),
            Float.floatToRawIntBits(again.loss(BATCH).loss()));
      }
      // Plain ONNX Runtime, no PocketTune code: cross-entropy from its logits in Java.
      double plain = crossEntropy(exported, BATCH);
      assertEquals(trainedLoss, plain, 1e-5 * Math.abs(trainedLoss));
    }
  }

  @ParameterizedTest
  @EnumSource(ModelExport.Adapters.class)
  void withTrainedValues_lora_plainOnnxRuntimeGivesTrainerLoss(ModelExport.Adapters adapters) throws OrtException {
    byte[] base = DecoderLmBuilder.build(TinyModels.TINY);
    TrainableSelection lora = TrainableSelection.lora(4, 8f, ".*");
    try (LossModel model = LossModel.causalLm(base, lora, 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-2f, 5e-2f, 4L), kernel, 0);
      for (int i = 0; i < 20; i++) {
        trainer.step(BATCH);
      }
      float trainedLoss = model.loss(BATCH).loss();
      byte[] exported = ModelExport.withTrainedValues(base, model.parameters(), lora, adapters, Map.of());
      assertNotEquals(crossEntropy(base, BATCH), crossEntropy(exported, BATCH), 1e-4, "the adapters trained");
      assertEquals(ModelExport.outputs(base), ModelExport.outputs(exported));
      double plain = crossEntropy(exported, BATCH);
      assertEquals(trainedLoss, plain, 1e-5 * Math.abs(trainedLoss));
      if (adapters == ModelExport.Adapters.KEEP) {
        // The adapters lifted again: the trainer's graph and values, so the very same loss.
        try (LossModel again = LossModel.causalLm(exported, TrainableSelection.matching(".*\\.lora_[AB]"), 1)) {
          assertEquals(Float.floatToRawIntBits(trainedLoss), Float.floatToRawIntBits(again.loss(BATCH).loss()));
        }
      } else {
        assertEquals(base.length, exported.length, 200, "merged: the base graph, no adapter nodes");
      }
    }
  }

  @Test
  void withTrainedValues_otherBaseModel_refused() {
    byte[] base = DecoderLmBuilder.build(TinyModels.TINY);
    byte[] other = DecoderLmBuilder.build(new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 48, 16, 1, 2, 2, 7L));
    try (LossModel model = LossModel.causalLm(base, TrainableSelection.all(), 1)) {
      ModelException e = assertThrows(ModelException.class,
          () -> ModelExport.withTrainedValues(other, model.parameters(), Map.of()));
      assertTrue(e.getMessage().contains("export with the base model that was trained"), e.getMessage());
    }
  }

  /** Mean causal-LM cross-entropy over real targets, from the logits of a plain ORT session. */
  static double crossEntropy(byte[] onnx, TokenBatch b) throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OrtSession session = env.createSession(onnx, new OrtSession.SessionOptions());
        OnnxTensor ids = OnnxTensor.createTensor(env, LongBuffer.wrap(b.ids()), new long[] {b.size(), b.length()});
        OnnxTensor mask = OnnxTensor.createTensor(env, LongBuffer.wrap(b.mask()), new long[] {b.size(), b.length()});
        OrtSession.Result result = session.run(Map.of("input_ids", ids, "attention_mask", mask))) {
      float[][][] logits = (float[][][]) result.get("logits").orElseThrow().getValue();
      double sum = 0;
      long count = 0;
      for (int r = 0; r < b.size(); r++) {
        for (int t = 0; t + 1 < b.length(); t++) {
          if (b.mask()[r * b.length() + t + 1] == 0) {
            continue;
          }
          float[] row = logits[r][t];
          double max = Double.NEGATIVE_INFINITY;
          for (float v : row) {
            max = Math.max(max, v);
          }
          double z = 0;
          for (float v : row) {
            z += Math.exp(v - max);
          }
          int target = (int) b.ids()[r * b.length() + t + 1];
          sum += Math.log(z) + max - row[target];
          count++;
        }
      }
      return sum / count;
    }
  }
}
