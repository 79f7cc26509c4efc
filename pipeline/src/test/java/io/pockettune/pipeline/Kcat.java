package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

/**
 * kcat (librdkafka's command line client) against a {@code serve --kafka-listener}: a Kafka client
 * that is not Java. Tests that need it skip when it is not on the PATH; CI (.ci/run) installs it.
 */
final class Kcat {
  private Kcat() {}

  /** Skips the calling test unless {@code kcat} runs. */
  static void assumeInstalled() {
    boolean found;
    try {
      Process p = new ProcessBuilder("kcat", "-V").redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      found = p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
    } catch (IOException e) {
      found = false;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      found = false;
    }
    assumeTrue(found, "kcat is not on the PATH: install it (apt-get install kcat) to run the Kafka listener tests");
  }

  /** The username and password serve wrote to {@code <data-dir>/kafka-credentials}. */
  static Properties credentials(Path data) throws IOException {
    Properties p = new Properties();
    try (InputStream in = Files.newInputStream(data.resolve("kafka-credentials"))) {
      p.load(in);
    }
    return p;
  }

  /** A kcat command line reaching the listener on {@code port} through SASL/PLAIN, then {@code args}. */
  static List<String> command(int port, String username, String password, String... args) {
    List<String> c = new ArrayList<>(List.of("kcat", "-b", "127.0.0.1:" + port,
        "-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanisms=PLAIN",
        "-X", "sasl.username=" + username, "-X", "sasl.password=" + password));
    c.addAll(List.of(args));
    return c;
  }

  static List<String> command(int port, Properties credentials, String... args) {
    return command(port, credentials.getProperty("username"), credentials.getProperty("password"), args);
  }

  /** One finished kcat run. */
  record Run(int exit, String out, String err) {}

  /** Runs kcat to the end, {@code input} on its standard input (may be null). */
  static Run run(List<String> command, String input, long timeoutSeconds) throws IOException, InterruptedException {
    Path out = Files.createTempFile("kcat-", ".out");
    Path err = Files.createTempFile("kcat-", ".err");
    try {
      Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
      try (var stdin = p.getOutputStream()) {
        if (input != null) {
          stdin.write(input.getBytes(StandardCharsets.UTF_8));
        }
      }
      if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        p.destroyForcibly().waitFor();
        throw new AssertionError("kcat did not finish in " + timeoutSeconds + " s: " + command + "\n" + Files.readString(err));
      }
      return new Run(p.exitValue(), Files.readString(out), Files.readString(err));
    } finally {
      Files.deleteIfExists(out);
      Files.deleteIfExists(err);
    }
  }
}
