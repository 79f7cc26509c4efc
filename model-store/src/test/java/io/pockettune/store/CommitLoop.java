package io.pockettune.store;

import java.nio.file.Path;

/**
 * Child process for {@link CrashTest}: commits steps forever into the store given as the first
 * argument, printing "committed N" after commitStep returns, until it is killed.
 */
final class CommitLoop {
  private CommitLoop() {}

  public static void main(String[] args) {
    try (ModelStore store = ModelStore.open(Path.of(args[0]), ModelStoreTest.IDENTITY)) {
      for (long n = store.lastStep() + 1; ; n++) {
        store.commitStep(ModelStoreTest.record(n), ModelStoreTest.offsetsOf(n));
        System.out.println("committed " + n);
        System.out.flush();
      }
    }
  }
}
