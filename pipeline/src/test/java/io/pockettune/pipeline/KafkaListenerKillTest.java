package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogEntry;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.ModelStore;
import io.pockettune.store.SourcePartition;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * serve with the Kafka listener, SIGKILLed at a random moment while kcat (librdkafka, idempotent,
 * acks=all) produces, then restarted on the same port while kcat retries: every message lands in the
 * log exactly once and in order (the idempotent producer state survives the restart), and the
 * service trains each once.
 */
class KafkaListenerKillTest {
  private static final int TRIALS = 10;
  private static final int MESSAGES = 2000;
  private static final int BATCH = 50;
  /** Messages are fed to kcat in chunks, so that the kill falls while it produces. */
  private static final int CHUNK = 25;
  private static final long CHUNK_PAUSE_MS = 15;
  private static final Pattern DELIVERED = Pattern.compile("^% Message delivered to partition (\\d+) \\(offset (-?\\d+)\\).*");
  private static final Pattern TEXT = Pattern.compile("^message (\\d+) of trial \\d+ x$");

  @TempDir Path dir;

  @Test
  @Timeout(value = 300, unit = TimeUnit.SECONDS)
  void serve_killedWhileKcatProduces_everyDeliveredMessageOnceInOrder() throws Exception {
    Kcat.assumeInstalled();
    SplittableRandom random = new SplittableRandom(2026);
    List<String> report = new ArrayList<>();
    for (int trial = 0; trial < TRIALS; trial++) {
      report.add(trial(trial, random.nextInt(1, MESSAGES * 3 / 4), random.nextInt(20)));
    }
    System.out.println("Kafka listener SIGKILL trials (" + MESSAGES + " messages each):\n  " + String.join("\n  ", report));
  }

