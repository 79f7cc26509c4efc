package io.pockettune.bench;

import ai.djl.Device;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.pockettune.baseline.AdamFineTuning;
import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import io.pockettune.store.Checkpoint;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.kafka.common.TopicPartition;

/**
 * One job of {@code pockettune bench quality}, in its own JVM so that its peak resident set (VmHWM)
 * is its own: one task (SST-2 16-shot or 512-shot, the SMS spam stream) and one method (zero-shot,
 * nearest centroid, MeZO full / LoRA / norms through the PocketTune runtime, Adam through DJL's
 * PyTorch engine) over its learning-rate grid and every seed. Usage: {@code QualityWorker JOB_JSON};
 * prints one line {@code quality_result=JSON}.
 *
 * <h2>MeZO runs are the product's path</h2>
 * Each (learning rate, seed) gets a fresh data directory: the training stream (epochs of the k-shot
 * set, each in its own shuffle drawn from the seed) is appended as labelled message events with
 * event times in January, the dev sentences in March, the test sentences in June, all under one
 * conversation (one partition, so the stream order is the log order). {@code train} runs in the
 * foreground up to the end of the training events with a checkpoint (and a snapshot) at every
 * tenth; {@code replay} of the dev events evaluates every checkpoint; the checkpoint with the best
 * dev accuracy (the earliest on ties) is selected; {@code replay} of the test events at that
 * checkpoint gives the test accuracy. Then the selected checkpoint is {@code export}ed and the test
 * accuracy recomputed through a plain ONNX Runtime session on the exported graph: the two must agree.
 *
 * <h2>Learning rates</h2>
 * The grid is searched on the first seed only (dev accuracy at the selected checkpoint; the smaller
 * rate on ties); the other seeds run at the chosen rate. No test example takes part in any choice.
 */
final class QualityWorker {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String MINILM = MinilmFiles.ONNX;
  private static final String TOKENIZER = MinilmFiles.TOKENIZER;
  private static final Instant TRAIN_START = Instant.parse("2026-01-01T00:00:00Z");
  private static final Instant DEV_START = Instant.parse("2026-03-01T00:00:00Z");
  private static final Instant TEST_START = Instant.parse("2026-06-01T00:00:00Z");
  static final String LORA = "lora:8:16:.*/attention/self/(query|value)/MatMul";

  private final JsonNode job;
  private final Path work;
  private final Path data;
  private final int threads;

  private QualityWorker(JsonNode job) {
    this.job = job;
    this.work = Path.of(job.path("work").asText());
    this.data = Path.of(job.path("data").asText());
    this.threads = job.path("threads").asInt(1);
  }

  public static void main(String[] args) throws Exception {
    System.setProperty("OPT_OUT_TRACKING", "true");
    System.setProperty("ai.djl.offline", "true");
    JsonNode job = JSON.readTree(args[0]);
    QualityWorker w = new QualityWorker(job);
    Files.createDirectories(w.work);
    long t0 = System.nanoTime();
    ObjectNode result = w.run();
    double seconds = round((System.nanoTime() - t0) / 1e9, 1);
    if (!result.has("seconds")) { // one evaluation, no seeds: the job is the method's run
      result.put("seconds", seconds);
    }
    result.put("task", job.path("task").asText()).put("method", job.path("method").asText())
        .put("job_seconds", seconds)
        .put("peak_rss_mb", Math.round(MemoryProbe.peakRssKb() / 1024.0));
    System.out.println("quality_result=" + JSON.writeValueAsString(result));
    System.exit(0); // DJL's PyTorch engine leaves non-daemon threads behind
  }

