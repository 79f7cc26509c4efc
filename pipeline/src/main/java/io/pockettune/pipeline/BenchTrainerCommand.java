package io.pockettune.pipeline;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** Measure the perturbation kernel, MeZO steps and memory. Not built yet: planned in issue #3. */
@Command(name = "trainer", mixinStandardHelpOptions = true, description = "Measure the perturbation kernel, MeZO steps and memory. (not built yet)")
final class BenchTrainerCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Unmatched List<String> ignored;

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("pockettune bench trainer is not built yet (planned in issue #3)");
    return 3;
  }
}
