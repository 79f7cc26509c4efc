package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ObjectivesTest {

  /** Logistic regression as ONNX: loss = mean(softplus(x.w + b) - y (x.w + b)). */
  private static byte[] logisticRegression(int d) {
    GraphBuilder g = new GraphBuilder("logreg");
    int f = DataType.FLOAT.getNumber();
    String x = g.input("x", f, "n", (long) d);
    String y = g.input("y", f, "n");
    float[] w0 = new float[d];
    for (int i = 0; i < d; i++) {
      w0[i] = 0.1f * ((i % 3) - 1);
    }
    String w = g.initializer("w", new long[] {d}, w0);
    String b = g.initializer("b", new long[] {1}, new float[] {0.05f});
    String z = g.node("Add", "z", g.node("MatMul", "xw", x, w), b);
    String softplus = g.node("Softplus", "sp", z);
    String perRow = g.node("Sub", "row", softplus, g.node("Mul", "yz", y, z));
    g.nodeNamed("ReduceMean", "nll", new String[] {perRow}, "keepdims", 0L);
    g.output("nll", f);
    return g.build("test").toByteArray();
  }

  @Test
  void scalarLoss_estimatorAveragedOverSeedsPointsAlongTrueGradient() {
    int d = 16;
    int n = 64;
    SplittableRandom rng = new SplittableRandom(5);
    float[] xs = new float[n * d];
    float[] ys = new float[n];
    for (int r = 0; r < n; r++) {
      double dot = 0;
      for (int i = 0; i < d; i++) {
        xs[r * d + i] = (float) rng.nextDouble(-1, 1);
        dot += xs[r * d + i] * (i < d / 2 ? 1.0 : -0.5);
      }
      ys[r] = dot > 0 ? 1f : 0f;
    }
    TensorBatch batch = new TensorBatch(n, List.of(
        TensorBatch.Tensor.of("x", new long[] {n, d}, xs), TensorBatch.Tensor.of("y", new long[] {n}, ys)));
    try (LossModel model = LossModel.scalarLoss(logisticRegression(d), TrainableSelection.all(), "nll", 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      float[] theta = model.parameters().toArray(); // w (d values) then b
      assertEquals(d + 1, theta.length);
      // The true gradient of the mean logistic loss.
      double[] grad = new double[d + 1];
      for (int r = 0; r < n; r++) {
        double zr = theta[d];
        for (int i = 0; i < d; i++) {
          zr += xs[r * d + i] * theta[i];
        }
        double err = 1 / (1 + Math.exp(-zr)) - ys[r];
        for (int i = 0; i < d; i++) {
          grad[i] += err * xs[r * d + i] / n;
        }
        grad[d] += err / n;
      }
      // Average the MeZO estimate g z over many directions (lr = 0: parameters do not move).
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 0f, 3L), kernel, 0);
      double[] estimate = new double[d + 1];
      int seeds = 3000;
      for (int s = 0; s < seeds; s++) {
        model.parameters().load(theta);
        StepRecord r = trainer.step(batch);
        for (int i = 0; i <= d; i++) {
          estimate[i] += r.projectedGradient() * PerturbationKernel.z(r.seed(), i) / seeds;
        }
      }
      double cosine = dot(estimate, grad) / Math.sqrt(dot(estimate, estimate) * dot(grad, grad));
      assertTrue(cosine >= 0.9, "cosine between averaged estimate and true gradient: " + cosine);
    }
  }

  private static double dot(double[] a, double[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += a[i] * b[i];
    }
    return s;
  }

  @Test
  void scalarLoss_missingOutputIsAClearError() {
    ModelException e = assertThrows(ModelException.class,
        () -> LossModel.scalarLoss(logisticRegression(4), TrainableSelection.all(), "loss_out", 1));
    assertTrue(e.getMessage().contains("no output named 'loss_out'"), e.getMessage());
  }

  @Test
  void lora_startsEqualToBaseAndTrainsOnlyAdapters() {
    byte[] onnx = DecoderLmBuilder.build(TinyModels.TINY);
    TokenBatch batch = TinyModels.batch("lora keeps the base frozen", "only adapters move");
    float baseLoss;
    try (LossModel full = LossModel.causalLm(onnx, TrainableSelection.all(), 1)) {
      baseLoss = full.loss(batch).loss();
    }
    try (LossModel lora = LossModel.causalLm(onnx, TrainableSelection.lora(4, 8f, TrainableSelection.DEFAULT_LORA_TARGETS), 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      int d = TinyModels.TINY.dModel();
      assertEquals(TinyModels.TINY.layers() * (d * 4 + 4 * 3 * d), lora.parameters().size());
      assertTrue(lora.parameters().tensors().stream().allMatch(t -> t.name().contains(".lora_")));
      assertEquals(baseLoss, lora.loss(batch).loss(), 1e-6f, "B starts at zero: the adapted model is the base model");

      MezoTrainer t = new MezoTrainer(lora, new MezoConfig(1e-2f, 1e-2f, 8L), kernel, 0);
      double before = t.evaluate(List.of(batch));
      for (int i = 0; i < 150; i++) {
        t.step(batch);
      }
      double after = t.evaluate(List.of(batch));
      assertTrue(after < before - 0.02, "LoRA training lowers the loss: " + before + " -> " + after);
    }
  }

  @Test
  void lora_noMatchingWeightIsAClearError() {
    ModelException e = assertThrows(ModelException.class, () -> LossModel.causalLm(
        DecoderLmBuilder.build(TinyModels.TINY), TrainableSelection.lora(8, 16f, ".*nothing.*"), 1));
    assertTrue(e.getMessage().contains("LoRA targets"), e.getMessage());
  }

  @Test
  void biasesAndNorms_selectsRankOneTensors() {
    try (LossModel m = LossModel.causalLm(DecoderLmBuilder.build(TinyModels.TINY), TrainableSelection.biasesAndNorms(), 1)) {
      assertTrue(m.parameters().tensors().stream().allMatch(t -> t.dims().length == 1));
      int d = TinyModels.TINY.dModel();
      int perLayer = 4 * d + 3 * d + d + 2 * d + d; // ln_1, ln_2 (w+b), c_attn.b, attn c_proj.b, c_fc.b, mlp c_proj.b
      assertEquals(TinyModels.TINY.layers() * perLayer + 2 * d, m.parameters().size());
    }
  }

  @Test
  void promptClassifier_learnsASeparableTask() {
    ByteTokenizer tok = new ByteTokenizer();
    String[] good = {"lovely day", "great film", "so good", "really nice", "loved it", "brilliant"};
    String[] bad = {"awful day", "terrible film", "so bad", "really grim", "hated it", "dreadful"};
    // Prompts alternate good (label 1) and bad (label 0); the answer is read at the prompt's last
    // token, so the EOS the tokenizer appends is dropped.
    List<long[]> prompts = new ArrayList<>();
    long[] labels = new long[2 * good.length];
    for (int i = 0; i < good.length; i++) {
      long[] g = tok.encode(good[i] + ". It was", 48);
      long[] b = tok.encode(bad[i] + ". It was", 48);
      prompts.add(java.util.Arrays.copyOf(g, g.length - 1));
      prompts.add(java.util.Arrays.copyOf(b, b.length - 1));
      labels[2 * i] = 1;
    }
    TokenBatch batch = TokenBatch.classification(prompts, labels);
    long[] labelTokens = {'t' + 3, 'g' + 3}; // " terrible" / " great" after "It was"
    try (LossModel m = LossModel.promptClassifier(DecoderLmBuilder.build(TinyModels.TINY), TrainableSelection.all(), labelTokens, 1);
        PerturbationKernel kernel = new PerturbationKernel(1)) {
      LossModel.Loss start = m.loss(batch);
      assertEquals(Math.log(2), start.loss(), 0.05, "two labels, untrained model: near chance");
      assertEquals(batch.size(), (int) start.tokens());
      MezoTrainer t = new MezoTrainer(m, new MezoConfig(1e-3f, 5e-3f, 2L), kernel, 0);
      for (int i = 0; i < 300; i++) {
        t.step(batch);
      }
      float end = m.loss(batch).loss();
      assertTrue(end < start.loss() - 0.05, "classification loss falls: " + start.loss() + " -> " + end);
      int[] predicted = m.predict(batch);
      int correct = 0;
      for (int r = 0; r < predicted.length; r++) {
        correct += predicted[r] == labels[r] ? 1 : 0;
      }
      assertTrue(correct > predicted.length / 2, "better than chance on the training prompts: " + correct + "/" + predicted.length);
    }
  }
}
