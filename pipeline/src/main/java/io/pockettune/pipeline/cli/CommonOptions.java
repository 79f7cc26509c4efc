package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options every command takes (the command-line contract in docs/DESIGN.md). */
final class CommonOptions {
  @Option(names = "--data-dir", paramLabel = "DIR", description = "data directory (default: ${DEFAULT-VALUE})")
  Path dataDir = Path.of("pockettune-data");

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  /** A runtime builder for the data directory. */
  PocketTune.Builder builder() {
    return PocketTune.builder(dataDir);
  }
}
