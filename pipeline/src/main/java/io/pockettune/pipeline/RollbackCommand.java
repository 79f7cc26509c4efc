package io.pockettune.pipeline;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** Roll the model back to a checkpoint or step. Not built yet: planned in issue #5. */
@Command(name = "rollback", mixinStandardHelpOptions = true, description = "Roll the model back to a checkpoint or step. (not built yet)")
final class RollbackCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Unmatched List<String> ignored;

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("pockettune rollback is not built yet (planned in issue #5)");
    return 3;
  }
}
