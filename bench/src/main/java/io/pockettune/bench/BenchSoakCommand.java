package io.pockettune.bench;

import io.pockettune.ingest.LogConfig;
import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench soak --minutes N}: continuous produce and training with retention on,
 * the service as an app embeds it (the built-in demo model, the runtime API in this JVM), sampled
 * every few seconds: resident memory (as it is, and after a full collection, with the heap then
 * used), the model store's RocksDB memory (memtables, block cache, table readers), open file
 * descriptors, threads and lag. Reported as the
 * averages of the first and the last window (5 minutes, or half the run if shorter) and their
 * ratio, the baseline being the same process earlier in the same run: flat means a ratio near 1.
 * The first window holds the warm-up, so a run of three windows or more also compares the last
 * with the second, and gives the resident set's growth after warm-up in MB an hour.
 * Retention is small (segments of 16 KiB, 64 KiB a partition, checked every 30 s) so that the log
 * reaches its bound within the first window and segments roll and are deleted throughout.
 */
@Command(name = "soak", mixinStandardHelpOptions = true,
    description = "Produce and train continuously for N minutes with retention on: memory, files, threads, lag.")
final class BenchSoakCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  static final int SEGMENT_BYTES = 16 * 1024;
  static final long RETENTION_BYTES = 64 * 1024;
  static final long RETENTION_CHECK_MS = 30_000;

  @Option(names = "--minutes", description = "how long (default: ${DEFAULT-VALUE})")
  double minutes = 30;

  @Option(names = "--rate", description = "events produced per second (default: ${DEFAULT-VALUE})")
  int rate = 8;

  @Option(names = "--snapshot-every", description = "steps between snapshots of the trainable values (default:"
      + " ${DEFAULT-VALUE})")
  int snapshotEvery = 100;

  @Option(names = "--sample-seconds", description = "seconds between samples (default: ${DEFAULT-VALUE})")
  int sampleSeconds = 10;

  @Option(names = "--data-dir", paramLabel = "DIR",
      description = "where to put the run's data directory, a temporary one under DIR deleted afterwards"
          + " (default: ${DEFAULT-VALUE})")
  Path dataDir = Path.of("pockettune-data");

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  /** One sample: seconds since the start, resident bytes, open descriptors, threads, lag, last step. */
  record Sample(double seconds, long rss, long rssAfterGc, long heapAfterGc, long fds, long threads, long lag, long step,
      long logBytes, long storeMemory) {}

  @Override
  public Integer call() throws Exception {
    if (!(minutes > 0) || rate < 1 || sampleSeconds < 1 || snapshotEvery < 1) {
      throw new IllegalArgumentException("--minutes, --rate, --sample-seconds and --snapshot-every must be positive");
    }
    PrintWriter out = spec.commandLine().getOut();
    Files.createDirectories(dataDir);
    Path work = Files.createTempDirectory(dataDir.toAbsolutePath(), "bench-soak-");
    try {
      return run(work.resolve("data"), out);
    } finally {
      try (Stream<Path> files = Files.walk(work)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private int run(Path data, PrintWriter out) throws Exception {
    LogConfig log = LogConfig.defaults().withSegmentBytes(SEGMENT_BYTES).withRetention(-1, RETENTION_BYTES)
        .withRetentionCheckInterval(RETENTION_CHECK_MS);
    List<Sample> samples = new ArrayList<>();
    AtomicLong produced = new AtomicLong();
    long started = System.nanoTime();
    long end = started + (long) (minutes * 60e9);
    try (PocketTune tune = PocketTune.builder(data).threads(1).batch(4).checkpointEvery(200).snapshotEvery(snapshotEvery)
        .logConfig(log).open()) {
      tune.startTraining();
      Thread producer = new Thread(() -> produce(tune, end, produced), "soak-producer");
      producer.setDaemon(true);
      producer.start();
      long next = System.nanoTime();
      while (System.nanoTime() < end) {
        JsonLine status = tune.status();
        long rss = rss();
        // What stays after a full collection: garbage and direct buffers awaiting their cleaner are
        // resident until the collector runs, and the heap grows towards -Xmx first. A leak shows
        // here; a heap filling up shows only in rss.
        System.gc();
        Thread.sleep(200);
        long heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
        samples.add(new Sample((System.nanoTime() - started) / 1e9, rss, rss(), heap, fds(),
            ManagementFactory.getThreadMXBean().getThreadCount(), ((Number) status.get("lag")).longValue(),
            ((Number) status.get("last_step")).longValue(), bytesUnder(data.resolve("log")), storeMemory(status)));
        if (tune.trainingFailure() != null) {
          throw new IllegalStateException("training failed during the soak: " + PocketTune.message(tune.trainingFailure()),
              tune.trainingFailure());
        }
        Sample s = samples.get(samples.size() - 1);
        out.printf(Locale.ROOT, "%6.0f s  rss %5.1f MB (after gc %5.1f, heap %5.1f)  fds %4d  threads %3d  lag %5d"
            + "  step %7d  log %6.0f KiB  store memory %5.1f MB%n", s.seconds(), s.rss() / 1e6, s.rssAfterGc() / 1e6,
            s.heapAfterGc() / 1e6, s.fds(), s.threads(), s.lag(), s.step(), s.logBytes() / 1024.0, s.storeMemory() / 1e6);
        out.flush();
        next += sampleSeconds * 1_000_000_000L;
        Thread.sleep(Math.max(0, (next - System.nanoTime()) / 1_000_000));
      }
      producer.join(5_000);
      tune.stopTraining();
    }
    double window = Math.min(300, minutes * 60 / 2);
    double total = (System.nanoTime() - started) / 1e9;
    List<Sample> first = samples.stream().filter(s -> s.seconds() <= window).toList();
    List<Sample> last = samples.stream().filter(s -> s.seconds() >= total - window).toList();
    JsonLine j = new JsonLine().put("bench", "soak").put("minutes", minutes).put("rate_events_per_s", rate).put("snapshot_every", snapshotEvery)
        .put("segment_bytes", SEGMENT_BYTES).put("retention_bytes_per_partition", RETENTION_BYTES)
        .put("retention_check_s", RETENTION_CHECK_MS / 1000)
        .put("events_produced", produced.get()).put("samples", samples.size()).put("window_s", window)
        .put("steps", samples.isEmpty() ? 0 : samples.get(samples.size() - 1).step());
    // The first window holds the warm-up (compiled code, ONNX Runtime's arena, the log growing to
    // its retention bound); the second, right after it, is the baseline of the steady state.
    List<Sample> second = total >= 3 * window
        ? samples.stream().filter(s -> s.seconds() > window && s.seconds() <= 2 * window).toList() : List.of();
    for (String what : List.of("rss", "rss_after_gc", "heap_after_gc", "store_memory", "fds", "threads", "lag",
        "log_bytes")) {
      double a = mean(first, what);
      double b = mean(last, what);
      j.put(what + "_first", round(a)).put(what + "_last", round(b)).put(what + "_last_vs_first", round(b / a));
      if (!second.isEmpty()) {
        double c = mean(second, what);
        j.put(what + "_second", round(c)).put(what + "_last_vs_second", round(b / c));
      }
    }
    j.put("lag_max", samples.stream().mapToLong(Sample::lag).max().orElse(0));
    out.printf(Locale.ROOT, "first vs last %.0f s: rss x%s (after gc x%s, heap after gc x%s), fds x%s, threads x%s;"
        + " lag at most %s events%n", window, j.get("rss_last_vs_first"), j.get("rss_after_gc_last_vs_first"),
        j.get("heap_after_gc_last_vs_first"), j.get("fds_last_vs_first"), j.get("threads_last_vs_first"),
        j.get("lag_max"));
    if (!second.isEmpty()) {
      // From the middle of the second window to the middle of the last.
      double hours = (total - window / 2 - 1.5 * window) / 3600;
      j.put("rss_after_gc_mb_per_hour_after_warmup",
          round((mean(last, "rss_after_gc") - mean(second, "rss_after_gc")) / 1e6 / hours));
      out.printf(Locale.ROOT, "second vs last %.0f s: rss after gc x%s (%s MB an hour), fds x%s%n", window,
          j.get("rss_after_gc_last_vs_second"), j.get("rss_after_gc_mb_per_hour_after_warmup"),
          j.get("fds_last_vs_second"));
    }
    if (json) {
      out.println(j);
    }
    return 0;
  }

  private void produce(PocketTune tune, long end, AtomicLong produced) {
    long next = System.nanoTime();
    long i = 0;
    while (System.nanoTime() < end) {
      List<String> lines = new ArrayList<>();
      for (int k = 0; k < rate; k++, i++) {
        lines.add("{\"id\":\"s" + i + "\",\"conversation\":\"c" + (i % 5) + "\",\"sender\":\"me\",\"text\":\"soak message "
            + i + ", on the way home, see you at " + (i % 24) + "\"}");
      }
      try {
        tune.appendJson("messages", lines);
        produced.addAndGet(lines.size());
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
      next += 1_000_000_000L;
      try {
        Thread.sleep(Math.max(0, (next - System.nanoTime()) / 1_000_000));
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  private static double mean(List<Sample> samples, String what) {
    return samples.stream().mapToLong(s -> switch (what) {
      case "rss" -> s.rss();
      case "rss_after_gc" -> s.rssAfterGc();
      case "heap_after_gc" -> s.heapAfterGc();
      case "fds" -> s.fds();
      case "threads" -> s.threads();
      case "log_bytes" -> s.logBytes();
      case "store_memory" -> s.storeMemory();
      default -> s.lag();
    }).average().orElse(Double.NaN);
  }

  /** @return the model store's RocksDB memory (memtables, block cache, table readers) from a status, or -1 */
  @SuppressWarnings("unchecked")
  private static long storeMemory(JsonLine status) {
    Object m = status.get("store_memory_bytes");
    if (!(m instanceof java.util.Map<?, ?> map)) {
      return -1;
    }
    return ((java.util.Map<String, Object>) map).values().stream().mapToLong(v -> ((Number) v).longValue()).sum();
  }

  private static double round(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  private static long rss() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    return -1;
  }

  private static long bytesUnder(Path dir) throws IOException {
    for (int attempt = 0; ; attempt++) {
      try (Stream<Path> files = Files.walk(dir)) {
        return files.filter(Files::isRegularFile).mapToLong(f -> f.toFile().length()).sum();
      } catch (java.io.UncheckedIOException deletedDuringTheWalk) {
        if (attempt == 3) {
          throw deletedDuringTheWalk.getCause(); // retention deletes segments: walk again, but not for ever
        }
      }
    }
  }

  private static long fds() throws IOException {
    try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
      return fds.count();
    }
  }
}
