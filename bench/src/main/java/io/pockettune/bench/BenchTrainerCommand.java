package io.pockettune.bench;

import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.LongSupplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench trainer}: the trainer's speed and memory, each against a baseline in the
 * same run (absolute times on shared machines are not stable; ratios are).
 *
 * <ul>
 *   <li>Kernel: one perturbation pass of our counter-based kernel on all cores, against the same
 *       pass drawing z from {@code SplittableRandom.nextGaussian} (one thread, as one sequential
 *       generator must run; and split per chunk over all cores, for a fair parallel comparison).
 *   <li>Step: full-parameter MeZO on a model of at least 10M parameters, batch 16 x 128 tokens as
 *       in the MeZO paper, against two plain forward passes; LoRA's step against one forward.
 *   <li>Side network: its MeZO and FZOO steps (one shared backbone pass) against one forward of the
 *       base model; FZOO on every weight against one forward.
 *   <li>Memory: peak RSS of a training JVM and an inference JVM on the same model and batch, for
 *       full-parameter MeZO and for the side network.
 * </ul>
 */
@Command(name = "trainer", mixinStandardHelpOptions = true,
    description = "Measure the perturbation kernel, MeZO steps and memory against baselines in the same run.")
final class BenchTrainerCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  @Option(names = "--model", description = "model shape: bench10m (10.8M parameters), gpt2-small (124M) or demo (default: ${DEFAULT-VALUE})")
  String modelName = "bench10m";

  @Option(names = "--batch", description = "sequences per batch (default: ${DEFAULT-VALUE})")
  int batch = 16;

  @Option(names = "--seq", description = "tokens per sequence (default: ${DEFAULT-VALUE})")
  int seq = 128;

  @Option(names = "--repeats", description = "timed repetitions of each measurement (default: ${DEFAULT-VALUE})")
  int repeats = 5;

  @Option(names = "--skip-memory", description = "skip the two child JVMs that measure peak RSS")
  boolean skipMemory;

  @Option(names = "--real-data", paramLabel = "DIR",
      description = "also train on the real data in DIR (e.g. ../shared/data): SMS language modelling and SST-2 few-shot classification")
  java.nio.file.Path realData;

  @Option(names = "--only-real-data", description = "run only the real-data part")
  boolean onlyRealData;

  @Option(names = "--sst2-steps", description = "MeZO steps on SST-2 16-shot (default: ${DEFAULT-VALUE})")
  int sst2Steps = 300;

  @Option(names = "--sst2-lr", description = "learning rate on SST-2 (default: ${DEFAULT-VALUE})")
  float sst2Lr = 1e-3f;

  @Option(names = "--sms-steps", description = "MeZO steps on SMS (default: ${DEFAULT-VALUE})")
  int smsSteps = 1500;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    int threads = Runtime.getRuntime().availableProcessors();
    DecoderLmConfig config = switch (modelName) {
      case "bench10m" -> DecoderLmConfig.bench10m();
      case "gpt2-small" -> DecoderLmConfig.gpt2Small();
      case "demo" -> DecoderLmConfig.demo();
      default -> throw new IllegalArgumentException("unknown --model " + modelName + ": use bench10m, gpt2-small or demo");
    };
    byte[] onnx = DecoderLmBuilder.build(config);
    TokenBatch tokens = MemoryProbe.randomBatch(batch, seq, config.vocabSize());
    Figures figures = new Figures().put("threads", threads);
    if (realData != null) {
      realData(figures, err, threads);
    }
    if (onlyRealData) {
      out.println(figures);
      return 0;
    }
    figures.put("model", modelName).put("batch", batch).put("seq", seq);

    try (LossModel model = LossModel.causalLm(onnx, TrainableSelection.all(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      int params = model.parameters().size();
      figures.put("params", params);
      err.printf(Locale.ROOT, "model: %,d parameters, batch %d x %d tokens, %d threads%n", params, batch, seq, threads);

      // 1. The kernel against the JDK's Gaussian generator, on a buffer of the model's size.
      FloatBuffer buffer = ByteBuffer.allocateDirect(params * Float.BYTES).order(ByteOrder.nativeOrder()).asFloatBuffer();
      long[] seed = {1};
      ExecutorService pool = Executors.newFixedThreadPool(threads);
      double ours = perParam(median(7, 3, () -> time(() -> kernel.axpy(buffer, seed[0]++, 1e-3f))), params);
      double jdk = perParam(median(3, 1, () -> time(() -> jdkPass(buffer, seed[0]++))), params);
      double jdkParallel = perParam(median(3, 1, () -> time(() -> jdkParallelPass(buffer, seed[0]++, threads, pool))), params);
      double stream = perParam(median(7, 3, () -> time(() -> streamPass(buffer, threads, pool))), params);
      figures.put("perturb_ns_per_param", round(ours, 3))
          .put("jdk_gaussian_ns_per_param", round(jdk, 3))
          .put("jdk_gaussian_parallel_ns_per_param", round(jdkParallel, 3))
          .put("kernel_speedup_vs_jdk", round(jdk / ours, 1))
          .put("kernel_speedup_vs_jdk_parallel", round(jdkParallel / ours, 1))
          .put("stream_ns_per_param", round(stream, 3))
          .put("kernel_over_stream", round(ours / stream, 2));
      pool.shutdownNow();
      err.printf(Locale.ROOT, "kernel: %.3f ns/param (JDK nextGaussian %.3f on 1 thread, %.3f on %d): %.1fx, %.1fx%n",
          ours, jdk, jdkParallel, threads, jdk / ours, jdkParallel / ours);
      err.printf(Locale.ROOT, "memory bar: a pass that only adds a constant costs %.3f ns/param; the kernel is %.2fx that%n",
          stream, ours / stream);

      // 2. Full-parameter MeZO step against two forward passes.
      MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-7f, 1L), kernel, 0);
      model.loss(tokens);
      trainer.step(tokens);
      double forwardMs = median(repeats, 0, () -> time(() -> model.loss(tokens))) / 1e6;
      double stepMs = median(repeats, 0, () -> time(() -> trainer.step(tokens))) / 1e6;
      figures.put("forward_ms", round(forwardMs, 1)).put("step_ms", round(stepMs, 1))
          .put("step_over_two_forwards", round(stepMs / (2 * forwardMs), 3));
      err.printf(Locale.ROOT, "full MeZO: forward %.1f ms, step %.1f ms, step / 2 forwards = %.3f%n",
          forwardMs, stepMs, stepMs / (2 * forwardMs));
    }

    // 3. LoRA (r=8, alpha=16 on attention): step against one forward of the adapted model.
    try (LossModel lora = LossModel.causalLm(onnx, TrainableSelection.lora(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      MezoTrainer trainer = new MezoTrainer(lora, new MezoConfig(1e-2f, 1e-4f, 1L), kernel, 0);
      lora.loss(tokens);
      trainer.step(tokens);
      double forwardMs = median(repeats, 0, () -> time(() -> lora.loss(tokens))) / 1e6;
      double stepMs = median(repeats, 0, () -> time(() -> trainer.step(tokens))) / 1e6;
      figures.put("lora_params", lora.parameters().size()).put("lora_forward_ms", round(forwardMs, 1))
          .put("lora_step_ms", round(stepMs, 1)).put("lora_step_over_one_forward", round(stepMs / forwardMs, 3));
      err.printf(Locale.ROOT, "LoRA MeZO (%,d adapter parameters): forward %.1f ms, step %.1f ms, step / forward = %.3f%n",
          lora.parameters().size(), forwardMs, stepMs, stepMs / forwardMs);
    }

    // 4. A side network beside the frozen backbone (r = 8, one tap per block): its MeZO step (one
    // backbone pass, one side pass over the doubled batch) and FZOO's (N = 8: one backbone pass,
    // one side pass over nine copies) against one forward of the base model on the same batch. The
    // backbone cache is off, so every step pays for its backbone pass; a second figure has it on.
    try (LossModel base = LossModel.causalLm(onnx, TrainableSelection.matching("transformer\\.ln_f\\.bias"), threads);
        LossModel side = LossModel.causalLm(onnx, TrainableSelection.side(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      side.backboneCacheBytes(0);
      MezoTrainer mezo = new MezoTrainer(side, new MezoConfig(1e-2f, 1e-3f, 1L), kernel, 0);
      MezoConfig fzooConfig = new MezoConfig(1e-2f, 1e-3f, 2L).withFzoo(8);
      MezoTrainer fzoo = new MezoTrainer(side, fzooConfig, kernel, 0);
      base.loss(tokens);
      mezo.step(tokens);
      fzoo.step(tokens);
      double[] ratio = new double[repeats];
      double[] fzooRatio = new double[repeats];
      double[] forward = new double[repeats];
      double[] step = new double[repeats];
      double[] fzooStep = new double[repeats];
      for (int i = 0; i < repeats; i++) {
        // interleaved, so a noisy neighbour slows both sides of each ratio alike
        forward[i] = time(() -> base.loss(tokens)) / 1e6;
        step[i] = time(() -> mezo.step(tokens)) / 1e6;
        fzooStep[i] = time(() -> fzoo.step(tokens)) / 1e6;
        ratio[i] = step[i] / forward[i];
        fzooRatio[i] = fzooStep[i] / forward[i];
      }
      side.backboneCacheBytes(LossModel.DEFAULT_BACKBONE_CACHE_BYTES);
      mezo.step(tokens);
      double cachedMs = median(repeats, 0, () -> time(() -> mezo.step(tokens))) / 1e6;
      long hits = side.backboneCacheHits();
      figures.put("side_params", side.parameters().size())
          .put("side_forward_ms", round(median(forward), 1))
          .put("side_step_ms", round(median(step), 1))
          .put("side_step_over_one_forward", round(median(ratio), 3))
          .put("side_cached_step_ms", round(cachedMs, 1))
          .put("side_cache_hits", hits)
          .put("fzoo_directions", fzooConfig.directions())
          .put("fzoo_side_step_ms", round(median(fzooStep), 1))
          .put("fzoo_side_step_over_one_forward", round(median(fzooRatio), 3))
          .put("fzoo_side_forwards_per_step", fzooConfig.directions() + 1);
      err.printf(Locale.ROOT, "side network (%,d parameters): forward %.1f ms, MeZO step %.1f ms (%.3f forwards),"
              + " FZOO-%d step %.1f ms (%.3f forwards for %d losses), cached MeZO step %.1f ms%n",
          side.parameters().size(), median(forward), median(step), median(ratio), fzooConfig.directions(),
          median(fzooStep), median(fzooRatio), fzooConfig.directions() + 1, cachedMs);
    }

    // 5. FZOO on every weight (no shared pass): N + 1 forwards through a scratch copy.
    try (LossModel full = LossModel.causalLm(onnx, TrainableSelection.all(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      MezoTrainer fzoo = new MezoTrainer(full, new MezoConfig(1e-3f, 1e-7f, 3L).withFzoo(8), kernel, 0);
      full.loss(tokens);
      double[] ratio = new double[Math.max(1, repeats / 2)];
      for (int i = 0; i < ratio.length; i++) {
        double f = time(() -> full.loss(tokens));
        ratio[i] = time(() -> fzoo.step(tokens)) / f;
      }
      figures.put("fzoo_full_step_over_one_forward", round(median(ratio), 3));
      err.printf(Locale.ROOT, "FZOO-8 on every weight: step = %.3f forwards%n", median(ratio));
    }

    // 6. Peak RSS, training against inference, in separate JVMs.
    if (!skipMemory) {
      long sideTrain = probe("train-side", batch);
      long sideNoCache = probe("train-side-nocache", batch);
      long sideFzoo = probe("train-side-fzoo", batch);
      long sideInfer = probe("infer", batch);
      figures.put("rss_side_mb", sideTrain / 1024).put("rss_side_nocache_mb", sideNoCache / 1024)
          .put("rss_side_fzoo_mb", sideFzoo / 1024)
          .put("side_rss_over_infer", round(sideTrain / (double) sideInfer, 3))
          .put("side_nocache_rss_over_infer", round(sideNoCache / (double) sideInfer, 3))
          .put("fzoo_side_rss_over_infer", round(sideFzoo / (double) sideInfer, 3));
      err.printf(Locale.ROOT, "peak RSS at batch %d: side MeZO %,d MB (cache off %,d MB), side FZOO %,d MB, inference %,d MB:"
          + " %.3f, %.3f, %.3f%n", batch, sideTrain / 1024, sideNoCache / 1024, sideFzoo / 1024, sideInfer / 1024,
          sideTrain / (double) sideInfer, sideNoCache / (double) sideInfer, sideFzoo / (double) sideInfer);

      for (int b : new int[] {batch, 1, 64}) {
        long train = probe("train", b);
        long infer = probe("infer", b);
        String suffix = b == batch ? "" : "_b" + b;
        figures.put("rss_train_mb" + suffix, train / 1024).put("rss_infer_mb" + suffix, infer / 1024)
            .put("rss_train_over_infer" + suffix, round(train / (double) infer, 3));
        err.printf(Locale.ROOT, "peak RSS at batch %d: training %,d MB, inference %,d MB, ratio %.3f%n",
            b, train / 1024, infer / 1024, train / (double) infer);
      }
    }
    out.println(figures);
    return 0;
  }

  private void realData(Figures figures, PrintWriter err, int threads) throws java.io.IOException {
    RealDataEvaluation eval = new RealDataEvaluation(threads);
    java.nio.file.Path sms = realData.resolve("sms").resolve("SMSSpamCollection");
    if (java.nio.file.Files.exists(sms)) {
      RealDataEvaluation.SmsResult r = eval.sms(sms, smsSteps, 16, 400);
      figures.put("sms_steps", r.steps()).put("sms_heldout_messages", r.heldoutMessages())
          .put("sms_heldout_loss_before", round(r.lossBefore(), 4)).put("sms_heldout_loss_after", round(r.lossAfter(), 4));
      err.printf(Locale.ROOT, "SMS (%,d train, %d held-out messages, %d steps): held-out loss %.4f -> %.4f%n",
          r.trainMessages(), r.heldoutMessages(), r.steps(), r.lossBefore(), r.lossAfter());
    } else {
      err.println("SMS: skipped, " + sms + " is absent");
    }
    for (String split : new String[] {"16-42"}) {
      java.nio.file.Path folder = realData.resolve("sst2-kshot").resolve(split);
      if (!java.nio.file.Files.exists(folder)) {
        err.println("SST-2 " + split + ": skipped, " + folder + " is absent");
        continue;
      }
      RealDataEvaluation.Sst2Result r = eval.sst2(folder, sst2Steps, sst2Lr);
      String key = "sst2_" + split.replace('-', '_');
      figures.put(key + "_steps", r.steps()).put(key + "_test_accuracy_before", round(r.accuracyBefore(), 4))
          .put(key + "_test_accuracy_after", round(r.accuracyAfter(), 4))
          .put(key + "_train_loss_before", round(r.trainLossBefore(), 4)).put(key + "_train_loss_after", round(r.trainLossAfter(), 4));
      err.printf(Locale.ROOT, "SST-2 %s (%d train, %d test, %d steps): test accuracy %.4f -> %.4f, train loss %.4f -> %.4f%n",
          split, r.trainExamples(), r.testExamples(), r.steps(), r.accuracyBefore(), r.accuracyAfter(),
          r.trainLossBefore(), r.trainLossAfter());
    }
  }

  private long probe(String mode, int b) throws Exception {
    return MemoryProbe.inChild(mode, modelName, b, seq, 3);
  }

  /** The same pass as the kernel's, with z from SplittableRandom.nextGaussian on one thread. */
  private static void jdkPass(FloatBuffer p, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    float[] block = new float[2048];
    int n = p.capacity();
    for (int start = 0; start < n; start += block.length) {
      int len = Math.min(block.length, n - start);
      p.get(start, block, 0, len);
      for (int j = 0; j < len; j++) {
        block[j] += 1e-3f * (float) rng.nextGaussian();
      }
      p.put(start, block, 0, len);
    }
  }

  /** The JDK pass split over threads, one generator per chunk (split from a root generator). */
  private static void jdkParallelPass(FloatBuffer p, long seed, int threads, ExecutorService pool) {
    try {
      int n = p.capacity();
      int per = (n + threads - 1) / threads;
      SplittableRandom root = new SplittableRandom(seed);
      List<Future<?>> fs = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int from = t * per;
        int to = Math.min(n, from + per);
        SplittableRandom rng = root.split();
        fs.add(pool.submit(() -> {
          float[] block = new float[2048];
          for (int start = from; start < to; start += block.length) {
            int len = Math.min(block.length, to - start);
            p.get(start, block, 0, len);
            for (int j = 0; j < len; j++) {
              block[j] += 1e-3f * (float) rng.nextGaussian();
            }
            p.put(start, block, 0, len);
          }
        }));
      }
      for (Future<?> f : fs) {
        f.get();
      }
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * The memory-bound bar: the same blocked read-modify-write pass over the buffer on all threads,
   * adding a constant instead of a random value. No perturbation kernel can beat it.
   */
  private static void streamPass(FloatBuffer p, int threads, ExecutorService pool) {
    try {
      int n = p.capacity();
      int per = (n + threads - 1) / threads;
      List<Future<?>> fs = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int from = t * per;
        int to = Math.min(n, from + per);
        fs.add(pool.submit(() -> {
          float[] block = new float[2048];
          for (int start = from; start < to; start += block.length) {
            int len = Math.min(block.length, to - start);
            p.get(start, block, 0, len);
            for (int j = 0; j < len; j++) {
              block[j] += 1e-3f;
            }
            p.put(start, block, 0, len);
          }
        }));
      }
      for (Future<?> f : fs) {
        f.get();
      }
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static long time(Runnable r) {
    long t0 = System.nanoTime();
    r.run();
    return System.nanoTime() - t0;
  }

  private static double median(double[] values) {
    double[] v = values.clone();
    Arrays.sort(v);
    return v[v.length / 2];
  }

  /** Median of {@code n} timed runs after {@code warmup} untimed ones. */
  private static double median(int n, int warmup, LongSupplier run) {
    for (int i = 0; i < warmup; i++) {
      run.getAsLong();
    }
    long[] t = new long[n];
    for (int i = 0; i < n; i++) {
      t[i] = run.getAsLong();
    }
    Arrays.sort(t);
    return t[n / 2];
  }

  private static double perParam(double nanos, long params) {
    return nanos / params;
  }

  private static double round(double v, int digits) {
    double f = Math.pow(10, digits);
    return Math.round(v * f) / f;
  }
}
