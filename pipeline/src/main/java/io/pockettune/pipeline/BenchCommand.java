package io.pockettune.pipeline;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code pockettune bench <area>}: benchmarks that compare against a baseline in the same run. */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = "Measure the trainer, the log and the store against baselines in the same run.",
    subcommands = {BenchTrainerCommand.class, BenchIngestCommand.class, BenchStoreCommand.class})
final class BenchCommand implements Runnable {
  @Spec CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }
}