  private ObjectNode run() throws Exception {
    String task = job.path("task").asText();
    String method = job.path("method").asText();
    if (task.equals("sms")) {
      return sms(method);
    }
    if (task.equals("lm-methods")) {
      LmComparison.Settings s = job.path("quick").asBoolean()
          ? new LmComparison.Settings(36, 10, List.of(1L), Map.of("side", List.of(1e-2f), "side-fzoo", List.of(1e-2f)), threads,
              List.of("side", "side-fzoo"))
          : LmComparison.Settings.defaults(threads);
      return LmComparison.run(data, s, System.err);
    }
    if (task.equals("sms-lm")) {
      int steps = job.path("steps").asInt();
      RealDataEvaluation.SmsResult r = new RealDataEvaluation(threads).sms(data.resolve("sms").resolve("SMSSpamCollection"),
          steps, 16, 400);
      return JSON.createObjectNode().put("model", "in-house demo decoder, from scratch, byte tokens")
          .put("train_messages", r.trainMessages()).put("heldout_messages", r.heldoutMessages()).put("steps", r.steps())
          .put("heldout_loss_before", round(r.lossBefore(), 4)).put("heldout_loss_after", round(r.lossAfter(), 4))
          .put("forward_passes", 2L * r.steps());
    }
    QualityData.Split split = QualityData.sst2(data.resolve("sst2-kshot").resolve(task.equals("sst2-16") ? "16-42" : "512-42"));
    List<QualityData.Example> dev = QualityData.spaced(split.dev(), job.path("dev_limit").asInt(0));
    List<QualityData.Example> test = QualityData.spaced(split.test(), job.path("test_limit").asInt(0));
    ObjectNode r = JSON.createObjectNode().put("train_examples", split.train().size()).put("dev_examples", dev.size())
        .put("test_examples", test.size());
    return switch (method) {
      case "zero-shot" -> single(r, zeroShot(test, QualityData.SST2_LABELS, QualityData.SST2_PROMPTS), 0);
      case "centroid" -> single(r, centroid(split.train(), test), split.train().size());
      case "mezo-full", "mezo-lora", "mezo-norms", "side", "side-fzoo", "adam" -> trained(r, method, split.train(), dev, test);
      default -> throw new IllegalArgumentException("unknown method " + method);
    };
  }

  private static ObjectNode single(ObjectNode r, double accuracy, long forwards) {
    r.put("accuracy_mean", round(accuracy, 4)).put("accuracy_std", 0.0).put("forward_passes", forwards);
    r.putArray("accuracies").add(round(accuracy, 4));
    return r;
  }

  // ---- zero-shot and centroid --------------------------------------------------------------------

  /** The base package's classifier (head = the label prompts' embeddings), no store, through the runtime. */
  private double zeroShot(List<QualityData.Example> test, List<String> labels, List<String> prompts) throws IOException {
    Path pkg = modelPackage("zero-shot", labels, prompts, "norms", 1e-3f, 1e-3f);
    try (PocketTune tune = PocketTune.builder(work.resolve("zero-shot-data")).model(pkg).threads(threads).open();
        PersonalModel base = tune.personalModel("base")) {
      int right = 0;
      for (QualityData.Example e : test) {
        right += base.classify(e.text()).label().equals(labels.get(e.label())) ? 1 : 0;
      }
      return right / (double) test.size();
    }
  }

  /** Nearest centroid (cosine) of the k-shot training embeddings, mean pooled, by a plain ONNX Runtime session. */
  private double centroid(List<QualityData.Example> train, List<QualityData.Example> test) throws Exception {
    Path onnx = resource(MINILM);
    try (HuggingFaceTextTokenizer tok = HuggingFaceTextTokenizer.load(resource(TOKENIZER), 128);
        PlainEncoder enc = new PlainEncoder(onnx, threads)) {
      float[][] sums = new float[2][];
      for (QualityData.Example e : train) {
        float[] v = normalized(enc.meanPooled(tok.encode(e.text(), 128)));
        if (sums[e.label()] == null) {
          sums[e.label()] = new float[v.length];
        }
        for (int i = 0; i < v.length; i++) {
          sums[e.label()][i] += v[i];
        }
      }
      float[] c0 = normalized(sums[0]);
      float[] c1 = normalized(sums[1]);
      int right = 0;
      for (QualityData.Example e : test) {
        float[] v = enc.meanPooled(tok.encode(e.text(), 128));
        int predicted = dot(v, c1) > dot(v, c0) ? 1 : 0;
        right += predicted == e.label() ? 1 : 0;
      }
      return right / (double) test.size();
    }
  }

  // ---- trained methods ---------------------------------------------------------------------------

