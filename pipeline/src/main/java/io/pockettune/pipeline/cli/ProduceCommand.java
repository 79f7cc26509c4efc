package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PocketTune;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune produce --topic T (--file F.jsonl | -)}: appends events, one JSON object per
 * line, durably ({@link PocketTune#appendJson}: through a running service's control socket, or to
 * the log directly, creating a new data directory's log). The command returns once the events are
 * acknowledged, and a bad line fails the whole command before anything is appended.
 */
@Command(name = "produce", mixinStandardHelpOptions = true,
    description = "Append events from JSON lines (a file, or - for standard input) to a topic.")
final class ProduceCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--encrypt", description = "when this creates the data directory, encrypt its log and snapshots"
      + " at rest (AES-256-GCM) with a new random key kept in <data-dir>/key (mode 0600); an encrypted"
      + " directory is detected without this flag")
  boolean encrypt;

  @Option(names = "--topic", required = true, description = "topic to append to, e.g. messages or notes")
  String topic;

  @Option(names = "--file", paramLabel = "F.jsonl", description = "file of JSON lines")
  Path file;

  @Parameters(arity = "0..1", paramLabel = "-", description = "- to read JSON lines from standard input")
  String dash;

  @Override
  public Integer call() throws IOException {
    if ((dash != null && !dash.equals("-")) || (file == null) == (dash == null)) {
      throw new IllegalArgumentException("give either --file F.jsonl or - (standard input), not both or neither");
    }
    boolean stdin = dash != null || file.toString().equals("-");
    List<String> lines = new ArrayList<>();
    if (!stdin && !Files.isRegularFile(file)) {
      throw new IllegalArgumentException("--file " + file + " is not a file: give a file of JSON lines");
    }
    try (BufferedReader in = !stdin ? Files.newBufferedReader(file, StandardCharsets.UTF_8)
        : new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      for (String line; (line = in.readLine()) != null; ) {
        if (!line.isBlank()) {
          lines.add(line);
        }
      }
    }
    PrintWriter out = spec.commandLine().getOut();
    PocketTune.Appended a;
    try (PocketTune tune = common.builder().encrypt(encrypt).open()) {
      a = tune.appendJson(topic, lines);
    }
    out.printf("appended %d events to %s at offsets %s (acknowledged by the %s)%n", a.events(), topic, a.offsets(), a.via());
    if (common.json) {
      out.println(new JsonLine().put("appended", a.events()).put("topic", topic).put("offsets", a.offsets())
          .put("via", a.via()));
    }
    return 0;
  }
}
