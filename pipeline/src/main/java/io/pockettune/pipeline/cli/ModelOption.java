package io.pockettune.pipeline.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * {@code --model DIR}, taken by every command that trains or reads a store; commands that load no
 * model ({@code checkpoints}, {@code status}) only check the data directory's binding to it.
 */
final class ModelOption {
  @Option(names = "--model", paramLabel = "DIR",
      description = "model package (see 'pockettune model init'); default: the built-in demo model")
  Path model;
}
