package io.pockettune.pipeline;

import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Unmatched;

/** Write a standalone ONNX model with the trained values. Not built yet: planned in issue #5. */
@Command(name = "export", mixinStandardHelpOptions = true, description = "Write a standalone ONNX model with the trained values. (not built yet)")
final class ExportCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Unmatched List<String> ignored;

  @Override
  public Integer call() {
    spec.commandLine().getErr().println("pockettune export is not built yet (planned in issue #5)");
    return 3;
  }
}
