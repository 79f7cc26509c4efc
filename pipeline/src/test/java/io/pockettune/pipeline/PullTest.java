package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.ingest.LocalKafkaBroker;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.ModelStore;
import io.pockettune.trainer.StepRecord;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link PocketTune#pull} against a real Kafka broker in this JVM: trajectories trained by {@link
 * UserTrainer} (as the fleet job trains) and published in transactions, as the job publishes them.
 */
class PullTest {
  private static final EventSerde SERDE = new EventSerde(SchemaStore.withBuiltIns());
  private static final AtomicInteger TOPICS = new AtomicInteger();

  @TempDir static Path shared;
  @TempDir Path dir;

  private static LocalKafkaBroker broker;
  private static Path pkg;
  private static UserTrainer trainer;

  @BeforeAll
  static void start() throws Exception {
    broker = LocalKafkaBroker.start();
    pkg = PipelineFixture.tinyPackage(shared, null, null);
    trainer = UserTrainer.open(pkg, shared.resolve("work"), UserTrainer.Settings.defaults().withBatch(4));
  }

  @AfterAll
  static void stop() throws Exception {
    if (trainer != null) {
      trainer.close();
    }
    if (broker != null) {
      broker.close();
    }
  }

  /** One user's events and what the fleet job made of them. */
  record Trained(String user, List<Message> events, List<TrajectoryEntry> entries, String digest) {}

  static List<Message> events(String user, int count, int from) {
    List<Message> out = new ArrayList<>();
    for (int i = from; i < from + count; i++) {
      out.add(Message.newBuilder().setId(user + "-" + i).setConversation(user).setSender(user)
          .setText(user + " says message number " + i + " about climbing at " + (i % 7) + " pm")
          .setEventTime(Instant.ofEpochMilli(1_700_000_000_000L + 1000L * i)).setAttrs(Map.of()).build());
    }
    return out;
  }

  /** Trains a user's events in batches of 4 as the fleet job does, each step with its fingerprint. */
  static Trained train(String user, List<Message> events) {
    float[] values = trainer.baseValues();
    List<TrajectoryEntry> entries = new ArrayList<>();
    for (int i = 0; i < events.size(); i += 4) {
      List<UserTrainer.Example> batch = new ArrayList<>();
      for (Message m : events.subList(i, i + 4)) {
        UserTrainer.Prepared p = trainer.prepare(SERDE.serialize(m));
        assertTrue(p.trains(), p.deadLetterReason());
        batch.add(p.example());
      }
      List<TrajectoryEntry> trained = trainer.train(values, entries.size(), batch,
          events.get(i + 3).getEventTime().toEpochMilli());
      assertEquals(1, trained.size());
      assertEquals(UserTrainer.fingerprint(values), trained.get(0).fingerprint());
      entries.addAll(trained);
    }
    return new Trained(user, events, entries, UserTrainer.digest(values));
  }

  static String newTopic() {
    String topic = "trajectories-" + TOPICS.incrementAndGet();
    broker.createTopic(topic, 3);
    return topic;
  }

