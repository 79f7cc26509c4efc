package io.pockettune.fleet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.ingest.LocalKafkaBroker;
import io.pockettune.pipeline.TrajectoryEntry;
import io.pockettune.pipeline.UserTrainer;
import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fleet job on a Flink MiniCluster (2 slots) over a real KRaft broker in this JVM: 50 users
 * with interleaved events on two topics (5 partitions), RocksDB state, exactly-once checkpoints.
 * One uninterrupted run and one with a failure injected mid-run must publish bit-identical
 * trajectories; every user's trajectory must equal what the device's own trainer does with that
 * user's events (checked in a child JVM: the device store's RocksDB cannot share this JVM with
 * Flink's), and a partial batch must close by its event-time wait.
 */
class FleetJobTest {
  static final int USERS = 50;
  static final int BATCH = 4;
  static final long WAIT_MS = 3_600_000;
  /**
   * Event times start 4 hours ago: within the broker's retention (7 days by event time; older
   * records would be deleted under the test) and never more than the broker's 1 hour ahead.
   */
  static final long START = System.currentTimeMillis() - 4 * 3_600_000L;
  /** A user whose events have a gap longer than the batch wait, and two values that are not events. */
  static final String GAP_USER = "user-gap";

  @RegisterExtension
  static final MiniClusterExtension FLINK = new MiniClusterExtension(new MiniClusterResourceConfiguration.Builder()
      .setNumberTaskManagers(1).setNumberSlotsPerTaskManager(2).build());

  static LocalKafkaBroker kafka;
  static List<FleetFixture.Produced> events;
  static Path work;

  @BeforeAll
  static void start() throws Exception {
    work = Files.createTempDirectory("pockettune-fleet-test-");
    kafka = LocalKafkaBroker.start();
    kafka.createTopic("messages", 3);
    kafka.createTopic("notes", 2);
    for (String t : List.of("traj-plain", "traj-failed", "traj-device")) {
      kafka.createTopic(t, 3);
    }
    // 4, 8 or 12 events per user: every batch of theirs closes by count, as on a device.
    events = new ArrayList<>(FleetFixture.events(USERS, u -> BATCH * (1 + u % 3), 7, START, 1000));
    FleetFixture.produce(kafka.bootstrapServers(), events);
    // The gap user: 6 events, two hours of silence (more than the wait), 6 more, and two bad values.
    Random rnd = new Random(11);
    List<FleetFixture.Produced> gap = new ArrayList<>();
    long t = START + 500;
    for (int i = 1; i <= 12; i++) {
      gap.add(FleetFixture.event(GAP_USER, i, t, rnd));
      t += i == 6 ? 2 * WAIT_MS : 1000;
    }
    FleetFixture.produce(kafka.bootstrapServers(), gap);
    FleetFixture.produceRaw(kafka.bootstrapServers(), "messages", GAP_USER, START + 2_700, "not avro".getBytes());
    FleetFixture.produceRaw(kafka.bootstrapServers(), "notes", GAP_USER, START + 3_700, new byte[] {(byte) 0xc3, 1});
  }

  @AfterAll
  static void stop() throws IOException {
    if (kafka != null) {
      kafka.close();
    }
  }

  static FleetJob.Settings settings(String topic, String group) {
    return FleetJob.Settings.defaults(kafka.bootstrapServers())
        .withTrainer(UserTrainer.Settings.defaults().withBatch(BATCH).withMaxWaitMillis(WAIT_MS))
        .withModel(null, work.resolve("job-" + topic).toString())
        .withOutput(topic, group)
        .withRun(5, 100, 2, true)
        .withCheckpointDir(work.resolve("checkpoints-" + topic).toUri().toString());
  }

  static void run(FleetJob.Settings s, int restarts, java.util.function.UnaryOperator<DataStream<FleetEvent>> hook)
      throws Exception {
    Configuration c = FleetJob.configuration(s);
    c.setString("restart-strategy.type", restarts > 0 ? "fixed-delay" : "none");
    c.setString("restart-strategy.fixed-delay.attempts", Integer.toString(restarts));
    c.setString("restart-strategy.fixed-delay.delay", "100 ms");
    StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(c);
    env.setParallelism(s.parallelism());
    FleetJob.define(env, s, hook);
    env.execute("fleet test " + s.trajectoryTopic());
  }

