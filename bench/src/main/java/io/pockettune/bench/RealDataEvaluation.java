package io.pockettune.bench;

import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * MeZO on real public text from {@code ../shared/data}: language modelling on the SMS Spam
 * Collection's personal messages (held-out loss before and after), and SST-2 few-shot prompt
 * classification in the MeZO paper's layout (test accuracy before and after). The models start
 * untrained (no pretrained weights can be fetched here), so these figures show that the trainer
 * learns from real text, not what MeZO reaches from a pretrained model.
 */
final class RealDataEvaluation {
  /** Figures of one run. */
  record SmsResult(int trainMessages, int heldoutMessages, int steps, double lossBefore, double lossAfter) {}

  record Sst2Result(String split, int trainExamples, int testExamples, int steps, double accuracyBefore,
      double accuracyAfter, double trainLossBefore, double trainLossAfter) {}

  static final int MAX_TOKENS = 128;
  private final int threads;

  RealDataEvaluation(int threads) {
    this.threads = threads;
  }

  /** Trains the demo-sized LM on ham messages in file order; held out: the last {@code heldout}. */
  SmsResult sms(Path file, int steps, int batch, int heldout) throws IOException {
    List<String> ham = hamMessages(file);
    ByteTokenizer tok = new ByteTokenizer();
    List<String> train = ham.subList(0, ham.size() - heldout);
    List<TokenBatch> held = new ArrayList<>();
    List<String> rest = ham.subList(ham.size() - heldout, ham.size());
    for (int i = 0; i < rest.size(); i += batch) {
      held.add(lmBatch(tok, rest.subList(i, Math.min(rest.size(), i + batch))));
    }
    try (LossModel model = LossModel.causalLm(DecoderLmBuilder.build(DecoderLmConfig.demo()), TrainableSelection.all(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-3f, 11L), kernel, 0);
      double before = trainer.evaluate(held);
      for (int s = 0; s < steps; s++) {
        int from = (s * batch) % (train.size() - batch);
        trainer.step(lmBatch(tok, train.subList(from, from + batch)));
      }
      return new SmsResult(train.size(), rest.size(), steps, before, trainer.evaluate(held));
    }
  }

  /** The ham messages of the SMS Spam Collection ({@code ham\t<text>} lines after its header), in file order. */
  static List<String> hamMessages(Path file) throws IOException {
    List<String> ham = new ArrayList<>();
    List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    for (String line : lines.subList(1, lines.size())) {
      int tab = line.indexOf('\t');
      if (tab > 0 && line.startsWith("ham")) {
        ham.add(line.substring(tab + 1));
      }
    }
    return ham;
  }

  /** A language-modelling batch: each text as BOS, its bytes (cut to fit), EOS. */
  static TokenBatch lmBatch(ByteTokenizer tok, List<String> texts) {
    List<long[]> seqs = new ArrayList<>();
    for (String t : texts) {
      seqs.add(tok.encode(t, MAX_TOKENS));
    }
    return TokenBatch.of(seqs);
  }

  /**
   * SST-2 with MeZO's prompt {@code <sentence> It was} and label words {@code terrible}/{@code great}.
   * With byte tokens the answer is read after {@code "It was "} and the label words are told apart by
   * their first byte, {@code t} or {@code g}. Every step uses the whole (few-shot) training set.
   */
  Sst2Result sst2(Path folder, int steps, float lr) throws IOException {
    List<String[]> train = tsv(folder.resolve("train.tsv"));
    List<String[]> test = tsv(folder.resolve("test.tsv"));
    ByteTokenizer tok = new ByteTokenizer();
    long[] labelTokens = {'t' + 3, 'g' + 3};
    List<TokenBatch> trainBatches = classificationBatches(tok, train, 32);
    List<TokenBatch> testBatches = classificationBatches(tok, test, 64);
    try (LossModel model = LossModel.promptClassifier(DecoderLmBuilder.build(DecoderLmConfig.demo()),
            TrainableSelection.all(), labelTokens, threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, lr, 13L), kernel, 0);
      double accBefore = accuracy(model, testBatches);
      double lossBefore = trainer.evaluate(trainBatches);
      for (int s = 0; s < steps; s++) {
        trainer.step(trainBatches.get(s % trainBatches.size()));
      }
      return new Sst2Result(folder.getFileName().toString(), train.size(), test.size(), steps, accBefore,
          accuracy(model, testBatches), lossBefore, trainer.evaluate(trainBatches));
    }
  }

  /** Rows {@code text, label} of a TSV file with a header, the label after the last tab. */
  static List<String[]> tsv(Path file) throws IOException {
    List<String[]> rows = new ArrayList<>();
    List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    for (String line : lines.subList(1, lines.size())) {
      int tab = line.lastIndexOf('\t');
      if (tab > 0) {
        rows.add(new String[] {line.substring(0, tab).strip(), line.substring(tab + 1).strip()});
      }
    }
    return rows;
  }

  private static List<TokenBatch> classificationBatches(ByteTokenizer tok, List<String[]> rows, int size) {
    List<TokenBatch> batches = new ArrayList<>();
    for (int i = 0; i < rows.size(); i += size) {
      List<String[]> part = rows.subList(i, Math.min(rows.size(), i + size));
      List<long[]> prompts = new ArrayList<>();
      long[] labels = new long[part.size()];
      for (int r = 0; r < part.size(); r++) {
        long[] ids = tok.encode(part.get(r)[0] + " It was ", MAX_TOKENS + 1);
        // Drop EOS; if the sentence was cut, keep the prompt's ending so the answer follows "It was ".
        long[] prompt = java.util.Arrays.copyOf(ids, ids.length - 1);
        long[] suffix = java.util.Arrays.copyOfRange(tok.encode(" It was ", 16), 1, 9);
        System.arraycopy(suffix, 0, prompt, prompt.length - suffix.length, suffix.length);
        prompts.add(prompt);
        labels[r] = Long.parseLong(part.get(r)[1]);
      }
      batches.add(TokenBatch.classification(prompts, labels));
    }
    return batches;
  }

  private static double accuracy(LossModel model, List<TokenBatch> batches) {
    int correct = 0;
    int total = 0;
    for (TokenBatch b : batches) {
      int[] predicted = model.predict(b);
      for (int r = 0; r < predicted.length; r++) {
        correct += predicted[r] == b.labels()[r] ? 1 : 0;
      }
      total += predicted.length;
    }
    return correct / (double) total;
  }
}
