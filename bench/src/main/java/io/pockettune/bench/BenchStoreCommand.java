package io.pockettune.bench;

import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.store.SourcePartition;
import io.pockettune.store.VerifiedRollback;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.StepRecord;
import io.pockettune.trainer.TokenBatch;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench store}: trains the demo model (DecoderLmConfig.demo(), all 446k
 * parameters) for real MeZO steps, committing each one synced with the offsets of three source
 * partitions and snapshotting every K steps, then rolls back near the end and in the middle.
 *
 * <p>What is measured is the store, so a step trains on ONE short sequence (16 tokens) instead of
 * the demo's 16 examples: the records, offsets, snapshots and replay are exactly what a full-batch
 * run writes and reads (replay cost does not depend on the batch), only the forward passes are
 * cheaper. Reports: bytes per step (step records and offsets, and with snapshots), commit latency
 * (p50, p99, max; synced), and rollback time (restore + check + rollback write) to a step just
 * before a snapshot, the worst case of replay, near the end and in the middle.
 *
 * <p>Encryption at rest: after training, the trained values are written as a snapshot and read
 * back ({@link ModelStore#putSnapshot}, {@link ModelStore#snapshotAtOrBefore}) in two fresh stores,
 * one in the clear and one with {@link ModelStore#encryptSnapshots} (AES-256-GCM), alternating for
 * {@value #SNAPSHOT_ROUNDS} rounds of {@value #SNAPSHOT_REPEATS}; the medians and their ratios are
 * reported ({@code encrypted_vs_clear_snapshot_put}, {@code encrypted_vs_clear_snapshot_read}, and
 * {@code encrypted_vs_clear_throughput} for a put and a read together). Step records, offsets and
 * checkpoints stay in the clear, so commits cost the same either way.
 */
@Command(name = "store", mixinStandardHelpOptions = true,
    description = "Measure commits, trajectory size and rollback on the demo model.")
final class BenchStoreCommand implements Callable<Integer> {
  /** Alternating rounds of the encrypted-versus-clear snapshot measurement. */
  static final int SNAPSHOT_ROUNDS = 3;
  /** Snapshot writes and reads per side and round. */
  static final int SNAPSHOT_REPEATS = 10;

  @Spec CommandSpec spec;

  @Option(names = "--data-dir", paramLabel = "DIR",
      description = "where to put the benchmark's store, in a temporary directory under DIR deleted afterwards"
          + " (default: ${DEFAULT-VALUE})")
  Path dataDir = Path.of("pockettune-data");

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  @Option(names = "--steps", description = "MeZO steps to commit (default: ${DEFAULT-VALUE})")
  int steps = 10_000;

  @Option(names = "--snapshot-every", description = "steps between snapshots (default: ${DEFAULT-VALUE})")
  int snapshotEvery = 500;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    if (steps < 4 || snapshotEvery < 1 || threads < 1) {
      throw new IllegalArgumentException("--steps must be at least 4, --snapshot-every and --threads positive");
    }
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Files.createDirectories(dataDir);
    Path work = Files.createTempDirectory(dataDir.toAbsolutePath(), "bench-store-");
    try {
      return run(work, out, err);
    } finally {
      try (Stream<Path> files = Files.walk(work)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private int run(Path work, PrintWriter out, PrintWriter err) {
    DecoderLmConfig config = DecoderLmConfig.demo();
    byte[] onnx = DecoderLmBuilder.build(config);
    ByteTokenizer tokenizer = new ByteTokenizer();
    // The demo's source partitions: messages-0, messages-1, notes-0.
    List<SourcePartition> partitions = List.of(new SourcePartition("messages", 0),
        new SourcePartition("messages", 1), new SourcePartition("notes", 0));
    long[] commitNanos = new long[steps];
    long trainStarted = System.nanoTime();
    Map<String, Long> sizes;
    MezoConfig mezo = new MezoConfig(1e-3f, 1e-4f, 7L);
    try (LossModel model = LossModel.causalLm(onnx, TrainableSelection.all(), threads);
        PerturbationKernel kernel = new PerturbationKernel(threads)) {
      float[] base = model.parameters().toArray();
      RunIdentity identity = new RunIdentity(model.baseModelHash(), PerturbationKernel.VERSION,
          model.parameters().layout(), "bench store");
      try (ModelStore store = ModelStore.open(work.resolve("store"), identity)) {
        MezoTrainer trainer = new MezoTrainer(model, mezo, kernel, 0);
        long[] offsets = new long[partitions.size()];
        for (int n = 1; n <= steps; n++) {
          String text = "bench message " + n + " about the weekend";
          TokenBatch batch = TokenBatch.of(List.of(tokenizer.encode(text, 16)));
          StepRecord r = trainer.step(batch);
          offsets[n % offsets.length]++;
          Map<SourcePartition, Long> next = new TreeMap<>();
          for (int p = 0; p < offsets.length; p++) {
            next.put(partitions.get(p), offsets[p] * 16);
          }
          long t0 = System.nanoTime();
          store.commitStep(r, next);
          commitNanos[n - 1] = System.nanoTime() - t0;
          store.snapshotIfDue(model.parameters(), snapshotEvery);
          if (n % 1000 == 0) {
            store.markCheckpoint(null, Map.of("train_loss", (double) (r.lossPlus() + r.lossMinus()) / 2));
            err.printf(Locale.ROOT, "bench store: %,d of %,d steps committed%n", n, steps);
            err.flush();
          }
        }
        sizes = store.sizeOnDisk();
      }
      double trainSeconds = (System.nanoTime() - trainStarted) / 1e9;
      long snapshotBytes = sizes.get("snapshots");
      long trajectoryBytes = sizes.values().stream().mapToLong(Long::longValue).sum() - snapshotBytes;
      Arrays.sort(commitNanos);

      // Worst case of replay: one step before a snapshot. Near the end first, since rolling back
      // to the middle abandons the end.
      long nearEnd = (steps / snapshotEvery) * snapshotEvery - 1;
      long middle = (steps / 2 / snapshotEvery) * snapshotEvery - 1;
      if (nearEnd <= 0 || middle <= 0 || middle >= nearEnd) {
        nearEnd = steps - 1;
        middle = steps / 2;
      }
      long[] rollbackMs = new long[2];
      long[] replayed = new long[2];
      long[] targets = {nearEnd, middle};
      for (int i = 0; i < 2; i++) {
        try (ModelStore store = ModelStore.openExisting(work.resolve("store"))) {
          model.parameters().load(base);
          TimedRollback r = rollback(store, model, mezo, kernel, targets[i]);
          rollbackMs[i] = r.millis();
          replayed[i] = r.replayed();
        }
      }
      SnapshotCost cost = snapshotCost(work, identity, model);
      out.printf(Locale.ROOT, "snapshot of %,d floats, clear / encrypted: put %.2f / %.2f ms (ratio %.2f), read %.2f /"
              + " %.2f ms (ratio %.2f); encrypted_vs_clear_throughput %.2f%n", base.length, cost.clearPutMs(),
          cost.encryptedPutMs(), cost.encryptedPutMs() / cost.clearPutMs(), cost.clearReadMs(), cost.encryptedReadMs(),
          cost.encryptedReadMs() / cost.clearReadMs(), cost.throughputRatio());
      double bytesPerStep = (double) trajectoryBytes / steps;
      double withSnapshots = (double) (trajectoryBytes + snapshotBytes) / steps;
      out.printf(Locale.ROOT, "%,d steps of the demo model (%,d parameters, batch of 1 x 16 tokens) in %.1f s%n",
          steps, base.length, trainSeconds);
      out.printf(Locale.ROOT, "bytes per step: %.1f (steps, offsets, checkpoints, meta), %.1f with snapshots every %d steps%n",
          bytesPerStep, withSnapshots, snapshotEvery);
      out.printf(Locale.ROOT, "commit (synced): p50 %.2f ms, p99 %.2f ms, max %.2f ms%n",
          ms(commitNanos, 0.50), ms(commitNanos, 0.99), commitNanos[steps - 1] / 1e6);
      out.printf(Locale.ROOT, "rollback to step %,d: %d ms (%d steps replayed); to step %,d: %d ms (%d replayed)%n",
          nearEnd, rollbackMs[0], replayed[0], middle, rollbackMs[1], replayed[1]);
      if (json) {
        out.println(new Figures()
            .put("steps", steps)
            .put("parameters", base.length)
            .put("snapshot_every", snapshotEvery)
            .put("bytes_per_step", Math.round(bytesPerStep * 10) / 10.0)
            .put("bytes_per_step_with_snapshots", Math.round(withSnapshots * 10) / 10.0)
            .put("store_bytes", sizes)
            .put("commit_p50_ms", round(ms(commitNanos, 0.50)))
            .put("commit_p99_ms", round(ms(commitNanos, 0.99)))
            .put("commit_max_ms", round(commitNanos[steps - 1] / 1e6))
            .put("rollback_ms", Math.max(rollbackMs[0], rollbackMs[1]))
            .put("rollback_end_step", nearEnd)
            .put("rollback_end_ms", rollbackMs[0])
            .put("rollback_middle_step", middle)
            .put("rollback_middle_ms", rollbackMs[1])
            .put("replayed_max", Math.max(replayed[0], replayed[1]))
            .put("snapshot_put_ms", round(cost.clearPutMs()))
            .put("snapshot_read_ms", round(cost.clearReadMs()))
            .put("encrypted_snapshot_put_ms", round(cost.encryptedPutMs()))
            .put("encrypted_snapshot_read_ms", round(cost.encryptedReadMs()))
            .put("encrypted_vs_clear_snapshot_put", round(cost.encryptedPutMs() / cost.clearPutMs()))
            .put("encrypted_vs_clear_snapshot_read", round(cost.encryptedReadMs() / cost.clearReadMs()))
            .put("encrypted_vs_clear_throughput", round(cost.throughputRatio()))
            .put("snapshot_rounds", SNAPSHOT_ROUNDS + " x " + SNAPSHOT_REPEATS + " per side, alternating, medians")
            .put("train_seconds", Math.round(trainSeconds * 10) / 10.0)
            .put("threads", threads));
      }
    }
    return 0;
  }

  /** Median snapshot put and read times of the clear and the encrypted store. */
  private record SnapshotCost(double clearPutMs, double clearReadMs, double encryptedPutMs, double encryptedReadMs) {
    /** @return encrypted over clear throughput of a put and a read together */
    double throughputRatio() {
      return (clearPutMs + clearReadMs) / (encryptedPutMs + encryptedReadMs);
    }
  }

  /** Writes and reads the trained values as a snapshot, clear and encrypted, alternating. */
  private SnapshotCost snapshotCost(Path work, RunIdentity identity, LossModel model) {
    byte[] key = new byte[32];
    new java.security.SecureRandom().nextBytes(key);
    int n = SNAPSHOT_ROUNDS * SNAPSHOT_REPEATS;
    long[][] nanos = new long[4][n];
    float[] expected = model.parameters().toArray();
    try (ModelStore clear = ModelStore.open(work.resolve("snapshots-clear"), identity);
        ModelStore sealed = ModelStore.open(work.resolve("snapshots-encrypted"), identity).encryptSnapshots(key)) {
      ModelStore[] stores = {clear, sealed};
      for (ModelStore store : stores) {
        store.putSnapshot(0, model.parameters().floats()); // warm-up
        store.snapshotAtOrBefore(0).orElseThrow();
      }
      for (int round = 0; round < SNAPSHOT_ROUNDS; round++) {
        for (int k = 0; k < stores.length; k++) {
          int side = (round + k) % stores.length;
          ModelStore store = stores[side];
          for (int r = 0; r < SNAPSHOT_REPEATS; r++) {
            long t0 = System.nanoTime();
            store.putSnapshot(0, model.parameters().floats());
            long t1 = System.nanoTime();
            float[] read = store.snapshotAtOrBefore(0).orElseThrow().values();
            long t2 = System.nanoTime();
            if (!Arrays.equals(read, expected)) {
              throw new IllegalStateException("a snapshot read back differs from what was written; the store is broken");
            }
            nanos[side * 2][round * SNAPSHOT_REPEATS + r] = t1 - t0;
            nanos[side * 2 + 1][round * SNAPSHOT_REPEATS + r] = t2 - t1;
          }
        }
      }
    }
    for (long[] column : nanos) {
      Arrays.sort(column);
    }
    return new SnapshotCost(ms(nanos[0], 0.5), ms(nanos[1], 0.5), ms(nanos[2], 0.5), ms(nanos[3], 0.5));
  }

  /** What one rollback replayed and how long it took. */
  private record TimedRollback(long replayed, long millis) {}

  /**
   * Rolls the store back to {@code step} the way {@code pockettune rollback} does (the store's
   * verified rollback: restore, cross-check against the next snapshot, rollback write, snapshot),
   * and times it. {@code model}'s parameters must be the base values.
   */
  private static TimedRollback rollback(ModelStore store, LossModel model, MezoConfig config,
      PerturbationKernel kernel, long step) {
    VerifiedRollback v = store.rollbackVerified(step, null, model, text -> config, kernel);
    return new TimedRollback(v.restored().replayed(), v.millis());
  }

  private static double ms(long[] sortedNanos, double quantile) {
    int i = (int) Math.ceil(quantile * sortedNanos.length) - 1;
    return sortedNanos[Math.max(0, Math.min(sortedNanos.length - 1, i))] / 1e6;
  }

  private static double round(double v) {
    return Math.round(v * 100) / 100.0;
  }
}