  /** Publishes entries in one transaction, step 1 with the run-config header (when {@code header}). */
  static void publish(String topic, String user, List<TrajectoryEntry> entries, boolean header, boolean commit) {
    Map<String, Object> config = Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
        ProducerConfig.TRANSACTIONAL_ID_CONFIG, "fleet-" + topic + "-" + user);
    try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(config, new StringSerializer(),
        new ByteArraySerializer())) {
      p.initTransactions();
      p.beginTransaction();
      for (TrajectoryEntry e : entries) {
        ProducerRecord<String, byte[]> r = new ProducerRecord<>(topic, user, e.encode());
        if (header && e.record().step() == 1) {
          r.headers().add(new RecordHeader(TrajectoryEntry.RUN_CONFIG_HEADER,
              trainer.runConfig().getBytes(StandardCharsets.UTF_8)));
        }
        p.send(r);
      }
      if (commit) {
        p.commitTransaction();
      } else {
        p.abortTransaction();
      }
    }
  }

  static PocketTune.PullResult pull(Path data, String topic, String user) throws Exception {
    return PocketTune.pull(data, pkg, new PocketTune.PullOptions(broker.bootstrapServers(), topic, user, Map.of(),
        Duration.ofSeconds(30)));
  }

  /** The parameters the store of {@code data} restores at its last step. */
  static String restoredDigest(Path data) throws Exception {
    try (ModelPackage p = ModelPackage.load(pkg);
        StoreSession s = StoreSession.readOnly(DataDirectory.at(data), p, 1)) {
      s.restore(s.store().lastStep());
      return s.model().parameters().digest();
    }
  }

  static List<StepRecord> steps(Path data) {
    try (ModelStore store = ModelStore.openReadOnly(data.resolve("store"))) {
      return store.steps(1, store.lastStep());
    }
  }

  static StepRecord withoutTime(StepRecord r) {
    return new StepRecord(r.step(), r.seed(), r.projectedGradient(), r.learningRate(), r.eps(), r.lossPlus(),
        r.lossMinus(), r.batchSize(), 0, r.coefficients());
  }

  static List<StepRecord> withoutTime(List<StepRecord> records) {
    return records.stream().map(PullTest::withoutTime).toList();
  }

  /** Trains events on a device, as an app's producer would give them. */
  static void trainOnDevice(Path data, List<Message> events) throws Exception {
    try (PocketTune tune = PocketTune.builder(data).model(pkg).batch(4).threads(1).open()) {
      Producer<String, SpecificRecord> producer = tune.producer();
      for (Message m : events) {
        producer.send(new ProducerRecord<>("messages", m.getConversation().toString(), m)).get();
      }
      tune.train(Long.MAX_VALUE, tune.endOffsets(), (step, loss) -> { });
    }
  }

  @Test
  void pull_equalsFleetTrainerAndDeviceTrainer() throws Exception {
    String topic = newTopic();
    List<Trained> users = List.of(train("ada", events("ada", 12, 0)), train("bo", events("bo", 8, 0)),
        train("cy", events("cy", 16, 0)));
    for (Trained t : users) {
      publish(topic, t.user(), t.entries(), true, true);
    }
    Trained ada = users.get(0);

    Path pulled = dir.resolve("pulled");
    PocketTune.PullResult r = pull(pulled, topic, "ada");
    assertEquals(3, r.stepsPulled());
    assertEquals(3, r.lastStep());
    assertEquals(ada.digest(), r.digest());
    assertEquals(9, r.recordsRead());
    assertEquals(ada.digest(), restoredDigest(pulled));
    assertEquals(ada.entries().stream().map(TrajectoryEntry::record).toList(), steps(pulled));

    Path device = dir.resolve("device");
    trainOnDevice(device, ada.events());
    assertEquals(ada.digest(), restoredDigest(device));
    assertEquals(withoutTime(steps(pulled)), withoutTime(steps(device)));
    assertNotEquals(users.get(1).digest(), ada.digest());
  }

  @Test
  void pull_thenTrainOnDevice_continuesTheTrajectory() throws Exception {
    String topic = newTopic();
    Trained job = train("ada", events("ada", 12, 0));
    publish(topic, "ada", job.entries().subList(0, 2), true, true);
    Path data = dir.resolve("data");
    assertEquals(2, pull(data, topic, "ada").lastStep());

    trainOnDevice(data, job.events().subList(8, 12));
    List<StepRecord> steps = steps(data);
    assertEquals(3, steps.size());
    assertEquals(withoutTime(job.entries().get(2).record()), withoutTime(steps.get(2)));
    assertEquals(job.digest(), restoredDigest(data));
  }

  @Test
  void pull_secondPull_appendsOnlyNewSteps_andIgnoresAbortedEntries() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 16, 0));
    publish(topic, "ada", ada.entries().subList(0, 2), true, true);
    Path data = dir.resolve("data");
    PocketTune.PullResult first = pull(data, topic, "ada");
    assertEquals(2, first.stepsPulled());

    StepRecord bogus = ada.entries().get(2).record();
    publish(topic, "ada", List.of(new TrajectoryEntry(new StepRecord(3, bogus.seed() + 1, bogus.projectedGradient(),
        bogus.learningRate(), bogus.eps(), bogus.lossPlus(), bogus.lossMinus(), 4, 0, null), 42L)), false, false);
    publish(topic, "ada", ada.entries().subList(2, 4), false, true);
    PocketTune.PullResult second = pull(data, topic, "ada");
    assertEquals(2, second.stepsPulled());
    assertEquals(4, second.lastStep());
    assertEquals(ada.digest(), second.digest());

    PocketTune.PullResult third = pull(data, topic, "ada");
    assertEquals(0, third.stepsPulled());
    assertEquals(ada.digest(), third.digest());
  }

  @Test
  void pull_intoLocallyTrainedPrefix_appendsTheRest() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 12, 0));
    publish(topic, "ada", ada.entries(), true, true);
    Path data = dir.resolve("data");
    trainOnDevice(data, ada.events().subList(0, 8));
    PocketTune.PullResult r = pull(data, topic, "ada");
    assertEquals(1, r.stepsPulled());
    assertEquals(ada.digest(), r.digest());
    assertEquals(withoutTime(ada.entries().stream().map(TrajectoryEntry::record).toList()), withoutTime(steps(data)));
  }

  @Test
  void pull_divergedTrajectory_refused() throws Exception {
    String topic = newTopic();
    String other = newTopic();
    Trained ada = train("ada", events("ada", 8, 0));
    Trained elsewhere = train("ada", events("ada", 8, 100));
    publish(topic, "ada", ada.entries(), true, true);
    publish(other, "ada", elsewhere.entries(), true, true);
    Path data = dir.resolve("data");
    pull(data, topic, "ada");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pull(data, other, "ada"));
    assertTrue(e.getMessage().contains("diverged"), e.getMessage());
    assertEquals(ada.digest(), restoredDigest(data));
  }

  @Test
  void pull_gap_refusedNamingTheMissingStep() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 16, 0));
    publish(topic, "ada", List.of(ada.entries().get(0), ada.entries().get(1), ada.entries().get(3)), true, true);
    Path data = dir.resolve("data");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pull(data, topic, "ada"));
    assertTrue(e.getMessage().startsWith("step 3 of user ada is missing"), e.getMessage());
    assertFalse(Files.exists(data.resolve("store")));
  }

  @Test
  void pull_fingerprintMismatch_commitsOnlyTheStepsBefore() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 12, 0));
    TrajectoryEntry second = ada.entries().get(1);
    List<TrajectoryEntry> tampered = List.of(ada.entries().get(0),
        new TrajectoryEntry(second.record(), second.fingerprint() ^ 1), ada.entries().get(2));
    publish(topic, "ada", tampered, true, true);
    Path data = dir.resolve("data");
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pull(data, topic, "ada"));
    assertTrue(e.getMessage().startsWith("step 2 of user ada does not replay"), e.getMessage());
    assertEquals(List.of(ada.entries().get(0).record()), steps(data));
  }

  @Test
  void pull_noRunConfigHeader_refused() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 4, 0));
    publish(topic, "ada", ada.entries(), false, true);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> pull(dir.resolve("data"), topic, "ada"));
    assertTrue(e.getMessage().contains("carries no " + TrajectoryEntry.RUN_CONFIG_HEADER + " header"), e.getMessage());
  }

  @Test
  void pull_anotherPackage_refused() throws Exception {
    String topic = newTopic();
    publish(topic, "ada", train("ada", events("ada", 4, 0)).entries(), true, true);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PocketTune.pull(
        dir.resolve("data"), null, new PocketTune.PullOptions(broker.bootstrapServers(), topic, "ada", Map.of(),
            Duration.ofSeconds(30))));
    assertTrue(e.getMessage().contains("but the built-in demo model (no --model given) is"), e.getMessage());
  }

  @Test
  void pull_unknownUser_refusedSayingNoSteps() throws Exception {
    String topic = newTopic();
    publish(topic, "ada", train("ada", events("ada", 4, 0)).entries(), true, true);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> pull(dir.resolve("data"), topic, "bob"));
    assertEquals("topic " + topic + " holds no steps of user bob (1 records of other users read): check --user and"
        + " --topic", e.getMessage());
  }

  @Test
  void pull_noBroker_refusedWithinTheTimeout() throws Exception {
    int port;
    try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      port = s.getLocalPort();
    }
    long started = System.nanoTime();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PocketTune.pull(
        dir.resolve("data"), pkg, new PocketTune.PullOptions("127.0.0.1:" + port, null, "ada", Map.of(),
            Duration.ofSeconds(2))));
    assertTrue(e.getMessage().startsWith("could not reach Kafka at 127.0.0.1:" + port + " to read topic "
        + TrajectoryEntry.DEFAULT_TOPIC + " within 2000 ms"), e.getMessage());
    assertTrue(System.nanoTime() - started < Duration.ofSeconds(10).toNanos());
    assertFalse(Files.exists(dir.resolve("data").resolve("store")));
  }

  @Test
  void pull_thenPersonalModel_generatesAndScoresAtTheLastStep() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 8, 0));
    publish(topic, "ada", ada.entries(), true, true);
    Path data = dir.resolve("data");
    pull(data, topic, "ada");
    try (PocketTune tune = PocketTune.builder(data).model(pkg).threads(1).open()) {
      PersonalModel.Completion c = tune.generate("latest", "ada says", PersonalModel.CompletionOptions.greedy(4));
      assertEquals(2, c.step());
      PersonalModel.Score s = tune.score("latest", List.of("ada says hello"), null).get(0);
      assertEquals(2, s.step());
      assertTrue(s.loss() > 0);
    }
  }

  @Test
  void cli_pull_printsJsonLine_andRefusesInOneLine() throws Exception {
    String topic = newTopic();
    Trained ada = train("ada", events("ada", 8, 0));
    publish(topic, "ada", ada.entries(), true, true);
    Path data = dir.resolve("data");
    CliRun run = CliRun.of("pull", "--bootstrap-servers", broker.bootstrapServers(), "--user", "ada", "--topic", topic,
        "--model", pkg.toString(), "--data-dir", data.toString(), "--threads", "1", "--json");
    assertEquals(0, run.exit(), run.err());
    assertEquals(2, run.json().path("steps_pulled").asLong());
    assertEquals(ada.digest(), run.json().path("parameters_sha256").asText());

    CliRun again = CliRun.of("pull", "--bootstrap-servers", broker.bootstrapServers(), "--user", "ada", "--topic",
        topic, "--model", pkg.toString(), "--data-dir", data.toString(), "--json");
    assertEquals(0, again.exit(), again.err());
    assertEquals(0, again.json().path("steps_pulled").asLong());
    assertTrue(again.out().contains("no new steps"), again.out());

    CliRun status = CliRun.of("status", "--data-dir", data.toString(), "--json");
    assertEquals(0, status.exit(), status.err());
    assertEquals(2, status.json().path("last_step").asLong());

    CliRun wrong = CliRun.of("pull", "--bootstrap-servers", broker.bootstrapServers(), "--user", "nobody", "--topic",
        topic, "--model", pkg.toString(), "--data-dir", dir.resolve("other").toString());
    assertEquals(1, wrong.exit());
    assertEquals(1, wrong.err().strip().lines().count(), wrong.err());
    assertTrue(wrong.err().startsWith("pockettune pull: topic " + topic + " holds no steps of user nobody"),
        wrong.err());

    CliRun missing = CliRun.of("pull", "--user", "ada");
    assertEquals(2, missing.exit());
  }
}