  @Test
  void recoveryFromACheckpointPublishesTheSameTrajectoriesAsAnUninterruptedRunAndADeviceRebuildsEachFromThem() throws Exception {
    run(settings("traj-plain", "g-plain"), 0, s -> s);
    Map<String, List<FleetFixture.Published>> plain =
        FleetFixture.trajectories(kafka.bootstrapServers(), "traj-plain").steps();

    FailOnce.reset(new Random().nextInt(events.size() / 4) + events.size() / 3, 3);
    run(settings("traj-failed", "g-failed"), 2, s -> s.map(new FailOnce()).name("inject failure"));
    assertTrue(FailOnce.failed.get(), "the injected failure never happened: the job ran out of events before it");
    assertTrue(FailOnce.restored.get(), "the job did not restore from a checkpoint after the injected failure at event "
        + FailOnce.failAt);
    FleetFixture.Trajectories read = FleetFixture.trajectories(kafka.bootstrapServers(), "traj-failed");
    Map<String, List<FleetFixture.Published>> failed = read.steps();
    System.out.println("injected failure after " + FailOnce.failAt + " events; " + read.duplicates()
        + " steps were published again (identical) after the recovery");

    Map<String, List<FleetFixture.Produced>> byUser = FleetFixture.byUser(events);
    assertEquals(USERS + 1, plain.size(), "every user published a trajectory");
    assertEquals(plain.keySet(), failed.keySet());
    for (String user : plain.keySet()) {
      List<FleetFixture.Published> a = plain.get(user);
      List<FleetFixture.Published> b = failed.get(user);
      assertEquals(a.size(), b.size(), user + ": steps after recovery");
      for (int i = 0; i < a.size(); i++) {
        assertArrayEquals(a.get(i).entry(), b.get(i).entry(), user + " step " + (i + 1) + " differs after recovery");
        StepRecord r = a.get(i).decoded().record();
        assertEquals(i + 1, r.step(), user + ": steps are numbered 1, 2, ... with none published twice");
        if (i == 0) {
          assertNotNull(a.get(i).runConfig(), user + ": step 1 carries the run config");
        } else {
          assertNull(a.get(i).runConfig());
        }
      }
      long trained = a.stream().mapToLong(p -> p.decoded().record().batchSize()).sum();
      if (!user.equals(GAP_USER)) {
        assertEquals(byUser.get(user).size(), trained, user + ": every event trained once");
        assertEquals(byUser.get(user).size() / BATCH, a.size(), user + ": one step per batch of " + BATCH);
      }
    }
    // A device store rebuilt from the published trajectories (duplicates and all) holds each
    // user's steps, and its values are the job's: their SHA-256 starts with the last fingerprint.
    List<String> users = new ArrayList<>(failed.keySet());
    List<String> args = new ArrayList<>(List.of("pull", kafka.bootstrapServers(), "traj-failed",
        work.resolve("pulled").toString()));
    args.addAll(users);
    List<String> pulled = ChildJvm.run(work.resolve("pull"), args.toArray(String[]::new));
    assertEquals(users.size(), pulled.size());
    for (String line : pulled) {
      String[] f = line.split(" ");
      List<FleetFixture.Published> steps = failed.get(f[0]);
      TrajectoryEntry last = steps.get(steps.size() - 1).decoded();
      assertEquals(last.record().step(), Long.parseLong(f[1]), f[0] + ": last step pulled");
      assertEquals(steps.size(), Integer.parseInt(f[3]), f[0] + ": steps in the device store");
      assertEquals(String.format("%016x", last.fingerprint()), f[2].substring(0, 16),
          f[0] + ": the pulled values against the job's");
    }
    // The gap user: 6 events, then the two-hour gap closes the partial batch by its wait, 6 more,
    // and the end of the input closes the last one; the two values that are not events trained nothing.
    List<Integer> sizes = plain.get(GAP_USER).stream().map(p -> p.decoded().record().batchSize()).toList();
    assertEquals(List.of(4, 2, 4, 2), sizes, "the gap user's batches");
  }

