package io.pockettune.pipeline;

import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** The {@code pockettune} command line. */
@Command(
    name = "pockettune",
    mixinStandardHelpOptions = true,
    version = "pockettune 0.1.0",
    description = "Personalizes a language model on this device, from the events its apps produce.",
    subcommands = {
      DemoCommand.class,
      CheckpointsCommand.class,
      RollbackCommand.class,
      ExportCommand.class,
      BenchCommand.class
    })
public final class Main implements Runnable {

  /** A command of the contract that a later version will provide. */
  private record Planned(String name, String issue, String description) {}

  private static final List<Planned> PLANNED = List.of(
      new Planned("serve", "#6", "Run ingestion and training in the background."),
      new Planned("produce", "#6", "Append events from JSON lines to a topic."),
      new Planned("status", "#6", "Show lag, steps, recent loss and the last checkpoint."),
      new Planned("replay", "#6", "Evaluate checkpoints on a slice of the log without training."));

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
  static int run(PrintWriter out, PrintWriter err, String... args) {
    CommandLine cl = new CommandLine(new Main()).setOut(out).setErr(err);
    for (Planned p : PLANNED) {
      CommandLine sub = new CommandLine(new PlannedCommand(p.name(), p.issue())).setOut(out).setErr(err);
      sub.getCommandSpec().usageMessage().description(p.description() + " (not built yet)");
      cl.addSubcommand(p.name(), sub);
    }
    cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
      cmd.getErr().println("pockettune " + cmd.getCommandName() + ": " + oneLine(e));
      return 1;
    });
    cl.setParameterExceptionHandler((e, parsedArgs) -> {
      e.getCommandLine().getErr().println("pockettune " + e.getCommandLine().getCommandName() + ": " + e.getMessage()
          + " (see --help)");
      return 2;
    });
    return cl.execute(args);
  }

  /** The first message in the cause chain, on one line. */
  static String oneLine(Throwable e) {
    Throwable t = e;
    while (t.getMessage() == null && t.getCause() != null) {
      t = t.getCause();
    }
    String message = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
    return message.replace('\n', ' ');
  }

  @Command(mixinStandardHelpOptions = true)
  static final class PlannedCommand implements Callable<Integer> {
    private final String name;
    private final String issue;

    @Unmatched List<String> ignored;

    PlannedCommand(String name, String issue) {
      this.name = name;
      this.issue = issue;
    }

    @Spec CommandSpec spec;

    @Override
    public Integer call() {
      spec.commandLine().getErr().println("pockettune " + name + " is not built yet (planned in issue " + issue + ")");
      return 3;
    }
  }
}
