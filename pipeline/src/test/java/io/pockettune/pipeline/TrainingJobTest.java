package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.ingest.LogEntry;
import io.pockettune.ingest.LogRecord;
import io.pockettune.pipeline.cli.PersonaStream;
import io.pockettune.store.SourcePartition;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainingJobTest {
  private static final Instant T0 = Instant.parse("2026-09-01T07:00:00Z");
  private static final TrainingJob.Listener QUIET = (r, n) -> {};

  @TempDir Path dir;

  private static void appendPersona(PipelineFixture f, int events) throws Exception {
    PipelineFixture.appendPersona(f.log, f.serde, new PersonaStream(5, T0), events);
  }

  @Test
  void run_resumedAfterStopEqualsUninterruptedRun() throws Exception {
    String uninterrupted;
    Map<SourcePartition, Long> uninterruptedOffsets;
    try (PipelineFixture f = new PipelineFixture(dir.resolve("a-log"), dir.resolve("a-store"))) {
      appendPersona(f, 60);
      TrainingJob.Result r = f.job(4).run(12, QUIET);
      assertEquals(12, r.steps());
      uninterrupted = f.model.parameters().digest();
      uninterruptedOffsets = f.store.committedOffsets();
    }

    try (PipelineFixture f = new PipelineFixture(dir.resolve("b-log"), dir.resolve("b-store"))) {
      appendPersona(f, 60);
      assertEquals(5, f.job(4).run(5, QUIET).steps());
    }
    try (PipelineFixture f = new PipelineFixture(dir.resolve("b-log"), dir.resolve("b-store"))) {
      assertEquals(5, f.store.lastStep());
      assertEquals(7, f.job(4).run(7, QUIET).steps());
      assertEquals(uninterrupted, f.model.parameters().digest());
      assertEquals(uninterruptedOffsets, f.store.committedOffsets());
    }
  }

  @Test
  void run_commitsOffsetsOfExactlyTheTrainedEvents() throws Exception {
    try (PipelineFixture f = new PipelineFixture(dir.resolve("log"), dir.resolve("store"))) {
      appendPersona(f, 50);
      TrainingJob.Result r = f.job(8).run(100, QUIET);
      assertTrue(r.sourceExhausted());
      assertEquals(6, r.steps());
      assertEquals(48, r.eventsTrained());
      long committed = f.store.committedOffsets().values().stream().mapToLong(Long::longValue).sum();
      assertEquals(48, committed, "the two events of the unfinished batch stay ahead of the offsets");
      assertEquals(1, r.checkpoints());
      assertEquals(5, f.store.checkpoints().get(0).step());
    }
  }

  @Test
  void run_deadLettersBadEventsAndGoesOn() throws Exception {
    try (PipelineFixture f = new PipelineFixture(dir.resolve("log"), dir.resolve("store"))) {
      long t = T0.toEpochMilli();
      byte[] good = f.serde.serialize(Message.newBuilder().setId("1").setConversation("ada").setSender("maya")
          .setText("see you at 6 x").setEventTime(T0).build());
      byte[] empty = f.serde.serialize(Message.newBuilder().setId("2").setConversation("ada").setSender("maya")
          .setText("   ").setEventTime(T0).build());
      byte[] unknown = good.clone();
      unknown[2] ^= 0x5A; // a fingerprint no store knows
      byte[] garbage = "definitely not avro".getBytes(StandardCharsets.UTF_8);
      f.log.append(Topics.MESSAGES, 0, List.of(
          new LogRecord(t, null, good), new LogRecord(t + 1, null, empty), new LogRecord(t + 2, null, unknown),
          new LogRecord(t + 3, null, garbage), new LogRecord(t + 4, null, good), new LogRecord(t + 5, null, good),
          new LogRecord(t + 6, null, good)));

      TrainingJob.Result r = f.job(2).run(10, QUIET);
      assertEquals(2, r.steps());
      assertEquals(3, r.deadLetters());
      List<LogEntry> letters = f.log.read(DeadLetters.TOPIC, 0, 0, 10);
      assertEquals(3, letters.size());
      String all = letters.stream().map(e -> new String(e.value(), StandardCharsets.UTF_8)).reduce("", String::concat);
      assertTrue(all.contains("empty text"), all);
      assertTrue(all.contains("unknown writer schema fingerprint"), all);
      assertTrue(all.contains("\"offset\":3"), all);
      assertEquals("messages/0/1", new String(letters.get(0).key(), StandardCharsets.UTF_8));
      assertEquals(7L, f.store.committedOffsets().get(new SourcePartition(Topics.MESSAGES, 0)));
    }
  }

  @Test
  void run_deadLettersOversizeEventsAndKeepsTokenBudgetBatchesWhole() throws Exception {
    try (PipelineFixture f = new PipelineFixture(dir.resolve("log"), dir.resolve("store"))) {
      long t = T0.toEpochMilli();
      byte[] small = f.serde.serialize(Message.newBuilder().setId("1").setConversation("ada").setSender("maya")
          .setText("see you at 6 x").setEventTime(T0).build());
      byte[] big = f.serde.serialize(Message.newBuilder().setId("2").setConversation("ada").setSender("maya")
          .setText("x".repeat(500)).setEventTime(T0).build());
      f.log.append(Topics.MESSAGES, 0, List.of(new LogRecord(t, null, small), new LogRecord(t + 1, null, big),
          new LogRecord(t + 2, null, small), new LogRecord(t + 3, null, small), new LogRecord(t + 4, null, small)));
      // Budget of two examples' tokens: every batch closes by tokens, and no event is lost on the way.
      long tokens = new io.pockettune.trainer.ByteTokenizer().encode("see you at 6 x", 64).length;
      TrainingJob job = new TrainingJob(new LogSource(f.log, Map.of(new org.apache.kafka.common.TopicPartition(
          Topics.MESSAGES, 0), 0L), Map.of(new org.apache.kafka.common.TopicPartition(Topics.MESSAGES, 0), 5L)),
          f.serde, ExampleMapper.defaults(), new io.pockettune.trainer.ByteTokenizer(), PipelineFixture.TINY.maxPositions(),
          new MicroBatcher(100, 2 * tokens, Long.MAX_VALUE, org.apache.kafka.common.utils.Time.SYSTEM), f.trainer, f.store, new DeadLetters(f.log), 0,
          f.model.parameters(), 0).maxEventBytes(300);
      TrainingJob.Result r = job.run(10, QUIET);
      assertEquals(1, r.steps(), "events 3 and 4 stay in the open batch");
      assertEquals(2, r.eventsTrained());
      assertEquals(1, r.deadLetters());
      String letter = new String(f.log.read(DeadLetters.TOPIC, 0, 0, 1).get(0).value(), StandardCharsets.UTF_8);
      assertTrue(letter.contains("oversize"), letter);
      assertEquals(3L, f.store.committedOffsets().get(new SourcePartition(Topics.MESSAGES, 0)),
          "the batch of events 0 and 2 covers the dead letter between them");
    }
  }

  @Test
  void labelled_takesLabelFromAttributeRefusesUnknownAndLeavesMissingUnlabelled() {
    ExampleMapper mapper = ExampleMapper.labelled("label", List.of("work", "home"), null);
    Message.Builder m = Message.newBuilder().setId("1").setConversation("ada").setSender("maya").setText("shift swap?")
        .setEventTime(T0);
    ExampleMapper.TrainingExample e = mapper.map(m.setAttrs(Map.of("label", "home")).build());
    assertEquals(1, e.label());
    assertEquals("shift swap?", e.text());
    IllegalArgumentException unknown = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
        () -> mapper.map(m.setAttrs(Map.of("label", "gym")).build()));
    assertTrue(unknown.getMessage().contains("gym"), unknown.getMessage());
    ExampleMapper.TrainingExample none = mapper.map(m.setAttrs(Map.of()).build());
    assertFalse(none.labelled(), "an event without the attribute is unlabelled, not refused");
    ExampleMapper.TrainingExample prompted = ExampleMapper.labelled("label", List.of("work", "home"), "{text} It was")
        .map(m.setAttrs(Map.of("label", "work")).build());
    assertEquals("shift swap? It was", prompted.text());
    assertEquals(0, prompted.label());
    MicroBatcher batcher = MicroBatcher.byCount(2);
    batcher.add(new long[] {1, 5, 2}, 0);
    batcher.add(new long[] {1, 6, 7, 2}, 1);
    io.pockettune.trainer.TokenBatch b = batcher.drain();
    org.junit.jupiter.api.Assertions.assertArrayEquals(new long[] {0, 1}, b.labels());
  }

  @Test
  void advance_liveSource_maxWaitClosesPartialBatchOnInjectedClock() throws Exception {
    try (PipelineFixture f = new PipelineFixture(dir.resolve("log"), dir.resolve("store"))) {
      appendPersona(f, 3);
      org.apache.kafka.common.utils.MockTime now = new org.apache.kafka.common.utils.MockTime(0, 0, 0);
      Map<org.apache.kafka.common.TopicPartition, Long> start = new java.util.LinkedHashMap<>();
      Topics.sources().forEach(tp -> start.put(tp, 0L));
      LiveLogSource source = new LiveLogSource(f.log, start, 0, now);
      TrainingJob job = new TrainingJob(source, f.serde, ExampleMapper.defaults(), new io.pockettune.trainer.ByteTokenizer(),
          PipelineFixture.TINY.maxPositions(), new MicroBatcher(100, Long.MAX_VALUE, java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(1_000), now), f.trainer, f.store,
          new DeadLetters(f.log), 0, f.model.parameters(), 0);
      assertEquals(TrainingJob.Advance.IDLE, job.advance(QUIET), "three events wait for more");
      now.setCurrentTimeMs(999);
      assertEquals(TrainingJob.Advance.IDLE, job.advance(QUIET));
      now.setCurrentTimeMs(1_000);
      assertEquals(TrainingJob.Advance.COMMITTED, job.advance(QUIET), "the oldest waited its maximum");
      assertEquals(3, f.store.step(1).orElseThrow().batchSize());
      assertEquals(3L, f.store.committedOffsets().values().stream().mapToLong(Long::longValue).sum());
    }
  }
}
