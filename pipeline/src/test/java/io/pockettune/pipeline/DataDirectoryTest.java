package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A data directory as a new user meets it: produced into before anything else, mistyped, and kept private. */
class DataDirectoryTest {
  @TempDir Path dir;

  private Path events(int count, boolean withEmpty) throws IOException {
    StringBuilder lines = new StringBuilder();
    for (int i = 0; i < count; i++) {
      lines.append("{\"text\":\"see you at the station at " + i + "\",\"conversation\":\"c" + (i % 3)
          + "\",\"eventTime\":" + (1788246000000L + i * 60_000L) + "}\n");
    }
    if (withEmpty) {
      lines.append("{\"text\":\"\",\"conversation\":\"c0\",\"eventTime\":1788249600000}\n");
    }
    Path file = dir.resolve("events.jsonl");
    Files.writeString(file, lines.toString());
    return file;
  }

  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void produce_freshDirectory_createsTheLogAndServeTrainsTheEvents() throws Exception {
    Path model = PipelineFixture.tinyPackage(dir, 1e-3f, 1e-3f);
    Path data = dir.resolve("new").resolve("data");
    CliRun produced = CliRun.of("produce", "--data-dir", data.toString(), "--topic", "messages", "--file",
        events(8, false).toString(), "--json");
    assertEquals(0, produced.exit(), produced.err());
    assertEquals("log", produced.json().path("via").asText());
    assertEquals(8, produced.json().path("appended").asLong());
    assertTrue(Files.isDirectory(data.resolve("log").resolve("messages-0")), "the default topics");
    assertTrue(Files.isDirectory(data.resolve("log").resolve("notes-0")), "the default topics");
    assertFalse(Files.exists(data.resolve("model-binding.json")), "produce binds no model");
    assertFalse(Files.exists(data.resolve("model")), "produce writes no model");
    assertFalse(Files.exists(data.resolve("store")), "produce opens no store");

    CliRun serve = CliRun.of("serve", "--data-dir", data.toString(), "--model", model.toString(), "--exit-when-idle",
        "--batch", "2", "--threads", "1", "--max-idle-ms", "0", "--json");
    assertEquals(0, serve.exit(), serve.err());
    assertEquals(4, serve.json().path("last_step").asLong(), serve.lastLine());
    assertTrue(Files.exists(data.resolve("model-binding.json")), "serve binds the model");
  }

  @ParameterizedTest
  @ValueSource(strings = {"status", "checkpoints", "produce --topic messages --file EVENTS", "serve --exit-when-idle",
      "rollback --to 1"})
  void dataDir_regularFile_saysItIsAFileInOneSentence(String command) throws Exception {
    Path file = dir.resolve("notes.txt");
    Files.writeString(file, "not a data directory\n");
    List<String> args = new ArrayList<>();
    for (String a : command.split(" ")) {
      args.add(a.equals("EVENTS") ? events(1, false).toString() : a);
    }
    args.addAll(List.of("--data-dir", file.toString()));
    CliRun run = CliRun.of(args.toArray(String[]::new));
    assertEquals(1, run.exit(), run.out());
    String expected = "pockettune " + args.get(0) + ": --data-dir " + file.toAbsolutePath() + " is a file, not a"
        + " directory: give a directory, or a path to create one at, or leave --data-dir out for ./pockettune-data";
    assertEquals(expected, run.err().strip());
    assertEquals("not a data directory\n", Files.readString(file), "the file is left alone");
  }

  @Test
  void dataDir_insideARegularFile_namesTheFile() throws Exception {
    Path file = dir.resolve("notes.txt");
    Files.writeString(file, "x");
    CliRun run = CliRun.of("status", "--data-dir", file.resolve("data").toString());
    assertEquals(1, run.exit());
    assertTrue(run.err().contains("lies inside the file " + file.toAbsolutePath() + ", not a directory"), run.err());
  }

  @Test
  @Timeout(value = 90, unit = TimeUnit.SECONDS)
  void serve_freshDirectory_logDeadLettersStoreAndControlSocketOwnerOnly() throws Exception {
    assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "no POSIX permissions here");
    Path model = PipelineFixture.tinyPackage(dir, 1e-3f, 1e-3f);
    Path data = dir.resolve("data");
    try (PocketTune tune = PocketTune.builder(data).model(model).threads(1).batch(2).maxTokens(32)
        .maxIdle(java.time.Duration.ZERO).pollInterval(java.time.Duration.ofMillis(10)).controlSocket(true).open()) {
      tune.startTraining();
      List<String> lines = Files.readAllLines(events(6, true));
      tune.appendJson("messages", lines);
      while (figure(tune.status(), "dead_letters") < 1 || figure(tune.status(), "lag") != 0) {
        Thread.sleep(20);
      }
      assertEquals("rwx------", mode(data));
      assertEquals("rw-------", mode(data.resolve("control.sock")));
      assertEquals("rwx------", mode(data.resolve("store")));
      assertEquals("rwx------", mode(data.resolve("log")));
      for (String partition : List.of("messages-0", "messages-1", "notes-0", DeadLetters.TOPIC + "-0")) {
        Path p = data.resolve("log").resolve(partition);
        assertEquals("rwx------", mode(p), partition);
        try (Stream<Path> files = Files.list(p)) {
          for (Path f : files.toList()) {
            assertEquals("rw-------", mode(f), f.toString());
          }
        }
      }
      assertTrue(Files.size(data.resolve("log").resolve(DeadLetters.TOPIC + "-0").resolve(String.format("%020d.log", 0)))
          > 0, "the dead letter's segment holds it");
    }
  }

  private static long figure(JsonLine status, String name) {
    return status.get(name) instanceof Number n ? n.longValue() : -1;
  }

  private static String mode(Path p) throws IOException {
    return PosixFilePermissions.toString(Files.getPosixFilePermissions(p));
  }
}
