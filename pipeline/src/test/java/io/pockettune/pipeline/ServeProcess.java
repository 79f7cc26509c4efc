package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * {@code pockettune serve} in a child JVM (so that it can be killed), its standard output read by a
 * thread into lines (so that it never blocks on a full pipe), its standard error in a file.
 */
final class ServeProcess implements AutoCloseable {
  private static final Pattern LISTENER = Pattern.compile("^Kafka listener on 127\\.0\\.0\\.1:(\\d+) \\(SASL/PLAIN; .*");
  private static final String EOF = "\u0000end of output";

  private final Process process;
  private final Path stderr;
  private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
  private volatile boolean ended;
  private long lastCommitted;

  private ServeProcess(Process process, Path stderr) {
    this.process = process;
    this.stderr = stderr;
    Thread pump = new Thread(() -> {
      try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = out.readLine()) != null; ) {
          lines.add(line);
        }
      } catch (IOException ignored) {
        // the process is gone
      } finally {
        lines.add(EOF);
      }
    }, "serve stdout");
    pump.setDaemon(true);
    pump.start();
  }

  /** Starts serve on {@code data} with {@code args} after {@code --data-dir}; stderr goes to {@code stderr}. */
  static ServeProcess start(Path data, Path stderr, List<String> args) throws IOException {
    String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
    String classpath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    List<String> command = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED", "-DOPT_OUT_TRACKING=true",
        "-Dai.djl.offline=true", "-cp", classpath, io.pockettune.pipeline.cli.Main.class.getName(), "serve",
        "--data-dir", data.toString()));
    command.addAll(args);
    return new ServeProcess(new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.appendTo(stderr.toFile()))
        .start(), stderr);
  }

  /** @return the next line of standard output; fails if none comes within the timeout or output ended */
  String nextLine(long timeoutMs) throws InterruptedException {
    String line = ended ? EOF : lines.poll(timeoutMs, TimeUnit.MILLISECONDS);
    if (line == null || line == EOF) {
      ended |= line == EOF;
      throw new AssertionError((line == null ? "no output from serve in " + timeoutMs + " ms" : "serve's output ended")
          + "; its stderr:\n" + stderr());
    }
    return line;
  }

  /** Reads up to the {@code Kafka listener on 127.0.0.1:PORT} line. @return the port */
  int awaitListenerPort() throws InterruptedException {
    while (true) {
      Matcher m = LISTENER.matcher(nextLine(30_000));
      if (m.matches()) {
        return Integer.parseInt(m.group(1));
      }
    }
  }

  /** Reads {@code committed N} lines (of {@code --print-steps}) until N reaches {@code step}. @return N */
  long awaitCommitted(long step, long timeoutMs) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
    while (lastCommitted < step) {
      long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
      if (left <= 0) {
        throw new AssertionError("serve committed step " + lastCommitted + ", not " + step + ", in " + timeoutMs
            + " ms; its stderr:\n" + stderr());
      }
      String line = nextLine(left);
      if (line.startsWith("committed ")) {
        lastCommitted = Long.parseLong(line.substring("committed ".length()));
      }
    }
    return lastCommitted;
  }

  /**
   * Reads the {@code committed N} lines already printed, without waiting.
   *
   * @return the highest N printed so far
   */
  long committedSoFar() {
    for (String line; (line = lines.poll()) != null; ) {
      if (line == EOF) {
        ended = true;
        lines.add(EOF);
        break;
      }
      if (line.startsWith("committed ")) {
        lastCommitted = Math.max(lastCommitted, Long.parseLong(line.substring("committed ".length())));
      }
    }
    return lastCommitted;
  }

  /**
   * Freezes the process with SIGSTOP and returns once the kernel reports it stopped ({@code T} in
   * {@code /proc/<pid>/stat}): from then on it writes nothing, as if it had been killed.
   */
  void freeze() throws IOException, InterruptedException {
    signal("STOP");
    Path stat = Path.of("/proc", Long.toString(process.pid()), "stat");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (true) {
      String s = Files.readString(stat);
      char state = s.charAt(s.lastIndexOf(')') + 2);
      if (state == 'T' || state == 't') {
        return;
      }
      assertTrue(System.nanoTime() < deadline, "serve did not stop on SIGSTOP: " + s);
      Thread.sleep(1);
    }
  }

  /** Lets a frozen process go on (SIGCONT). */
  void thaw() throws IOException, InterruptedException {
    signal("CONT");
  }

  private void signal(String name) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", "-" + name, Long.toString(process.pid())).redirectErrorStream(true).start();
    String out = new String(kill.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertTrue(kill.waitFor(10, TimeUnit.SECONDS) && kill.exitValue() == 0, "kill -" + name + ": " + out);
  }

  /** SIGKILL, and waits for the process to be gone. */
  void kill() throws InterruptedException {
    process.destroyForcibly();
    process.waitFor();
  }

  /** SIGTERM; asserts the service stops in time and closes the log cleanly. */
  void stop(Path data) throws InterruptedException {
    process.destroy();
    assertTrue(process.waitFor(30, TimeUnit.SECONDS), "serve stopped on SIGTERM");
    assertTrue(Files.exists(data.resolve("log").resolve(".clean-shutdown")), () -> "serve closed the log cleanly: " + stderr());
  }

  String stderr() {
    try {
      return Files.readString(stderr);
    } catch (IOException e) {
      return "(no stderr: " + e.getMessage() + ")";
    }
  }

  @Override
  public void close() throws InterruptedException {
    if (process.isAlive()) {
      kill();
    }
  }
}
