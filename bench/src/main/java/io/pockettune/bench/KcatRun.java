package io.pockettune.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One {@code kcat -P} run: a file of lines, one event per line, given to kcat as its standard
 * input, timed from process start to exit. kcat (librdkafka) exits once stdin has ended and every
 * message is delivered or failed, so the time covers delivery with the acks asked for. The file is
 * written before the clock starts, so no Java pipe is measured.
 */
final class KcatRun {
  /** Debian's kcat; the system property {@code pockettune.bench.kcat} names another. */
  static final Path KCAT = Path.of(System.getProperty("pockettune.bench.kcat", "/usr/bin/kcat"));
  private static final long TIMEOUT_SECONDS = 300;

  /**
   * @param nanos from the start of the process to its exit
   * @param stderr what kcat wrote to standard error
   */
  record Result(int events, long nanos, String stderr) {
    double perSecond() {
      return events * 1e9 / nanos;
    }
  }

  private KcatRun() {}

  /** @return null if kcat can be run here, otherwise why not */
  static String unavailable() {
    if (!Files.isExecutable(KCAT)) {
      return KCAT + " is not installed (Debian: apt-get install kcat)";
    }
    try {
      Process p = new ProcessBuilder(KCAT.toString(), "-V").redirectErrorStream(true).start();
      p.getInputStream().readAllBytes();
      if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
        return KCAT + " -V did not succeed";
      }
    } catch (IOException e) {
      return KCAT + " cannot be started: " + e.getMessage();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return "interrupted while starting " + KCAT;
    }
    return null;
  }

  /** @return kcat's and librdkafka's versions, from {@code kcat -V}, such as "kcat 1.7.1, librdkafka 2.0.2" */
  static String version() throws IOException, InterruptedException {
    Process p = new ProcessBuilder(KCAT.toString(), "-V").redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    p.waitFor();
    Matcher m = Pattern.compile("Version (\\S+) .*librdkafka (\\S+)").matcher(out);
    return m.find() ? "kcat " + m.group(1) + ", librdkafka " + m.group(2) : "unknown";
  }

  /** Writes {@code lines} to {@code file}, one per line, UTF-8. */
  static void writeLines(Path file, List<String> lines) throws IOException {
    Files.write(file, lines, StandardCharsets.UTF_8);
  }

  /**
   * Runs {@code kcat -P -b bootstrap -t topic -X acks=all} with {@code extra} arguments and
   * {@code input} as standard input.
   *
   * @param events the number of lines in {@code input}
   * @throws IOException if kcat fails to start or exits with a status other than 0
   */
  static Result produce(String bootstrap, String topic, List<String> extra, Path input, int events, Path stderrFile)
      throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(KCAT.toString(), "-P", "-b", bootstrap, "-t", topic, "-X", "acks=all"));
    command.addAll(extra);
    ProcessBuilder builder = new ProcessBuilder(command)
        .redirectInput(input.toFile())
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(stderrFile.toFile());
    long start = System.nanoTime();
    Process p = builder.start();
    if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new IOException("kcat to " + bootstrap + " did not finish within " + TIMEOUT_SECONDS + " s");
    }
    long nanos = System.nanoTime() - start;
    String stderr = Files.readString(stderrFile, StandardCharsets.UTF_8).strip();
    if (p.exitValue() != 0) {
      throw new IOException("kcat to " + bootstrap + " exited with status " + p.exitValue() + ": " + stderr);
    }
    return new Result(events, nanos, stderr);
  }
}
