package io.pockettune.bench;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.Objective;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Child process of {@code pockettune bench trainer} that measures peak resident memory (VmHWM) of
 * either MeZO training or plain inference on the same model and batch, so the two are compared in
 * separate JVMs with identical settings. Usage: {@code MemoryProbe MODE MODEL BATCH SEQ STEPS} with
 * MODE {@code train} (full-parameter MeZO), {@code infer}, or {@code train-side[-nocache][-fzoo]}
 * (a side network)
 * for the in-house decoders, {@code MemoryProbe train-minilm|infer-minilm ONNX BATCH SEQ STEPS} for
 * all-MiniLM-L6-v2; prints {@code peak_rss_kb=N}.
 */
final class MemoryProbe {
  private MemoryProbe() {}

  /**
   * Runs this probe in a child JVM on this JVM's class path (4 GB heap, serial GC, as every probe)
   * and returns its peak resident set in kB.
   */
  static long inChild(String mode, String model, int batch, int seq, int steps) throws Exception {
    String javaBin = ProcessHandle.current().info().command().orElse("java");
    java.util.List<String> cmd = new java.util.ArrayList<>(java.util.List.of(javaBin, "-Xmx4g", "-XX:+UseSerialGC",
        "-DOPT_OUT_TRACKING=true", "-Dai.djl.offline=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=error",
        "-cp", System.getProperty("java.class.path"), MemoryProbe.class.getName(), mode, model,
        Integer.toString(batch), Integer.toString(seq), Integer.toString(steps)));
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    long peak = -1;
    StringBuilder all = new StringBuilder();
    try (java.io.BufferedReader r = new java.io.BufferedReader(
        new java.io.InputStreamReader(p.getInputStream(), java.nio.charset.StandardCharsets.UTF_8))) {
      for (String line = r.readLine(); line != null; line = r.readLine()) {
        all.append(line).append('\n');
        if (line.startsWith("peak_rss_kb=")) {
          peak = Long.parseLong(line.substring("peak_rss_kb=".length()));
        }
      }
    }
    if (p.waitFor() != 0 || peak < 0) {
      throw new IllegalStateException("the " + mode + " memory probe failed: " + all);
    }
    return peak;
  }

  public static void main(String[] args) throws Exception {
    System.setProperty("OPT_OUT_TRACKING", "true");
    System.setProperty("ai.djl.offline", "true");
    String mode = args[0];
    if (mode.endsWith("-minilm")) {
      minilm(mode, Path.of(args[1]), Integer.parseInt(args[2]), Integer.parseInt(args[3]), Integer.parseInt(args[4]));
      System.out.println("peak_rss_kb=" + peakRssKb());
      return;
    }
    DecoderLmConfig config = switch (args[1]) {
      case "gpt2-small" -> DecoderLmConfig.gpt2Small();
      case "demo" -> DecoderLmConfig.demo();
      default -> DecoderLmConfig.bench10m();
    };
    int batch = Integer.parseInt(args[2]);
    int seq = Integer.parseInt(args[3]);
    int steps = Integer.parseInt(args[4]);
    int threads = Integer.getInteger("pockettune.probe.threads", Runtime.getRuntime().availableProcessors());
    TokenBatch tokens = randomBatch(batch, seq, config.vocabSize());
    byte[] onnx = DecoderLmBuilder.build(config);
    if (mode.startsWith("train-side")) {
      // A side network beside the frozen backbone: MeZO (or FZOO, 8 directions), with the backbone
      // cache at its default bound, or off ("nocache").
      try (LossModel model = LossModel.causalLm(onnx, TrainableSelection.side(), threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        onnx = null;
        if (mode.contains("nocache")) {
          model.backboneCacheBytes(0);
        }
        MezoConfig mezo = new MezoConfig(1e-2f, 1e-3f, 1L);
        MezoTrainer trainer = new MezoTrainer(model, mode.contains("fzoo") ? mezo.withFzoo(8) : mezo, kernel, 0);
        for (int i = 0; i < steps; i++) {
          trainer.step(tokens);
        }
      }
    } else if (mode.equals("train")) {
      try (LossModel model = LossModel.causalLm(onnx, TrainableSelection.all(), threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        onnx = null;
        MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-6f, 1L), kernel, 0);
        for (int i = 0; i < steps; i++) {
          trainer.step(tokens);
        }
      }
    } else {
      // Inference as a user would run it: the model as built, weights inside the session, logits out.
      Path file = Files.createTempFile("pockettune-probe", ".onnx");
      try {
        Files.write(file, onnx);
        try (Model model = Model.newInstance("probe", Device.cpu(), "OnnxRuntime")) {
          model.load(new ByteArrayInputStream(onnx), Map.of("intraOpNumThreads", Integer.toString(threads), "interOpNumThreads", "1"));
          onnx = null;
          NDManager m = model.getNDManager();
          try (Predictor<NDList, NDList> p = model.newPredictor(new NoopTranslator())) {
            for (int i = 0; i < 2 * steps; i++) {
              NDList in = new NDList(
                  m.create(longs(tokens.ids()), new Shape(batch, seq), DataType.INT64),
                  m.create(longs(tokens.mask()), new Shape(batch, seq), DataType.INT64));
              in.get(0).setName("input_ids");
              in.get(1).setName("attention_mask");
              p.predict(in).close();
              in.close();
            }
          }
        }
      } finally {
        Files.deleteIfExists(file);
      }
    }
    System.out.println("peak_rss_kb=" + peakRssKb());
  }