  private ObjectNode trained(ObjectNode r, String method, List<QualityData.Example> train, List<QualityData.Example> dev,
      List<QualityData.Example> test) throws Exception {
    List<Double> lrs = new ArrayList<>();
    job.path("lrs").forEach(n -> lrs.add(n.asDouble()));
    List<Long> seeds = new ArrayList<>();
    job.path("seeds").forEach(n -> seeds.add(n.asLong()));
    int steps = job.path("steps").asInt();
    ArrayNode grid = r.putArray("lr_grid");
    ArrayNode runs = r.putArray("runs");
    ObjectNode chosen = null;
    double chosenLr = lrs.get(0);
    for (double lr : lrs) {
      ObjectNode run = method.equals("adam") ? adamRun(lr, seeds.get(0), steps, train, dev, test)
          : mezoRun(method, lr, seeds.get(0), steps, train, dev, test);
      grid.add(JSON.createObjectNode().put("lr", lr).put("seed", seeds.get(0)).put("dev_accuracy", run.path("dev_accuracy").asDouble())
          .put("test_accuracy", run.path("test_accuracy").asDouble()));
      if (chosen == null || run.path("dev_accuracy").asDouble() > chosen.path("dev_accuracy").asDouble()) {
        chosen = run;
        chosenLr = lr;
      }
    }
    runs.add(chosen);
    for (long seed : seeds.subList(1, seeds.size())) {
      runs.add(method.equals("adam") ? adamRun(chosenLr, seed, steps, train, dev, test)
          : mezoRun(method, chosenLr, seed, steps, train, dev, test));
    }
    double[] acc = new double[runs.size()];
    double seconds = 0;
    ArrayNode accs = r.putArray("accuracies");
    for (int i = 0; i < acc.length; i++) {
      acc[i] = runs.get(i).path("test_accuracy").asDouble();
      accs.add(acc[i]);
      seconds += runs.get(i).path("seconds").asDouble();
    }
    r.put("lr", chosenLr).put("lr_chosen_on", job.path("lr_chosen_on").asText("own dev split, first seed")).put("steps", steps).put("batch", job.path("batch").asInt())
        .put("accuracy_mean", round(mean(acc), 4)).put("accuracy_std", round(std(acc), 4))
        .put("forward_passes", runs.get(0).path("forward_passes").asLong())
        .put("seconds", round(seconds / acc.length, 1));
    if (method.equals("adam")) {
      r.put("backward_passes", runs.get(0).path("backward_passes").asLong());
    }
    boolean agree = true;
    int checked = 0;
    for (JsonNode run : runs) {
      if (run.has("recomputed_equal")) {
        agree &= run.path("recomputed_equal").asBoolean();
        checked++;
      }
    }
    if (checked > 0) { // MeZO: replay checked against the export; Adam's figure is the export's already
      r.put("recomputed_equal", agree).put("recomputed_runs", checked);
    }
    return r;
  }