  /** Kills serve {@code extraMs} after kcat reported {@code killAt} messages delivered: mid-production. */
  private String trial(int trial, int killAt, int extraMs) throws Exception {
    Path data = dir.resolve("trial-" + trial);
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    Path stderr = dir.resolve("serve-" + trial + ".err");
    int port = freePort();
    List<String> serveArgs = List.of("--threads", "1", "--batch", Integer.toString(BATCH), "--max-tokens", "64",
        "--max-idle-ms", "0", "--checkpoint-every", "10", "--snapshot-every", "8",
        "--kafka-listener", "127.0.0.1:" + port, "--print-steps");

    int deliveredAtKill;
    long killedAfterMs;
    long duplicates;
    Kcat.Run kcat;
    Set<Long> offsets = new HashSet<>();
    long t0 = System.nanoTime();
    List<Long> marks = new ArrayList<>();
    try (ServeProcess first = ServeProcess.start(data, stderr, serveArgs)) {
      assertEquals(port, first.awaitListenerPort());
      marks.add(System.nanoTime() - t0);
      Properties credentials = Kcat.credentials(data);
      Process producer = new ProcessBuilder(Kcat.command(port, credentials, "-P", "-E", "-t", Topics.MESSAGES, "-p", "0",
          "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "reconnect.backoff.ms=50",
          "-X", "reconnect.backoff.max.ms=200", "-X", "message.timeout.ms=60000", "-v", "-v", "-v")).start();
      AtomicInteger delivered = new AtomicInteger();
      ConcurrentLinkedQueue<String> kcatErr = new ConcurrentLinkedQueue<>();
      Thread reports = new Thread(() -> {
        try (BufferedReader err = new BufferedReader(new InputStreamReader(producer.getErrorStream(), StandardCharsets.UTF_8))) {
          for (String line; (line = err.readLine()) != null; ) {
            Matcher m = DELIVERED.matcher(line);
            if (m.matches()) {
              synchronized (offsets) {
                offsets.add(Long.parseLong(m.group(2)));
              }
              delivered.incrementAndGet();
            } else {
              kcatErr.add(line);
            }
          }
        } catch (IOException ignored) {
          // kcat is gone
        }
      }, "kcat stderr");
      reports.start();
      Thread feeder = new Thread(() -> feed(producer.getOutputStream(), trial), "kcat stdin");
      feeder.start();

      long produceStart = System.nanoTime();
      while (delivered.get() < killAt) {
        assertTrue(producer.isAlive() && System.nanoTime() - produceStart < TimeUnit.SECONDS.toNanos(30),
            () -> "kcat delivered " + delivered.get() + " messages: " + String.join("\n", kcatErr));
        Thread.sleep(1);
      }
      Thread.sleep(extraMs);
      deliveredAtKill = delivered.get();
      killedAfterMs = (System.nanoTime() - produceStart) / 1_000_000;
      first.kill();
      try (ServeProcess second = ServeProcess.start(data, stderr, serveArgs)) {
        assertEquals(port, second.awaitListenerPort(), "restarted on the same port");
        marks.add(System.nanoTime() - t0);
        feeder.join(30_000);
        boolean exited = producer.waitFor(60, TimeUnit.SECONDS);
        if (!exited) {
          producer.destroyForcibly().waitFor();
        }
        reports.join(10_000);
        String err = String.join("\n", kcatErr);
        assertTrue(exited, "kcat finished after the restart: " + err);
        kcat = new Kcat.Run(producer.exitValue(), "", err);
        assertEquals(0, kcat.exit(), "kcat delivered everything: " + err);
        assertEquals(MESSAGES, delivered.get(), "one delivery report a message: " + err);
        marks.add(System.nanoTime() - t0);
        second.awaitCommitted(MESSAGES / BATCH, 60_000);
        marks.add(System.nanoTime() - t0);
        second.stop(data);
        marks.add(System.nanoTime() - t0);
      }
    }

    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"));
        ModelStore store = ModelStore.openReadOnly(data.resolve("store"))) {
      EventSerde serde = new EventSerde(SchemaStore.open(data.resolve("schemas")));
      List<Integer> sequence = new ArrayList<>();
      for (LogEntry e : log.read(Topics.MESSAGES, 0, 0, 2 * MESSAGES)) {
        Matcher m = TEXT.matcher(((Message) serde.deserialize(e.value())).getText());
        assertTrue(m.matches(), "a message kcat sent: " + e);
        sequence.add(Integer.parseInt(m.group(1)));
      }
      duplicates = sequence.size() - sequence.stream().distinct().count();
      List<Integer> expected = new ArrayList<>();
      for (int i = 0; i < MESSAGES; i++) {
        expected.add(i);
      }
      assertEquals(0, duplicates, "trial " + trial + ": no message twice (idempotent de-dup across the restart)");
      assertEquals(expected, sequence, "trial " + trial + ": every delivered message once, in order");
      assertEquals(0, log.endOffset(Topics.MESSAGES, 1), "all sent to partition 0");

      Map<SourcePartition, Long> committed = store.committedOffsets();
      for (TopicPartition tp : Topics.sources()) {
        assertEquals(log.endOffset(tp.topic(), tp.partition()),
            committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()), 0L), "committed to the end of " + tp);
      }
      assertEquals(MESSAGES / BATCH, store.lastStep(), "one step a batch: no message trained twice");
      long trained = 0;
      for (long s = 1; s <= store.lastStep(); s++) {
        trained += store.step(s).orElseThrow().batchSize();
      }
      assertEquals(MESSAGES, trained);
    }
    return "trial " + trial + ": killed " + killedAfterMs + " ms into producing, " + deliveredAtKill + " delivered; "
        + MESSAGES + " delivered in all, " + offsets.size() + " distinct offsets reported, " + duplicates
        + " duplicates in the log; ms since start: listener, restarted, kcat done, trained, stopped " + marks.stream().map(n -> n / 1_000_000).toList();
  }

  /** Writes the trial's messages to kcat's standard input in paced chunks, then closes it. */
  private static void feed(OutputStream stdin, int trial) {
    try (stdin) {
      for (int i = 0; i < MESSAGES; i += CHUNK) {
        StringBuilder chunk = new StringBuilder();
        for (int j = i; j < Math.min(MESSAGES, i + CHUNK); j++) {
          chunk.append("{\"text\":\"message ").append(j).append(" of trial ").append(trial).append(" x\"}\n");
        }
        stdin.write(chunk.toString().getBytes(StandardCharsets.UTF_8));
        stdin.flush();
        Thread.sleep(CHUNK_PAUSE_MS);
      }
    } catch (IOException | InterruptedException e) {
      throw new AssertionError("feeding kcat failed", e);
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }
}
