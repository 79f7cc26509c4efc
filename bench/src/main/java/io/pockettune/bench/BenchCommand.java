package io.pockettune.bench;

import java.io.PrintWriter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

/**
 * {@code pockettune bench <area>}: benchmarks that compare against a baseline in the same run.
 *
 * <p>The main class of {@code bench/target/pockettune-bench.jar}, which the {@code pockettune}
 * launcher runs when its first argument is {@code bench}: the benchmarks need an in-JVM Kafka broker
 * (and its Scala runtime) that the device runtime in {@code pipeline} must not ship. Run from the
 * repository root, e.g. {@code ./pockettune bench store --steps 2000 --json}.
 */
@Command(name = "pockettune bench", mixinStandardHelpOptions = true, version = "pockettune bench 0.1.0",
    description = "Measure the trainer, the log, the store and inference against baselines in the same run.",
    subcommands = {BenchTrainerCommand.class, BenchIngestCommand.class, BenchStoreCommand.class,
        BenchInferenceCommand.class, BenchQualityCommand.class, BenchFuzzCommand.class, BenchSoakCommand.class})
public final class BenchCommand implements Runnable {
  @Spec CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  public static void main(String[] args) {
    System.exit(run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args));
  }

  /**
   * Runs a {@code bench} command line (the arguments after {@code bench}) with the given standard
   * output and error; returns the exit code: 0, 1 for a failure, 2 for a bad argument. Errors are
   * one line on standard error, as for every {@code pockettune} command.
   */
  static int run(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cl = new CommandLine(new BenchCommand()).setOut(out).setErr(err);
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + oneLine(e));
      return 1;
    });
    cl.setParameterExceptionHandler((e, parsedArgs) -> {
      CommandLine cmd = e.getCommandLine();
      cmd.getErr().println(cmd.getCommandSpec().qualifiedName() + ": " + e.getMessage()
          + " (see --help)");
      return 2;
    });
    return cl.execute(args);
  }

  /** The first message in the cause chain, on one line. */
  private static String oneLine(Throwable e) {
    Throwable t = e;
    while (t.getMessage() == null && t.getCause() != null) {
      t = t.getCause();
    }
    String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    return message.replace('\n', ' ');
  }
}