  /** One MeZO run through the runtime: events, foreground training, replay for selection and test, export check. */
  private ObjectNode mezoRun(String method, double lr, long seed, int steps, List<QualityData.Example> train,
      List<QualityData.Example> dev, List<QualityData.Example> test) throws Exception {
    boolean verify = seed == job.path("seeds").get(0).asLong(); // the first seed's runs: one export check per rate
    long t0 = System.nanoTime();
    String trainable = switch (method) {
      case "mezo-full" -> "all";
      case "mezo-lora" -> LORA;
      case "side", "side-fzoo" -> "side";
      default -> "norms";
    };
    boolean fzoo = method.endsWith("-fzoo");
    float eps = (float) job.path("eps").asDouble(1e-3);
    int batch = job.path("batch").asInt(16);
    Path pkg = modelPackage(method, QualityData.SST2_LABELS, QualityData.SST2_PROMPTS, trainable, (float) lr, eps,
        fzoo ? "fzoo:" + BenchQualityCommand.FZOO_DIRECTIONS : null);
    Path dir = work.resolve(String.format(Locale.ROOT, "%s-lr%s-seed%d", method, lr, seed));
    deleteTree(dir);
    int every = Math.max(1, steps / job.path("evaluations").asInt(10));
    ObjectNode run = JSON.createObjectNode().put("lr", lr).put("seed", seed);
    try (PocketTune tune = PocketTune.builder(dir).model(pkg).threads(threads).batch(batch).learningRate((float) lr)
        .eps(eps).seed(seed).checkpointEvery(every).snapshotEvery(every).open()) {
      List<QualityData.Example> order = QualityData.trainingOrder(train, steps * batch, seed);
      tune.appendJson("messages", events(order, QualityData.SST2_LABELS, TRAIN_START));
      Map<TopicPartition, Long> trainEnd = tune.endOffsets();
      tune.appendJson("messages", events(dev, QualityData.SST2_LABELS, DEV_START));
      tune.appendJson("messages", events(test, QualityData.SST2_LABELS, TEST_START));
      long tt = System.nanoTime();
      PocketTune.TrainResult trained = tune.train(steps, trainEnd, (step, loss) -> {});
      double trainSeconds = (System.nanoTime() - tt) / 1e9;
      if (trained.steps() != steps) {
        throw new IllegalStateException(method + " trained " + trained.steps() + " steps, not " + steps);
      }
      JsonNode devReplay = replay(tune, dir, "dev", DEV_START.toString(), TEST_START.toString(), "all");
      JsonNode best = null;
      ArrayNode curve = run.putArray("dev_curve");
      for (JsonNode c : devReplay.path("checkpoints")) {
        curve.add(JSON.createObjectNode().put("step", c.path("step").asLong()).put("accuracy", c.path("accuracy").asDouble()));
        if (best == null || c.path("accuracy").asDouble() > best.path("accuracy").asDouble()) {
          best = c;
        }
      }
      if (best == null) {
        throw new IllegalStateException("replay of the dev events evaluated no checkpoint");
      }
      long id = best.path("id").asLong();
      JsonNode testReplay = replay(tune, dir, "test", TEST_START.toString(), null, Long.toString(id));
      double testAccuracy = testReplay.path("checkpoints").get(0).path("accuracy").asDouble();
      run.put("selected_checkpoint", id).put("selected_step", best.path("step").asLong())
          .put("dev_accuracy", best.path("accuracy").asDouble()).put("test_accuracy", testAccuracy);
      if (verify) {
        // The same figure, independently: the exported checkpoint through a plain ONNX Runtime session.
        Path exported = dir.resolve("selected.onnx");
        tune.export(id, exported, false);
        double plain = plainAccuracy(exported, test);
        run.put("test_accuracy_plain_onnx_runtime", plain).put("recomputed_equal", Math.abs(plain - testAccuracy) < 1e-9);
      }
      run.put("forward_passes", (fzoo ? BenchQualityCommand.FZOO_DIRECTIONS + 1L : 2L) * trained.steps())
          .put("parameters", trained.parameters())
          .put("train_seconds", round(trainSeconds, 1));
    } finally {
      deleteTree(dir);
    }
    run.put("seconds", round((System.nanoTime() - t0) / 1e9, 1));
    System.err.printf(Locale.ROOT, "%s lr %s seed %d: dev %.4f at step %d, test %.4f (%.0f s)%n", method, lr, seed,
        run.path("dev_accuracy").asDouble(), run.path("selected_step").asLong(), run.path("test_accuracy").asDouble(),
        run.path("seconds").asDouble());
    return run;
  }

  private JsonNode replay(PocketTune tune, Path dir, String name, String from, String to, String checkpoints)
      throws IOException {
    PocketTune.ReplayOptions o = new PocketTune.ReplayOptions(from, to, "messages", checkpoints,
        dir.resolve("reports").resolve(name + ".html"), 32, false, false, threads);
    return JSON.readTree(tune.replay(o).json().toString());
  }

