package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune produce --topic T (--file F.jsonl | -)}: appends events, one JSON object per
 * line (see {@link EventJson} for the fields), durably. When a service runs on the data directory
 * the lines go to it over the {@link ControlChannel} (it holds the log); otherwise this command
 * opens the log itself. Either way the command returns once the events are acknowledged, and a bad
 * line fails the whole command before anything is appended.
 */
@Command(name = "produce", mixinStandardHelpOptions = true,
    description = "Append events from JSON lines (a file, or - for standard input) to a topic.")
final class ProduceCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

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
    Path dir = common.dataDir.toAbsolutePath();
    long appended;
    Map<String, List<Long>> offsets = new LinkedHashMap<>();
    String via;
    Optional<JsonNode> answer = ControlChannel.call(dir, new JsonLine().put("op", "produce").put("topic", topic).toString(), lines);
    if (answer.isPresent()) {
      appended = answer.get().path("appended").asLong();
      answer.get().path("offsets").properties().forEach(e ->
          offsets.put(e.getKey(), List.of(e.getValue().get(0).asLong(), e.getValue().get(1).asLong())));
      via = "service";
    } else {
      if (!Files.isDirectory(dir.resolve("log"))) {
        throw new IllegalArgumentException("there is no log in " + dir + ": start 'pockettune serve' or run 'pockettune demo' there first, or check --data-dir");
      }
      try (EmbeddedLog log = EmbeddedLog.open(dir.resolve("log"))) {
        Map<String, List<Long>> ranges = lines.isEmpty() ? Map.of()
            : new EventJson(log, new EventSerde(SchemaStore.open(dir.resolve("schemas")))).append(topic, lines, 1);
        appended = lines.size();
        offsets.putAll(ranges);
      }
      via = "log";
    }
    out.printf("appended %d events to %s at offsets %s (acknowledged by the %s)%n", appended, topic, offsets, via);
    if (common.json) {
      out.println(new JsonLine().put("appended", appended).put("topic", topic).put("offsets", offsets).put("via", via));
    }
    return 0;
  }
}
