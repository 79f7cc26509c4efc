package io.pockettune.pipeline;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.TextTokenizer;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Instant;
import java.util.HexFormat;

/**
 * A model package: a folder with the ONNX graph ({@code model.onnx}, with its external-data files
 * if any), the tokenizer ({@code tokenizer.json}) when the card names one, and the card ({@link
 * ModelCard}, {@code pockettune-model.json}). The package's identity is the SHA-256 of the graph's
 * hash and the card's hash: a data directory is bound to one identity on first use ({@link
 * #bind}), and a later start with another package is refused.
 *
 * <p>Without {@code --model}, commands use the built-in package: the small byte-level decoder that
 * the demo trains, written into the data directory ({@code model/base.onnx}) on first use.
 *
 * <p>Not thread-safe to open; {@link #tokenizer()} is thread-safe once made.
 */
final class ModelPackage implements AutoCloseable {
  static final String CARD = "pockettune-model.json";
  static final String GRAPH = "model.onnx";
  private static final String BUILT_IN_GRAPH = "base.onnx";
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path dir;
  private final Path graph;
  private final ModelCard card;
  private final String graphHash;
  private final String cardHash;
  private final boolean builtIn;
  private TextTokenizer tokenizer;

  private ModelPackage(Path dir, Path graph, ModelCard card, String graphHash, boolean builtIn) {
    this.dir = dir;
    this.graph = graph;
    this.card = card;
    this.graphHash = graphHash;
    this.cardHash = sha256(card.toJson().getBytes(StandardCharsets.UTF_8));
    this.builtIn = builtIn;
  }

  /**
   * Opens the package in {@code dir}: checks that its files are there and its card parses.
   *
   * @throws IllegalArgumentException one sentence naming the file and the fix
   */
  static ModelPackage load(Path dir) {
    Path d = dir.toAbsolutePath().normalize();
    if (!Files.isDirectory(d)) {
      throw new IllegalArgumentException("--model " + dir + " is not a folder: give a model package made by"
          + " 'pockettune model init'");
    }
    Path cardFile = d.resolve(CARD);
    if (!Files.isRegularFile(cardFile)) {
      throw new IllegalArgumentException("the model package " + d + " has no " + CARD + ": make the package with"
          + " 'pockettune model init --onnx FILE --out " + dir + "'");
    }
    Path graph = d.resolve(GRAPH);
    if (!Files.isRegularFile(graph)) {
      throw new IllegalArgumentException("the model package " + d + " has no " + GRAPH + ": put the ONNX export there"
          + " (with its external-data files)");
    }
    ModelCard card;
    try {
      card = ModelCard.parse(Files.readString(cardFile), cardFile.toString());
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read " + cardFile + " (" + e.getMessage() + "): check its permissions", e);
    }
    if (!card.tokenizer().equals(ModelCard.BYTES) && !Files.isRegularFile(d.resolve(card.tokenizer()))) {
      throw new IllegalArgumentException("the model package " + d + " has no " + card.tokenizer()
          + ", which its card names as the tokenizer: copy the model's tokenizer.json into the package");
    }
    return new ModelPackage(d, graph, card, fileSha256(graph), false);
  }

  /** The built-in demo decoder, written into the data directory on first use. */
  static ModelPackage builtIn(DataDirectory data) throws IOException {
    DecoderLmConfig config = DecoderLmConfig.demo();
    Path graph = data.builtInModel().resolve(BUILT_IN_GRAPH);
    if (!Files.exists(graph)) {
      data.createRoot();
      writeAtomically(graph, DecoderLmBuilder.build(config));
    }
    ModelCard card = ModelCard.demo(config.maxPositions());
    Path cardFile = data.builtInModel().resolve(CARD);
    if (!Files.exists(cardFile)) {
      writeAtomically(cardFile, card.toJson().getBytes(StandardCharsets.UTF_8));
    }
    return new ModelPackage(data.builtInModel(), graph, card, fileSha256(graph), true);
  }

  /** {@code --model DIR} when given, else the built-in package. */
  static ModelPackage resolve(Path modelDir, DataDirectory data) throws IOException {
    if (modelDir != null) {
      return load(modelDir);
    }
    // Without --model the built-in model would be written into the directory; refuse first when the
    // directory belongs to another package.
    if (Files.exists(data.binding())) {
      JsonNode bound = JSON.readTree(data.binding().toFile());
      String path = bound.path("path").asText("");
      if (!path.equals("built-in")) {
        DecoderLmConfig demo = DecoderLmConfig.demo();
        String demoHash = packageHash(sha256(DecoderLmBuilder.build(demo)),
            sha256(ModelCard.demo(demo.maxPositions()).toJson().getBytes(StandardCharsets.UTF_8)));
        throw new IllegalArgumentException("the data directory " + data + " is bound to model package "
            + bound.path("package").asText() + " (" + path + "), but no --model was given and the built-in demo"
            + " model is " + demoHash + ": pass --model " + path);
      }
    }
    return builtIn(data);
  }

  Path directory() {
    return dir;
  }

  Path graph() {
    return graph;
  }

  ModelCard card() {
    return card;
  }

  boolean isBuiltIn() {
    return builtIn;
  }

