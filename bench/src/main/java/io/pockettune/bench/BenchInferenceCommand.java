package io.pockettune.bench;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.inference.Predictor;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.translate.NoopTranslator;
import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.Generator;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.ModelExport;
import io.pockettune.trainer.Objective;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench inference}: the read side against plain ONNX Runtime in the same run.
 *
 * <ul>
 *   <li>Generation: the bench10m decoder (10.8M parameters, optimum's with-past signature), 64 new
 *       tokens greedily after a 64-token prompt, with the KV cache and recomputing the prefix, through
 *       the trainer's {@code Generator} (the engine of {@link PersonalModel#complete}) and through a
 *       plain ONNX Runtime session decoding the same graph by hand (the same tokens are required);
 *       tokens per second and their ratios.
 *   <li>Classification: all-MiniLM-L6-v2 as an embedding classifier (the jar is on the bench's
 *       classpath), one short message at a time, through the trainer's session (what {@link
 *       PersonalModel#classify} runs) and through a plain session on the model exported at the same
 *       values (its {@code label_scores} output): p50 and p99 of each and the ratio of the p50s.
 *   <li>Swap: the runtime training a small decoder in the background while a reader follows the
 *       latest step; the time from each step's commit to the first answer computed on that step.
 * </ul>
 *
 * The bench module uses the runtime only through its public API ({@link PocketTune}), as the
 * command line does.
 */
@Command(name = "inference", mixinStandardHelpOptions = true,
    description = "Measure classification latency against plain ONNX Runtime, and the swap to a new step.")
final class BenchInferenceCommand implements Callable<Integer> {
  private static final String MESSAGE = "running late, the bus broke down, save me a seat";
  private static final Pattern COMMITTED = Pattern.compile("committed (\\d+)");

  @Spec CommandSpec spec;

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  @Option(names = "--repeats", description = "classifications timed per path (default: ${DEFAULT-VALUE})")
  int repeats = 200;

  @Option(names = "--swap-steps", description = "steps committed while a reader follows (default: ${DEFAULT-VALUE})")
  int swapSteps = 40;

  @Option(names = "--threads", description = "ONNX Runtime intra-op threads (default: ${DEFAULT-VALUE})")
  int threads = 1;

  @Override
  public Integer call() throws Exception {
    if (repeats < 10 || swapSteps < 2 || threads < 1) {
      throw new IllegalArgumentException("--repeats must be at least 10, --swap-steps at least 2, --threads positive");
    }
    PrintWriter out = spec.commandLine().getOut();
    Path work = Files.createTempDirectory("pockettune-bench-inference");
    try {
      Figures f = new Figures();
      generation(work, f, out);
      classification(work, f, out);
      swap(work, f, out);
      if (json) {
        out.println(f);
      }
      return 0;
    } finally {
      deleteTree(work);
    }
  }

  private void generation(Path work, Figures f, PrintWriter out) throws Exception {
    DecoderLmConfig config = DecoderLmConfig.bench10m();
    Path onnx = work.resolve("bench10m.onnx");
    byte[] graph = DecoderLmBuilder.build(config, DecoderLmBuilder.Signature.WITH_PAST);
    Files.write(onnx, graph);
    String prompt = "on my way to the ward, grabbing a coffee first, see you by the lifts".substring(0, 63);
    int newTokens = 64;
    long[] promptIds = new io.pockettune.trainer.ByteTokenizer().encode(prompt, Integer.MAX_VALUE);
    promptIds = Arrays.copyOf(promptIds, promptIds.length - 1); // no end of text: the prompt goes on
    // The generation engine behind PersonalModel.complete, without its end-of-text stop: an
    // untrained decoder soon predicts end of text, and the figure is about 64 tokens.
    double[] ours = new double[2];
    long[][] ourTokens = new long[2][];
    try (Generator g = Generator.open(onnx, TrainableSelection.all(), threads)) {
      for (int kv = 0; kv < 2; kv++) {
        Generator.Options o = Generator.Options.greedy(newTokens).withKvCache(kv == 1);
        g.generate(promptIds, o, t -> false); // warm-up
        Generator.Result r = g.generate(promptIds, o, t -> false);
        if (r.tokens().length != newTokens || r.usedKvCache() != (kv == 1)) {
          throw new IllegalStateException("generation made " + r.tokens().length + " tokens (kv cache "
              + r.usedKvCache() + ") where " + newTokens + " were asked");
        }
        ours[kv] = newTokens / (r.nanos() / 1e9);
        ourTokens[kv] = r.tokens();
      }
    }
    double[] plain = new double[2];
    try (Model m = Model.newInstance("plain-decoder", Device.cpu(), "OnnxRuntime")) {
      m.load(new ByteArrayInputStream(graph), Map.of("intraOpNumThreads", Integer.toString(threads),
          "interOpNumThreads", "1"));
      try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator())) {
        for (int kv = 0; kv < 2; kv++) {
          plainGreedy(p, config, promptIds, newTokens, kv == 1); // warm-up
          long t0 = System.nanoTime();
          long[] tokens = plainGreedy(p, config, promptIds, newTokens, kv == 1);
          plain[kv] = newTokens / ((System.nanoTime() - t0) / 1e9);
          if (!Arrays.equals(ourTokens[kv], tokens)) {
            throw new IllegalStateException("the plain session's greedy tokens differ from the runtime's ("
                + (kv == 1 ? "KV cache" : "recomputed") + "): the comparison would be meaningless");
          }
        }
      }
    }
    out.printf(Locale.ROOT, "generate %d tokens after %d, bench10m: KV cache %.1f tokens/s (plain ONNX Runtime %.1f,"
        + " ratio %.3f); recomputed %.1f tokens/s (plain %.1f, ratio %.3f)%n", newTokens, promptIds.length, ours[1],
        plain[1], ours[1] / plain[1], ours[0], plain[0], ours[0] / plain[0]);
    f.put("generate_prompt_tokens", promptIds.length).put("generate_new_tokens", newTokens)
        .put("generate_tokens_per_s_kv_cache", round(ours[1])).put("generate_tokens_per_s_recompute", round(ours[0]))
        .put("plain_tokens_per_s_kv_cache", round(plain[1])).put("plain_tokens_per_s_recompute", round(plain[0]))
        .put("generate_kv_cache_over_plain_ort", round(ours[1] / plain[1]))
        .put("generate_recompute_over_plain_ort", round(ours[0] / plain[0]))
        .put("kv_cache_speedup", round(ours[1] / ours[0]));
  }

  /** Greedy decoding of the with-past graph by hand: the baseline the runtime's generation is held to. */
  private static long[] plainGreedy(Predictor<NDList, NDList> p, DecoderLmConfig c, long[] prompt, int newTokens,
      boolean kvCache) throws Exception {
    int headDim = c.dModel() / c.heads();
    long[] sequence = Arrays.copyOf(prompt, prompt.length + newTokens);
    int length = prompt.length;
    try (NDManager nd = NDManager.newBaseManager()) {
      NDList past = null;
      while (length < prompt.length + newTokens) {
        int pastLength = kvCache && past != null ? length - 1 : 0;
        long[] ids = kvCache && past != null ? new long[] {sequence[length - 1]} : Arrays.copyOf(sequence, length);
        NDList in = new NDList();
        in.add(named(nd.create(ids, new Shape(1, ids.length)), "input_ids"));
        long[] mask = new long[pastLength + ids.length];
        Arrays.fill(mask, 1L);
        in.add(named(nd.create(mask, new Shape(1, mask.length)), "attention_mask"));
        long[] positions = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
          positions[i] = pastLength + i;
        }
        in.add(named(nd.create(positions, new Shape(1, ids.length)), "position_ids"));
        for (int l = 0; l < c.layers(); l++) {
          for (String kind : new String[] {"key", "value"}) {
            String name = "past_key_values." + l + "." + kind;
            NDArray a = past != null && kvCache ? past.get("present." + l + "." + kind)
                : nd.create(new float[0], new Shape(1, c.heads(), 0, headDim));
            a.setName(name);
            in.add(a);
          }
        }
        NDList result = p.predict(in);
        float[] logits = result.get("logits").toFloatArray();
        int vocab = c.vocabSize();
        int last = (ids.length - 1) * vocab;
        int best = 0;
        for (int v = 1; v < vocab; v++) {
          best = logits[last + v] > logits[last + best] ? v : best;
        }
        sequence[length++] = best;
        if (past != null) {
          past.close();
        }
        past = result;
      }
      if (past != null) {
        past.close();
      }
    }
    return Arrays.copyOfRange(sequence, prompt.length, length);
  }

  private static NDArray named(NDArray a, String name) {
    a.setName(name);
    return a;
  }

  private void classification(Path work, Figures f, PrintWriter out) throws Exception {
    Path onnx = extract(work, "all-minilm-l6-v2.onnx");
    try (HuggingFaceTextTokenizer tok = HuggingFaceTextTokenizer.load(extract(work, "all-minilm-l6-v2-tokenizer.json"), 128)) {
      Objective.EmbeddingClassification objective = new Objective.EmbeddingClassification(Objective.Pooling.MEAN,
          List.of(tok.encode("It was terrible.", 128), tok.encode("It was great.", 128)), 20f);
      long[] ids = tok.encode(MESSAGE, 128);
      TokenBatch batch = TokenBatch.of(List.of(ids));
      long[] ours = new long[repeats];
      byte[] exported;
      float[] ourScores;
      try (LossModel model = LossModel.open(onnx, objective, TrainableSelection.biasesAndNorms(), threads)) {
        ourScores = model.labelProbabilities(batch)[0];
        for (int i = -repeats / 10; i < repeats; i++) { // a tenth more, untimed, to warm up
          long t0 = System.nanoTime();
          model.labelProbabilities(batch);
          if (i >= 0) {
            ours[i] = System.nanoTime() - t0;
          }
        }
        exported = ModelExport.withTrainedValues(Files.readAllBytes(onnx), model.parameters(),
            TrainableSelection.biasesAndNorms(), ModelExport.Adapters.MERGE, objective, Map.of());
      }
      long[] plain = new long[repeats];
      float[] plainScores;
      try (Model m = Model.newInstance("plain", Device.cpu(), "OnnxRuntime")) {
        m.load(new ByteArrayInputStream(exported), Map.of("intraOpNumThreads", Integer.toString(threads),
            "interOpNumThreads", "1"));
        try (Predictor<NDList, NDList> p = m.newPredictor(new NoopTranslator());
            NDManager nd = NDManager.newBaseManager()) {
          plainScores = plainScores(p, nd, ids);
          for (int i = -repeats / 10; i < repeats; i++) {
            long t0 = System.nanoTime();
            plainScores(p, nd, ids);
            if (i >= 0) {
              plain[i] = System.nanoTime() - t0;
            }
          }
        }
      }
      // The two paths must agree before their speeds mean anything.
      double p1 = 1 / (1 + Math.exp(plainScores[0] - plainScores[1]));
      if (Math.abs(p1 - ourScores[1]) > 1e-4) {
        throw new IllegalStateException("the plain session on the export gives p(positive) " + p1
            + " but the trainer's gives " + ourScores[1] + ": the comparison would be meaningless");
      }
      Arrays.sort(ours);
      Arrays.sort(plain);
      double ourP50 = ms(ours, 0.5);
      double plainP50 = ms(plain, 0.5);
      out.printf(Locale.ROOT, "classify one message (%d tokens), MiniLM: p50 %.2f ms, p99 %.2f ms; plain ONNX Runtime on"
          + " the export: p50 %.2f ms, p99 %.2f ms; ratio %.3f%n", ids.length, ourP50, ms(ours, 0.99), plainP50,
          ms(plain, 0.99), plainP50 / ourP50);
      f.put("classify_tokens", ids.length).put("classify_p50_ms", round(ourP50)).put("classify_p99_ms", round(ms(ours, 0.99)))
          .put("plain_classify_p50_ms", round(plainP50)).put("plain_classify_p99_ms", round(ms(plain, 0.99)))
          .put("classify_over_plain_ort", round(plainP50 / ourP50));
    }
  }

  private static float[] plainScores(Predictor<NDList, NDList> p, NDManager nd, long[] ids) throws Exception {
    try (NDManager m = nd.newSubManager(); NDList r = p.predict(QualityWorker.PlainEncoder.inputs(m, ids))) {
      return r.get("label_scores").toFloatArray();
    }
  }


  /** Commit times from the runtime's step log ("committed N"), and first-answer times from a following reader. */
  private void swap(Path work, Figures f, PrintWriter out) throws Exception {
    Path onnx = work.resolve("decoder.onnx");
    Files.write(onnx, DecoderLmBuilder.build(DecoderLmConfig.demo()));
    Path pkg = work.resolve("decoder-package");
    PocketTune.initModel(new PocketTune.ModelInit(onnx, null, null, null, null, null, null, null, null, null, null,
        null, 64, 1e-3f, 1e-3f, pkg));
    Map<Long, Long> committedAt = new ConcurrentHashMap<>();
    Map<Long, Long> answeredAt = new ConcurrentHashMap<>();
    PrintWriter stepLog = new PrintWriter(new Writer() {
      private final StringBuilder line = new StringBuilder();

      @Override
      public void write(char[] buf, int off, int len) {
        long now = System.nanoTime();
        for (int i = off; i < off + len; i++) {
          if (buf[i] == '\n') {
            Matcher m = COMMITTED.matcher(line);
            if (m.find()) {
              committedAt.put(Long.parseLong(m.group(1)), now);
            }
            line.setLength(0);
          } else {
            line.append(buf[i]);
          }
        }
      }

      @Override
      public void flush() {}

      @Override
      public void close() {}
    });
    try (PocketTune tune = PocketTune.builder(work.resolve("data")).model(pkg).threads(threads).batch(4)
        .checkpointEvery(0).snapshotEvery(0).maxIdle(Duration.ZERO).pollInterval(Duration.ofMillis(2)).stepLog(stepLog)
        .open()) {
      List<String> events = new ArrayList<>();
      for (int i = 0; i < swapSteps * 4; i++) {
        events.add("{\"text\":\"on my way, there in " + i + " minutes\",\"conversation\":\"c" + (i % 3)
            + "\",\"eventTime\":" + (1788246000000L + i * 1000L) + "}");
      }
      tune.appendJson("messages", events.subList(0, 4));
      tune.startTraining();
      if (!tune.awaitIdle(Duration.ofMinutes(1))) {
        throw new IllegalStateException("training did not take its first step within a minute");
      }
      AtomicBoolean done = new AtomicBoolean();
      try (PersonalModel latest = tune.personalModel("latest")) {
        Thread reader = new Thread(() -> {
          while (!done.get()) {
            long step = latest.score(MESSAGE, null).step();
            answeredAt.putIfAbsent(step, System.nanoTime());
          }
        }, "bench-reader");
        reader.start();
        tune.appendJson("messages", events.subList(4, events.size()));
        if (!tune.awaitIdle(Duration.ofMinutes(5))) {
          throw new IllegalStateException("training did not consume " + events.size() + " events in 5 minutes");
        }
        Thread.sleep(200);
        done.set(true);
        reader.join();
      }
    }
    List<Long> swaps = new ArrayList<>();
    committedAt.forEach((step, at) -> {
      Long answered = answeredAt.get(step);
      if (answered != null) {
        swaps.add(Math.max(0, answered - at));
      }
    });
    if (swaps.size() < 2) {
      throw new IllegalStateException("the reader answered on only " + swaps.size() + " of " + committedAt.size()
          + " committed steps: the machine is too busy to measure the swap");
    }
    long[] sorted = swaps.stream().mapToLong(Long::longValue).sorted().toArray();
    out.printf(Locale.ROOT, "swap to a new step (commit -> first answer on it), demo decoder, %d of %d steps seen:"
        + " p50 %.2f ms, p99 %.2f ms%n", sorted.length, committedAt.size(), ms(sorted, 0.5), ms(sorted, 0.99));
    f.put("swap_steps_seen", sorted.length).put("swap_ms", round(ms(sorted, 0.5))).put("swap_p99_ms", round(ms(sorted, 0.99)));
  }

  private static Path extract(Path work, String resource) throws IOException {
    try (InputStream in = BenchInferenceCommand.class.getResourceAsStream("/" + resource)) {
      if (in == null) {
        throw new IllegalStateException(resource + " is not on the bench's classpath: rebuild with ./mvnw -pl bench -am package");
      }
      Path p = work.resolve(resource);
      Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
      return p;
    }
  }

  private static double ms(long[] sortedNanos, double q) {
    return sortedNanos[Math.min(sortedNanos.length - 1, (int) Math.floor(q * sortedNanos.length))] / 1e6;
  }

  private static double round(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  private static void deleteTree(Path root) throws IOException {
    try (java.util.stream.Stream<Path> s = Files.walk(root)) {
      for (Path p : (Iterable<Path>) s.sorted(java.util.Comparator.reverseOrder())::iterator) {
        Files.deleteIfExists(p);
      }
    }
  }
}
