package io.pockettune.pipeline;

import io.pockettune.ingest.LogSnapshot;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.PerturbationKernel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;
import org.apache.kafka.common.TopicPartition;

/**
 * One replay evaluation of a data directory (see {@link ReplayEvaluation} for what is measured):
 * chooses the checkpoints and the slice, evaluates, and writes the JSON, CSV and HTML report. The
 * store is opened read-only and the log through a {@link LogSnapshot}, so it runs beside training.
 */
final class ReplayRun {
  private ReplayRun() {}

  static PocketTune.ReplayResult run(DataDirectory dir, ModelPackage pkg, PocketTune.ReplayOptions o) throws IOException {
    List<String> lines = new ArrayList<>();
    long started = System.nanoTime();
    Path html = (o.report() != null ? o.report() : dir.reports().resolve("replay.html")).toAbsolutePath();
    String stem = html.getFileName().toString().replaceFirst("\\.html?$", "");
    Path csv = html.resolveSibling(stem + ".csv");
    Path jsonFile = html.resolveSibling(stem + ".json");
    if (!Files.isDirectory(dir.log())) {
      throw new IllegalArgumentException("there is no log in " + dir + ": check --data-dir");
    }
    try (StoreSession session = StoreSession.readOnly(dir, pkg, o.threads())) {
      ModelStore store = session.store();
      LossModel model = session.model();
      PerturbationKernel kernel = session.kernel();
      List<ReplayEvaluation.Target> chosen = choose(store, o.checkpoints());
      // A read-only snapshot: replay never writes the log and works beside a running service.
      try (LogSnapshot log = dir.logSnapshot()) {
        List<TopicPartition> partitions = new ArrayList<>();
        for (TopicPartition tp : Topics.sources()) {
          if (o.topic() == null || tp.topic().equals(o.topic())) {
            partitions.add(tp);
          }
        }
        if (o.topic() != null && partitions.isEmpty()) {
          if (!log.topics().contains(o.topic())) {
            throw new IllegalArgumentException("there is no topic '" + o.topic() + "' in the log: use one of " + log.topics());
          }
          for (int p = 0; p < log.partitionCount(o.topic()); p++) {
            partitions.add(new TopicPartition(o.topic(), p));
          }
        }
        ReplayEvaluation.requireOrdered(o.from(), o.to());
        Map<TopicPartition, Long> start = ReplayEvaluation.bound(log, partitions, o.from(), true);
        Map<TopicPartition, Long> end = ReplayEvaluation.bound(log, partitions, o.to(), false);
        for (TopicPartition tp : partitions) {
          if (start.get(tp) > end.get(tp)) {
            throw new IllegalArgumentException("--from " + o.from() + " is after --to " + o.to() + " in " + tp
                + " (offset " + start.get(tp) + " after " + end.get(tp) + "): give a --from at or before --to");
          }
        }
        EventSerde serde = new EventSerde(SchemaStore.open(dir.schemas()));
        boolean classification = pkg.card().classification();
        ReplayEvaluation.Slice slice = ReplayEvaluation.read(log, serde, pkg.mapper(), pkg.exampleTokenizer(),
            session.runConfig().maxTokens(), o.batch(), start, end, classification);
        if (slice.batches().isEmpty() && (o.prequential() || slice.unlabelledBatches().isEmpty())) {
          throw new IllegalArgumentException(emptySlice(log, partitions, start, end, slice, o.prequential()));
        }
        Function<String, MezoConfig> config = RunConfig::replayConfig;
        JsonLine json = new JsonLine().put("events", slice.events()).put("skipped", slice.skipped())
            .put("unlabelled", slice.unlabelled())
            .put("batches", slice.batches().size()).put("from", offsets(start)).put("to", offsets(end));
        String subtitle = String.format(Locale.ROOT, "%s: %d events in %d batches (%d skipped), offsets %s to %s",
            dir, slice.events(), slice.batches().size(), slice.skipped(), offsets(start), offsets(end));
        if (o.prequential()) {
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
          lines.add(String.format(Locale.ROOT, "prequential from step %d over %d batches: mean loss before training %.4f (first %.4f, last %.4f)",
              startStep, points.size(), mean, points.get(0).lossBefore(), points.get(points.size() - 1).lossBefore()));
          json.put("mode", "prequential").put("start_step", startStep).put("prequential_loss", mean)
              .put("checkpoints_evaluated", 0).put("points", series);
        } else {
          if (chosen.isEmpty()) {
            throw new IllegalArgumentException("the store has no checkpoints to evaluate: give --checkpoints base,latest"
                + " to evaluate the base model and the last committed step, or train with demo or serve first");
          }
          if (o.baseline() && chosen.stream().noneMatch(c -> c.step() == 0)) {
            float[] base = model.parameters().toArray();
            ReplayEvaluation.Result b = ReplayEvaluation.evaluateAt(store, model, config, kernel, 0L, 0, "base",
                slice.batches(), slice.unlabelledBatches());
            model.parameters().load(base);
            lines.add(String.format(Locale.ROOT, "base model (step 0): loss %.4f%s", b.loss(),
                b.accuracy() == null ? "" : String.format(Locale.ROOT, ", accuracy %.4f", b.accuracy())));
            json.put("baseline", resultJson(b, pkg.card()));
          }
          List<ReplayEvaluation.Result> results = ReplayEvaluation.evaluateTargets(store, model, config, kernel, chosen,
              slice.batches(), slice.unlabelledBatches());
          List<ReplayReport.Point> rows = new ArrayList<>();
          List<Object> list = new ArrayList<>();
          lines.add(String.format(Locale.ROOT, "%5s %9s  %-16s %9s %11s", "id", "step", "label", "loss", "perplexity"));
          for (ReplayEvaluation.Result r : results) {
            lines.add(String.format(Locale.ROOT, "%5s %9d  %-16s %9.4f %11.3f%s", r.id() == null ? "-" : r.id(), r.step(),
                r.label() == null ? "-" : r.label(), r.loss(), r.perplexity(),
                r.accuracy() == null ? "" : String.format(Locale.ROOT, "  accuracy %.4f", r.accuracy())));
            rows.add(new ReplayReport.Point(r.step(), r.loss(),
                Arrays.asList(r.id(), r.step(), r.label(), r.loss(), r.perplexity(), r.accuracy())));
            list.add(resultJson(r, pkg.card()));
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
        lines.add(String.format(Locale.ROOT, "report: %s (csv %s), %.1f s", html, csv, seconds));
        return new PocketTune.ReplayResult(lines, json);
      }
    }
  }

  /**
   * The targets of {@code --checkpoints}, in the order given: a comma-separated list of {@code all}
   * (every live checkpoint, by step), checkpoint ids, {@code base} (the base model, step 0) and
   * {@code latest} (the last committed step), the last two needing no checkpoint.
   */
  private static List<ReplayEvaluation.Target> choose(ModelStore store, String checkpoints) {
    List<ReplayEvaluation.Target> chosen = new ArrayList<>();
    for (String item : checkpoints.split(",")) {
      String id = item.strip();
      switch (id) {
        case "all" -> store.checkpoints().stream().filter(Checkpoint::live)
            .sorted(Comparator.comparingLong(Checkpoint::step)).map(ReplayEvaluation.Target::of).forEach(chosen::add);
        case "base" -> chosen.add(new ReplayEvaluation.Target(null, 0, "base"));
        case "latest" -> chosen.add(new ReplayEvaluation.Target(null, store.lastStep(), "latest"));
        default -> chosen.add(ReplayEvaluation.Target.of(checkpoint(store, id)));
      }
    }
    return chosen;
  }

  private static Checkpoint checkpoint(ModelStore store, String id) {
    long n;
    try {
      n = Long.parseLong(id);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--checkpoints takes all, base, latest or checkpoint ids, such as 1,3 or"
          + " base,latest; '" + id + "' is none of them");
    }
    Checkpoint c = store.checkpoint(n).orElseThrow(() -> new IllegalArgumentException(
        "there is no checkpoint " + n + ": list them with 'pockettune checkpoints'"));
    if (!c.live()) {
      throw new IllegalArgumentException("checkpoint " + n + " was abandoned by a rollback: choose a live one");
    }
    return c;
  }

  /** Why a slice has nothing to evaluate on, in one sentence naming the fix. */
  private static String emptySlice(LogSnapshot log, List<TopicPartition> partitions, Map<TopicPartition, Long> start,
      Map<TopicPartition, Long> end, ReplayEvaluation.Slice slice, boolean prequential) throws IOException {
    long inLog = 0;
    long inSlice = 0;
    for (TopicPartition tp : partitions) {
      inLog += log.endOffset(tp.topic(), tp.partition()) - log.startOffset(tp.topic(), tp.partition());
      inSlice += end.get(tp) - start.get(tp);
    }
    if (inLog == 0) {
      return "the log holds no events in " + partitions + ": produce some first, or check --topic";
    }
    if (inSlice == 0) {
      return "the slice from " + offsets(start) + " to " + offsets(end) + " is empty (--from equals --to, or is past"
          + " the end of the log): widen --from/--to, the log holding offsets up to " + offsets(ends(log, partitions));
    }
    return "none of the " + inSlice + " events from " + offsets(start) + " to " + offsets(end) + " can be evaluated on ("
        + slice.skipped() + " undecodable or oversize" + (prequential && slice.unlabelled() > 0 ? ", " + slice.unlabelled()
        + " without a label, which --prequential cannot train on" : "") + "): widen --from/--to or check --topic";
  }

  private static Map<TopicPartition, Long> ends(LogSnapshot log, List<TopicPartition> partitions) throws IOException {
    Map<TopicPartition, Long> out = new LinkedHashMap<>();
    for (TopicPartition tp : partitions) {
      out.put(tp, log.endOffset(tp.topic(), tp.partition()));
    }
    return out;
  }

  private static JsonLine resultJson(ReplayEvaluation.Result r, ModelCard card) {
    JsonLine j = new JsonLine().put("id", r.id()).put("step", r.step()).put("label", r.label())
        .put("loss", r.loss()).put("perplexity", r.perplexity()).put("accuracy", r.accuracy());
    if (r.unlabelledPredicted() != null) {
      Map<String, Long> predicted = new LinkedHashMap<>();
      for (int i = 0; i < r.unlabelledPredicted().length; i++) {
        predicted.put(card.labels().get(i), r.unlabelledPredicted()[i]);
      }
      j.put("unlabelled_predicted", predicted);
    }
    return j;
  }

  private static Map<String, Long> offsets(Map<TopicPartition, Long> m) {
    Map<String, Long> out = new LinkedHashMap<>();
    m.forEach((tp, o) -> out.put(tp.topic() + "-" + tp.partition(), o));
    return out;
  }
}