  /** One Adam run through DJL's PyTorch engine, on the same training order, selection on dev, test by plain ONNX Runtime. */
  private ObjectNode adamRun(double lr, long seed, int steps, List<QualityData.Example> train,
      List<QualityData.Example> dev, List<QualityData.Example> test) throws Exception {
    long t0 = System.nanoTime();
    int batch = job.path("batch").asInt(16);
    Path dir = work.resolve(String.format(Locale.ROOT, "adam-lr%s-seed%d", lr, seed));
    deleteTree(dir);
    Files.createDirectories(dir);
    ObjectNode run = JSON.createObjectNode().put("lr", lr).put("seed", seed);
    try {
      AdamFineTuning.Settings s = new AdamFineTuning.Settings((float) lr, steps, batch, Math.min(steps, job.path("evaluations").asInt(10)),
          128, 20f, QualityData.SST2_PROMPTS, threads);
      AdamFineTuning.Result res = AdamFineTuning.run(resource(MINILM), resource(TOKENIZER),
          adam(QualityData.trainingOrder(train, steps * batch, seed)), adam(dev), s, dir);
      double testAccuracy = AdamFineTuning.onnxRuntimeAccuracy(res.exportedOnnx(), res.exportedHead(), resource(TOKENIZER),
          adam(test), s);
      ArrayNode curve = run.putArray("dev_curve");
      res.evaluations().forEach(e -> curve.add(JSON.createObjectNode().put("step", e.step()).put("accuracy", e.devAccuracy())));
      run.put("selected_step", res.selectedStep()).put("dev_accuracy", res.selectedDevAccuracy())
          .put("test_accuracy", testAccuracy).put("test_accuracy_source", "plain ONNX Runtime session on the exported model")
          .put("forward_passes", res.forwardPasses()).put("backward_passes", res.backwardPasses())
          .put("train_seconds", round(res.trainSeconds(), 1));
    } finally {
      deleteTree(dir);
    }
    run.put("seconds", round((System.nanoTime() - t0) / 1e9, 1));
    System.err.printf(Locale.ROOT, "adam lr %s seed %d: dev %.4f at step %d, test %.4f (%.0f s)%n", lr, seed,
        run.path("dev_accuracy").asDouble(), run.path("selected_step").asLong(), run.path("test_accuracy").asDouble(),
        run.path("seconds").asDouble());
    return run;
  }

  private static List<AdamFineTuning.Example> adam(List<QualityData.Example> examples) {
    return examples.stream().map(e -> new AdamFineTuning.Example(e.text(), e.label())).toList();
  }

  // ---- SMS: the personal spam filter ------------------------------------------------------------