  @Test
  void eachUsersTrajectoryIsWhatTheDevicesOwnTrainerDoesWithThatUsersEvents() throws Exception {
    run(settings("traj-device", "g-device"), 0, s -> s);
    Map<String, List<FleetFixture.Published>> published =
        FleetFixture.trajectories(kafka.bootstrapServers(), "traj-device").steps();
    Map<String, List<FleetFixture.Produced>> byUser = FleetFixture.byUser(events);
    // Every user, in the order the job trains their events, to a file the child JVM reads.
    List<String> lines = new ArrayList<>();
    for (var u : byUser.entrySet()) {
      for (FleetFixture.Produced e : u.getValue()) {
        lines.add(u.getKey() + " " + e.time() + " " + Base64.getEncoder().encodeToString(e.value()));
      }
    }
    Path file = work.resolve("device-events.txt");
    Files.write(file, lines, StandardCharsets.UTF_8);
    List<String> device = ChildJvm.run(work.resolve("device"), "train", file.toString(),
        work.resolve("devices").toString(), Integer.toString(BATCH));

    List<String> job = new ArrayList<>();
    for (String user : byUser.keySet()) {
      for (FleetFixture.Published p : published.get(user)) {
        job.add(DeviceCheck.line(user, p.decoded().record()));
      }
    }
    assertEquals(USERS, byUser.size());
    assertEquals(job.size(), device.size(), "steps: the job's against the devices'");
    assertEquals(job, device, "the job's step records against the device store's, user by user");
    // And the values: replaying a user's published steps from the base reproduces each fingerprint.
    try (UserTrainer t = UserTrainer.open(null, work.resolve("replay"), UserTrainer.Settings.defaults().withBatch(BATCH))) {
      for (String user : byUser.keySet()) {
        float[] values = t.baseValues();
        for (FleetFixture.Published p : published.get(user)) {
          TrajectoryEntry e = p.decoded();
          t.replay(values, e.record());
          assertEquals(e.fingerprint(), UserTrainer.fingerprint(values), user + " step " + e.record().step());
        }
      }
    }
  }

  /** Throws once, at the first event from the {@code failAt}-th on that follows a completed checkpoint. */
  static final class FailOnce implements MapFunction<FleetEvent, FleetEvent>, CheckpointedFunction, CheckpointListener {
    private static final long serialVersionUID = 1L;
    static final AtomicBoolean failed = new AtomicBoolean();
    static final AtomicBoolean checkpointed = new AtomicBoolean();
    static final AtomicBoolean restored = new AtomicBoolean();
    static final AtomicLong seen = new AtomicLong();
    static volatile long failAt;
    static volatile long pauseMillis;

    static void reset(long at, long pause) {
      failed.set(false);
      checkpointed.set(false);
      restored.set(false);
      seen.set(0);
      failAt = at;
      pauseMillis = pause;
    }

    @Override
    public FleetEvent map(FleetEvent e) throws Exception {
      long n = seen.incrementAndGet();
      if (!failed.get()) {
        // Past the chosen event and still no checkpoint: slow down (not stop: the barriers must
        // pass) until one completes, so that the failure always recovers from a checkpoint.
        TimeUnit.MILLISECONDS.sleep(n >= failAt && !checkpointed.get() ? 20 : pauseMillis);
      }
      if (n >= failAt && checkpointed.get() && failed.compareAndSet(false, true)) {
        throw new IllegalStateException("injected failure at " + e.position());
      }
      return e;
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
      checkpointed.set(true);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) {}

    @Override
    public void initializeState(FunctionInitializationContext context) {
      if (context.isRestored()) {
        restored.set(true);
      }
    }
  }
}
