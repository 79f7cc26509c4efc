package io.pockettune.pipeline.cli;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import io.pockettune.store.Checkpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The main job on embedded defaults, end to end, through the runtime's API: generate one person's
 * messages and notes, append them durably with the runtime's Kafka producer, train on them with
 * MeZO on the built-in decoder (every step committed with its offsets), mark checkpoints, and
 * report the loss on held-out events (appended after the training events, never trained on)
 * before and after, then let the base and the personalized model continue three prompts.
 *
 * <p>Run again on the same data directory, it continues: the model is restored by replaying the
 * committed steps, the source resumes at the committed offsets, and new events are generated.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
    description = "Generate a user's events, train on them with MeZO, and report held-out loss before and after.")
final class DemoCommand implements Callable<Integer> {
  private static final Instant STREAM_START = Instant.parse("2026-09-01T07:00:00Z");
  /** Prompts in the persona's voice, continued by the base and the personalized model at the end. */
  private static final List<String> PROMPTS = List.of("Heading to the", "Can't wait for", "Just finished my");

  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--model", paramLabel = "NAME",
      description = "the model to run the demo on: minilm (all-MiniLM-L6-v2 from Maven Central, sorting messages into"
          + " folders) (default: the built-in decoder)")
  String model;

  @Option(names = "--encrypt", description = "when this creates the data directory, encrypt its log and snapshots"
      + " at rest (AES-256-GCM) with a new random key kept in <data-dir>/key (mode 0600); an encrypted"
      + " directory is detected without this flag")
  boolean encrypt;

  @Option(names = "--steps", description = "MeZO steps to train (default: 3000; minilm: " + MiniLmDemo.STEPS + ")")
  Integer steps;

  @Option(names = "--batch", description = "examples per step (default: 16; minilm: " + MiniLmDemo.BATCH + ")")
  Integer batch;

  @Option(names = "--heldout", description = "held-out events (default: 256; minilm: " + MiniLmDemo.HELDOUT + ")")
  Integer heldout;

  @Option(names = "--lr", description = "learning rate (default: 1e-3; minilm: " + MiniLmDemo.LR + ")")
  Float learningRate;

  @Option(names = "--eps", description = "perturbation scale (default: 1e-3; minilm: " + MiniLmDemo.EPS + ")")
  Float eps;

  @Option(names = "--trainable", hidden = true,
      description = "minilm only, for a new data directory: what trains (default: " + MiniLmDemo.TRAINABLE + ")")
  String trainable;

  @Option(names = "--seed", description = "run seed (default: ${DEFAULT-VALUE})")
  long seed = 42;

  @Option(names = "--checkpoint-every", description = "steps between checkpoints (default: ${DEFAULT-VALUE})")
  int checkpointEvery = 500;

  @Option(names = "--snapshot-every", description = "steps between parameter snapshots (default: ${DEFAULT-VALUE})")
  int snapshotEvery = 500;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException, InterruptedException, ExecutionException {
    if (model != null && !model.equals(MiniLmDemo.NAME)) {
      throw new IllegalArgumentException("--model " + model + " is not a demo model: the demo runs on minilm"
          + " (--model minilm) or, without --model, on the built-in decoder");
    }
    if (model != null) {
      return new MiniLmDemo(this).call();
    }
    if (trainable != null) {
      throw new IllegalArgumentException("--trainable applies to --model minilm only");
    }
    int steps = this.steps != null ? this.steps : 3000;
    int batch = this.batch != null ? this.batch : 16;
    int heldout = this.heldout != null ? this.heldout : 256;
    float learningRate = this.learningRate != null ? this.learningRate : 1e-3f;
    float eps = this.eps != null ? this.eps : 1e-3f;
    if (steps < 1 || batch < 1 || heldout < 1 || threads < 1 || checkpointEvery < 0 || snapshotEvery < 0) {
      throw new IllegalArgumentException("--steps, --batch, --heldout and --threads must be positive; --checkpoint-every and --snapshot-every not negative");
    }
    long started = System.nanoTime();
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter progress = spec.commandLine().getErr();
    try (PocketTune tune = common.builder().encrypt(encrypt).threads(threads).batch(batch).learningRate(learningRate).eps(eps)
        .seed(seed).checkpointEvery(checkpointEvery).snapshotEvery(snapshotEvery).open()) {
      // 1. Events: the training stream, then later events held out from training.
      long already = tune.endOffsets().values().stream().mapToLong(Long::longValue).sum();
      PersonaStream persona = new PersonaStream(seed * 1_000_003L + already,
          STREAM_START.plus(Duration.ofHours(2 * already)));
      int trainEvents = steps * batch;
      progress.printf("appending %,d events (%,d to train on, %,d held out) to %s%n",
          trainEvents + heldout, trainEvents, heldout, tune.dataDirectory().resolve("log"));
      // Large batches: the demo appends tens of thousands of events at once, one fsync per batch.
      Producer<String, SpecificRecord> producer = tune.producer(Map.of("linger.ms", 20, "batch.size", 1 << 20));
      append(producer, persona, trainEvents);
      Map<TopicPartition, Long> trainEnd = tune.endOffsets();
      append(producer, persona, heldout);
      Map<TopicPartition, Long> heldEnd = tune.endOffsets();

      // 2. The model at the last committed step (restored by replay), on the held-out events.
      double before = tune.evaluate(trainEnd, heldEnd, batch);
      progress.printf(Locale.ROOT, "held-out loss before: %.4f (%d events)%n", before, heldout);
      int checkpointsBefore = tune.checkpoints().size();

      // 3. Stream the training events through the pipeline, committing every step.
      Progress bar = new Progress(progress, steps);
      PocketTune.TrainResult result = tune.train(steps, trainEnd, bar);
      bar.finish();
      if (result.lastStep() > result.steps()) {
        progress.printf("restored the model to step %,d first: snapshot of step %,d, replaying %,d committed steps%n",
            result.lastStep() - result.steps(), result.restoredFrom(), result.replayed());
      }

      double after = tune.evaluate(trainEnd, heldEnd, batch);
      Checkpoint last = tune.markCheckpoint("demo", Map.of("heldout_loss_before", before, "heldout_loss_after", after));

      // 4. Ask the model: the base and the personalized one continue the same prompts, same seed.
      PersonalModel.CompletionOptions sampling = new PersonalModel.CompletionOptions(40, 0.8f, 40, 0.95f, seed,
          List.of("\n"), true);
      List<Object> completions = new ArrayList<>();
      try (PersonalModel base = tune.personalModel("base"); PersonalModel mine = tune.personalModel("latest")) {
        for (String prompt : PROMPTS) {
          String b = base.complete(prompt, sampling).text();
          String m = mine.complete(prompt, sampling).text();
          out.printf("%-18s base:         %s%n%-18s personalized: %s%n", "\"" + prompt + "\"", printable(prompt + b), "",
              printable(prompt + m));
          completions.add(new JsonLine().put("prompt", prompt).put("base", b).put("personalized", m));
        }
      }
      int checkpoints = tune.checkpoints().size() - checkpointsBefore;
      double seconds = (System.nanoTime() - started) / 1e9;

      out.printf(Locale.ROOT, "held-out loss: %.4f -> %.4f, perplexity %.2f -> %.2f (%d events the trainer never saw)%n",
          before, after, Math.exp(before), Math.exp(after), heldout);
      out.printf(Locale.ROOT, "steps: %d this run (%d in total), %d events trained, %d dead letters%n",
          result.steps(), result.lastStep(), result.eventsTrained(), result.deadLetters());
      out.printf(Locale.ROOT, "checkpoints: %d made (last: #%d at step %d), data in %s, %.1f s%n",
          checkpoints, last.id(), last.step(), tune.dataDirectory(), seconds);
      if (common.json) {
        out.println(new JsonLine()
            .put("events", trainEvents + heldout)
            .put("events_trained", result.eventsTrained())
            .put("heldout_events", heldout)
            .put("steps", result.steps())
            .put("total_steps", result.lastStep())
            .put("parameters", result.parameters())
            .put("heldout_loss_before", before)
            .put("heldout_loss_after", after)
            .put("heldout_perplexity_before", Math.exp(before))
            .put("heldout_perplexity_after", Math.exp(after))
            .put("completions", completions)
            .put("checkpoints", checkpoints)
            .put("dead_letters", result.deadLetters())
            .put("seconds", Math.round(seconds * 10) / 10.0)
            .put("data_dir", tune.dataDirectory().toString()));
      }
    }
    return 0;
  }

  /** The text with control characters and undecodable bytes shown as a middle dot, for a terminal. */
  static String printable(String text) {
    StringBuilder sb = new StringBuilder(text.length());
    text.codePoints().forEach(c -> sb.appendCodePoint(Character.isISOControl(c) || c == 0xFFFD ? '\u00B7' : c));
    return sb.toString();
  }

  /** Appends events as Avro through the producer: messages keyed by conversation, notes by the persona. */
  static void append(Producer<String, SpecificRecord> producer, PersonaStream persona, int count)
      throws InterruptedException, ExecutionException {
    java.util.concurrent.Future<?> last = null;
    for (int left = count; left > 0; left -= Math.min(512, left)) {
      for (PersonaStream.Event e : persona.next(Math.min(512, left))) {
        ProducerRecord<String, SpecificRecord> record;
        if (e instanceof PersonaStream.ChatMessage m) {
          record = new ProducerRecord<>("messages", null, m.time().toEpochMilli(), m.conversation(),
              Message.newBuilder().setId(m.id()).setConversation(m.conversation()).setSender(m.sender())
                  .setText(m.text()).setEventTime(m.time()).setAttrs(m.attrs()).build());
        } else {
          PersonaStream.NoteEvent n = (PersonaStream.NoteEvent) e;
          record = new ProducerRecord<>("notes", null, n.time().toEpochMilli(), "maya",
              Note.newBuilder().setId(n.id()).setTitle(n.title()).setBody(n.body()).setEventTime(n.time())
                  .setAttrs(n.attrs()).build());
        }
        last = producer.send(record);
      }
    }
    producer.flush();
    if (last != null) {
      last.get(); // durable: an error of any send surfaces here or in flush
    }
  }

  /** A progress line on standard error, redrawn in place on a terminal, every 5% otherwise. */
  static final class Progress implements PocketTune.StepListener {
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
    public void stepCommitted(long step, double loss) {
      smoothedLoss = Double.isNaN(smoothedLoss) ? loss : 0.98 * smoothedLoss + 0.02 * loss;
      n++;
      long every = terminal ? Math.max(1, total / 200) : Math.max(1, total / 20);
      if (n / every != lastPrinted / every || n == total) {
        lastPrinted = n;
        double secs = (System.nanoTime() - started) / 1e9;
        String line = String.format(Locale.ROOT, "training %s %3d%%  step %,d  loss %.3f  %.1f steps/s",
            bar(n), 100 * n / total, step, smoothedLoss, n / Math.max(secs, 1e-9));
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
