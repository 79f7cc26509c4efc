package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.lifecycle.AfterContainer;
import net.jqwik.api.lifecycle.BeforeContainer;
import org.apache.kafka.common.TopicPartition;

/**
 * Fuzzing the control socket's protocol (jqwik) against a running service: raw requests (any
 * bytes, valid requests mutated, produce requests with mutated event lines) each get exactly one
 * line back, a JSON object (a result, or {@code {"error": ...}} with a message); the service keeps
 * serving, and the log only ever grows by what a valid produce request appended. A failure prints
 * jqwik's seed; {@code @Property(seed = "...")} replays it.
 */
class ControlChannelFuzzTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String[] REQUESTS = {
      "{\"op\":\"status\"}",
      "{\"op\":\"pause\"}",
      "{\"op\":\"resume\"}",
      "{\"op\":\"produce\",\"topic\":\"messages\"}\n{\"text\":\"late again\",\"conversation\":\"c0\"}",
      "{\"op\":\"produce\",\"topic\":\"notes\"}\n{\"body\":\"eggs\",\"title\":\"shop\"}\n{\"body\":\"milk\"}",
  };
  private static Path dir;
  private static PocketTune service;

  @BeforeContainer
  static void start() throws Exception {
    dir = Files.createTempDirectory("pockettune-control-fuzz-");
    Path model = PipelineFixture.tinyPackage(dir, null, null);
    service = PocketTune.builder(dir.resolve("data")).model(model).threads(1).batch(2).maxIdle(Duration.ZERO)
        .pollInterval(Duration.ofMillis(5)).controlSocket(true).open();
    service.startTraining();
  }

  @AfterContainer
  static void stop() throws IOException {
    if (service != null) {
      service.close();
    }
  }

  @Property(tries = 300)
  void anyRequestGetsOneJsonLineAndTheServiceGoesOn(@ForAll("requests") byte[] request) throws Exception {
    long before = total(service.endOffsets());
    JsonNode answer = send(request);
    assertNotNull(answer);
    if (answer.has("error")) {
      assertTrue(!answer.get("error").asText().isBlank(), "an error says what: " + answer);
      assertEquals(before, total(service.endOffsets()), "a refused request appends nothing: " + answer);
    }
    JsonNode status = send("{\"op\":\"status\"}".getBytes(StandardCharsets.UTF_8));
    assertTrue(!status.has("error"), "the service still answers: " + status);
    assertTrue(total(service.endOffsets()) >= before, "nothing durable is lost");
  }

  /** A line without end is refused at the limit, not buffered whole; the service goes on. */
  @net.jqwik.api.Example
  void aLineLongerThanTheLimitIsRefusedAndTheServiceGoesOn() throws Exception {
    try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(dir.resolve("data").resolve("control.sock")))) {
      // The service stops reading at the limit and answers: write from another thread, so that
      // this one reads the answer while the writer runs into the closed connection.
      Thread writer = new Thread(() -> {
        byte[] chunk = new byte[64 * 1024];
        java.util.Arrays.fill(chunk, (byte) 'x');
        try {
          for (int i = 0; i < 4 * ControlChannel.MAX_LINE_CHARS / chunk.length; i++) {
            ByteBuffer b = ByteBuffer.wrap(chunk);
            while (b.hasRemaining()) {
              c.write(b);
            }
          }
          c.shutdownOutput();
        } catch (IOException closedByTheService) {
          // expected once the service has answered and closed
        }
      });
      writer.start();
      // Read the answer line, not to the end: the service closes with our bytes unread, which
      // resets the connection after the answer (as our own client, ControlChannel.call, reads it).
      String answer = new java.io.BufferedReader(new java.io.InputStreamReader(Channels.newInputStream(c),
          StandardCharsets.UTF_8)).readLine();
      writer.join(10_000);
      JsonNode node = JSON.readTree(answer);
      assertTrue(node.path("error").asText().contains("longer than " + ControlChannel.MAX_LINE_CHARS), answer);
    }
    JsonNode status = send("{\"op\":\"status\"}".getBytes(StandardCharsets.UTF_8));
    assertTrue(!status.has("error"), "the service still answers: " + status);
  }

  /** Events in the event topics (the dead-letter topic grows on its own as the service trains). */
  private static long total(Map<TopicPartition, Long> offsets) {
    return offsets.entrySet().stream().filter(e -> e.getKey().topic().equals("messages")
        || e.getKey().topic().equals("notes")).mapToLong(Map.Entry::getValue).sum();
  }

  /** Sends raw bytes, closes the sending side, and reads the whole answer: it must be one JSON line. */
  private static JsonNode send(byte[] request) throws IOException {
    try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(dir.resolve("data").resolve("control.sock")))) {
      ByteBuffer b = ByteBuffer.wrap(request);
      while (b.hasRemaining()) {
        c.write(b);
      }
      c.shutdownOutput();
      InputStream in = Channels.newInputStream(c);
      ByteArrayOutputStream all = new ByteArrayOutputStream();
      in.transferTo(all);
      String answer = all.toString(StandardCharsets.UTF_8);
      assertTrue(answer.endsWith("\n") && answer.indexOf('\n') == answer.length() - 1, "one line: " + answer);
      JsonNode node = JSON.readTree(answer);
      assertTrue(node.isObject(), "a JSON object: " + answer);
      return node;
    }
  }

  @Provide
  Arbitrary<byte[]> requests() {
    Arbitrary<byte[]> random = Arbitraries.bytes().array(byte[].class).ofMaxSize(200);
    Arbitrary<byte[]> mutated = Combinators.combine(Arbitraries.of(REQUESTS), Arbitraries.integers().between(0, 3),
        Arbitraries.integers().between(0, 1 << 16), Arbitraries.of("{}[]\":,\n x1é\u0000".toCharArray()))
        .as((r, kind, where, ch) -> InputFuzzTest.mutate(r, kind, where, ch).getBytes(StandardCharsets.UTF_8));
    return Arbitraries.frequencyOf(net.jqwik.api.Tuple.of(1, random), net.jqwik.api.Tuple.of(3, mutated),
        net.jqwik.api.Tuple.of(1, Arbitraries.of(REQUESTS).map(r -> r.getBytes(StandardCharsets.UTF_8))));
  }
}
