package io.pockettune.pipeline;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** Measure the embedded log against a Kafka broker. Not built yet: planned in issue #4. */
@Command(name = "ingest", mixinStandardHelpOptions = true, description = "Measure the embedded log against a Kafka broker. (not built yet)")
final class BenchIngestCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Unmatched List<String> ignored;

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("pockettune bench ingest is not built yet (planned in issue #4)");
    return 3;
  }
}
