package io.pockettune.pipeline;

import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * Child process for {@link StoreCommandsTest}: lays out a data directory as demo does (base model
 * and store), then trains and commits steps forever, snapshotting every 20 and marking a checkpoint
 * every 25, printing "committed N" after each commit, until it is killed.
 */
final class StoreCommandsTrainer {
  static final SourcePartition MESSAGES = new SourcePartition(Topics.MESSAGES, 0);
  static final SourcePartition NOTES = new SourcePartition(Topics.NOTES, 0);

  private StoreCommandsTrainer() {}

  static Map<SourcePartition, Long> offsetsOf(long n) {
    return Map.of(MESSAGES, 2 * n, NOTES, n / 2);
  }

  static TokenBatch batch(long n) {
    return TokenBatch.of(List.of(new ByteTokenizer().encode("note number " + n + " for later",
        PipelineFixture.TINY.maxPositions())));
  }

  public static void main(String[] args) throws IOException {
    Path data = Path.of(args[0]);
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    try (LossModel model = LossModel.causalLm(PipelineFixture.MODEL, TrainableSelection.all(), 1);
        PerturbationKernel kernel = new PerturbationKernel(1);
        ModelStore store = ModelStore.open(data.resolve("store"), new RunIdentity(model.baseModelHash(),
            PerturbationKernel.VERSION, model.parameters().layout(), "killed"))) {
      MezoTrainer trainer = new MezoTrainer(model, PipelineFixture.MEZO, kernel, 0);
      for (long n = 1; ; n++) {
        store.commitStep(trainer.step(batch(n)), offsetsOf(n));
        store.snapshotIfDue(model.parameters(), 20);
        if (n % 25 == 0) {
          store.markCheckpoint("at " + n, Map.of("n", (double) n));
        }
        System.out.println("committed " + n);
        System.out.flush();
      }
    }
  }
}
