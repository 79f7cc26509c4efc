package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Erasing records for exact forgetting ({@link EmbeddedLog#erase}) on real segment files: the
 * erased bytes are gone from disk, reads skip the holes, offsets and everything else stay, and the
 * result survives a clean reopen and crash recovery.
 */
class ErasureTest {

  /** Small segments, so that the records span several, and a dense index. */
  private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(2048).withIndexIntervalBytes(128);

  @TempDir
  Path dir;

  private static LogRecord text(int i) {
    return new LogRecord(1_000 + i, ("user-" + (i % 3)).getBytes(StandardCharsets.UTF_8),
        ("secret message number " + i + " of the user").getBytes(StandardCharsets.UTF_8));
  }

  /** 120 records in batches of 1 to 5, so erasures hit whole batches, batch heads and middles. */
  private static void fill(EmbeddedLog log) throws IOException {
    log.createTopic("messages", 1);
    int i = 0;
    int size = 1;
    while (i < 120) {
      List<LogRecord> batch = new ArrayList<>();
      for (int k = 0; k < size && i < 120; k++) {
        batch.add(text(i++));
      }
      log.append("messages", 0, batch);
      size = size % 5 + 1;
    }
  }

  @Test
  void erasedRecordsAreGoneFromDiskAndReadsSkipThemAfterReopenAndRecovery() throws IOException {
    Set<Long> erase = Set.of(0L, 1L, 2L, 7L, 44L, 45L, 46L, 47L, 48L, 119L);
    List<LogEntry> before;
    try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
      fill(log);
      before = log.read("messages", 0, 0, 1000);
      assertTrue(bytesOnDisk().contains("secret message number 46 "), "the check can fail: the text is on disk first");
      assertEquals(List.copyOf(new java.util.TreeSet<>(erase)), log.erase("messages", 0, erase));
      assertEquals(List.of(), log.erase("messages", 0, erase), "a second erase finds nothing to do");
      assertEquals(expected(before, erase), log.read("messages", 0, 0, 1000));
      assertEquals(3, log.read("messages", 0, 0, 1).get(0).offset(), "a read from a hole starts after it");
      assertEquals(120, log.endOffset("messages", 0), "offsets stay: the end offset does not move");
      log.append("messages", 0, List.of(text(120)));
      assertEquals(120, log.read("messages", 0, 119, 10).get(0).offset(), "appends go on after the erasure");
    }
    String disk = bytesOnDisk();
    for (long o : erase) {
      assertFalse(disk.contains("secret message number " + o + " "), "record " + o + " is still on disk");
    }
    assertTrue(disk.contains("secret message number 3 "), "the other records are still there");
    List<LogEntry> kept = new ArrayList<>(expected(before, erase));
    kept.add(new LogEntry(120, text(120).timestamp(), text(120).key(), text(120).value()));
    try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
      assertEquals(kept, log.read("messages", 0, 0, 1000), "after a clean reopen");
      log.abandon();
    }
    try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
      assertTrue(log.segmentsRecoveredAtOpen() > 0, "the open after the crash recovered the segments");
      assertEquals(kept, log.read("messages", 0, 0, 1000), "after crash recovery, which checks every CRC");
      assertEquals(121, log.endOffset("messages", 0));
    }
  }

  @Test
  void anEncryptedBatchIsErasedByOpeningAndSealingItAgain() throws IOException {
    byte[] key = new byte[32];
    new java.util.Random(5).nextBytes(key);
    LogConfig sealed = SMALL.withEncryptionKey(key);
    Set<Long> erase = Set.of(4L, 5L, 60L);
    List<LogEntry> before;
    try (EmbeddedLog log = EmbeddedLog.open(dir, sealed)) {
      fill(log);
      before = log.read("messages", 0, 0, 1000);
      assertEquals(List.of(4L, 5L, 60L), log.erase("messages", 0, erase));
      assertEquals(expected(before, erase), log.read("messages", 0, 0, 1000));
      log.abandon();
    }
    try (EmbeddedLog log = EmbeddedLog.open(dir, sealed)) {
      assertEquals(expected(before, erase), log.read("messages", 0, 0, 1000), "recovery authenticates every batch");
      assertEquals(120, log.endOffset("messages", 0));
    }
  }

  @Test
  void aConsumerStepsOverHolesAtTheEndOfAPartition() throws IOException {
    try (EmbeddedLog log = EmbeddedLog.open(dir, SMALL)) {
      fill(log);
      log.erase("messages", 0, Set.of(117L, 118L, 119L));
      try (EmbeddedConsumer<byte[], byte[]> consumer = new EmbeddedConsumer<>(log,
          Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"), new ByteArrayDeserializer(),
          new ByteArrayDeserializer())) {
        TopicPartition tp = new TopicPartition("messages", 0);
        consumer.assign(List.of(tp));
        List<Long> offsets = new ArrayList<>();
        for (int i = 0; i < 20 && consumer.position(tp) < 120; i++) {
          for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(10))) {
            offsets.add(r.offset());
          }
        }
        assertEquals(117, offsets.size());
        assertEquals(116L, offsets.get(offsets.size() - 1));
        assertEquals(120, consumer.position(tp), "the consumer's position passes the holes, so it has no lag");
      }
    }
  }

  @Test
  void everyRecordLengthHasAnErasedFormOfTheSameLength() throws IOException {
    // Across the varint width boundaries (64 and 8192 bytes of filler), where a minimal varint
    // would not fit: the filler length then takes one byte more than it needs.
    for (int n = 0; n < 9000; n += n < 200 ? 1 : (n > 8100 && n < 8300 ? 1 : 97)) {
      List<LogRecord> records = List.of(new LogRecord(5, null, new byte[n]), new LogRecord(6, new byte[] {1}, new byte[] {2}));
      ByteBuffer batch = RecordBatch.encode(records, (int) RecordBatch.sizeInBytes(records));
      int length = batch.remaining();
      assertEquals(List.of(0L), RecordBatch.erase(batch, Set.of(0L)), "value of " + n + " bytes");
      assertEquals(length, batch.remaining());
      assertEquals(2, RecordBatch.verify(batch.duplicate()));
      List<LogEntry> out = new ArrayList<>();
      RecordBatch.decode(batch.duplicate(), 0, Long.MAX_VALUE, 10, out);
      assertEquals(List.of(new LogEntry(1, 6, new byte[] {1}, new byte[] {2})), out, "value of " + n + " bytes");
    }
  }

  private static List<LogEntry> expected(List<LogEntry> all, Set<Long> erased) {
    return all.stream().filter(e -> !erased.contains(e.offset())).toList();
  }

  private String bytesOnDisk() throws IOException {
    StringBuilder all = new StringBuilder();
    try (Stream<Path> files = Files.walk(dir)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        all.append(new String(Files.readAllBytes(f), StandardCharsets.ISO_8859_1)).append('\n');
      }
    }
    return all.toString();
  }
}
