package io.pockettune.fleet;

import io.pockettune.pipeline.PocketTune;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.ModelStore;
import io.pockettune.trainer.StepRecord;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * The device side of the fleet tests, run in a child JVM because it needs the device store
 * (model-store's rocksdbjni), which must not share a JVM with Flink's frocksdbjni.
 *
 * <p>{@code train EVENTS_FILE WORK_DIR BATCH}: for every user in the file (lines "user time
 * base64-value", in the order the job trains them), a fresh data directory and the device's own
 * training ({@link PocketTune#train}) on exactly those events, one partition so the order is
 * the file's; then prints each committed step record of the device store as a line "user step
 * seed g lr eps l+ l- batch" (floats as their IEEE bits in hex).
 *
 * <p>{@code pull BOOTSTRAP TOPIC WORK_DIR USER...}: for every user, a fresh data directory that
 * pulls the user's trajectory from the topic ({@link PocketTune#pull}: each step replayed and its
 * fingerprint checked before it is committed); then prints "user last-step parameters-sha256 steps"
 * where the steps are read back from the device store.
 */
public final class DeviceCheck {
  private DeviceCheck() {}

  public static void main(String[] args) throws Exception {
    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
    switch (args[0]) {
      case "train" -> train(Path.of(args[1]), Path.of(args[2]), Integer.parseInt(args[3]), out);
      case "pull" -> pull(args[1], args[2], Path.of(args[3]), List.of(args).subList(4, args.length), out);
      default -> throw new IllegalArgumentException("unknown mode " + args[0]);
    }
  }

  private static void train(Path events, Path work, int batch, PrintStream out) throws Exception {
    EventSerde serde = new EventSerde(SchemaStore.withBuiltIns());
    Map<String, List<SpecificRecord>> byUser = new LinkedHashMap<>();
    for (String line : Files.readAllLines(events, StandardCharsets.UTF_8)) {
      String[] f = line.split(" ");
      byUser.computeIfAbsent(f[0], k -> new ArrayList<>()).add(serde.deserialize(Base64.getDecoder().decode(f[2])));
    }
    for (Map.Entry<String, List<SpecificRecord>> u : byUser.entrySet()) {
      Path dir = work.resolve(u.getKey());
      try (PocketTune t = PocketTune.builder(dir).batch(batch).threads(1).open()) {
        Producer<String, SpecificRecord> p = t.producer();
        for (SpecificRecord r : u.getValue()) {
          p.send(new ProducerRecord<>("messages", 0, u.getKey(), r)).get();
        }
        t.train(Long.MAX_VALUE, t.endOffsets(), (step, loss) -> { });
      }
      try (ModelStore store = ModelStore.openReadOnly(dir.resolve("store"))) {
        for (StepRecord r : store.steps(1, store.lastStep())) {
          out.println(line(u.getKey(), r));
        }
      }
    }
  }

  private static void pull(String bootstrap, String topic, Path work, List<String> users, PrintStream out)
      throws Exception {
    for (String user : users) {
      Path dir = work.resolve(user);
      PocketTune.PullResult r = PocketTune.pull(dir, null,
          new PocketTune.PullOptions(bootstrap, topic, user, Map.of(), java.time.Duration.ofSeconds(60)));
      try (ModelStore store = ModelStore.openReadOnly(dir.resolve("store"))) {
        out.println(user + " " + r.lastStep() + " " + r.digest() + " " + store.steps(1, store.lastStep()).size());
      }
    }
  }

  /** A step record without its time (provenance: the job stamps event time, the device the clock). */
  static String line(String user, StepRecord r) {
    return user + " " + r.step() + " " + r.seed() + " " + bits(r.projectedGradient()) + " " + bits(r.learningRate())
        + " " + bits(r.eps()) + " " + bits(r.lossPlus()) + " " + bits(r.lossMinus()) + " " + r.batchSize();
  }

  private static String bits(float f) {
    return Integer.toHexString(Float.floatToRawIntBits(f));
  }
}
