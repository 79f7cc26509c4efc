package io.pockettune.pipeline.cli;

import io.pockettune.events.Message;
import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import io.pockettune.store.Checkpoint;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;

/**
 * {@code demo --model minilm}: the demo on a real pretrained model. all-MiniLM-L6-v2 becomes an
 * embedding-classification package whose head starts from the label prompts of Maya's four
 * folders ({@link FolderStream}), so step 0 is zero-shot. Her filed messages are appended through
 * the runtime's Kafka producer, with the folder as the label attribute; MeZO trains on them
 * through the pipeline, every step committed; accuracy on held-out messages (generated for
 * evaluation only, from their own seed, never appended to the log) is measured before and after.
 */
final class MiniLmDemo {
  static final String NAME = "minilm";
  static final int STEPS = 100;
  static final int BATCH = 32;
  static final int HELDOUT = 400;
  static final float LR = 1e-3f;
  static final float EPS = 1e-2f;
  static final String TRAINABLE = "norms";
  static final int MAX_TOKENS = 48;
  private static final Instant STREAM_START = Instant.parse("2026-09-01T07:00:00Z");
  /** Salt of the held-out messages' seed: a stream of its own, the same on every run with a seed. */
  private static final long HELDOUT_SALT = 0x5EED_0F_4E1DL;

  private final DemoCommand o;

  MiniLmDemo(DemoCommand options) {
    this.o = options;
  }

  Integer call() throws IOException, InterruptedException, ExecutionException {
    int steps = o.steps != null ? o.steps : STEPS;
    int batch = o.batch != null ? o.batch : BATCH;
    int heldout = o.heldout != null ? o.heldout : HELDOUT;
    float lr = o.learningRate != null ? o.learningRate : LR;
    float eps = o.eps != null ? o.eps : EPS;
    if (steps < 1 || batch < 1 || heldout < 1 || o.threads < 1 || o.checkpointEvery < 0 || o.snapshotEvery < 0) {
      throw new IllegalArgumentException("--steps, --batch, --heldout and --threads must be positive; --checkpoint-every and --snapshot-every not negative");
    }
    long started = System.nanoTime();
    PrintWriter out = o.spec.commandLine().getOut();
    PrintWriter progress = o.spec.commandLine().getErr();
    PocketTune.Builder builder = o.common.builder().encrypt(o.encrypt);
    Path pkg = MiniLm.ensurePackage(o.common.dataDir, o.trainable, lr, eps, MAX_TOKENS, progress);
    boolean trainedBefore = Files.isDirectory(o.common.dataDir.resolve("store"));
    try (PocketTune tune = builder.model(pkg).threads(o.threads).batch(batch).learningRate(lr).eps(eps)
        .seed(o.seed).checkpointEvery(o.checkpointEvery).snapshotEvery(o.snapshotEvery).open()) {
      String labelAttribute = tune.model().get("label_attribute") instanceof String s ? s : "label";
      // 1. Training messages on the log; held-out ones only in memory.
      long already = tune.endOffsets().values().stream().mapToLong(Long::longValue).sum();
      FolderStream train = new FolderStream(o.seed * 1_000_003L + already);
      List<FolderStream.Filed> held = new FolderStream(o.seed ^ HELDOUT_SALT).next(heldout);
      int trainEvents = steps * batch;
      progress.printf("appending %,d filed messages to train on to %s; %,d more held out (never on the log)%n",
          trainEvents, tune.dataDirectory().resolve("log"), heldout);
      Producer<String, SpecificRecord> producer = tune.producer(Map.of("linger.ms", 20, "batch.size", 1 << 20));
      append(producer, train, trainEvents, labelAttribute, STREAM_START.plus(Duration.ofHours(2 * already)));
      Map<TopicPartition, Long> trainEnd = tune.endOffsets();

      // 2. Zero-shot (or the last committed step, on a data directory trained before).
      List<String> before;
      try (PersonalModel m = tune.personalModel(trainedBefore ? "latest" : "base")) {
        before = predict(m, held);
      }
      double accBefore = accuracy(held, before);
      progress.printf(Locale.ROOT, "held-out accuracy before: %.3f (%d messages; %.1f s since start)%n", accBefore,
          heldout, (System.nanoTime() - started) / 1e9);
      int checkpointsBefore = trainedBefore ? tune.checkpoints().size() : 0;

      // 3. Train in the background pipeline, as an app runs it: the service consumes the log,
      //    micro-batches the messages and commits every step; wait until it has consumed them all.
      DemoCommand.Progress bar = new DemoCommand.Progress(progress, steps);
      long stepBefore = trainedBefore ? tune.lastStep() : 0;
      tune.startTraining();
      long reported = stepBefore;
      boolean idle = false;
      while (!idle) {
        idle = tune.awaitIdle(Duration.ofMillis(500));
        if (tune.trainingFailure() != null) {
          throw new IllegalStateException("training stopped: " + PocketTune.message(tune.trainingFailure()),
              tune.trainingFailure());
        }
        JsonLine status = tune.status();
        long last = ((Number) status.get("last_step")).longValue();
        double loss = status.get("recent_loss") instanceof Number n ? n.doubleValue() : Double.NaN;
        for (; reported < last; reported++) {
          bar.stepCommitted(reported + 1, loss);
        }
      }
      tune.stopTraining();
      bar.finish();
      long lastStep = tune.lastStep();
      long stepsThisRun = lastStep - stepBefore;
      List<String> after;
      try (PersonalModel m = tune.personalModel("latest")) {
        after = predict(m, held);
      }
      double accAfter = accuracy(held, after);
      progress.printf(Locale.ROOT, "held-out accuracy after: %.3f (%.1f s since start)%n", accAfter,
          (System.nanoTime() - started) / 1e9);
      Checkpoint last = tune.markCheckpoint("demo-minilm",
          Map.of("heldout_accuracy_before", accBefore, "heldout_accuracy_after", accAfter));

      // 4. Report: a few held-out messages the training changed, and accuracy by kind.
      int shown = 0;
      for (int i = 0; i < held.size() && shown < 4; i++) {
        if (!before.get(i).equals(after.get(i))) {
          out.printf("%-60s filed in %-7s  base: %-7s  personalized: %s%n", "\"" + held.get(i).text() + "\"",
              held.get(i).folder(), before.get(i), after.get(i));
          shown++;
        }
      }
      Map<String, Object> byKind = new LinkedHashMap<>();
      for (FolderStream.Kind k : FolderStream.Kind.values()) {
        List<Integer> idx = new ArrayList<>();
        for (int i = 0; i < held.size(); i++) {
          if (held.get(i).kind() == k) {
            idx.add(i);
          }
        }
        long b = idx.stream().filter(i -> before.get(i).equals(held.get(i).folder())).count();
        long a = idx.stream().filter(i -> after.get(i).equals(held.get(i).folder())).count();
        byKind.put(k.name().toLowerCase(Locale.ROOT), new JsonLine().put("messages", idx.size())
            .put("before", idx.isEmpty() ? null : (double) b / idx.size())
            .put("after", idx.isEmpty() ? null : (double) a / idx.size()));
        out.printf(Locale.ROOT, "  %-9s %3d held-out messages: %5.1f%% -> %5.1f%%%n", k.name().toLowerCase(Locale.ROOT),
            idx.size(), idx.isEmpty() ? 0 : 100.0 * b / idx.size(), idx.isEmpty() ? 0 : 100.0 * a / idx.size());
      }
      int checkpoints = tune.checkpoints().size() - checkpointsBefore;
      double seconds = (System.nanoTime() - started) / 1e9;
      out.printf(Locale.ROOT, "held-out accuracy: %.1f%% -> %.1f%% (%d messages the trainer never saw; %s%s)%n",
          100 * accBefore, 100 * accAfter, heldout, trainedBefore ? "from the last committed step" : "from zero-shot",
          ", all-MiniLM-L6-v2, folders " + FolderStream.FOLDERS);
      Object trainable = tune.model().get("trainable");
      out.printf(Locale.ROOT, "steps: %d this run in the background service (%d in total), trainable %s%n",
          stepsThisRun, lastStep, trainable);
      out.printf(Locale.ROOT, "checkpoints: %d made (last: #%d at step %d), data in %s, %.1f s%n",
          checkpoints, last.id(), last.step(), tune.dataDirectory(), seconds);
      if (o.common.json) {
        out.println(new JsonLine()
            .put("model", NAME)
            .put("events", trainEvents)
            .put("heldout_events", heldout)
            .put("steps", stepsThisRun)
            .put("total_steps", lastStep)
            .put("trainable", trainable)
            .put("heldout_accuracy_before", accBefore)
            .put("heldout_accuracy_after", accAfter)
            .put("heldout_accuracy_by_kind", byKind)
            .put("labels", FolderStream.FOLDERS)
            .put("checkpoints", checkpoints)
            .put("seconds", Math.round(seconds * 10) / 10.0)
            .put("data_dir", tune.dataDirectory().toString()));
      }
    }
    return 0;
  }

