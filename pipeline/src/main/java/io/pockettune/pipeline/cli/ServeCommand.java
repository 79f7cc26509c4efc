package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune serve}: trains in the background of this process until SIGTERM (or Ctrl-C),
 * which stops it cleanly through a shutdown hook, serving other processes on the data directory's
 * control socket. {@code --config FILE} is a properties file whose keys are the long option names
 * without dashes ({@code batch=16}, {@code duty-cycle=0.5}); options given on the command line win.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = "Run ingestion and training in the background: train on every event appended, exactly once.")
final class ServeCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--config", paramLabel = "FILE", description = "properties file with option defaults")
  Path config;

  @Option(names = "--encrypt", description = "when this creates the data directory, encrypt its log and snapshots"
      + " at rest (AES-256-GCM) with a new random key kept in <data-dir>/key (mode 0600); an encrypted"
      + " directory is detected without this flag")
  boolean encrypt;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  Integer threads;

  @Option(names = "--batch", description = "examples per step, the count trigger (default: 16)")
  Integer batch;

  @Option(names = "--batch-tokens", description = "token budget per step (default: none)")
  Long batchTokens;

  @Option(names = "--max-wait-ms", description = "longest a partial batch waits before it trains (default: none)")
  Long maxWaitMs;

  @Option(names = "--max-tokens", description = "tokens per example (default: the model card's max_tokens)")
  Integer maxTokens;

  @Option(names = "--duty-cycle", description = "largest fraction of time spent training, in (0, 1] (default: 1)")
  Double dutyCycle;

  @Option(names = "--max-memory-mb", description = "pause training while the resident set is above this (default: none)")
  Long maxMemoryMb;

  @Option(names = "--checkpoint-every", description = "steps between checkpoints (default: 500)")
  Integer checkpointEvery;

  @Option(names = "--snapshot-every", description = "steps between parameter snapshots (default: 500)")
  Integer snapshotEvery;

  @Option(names = "--lr", description = "learning rate (default: the model card's lr)")
  Float lr;

  @Option(names = "--eps", description = "perturbation scale (default: the model card's eps)")
  Float eps;

  @Option(names = "--seed", description = "run seed (default: 42)")
  Long seed;

  @Option(names = "--max-idle-ms", description = "how long an empty partition holds back the time order (default:"
      + " 200); training stays caught up for 30 s, or this if longer, before an 'idle' checkpoint at new steps")
  Long maxIdleMs;

  @Option(names = "--retention-hours", description = "delete log segments whose newest event is older than this"
      + " (default: keep everything); events deleted before training read them are skipped, with a warning")
  Double retentionHours;

  @Option(names = "--retention-mb", description = "delete the oldest log segments while a partition holds more than"
      + " this (default: no limit)")
  Long retentionMb;

  @Option(names = "--kafka-listener", paramLabel = "HOST:PORT",
      description = "also serve Kafka clients (the Kafka protocol, SASL/PLAIN) on this address (default: off)")
  String kafkaListener;

  @Option(names = "--kafka-listener-allow-remote",
      description = "let --kafka-listener use an address other machines can reach (the password travels in the clear)")
  boolean kafkaListenerAllowRemote;

  @Option(names = "--exit-when-idle", description = "stop once every acknowledged event is consumed (for scripts and tests)")
  boolean exitWhenIdle;

  @Option(names = "--print-steps", hidden = true, description = "print 'committed N' after every commit (for tests)")
  boolean printSteps;

  @Override
  public Integer call() throws Exception {
    Properties p = new Properties();
    if (config != null) {
      if (!Files.isRegularFile(config)) {
        throw new IllegalArgumentException("--config " + config + " is not a file: give a properties file such as batch=16");
      }
      try (InputStream in = Files.newInputStream(config)) {
        p.load(in);
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    PocketTune.Builder b = common.builder().encrypt(encrypt).model(modelOption.model)
        .threads(pick(threads, p, "threads", Runtime.getRuntime().availableProcessors()))
        .batch(pick(batch, p, "batch", 16))
        .batchTokens(pick(batchTokens, p, "batch-tokens", Long.MAX_VALUE))
        .dutyCycle(pick(dutyCycle, p, "duty-cycle", 1.0))
        .maxMemoryMb(pick(maxMemoryMb, p, "max-memory-mb", 0L))
        .checkpointEvery(pick(checkpointEvery, p, "checkpoint-every", 500))
        .snapshotEvery(pick(snapshotEvery, p, "snapshot-every", 500))
        .seed(pick(seed, p, "seed", 42L))
        .maxIdle(Duration.ofMillis(pick(maxIdleMs, p, "max-idle-ms", 200L)))
        .exitWhenIdle(exitWhenIdle || Boolean.parseBoolean(p.getProperty("exit-when-idle", "false")))
        .metricsCsv(true)
        .controlSocket(true)
        .progress(err)
        .stepLog(printSteps ? out : null);
    String listen = pick(kafkaListener, p, "kafka-listener", (String) null);
    if (listen != null) {
      b.kafkaListener(address(listen), kafkaListenerAllowRemote
          || Boolean.parseBoolean(p.getProperty("kafka-listener-allow-remote", "false")));
    } else if (kafkaListenerAllowRemote) {
      throw new IllegalArgumentException("--kafka-listener-allow-remote needs --kafka-listener HOST:PORT");
    }
    double hours = pick(retentionHours, p, "retention-hours", -1.0);
    long mb = pick(retentionMb, p, "retention-mb", -1L);
    if (hours != -1 || mb != -1) {
      if ((hours != -1 && !(hours > 0)) || (mb != -1 && mb < 1)) {
        throw new IllegalArgumentException("--retention-hours and --retention-mb must be positive");
      }
      b.logConfig(io.pockettune.ingest.LogConfig.defaults().withRetention(hours == -1 ? -1 : (long) (hours * 3_600_000),
          mb == -1 ? -1 : mb * 1024 * 1024));
    }
    long wait = pick(maxWaitMs, p, "max-wait-ms", Long.MAX_VALUE);
    if (wait != Long.MAX_VALUE) {
      b.maxWait(Duration.ofMillis(wait));
    }
    Integer tokens = pick(maxTokens, p, "max-tokens", (Integer) null);
    if (tokens != null) {
      b.maxTokens(tokens);
    }
    Float rate = pick(lr, p, "lr", (Float) null);
    if (rate != null) {
      b.learningRate(rate);
    }
    Float scale = pick(eps, p, "eps", (Float) null);
    if (scale != null) {
      b.eps(scale);
    }
    PocketTune tune = b.open();
    Thread hook = new Thread(() -> {
      try {
        tune.close();
      } catch (IOException | RuntimeException e) {
        err.println("pockettune serve: could not stop cleanly: " + PocketTune.message(e));
      }
    }, "pockettune-shutdown");
    try {
      tune.startTraining();
      Runtime.getRuntime().addShutdownHook(hook);
      synchronized (out) {
        out.println("serving " + tune.dataDirectory() + " with " + tune.model().get("package") + " (control socket "
            + tune.dataDirectory().resolve("control.sock") + ")");
        tune.kafkaListenerAddress().ifPresent(a -> out.println("Kafka listener on " + a.getAddress().getHostAddress()
            + ":" + a.getPort() + " (SASL/PLAIN; username and password in "
            + tune.dataDirectory().resolve("kafka-credentials") + ")"));
        out.flush();
      }
      tune.awaitTrainingStopped();
    } catch (IOException | RuntimeException e) {
      tune.close();
      throw e;
    }
    boolean signalled = false;
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      signalled = true; // the hook is running or ran: it closes the runtime
    }
    if (signalled) {
      out.println("stopped on request: the step in flight committed, the store and the log closed cleanly");
      out.flush();
      return 0;
    }
    Throwable failure = tune.trainingFailure();
    String last = failure == null ? tune.status().toString() : null;
    tune.close();
    if (failure != null) {
      throw new IllegalStateException("training stopped: " + PocketTune.message(failure), failure);
    }
    out.println("stopped: every acknowledged event is consumed");
    if (common.json) {
      out.println(last);
    }
    return 0;
  }

  /** Parses HOST:PORT, with IPv6 hosts in brackets ([::1]:9092). */
  static java.net.InetSocketAddress address(String value) {
    String v = value.strip();
    int colon = v.lastIndexOf(':');
    String host = colon < 0 ? "" : v.substring(0, colon);
    if (host.startsWith("[") && host.endsWith("]")) {
      host = host.substring(1, host.length() - 1);
    }
    int port;
    try {
      port = colon < 0 ? -1 : Integer.parseInt(v.substring(colon + 1));
    } catch (NumberFormatException e) {
      port = -1;
    }
    if (host.isEmpty() || port < 0 || port > 65535) {
      throw new IllegalArgumentException("--kafka-listener '" + value + "' is not HOST:PORT: give an address such as"
          + " 127.0.0.1:9092 (port 0 picks a free one)");
    }
    java.net.InetSocketAddress a = new java.net.InetSocketAddress(host, port);
    if (a.isUnresolved()) {
      throw new IllegalArgumentException("--kafka-listener host '" + host + "' does not resolve: give an IP address"
          + " such as 127.0.0.1");
    }
    return a;
  }

  @SuppressWarnings("unchecked")
  private static <T> T pick(T given, Properties p, String key, T otherwise) {
    if (given != null) {
      return given;
    }
    String v = p.getProperty(key);
    if (v == null) {
      return otherwise;
    }
    try {
      String t = v.strip();
      Object parsed = key.equals("lr") || key.equals("eps") ? Float.valueOf(t)
          : key.equals("max-tokens") ? Integer.valueOf(t)
          : otherwise instanceof Integer ? Integer.valueOf(t)
          : otherwise instanceof Long ? Long.valueOf(t)
          : otherwise instanceof Double ? Double.valueOf(t)
          : otherwise instanceof Float ? (Object) Float.valueOf(t) : t;
      return (T) parsed;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("the config key '" + key + "' has the value '" + v + "', which is not a number");
    }
  }
}
