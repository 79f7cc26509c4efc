package io.pockettune.trainer;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/** The real data beside the checkout (../shared/data); tests that need it skip when it is absent. */
final class SharedData {
  private SharedData() {}

  static Path require(String relative) {
    String root = System.getProperty("pockettune.sharedData", "../../shared/data");
    Path p = Path.of(root).resolve(relative);
    assumeTrue(Files.exists(p), "skipped: " + p + " is absent (the real data in ../shared/data is not in a fresh clone)");
    return p;
  }
}
