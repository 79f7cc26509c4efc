package io.pockettune.pipeline;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** Measure commits, trajectory size and rollback. Not built yet: planned in issue #5. */
@Command(name = "store", mixinStandardHelpOptions = true, description = "Measure commits, trajectory size and rollback. (not built yet)")
final class BenchStoreCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Unmatched List<String> ignored;

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("pockettune bench store is not built yet (planned in issue #5)");
    return 3;
  }
}
