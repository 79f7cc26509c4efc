package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import io.pockettune.pipeline.TrajectoryEntry;
import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune pull --bootstrap-servers HOST:PORT --user ID}: makes the data directory's store
 * hold the trajectory the fleet job trained for one user ({@link PocketTune#pull}), each step
 * replayed and checked against the job's fingerprint; a second pull appends the new steps.
 */
@Command(name = "pull", mixinStandardHelpOptions = true,
    description = "Pull a user's model trained by the fleet job: replay and check its steps from a Kafka topic.")
final class PullCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--bootstrap-servers", required = true, paramLabel = "HOST:PORT",
      description = "the Kafka cluster the fleet job publishes to")
  String bootstrapServers;

  @Option(names = "--user", required = true, paramLabel = "ID", description = "the user id (the records' key)")
  String user;

  @Option(names = "--topic", paramLabel = "T", description = "the trajectory topic (default: ${DEFAULT-VALUE})")
  String topic = TrajectoryEntry.DEFAULT_TOPIC;

  @Option(names = "--timeout-ms", paramLabel = "N", description = "longest the topic may take to read (default: ${DEFAULT-VALUE})")
  long timeoutMs = 60_000;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    if (timeoutMs < 1) {
      throw new IllegalArgumentException("--timeout-ms must be positive, not " + timeoutMs);
    }
    PocketTune.PullResult r = PocketTune.pull(common.dataDir, modelOption.model,
        new PocketTune.PullOptions(bootstrapServers, topic, user, Map.of(), Duration.ofMillis(timeoutMs), threads));
    if (r.stepsPulled() == 0) {
      out.printf(Locale.ROOT, "user %s: no new steps on %s (the store already holds steps 1 to %d)%n", user, topic,
          r.lastStep());
    } else {
      out.printf(Locale.ROOT, "user %s: pulled %d steps from %s in %d ms, each replayed and checked; now at step %d%n",
          user, r.stepsPulled(), topic, r.millis(), r.lastStep());
    }
    out.printf("parameters sha256 %s%n", r.digest());
    if (common.json) {
      out.println(r.json());
    }
    return 0;
  }
}
