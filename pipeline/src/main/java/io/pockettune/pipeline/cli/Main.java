package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.io.PrintWriter;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine;

/**
 * The {@code pockettune} command line: a client of the runtime's one entry type, {@link
 * PocketTune}, and of nothing else (this package sees only the runtime's public API).
 */
@Command(
    name = "pockettune",
    mixinStandardHelpOptions = true,
    version = "pockettune 0.1.0",
    description = "Personalizes a language model on this device, from the events its apps produce.",
    footer = "%nBenchmarks: ./pockettune bench trainer|store|ingest|inference|quality|fuzz|soak|fleet (see ./pockettune bench -h),"
        + " from the bench modules.",
    subcommands = {
      DemoCommand.class,
      ServeCommand.class,
      ProduceCommand.class,
      StatusCommand.class,
      CheckpointsCommand.class,
      RollbackCommand.class,
      ForgetCommand.class,
      ReplayCommand.class,
      ExportCommand.class,
      PullCommand.class,
      ModelCommand.class,
      GenerateCommand.class,
      ClassifyCommand.class,
      ScoreCommand.class
    })
public final class Main implements Runnable {

  @Spec CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  public static void main(String[] args) {
    System.exit(run(args));
  }

  static int run(String... args) {
    return run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
  }

  /** Runs a command line with the given standard output and error; returns the exit code. */
  public static int run(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cl = new CommandLine(new Main()).setOut(out).setErr(err);
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println("pockettune " + cmd.getCommandName() + ": " + PocketTune.message(e));
      return 1;
    });
    cl.setParameterExceptionHandler((e, parsedArgs) -> {
      e.getCommandLine().getErr().println("pockettune " + e.getCommandLine().getCommandName() + ": " + e.getMessage()
          + " (see --help)");
      return 2;
    });
    return cl.execute(args);
  }
}