  /**
   * The SMS Spam Collection as the user's stream: the first 80% in file order arrive one batch at a
   * time; each batch is first classified by the model as it stands (the app asking the personalized
   * model, pinned to {@code latest}), then its verdicts train one MeZO step. The last 20% are held
   * out; at the end the final checkpoint is evaluated on them by replay. Zero-shot: the base model on
   * the same stream and the same held-out part.
   */
  private ObjectNode sms(String method) throws Exception {
    List<QualityData.Example> all = QualityData.sms(data.resolve("sms").resolve("SMSSpamCollection"));
    all = QualityData.first(all, job.path("sms_limit").asInt(0));
    int cut = (int) Math.floor(all.size() * 0.8);
    List<QualityData.Example> stream = all.subList(0, cut);
    List<QualityData.Example> held = all.subList(cut, all.size());
    ObjectNode r = JSON.createObjectNode().put("stream_events", stream.size()).put("heldout_events", held.size())
        .put("spam_fraction_stream", round(stream.stream().filter(e -> e.label() == 1).count() / (double) stream.size(), 4));
    if (method.equals("zero-shot")) {
      double preq = zeroShot(stream, QualityData.SMS_LABELS, QualityData.SMS_PROMPTS);
      double heldAcc = zeroShot(held, QualityData.SMS_LABELS, QualityData.SMS_PROMPTS);
      r.put("prequential_accuracy_mean", round(preq, 4)).put("prequential_accuracy_std", 0.0)
          .put("accuracy_mean", round(heldAcc, 4)).put("accuracy_std", 0.0).put("forward_passes", 0);
      return r;
    }
    List<Long> seeds = new ArrayList<>();
    job.path("seeds").forEach(n -> seeds.add(n.asLong()));
    double lr = job.path("lrs").get(0).asDouble();
    float eps = (float) job.path("eps").asDouble(1e-3);
    int batch = job.path("batch").asInt(16);
    Path pkg = modelPackage("sms-" + method, QualityData.SMS_LABELS, QualityData.SMS_PROMPTS, "norms", (float) lr, eps);
    double[] preq = new double[seeds.size()];
    double[] heldAcc = new double[seeds.size()];
    double seconds = 0;
    long forwards = 0;
    boolean agree = true;
    ArrayNode runs = r.putArray("runs");
    for (int i = 0; i < seeds.size(); i++) {
      long t0 = System.nanoTime();
      Path dir = work.resolve("sms-seed" + seeds.get(i));
      deleteTree(dir);
      try (PocketTune tune = PocketTune.builder(dir).model(pkg).threads(threads).batch(batch).learningRate((float) lr)
          .eps(eps).seed(seeds.get(i)).checkpointEvery(0).snapshotEvery(0).open()) {
        List<Map<TopicPartition, Long>> ends = new ArrayList<>();
        for (int from = 0; from < stream.size(); from += batch) {
          tune.appendJson("messages", events(stream.subList(from, Math.min(stream.size(), from + batch)),
              QualityData.SMS_LABELS, TRAIN_START.plusSeconds(from)));
          ends.add(tune.endOffsets());
        }
        tune.appendJson("messages", events(held, QualityData.SMS_LABELS, TEST_START));
        int right = 0;
        long steps = 0;
        PersonalModel model = tune.personalModel("base");
        try {
          for (int b = 0; b < ends.size(); b++) {
            for (QualityData.Example e : stream.subList(b * batch, Math.min(stream.size(), (b + 1) * batch))) {
              right += model.classify(e.text()).label().equals(QualityData.SMS_LABELS.get(e.label())) ? 1 : 0;
            }
            steps += tune.train(1, ends.get(b), (s, l) -> {}).steps();
            if (b == 0) { // the first step opened the store; from now on follow it
              model.close();
              model = tune.personalModel("latest");
            }
          }
        } finally {
          model.close();
        }
        preq[i] = right / (double) stream.size();
        Checkpoint last = tune.markCheckpoint("sms-end", Map.of("prequential_accuracy", preq[i]));
        JsonNode replayed = replay(tune, dir, "heldout", TEST_START.toString(), null, Long.toString(last.id()));
        heldAcc[i] = replayed.path("checkpoints").get(0).path("accuracy").asDouble();
        Path exported = dir.resolve("final.onnx");
        tune.export(last.id(), exported, false);
        double plain = plainAccuracy(exported, held);
        agree &= Math.abs(plain - heldAcc[i]) < 1e-9;
        forwards = 2 * steps;
        double sec = (System.nanoTime() - t0) / 1e9;
        seconds += sec;
        runs.add(JSON.createObjectNode().put("seed", seeds.get(i)).put("steps", steps).put("prequential_accuracy", preq[i])
            .put("heldout_accuracy", heldAcc[i]).put("heldout_accuracy_plain_onnx_runtime", plain)
            .put("seconds", round(sec, 1)));
        System.err.printf(Locale.ROOT, "sms seed %d: prequential %.4f, held-out %.4f (%d steps, %.0f s)%n", seeds.get(i),
            preq[i], heldAcc[i], steps, sec);
      } finally {
        deleteTree(dir);
      }
    }
    r.put("trainable", "norms").put("lr", lr).put("batch", batch)
        .put("prequential_accuracy_mean", round(mean(preq), 4)).put("prequential_accuracy_std", round(std(preq), 4))
        .put("accuracy_mean", round(mean(heldAcc), 4)).put("accuracy_std", round(std(heldAcc), 4))
        .put("forward_passes", forwards).put("seconds", round(seconds / seeds.size(), 1)).put("recomputed_equal", agree);
    ArrayNode accs = r.putArray("accuracies");
    Arrays.stream(heldAcc).forEach(accs::add);
    return r;
  }

  // ---- shared pieces -----------------------------------------------------------------------------

  /** A model package of MiniLM for this job (one per method and label set; the graph is hard-linked). */
  private Path modelPackage(String name, List<String> labels, List<String> prompts, String trainable, float lr, float eps)
      throws IOException {
    return modelPackage(name, labels, prompts, trainable, lr, eps, null);
  }

  /** @param estimator the card's estimator ({@code fzoo:N}), or null for MeZO */
  private Path modelPackage(String name, List<String> labels, List<String> prompts, String trainable, float lr, float eps,
      String estimator) throws IOException {
    Path out = work.resolve("package-" + name);
    if (!Files.isDirectory(out)) {
      PocketTune.initModel(new PocketTune.ModelInit(resource(MINILM), resource(TOKENIZER), "embedding-classification",
          labels, prompts, null, null, "mean", 20f, null, trainable, "label", 128, lr, eps, estimator, out));
    }
    return out;
  }

