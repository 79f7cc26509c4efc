package io.pockettune.pipeline.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** {@code --model DIR}, taken by every command that trains or loads a store's model. */
final class ModelOption {
  @Option(names = "--model", paramLabel = "DIR",
      description = "model package (see 'pockettune model init'); default: the built-in demo model")
  Path model;
}
