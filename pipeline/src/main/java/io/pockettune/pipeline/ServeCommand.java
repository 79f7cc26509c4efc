package io.pockettune.pipeline;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Properties;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune serve}: runs the {@link Service} in the foreground of this process until
 * SIGTERM (or Ctrl-C), which stops it cleanly through a shutdown hook. {@code --config FILE} is a
 * properties file whose keys are the long option names without dashes ({@code batch=16},
 * {@code duty-cycle=0.5}); options given on the command line win.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = "Run ingestion and training in the background: train on every event appended, exactly once.")
final class ServeCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--config", paramLabel = "FILE", description = "properties file with option defaults")
  Path config;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  Integer threads;

  @Option(names = "--batch", description = "examples per step, the count trigger (default: 16)")
  Integer batch;

  @Option(names = "--batch-tokens", description = "token budget per step (default: none)")
  Long batchTokens;

  @Option(names = "--max-wait-ms", description = "longest a partial batch waits before it trains (default: none)")
  Long maxWaitMs;

  @Option(names = "--max-tokens", description = "tokens per example, the model's context (default: 128)")
  Integer maxTokens;

  @Option(names = "--duty-cycle", description = "largest fraction of time spent training, in (0, 1] (default: 1)")
  Double dutyCycle;

  @Option(names = "--max-memory-mb", description = "pause training while the resident set is above this (default: none)")
  Long maxMemoryMb;

  @Option(names = "--checkpoint-every", description = "steps between checkpoints (default: 500)")
  Integer checkpointEvery;

  @Option(names = "--snapshot-every", description = "steps between parameter snapshots (default: 500)")
  Integer snapshotEvery;

  @Option(names = "--lr", description = "learning rate (default: 1e-3)")
  Float lr;

  @Option(names = "--eps", description = "perturbation scale (default: 1e-3)")
  Float eps;

  @Option(names = "--seed", description = "run seed (default: 42)")
  Long seed;

  @Option(names = "--max-idle-ms", description = "how long an empty partition holds back the time order (default: 200)")
  Long maxIdleMs;

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
    Service.Settings s = new Service.Settings(
        pick(threads, p, "threads", Runtime.getRuntime().availableProcessors()),
        pick(batch, p, "batch", 16),
        pick(batchTokens, p, "batch-tokens", Long.MAX_VALUE),
        pick(maxWaitMs, p, "max-wait-ms", Long.MAX_VALUE),
        pick(maxTokens, p, "max-tokens", 128),
        pick(dutyCycle, p, "duty-cycle", 1.0),
        pick(maxMemoryMb, p, "max-memory-mb", 0L),
        pick(checkpointEvery, p, "checkpoint-every", 500),
        pick(snapshotEvery, p, "snapshot-every", 500),
        pick(lr, p, "lr", 1e-3f),
        pick(eps, p, "eps", 1e-3f),
        pick(seed, p, "seed", 42L),
        pick(maxIdleMs, p, "max-idle-ms", 200L),
        50,
        exitWhenIdle || Boolean.parseBoolean(p.getProperty("exit-when-idle", "false")),
        true);
    if (s.threads() < 1 || s.batch() < 1 || s.maxTokens() < 2 || s.checkpointEvery() < 0 || s.snapshotEvery() < 0
        || s.maxIdleMillis() < 0 || s.batchTokens() < 2 || s.maxWaitMillis() < 0) {
      throw new IllegalArgumentException("--threads and --batch must be positive, --max-tokens and --batch-tokens at"
          + " least 2, and --checkpoint-every, --snapshot-every, --max-idle-ms and --max-wait-ms not negative");
    }
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    Path dir = common.dataDir.toAbsolutePath();
    Service service = Service.start(dir, s, err, printSteps ? out : null);
    Thread hook = new Thread(() -> {
      try {
        service.close();
      } catch (IOException | RuntimeException e) {
        err.println("pockettune serve: could not stop cleanly: " + Main.oneLine(e));
      }
    }, "pockettune-shutdown");
    Runtime.getRuntime().addShutdownHook(hook);
    synchronized (out) {
      out.println("serving " + dir + " (control socket " + ControlChannel.socketOf(dir) + ")");
      out.flush();
    }
    service.awaitStop();
    boolean signalled = service.stopRequested();
    JsonLine last = null;
    if (!signalled) {
      last = service.status();
    }
    service.close();
    try {
      Runtime.getRuntime().removeShutdownHook(hook);
    } catch (IllegalStateException shuttingDown) {
      // the hook is running or ran: it closed the service
    }
    if (service.failure() != null) {
      throw new IllegalStateException("training stopped: " + Main.oneLine(service.failure()), service.failure());
    }
    if (signalled) {
      out.println("stopped on request: the step in flight committed, the store and the log closed cleanly");
      out.flush();
      return 0;
    }
    out.println("stopped: every acknowledged event is consumed");
    if (common.json) {
      out.println(last);
    }
    return 0;
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
      Object parsed = otherwise instanceof Integer ? Integer.valueOf(t)
          : otherwise instanceof Long ? Long.valueOf(t)
          : otherwise instanceof Double ? Double.valueOf(t)
          : otherwise instanceof Float ? (Object) Float.valueOf(t) : t;
      return (T) parsed;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("the config key '" + key + "' has the value '" + v + "', which is not a number");
    }
  }
}
