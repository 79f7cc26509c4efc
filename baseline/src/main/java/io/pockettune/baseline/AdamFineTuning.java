package io.pockettune.baseline;

import ai.djl.Device;
import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.NoopTranslator;
import ai.djl.translate.TranslateException;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The backprop-with-Adam baseline of issue 11: full fine-tuning of all-MiniLM-L6-v2 (every encoder
 * parameter and the head) for PocketTune's embedding-classification objective, which {@code
 * pockettune bench quality} sets against the MeZO trainer on the same data. The objective is
 * {@link EmbeddingClassifier}'s, i.e. the trainer's: mean pooling over real tokens, {@code
 * temperature * cos(pooled, head_j)}, cross-entropy; the head starts as the label prompts' pooled
 * embeddings, so step 0 is the zero-shot classifier. Texts and prompts are tokenized by trainer's
 * {@link HuggingFaceTextTokenizer} with {@code maxTokens}, as the pipeline does, so both sides see
 * the same token ids.
 *
 * <p>Training runs on DJL's PyTorch engine with {@code threads} intra-op threads, set on the
 * calling thread (which runs every forward and backward); Adam is DJL's ({@link Optimizer#adam},
 * betas 0.9 and 0.999, epsilon 1e-8, no weight decay) at a constant learning rate. Not
 * thread-safe in the sense that two runs in one JVM share libtorch's thread setting.
 */
public final class AdamFineTuning {
  static {
    // DJL reports usage to a telemetry endpoint and downloads engines unless told not to.
    if (System.getProperty("OPT_OUT_TRACKING") == null) {
      System.setProperty("OPT_OUT_TRACKING", "true");
    }
    if (System.getProperty("ai.djl.offline") == null) {
      System.setProperty("ai.djl.offline", "true");
    }
  }

  /** Rows per forward pass when measuring accuracy. */
  static final int EVAL_BATCH = 32;
  /** First four bytes of a head file, ASCII "PTHD". */
  private static final int HEAD_MAGIC = 0x44485450;

  private AdamFineTuning() {}

  /** A text and the index of its label (into {@link Settings#labelPrompts}). */
  public record Example(String text, int label) {}

  /**
   * lr constant; steps of {@code batch} examples taken consecutively from {@code train} in the
   * given order, wrapping around; evaluations: dev accuracy measured at each 1/evaluations of
   * training (10 -> steps/10, 2*steps/10, ... steps, rounded down).
   *
   * @param maxTokens    longest token sequence, special tokens included (PocketTune's default is 128)
   * @param temperature  scale of the cosine scores (PocketTune's default is 20)
   * @param labelPrompts per label, the text whose pooled embedding starts its head row
   * @param threads      PyTorch intra-op threads for training; ONNX Runtime's for {@link #onnxRuntimeAccuracy}.
   *                     libtorch's OpenMP threads spin while they wait: on a machine busy with other
   *                     work, 2 threads measured 5-9 times slower per step than 1 unless the JVM was
   *                     started with the environment variable {@code OMP_WAIT_POLICY=PASSIVE}
   *                     (read once, when libtorch loads; Java cannot set it afterwards)
   */
  public record Settings(float learningRate, int steps, int batch, int evaluations, int maxTokens,
      float temperature, List<String> labelPrompts, int threads) {
    public Settings {
      labelPrompts = List.copyOf(labelPrompts);
      if (steps < 1 || batch < 1 || maxTokens < 2 || threads < 1) {
        throw new IllegalArgumentException("steps, batch and threads must be positive and maxTokens at least 2: " + steps
            + ", " + batch + ", " + threads + ", " + maxTokens);
      }
      if (evaluations < 1 || evaluations > steps) {
        throw new IllegalArgumentException("evaluations must be between 1 and steps (" + steps + "), was " + evaluations);
      }
      if (labelPrompts.size() < 2) {
        throw new IllegalArgumentException("a classifier needs at least two label prompts, got " + labelPrompts.size());
      }
      if (!(temperature > 0) || !Float.isFinite(temperature) || !(learningRate > 0)) {
        throw new IllegalArgumentException("temperature and learning rate must be positive: " + temperature + ", " + learningRate);
      }
    }
  }