  /**
   * all-MiniLM-L6-v2 as PocketTune trains it (embedding classification, every weight and the head
   * trainable) or as an app runs it (the graph as exported, weights inside the session). Modes
   * {@code train-minilm} and {@code infer-minilm}; {@code onnx} is the export, its tokenizer.json beside it as
   * {@code all-minilm-l6-v2-tokenizer.json}.
   */
  private static void minilm(String mode, Path onnx, int batch, int seq, int steps) throws Exception {
    int threads = Integer.getInteger("pockettune.probe.threads", Runtime.getRuntime().availableProcessors());
    TokenBatch tokens = randomBatch(batch, seq, 30522);
    if (mode.equals("train-minilm")) {
      long[] labels = new long[batch];
      for (int i = 0; i < batch; i++) {
        labels[i] = i % 2;
      }
      Objective.EmbeddingClassification objective;
      try (HuggingFaceTextTokenizer tok = HuggingFaceTextTokenizer.load(onnx.resolveSibling("all-minilm-l6-v2-tokenizer.json"), 128)) {
        objective = new Objective.EmbeddingClassification(Objective.Pooling.MEAN,
            java.util.List.of(tok.encode("It was terrible.", 128), tok.encode("It was great.", 128)), 20f);
      }
      try (LossModel model = LossModel.open(onnx, objective, TrainableSelection.all(), threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        MezoTrainer trainer = new MezoTrainer(model, new MezoConfig(1e-3f, 1e-6f, 1L), kernel, 0);
        TokenBatch labelled = tokens.withLabels(labels);
        for (int i = 0; i < steps; i++) {
          trainer.step(labelled);
        }
      }
      return;
    }
    try (Model model = Model.newInstance("probe", Device.cpu(), "OnnxRuntime")) {
      try (java.io.InputStream in = Files.newInputStream(onnx)) {
        model.load(in, Map.of("intraOpNumThreads", Integer.toString(threads), "interOpNumThreads", "1"));
      }
      NDManager m = model.getNDManager();
      try (Predictor<NDList, NDList> p = model.newPredictor(new NoopTranslator())) {
        for (int i = 0; i < 2 * steps; i++) {
          NDList in = new NDList(
              m.create(longs(tokens.ids()), new Shape(batch, seq), DataType.INT64),
              m.create(longs(tokens.mask()), new Shape(batch, seq), DataType.INT64),
              m.create(longs(new long[batch * seq]), new Shape(batch, seq), DataType.INT64));
          in.get(0).setName("input_ids");
          in.get(1).setName("attention_mask");
          in.get(2).setName("token_type_ids");
          p.predict(in).close();
          in.close();
        }
      }
    }
  }

  static TokenBatch randomBatch(int batch, int seq, int vocab) {
    SplittableRandom rng = new SplittableRandom(7);
    long[] ids = new long[batch * seq];
    long[] mask = new long[batch * seq];
    for (int i = 0; i < ids.length; i++) {
      ids[i] = 3 + rng.nextInt(vocab - 3);
      mask[i] = 1;
    }
    return new TokenBatch(batch, seq, ids, mask);
  }

  private static ByteBuffer longs(long[] values) {
    ByteBuffer b = ByteBuffer.allocateDirect(values.length * Long.BYTES).order(ByteOrder.nativeOrder());
    b.asLongBuffer().put(values);
    return b;
  }

  /** Peak resident set size of this process, from /proc (Linux). */
  static long peakRssKb() throws java.io.IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", ""));
      }
    }
    return -1;
  }
}
