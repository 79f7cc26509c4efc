package io.pockettune.pipeline;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** List the checkpoints of a data directory. Not built yet: planned in issue #5. */
@Command(name = "checkpoints", mixinStandardHelpOptions = true, description = "List the checkpoints of a data directory. (not built yet)")
final class CheckpointsCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Unmatched List<String> ignored;

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("pockettune checkpoints is not built yet (planned in issue #5)");
    return 3;
  }
}
