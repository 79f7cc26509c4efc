package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.OwnerOnly;
import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * How the command line talks to a running service: a Unix-domain socket at {@code
 * <data-dir>/control.sock} (java.nio, Java 16+). Chosen over a TCP port because nothing outside
 * the device can reach it, it is the owner's only (0600 right after the bind, inside a data
 * directory PocketTune creates 0700), and its address is implied
 * by {@code --data-dir}; and over an inbox folder because {@code produce} gets its acknowledgement
 * (the offsets) back synchronously. Only the service can open the log (it holds the log's directory
 * lock), so {@code produce}, {@code status} and pause/resume go through here while it runs; when
 * no service answers, the commands open the log or the store themselves.
 *
 * <p>Protocol: the client sends one JSON object on one line ({@code {"op":"status"}}, {@code
 * "pause"}, {@code "resume"}, or {@code {"op":"produce","topic":"T"}} followed by one event per
 * line), closes its side, and reads one JSON line back; a failure is {@code {"error":"..."}}. A
 * line longer than {@link #MAX_LINE_CHARS} is refused, not buffered.
 * Requests are served one at a time on one daemon thread.
 */
final class ControlChannel implements AutoCloseable {

  /** Serves one request; {@code body} holds the lines after the request line. */
  @FunctionalInterface
  interface Handler {
    String handle(JsonNode request, BufferedReader body) throws Exception;
  }

  /** The longest request line, or line of a request's body, the service reads (1 Mi characters). */
  static final int MAX_LINE_CHARS = 1 << 20;

  static Path socketOf(Path dataDir) {
    return DataDirectory.at(dataDir).controlSocket();
  }

  private final Path socket;
  private final ServerSocketChannel server;
  private final Thread thread;
  private volatile boolean closed;

  /** Binds the socket (replacing a stale one: the caller holds the data directory's locks) and starts serving. */
  ControlChannel(Path socket, Handler handler) throws IOException {
    this.socket = socket;
    Files.deleteIfExists(socket);
    server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
    server.bind(UnixDomainSocketAddress.of(socket));
    try {
      OwnerOnly.restrict(socket);
    } catch (IOException e) {
      server.close();
      Files.deleteIfExists(socket);
      throw e;
    }
    thread = new Thread(() -> serve(handler), "pockettune-control");
    thread.setDaemon(true);
    thread.start();
  }

  private void serve(Handler handler) {
    while (!closed) {
      try (SocketChannel client = server.accept();
          BufferedReader in = new LimitedLineReader(new InputStreamReader(Channels.newInputStream(client),
              StandardCharsets.UTF_8), MAX_LINE_CHARS);
          Writer out = new BufferedWriter(new OutputStreamWriter(Channels.newOutputStream(client), StandardCharsets.UTF_8))) {
        String response;
        try {
          String line = in.readLine();
          response = line == null ? error("empty request") : handler.handle(EventJson.parseObject(line), in);
        } catch (Exception e) {
          response = error(PocketTune.message(e));
        }
        out.write(response);
        out.write('\n');
        out.flush();
      } catch (IOException e) {
        if (!closed) {
          org.slf4j.LoggerFactory.getLogger(ControlChannel.class).warn("control request failed: {}", e.toString());
        }
      }
    }
  }

  static String error(String message) {
    return new JsonLine().put("error", message).toString();
  }

  /**
   * Sends a request to the service of a data directory.
   *
   * @return its JSON response, or empty when no service listens there
   * @throws IllegalStateException when the service answered with an error
   */
  static Optional<JsonNode> call(Path dataDir, String request, Iterable<String> body) throws IOException {
    Path socket = socketOf(dataDir);
    if (!Files.exists(socket)) {
      return Optional.empty();
    }
    SocketChannel channel;
    try {
      channel = SocketChannel.open(UnixDomainSocketAddress.of(socket));
    } catch (IOException e) {
      return Optional.empty(); // a socket file left by a service that died: nobody listens
    }
    try (channel) {
      Writer out = new BufferedWriter(new OutputStreamWriter(Channels.newOutputStream(channel), StandardCharsets.UTF_8));
      out.write(request);
      out.write('\n');
      for (String line : body) {
        out.write(line);
        out.write('\n');
      }
      out.flush();
      channel.shutdownOutput();
      BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel), StandardCharsets.UTF_8));
      String response = in.readLine();
      if (response == null) {
        throw new IllegalStateException("the service in " + dataDir + " closed the connection without answering: it may be stopping; try again");
      }
      JsonNode node = EventJson.parseObject(response);
      if (node.has("error")) {
        throw new IllegalArgumentException(node.get("error").asText());
      }
      return Optional.of(node);
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
  }

  @Override
  public void close() throws IOException {
    closed = true;
    server.close();
    Files.deleteIfExists(socket);
  }
}
