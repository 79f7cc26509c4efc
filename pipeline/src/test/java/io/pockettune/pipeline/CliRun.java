package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** One {@code pockettune} command line run in this JVM, with what it printed (for command tests). */
record CliRun(int exit, String out, String err) {

  static CliRun of(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    int exit = io.pockettune.pipeline.cli.Main.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
    return new CliRun(exit, out.toString(), err.toString());
  }

  /** The {@code --json} contract's line: the last line of standard output. */
  String lastLine() {
    String[] lines = out.strip().split("\n");
    return lines[lines.length - 1];
  }

  JsonNode json() throws Exception {
    return EventJson.parseObject(lastLine());
  }

  /** The raw JSON text of a top-level field of the last line (string, number, literal or flat object). */
  String field(String name) {
    Matcher m = Pattern.compile("\"" + name + "\":(\"[^\"]*\"|[-0-9.eE]+|true|false|null|\\{[^}]*\\})")
        .matcher(lastLine());
    assertTrue(m.find(), name + " missing from " + lastLine());
    return m.group(1);
  }

  double number(String name) {
    return Double.parseDouble(field(name));
  }
}