  /** Dev accuracy after {@code step} Adam steps. */
  public record Evaluation(int step, double devAccuracy) {}

  /**
   * selectedStep: the evaluation with the highest dev accuracy (first one on ties); the exported
   * files hold the weights at that step.
   *
   * @param forwardPasses  training forward passes (one per step; evaluations not counted)
   * @param backwardPasses training backward passes (one per step)
   * @param trainSeconds   wall time of the training steps (forward, backward, Adam update), evaluations excluded
   * @param exportedOnnx   the input model with the selected step's weights, {@code outDir/adam-finetuned.onnx}
   * @param exportedHead   the selected step's head, {@code outDir/adam-head.bin} (see {@link #writeHead})
   */
  public record Result(List<Evaluation> evaluations, int selectedStep, double selectedDevAccuracy,
      long forwardPasses, long backwardPasses, double trainSeconds, Path exportedOnnx, Path exportedHead) {
    public Result {
      evaluations = List.copyOf(evaluations);
    }
  }

  /**
   * Fine-tunes the model on {@code train}, measures dev accuracy {@code s.evaluations()} times,
   * keeps the best weights in memory and exports them to {@code outDir} (created if missing).
   *
   * @param onnx          an optimum export of all-MiniLM-L6-v2, weights inside the file
   * @param tokenizerJson its tokenizer.json
   * @throws IllegalArgumentException if a set is empty or a label is not an index of the label prompts
   */
  public static Result run(Path onnx, Path tokenizerJson, List<Example> train, List<Example> dev, Settings s, Path outDir)
      throws IOException {
    checkExamples("train", train, s);
    checkExamples("dev", dev, s);
    Files.createDirectories(outDir);
    List<long[]> trainIds;
    List<long[]> devIds;
    List<long[]> promptIds;
    try (HuggingFaceTextTokenizer tokenizer = HuggingFaceTextTokenizer.load(tokenizerJson, s.maxTokens())) {
      trainIds = encode(tokenizer, train.stream().map(Example::text).toList(), s.maxTokens());
      devIds = encode(tokenizer, dev.stream().map(Example::text).toList(), s.maxTokens());
      promptIds = encode(tokenizer, s.labelPrompts(), s.maxTokens());
    }
    int[] trainLabels = train.stream().mapToInt(Example::label).toArray();
    int[] devLabels = dev.stream().mapToInt(Example::label).toArray();
    try (NDManager nd = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      useThreads(s.threads());
      try (EmbeddingClassifier model = EmbeddingClassifier.load(onnx, promptIds, s.temperature(), nd)) {
        Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(s.learningRate())).build();
        List<Evaluation> evaluations = new ArrayList<>();
        int nextEvaluation = 1;
        double bestAccuracy = -1;
        int bestStep = -1;
        Map<String, float[]> bestEncoder = null;
        float[][] bestHead = null;
        long nanos = 0;
        long passes = 0;
        for (int step = 1; step <= s.steps(); step++) {
          long t0 = System.nanoTime();
          List<long[]> rows = new ArrayList<>(s.batch());
          int[] labels = new int[s.batch()];
          for (int j = 0; j < s.batch(); j++) {
            int i = (int) (((long) (step - 1) * s.batch() + j) % train.size());
            rows.add(trainIds.get(i));
            labels[j] = trainLabels[i];
          }
          adamStep(model, adam, rows, labels, nd);
          passes++;
          nanos += System.nanoTime() - t0;
          if (step == (int) ((long) nextEvaluation * s.steps() / s.evaluations())) {
            double accuracy = accuracy(model.predict(devIds, EVAL_BATCH, nd), devLabels);
            evaluations.add(new Evaluation(step, accuracy));
            if (accuracy > bestAccuracy) {
              bestAccuracy = accuracy;
              bestStep = step;
              bestEncoder = model.encoder().snapshot();
              bestHead = model.head();
            }
            nextEvaluation++;
          }
        }
        Path exportedOnnx = outDir.resolve("adam-finetuned.onnx");
        Path exportedHead = outDir.resolve("adam-head.bin");
        BertEncoder.writeParameters(onnx, bestEncoder, exportedOnnx);
        writeHead(bestHead, exportedHead);
        return new Result(evaluations, bestStep, bestAccuracy, passes, passes, nanos / 1e9, exportedOnnx, exportedHead);
      }
    }
  }

  /** One training step: forward and backward in a gradient collector, then Adam on every parameter. */
  static float adamStep(EmbeddingClassifier model, Optimizer adam, List<long[]> rows, int[] labels, NDManager nd) {
    float loss;
    try (NDManager step = nd.newSubManager()) {
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray l = model.loss(rows, labels, step);
        loss = l.getFloat();
        gc.backward(l);
      }
      for (Map.Entry<String, NDArray> p : model.parameters().entrySet()) {
        // DJL's PyTorch Adam zeroes the gradient after the in-place update; the handle is ours to free.
        try (NDArray grad = p.getValue().getGradient()) {
          adam.update(p.getKey(), p.getValue(), grad);
        }
      }
    }
    return loss;
  }

  /** Sets libtorch's intra-op threads for the calling thread and checks that it took. */
  static void useThreads(int threads) {
    JniUtils.setNumThreads(threads);
    if (JniUtils.getNumThreads() != threads) {
      throw new IllegalStateException("libtorch kept " + JniUtils.getNumThreads() + " intra-op threads, " + threads + " asked for");
    }
  }

  private static void checkExamples(String set, List<Example> examples, Settings s) {
    if (examples.isEmpty()) {
      throw new IllegalArgumentException("the " + set + " set is empty");
    }
    for (Example e : examples) {
      if (e.label() < 0 || e.label() >= s.labelPrompts().size()) {
        throw new IllegalArgumentException("a " + set + " example has label " + e.label() + ", outside 0.."
            + (s.labelPrompts().size() - 1) + " of the label prompts");
      }
    }
  }

  static List<long[]> encode(HuggingFaceTextTokenizer tokenizer, List<String> texts, int maxTokens) {
    List<long[]> ids = new ArrayList<>(texts.size());
    for (String t : texts) {
      ids.add(tokenizer.encode(t, maxTokens));
    }
    return ids;
  }

  static double accuracy(int[] predicted, int[] labels) {
    int correct = 0;
    for (int i = 0; i < labels.length; i++) {
      if (predicted[i] == labels[i]) {
        correct++;
      }
    }
    return (double) correct / labels.length;
  }

  /**
   * Writes a head as: the ASCII bytes "PTHD", int32 labels, int32 hidden, then labels × hidden
   * float32 row-major (row j is label j's direction); all little-endian.
   */
  public static void writeHead(float[][] head, Path file) throws IOException {
    int hidden = head[0].length;
    ByteBuffer b = ByteBuffer.allocate(12 + 4 * head.length * hidden).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(HEAD_MAGIC).putInt(head.length).putInt(hidden);
    for (float[] row : head) {
      if (row.length != hidden) {
        throw new IllegalArgumentException("head rows differ in length: " + row.length + " and " + hidden);
      }
      for (float v : row) {
        b.putFloat(v);
      }
    }
    Files.write(file, b.array());
  }

  /** @return the head {@link #writeHead} wrote, [labels][hidden] */
  public static float[][] readHead(Path file) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    if (b.remaining() < 12 || b.getInt() != HEAD_MAGIC) {
      throw new IOException(file + " is not a head file (it does not start with PTHD)");
    }
    int labels = b.getInt();
    int hidden = b.getInt();
    if (labels < 1 || hidden < 1 || b.remaining() != 4L * labels * hidden) {
      throw new IOException(file + " holds " + b.remaining() + " bytes for a " + labels + " x " + hidden + " head");
    }
    float[][] head = new float[labels][hidden];
    for (float[] row : head) {
      for (int d = 0; d < hidden; d++) {
        row[d] = b.getFloat();
      }
    }
    return head;
  }

  /**
   * Accuracy of an exported model through a plain ONNX Runtime session (DJL onnxruntime engine):
   * the exported graph's last_hidden_state, mean pooled, cosine with the exported head times
   * temperature, argmax (the first label on ties). Texts are tokenized as in {@link #run}, in
   * batches of {@value #EVAL_BATCH} padded to their longest row; the session has {@code
   * s.threads()} intra-op threads.
   */
  public static double onnxRuntimeAccuracy(Path exportedOnnx, Path exportedHead, Path tokenizerJson, List<Example> examples,
      Settings s) throws IOException {
    checkExamples("evaluation", examples, s);
    return accuracy(onnxRuntimePredictions(exportedOnnx, exportedHead, tokenizerJson, examples, s),
        examples.stream().mapToInt(Example::label).toArray());
  }

  /** @return per example, the label {@link #onnxRuntimeAccuracy} predicts */
  static int[] onnxRuntimePredictions(Path exportedOnnx, Path exportedHead, Path tokenizerJson, List<Example> examples,
      Settings s) throws IOException {
    float[][] head = readHead(exportedHead);
    if (head.length != s.labelPrompts().size()) {
      throw new IllegalArgumentException(exportedHead + " has " + head.length + " labels, the settings " + s.labelPrompts().size());
    }
    float[][] unitHead = new float[head.length][];
    for (int j = 0; j < head.length; j++) {
      unitHead[j] = unit(head[j]);
    }
    List<long[]> ids;
    try (HuggingFaceTextTokenizer tokenizer = HuggingFaceTextTokenizer.load(tokenizerJson, s.maxTokens())) {
      ids = encode(tokenizer, examples.stream().map(Example::text).toList(), s.maxTokens());
    }
    int[] predicted = new int[ids.size()];
    try (Model m = Model.newInstance("exported", Device.cpu(), "OnnxRuntime")) {
      m.load(exportedOnnx.toAbsolutePath().getParent(), exportedOnnx.getFileName().toString(),
          Map.of("intraOpNumThreads", Integer.toString(s.threads()), "interOpNumThreads", "1"));
      List<String> inputNames = m.describeInput().keys();
      try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator())) {
        for (int from = 0; from < ids.size(); from += EVAL_BATCH) {
          List<long[]> part = ids.subList(from, Math.min(ids.size(), from + EVAL_BATCH));
          try (NDManager nd = NDManager.newBaseManager(Device.cpu(), "OnnxRuntime")) {
            NDList all = EmbeddingClassifier.inputs(part, nd);
            long[] mask = all.get(1).toLongArray();
            int length = (int) all.get(0).getShape().get(1);
            NDList fed = new NDList();
            for (NDArray a : all) {
              if (inputNames.contains(a.getName())) {
                fed.add(a);
              }
            }
            float[] hidden;
            int width;
            try (NDList out = p.predict(fed)) {
              NDArray h = out.get("last_hidden_state");
              width = (int) h.getShape().get(2);
              hidden = h.toFloatArray();
            }
            for (int r = 0; r < part.size(); r++) {
              predicted[from + r] = argmax(unit(meanPool(hidden, mask, r, length, width)), unitHead, s.temperature());
            }
          }
        }
      } catch (TranslateException e) {
        throw new IOException("ONNX Runtime failed on " + exportedOnnx + ": " + e.getMessage(), e);
      }
    } catch (MalformedModelException e) {
      throw new IOException(exportedOnnx + " is not a model ONNX Runtime can load: " + e.getMessage(), e);
    }
    return predicted;
  }

  private static float[] meanPool(float[] hidden, long[] mask, int row, int length, int width) {
    double[] sum = new double[width];
    int count = 0;
    for (int t = 0; t < length; t++) {
      if (mask[row * length + t] != 0) {
        count++;
        int base = (row * length + t) * width;
        for (int d = 0; d < width; d++) {
          sum[d] += hidden[base + d];
        }
      }
    }
    float[] mean = new float[width];
    for (int d = 0; d < width; d++) {
      mean[d] = (float) (sum[d] / Math.max(count, 1));
    }
    return mean;
  }

  private static float[] unit(float[] x) {
    double sq = 0;
    for (float v : x) {
      sq += (double) v * v;
    }
    double norm = Math.max(Math.sqrt(sq), 1e-12);
    float[] u = new float[x.length];
    for (int i = 0; i < x.length; i++) {
      u[i] = (float) (x[i] / norm);
    }
    return u;
  }

  private static int argmax(float[] unitRow, float[][] unitHead, float temperature) {
    int best = 0;
    double bestScore = Double.NEGATIVE_INFINITY;
    for (int j = 0; j < unitHead.length; j++) {
      double dot = 0;
      for (int d = 0; d < unitRow.length; d++) {
        dot += (double) unitRow[d] * unitHead[j][d];
      }
      double score = temperature * dot;
      if (score > bestScore) {
        bestScore = score;
        best = j;
      }
    }
    return best;
  }

  /**
   * Memory probe child process: args {@code minilm ONNX_FILE BATCH TOKENS STEPS}: loads the model
   * and a 2-label head, then takes STEPS Adam steps on BATCH random sequences of TOKENS tokens
   * (full mask, [CLS] first and [SEP] last, random labels), so the peak holds what Adam fine-tuning
   * costs: parameters, gradients, both Adam moments and the activations autograd keeps. Prints one
   * line {@code peak_rss_kb=N} (VmHWM from /proc/self/status) and exits 0. Intra-op threads follow
   * {@code -Dai.djl.pytorch.num_threads} (libtorch's default otherwise). The process's heap counts
   * too: the ONNX file is parsed on the heap while loading.
   */
  public static void main(String[] args) throws Exception {
    if (args.length != 5 || !args[0].equals("minilm")) {
      System.err.println("usage: AdamFineTuning minilm ONNX_FILE BATCH TOKENS STEPS");
      System.exit(2);
    }
    Path onnx = Path.of(args[1]);
    int batch = Integer.parseInt(args[2]);
    int tokens = Integer.parseInt(args[3]);
    int steps = Integer.parseInt(args[4]);
    if (batch < 1 || tokens < 2 || steps < 1) {
      System.err.println("BATCH and STEPS must be positive and TOKENS at least 2");
      System.exit(2);
    }
    Random random = new Random(11);
    try (NDManager nd = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      List<long[]> prompts = List.of(randomSequence(random, 8), randomSequence(random, 8));
      try (EmbeddingClassifier model = EmbeddingClassifier.load(onnx, prompts, 20f, nd)) {
        System.err.println("loaded: " + status("VmRSS") + " kB resident, peak " + status("VmHWM") + " kB");
        Optimizer adam = Optimizer.adam().optLearningRateTracker(Tracker.fixed(1e-5f)).build();
        for (int step = 0; step < steps; step++) {
          List<long[]> rows = new ArrayList<>(batch);
          int[] labels = new int[batch];
          for (int r = 0; r < batch; r++) {
            rows.add(randomSequence(random, tokens));
            labels[r] = random.nextInt(2);
          }
          long t0 = System.nanoTime();
          float loss = adamStep(model, adam, rows, labels, nd);
          System.err.printf("step %d: loss %.4f, %.1f ms%n", step + 1, loss, (System.nanoTime() - t0) / 1e6);
        }
      }
    }
    System.out.println("peak_rss_kb=" + status("VmHWM"));
    System.exit(0);
  }

  /** BERT's [CLS], random word pieces, [SEP]. */
  private static long[] randomSequence(Random random, int tokens) {
    long[] ids = new long[tokens];
    ids[0] = 101;
    for (int t = 1; t < tokens - 1; t++) {
      ids[t] = 1000 + random.nextInt(30522 - 1000);
    }
    ids[tokens - 1] = 102;
    return ids;
  }

  /** A kB figure of this process from /proc/self/status, e.g. VmHWM (peak resident set). */
  static long status(String field) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith(field + ":")) {
        return Long.parseLong(line.substring(field.length() + 1).replace("kB", "").trim());
      }
    }
    throw new IOException("/proc/self/status has no " + field + " line");
  }
}