  /** @return the package identity: SHA-256 over the graph's and the card's hashes */
  String hash() {
    return packageHash(graphHash, cardHash);
  }

  private static String packageHash(String graphHash, String cardHash) {
    return sha256((graphHash + ":" + cardHash).getBytes(StandardCharsets.UTF_8));
  }

  String graphHash() {
    return graphHash;
  }

  /** The tokenizer the card names (made once). */
  synchronized TextTokenizer tokenizer() {
    if (tokenizer == null) {
      tokenizer = card.tokenizer().equals(ModelCard.BYTES)
          ? new ByteTokenizer()
          : HuggingFaceTextTokenizer.load(dir.resolve(card.tokenizer()), card.maxTokens());
    }
    return tokenizer;
  }

  /** The tokenizer that turns an example's text into its tokens (see {@link ModelObjectives#encoder}). */
  TextTokenizer exampleTokenizer() {
    return ModelObjectives.encoder(this);
  }

  /** What trains, per the card. */
  TrainableSelection selection() {
    ModelCard.Trainable t = card.trainable();
    return switch (t.kind()) {
      case "all" -> TrainableSelection.all();
      case "norms" -> TrainableSelection.biasesAndNorms();
      case "lora" -> TrainableSelection.lora(t.r() == null ? 8 : t.r(), t.alpha() == null ? 16f : t.alpha(),
          t.targets() == null ? TrainableSelection.DEFAULT_LORA_TARGETS : t.targets());
      case "patterns" -> TrainableSelection.matching(String.join("|", t.patterns()));
      case "side" -> TrainableSelection.side(t.r() == null ? ModelCard.Trainable.SIDE_DEFAULT_R : t.r(),
          t.targets() == null ? TrainableSelection.SIDE_DEFAULT_TAPS : t.targets());
      default -> throw new AssertionError("the card was checked: " + t.kind());
    };
  }

  /** How events become training examples under this card's objective. */
  ExampleMapper mapper() {
    if (!card.classification()) {
      return ExampleMapper.defaults();
    }
    String template = card.objective().equals(ModelCard.PROMPT_CLASSIFICATION) ? card.template() : null;
    return ExampleMapper.labelled(card.labelAttributeOrDefault(), card.labels(), template);
  }

  /** Loads the graph into a training session under the card's objective and trainable choice. */
  LossModel open(int threads) {
    return ModelObjectives.open(this, threads);
  }

  /**
   * Binds the data directory to this package on first use, or checks that it is bound to it.
   *
   * @throws IllegalArgumentException when the directory is bound to another package
   */
  void bind(DataDirectory data) throws IOException {
    if (checkBinding(data)) {
      return;
    }
    ObjectNode b = JSON.createObjectNode();
    b.put("package", hash());
    b.put("graph_sha256", graphHash);
    b.put("card_sha256", cardHash);
    b.put("path", builtIn ? "built-in" : dir.toString());
    b.put("objective", card.objective());
    b.put("bound_at", Instant.now().toString());
    writeAtomically(data.binding(), (JSON.writerWithDefaultPrettyPrinter().writeValueAsString(b) + "\n").getBytes(StandardCharsets.UTF_8));
  }

  /**
   * Checks that the data directory is bound to this package, if it is bound at all; writes nothing.
   *
   * @return whether it is bound (to this package)
   * @throws IllegalArgumentException when it is bound to another package
   */
  boolean checkBinding(DataDirectory data) throws IOException {
    Path file = data.binding();
    if (!Files.exists(file)) {
      return false;
    }
    JsonNode bound = JSON.readTree(file.toFile());
    String hash = bound.path("package").asText("");
    if (!hash.equals(hash())) {
      String where = bound.path("path").asText("");
      throw new IllegalArgumentException("the data directory " + data + " is bound to model package " + hash
          + (where.isEmpty() ? "" : " (" + where + ")") + ", but " + describe() + " is " + hash()
          + ": pass that package with --model, or use another --data-dir");
    }
    return true;
  }

  String describe() {
    return builtIn ? "the built-in demo model (no --model given)" : "the model package " + dir;
  }

  @Override
  public synchronized void close() {
    if (tokenizer instanceof AutoCloseable c) {
      try {
        c.close();
      } catch (Exception e) {
        throw new IllegalStateException("cannot close the tokenizer: " + e.getMessage(), e);
      }
    }
    tokenizer = null;
  }

  static void writeAtomically(Path file, byte[] bytes) throws IOException {
    Files.createDirectories(file.toAbsolutePath().getParent());
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    Files.write(tmp, bytes);
    Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  private static String fileSha256(Path file) {
    try (InputStream in = new DigestInputStream(Files.newInputStream(file), digest())) {
      byte[] buf = new byte[1 << 16];
      while (in.read(buf) >= 0) {
        // the digest stream hashes as it reads
      }
      return HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
    } catch (IOException e) {
      throw new IllegalArgumentException("cannot read the model file " + file + " (" + e.getMessage() + "): check the path", e);
    }
  }

  static String sha256(byte[] bytes) {
    return HexFormat.of().formatHex(digest().digest(bytes));
  }

  private static MessageDigest digest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("SHA-256 is required of every JDK", e);
    }
  }
}