  private static List<String> predict(PersonalModel m, List<FolderStream.Filed> held) {
    return m.classify(held.stream().map(FolderStream.Filed::text).toList()).stream()
        .map(PersonalModel.Classification::label).toList();
  }

  private static double accuracy(List<FolderStream.Filed> held, List<String> predicted) {
    int right = 0;
    for (int i = 0; i < held.size(); i++) {
      right += held.get(i).folder().equals(predicted.get(i)) ? 1 : 0;
    }
    return (double) right / held.size();
  }

  private static void append(Producer<String, SpecificRecord> producer, FolderStream stream, int count,
      String labelAttribute, Instant start) throws InterruptedException, ExecutionException {
    Future<?> last = null;
    Instant clock = start;
    long id = 0;
    for (int left = count; left > 0; left -= Math.min(512, left)) {
      for (FolderStream.Filed f : stream.next(Math.min(512, left))) {
        clock = clock.plusSeconds(600);
        Message m = Message.newBuilder().setId("f-" + start.toEpochMilli() + "-" + id++).setConversation(f.conversation())
            .setSender("maya").setText(f.text()).setEventTime(clock).setAttrs(f.attrs(labelAttribute)).build();
        last = producer.send(new ProducerRecord<>("messages", null, clock.toEpochMilli(), f.conversation(), m));
      }
    }
    producer.flush();
    if (last != null) {
      last.get();
    }
  }
}