  /** JSON event lines: one conversation (one partition), event times a second apart from {@code start}. */
  private static List<String> events(List<QualityData.Example> examples, List<String> labels, Instant start) {
    List<String> lines = new ArrayList<>(examples.size());
    ObjectNode n = JSON.createObjectNode();
    for (int i = 0; i < examples.size(); i++) {
      n.removeAll();
      n.put("text", examples.get(i).text()).put("conversation", "bench").put("eventTime", start.plusSeconds(i).toString());
      n.putObject("attrs").put("label", labels.get(examples.get(i).label()));
      lines.add(n.toString());
    }
    return lines;
  }

  private Path resource(String name) throws IOException {
    return MinilmFiles.ensure(work).resolve(name);
  }

  /** Accuracy of an exported embedding classifier ({@code label_scores}) through a plain ONNX Runtime session. */
  private double plainAccuracy(Path exported, List<QualityData.Example> examples) throws Exception {
    try (HuggingFaceTextTokenizer tok = HuggingFaceTextTokenizer.load(resource(TOKENIZER), 128);
        PlainEncoder enc = new PlainEncoder(exported, threads)) {
      int right = 0;
      for (QualityData.Example e : examples) {
        float[] s = enc.output(tok.encode(e.text(), 128), "label_scores");
        int best = 0;
        for (int i = 1; i < s.length; i++) {
          best = s[i] > s[best] ? i : best;
        }
        right += best == e.label() ? 1 : 0;
      }
      return right / (double) examples.size();
    }
  }

  /** A plain ONNX Runtime session (DJL's engine, nothing of PocketTune's) over a BERT-style graph, one row at a time. */
  static final class PlainEncoder implements AutoCloseable {
    private final ai.djl.Model model;
    private final Predictor<NDList, NDList> predictor;
    private final NDManager nd = NDManager.newBaseManager();

    PlainEncoder(Path onnx, int threads) throws Exception {
      model = ai.djl.Model.newInstance("plain", Device.cpu(), "OnnxRuntime");
      try (InputStream in = Files.newInputStream(onnx)) {
        model.load(in, Map.of("intraOpNumThreads", Integer.toString(threads), "interOpNumThreads", "1"));
      }
      predictor = model.newPredictor(new NoopTranslator());
    }

    float[] output(long[] ids, String name) throws Exception {
      try (NDManager m = nd.newSubManager(); NDList r = predictor.predict(inputs(m, ids))) {
        return r.get(name).toFloatArray();
      }
    }

    /** last_hidden_state averaged over the tokens (one row, no padding). */
    float[] meanPooled(long[] ids) throws Exception {
      try (NDManager m = nd.newSubManager(); NDList r = predictor.predict(inputs(m, ids))) {
        return r.get("last_hidden_state").mean(new int[] {1}).toFloatArray();
      }
    }

    /** One unpadded row: input_ids, an all-ones attention_mask, zero token_type_ids. */
    static NDList inputs(NDManager m, long[] ids) {
      Shape shape = new Shape(1, ids.length);
      long[] ones = new long[ids.length];
      Arrays.fill(ones, 1L);
      NDArray a = m.create(ids, shape);
      a.setName("input_ids");
      NDArray b = m.create(ones, shape);
      b.setName("attention_mask");
      NDArray c = m.create(new long[ids.length], shape);
      c.setName("token_type_ids");
      return new NDList(a, b, c);
    }

    @Override
    public void close() {
      predictor.close();
      nd.close();
      model.close();
    }
  }

  private static float[] normalized(float[] v) {
    double n = Math.sqrt(dot(v, v));
    float[] out = new float[v.length];
    for (int i = 0; i < v.length; i++) {
      out[i] = (float) (v[i] / n);
    }
    return out;
  }

  private static double dot(float[] a, float[] b) {
    double s = 0;
    for (int i = 0; i < a.length; i++) {
      s += (double) a[i] * b[i];
    }
    return s;
  }

  static double mean(double[] v) {
    return Arrays.stream(v).average().orElse(Double.NaN);
  }

  /** Sample standard deviation (n - 1), 0 for one value. */
  static double std(double[] v) {
    if (v.length < 2) {
      return 0;
    }
    double m = mean(v);
    return Math.sqrt(Arrays.stream(v).map(x -> (x - m) * (x - m)).sum() / (v.length - 1));
  }

  static double round(double v, int digits) {
    double f = Math.pow(10, digits);
    return Math.round(v * f) / f;
  }

  static void deleteTree(Path dir) throws IOException {
    if (!Files.exists(dir)) {
      return;
    }
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    }
  }
}
