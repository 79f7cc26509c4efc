package io.pockettune.pipeline;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options every command takes (the command-line contract in DESIGN.md). */
final class CommonOptions {
  @Option(names = "--data-dir", paramLabel = "DIR", description = "data directory (default: ${DEFAULT-VALUE})")
  Path dataDir = Path.of("pockettune-data");

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;
}
