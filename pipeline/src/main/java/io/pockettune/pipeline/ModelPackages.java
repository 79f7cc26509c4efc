package io.pockettune.pipeline;

import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.ModelGraph;
import io.pockettune.trainer.ParameterSet;
import io.pockettune.trainer.TokenBatch;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code model init} and {@code model inspect}: making a package from a user's ONNX export, and
 * checking one with a forward pass. Init reads the graph without a session ({@link ModelGraph}) to
 * choose a card that fits it (a decoder gets causal-lm, an encoder embedding-classification),
 * writes the package, then opens it exactly as training will, so a package init writes always
 * loads.
 */
final class ModelPackages {
  private ModelPackages() {}

  static JsonLine init(PocketTune.ModelInit in) throws IOException {
    if (in.onnx() == null || !Files.isRegularFile(in.onnx())) {
      throw new IllegalArgumentException("--onnx " + in.onnx() + " is not a file: give the path of the model's .onnx export");
    }
    if (in.tokenizer() != null && !Files.isRegularFile(in.tokenizer())) {
      throw new IllegalArgumentException("--tokenizer " + in.tokenizer() + " is not a file: give the path of its tokenizer.json");
    }
    ModelGraph graph = ModelGraph.read(in.onnx());
    String objective = in.objective() != null ? in.objective()
        : graph.kind() == ModelGraph.Kind.DECODER ? ModelCard.CAUSAL_LM
        : graph.kind() == ModelGraph.Kind.ENCODER ? ModelCard.EMBEDDING_CLASSIFICATION
        : null;
    if (objective == null) {
      throw new IllegalArgumentException("the model has neither a 'logits' nor a 'last_hidden_state' output: give"
          + " --objective scalar-loss with --loss-output NAME, naming the output that holds its loss");
    }
    if (!ModelCard.OBJECTIVES.contains(objective)) {
      throw new IllegalArgumentException("--objective " + objective + " is not one of " + ModelCard.OBJECTIVES);
    }
    boolean classification = objective.equals(ModelCard.PROMPT_CLASSIFICATION)
        || objective.equals(ModelCard.EMBEDDING_CLASSIFICATION);
    if (classification && (in.labels() == null || in.labels().size() < 2)) {
      throw new IllegalArgumentException(objective + " needs the label names: give --labels A,B,...");
    }
    if (objective.equals(ModelCard.EMBEDDING_CLASSIFICATION) && in.labelPrompts() == null) {
      throw new IllegalArgumentException("embedding-classification needs one prompt per label, whose embedding starts"
          + " its head: give --label-prompts \"It was terrible.|It was great.\"");
    }
    int rows = graph.embeddingRows();
    if (in.tokenizer() == null && rows > io.pockettune.trainer.ByteTokenizer.VOCAB_SIZE) {
      throw new IllegalArgumentException("the model has " + rows + " token embeddings, a vocabulary that needs its"
          + " tokenizer: give --tokenizer tokenizer.json");
    }
    ModelCard.Trainable trainable = ModelCard.Trainable.parse(in.trainable() == null ? "all" : in.trainable());
    if (trainable.kind().equals("side") && objective.equals(ModelCard.SCALAR_LOSS)) {
      throw new IllegalArgumentException("--trainable " + in.trainable() + ": " + ModelCard.SIDE_NEEDS_TOKENS);
    }
    // LoRA adapters and a side network are new weights, trained from zero or small values: larger steps.
    boolean adapters = trainable.kind().equals("lora") || trainable.kind().equals("side");
    float lr = in.lr() != null ? in.lr() : adapters ? 1e-4f : trainable.kind().equals("all") ? 1e-6f : 1e-5f;
    float eps = in.eps() != null ? in.eps() : adapters ? 1e-2f : 1e-3f;
    String[] estimator = estimator(in.estimator());
    ModelCard card = new ModelCard(ModelCard.VERSION, objective, trainable,
        in.tokenizer() == null ? ModelCard.BYTES : ModelCard.TOKENIZER_FILE,
        in.maxTokens() != null ? in.maxTokens() : 128,
        classification ? in.labelAttribute() : null,
        classification ? in.labels() : null,
        objective.equals(ModelCard.EMBEDDING_CLASSIFICATION) ? in.labelPrompts() : null,
        objective.equals(ModelCard.EMBEDDING_CLASSIFICATION) ? (in.pooling() == null ? "mean" : in.pooling()) : null,
        objective.equals(ModelCard.EMBEDDING_CLASSIFICATION) ? (in.temperature() == null ? 20f : in.temperature()) : null,
        objective.equals(ModelCard.PROMPT_CLASSIFICATION) ? in.template() : null,
        objective.equals(ModelCard.PROMPT_CLASSIFICATION) ? in.labelWords() : null,
        objective.equals(ModelCard.SCALAR_LOSS) ? in.lossOutput() : null,
        lr, eps, estimator[0], estimator[1] == null ? null : Integer.valueOf(estimator[1]));
    ModelCard.parse(card.toJson(), "(the card being written)");

    Path out = in.out().toAbsolutePath().normalize();
    if (Files.exists(out.resolve(ModelPackage.CARD))) {
      throw new IllegalArgumentException("--out " + out + " already holds a model package: choose a new folder");
    }
    Files.createDirectories(out);
    copy(in.onnx(), out.resolve(ModelPackage.GRAPH));
    Path source = in.onnx().toAbsolutePath().getParent();
    for (String location : graph.externalDataLocations()) {
      Path from = source.resolve(location).normalize();
      if (!from.startsWith(source) || !Files.isRegularFile(from)) {
        throw new IllegalArgumentException("the model keeps weights in " + location + ", which is not a file beside "
            + in.onnx() + ": put its external data files next to it");
      }
      copy(from, out.resolve(location));
    }
    if (in.tokenizer() != null) {
      copy(in.tokenizer(), out.resolve(ModelCard.TOKENIZER_FILE));
    }
    ModelPackage.writeAtomically(out.resolve(ModelPackage.CARD), card.toJson().getBytes(StandardCharsets.UTF_8));
    JsonLine report = inspect(out, 1);
    return report.put("out", out.toString());
  }

