package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.events.Message;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The embedding example in {@link PocketTune}'s class comment, compiled and run as it is written there. */
class EmbeddingExampleTest {
  @TempDir Path dir;

  @Test
  void example_runsAsWrittenAndTrainsOneStep() throws Exception {
    Path modelDir = PipelineFixture.tinyPackage(dir, null, null);
    Path dataDir = dir.resolve("data");
    PrintStream stdout = System.out;
    ByteArrayOutputStream printed = new ByteArrayOutputStream();
    System.setOut(new PrintStream(printed, true, StandardCharsets.UTF_8));
    try {
      // example:begin
      try (PocketTune tune = PocketTune.builder(dataDir)   // the app's folder for PocketTune
          .model(modelDir)                                  // a package from 'pockettune model init'
          .batch(2)
          .open()) {
        tune.startTraining();
        Producer<String, SpecificRecord> events = tune.producer();
        for (String text : List.of("see you at the climbing wall at 7", "running late, save me a rope")) {
          events.send(new ProducerRecord<>("messages", "ada", Message.newBuilder()
              .setId(UUID.randomUUID().toString()).setConversation("ada").setSender("me").setText(text)
              .setEventTime(Instant.now()).setAttrs(Map.of()).build())).get();   // durable once acknowledged
        }
        tune.awaitIdle(Duration.ofMinutes(1));
        System.out.println("trained to step " + tune.status().get("last_step"));
      }
      // example:end
    } finally {
      System.setOut(stdout);
    }
    assertEquals("trained to step 1", printed.toString(StandardCharsets.UTF_8).strip());
  }

  @Test
  void example_isTheOneInTheClassComment() throws Exception {
    String test = Files.readString(Path.of("src/test/java/io/pockettune/pipeline/EmbeddingExampleTest.java"));
    String here = test.substring(test.indexOf("// example:begin") + "// example:begin".length(),
        test.indexOf("      // example:end"));
    String source = Files.readString(Path.of("src/main/java/io/pockettune/pipeline/PocketTune.java"));
    String doc = source.substring(source.indexOf("<pre>{@code") + "<pre>{@code".length(), source.indexOf(" * }</pre>"));
    assertTrue(!doc.isBlank(), "the class comment has an example");
    assertEquals(normalize(doc.replaceAll("(?m)^ \\* ?", "")), normalize(here));
  }

  private static String normalize(String code) {
    return code.strip().replaceAll("\\s+", " ");
  }
}
