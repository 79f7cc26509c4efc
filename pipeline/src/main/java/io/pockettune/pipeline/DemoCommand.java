package io.pockettune.pipeline;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogRecord;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.RunIdentity;
import io.pockettune.store.SourcePartition;
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
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.TopicPartition;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The main job on embedded defaults, end to end: generate one person's messages and notes, append
 * them durably to the embedded log, stream them through the pipeline into MeZO on a small
 * decoder-only LM, commit every step with its offsets to RocksDB, mark checkpoints, and report the
 * loss on held-out events (the ones appended after the training events, which the trainer never
 * reads) before and after.
 *
 * <p>Run again on the same data directory, it continues: the model is restored by replaying the
 * committed steps, the source resumes at the committed offsets, and new events are generated.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
    description = "Generate a user's events, train on them with MeZO, and report held-out loss before and after.")
final class DemoCommand implements Callable<Integer> {
  private static final int APPEND_BATCH = 512;
  private static final Instant STREAM_START = Instant.parse("2026-09-01T07:00:00Z");

  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--steps", description = "MeZO steps to train (default: ${DEFAULT-VALUE})")
  int steps = 3000;

  @Option(names = "--batch", description = "examples per step (default: ${DEFAULT-VALUE})")
  int batch = 16;

  @Option(names = "--heldout", description = "held-out events (default: ${DEFAULT-VALUE})")
  int heldout = 256;

  @Option(names = "--lr", description = "learning rate (default: ${DEFAULT-VALUE})")
  float learningRate = 1e-3f;

  @Option(names = "--eps", description = "perturbation scale (default: ${DEFAULT-VALUE})")
  float eps = 1e-3f;

  @Option(names = "--seed", description = "run seed (default: ${DEFAULT-VALUE})")
  long seed = 42;

  @Option(names = "--checkpoint-every", description = "steps between checkpoints (default: ${DEFAULT-VALUE})")
  int checkpointEvery = 500;

  @Option(names = "--snapshot-every", description = "steps between parameter snapshots (default: ${DEFAULT-VALUE})")
  int snapshotEvery = 500;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    if (steps < 1 || batch < 1 || heldout < 1 || threads < 1 || checkpointEvery < 0 || snapshotEvery < 0) {
      throw new IllegalArgumentException("--steps, --batch, --heldout and --threads must be positive; --checkpoint-every and --snapshot-every not negative");
    }
    long started = System.nanoTime();
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter progress = spec.commandLine().getErr();
    Path dir = common.dataDir.toAbsolutePath();
    Files.createDirectories(dir);
    DecoderLmConfig modelConfig = DecoderLmConfig.demo();
    byte[] onnx = baseModel(dir.resolve("model").resolve("base.onnx"), modelConfig);

