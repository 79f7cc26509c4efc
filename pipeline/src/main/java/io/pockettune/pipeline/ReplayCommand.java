package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.LogSnapshot;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.PerturbationKernel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.TopicPartition;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune replay}: evaluates checkpoints on a slice of the log without training (see
 * {@link ReplayEvaluation}) and writes JSON, CSV and an HTML report.
 *
 * <p>{@code --from}/{@code --to} (to exclusive) are each either an offset, applied to every
 * partition of the chosen topics and clamped to what each holds, or an ISO-8601 instant, resolved
 * per partition to the first record at or after it; the defaults are the whole log. The store is
 * opened read-only; the log must not be held by a running service (replay reads it directly).
 */
@Command(name = "replay", mixinStandardHelpOptions = true,
    description = "Evaluate checkpoints on a slice of the log without training; write JSON, CSV and an HTML report.")
final class ReplayCommand implements Callable<Integer> {
  private static final Pattern MAX_TOKENS = Pattern.compile("\"max_tokens\"\\s*:\\s*(\\d+)|maxPositions=(\\d+)");

  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--from", paramLabel = "OFFSET|TIME", description = "first offset (every partition) or ISO-8601 instant")
  String from;

  @Option(names = "--to", paramLabel = "OFFSET|TIME", description = "offset or instant to stop before")
  String to;

  @Option(names = "--topic", description = "topic to replay (default: messages and notes)")
  String topic;

  @Option(names = "--checkpoints", description = "all, or checkpoint ids such as 1,3 (default: ${DEFAULT-VALUE})")
  String checkpoints = "all";

  @Option(names = "--report", paramLabel = "FILE", description = "HTML report to write; CSV and JSON beside it (default: DIR/reports/replay.html)")
  Path report;

  @Option(names = "--batch", description = "events per forward pass (default: ${DEFAULT-VALUE})")
  int batch = 32;

  @Option(names = "--prequential", description = "from the first chosen checkpoint (or the base model), evaluate each batch, then train on it in memory")
  boolean prequential;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    if (batch < 1 || threads < 1) {
      throw new IllegalArgumentException("--batch and --threads must be positive");
    }
    long started = System.nanoTime();
    PrintWriter out = spec.commandLine().getOut();
    Path dir = common.dataDir.toAbsolutePath();
    byte[] onnx = StoreCommands.baseModel(dir);
    Path html = (report != null ? report : dir.resolve("reports").resolve("replay.html")).toAbsolutePath();
    String stem = html.getFileName().toString().replaceFirst("\\.html?$", "");
    Path csv = html.resolveSibling(stem + ".csv");
    Path jsonFile = html.resolveSibling(stem + ".json");
    if (!Files.isDirectory(dir.resolve("log"))) {
      throw new IllegalArgumentException("there is no log in " + dir + ": check --data-dir");
    }
    try (ModelStore store = StoreCommands.openReadOnly(dir)) {
      RunIdentity identity = store.identity();
      List<Checkpoint> chosen = choose(store);
      // A read-only snapshot: replay never writes the log and works beside a running service.
      try (LogSnapshot log = LogSnapshot.open(dir.resolve("log"));
          LossModel model = StoreCommands.loadModel(onnx, identity, threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        List<TopicPartition> partitions = new ArrayList<>();
        for (TopicPartition tp : Topics.sources()) {
          if (topic == null || tp.topic().equals(topic)) {
            partitions.add(tp);
          }
        }
        if (topic != null && partitions.isEmpty()) {
          if (!log.topics().contains(topic)) {
            throw new IllegalArgumentException("there is no topic '" + topic + "' in the log: use one of " + log.topics());
          }
          for (int p = 0; p < log.partitionCount(topic); p++) {
            partitions.add(new TopicPartition(topic, p));
          }
        }
        Map<TopicPartition, Long> start = ReplayEvaluation.bound(log, partitions, from, true);
        Map<TopicPartition, Long> end = ReplayEvaluation.bound(log, partitions, to, false);
        end.replaceAll((tp, e) -> Math.max(e, start.get(tp)));
        EventSerde serde = new EventSerde(SchemaStore.open(dir.resolve("schemas")));
        ReplayEvaluation.Slice slice = ReplayEvaluation.read(log, serde, ExampleMapper.defaults(),
            maxTokens(identity), batch, start, end);
        if (slice.batches().isEmpty()) {
          throw new IllegalArgumentException("the slice from " + start + " to " + end + " holds no event to evaluate on:"
              + " widen --from/--to or check --topic");
        }
        MezoConfig config = config(identity);
        JsonLine json = new JsonLine().put("events", slice.events()).put("skipped", slice.skipped())
            .put("batches", slice.batches().size()).put("from", offsets(start)).put("to", offsets(end));
        String subtitle = String.format(Locale.ROOT, "%s: %d events in %d batches (%d skipped), offsets %s to %s",
            dir, slice.events(), slice.batches().size(), slice.skipped(), offsets(start), offsets(end));
        if (prequential) {
          long startStep = chosen.isEmpty() ? 0 : chosen.get(0).step();
          List<ReplayEvaluation.PrequentialPoint> points =
              ReplayEvaluation.prequential(store, model, config, kernel, startStep, slice.batches());
          double mean = points.stream().mapToDouble(p -> p.lossBefore() * p.events()).sum()
              / points.stream().mapToInt(ReplayEvaluation.PrequentialPoint::events).sum();
          List<ReplayReport.Point> rows = new ArrayList<>();
          List<Object> series = new ArrayList<>();
          for (ReplayEvaluation.PrequentialPoint p : points) {
            rows.add(new ReplayReport.Point(p.batch(), p.lossBefore(), List.of(p.batch(), p.step(), p.events(), p.lossBefore())));
            series.add(new JsonLine().put("batch", p.batch()).put("events", p.events()).put("loss_before", p.lossBefore()));
          }
          List<String> header = List.of("batch", "step", "events", "loss_before");
          ReplayReport.writeCsv(csv, header, rows);
          ReplayReport.writeHtml(html, "PocketTune prequential replay", subtitle + ", from step " + startStep,
              "batch", "loss before training on it", header, rows);
          out.printf(Locale.ROOT, "prequential from step %d over %d batches: mean loss before training %.4f (first %.4f, last %.4f)%n",
              startStep, points.size(), mean, points.get(0).lossBefore(), points.get(points.size() - 1).lossBefore());
          json.put("mode", "prequential").put("start_step", startStep).put("prequential_loss", mean)
              .put("checkpoints_evaluated", 0).put("points", series);
        } else {
          if (chosen.isEmpty()) {
            throw new IllegalArgumentException("the store has no checkpoints to evaluate: train with demo or serve first");
          }
          List<ReplayEvaluation.Result> results =
              ReplayEvaluation.evaluate(store, model, config, kernel, chosen, slice.batches());
          List<ReplayReport.Point> rows = new ArrayList<>();
          List<Object> list = new ArrayList<>();
          out.printf(Locale.ROOT, "%5s %9s  %-16s %9s %11s%n", "id", "step", "label", "loss", "perplexity");
          for (ReplayEvaluation.Result r : results) {
            out.printf(Locale.ROOT, "%5d %9d  %-16s %9.4f %11.3f%n", r.id(), r.step(),
                r.label() == null ? "-" : r.label(), r.loss(), r.perplexity());
            rows.add(new ReplayReport.Point(r.step(), r.loss(),
                Arrays.asList(r.id(), r.step(), r.label(), r.loss(), r.perplexity(), r.accuracy())));
            list.add(new JsonLine().put("id", r.id()).put("step", r.step()).put("label", r.label())
                .put("loss", r.loss()).put("perplexity", r.perplexity()).put("accuracy", r.accuracy()));
          }
          List<String> header = List.of("id", "step", "label", "loss", "perplexity", "accuracy");
          ReplayReport.writeCsv(csv, header, rows);
          ReplayReport.writeHtml(html, "PocketTune replay: loss per checkpoint", subtitle, "step", "loss", header, rows);
          json.put("mode", "checkpoints").put("checkpoints_evaluated", results.size()).put("checkpoints", list);
        }
        double seconds = (System.nanoTime() - started) / 1e9;
        json.put("seconds", Math.round(seconds * 100) / 100.0).put("report", html.toString()).put("csv", csv.toString())
            .put("json", jsonFile.toString());
        Files.writeString(jsonFile, json + "\n");
        out.printf(Locale.ROOT, "report: %s (csv %s), %.1f s%n", html, csv, seconds);
        if (common.json) {
          out.println(json);
        }
      }
    }
    return 0;
  }

