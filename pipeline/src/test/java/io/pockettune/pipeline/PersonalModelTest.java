package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The read side: a personal model following training answers on one consistent step per call,
 * equal to a model restored at that step; pinned models, the control socket and the in-process
 * path agree.
 */
class PersonalModelTest {
  private static final String TEXT = "see you at the climbing wall at 7";

  @TempDir Path dir;

  private Path pkg() throws Exception {
    return PipelineFixture.tinyPackage(dir, 1e-3f, 1e-3f);
  }

  private static List<String> events(int from, int n) {
    List<String> lines = new ArrayList<>();
    for (int i = from; i < from + n; i++) {
      lines.add("{\"text\":\"running late, there in " + i + "\",\"conversation\":\"c" + (i % 3) + "\",\"eventTime\":"
          + (1788246000000L + i * 1000L) + "}");
    }
    return lines;
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void following_readersOnThreadsSeeWholeStepsEqualToRestoredModels() throws Exception {
    Path model = pkg();
    Path data = dir.resolve("data");
    Map<Long, Double> seen = new TreeMap<>();
    ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
    try (PocketTune tune = PocketTune.builder(data).model(model).threads(1).batch(2).checkpointEvery(0)
        .snapshotEvery(5).maxIdle(Duration.ZERO).pollInterval(Duration.ofMillis(5)).open()) {
      tune.startTraining();
      AtomicBoolean done = new AtomicBoolean();
      ConcurrentLinkedQueue<PersonalModel.Score> answers = new ConcurrentLinkedQueue<>();
      try (PersonalModel latest = tune.personalModel("latest")) {
        List<Thread> readers = new ArrayList<>();
        for (int t = 0; t < 3; t++) {
          Thread reader = new Thread(() -> {
            while (!done.get()) {
              try {
                answers.add(latest.score(TEXT, null));
              } catch (RuntimeException e) {
                problems.add(e.toString());
              }
            }
          });
          reader.start();
          readers.add(reader);
        }
        for (int chunk = 0; chunk < 8; chunk++) {
          tune.appendJson("messages", events(chunk * 6, 6));
          assertTrue(tune.awaitIdle(Duration.ofSeconds(30)));
        }
        done.set(true);
        for (Thread r : readers) {
          r.join();
        }
        assertEquals(24, latest.score(TEXT, null).step(), "the next call after the last commit uses it");
      }
      assertTrue(problems.isEmpty(), problems.toString());
      for (PersonalModel.Score s : answers) {
        Double before = seen.putIfAbsent(s.step(), s.loss());
        if (before != null) {
          assertEquals(before, s.loss(), 0.0, "every answer at step " + s.step() + " is the same");
        }
      }
      tune.stopTraining();
      assertTrue(seen.size() >= 3, "readers saw the model move while it trained: " + seen.keySet());
      for (Map.Entry<Long, Double> e : seen.entrySet()) {
        try (PersonalModel pinned = tune.personalModel("step:" + e.getKey())) {
          assertEquals(e.getValue(), pinned.score(TEXT, null).loss(), 0.0, "step " + e.getKey());
        }
      }
    }
  }

  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void socketAndInProcess_giveTheSameAnswers_andBaseNeedsNoDataDirectory() throws Exception {
    Path model = pkg();
    Path data = dir.resolve("data");
    double baseLoss;
    try (PocketTune alone = PocketTune.builder(dir.resolve("nothing-here")).model(model).threads(1).open();
        PersonalModel base = alone.personalModel("base")) {
      baseLoss = base.score(TEXT, null).loss();
      assertEquals(0, base.step());
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> base.classify(TEXT));
      assertTrue(e.getMessage().contains("does not classify"), e.getMessage());
    }
    CliRun cliBase = CliRun.of("score", "--model", model.toString(), "--data-dir", dir.resolve("none").toString(),
        "--checkpoint", "base", "--text", TEXT, "--threads", "1", "--json");
    assertEquals(0, cliBase.exit(), cliBase.err());
    assertEquals(baseLoss, cliBase.json().path("loss").asDouble(), 0.0);

    try (PocketTune service = PocketTune.builder(data).model(model).threads(1).batch(2).maxIdle(Duration.ZERO)
        .pollInterval(Duration.ofMillis(5)).controlSocket(true).open()) {
      service.startTraining();
      service.appendJson("messages", events(0, 10));
      assertTrue(service.awaitIdle(Duration.ofSeconds(30)));
      CliRun viaSocket = CliRun.of("score", "--data-dir", data.toString(), "--model", model.toString(), "--checkpoint",
          "step:3", "--text", TEXT, "--json");
      assertEquals(0, viaSocket.exit(), viaSocket.err());
      JsonNode answer = viaSocket.json();
      assertEquals(3, answer.path("step").asLong());
      try (PersonalModel inProcess = service.personalModel("step:3")) {
        assertEquals(inProcess.score(TEXT, null).loss(), answer.path("loss").asDouble(), 0.0);
      }
      PersonalModel.CompletionOptions sampled = new PersonalModel.CompletionOptions(8, 0.9f, 20, 0.95f, 7L, List.of(),
          true);
      CliRun generated = CliRun.of("generate", "--data-dir", data.toString(), "--checkpoint", "step:3", "--prompt",
          "running late", "--max-new-tokens", "8", "--temperature", "0.9", "--top-k", "20", "--top-p", "0.95",
          "--seed", "7", "--json");
      assertEquals(0, generated.exit(), generated.err());
      try (PersonalModel inProcess = service.personalModel("step:3")) {
        PersonalModel.Completion c = inProcess.complete("running late", sampled);
        assertEquals(c.text(), generated.json().path("text").asText(), "the socket and in-process completions agree");
        assertEquals(c.text(), inProcess.complete("running late", sampled).text(), "a seed makes sampling repeatable");
        assertEquals(false, c.kvCache(), "the plain decoder has no KV cache: the prefix is recomputed");
      }
      CliRun latest = CliRun.of("score", "--data-dir", data.toString(), "--text", TEXT, "--json");
      assertEquals(0, latest.exit(), latest.err());
      assertEquals(5, latest.json().path("step").asLong(), "latest, answered by the running service");
      assertTrue(latest.json().path("loss").asDouble() != baseLoss, "the personalized model is not the base");
    }
    CliRun unknown = CliRun.of("score", "--data-dir", data.toString(), "--model", model.toString(), "--checkpoint", "9",
        "--text", TEXT);
    assertEquals(1, unknown.exit());
    assertTrue(unknown.err().contains("there is no live checkpoint 9"), unknown.err());
  }
}
