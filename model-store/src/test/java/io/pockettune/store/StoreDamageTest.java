package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A store whose files were damaged on disk: a missing RocksDB table file is refused at open in one
 * sentence naming that file and what to do.
 */
class StoreDamageTest {
  @TempDir Path dir;

  @Test
  void aMissingTableFileIsNamedInOneSentence() throws IOException {
    try (ModelStore store = ModelStore.open(dir, ModelStoreTest.IDENTITY)) {
      for (long n = 1; n <= 50; n++) {
        store.commitStep(new StepRecord(n, n, 0.5f, 1e-3f, 1e-3f, 1f, 1f, 1, n), Map.of(ModelStoreTest.MESSAGES_0, n));
      }
    }
    // Reopening recovers the write-ahead log into a table file.
    ModelStore.openExisting(dir).close();
    List<Path> tables;
    try (Stream<Path> files = Files.list(dir)) {
      tables = files.filter(p -> p.getFileName().toString().endsWith(".sst")).toList();
    }
    assertFalse(tables.isEmpty(), "reopening flushed the steps to table files");
    Path gone = tables.get(0);
    Files.delete(gone);
    StoreException e = assertThrows(StoreException.class, () -> ModelStore.openExisting(dir).close());
    String m = e.getMessage();
    assertTrue(m.contains(gone.getFileName().toString()), "names the file: " + m);
    assertTrue(m.contains("backup") || m.contains("new --data-dir"), "says what to do: " + m);
    assertFalse(m.contains("\n"), "one line: " + m);
  }
}