  private List<Checkpoint> choose(ModelStore store) {
    List<Checkpoint> live = store.checkpoints().stream().filter(Checkpoint::live).toList();
    if (checkpoints.equals("all")) {
      return live.stream().sorted(Comparator.comparingLong(Checkpoint::step)).toList();
    }
    List<Checkpoint> chosen = new ArrayList<>();
    for (String id : checkpoints.split(",")) {
      long n;
      try {
        n = Long.parseLong(id.strip());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--checkpoints takes 'all' or ids such as 1,3; '" + id + "' is not an id");
      }
      Checkpoint c = store.checkpoint(n).orElseThrow(() -> new IllegalArgumentException(
          "there is no checkpoint " + n + ": list them with 'pockettune checkpoints'"));
      if (!c.live()) {
        throw new IllegalArgumentException("checkpoint " + n + " was abandoned by a rollback: choose a live one");
      }
      chosen.add(c);
    }
    return chosen;
  }

  /** The context the run trained with: its run config's max_tokens, or the demo model's positions. */
  static int maxTokens(RunIdentity identity) {
    Matcher m = MAX_TOKENS.matcher(identity.runConfig());
    if (m.find()) {
      return Integer.parseInt(m.group(1) != null ? m.group(1) : m.group(2));
    }
    return 128;
  }

  /** The run's hyperparameters: replay needs the distribution and decay, prequential training also lr, eps and seed. */
  static MezoConfig config(RunIdentity identity) throws IOException {
    MezoConfig replay = StoreCommands.replayConfig(identity);
    JsonNode run;
    try {
      run = EventJson.parseObject(identity.runConfig());
    } catch (IOException e) {
      return replay;
    }
    MezoConfig c = new MezoConfig((float) run.path("eps").asDouble(1e-3), (float) run.path("lr").asDouble(1e-3),
        run.path("seed").asLong(42));
    return c.withDistribution(replay.distribution()).withWeightDecay(replay.weightDecay());
  }

  private static Map<String, Long> offsets(Map<TopicPartition, Long> m) {
    Map<String, Long> out = new LinkedHashMap<>();
    m.forEach((tp, o) -> out.put(tp.topic() + "-" + tp.partition(), o));
    return out;
  }
}