  /**
   * Parses {@code --estimator}: mezo (or nothing), fzoo or fzoo:N.
   *
   * @return the card's estimator and directions fields (both null for MeZO, the card's default)
   */
  static String[] estimator(String option) {
    String e = option == null ? ModelCard.MEZO : option.strip();
    if (e.equals(ModelCard.MEZO)) {
      return new String[] {null, null};
    }
    if (e.equals(ModelCard.FZOO) || e.startsWith(ModelCard.FZOO + ":")) {
      int n;
      try {
        n = e.equals(ModelCard.FZOO) ? ModelCard.FZOO_DEFAULT_DIRECTIONS : Integer.parseInt(e.substring(5).strip());
      } catch (NumberFormatException x) {
        n = 0;
      }
      if (n >= 2) {
        return new String[] {ModelCard.FZOO, Integer.toString(n)};
      }
    }
    throw new IllegalArgumentException("--estimator " + option + " is not mezo, fzoo or fzoo:N with N a whole number"
        + " of at least 2 (directions per step), e.g. fzoo:8");
  }

  /** Hard-links when it can (same file system; a model can be gigabytes), else copies. */
  private static void copy(Path from, Path to) throws IOException {
    Files.deleteIfExists(to);
    try {
      Files.createLink(to, from.toAbsolutePath());
    } catch (IOException | UnsupportedOperationException e) {
      Files.copy(from, to, StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /** Validates a package with one forward pass on a dummy batch and describes it. */
  static JsonLine inspect(Path dir, int threads) throws IOException {
    try (ModelPackage pkg = ModelPackage.load(dir)) {
      ModelGraph graph = ModelGraph.read(pkg.graph());
      ModelCard card = pkg.card();
      long started = System.nanoTime();
      long forwardNanos;
      float loss;
      int trainable;
      long head;
      long rssAfter;
      try (LossModel model = pkg.open(threads)) {
        trainable = model.parameters().size();
        head = model.parameters().tensors().stream().filter(t -> t.name().equals(LossModel.HEAD))
            .mapToLong(ParameterSet.Tensor::count).sum();
        TokenBatch batch = dummyBatch(pkg, 16);
        long t0 = System.nanoTime();
        loss = model.loss(batch).loss();
        forwardNanos = System.nanoTime() - t0;
        rssAfter = Governor.residentSetBytes();
        if (!Float.isFinite(loss)) {
          throw new IllegalArgumentException("one forward pass of " + pkg.describe() + " gives a loss of " + loss
              + ": the model or its card is wrong (check the objective and the tokenizer)");
        }
      }
      Map<String, Long> groups = new LinkedHashMap<>();
      graph.parameterCounts().forEach((g, n) -> groups.put(g.name().toLowerCase(Locale.ROOT), n));
      long weightBytes = Files.size(pkg.graph());
      for (String location : graph.externalDataLocations()) {
        weightBytes += Files.size(pkg.directory().resolve(location));
      }
      // MeZO keeps no gradients, optimizer state or activations between passes: training holds the
      // weights once (the trainable ones in PocketTune's buffer, lifted out of the session) plus one
      // forward pass's working memory. The estimate is therefore measured, not computed: this
      // process's resident set after a forward pass of 16 examples at the card's max_tokens.
      return new JsonLine()
          .put("package", pkg.directory().toString())
          .put("hash", pkg.hash())
          .put("kind", graph.kind().name().toLowerCase(Locale.ROOT))
          .put("objective", card.objective())
          .put("trainable", card.trainable().toString())
          .put("tokenizer", card.tokenizer())
          .put("max_tokens", card.maxTokens())
          .put("labels", card.labels())
          .put("inputs", ports(graph.inputs()))
          .put("outputs", ports(graph.outputs()))
          .put("parameters", graph.parameters())
          .put("quantized_parameters", graph.quantizedParameters())
          .put("parameters_by_group", groups)
          .put("trainable_parameters", (long) trainable)
          .put("head_parameters", head)
          .put("embedding_rows", graph.embeddingRows())
          .put("layers", graph.layers().isPresent() ? graph.layers().getAsInt() : null)
          .put("dummy_batch_loss", loss)
          .put("forward_ms_batch_16", Math.round(forwardNanos / 1e5) / 10.0)
          .put("weight_bytes", weightBytes)
          .put("trainable_buffer_bytes", (long) trainable * Float.BYTES)
          .put("estimated_training_bytes", rssAfter)
          .put("inspect_ms", (System.nanoTime() - started) / 1_000_000);
    }
  }

  private static List<Object> ports(List<ModelGraph.Port> ports) {
    List<Object> out = new ArrayList<>();
    for (ModelGraph.Port p : ports) {
      out.add(new JsonLine().put("name", p.name()).put("type", p.elementType()).put("dims", p.dims()));
    }
    return out;
  }

  /** A batch of {@code rows} copies of a short text at the card's longest length, labelled 0 for classifiers. */
  private static TokenBatch dummyBatch(ModelPackage pkg, int rows) {
    String text = "PocketTune checks this model with one forward pass. ".repeat(8);
    List<long[]> seqs = new ArrayList<>();
    for (int i = 0; i < rows; i++) {
      seqs.add(pkg.exampleTokenizer().encode(text, pkg.card().maxTokens()));
    }
    return pkg.card().classification() ? TokenBatch.classification(seqs, new long[rows]) : TokenBatch.of(seqs);
  }
}