    try (EmbeddedLog log = EmbeddedLog.open(dir.resolve("log"))) {
      Topics.create(log);
      EventSerde serde = new EventSerde(SchemaStore.open(dir.resolve("schemas")));
      List<TopicPartition> partitions = Topics.sources();

      // 1. Events: the training stream, then later events held out from training.
      long already = 0;
      for (TopicPartition tp : partitions) {
        already += log.endOffset(tp.topic(), tp.partition());
      }
      PersonaStream persona = new PersonaStream(seed * 1_000_003L + already,
          STREAM_START.plus(Duration.ofHours(2 * already)));
      int trainEvents = steps * batch;
      progress.printf("appending %,d events (%,d to train on, %,d held out) to %s%n",
          trainEvents + heldout, trainEvents, heldout, dir.resolve("log"));
      append(log, serde, persona, trainEvents);
      Map<TopicPartition, Long> trainEnd = ends(log, partitions);
      Map<TopicPartition, Long> heldStart = trainEnd;
      append(log, serde, persona, heldout);
      Map<TopicPartition, Long> heldEnd = ends(log, partitions);

      // 2. Model, store and trainer; restore earlier runs by replaying their steps.
      try (LossModel model = LossModel.causalLm(onnx, TrainableSelection.all(), threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        MezoConfig mezo = new MezoConfig(eps, learningRate, seed);
        String runConfig = new JsonLine().put("model", modelConfig.toString()).put("trainable", "all")
            .put("eps", eps).put("lr", learningRate).put("seed", seed).put("batch", batch)
            .put("distribution", mezo.distribution().name()).put("weight_decay", mezo.weightDecay()).toString();
        RunIdentity identity = new RunIdentity(model.baseModelHash(), PerturbationKernel.VERSION,
            model.parameters().layout(), runConfig);
        try (ModelStore store = ModelStore.open(dir.resolve("store"), identity)) {
          Restored restored = store.restore(store.lastStep(), model, mezo, kernel);
          MezoTrainer trainer = restored.trainer();
          if (restored.step() > 0) {
            progress.printf("restoring the model to step %,d: snapshot of step %,d, replaying %,d committed steps%n",
                restored.step(), restored.snapshotStep(), restored.replayed());
          }
          int checkpointsBefore = store.checkpoints().size();

          ByteTokenizer tokenizer = new ByteTokenizer();
          int maxTokens = modelConfig.maxPositions();
          List<TokenBatch> heldoutBatches = batches(log, serde, tokenizer, maxTokens, heldStart, heldEnd);
          double before = trainer.evaluate(heldoutBatches);
          progress.printf(Locale.ROOT, "held-out loss before: %.4f (%d events, %d parameters)%n",
              before, heldout, model.parameters().size());

          // 3. Stream the training events through the pipeline, committing every step.
          Map<TopicPartition, Long> start = new LinkedHashMap<>();
          Map<SourcePartition, Long> committed = store.committedOffsets();
          for (TopicPartition tp : partitions) {
            start.put(tp, committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()),
                log.startOffset(tp.topic(), tp.partition())));
          }
          TrainingJob job = new TrainingJob(new LogSource(log, start, trainEnd), serde, ExampleMapper.defaults(),
              tokenizer, maxTokens, MicroBatcher.byCount(batch), trainer, store, new DeadLetters(log), checkpointEvery,
              model.parameters(), snapshotEvery);
          Progress bar = new Progress(progress, steps);
          TrainingJob.Result result = job.run(steps, bar);
          bar.finish();

          double after = trainer.evaluate(heldoutBatches);
          Checkpoint last = store.markCheckpoint("demo", Map.of("heldout_loss_before", before, "heldout_loss_after", after));
          int checkpoints = store.checkpoints().size() - checkpointsBefore;
          double seconds = (System.nanoTime() - started) / 1e9;

          out.printf(Locale.ROOT, "held-out loss: %.4f -> %.4f (%d events the trainer never saw)%n", before, after, heldout);
          out.printf(Locale.ROOT, "steps: %d this run (%d in total), %d events trained, %d dead letters%n",
              result.steps(), store.lastStep(), result.eventsTrained(), result.deadLetters());
          out.printf(Locale.ROOT, "checkpoints: %d made (last: #%d at step %d), data in %s, %.1f s%n",
              checkpoints, last.id(), last.step(), dir, seconds);
          if (common.json) {
            out.println(new JsonLine()
                .put("events", trainEvents + heldout)
                .put("events_trained", result.eventsTrained())
                .put("heldout_events", heldout)
                .put("steps", result.steps())
                .put("total_steps", store.lastStep())
                .put("parameters", model.parameters().size())
                .put("heldout_loss_before", before)
                .put("heldout_loss_after", after)
                .put("checkpoints", checkpoints)
                .put("dead_letters", result.deadLetters())
                .put("seconds", Math.round(seconds * 10) / 10.0)
                .put("data_dir", dir.toString()));
          }
        }
      }
    }
    return 0;
  }

  /** Writes the base model once; later runs read the file, so the store can check its hash. */
  static byte[] baseModel(Path file, DecoderLmConfig config) throws IOException {
    if (Files.exists(file)) {
      return Files.readAllBytes(file);
    }
    Files.createDirectories(file.getParent());
    byte[] onnx = DecoderLmBuilder.build(config);
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.write(tmp, onnx);
    Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE);
    return onnx;
  }

  /** Appends events as Avro, messages keyed and partitioned by conversation like Kafka's default partitioner. */
  static void append(EmbeddedLog log, EventSerde serde, PersonaStream persona, int count) throws IOException {
    int left = count;
    while (left > 0) {
      int n = Math.min(APPEND_BATCH, left);
      Map<TopicPartition, List<LogRecord>> byPartition = new HashMap<>();
      for (PersonaStream.Event e : persona.next(n)) {
        SpecificRecord record;
        TopicPartition tp;
        byte[] key;
        if (e instanceof PersonaStream.ChatMessage m) {
          record = Message.newBuilder().setId(m.id()).setConversation(m.conversation()).setSender(m.sender())
              .setText(m.text()).setEventTime(m.time()).setAttrs(m.attrs()).build();
          key = m.conversation().getBytes(StandardCharsets.UTF_8);
          tp = new TopicPartition(Topics.MESSAGES, Topics.partitionOf(m.conversation(), Topics.MESSAGE_PARTITIONS));
        } else {
          PersonaStream.NoteEvent note = (PersonaStream.NoteEvent) e;
          record = Note.newBuilder().setId(note.id()).setTitle(note.title()).setBody(note.body())
              .setEventTime(note.time()).setAttrs(note.attrs()).build();
          key = "maya".getBytes(StandardCharsets.UTF_8);
          tp = new TopicPartition(Topics.NOTES, 0);
        }
        byPartition.computeIfAbsent(tp, x -> new ArrayList<>())
            .add(new LogRecord(e.time().toEpochMilli(), key, serde.serialize(record)));
      }
      for (Map.Entry<TopicPartition, List<LogRecord>> b : byPartition.entrySet()) {
        log.append(b.getKey().topic(), b.getKey().partition(), b.getValue());
      }
      left -= n;
    }
  }

  private static Map<TopicPartition, Long> ends(EmbeddedLog log, List<TopicPartition> partitions) {
    Map<TopicPartition, Long> ends = new LinkedHashMap<>();
    for (TopicPartition tp : partitions) {
      ends.put(tp, log.endOffset(tp.topic(), tp.partition()));
    }
    return ends;
  }

  /** Reads a slice of the log without training and cuts it into evaluation batches. */
  private List<TokenBatch> batches(EmbeddedLog log, EventSerde serde, ByteTokenizer tokenizer, int maxTokens,
      Map<TopicPartition, Long> from, Map<TopicPartition, Long> to) {
    LogSource source = new LogSource(log, from, to);
    ExampleMapper mapper = ExampleMapper.defaults();
    List<TokenBatch> batches = new ArrayList<>();
    List<long[]> pending = new ArrayList<>();
    for (LogSource.SourceRecord r = source.next(); r != null; r = source.next()) {
      pending.add(tokenizer.encode(mapper.text(serde.deserialize(r.value())), maxTokens));
      if (pending.size() == batch) {
        batches.add(TokenBatch.of(pending));
        pending = new ArrayList<>();
      }
    }
    if (!pending.isEmpty()) {
      batches.add(TokenBatch.of(pending));
    }
    return batches;
  }

  /** A progress line on standard error, redrawn in place on a terminal, every 5% otherwise. */
  private static final class Progress implements TrainingJob.Listener {
    private final PrintWriter err;
    private final long total;
    private final long started = System.nanoTime();
    private final boolean terminal = System.console() != null;
    private long lastPrinted = -1;
    private long n;
    private double smoothedLoss = Double.NaN;

    Progress(PrintWriter err, long total) {
      this.err = err;
      this.total = total;
    }

    @Override
    public void stepCommitted(StepRecord r, long events) {
      double loss = (r.lossPlus() + r.lossMinus()) / 2.0;
      smoothedLoss = Double.isNaN(smoothedLoss) ? loss : 0.98 * smoothedLoss + 0.02 * loss;
      long done = r.step();
      n++;
      long every = terminal ? Math.max(1, total / 200) : Math.max(1, total / 20);
      if (n / every != lastPrinted / every || n == total) {
        lastPrinted = n;
        double secs = (System.nanoTime() - started) / 1e9;
        String line = String.format(Locale.ROOT, "training %s %3d%%  step %,d  loss %.3f  %.1f steps/s",
            bar(n), 100 * n / total, done, smoothedLoss, n / Math.max(secs, 1e-9));
        err.print(terminal ? "\r" + line : line + "\n");
        err.flush();
      }
    }

    void finish() {
      if (terminal) {
        err.println();
      }
    }

    private String bar(long n) {
      int width = 24;
      int filled = (int) (width * n / total);
      return "[" + "#".repeat(filled) + ".".repeat(width - filled) + "]";
    }
  }
}
