package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import io.pockettune.events.Message;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReplayEvaluationTest {
  private static final long[] LABEL_WORDS = {'w' + 3, 'h' + 3};

  @TempDir Path dir;

  /** Classification events labelled by attribute, batched as the pipeline batches them. */
  private static List<TokenBatch> labelledBatches() {
    ExampleMapper mapper = ExampleMapper.labelled("label", List.of("work", "home"), null);
    ByteTokenizer tokenizer = new ByteTokenizer();
    MicroBatcher batcher = MicroBatcher.byCount(4);
    List<TokenBatch> batches = new ArrayList<>();
    String[][] events = {{"handover at 8, bay 3 settled. answer:", "work"}, {"made focaccia, saved you some. answer:", "home"},
        {"anyone swap nights next week? answer:", "work"}, {"can you feed biscuit? answer:", "home"},
        {"bed 12 needs obs hourly. answer:", "work"}, {"on my way home, need anything? answer:", "home"},
        {"cheers for covering the late. answer:", "work"}, {"film tonight? answer:", "home"}};
    for (String[] e : events) {
      ExampleMapper.TrainingExample x = mapper.map(Message.newBuilder().setId("1").setConversation("c").setSender("maya")
          .setText(e[0]).setEventTime(Instant.EPOCH).setAttrs(Map.of("label", e[1])).build());
      long[] tokens = tokenizer.encode(x.text(), 64);
      batcher.add(tokens, x.label());
      if (batcher.ready()) {
        batches.add(batcher.drain());
      }
    }
    return batches;
  }

  @Test
  void evaluate_classificationCheckpoints_lossAndAccuracyEqualTrainersOwn() throws Exception {
    List<TokenBatch> batches = labelledBatches();
    try (LossModel model = LossModel.promptClassifier(PipelineFixture.MODEL, TrainableSelection.all(), LABEL_WORDS, 1);
        PerturbationKernel kernel = new PerturbationKernel(1);
        ModelStore store = ModelStore.open(dir.resolve("store"), new RunIdentity(model.baseModelHash(),
            PerturbationKernel.VERSION, model.parameters().layout(), "{}"))) {
      float[] base = model.parameters().toArray();
      MezoTrainer trainer = new MezoTrainer(model, PipelineFixture.MEZO, kernel, 0);
      List<Double> expectedLoss = new ArrayList<>();
      List<Double> expectedAccuracy = new ArrayList<>();
      for (int step = 1; step <= 4; step++) {
        store.commitStep(trainer.step(batches.get(step % 2)), Map.of());
        if (step % 2 == 0) {
          store.markCheckpoint(null, Map.of());
          expectedLoss.add(trainer.evaluate(batches));
          long right = 0;
          for (TokenBatch b : batches) {
            int[] p = model.predict(b);
            for (int i = 0; i < p.length; i++) {
              right += p[i] == b.labels()[i] ? 1 : 0;
            }
          }
          expectedAccuracy.add(right / 8.0);
        }
      }
      model.parameters().load(base);
      List<Checkpoint> checkpoints = store.checkpoints();
      List<ReplayEvaluation.Result> results =
          ReplayEvaluation.evaluate(store, model, text -> PipelineFixture.MEZO, kernel, checkpoints, batches);
      for (int i = 0; i < 2; i++) {
        assertEquals(expectedLoss.get(i), results.get(i).loss(), 0.0);
        assertEquals(Math.exp(expectedLoss.get(i)), results.get(i).perplexity(), 0.0);
        assertNotNull(results.get(i).accuracy());
        assertEquals(expectedAccuracy.get(i), results.get(i).accuracy(), 0.0);
      }
    }
  }
}
