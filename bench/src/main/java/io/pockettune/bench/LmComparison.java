package io.pockettune.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.ModelExport;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Forward-only training of a small decoder LM, four (or five) ways, at an equal budget of loss
 * evaluations ("forward passes"), on the SMS Spam Collection's ham messages: held-out loss curves.
 *
 * <h2>Protocol</h2>
 * <ol>
 *   <li>Base: the in-house demo decoder ({@link DecoderLmConfig#demo()}), pretrained with
 *       full-parameter MeZO (eps 1e-3, lr 1e-3, seed {@value #PRETRAIN_SEED}, batch 16) for
 *       {@link Settings#pretrainSteps()} steps on another domain, the SST-2 sentences of
 *       {@code sst2-kshot/512-42/train.tsv} then {@code dev.tsv} (text only), cycled in file order,
 *       and exported with {@link ModelExport}: every method starts from those bytes.</li>
 *   <li>SMS ham messages in file order: held out the last {@value #HELDOUT} (never trained on); of
 *       the rest, dev the last {@value #DEV} (learning-rate choice only), train the others, in
 *       batches of {@value #BATCH} cycling in file order.</li>
 *   <li>Per method, budget B loss evaluations: MeZO steps cost 2, FZOO steps 9 (8 Rademacher
 *       directions and the unperturbed point), so B/2 or floor(B/9) steps. The learning rate is
 *       chosen from the method's grid by dev loss at the end of the budget on the first seed; the
 *       run of the first seed at the chosen rate is that grid run (training is deterministic), and
 *       the other seeds run at that rate.</li>
 *   <li>Held-out loss at step 0 and at the step nearest every B/12 loss evaluations.</li>
 *   <li>Forwards to a fixed held-out loss, per pair (side vs side-fzoo, mezo-full vs
 *       mezo-full-fzoo): the target is the MeZO method's mean final held-out loss; each method's
 *       figure is the first point of its mean curve at or below it. No extrapolation.</li>
 * </ol>
 */
final class LmComparison {
  static final int BATCH = 16;
  static final int HELDOUT = 400;
  static final int DEV = 200;
  static final long PRETRAIN_SEED = 20261202L;
  static final int FZOO_DIRECTIONS = 8;
  /** Evaluation points per curve after step 0. */
  static final int CURVE_POINTS = 12;

  private static final ObjectMapper JSON = new ObjectMapper();

  /** The methods, in report order. */
  static final List<String> ALL_METHODS = List.of("mezo-full", "mezo-lora", "side", "side-fzoo", "mezo-full-fzoo");

  /**
   * What to run.
   *
   * @param budget        loss evaluations per run (MeZO 2 per step, FZOO 9)
   * @param pretrainSteps full-parameter MeZO steps of the SST-2 pretraining
   * @param seeds         run seeds; the first one also chooses the learning rate
   * @param grids         learning-rate grid per method name (every method run needs one)
   * @param threads       threads of ONNX Runtime and of the perturbation kernel
   * @param methods       method names, among {@link #ALL_METHODS}
   */
  record Settings(int budget, int pretrainSteps, List<Long> seeds, Map<String, List<Float>> grids, int threads,
      List<String> methods) {
    Settings {
      seeds = List.copyOf(seeds);
      grids = Map.copyOf(grids);
      methods = List.copyOf(methods);
      if (budget < 9) {
        throw new IllegalArgumentException("the budget must allow one FZOO step (9 loss evaluations), was " + budget);
      }
      if (pretrainSteps < 0 || seeds.isEmpty() || threads < 1 || methods.isEmpty()) {
        throw new IllegalArgumentException("pretrain steps >= 0, at least one seed, one thread and one method");
      }
      for (String m : methods) {
        if (!ALL_METHODS.contains(m)) {
          throw new IllegalArgumentException("unknown method " + m + ": one of " + ALL_METHODS);
        }
        if (grids.get(m) == null || grids.get(m).isEmpty()) {
          throw new IllegalArgumentException("method " + m + " has no learning-rate grid");
        }
      }
    }

    /** The default grids: FZOO variants share their MeZO counterpart's. */
    static Map<String, List<Float>> defaultGrids() {
      List<Float> full = List.of(1e-4f, 3e-4f, 1e-3f);
      List<Float> small = List.of(1e-3f, 3e-3f, 1e-2f);
      return Map.of("mezo-full", full, "mezo-full-fzoo", full, "mezo-lora", small, "side", small, "side-fzoo", small);
    }

    /** Budget 2400, 1500 pretraining steps, seeds 1, 2, 3, the default grids, every method. */
    static Settings defaults(int threads) {
      return new Settings(2400, 1500, List.of(1L, 2L, 3L), defaultGrids(), threads, ALL_METHODS);
    }

    Settings withMethods(List<String> m) {
      return new Settings(budget, pretrainSteps, seeds, grids, threads, m);
    }
  }

  /** A method: what trains, eps, estimator. */
  private record Method(String name, Supplier<TrainableSelection> selection, float eps, boolean fzoo) {
    int perStep() {
      return fzoo ? FZOO_DIRECTIONS + 1 : 2;
    }

    MezoConfig config(float lr, long seed) {
      MezoConfig c = new MezoConfig(eps, lr, seed);
      return fzoo ? c.withFzoo(FZOO_DIRECTIONS) : c;
    }
  }

  private static Method method(String name) {
    return switch (name) {
      case "mezo-full" -> new Method(name, TrainableSelection::all, 1e-3f, false);
      case "mezo-full-fzoo" -> new Method(name, TrainableSelection::all, 1e-3f, true);
      case "mezo-lora" -> new Method(name, TrainableSelection::lora, 1e-2f, false);
      case "side" -> new Method(name, TrainableSelection::side, 1e-2f, false);
      case "side-fzoo" -> new Method(name, TrainableSelection::side, 1e-2f, true);
      default -> throw new IllegalArgumentException("unknown method " + name);
    };
  }

  /** One point of a curve. */
  record Point(long step, long forwardPasses, double heldoutLoss) {}

  /** One training run: its curve (null when not asked for), final dev loss, time. */
  private record Run(List<Point> curve, double devLoss, double seconds, double stepSeconds) {}

  private LmComparison() {}

  /**
   * Runs the comparison.
   *
   * @param data the shared data folder ({@code sms/SMSSpamCollection}, {@code sst2-kshot/512-42/})
   * @param s    what to run
   * @param log  progress lines
   */
  static ObjectNode run(Path data, Settings s, PrintStream log) throws IOException {
    long started = System.nanoTime();
    ByteTokenizer tok = new ByteTokenizer();
    Path smsFile = data.resolve("sms").resolve("SMSSpamCollection");
    Path sst2 = data.resolve("sst2-kshot").resolve("512-42");
    for (Path f : List.of(smsFile, sst2.resolve("train.tsv"), sst2.resolve("dev.tsv"))) {
      if (!Files.isRegularFile(f)) {
        throw new IllegalArgumentException(f + " is missing: the LM comparison reads ../shared/data");
      }
    }
    List<String> ham = RealDataEvaluation.hamMessages(smsFile);
    if (ham.size() < HELDOUT + DEV + BATCH) {
      throw new IllegalArgumentException(smsFile + " holds only " + ham.size() + " ham messages");
    }
    List<String> heldoutTexts = ham.subList(ham.size() - HELDOUT, ham.size());
    List<String> trainAll = ham.subList(0, ham.size() - HELDOUT);
    List<String> devTexts = trainAll.subList(trainAll.size() - DEV, trainAll.size());
    List<String> train = trainAll.subList(0, trainAll.size() - DEV);
    List<TokenBatch> heldout = evalBatches(tok, heldoutTexts);
    List<TokenBatch> dev = evalBatches(tok, devTexts);
    List<String> sentences = new ArrayList<>();
    for (String f : List.of("train.tsv", "dev.tsv")) {
      for (String[] row : RealDataEvaluation.tsv(sst2.resolve(f))) {
        sentences.add(row[0]);
      }
    }

    ObjectNode out = JSON.createObjectNode();
    out.put("model", "in-house demo decoder (" + DecoderLmConfig.demo().parameterCount()
        + " parameters), byte tokens, pretrained on SST-2 sentences with full-parameter MeZO");
    out.put("budget_loss_evaluations", s.budget());
    out.put("batch", BATCH);
    out.put("threads", s.threads());
    ArrayNode seedsNode = out.putArray("seeds");
    s.seeds().forEach(seedsNode::add);
    ObjectNode dataNode = out.putObject("data");
    dataNode.put("sms_ham_messages", ham.size()).put("train_messages", train.size()).put("dev_messages", devTexts.size())
        .put("heldout_messages", heldoutTexts.size()).put("heldout_target_tokens", tokens(heldout))
        .put("pretrain_sentences", sentences.size());

    // 1. The pretrained base.
    byte[] base;
    ObjectNode pre = out.putObject("pretraining");
    try (LossModel model = LossModel.causalLm(DecoderLmBuilder.build(DecoderLmConfig.demo()), TrainableSelection.all(),
        s.threads()); PerturbationKernel kernel = new PerturbationKernel(s.threads())) {
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-3f, PRETRAIN_SEED), kernel, 0);
      double before = trainer.evaluate(heldout);
      log.printf(Locale.ROOT, "pretraining: %d MeZO steps on %d SST-2 sentences; SMS held-out loss before %.4f%n",
          s.pretrainSteps(), sentences.size(), before);
      long t0 = System.nanoTime();
      for (int step = 0; step < s.pretrainSteps(); step++) {
        trainer.step(cyclicBatch(tok, sentences, step));
        if ((step + 1) % Math.max(1, s.pretrainSteps() / 10) == 0) {
          log.printf(Locale.ROOT, "pretraining: step %d/%d (%.1f s)%n", step + 1, s.pretrainSteps(), seconds(t0));
        }
      }
      double seconds = seconds(t0);
      double after = trainer.evaluate(heldout);
      base = ModelExport.withTrainedValues(DecoderLmBuilder.build(DecoderLmConfig.demo()), model.parameters(),
          TrainableSelection.all(), ModelExport.Adapters.MERGE, Map.of());
      pre.put("corpus", "SST-2 sentences of sst2-kshot/512-42 train.tsv then dev.tsv, text only, cycled in file order");
      pre.put("method", "mezo-full").put("eps", 1e-3).put("lr", 1e-3).put("seed", PRETRAIN_SEED).put("batch", BATCH);
      pre.put("steps", s.pretrainSteps()).put("loss_evaluations", 2L * s.pretrainSteps());
      pre.put("sms_heldout_loss_before", before).put("sms_heldout_loss_after", after);
      pre.put("wall_seconds", seconds).put("seconds_per_step", s.pretrainSteps() == 0 ? 0 : seconds / s.pretrainSteps());
      log.printf(Locale.ROOT, "pretraining: SMS held-out loss %.4f -> %.4f (%.1f s)%n", before, after, seconds);
    }

    // 2-3. The methods.
    ObjectNode methods = out.putObject("methods");
    Map<String, double[]> meanCurves = new LinkedHashMap<>();
    Map<String, long[]> curveForwards = new LinkedHashMap<>();
    Map<String, Double> meanFinal = new LinkedHashMap<>();
    for (String name : s.methods()) {
      Method m = method(name);
      int steps = s.budget() / m.perStep();
      long[] evalSteps = evaluationSteps(s.budget(), m.perStep(), steps);
      ObjectNode node = methods.putObject(name);
      node.put("selection", m.selection().get().description());
      node.put("estimator", m.fzoo() ? "fzoo" : "mezo").put("eps", m.eps());
      node.put("loss_evaluations_per_step", m.perStep()).put("steps", steps)
          .put("loss_evaluations", (long) steps * m.perStep());
      long t0 = System.nanoTime();

      long firstSeed = s.seeds().get(0);
      ArrayNode grid = node.putArray("lr_grid");
      float chosen = Float.NaN;
      double bestDev = Double.POSITIVE_INFINITY;
      Run chosenRun = null;
      for (float lr : s.grids().get(name)) {
        Run r = train(base, m, lr, firstSeed, steps, evalSteps, train, heldout, dev, s.threads(), tok);
        grid.addObject().put("lr", lr).put("dev_loss", r.devLoss()).put("wall_seconds", r.seconds())
            .put("training_seconds", r.stepSeconds());
        log.printf(Locale.ROOT, "%s: lr %.0e seed %d: dev loss %.4f (%.1f s)%n", name, lr, firstSeed, r.devLoss(),
            r.seconds());
        if (chosenRun == null || r.devLoss() < bestDev) { // NaN never wins; of equal losses the first does
          bestDev = Double.isNaN(r.devLoss()) ? Double.POSITIVE_INFINITY : r.devLoss();
          chosen = lr;
          chosenRun = r;
        }
      }
      node.put("chosen_lr", chosen);
      node.put("chosen_by", "dev loss after the budget, seed " + firstSeed + "; that run is seed " + firstSeed + "'s");

      List<Run> runs = new ArrayList<>();
      runs.add(chosenRun);
      for (long seed : s.seeds().subList(1, s.seeds().size())) {
        Run r = train(base, m, chosen, seed, steps, evalSteps, train, heldout, dev, s.threads(), tok);
        log.printf(Locale.ROOT, "%s: lr %.0e seed %d: held-out loss %.4f (%.1f s)%n", name, chosen, seed,
            last(r.curve()), r.seconds());
        runs.add(r);
      }
      ArrayNode perSeed = node.putArray("seeds");
      double[] finals = new double[runs.size()];
      for (int i = 0; i < runs.size(); i++) {
        finals[i] = last(runs.get(i).curve());
        perSeed.addObject().put("seed", s.seeds().get(i)).put("final_heldout_loss", finals[i])
            .put("wall_seconds", runs.get(i).seconds()).put("training_seconds", runs.get(i).stepSeconds());
      }
      double[] mean = new double[evalSteps.length];
      ArrayNode curve = node.putArray("curve");
      long[] forwards = new long[evalSteps.length];
      for (int p = 0; p < evalSteps.length; p++) {
        double sum = 0;
        for (Run r : runs) {
          sum += r.curve().get(p).heldoutLoss();
        }
        mean[p] = sum / runs.size();
        forwards[p] = evalSteps[p] * m.perStep();
        curve.addObject().put("step", evalSteps[p]).put("forward_passes", forwards[p]).put("heldout_loss", mean[p]);
      }
      // The mean of the finals is the last point of the mean curve (the same sum, in the same order).
      double finalMean = mean[mean.length - 1];
      node.put("final_heldout_loss_mean", finalMean);
      double std = sampleStd(finals);
      if (Double.isNaN(std)) {
        node.putNull("final_heldout_loss_std");
      } else {
        node.put("final_heldout_loss_std", std);
      }
      double seconds = seconds(t0);
      node.put("wall_seconds", seconds);
      node.put("runs", s.grids().get(name).size() + runs.size() - 1);
      // Training steps only (held-out and dev evaluations excluded), of the chosen grid run.
      node.put("seconds_per_step", chosenRun.stepSeconds() / Math.max(1, steps));
      meanCurves.put(name, mean);
      curveForwards.put(name, forwards);
      meanFinal.put(name, finalMean);
      log.printf(Locale.ROOT, "%s: lr %.0e, %d steps, held-out loss %.4f -> %.4f (%.1f s)%n", name, chosen, steps,
          mean[0], finalMean, seconds);
    }

    // 4. Forwards to reach a fixed held-out loss.
    ObjectNode target = out.putObject("forwards_to_target");
    target.put("definition", "target = the MeZO method's mean final held-out loss; per method the forward passes of the "
        + "first point of its mean curve at or below the target; no extrapolation");
    pair(target, "side", "side", "side-fzoo", meanCurves, curveForwards, meanFinal);
    pair(target, "full", "mezo-full", "mezo-full-fzoo", meanCurves, curveForwards, meanFinal);
    out.put("wall_seconds", seconds(started));
    return out;
  }

  private static void pair(ObjectNode target, String key, String mezo, String fzoo, Map<String, double[]> curves,
      Map<String, long[]> forwards, Map<String, Double> finals) {
    if (!curves.containsKey(mezo) || !curves.containsKey(fzoo)) {
      return;
    }
    double t = finals.get(mezo);
    ObjectNode p = target.putObject(key);
    p.put("mezo_method", mezo).put("fzoo_method", fzoo).put("target_loss", t);
    Long mz = firstAtOrBelow(curves.get(mezo), forwards.get(mezo), t);
    Long fz = firstAtOrBelow(curves.get(fzoo), forwards.get(fzoo), t);
    putNullable(p, "mezo_forwards_to_target", mz);
    putNullable(p, "fzoo_forwards_to_target", fz);
    if (fz == null) {
      p.putNull("mezo_over_fzoo");
      p.put("note", fzoo + " never reaches the target within the budget (its best mean held-out loss "
          + String.format(Locale.ROOT, "%.4f", min(curves.get(fzoo))) + "); not extrapolated");
    } else if (fz == 0 || mz == null) {
      p.putNull("mezo_over_fzoo");
      p.put("note", "the step-0 loss is already at or below the target: " + mezo + " did not improve on the base");
    } else {
      p.put("mezo_over_fzoo", mz / (double) fz);
    }
  }

  private static void putNullable(ObjectNode n, String field, Long v) {
    if (v == null) {
      n.putNull(field);
    } else {
      n.put(field, v);
    }
  }

  private static Long firstAtOrBelow(double[] curve, long[] forwards, double target) {
    for (int i = 0; i < curve.length; i++) {
      if (curve[i] <= target) {
        return forwards[i];
      }
    }
    return null;
  }

  /**
   * Steps after which the held-out loss is measured: 0, then the step nearest each k B / 12 loss
   * evaluations (k = 1..12), within [0, steps], each once; the last is always {@code steps}.
   */
  static long[] evaluationSteps(int budget, int perStep, int steps) {
    List<Long> list = new ArrayList<>();
    list.add(0L);
    for (int k = 1; k <= CURVE_POINTS; k++) {
      long step = Math.min(steps, Math.round(k * (double) budget / CURVE_POINTS / perStep));
      if (step > list.get(list.size() - 1)) {
        list.add(step);
      }
    }
    if (list.get(list.size() - 1) != steps) {
      list.add((long) steps);
    }
    return list.stream().mapToLong(Long::longValue).toArray();
  }

  private static Run train(byte[] base, Method m, float lr, long seed, int steps, long[] evalSteps, List<String> train,
      List<TokenBatch> heldout, List<TokenBatch> dev, int threads, ByteTokenizer tok) {
    long t0 = System.nanoTime();
    try (LossModel model = LossModel.causalLm(base, m.selection().get(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      MezoTrainer trainer = new MezoTrainer(model, m.config(lr, seed), kernel, 0);
      List<Point> curve = new ArrayList<>();
      long stepNanos = 0;
      int next = 0;
      for (int step = 0; ; step++) {
        if (next < evalSteps.length && evalSteps[next] == step) {
          curve.add(new Point(step, (long) step * m.perStep(), trainer.evaluate(heldout)));
          next++;
        }
        if (step == steps) {
          break;
        }
        TokenBatch batch = cyclicBatch(tok, train, step);
        long s0 = System.nanoTime();
        trainer.step(batch);
        stepNanos += System.nanoTime() - s0;
      }
      if (trainer.stepsDone() != steps) {
        throw new IllegalStateException("ran " + trainer.stepsDone() + " steps, not " + steps);
      }
      return new Run(curve, trainer.evaluate(dev), seconds(t0), stepNanos / 1e9);
    }
  }

  /** Batch {@code step} of texts cycled in file order: texts {@code step * 16 .. step * 16 + 15}, modulo their count. */
  static TokenBatch cyclicBatch(ByteTokenizer tok, List<String> texts, int step) {
    List<String> part = new ArrayList<>(BATCH);
    for (int i = 0; i < BATCH; i++) {
      part.add(texts.get((int) (((long) step * BATCH + i) % texts.size())));
    }
    return RealDataEvaluation.lmBatch(tok, part);
  }

  private static List<TokenBatch> evalBatches(ByteTokenizer tok, List<String> texts) {
    List<TokenBatch> batches = new ArrayList<>();
    for (int i = 0; i < texts.size(); i += BATCH) {
      batches.add(RealDataEvaluation.lmBatch(tok, texts.subList(i, Math.min(texts.size(), i + BATCH))));
    }
    return batches;
  }

  private static long tokens(List<TokenBatch> batches) {
    long n = 0;
    for (TokenBatch b : batches) {
      n += b.targetTokens();
    }
    return n;
  }

  private static double last(List<Point> curve) {
    return curve.get(curve.size() - 1).heldoutLoss();
  }

  private static double min(double[] xs) {
    double m = Double.POSITIVE_INFINITY;
    for (double x : xs) {
      m = Math.min(m, x);
    }
    return m;
  }

  /** Sample standard deviation (n - 1); NaN for fewer than two values. */
  static double sampleStd(double[] xs) {
    if (xs.length < 2) {
      return Double.NaN;
    }
    double mean = 0;
    for (double x : xs) {
      mean += x;
    }
    mean /= xs.length;
    double ss = 0;
    for (double x : xs) {
      ss += (x - mean) * (x - mean);
    }
    return Math.sqrt(ss / (xs.length - 1));
  }

  private static double seconds(long t0) {
    return (System.nanoTime() - t0) / 1e9;
  }
}
