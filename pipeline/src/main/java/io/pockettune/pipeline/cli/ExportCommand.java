package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune export --checkpoint <id> --out <file>}: writes the model at a checkpoint as a
 * standalone ONNX file ({@link PocketTune#export}). Reads the store read-only, so it works while
 * another process trains.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
    description = "Write a standalone ONNX model with the trained values of a checkpoint.")
final class ExportCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--checkpoint", required = true, paramLabel = "ID",
      description = "checkpoint id (see 'pockettune checkpoints')")
  long checkpointId;

  @Option(names = "--out", required = true, paramLabel = "FILE", description = "the .onnx file to write")
  Path out;

  @Option(names = "--adapters", paramLabel = "merge|keep",
      description = "LoRA runs: merge the adapters into the weights, or keep them as nodes (default: ${DEFAULT-VALUE})")
  String adapters = "merge";

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    if (!adapters.equals("merge") && !adapters.equals("keep")) {
      throw new IllegalArgumentException("--adapters takes merge or keep, not '" + adapters + "'");
    }
    PrintWriter stdout = spec.commandLine().getOut();
    PocketTune.ExportResult r;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(threads).open()) {
      r = tune.export(checkpointId, out, adapters.equals("keep"));
    }
    stdout.printf(Locale.ROOT, "exported checkpoint #%d (step %d) to %s: %,d bytes, outputs %s, parameters sha256 %s%n",
        r.checkpoint(), r.step(), r.out(), r.bytes(), r.outputs(), r.digest());
    if (common.json) {
      stdout.println(r.json());
    }
    return 0;
  }
}
