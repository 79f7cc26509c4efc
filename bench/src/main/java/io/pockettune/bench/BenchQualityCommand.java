package io.pockettune.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.pockettune.baseline.AdamFineTuning;
import io.pockettune.baseline.DecoderLm;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code pockettune bench quality}: what PocketTune's MeZO training does to a real pretrained model
 * (all-MiniLM-L6-v2), against zero-shot, nearest centroid and backprop with Adam on the same model,
 * and the memory of MeZO against Adam as the batch grows (PocketLLM's experiment).
 *
 * <p>Every job (a task and a method, over its learning-rate grid and all seeds) runs in its own JVM
 * ({@link QualityWorker}) so that its peak resident set is its own; {@code --parallel} of them at a
 * time, each with one intra-op thread (the machine's cores are shared between the jobs, not within
 * one). Memory is measured by one JVM per engine, model and batch size ({@link MemoryProbe} for
 * MeZO and inference, the baseline module's probes for Adam). The result is one JSON object
 * ({@code --json}) or a Markdown table, and an SVG chart of the memory curves.
 */
@Command(name = "quality", mixinStandardHelpOptions = true,
    description = "MeZO on all-MiniLM-L6-v2 against zero-shot, nearest centroid and Adam (SST-2 16/512-shot, SMS spam"
        + " stream), and peak memory of MeZO against Adam per batch size.")
final class BenchQualityCommand implements Callable<Integer> {
  private static final ObjectMapper JSON = new ObjectMapper();
  static final int[] FULL_BATCHES = {1, 8, 16, 32, 64};
  static final int[] QUICK_BATCHES = {1, 8};
  static final long[] SEEDS = {13, 21, 42, 87, 100};
  static final List<String> METHODS = List.of("mezo-full", "mezo-lora", "mezo-norms", "side", "side-fzoo", "adam", "zero-shot",
      "centroid");
  /** FZOO's directions per step: a step costs this plus one loss evaluations. */
  static final int FZOO_DIRECTIONS = 8;

  @Spec CommandSpec spec;

  @Option(names = "--quick", description = "a reduced run for a smoke test (16-shot only, few steps, two seeds)")
  boolean quick;

  @Option(names = "--json", description = "print one JSON object instead of the Markdown table")
  boolean json;

  @Option(names = "--data", paramLabel = "DIR", description = "the shared data folder (default: ${DEFAULT-VALUE})")
  Path data = Path.of("../shared/data");

  @Option(names = "--work", paramLabel = "DIR", description = "scratch folder for the jobs (default: a new temporary folder)")
  Path work;

  @Option(names = "--svg", paramLabel = "FILE", description = "the memory chart to write (default: ${DEFAULT-VALUE})")
  Path svg = Path.of("reports/bench-quality-memory.svg");

  @Option(names = "--parallel", description = "jobs at a time (default: ${DEFAULT-VALUE}, the cores)")
  int parallel = Math.max(1, Runtime.getRuntime().availableProcessors());

  @Option(names = "--only", split = ",", paramLabel = "TASK",
      description = "run only these parts: sst2-16, sst2-512, sms, sms-lm, lm-methods, memory (default: all but lm-methods)")
  List<String> only;

  @Option(names = "--methods", split = ",", paramLabel = "METHOD",
      description = "SST-2 methods to run: zero-shot, centroid, mezo-full, mezo-lora, mezo-norms, side, side-fzoo, adam (default: all)")
  List<String> methods;

  @Option(names = "--test-limit", description = "evaluate on this many test sentences, evenly spaced (default: all 872; quick 200)")
  Integer testLimit;

  @Option(names = "--seeds", split = ",", paramLabel = "SEED",
      description = "training seeds (default: 13,21,42,87,100; quick 13,21)")
  List<Long> seedList;

  @Option(names = "--lrs", split = ",", paramLabel = "LR",
      description = "learning rates to try instead of each method's grid (for an experiment on one method)")
  List<Double> lrList;

  @Option(names = "--eps", description = "MeZO perturbation scale (default: ${DEFAULT-VALUE})")
  double eps = 1e-3;

  @Option(names = "--steps-16", description = "MeZO steps on 16-shot (default: 100; quick 10)")
  Integer steps16;

  @Option(names = "--steps-512", description = "MeZO steps on 512-shot (default: 100)")
  Integer steps512;

  @Option(names = "--adam-steps", description = "Adam steps per task (default: 50; quick 10)")
  Integer adamSteps;

  @Override
  public Integer call() throws Exception {
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    if (!Files.isDirectory(data.resolve("sst2-kshot")) || !Files.isDirectory(data.resolve("sms"))) {
      throw new IllegalArgumentException(data.toAbsolutePath().normalize() + " has no sst2-kshot and sms folders: give"
          + " --data the shared data folder (../shared/data beside the repository)");
    }
    if (seedList != null && seedList.isEmpty() || lrList != null && lrList.stream().anyMatch(lr -> !(lr > 0)) || !(eps > 0)) {
      throw new IllegalArgumentException("--seeds needs at least one seed, --lrs and --eps positive numbers");
    }
    if (parallel < 1) {
      throw new IllegalArgumentException("--parallel must be at least 1");
    }
    List<String> all = List.of("sst2-16", "sst2-512", "sms", "sms-lm", "lm-methods", "memory");
    // lm-methods (44 minutes on one core) runs when named, or in --quick's tiny form
    List<String> parts = only == null ? all.stream().filter(p -> !p.equals("lm-methods")).toList() : only;
    for (String p : parts) {
      if (!all.contains(p)) {
        throw new IllegalArgumentException("--only takes " + String.join(", ", all) + ", not '" + p + "'");
      }
    }
    for (String m : methods == null ? List.<String>of() : methods) {
      if (!METHODS.contains(m)) {
        throw new IllegalArgumentException("--methods takes " + String.join(", ", METHODS) + ", not '" + m + "'");
      }
    }
    if (quick && only == null) {
      parts = List.of("sst2-16", "sms", "sms-lm", "lm-methods", "memory");
    }
    Path root = work != null ? work : Files.createTempDirectory("pockettune-bench-quality");
    long t0 = System.nanoTime();
    List<Job> jobs = plan(parts, root.toAbsolutePath());
    err.printf("bench quality: %d jobs, %d at a time, scratch in %s%n", jobs.size(), parallel, root);
    ExecutorService pool = Executors.newFixedThreadPool(parallel);
    Map<String, Future<JsonNode>> results = new LinkedHashMap<>();
    for (Job j : jobs) {
      Future<JsonNode> from = j.spec() != null && j.spec().has("lr_from")
          ? results.get(j.spec().path("lr_from").asText() + " " + j.method()) : null;
      results.put(j.name(), pool.submit(() -> j.run(err, from)));
    }
    pool.shutdown();
    ObjectNode doc = JSON.createObjectNode().put("quick", quick);
    ObjectNode settings = doc.putObject("settings");
    settings.put("model", "all-MiniLM-L6-v2 (22.7M parameters, fp32), embedding classification: mean pooling, "
        + "20 x cosine with a head initialised from the label prompts").put("batch", 16).put("eps", eps)
        .put("mezo_steps_16_shot", steps16()).put("mezo_steps_512_shot", steps512()).put("adam_steps", adamSteps())
        .put("selection", "dev accuracy at every tenth of training; lr grid on the first seed, then every seed at the chosen lr")
        .put("threads_per_job", 1).put("parallel_jobs", parallel);
    ArrayNode seeds = settings.putArray("seeds");
    for (long s : seeds()) {
      seeds.add(s);
    }
    ObjectNode tasks = doc.putObject("tasks");
    Map<String, Map<Integer, Long>> memory = new LinkedHashMap<>();
    boolean failed = false;
    for (Job j : jobs) {
      JsonNode r;
      try {
        r = results.get(j.name()).get();
      } catch (java.util.concurrent.ExecutionException x) {
        err.println("bench quality: " + j.name() + " failed: " + x.getCause().getMessage());
        failed = true;
        continue;
      }
      if (j.task().equals("memory")) {
        memory.computeIfAbsent(j.method(), k -> new LinkedHashMap<>()).put(j.batch(), r.path("peak_rss_kb").asLong());
      } else {
        ObjectNode t = tasks.has(j.task()) ? (ObjectNode) tasks.get(j.task()) : tasks.putObject(j.task());
        t.set(j.method(), r);
      }
    }
    if (!memory.isEmpty()) {
      ObjectNode mem = doc.putObject("memory");
      mem.put("tokens", 128).put("steps", 2).put("threads", 1).put("unit", "peak resident set (VmHWM) in MB, one JVM per point");
      for (String model : List.of("minilm", "bench10m")) {
        if (!memory.containsKey("mezo-" + model)) {
          continue;
        }
        ObjectNode m = mem.putObject(model);
        ArrayNode b = m.putArray("batches");
        ArrayNode mz = m.putArray("mezo_mb");
        ArrayNode ad = m.putArray("adam_mb");
        ArrayNode inf = m.putArray("inference_mb");
        ArrayNode ratio = m.putArray("adam_over_mezo");
        for (int batch : batches()) {
          long z = memory.get("mezo-" + model).getOrDefault(batch, -1L);
          long a = memory.getOrDefault("adam-" + model, Map.of()).getOrDefault(batch, -1L);
          long i = memory.getOrDefault("infer-" + model, Map.of()).getOrDefault(batch, -1L);
          b.add(batch);
          mz.add(Math.round(z / 1024.0));
          ad.add(Math.round(a / 1024.0));
          inf.add(Math.round(i / 1024.0));
          ratio.add(z > 0 && a > 0 ? QualityWorker.round(a / (double) z, 2) : null);
        }
      }
      Path chart = svg.toAbsolutePath();
      Files.createDirectories(chart.getParent());
      Files.writeString(chart, MemoryChart.svg(mem));
      doc.put("svg", chart.toString());
    }
    double minutes = (System.nanoTime() - t0) / 60e9;
    doc.put("minutes", QualityWorker.round(minutes, 1));
    if (work == null) {
      QualityWorker.deleteTree(root);
    }
    if (json) {
      out.println(JSON.writeValueAsString(doc));
    } else {
      out.print(markdown(doc));
    }
    out.flush();
    return failed ? 1 : 0;
  }

  int steps16() {
    return steps16 != null ? steps16 : quick ? 10 : 100;
  }

  int steps512() {
    return steps512 != null ? steps512 : quick ? 10 : 100;
  }

  int adamSteps() {
    return adamSteps != null ? adamSteps : quick ? 10 : 50;
  }

  long[] seeds() {
    if (seedList != null) {
      return seedList.stream().mapToLong(Long::longValue).toArray();
    }
    return quick ? new long[] {SEEDS[0], SEEDS[1]} : SEEDS;
  }

  int[] batches() {
    return quick ? QUICK_BATCHES : FULL_BATCHES;
  }

  /** The jobs, longest first so that the pool ends together. */
  private List<Job> plan(List<String> parts, Path root) {
    List<Job> jobs = new ArrayList<>();
    Map<String, double[]> grids = Map.of(
        "mezo-full", new double[] {1e-7, 1e-6, 1e-5},
        "mezo-lora", new double[] {1e-5, 5e-5, 1e-4},
        "mezo-norms", new double[] {1e-4, 1e-3, 1e-2},
        "side", new double[] {1e-3, 1e-2, 1e-1},
        "side-fzoo", new double[] {1e-3, 1e-2, 1e-1},
        "adam", new double[] {1e-5, 3e-5, 5e-5});
    List<Job> last = new ArrayList<>();
    for (String task : List.of("sst2-16", "sst2-512")) {
      if (!parts.contains(task)) {
        continue;
      }
      for (String method : METHODS) {
        if (methods != null && !methods.contains(method)) {
          continue;
        }
        ObjectNode spec = base(task, method, root);
        double[] grid = grids.get(method);
        if (grid != null) {
          ArrayNode lrs = spec.putArray("lrs");
          if (lrList != null) {
            lrList.forEach(lrs::add);
          } else if (quick) {
            lrs.add(grid[1]);
          } else {
            for (double lr : grid) {
              lrs.add(lr);
            }
          }
          int steps = method.equals("adam") ? adamSteps() : task.equals("sst2-16") ? steps16() : steps512();
          // FZOO gets the same budget of loss evaluations as MeZO's two per step: N + 1 per step.
          spec.put("steps", method.endsWith("-fzoo") ? Math.max(1, 2 * steps / (FZOO_DIRECTIONS + 1)) : steps);
          if (task.equals("sst2-512") && parts.contains("sst2-16")) {
            spec.put("lr_from", "sst2-16"); // the rate chosen on 16-shot dev: no grid of its own (time budget)
          }
        }
        if (task.equals("sst2-512")) {
          spec.put("dev_limit", 256);
        }
        if (testLimit != null || quick) {
          spec.put("test_limit", testLimit != null ? testLimit : 200);
        }
        (spec.has("lr_from") || (task.equals("sst2-512") && grid == null) ? last : jobs).add(Job.worker(spec));
      }
    }
    if (parts.contains("sms")) {
      for (String method : List.of("mezo-norms", "zero-shot")) {
        ObjectNode spec = base("sms", method, root);
        spec.putArray("lrs").add(1e-3);
        if (quick) {
          spec.put("sms_limit", 400);
        }
        jobs.add(Job.worker(spec));
      }
    }
    if (parts.contains("sms-lm")) {
      ObjectNode spec = base("sms-lm", "mezo-full", root);
      spec.put("steps", quick ? 50 : 1500);
      jobs.add(Job.worker(spec));
    }
    if (parts.contains("lm-methods")) {
      // The decoder comparison at an equal budget of loss evaluations (LmComparison); --quick: a tiny one.
      ObjectNode spec = base("lm-methods", "all", root);
      spec.put("quick", quick);
      jobs.add(0, Job.worker(spec));
    }
    if (parts.contains("memory")) {
      for (int b : batches()) {
        for (String m : List.of("mezo-minilm", "adam-minilm", "infer-minilm", "mezo-bench10m", "adam-bench10m",
            "infer-bench10m")) {
          jobs.add(Job.memory(m, b, 2, root));
        }
      }
    }
    jobs.addAll(last);
    return jobs;
  }

  private ObjectNode base(String task, String method, Path root) {
    ObjectNode spec = JSON.createObjectNode().put("task", task).put("method", method)
        .put("data", data.toAbsolutePath().normalize().toString()).put("work", root.resolve(task + "-" + method).toString())
        .put("threads", 1).put("batch", 16).put("eps", eps).put("evaluations", 10);
    ArrayNode s = spec.putArray("seeds");
    for (long seed : seeds()) {
      s.add(seed);
    }
    return spec;
  }

  /** One child JVM: a quality worker, or a memory probe of one engine, model and batch. */
  record Job(String task, String method, int batch, List<String> args, ObjectNode spec) {
    static Job worker(ObjectNode spec) {
      return new Job(spec.path("task").asText(), spec.path("method").asText(), 0, List.of(QualityWorker.class.getName()), spec);
    }

    static Job memory(String what, int batch, int steps, Path root) {
      Path onnx = root.resolve("memory").resolve("all-minilm-l6-v2.onnx");
      String b = Integer.toString(batch);
      String s = Integer.toString(steps);
      List<String> args = switch (what) {
        case "mezo-minilm" -> List.of(MemoryProbe.class.getName(), "train-minilm", onnx.toString(), b, "128", s);
        case "infer-minilm" -> List.of(MemoryProbe.class.getName(), "infer-minilm", onnx.toString(), b, "128", s);
        case "adam-minilm" -> List.of(AdamFineTuning.class.getName(), "minilm", onnx.toString(), b, "128", s);
        case "mezo-bench10m" -> List.of(MemoryProbe.class.getName(), "train", "bench10m", b, "128", s);
        case "infer-bench10m" -> List.of(MemoryProbe.class.getName(), "infer", "bench10m", b, "128", s);
        case "adam-bench10m" -> List.of(DecoderLm.class.getName(), "decoder", "bench10m", b, "128", s);
        default -> throw new IllegalArgumentException(what);
      };
      return new Job("memory", what, batch, args, null);
    }

    String name() {
      return task + " " + method + (batch > 0 ? " batch " + batch : "");
    }

    /** @param lrFrom the result of the job whose chosen learning rate this one takes, or null */
    JsonNode run(PrintWriter err, Future<JsonNode> lrFrom) throws Exception {
      List<String> args = new ArrayList<>(this.args);
      if (spec != null) {
        if (lrFrom != null) {
          double lr = lrFrom.get().path("lr").asDouble();
          spec.putArray("lrs").add(lr);
          spec.put("lr_chosen_on", spec.path("lr_from").asText() + " dev");
        }
        args.add(spec.toString());
      }
      if (method.endsWith("-minilm")) {
        MinilmFiles.ensure(Path.of(args.get(2)).getParent());
      }
      String java = ProcessHandle.current().info().command().orElse("java");
      List<String> cmd = new ArrayList<>(List.of(java, "-XX:+UseSerialGC", "-DOPT_OUT_TRACKING=true",
          "-Dai.djl.offline=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=error",
          "-Dai.djl.pytorch.num_threads=1", "-Dpockettune.probe.threads=1",
          "-cp", System.getProperty("java.class.path")));
      cmd.addAll(args);
      long t0 = System.nanoTime();
      ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
      // libtorch's OpenMP threads spin while waiting unless told otherwise, which starves the other job.
      pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
      Process p = pb.start();
      StringBuilder all = new StringBuilder();
      JsonNode result = null;
      try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line = r.readLine(); line != null; line = r.readLine()) {
          all.append(line).append('\n');
          if (line.startsWith("quality_result=")) {
            result = JSON.readTree(line.substring("quality_result=".length()));
          } else if (line.startsWith("peak_rss_kb=")) {
            result = JSON.createObjectNode().put("peak_rss_kb", Long.parseLong(line.substring("peak_rss_kb=".length())));
          } else if (!task.equals("memory") && (line.contains(" seed ") || line.startsWith("sms"))) {
            synchronized (err) {
              err.println("  " + task + " " + line);
              err.flush();
            }
          }
        }
      }
      int code = p.waitFor();
      if (code != 0 || result == null) {
        String tail = all.length() > 2000 ? all.substring(all.length() - 2000) : all.toString();
        throw new IllegalStateException(name() + " exited with " + code + ": " + tail.replace('\n', ' '));
      }
      synchronized (err) {
        err.printf(Locale.ROOT, "done: %s in %.0f s%s%n", name(), (System.nanoTime() - t0) / 1e9,
            result.has("accuracy_mean") ? String.format(Locale.ROOT, ", accuracy %.4f +- %.4f",
                result.path("accuracy_mean").asDouble(), result.path("accuracy_std").asDouble()) : "");
        err.flush();
      }
      return result;
    }
  }

  /** The Markdown table of a result document (what docs/QUALITY.md holds). */
  static String markdown(JsonNode doc) {
    StringBuilder s = new StringBuilder();
    s.append("| task | method | lr | test accuracy (mean +- std) | forward passes | seconds | peak RSS MB |\n");
    s.append("|---|---|---|---|---|---|---|\n");
    doc.path("tasks").properties().stream().filter(t -> !t.getKey().equals("lm-methods"))
        .forEach(t -> t.getValue().properties().forEach(m -> {
      JsonNode r = m.getValue();
      String acc = r.has("accuracy_mean") ? String.format(Locale.ROOT, "%.2f +- %.2f", 100 * r.path("accuracy_mean").asDouble(),
          100 * r.path("accuracy_std").asDouble()) : String.format(Locale.ROOT, "loss %.4f -> %.4f",
          r.path("heldout_loss_before").asDouble(), r.path("heldout_loss_after").asDouble());
      if (r.has("prequential_accuracy_mean")) {
        acc += String.format(Locale.ROOT, " (prequential %.2f +- %.2f)", 100 * r.path("prequential_accuracy_mean").asDouble(),
            100 * r.path("prequential_accuracy_std").asDouble());
      }
      s.append(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %d |%n", t.getKey(), m.getKey(),
          r.has("lr") ? String.format(Locale.ROOT, "%.0e", r.path("lr").asDouble()) : "-", acc,
          r.path("forward_passes").asText("-"), r.has("seconds") ? r.path("seconds").asText() : "-",
          r.path("peak_rss_mb").asLong()));
    }));
    JsonNode lm = doc.path("tasks").path("lm-methods").path("all");
    if (!lm.isMissingNode()) {
      s.append(String.format(Locale.ROOT, "%n| decoder on SMS ham, %d loss evaluations | lr | held-out loss (mean +- std) | steps | seconds per step |%n",
          lm.path("budget_loss_evaluations").asInt()));
      s.append("|---|---|---|---|---|\n");
      s.append(String.format(Locale.ROOT, "| pretrained base (SST-2 sentences) | - | %.4f | %d | - |%n",
          lm.path("pretraining").path("sms_heldout_loss_after").asDouble(), lm.path("pretraining").path("steps").asInt()));
      lm.path("methods").properties().forEach(m -> {
        JsonNode r = m.getValue();
        s.append(String.format(Locale.ROOT, "| %s | %.0e | %.4f +- %.4f | %d | %.3f |%n", m.getKey(), r.path("chosen_lr").asDouble(),
            r.path("final_heldout_loss_mean").asDouble(), r.path("final_heldout_loss_std").asDouble(), r.path("steps").asInt(),
            r.path("seconds_per_step").asDouble()));
      });
      lm.path("forwards_to_target").properties().stream().filter(e -> e.getValue().isObject()).forEach(e -> {
        JsonNode f = e.getValue();
        s.append(String.format(Locale.ROOT, "%nforward passes to held-out loss %.4f (%s): %s %s, %s %s, ratio %s%s%n",
            f.path("target_loss").asDouble(), e.getKey(), f.path("mezo_method").asText(), f.path("mezo_forwards_to_target").asText(),
            f.path("fzoo_method").asText(), f.path("fzoo_forwards_to_target").asText(), f.path("mezo_over_fzoo").asText(),
            f.has("note") ? " (" + f.path("note").asText() + ")" : ""));
      });
    }
    JsonNode mem = doc.path("memory");
    for (String model : List.of("minilm", "bench10m")) {
      JsonNode m = mem.path(model);
      if (m.isMissingNode()) {
        continue;
      }
      s.append("\n| ").append(model).append(" batch | MeZO MB | Adam MB | inference MB | Adam / MeZO |\n|---|---|---|---|---|\n");
      for (int i = 0; i < m.path("batches").size(); i++) {
        s.append(String.format(Locale.ROOT, "| %d | %d | %d | %d | %s |%n", m.path("batches").get(i).asInt(),
            m.path("mezo_mb").get(i).asLong(), m.path("adam_mb").get(i).asLong(), m.path("inference_mb").get(i).asLong(),
            m.path("adam_over_mezo").get(i).asText()));
      }
    }
    s.append(String.format(Locale.ROOT, "%nwall time: %.1f minutes%n", doc.path("minutes").asDouble()));
    return s.toString();
  }
}
