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
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.ConcurrentHashMap;
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
 * acks=all) produces, then restarted on the same port while kcat retries, ten times over one data
 * directory (each restarted service is the next trial's victim, and each trial's kcat a new
 * producer): every message lands in the log exactly once and in order (the idempotent producer
 * state survives the restarts) and the service trains each once.
 */
class KafkaListenerKillTest {
  private static final int TRIALS = 10;
  private static final int MESSAGES = 2000;
  private static final int BATCH = 50;
  /** Messages are fed to kcat in chunks, so that the kill falls while it produces. */
  private static final int CHUNK = 25;
  private static final long CHUNK_PAUSE_MS = 15;
  private static final Pattern DELIVERED = Pattern.compile("^% Message delivered to partition (\\d+) \\(offset (-?\\d+)\\).*");
  private static final Pattern TEXT = Pattern.compile("^message (\\d+) of trial (\\d+) x$");

  @TempDir Path dir;

  @Test
  @Timeout(value = 300, unit = TimeUnit.SECONDS)
  void serve_killedWhileKcatProduces_everyDeliveredMessageOnceInOrder() throws Exception {
    Kcat.assumeInstalled();
    Path data = dir.resolve("data");
    Files.createDirectories(data.resolve("model"));
    Files.write(data.resolve("model").resolve("base.onnx"), PipelineFixture.MODEL);
    Path stderr = dir.resolve("serve.err");
    int port = freePort();
    List<String> serveArgs = List.of("--threads", "1", "--batch", Integer.toString(BATCH), "--max-tokens", "64",
        "--max-idle-ms", "0", "--checkpoint-every", "10", "--snapshot-every", "8",
        "--kafka-listener", "127.0.0.1:" + port, "--print-steps");
    SplittableRandom random = new SplittableRandom(2026);
    List<String> report = new ArrayList<>();
    ServeProcess serve = ServeProcess.start(data, stderr, serveArgs);
    try {
      assertEquals(port, serve.awaitListenerPort());
      Properties credentials = Kcat.credentials(data);
      for (int trial = 0; trial < TRIALS; trial++) {
        int killAt = random.nextInt(1, MESSAGES * 3 / 4);
        Process producer = new ProcessBuilder(Kcat.command(port, credentials, "-P", "-E", "-t", Topics.MESSAGES,
            "-p", "0", "-X", "acks=all", "-X", "enable.idempotence=true", "-X", "reconnect.backoff.ms=50",
            "-X", "reconnect.backoff.max.ms=200", "-X", "message.timeout.ms=60000", "-v", "-v", "-v")).start();
        AtomicInteger delivered = new AtomicInteger();
        Set<Long> offsets = ConcurrentHashMap.newKeySet();
        ConcurrentLinkedQueue<String> kcatErr = new ConcurrentLinkedQueue<>();
        Thread reports = new Thread(() -> {
          try (BufferedReader err = new BufferedReader(new InputStreamReader(producer.getErrorStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = err.readLine()) != null; ) {
              Matcher m = DELIVERED.matcher(line);
              if (m.matches()) {
                offsets.add(Long.parseLong(m.group(2)));
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
        int t = trial;
        Thread feeder = new Thread(() -> feed(producer.getOutputStream(), t), "kcat stdin");
        feeder.start();

        // Kill once kcat reported killAt deliveries, a few milliseconds later: mid-production.
        long produceStart = System.nanoTime();
        while (delivered.get() < killAt) {
          assertTrue(producer.isAlive() && System.nanoTime() - produceStart < TimeUnit.SECONDS.toNanos(30),
              () -> "kcat delivered " + delivered.get() + " messages: " + String.join("\n", kcatErr));
          Thread.sleep(1);
        }
        Thread.sleep(random.nextInt(20));
        int deliveredAtKill = delivered.get();
        long killedAfterMs = (System.nanoTime() - produceStart) / 1_000_000;
        serve.kill();
        long restartStart = System.nanoTime();
        serve = ServeProcess.start(data, stderr, serveArgs);
        assertEquals(port, serve.awaitListenerPort(), "restarted on the same port");
        long restartMs = (System.nanoTime() - restartStart) / 1_000_000;

        feeder.join(30_000);
        boolean exited = producer.waitFor(60, TimeUnit.SECONDS);
        if (!exited) {
          producer.destroyForcibly().waitFor();
        }
        reports.join(10_000);
        String err = String.join("\n", kcatErr);
        assertTrue(exited, "trial " + trial + ": kcat finished after the restart: " + err);
        assertEquals(0, producer.exitValue(), "trial " + trial + ": kcat delivered everything: " + err);
        assertEquals(MESSAGES, delivered.get(), "trial " + trial + ": one delivery report a message: " + err);
        report.add("trial " + trial + ": killed " + killedAfterMs + " ms into producing with " + deliveredAtKill
            + " delivered, listening again after " + restartMs + " ms; " + delivered.get() + " delivered in all, "
            + offsets.size() + " distinct offsets reported");
      }
      serve.awaitCommitted(TRIALS * MESSAGES / BATCH, 120_000);
      serve.stop(data);
    } finally {
      serve.close();
    }

    try (EmbeddedLog log = EmbeddedLog.open(data.resolve("log"));
        ModelStore store = ModelStore.openReadOnly(data.resolve("store"))) {
      EventSerde serde = new EventSerde(SchemaStore.open(data.resolve("schemas")));
      List<String> sequence = new ArrayList<>();
      for (LogEntry e : log.read(Topics.MESSAGES, 0, 0, 2 * TRIALS * MESSAGES)) {
        String text = ((Message) serde.deserialize(e.value())).getText();
        assertTrue(TEXT.matcher(text).matches(), "a message kcat sent: " + text);
        sequence.add(text);
      }
      List<String> expected = new ArrayList<>();
      for (int trial = 0; trial < TRIALS; trial++) {
        for (int i = 0; i < MESSAGES; i++) {
          expected.add(text(i, trial));
        }
        long inLog = 0;
        for (String s : sequence) {
          inLog += s.endsWith(" of trial " + trial + " x") ? 1 : 0;
        }
        report.set(trial, report.get(trial) + ", " + (inLog - MESSAGES) + " duplicates in the log");
      }
      System.out.println("Kafka listener SIGKILL trials (" + MESSAGES + " messages each):\n  " + String.join("\n  ", report));
      assertEquals(0, sequence.size() - sequence.stream().distinct().count(),
          "no message twice (idempotent de-dup across restarts): " + report);
      assertEquals(expected, sequence, "every delivered message once, in order");
      assertEquals(0, log.endOffset(Topics.MESSAGES, 1), "all sent to partition 0");

      Map<SourcePartition, Long> committed = store.committedOffsets();
      for (TopicPartition tp : Topics.sources()) {
        assertEquals(log.endOffset(tp.topic(), tp.partition()),
            committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()), 0L), "committed to the end of " + tp);
      }
      assertEquals(TRIALS * MESSAGES / BATCH, store.lastStep(), "one step a batch: no message trained twice");
      long trained = 0;
      for (long s = 1; s <= store.lastStep(); s++) {
        trained += store.step(s).orElseThrow().batchSize();
      }
      assertEquals(TRIALS * MESSAGES, trained);
    }
  }

  private static String text(int i, int trial) {
    return "message " + i + " of trial " + trial + " x";
  }

  /** Writes the trial's messages to kcat's standard input in paced chunks, then closes it. */
  private static void feed(OutputStream stdin, int trial) {
    try (stdin) {
      for (int i = 0; i < MESSAGES; i += CHUNK) {
        StringBuilder chunk = new StringBuilder();
        for (int j = i; j < Math.min(MESSAGES, i + CHUNK); j++) {
          chunk.append("{\"text\":\"").append(text(j, trial)).append("\"}\n");
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
