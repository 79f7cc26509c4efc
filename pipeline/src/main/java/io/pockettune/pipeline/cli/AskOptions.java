package io.pockettune.pipeline.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Option;

/** What {@code classify} and {@code score} ask about: one text, or a file of JSON lines, at a checkpoint. */
final class AskOptions {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Option(names = "--text", description = "the text")
  String text;

  @Option(names = "--file", paramLabel = "F.jsonl", description = "JSON lines with a \"text\" (and for score, a label in \"label\" or attrs.label)")
  Path file;

  @Option(names = "--checkpoint", paramLabel = "ID|base|latest|step:N",
      description = "which model: base, latest (default), a checkpoint id or step:N")
  String checkpoint = "latest";

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  /** A text and, for score, its label (or null). */
  record Item(String text, String label) {}

  List<Item> items(String label) throws IOException {
    if ((text == null) == (file == null)) {
      throw new IllegalArgumentException("give either --text TEXT or --file F.jsonl");
    }
    if (text != null) {
      return List.of(new Item(text, label));
    }
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("--file " + file + " is not a file: give a file of JSON lines");
    }
    List<Item> items = new ArrayList<>();
    int n = 0;
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      n++;
      if (line.isBlank()) {
        continue;
      }
      JsonNode node;
      try {
        node = JSON.readTree(line);
      } catch (IOException e) {
        throw new IllegalArgumentException("line " + n + " of " + file + " is not JSON: write one object per line");
      }
      if (!node.path("text").isTextual()) {
        throw new IllegalArgumentException("line " + n + " of " + file + " has no string field 'text'");
      }
      String l = node.path("label").isTextual() ? node.path("label").asText()
          : node.path("attrs").path("label").isTextual() ? node.path("attrs").path("label").asText() : label;
      items.add(new Item(node.path("text").asText(), l));
    }
    if (items.isEmpty()) {
      throw new IllegalArgumentException("--file " + file + " holds no line to ask about");
    }
    return items;
  }
}
