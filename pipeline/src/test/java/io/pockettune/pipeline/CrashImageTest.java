package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogEntry;
import io.pockettune.schemas.EventSerde;
import io.pockettune.events.Message;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Crash-consistent images: while {@code serve} trains in a child JVM under a producer's load (JSON
 * events over the control socket), the test freezes it with SIGSTOP at random moments, copies the
 * data directory, and lets it go on (SIGCONT). Each copy is what a SIGKILL at that moment leaves.
 * Snapshots every 2 steps and checkpoints every 3 make those writes frequent, so some images fall
 * between a step's commit and its snapshot or checkpoint (counted and printed, not required: it
 * depends on timing). Every image must open and recover: each event acknowledged before the freeze
 * is in its log at its offset; the store's committed step is at least the last step serve printed
 * before the freeze, and its offsets lie within the image's log; then serve resumes on the image
 * to the end, keeping the image's steps as they were, and every event is trained exactly once
 * (consecutive steps' offsets tile the log, each range exactly its batch).
 */
class CrashImageTest {
  private static final int BATCH = 4;
  private static final int IMAGES = 20;
  private static final String[] SERVE = {"--threads", "1", "--batch", Integer.toString(BATCH), "--max-tokens", "64",
      "--max-idle-ms", "0", "--checkpoint-every", "3", "--snapshot-every", "2"};

  @TempDir Path dir;

  /** What the producer was told: per "topic-partition", offset -> text. */
  private final Map<String, Map<Long, String>> acknowledged = new ConcurrentHashMap<>();

  private record Image(Path dir, long printedStep, Map<String, Map<Long, String>> acknowledged) {}

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void everyImageTakenWhileServeRunsRecoversWithNothingAcknowledgedLostAndNothingTrainedTwice() throws Exception {
    org.junit.jupiter.api.Assumptions.assumeTrue(Files.isDirectory(Path.of("/proc/self")),
        "skipped: freezing serve needs Linux's /proc and the kill command (SIGSTOP, SIGCONT)");
    Path data = dir.resolve("data");
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    List<String> args = new ArrayList<>(List.of(SERVE));
    args.add("--print-steps");
    List<Image> images = new ArrayList<>();
    SplittableRandom random = new SplittableRandom(15);
    AtomicBoolean producing = new AtomicBoolean(true);
    List<Throwable> producerErrors = new ArrayList<>();
    try (ServeProcess serve = ServeProcess.start(data, dir.resolve("serve.err"), args)) {
      awaitService(data, serve);
      Thread producer = new Thread(() -> {
        try {
          for (int call = 0; producing.get(); call++) {
            produce(data, call);
            Thread.sleep(3);
          }
        } catch (Throwable t) {
          producerErrors.add(t);
        }
      }, "producer");
      producer.start();
      serve.awaitCommitted(3, 30_000);
      for (int i = 0; i < IMAGES; i++) {
        Thread.sleep(20 + random.nextInt(150));
        serve.freeze();
        try {
          long printed = serve.committedSoFar();
          Map<String, Map<Long, String>> acked = new TreeMap<>();
          acknowledged.forEach((tp, offsets) -> acked.put(tp, new TreeMap<>(offsets)));
          images.add(new Image(copy(data, dir.resolve("image-" + i)), printed, acked));
        } finally {
          serve.thaw();
        }
      }
      producing.set(false);
      producer.join(30_000);
      assertTrue(producerErrors.isEmpty(), () -> "the producer failed: " + producerErrors);
    }

    int betweenCommitAndSnapshot = 0;
    int betweenCommitAndCheckpoint = 0;
    long ackedTotal = 0;
    for (Image image : images) {
      long ackedInImage = checkLog(image);
      ackedTotal += ackedInImage;
      long imageStep;
      List<StepRecord> imageSteps;
      try (ModelStore store = ModelStore.open(image.dir().resolve("store"), storeIdentity(image.dir()))) {
        imageStep = store.lastStep();
        assertTrue(imageStep >= image.printedStep(), image.dir() + ": step " + image.printedStep()
            + " was committed before the freeze but the image holds only " + imageStep);
        imageSteps = store.steps(1, imageStep);
        if (imageStep > 0 && imageStep % 2 == 0 && store.snapshotStepAfter(imageStep - 1) != imageStep) {
          betweenCommitAndSnapshot++;
        }
        if (imageStep > 0 && imageStep % 3 == 0
            && store.checkpoints().stream().map(Checkpoint::step).noneMatch(s -> s == imageStep)) {
          betweenCommitAndCheckpoint++;
        }
      } catch (io.pockettune.store.StoreException e) {
        throw new AssertionError(image.dir() + " did not open: " + e.getMessage(), e);
      }
      try (EmbeddedLog log = EmbeddedLog.open(image.dir().resolve("log"));
          ModelStore store = ModelStore.openReadOnly(image.dir().resolve("store"))) {
        for (Map.Entry<SourcePartition, Long> e : store.committedOffsets().entrySet()) {
          long end = log.endOffset(e.getKey().topic(), e.getKey().partition());
          assertTrue(e.getValue() <= end, image.dir() + ": the store trained " + e.getKey() + " up to " + e.getValue()
              + " but the log holds only " + end);
        }
      }
      serveInProcess(image.dir());
      try (ModelStore store = ModelStore.openReadOnly(image.dir().resolve("store"))) {
        assertTrue(store.lastStep() >= imageStep);
        List<StepRecord> kept = store.steps(1, imageStep);
        for (int s = 0; s < kept.size(); s++) {
          assertEquals(imageSteps.get(s).seed(), kept.get(s).seed(), "step " + (s + 1) + " kept");
          assertEquals(imageSteps.get(s).projectedGradient(), kept.get(s).projectedGradient(), "step " + (s + 1) + " kept");
        }
      }
      assertTrainedOnce(image.dir());
    }
    System.out.println("crash images: " + images.size() + ", acknowledged events checked " + ackedTotal
        + ", steps at the images " + images.stream().map(i -> Long.toString(i.printedStep())).toList()
        + ", between a commit and its snapshot " + betweenCommitAndSnapshot
        + ", between a commit and its checkpoint " + betweenCommitAndCheckpoint);
    assertEquals(IMAGES, images.size());
  }

  static void awaitService(Path data, ServeProcess serve) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (true) {
      try {
        if (ControlChannel.call(data, "{\"op\":\"status\"}", List.of()).isPresent()) {
          return;
        }
      } catch (RuntimeException | IOException notYet) {
        // starting
      }
      assertTrue(System.nanoTime() < deadline, "serve did not answer: " + serve.stderr());
      Thread.sleep(50);
    }
  }

  /** One produce call of 4 events of one conversation, so they land in one partition in order. */
  private void produce(Path data, int call) throws IOException {
    List<String> lines = new ArrayList<>();
    List<String> texts = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      String text = "call " + call + " line " + i;
      texts.add(text);
      lines.add("{\"text\":\"" + text + "\",\"conversation\":\"c" + (call % 5) + "\"}");
    }
    JsonNode answer = ControlChannel.call(data, "{\"op\":\"produce\",\"topic\":\"messages\"}", lines).orElseThrow();
    assertEquals(4, answer.path("appended").asInt(), answer.toString());
    answer.path("offsets").properties().forEach(e -> {
      long first = e.getValue().get(0).asLong();
      Map<Long, String> offsets = acknowledged.computeIfAbsent(e.getKey(), k -> new ConcurrentHashMap<>());
      for (int i = 0; i < texts.size(); i++) {
        offsets.put(first + i, texts.get(i));
      }
    });
  }

  /** @return how many acknowledged events the image's log holds, each at its offset (asserted) */
  private static long checkLog(Image image) throws IOException {
    long checked = 0;
    try (EmbeddedLog log = EmbeddedLog.open(image.dir().resolve("log"))) {
      EventSerde serde = new EventSerde(SchemaStore.open(image.dir().resolve("schemas")));
      for (Map.Entry<String, Map<Long, String>> tp : image.acknowledged().entrySet()) {
        int dash = tp.getKey().lastIndexOf('-');
        String topic = tp.getKey().substring(0, dash);
        int partition = Integer.parseInt(tp.getKey().substring(dash + 1));
        for (Map.Entry<Long, String> ack : tp.getValue().entrySet()) {
          assertTrue(ack.getKey() < log.endOffset(topic, partition), image.dir() + ": acknowledged " + tp.getKey() + "@"
              + ack.getKey() + " is missing; the log ends at " + log.endOffset(topic, partition));
          LogEntry e = log.read(topic, partition, ack.getKey(), 1).get(0);
          assertEquals(ack.getValue(), ((Message) serde.deserialize(e.value())).getText().toString(),
              image.dir() + ": " + tp.getKey() + "@" + ack.getKey());
          checked++;
        }
      }
    }
    return checked;
  }

  private static io.pockettune.store.RunIdentity storeIdentity(Path image) {
    try (ModelStore store = ModelStore.openReadOnly(image.resolve("store"))) {
      return store.identity();
    }
  }

  /** Consecutive steps' offsets tile the log from 0: each range is exactly the step's batch (no dead letters here). */
  private static void assertTrainedOnce(Path image) throws IOException {
    try (EmbeddedLog log = EmbeddedLog.open(image.resolve("log"));
        ModelStore store = ModelStore.openReadOnly(image.resolve("store"))) {
      Map<SourcePartition, Long> previous = new TreeMap<>();
      for (var tp : Topics.sources()) {
        previous.put(new SourcePartition(tp.topic(), tp.partition()), 0L);
      }
      for (long s = 1; s <= store.lastStep(); s++) {
        Map<SourcePartition, Long> next = new TreeMap<>(previous);
        next.putAll(store.offsetsAt(s));
        long consumed = 0;
        for (Map.Entry<SourcePartition, Long> e : next.entrySet()) {
          long from = previous.get(e.getKey());
          assertTrue(e.getValue() >= from, image + ": step " + s + " moved " + e.getKey() + " back");
          consumed += e.getValue() - from;
        }
        assertEquals(store.step(s).orElseThrow().batchSize(), consumed, image + ": step " + s + " consumed its batch");
        previous = next;
      }
      long tail = 0;
      for (Map.Entry<SourcePartition, Long> e : previous.entrySet()) {
        tail += log.endOffset(e.getKey().topic(), e.getKey().partition()) - e.getValue();
      }
      assertTrue(tail < BATCH, image + ": only a partial batch is left untrained, found " + tail);
    }
  }

  private static void serveInProcess(Path data) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    List<String> args = new ArrayList<>(List.of("serve", "--data-dir", data.toString(), "--exit-when-idle", "--json"));
    args.addAll(List.of(SERVE));
    int exit = io.pockettune.pipeline.cli.Main.run(new PrintWriter(out, true), new PrintWriter(err, true),
        args.toArray(String[]::new));
    assertEquals(0, exit, data + ": " + err);
  }

  /** Copies the regular files (not the control socket, not the log's lock) of a frozen data directory. */
  private static Path copy(Path from, Path to) throws IOException {
    try (Stream<Path> files = Files.walk(from)) {
      for (Path f : (Iterable<Path>) files::iterator) {
        Path target = to.resolve(from.relativize(f).toString());
        if (Files.isDirectory(f)) {
          Files.createDirectories(target);
        } else if (Files.isRegularFile(f) && !f.getFileName().toString().equals(".lock")) {
          Files.copy(f, target);
        }
      }
    }
    return to;
  }
}
