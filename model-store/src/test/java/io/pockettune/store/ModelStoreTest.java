package io.pockettune.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.trainer.StepRecord;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Opening, identity, read-only use and closing ({@link StoreDatabase}, {@link RunHistory}), and the
 * fixtures the store tests share.
 */
class ModelStoreTest {
  static final RunIdentity IDENTITY =
      new RunIdentity("sha256:1111aaaa", 1, "layers.0.q[8, 8];layers.0.v[8, 8];", "{\"lr\":1e-6}");
  static final SourcePartition MESSAGES_0 = new SourcePartition("messages", 0);
  static final SourcePartition MESSAGES_1 = new SourcePartition("messages", 1);
  static final SourcePartition NOTES_0 = new SourcePartition("notes", 0);

  @TempDir Path dir;

  static StepRecord record(long step) {
    return new StepRecord(
        step, step * 0x9E3779B97F4A7C15L, step * 0.25f - 3f, 1e-6f, 1e-3f, 2.5f, 2.4f, 16,
        1_700_000_000_000L + step);
  }

  /** Offsets a commit of {@code step} writes: a function of the step, so any pairing is checkable. */
  static Map<SourcePartition, Long> offsetsOf(long step) {
    return Map.of(MESSAGES_0, step * 16, NOTES_0, step * 3 + 1);
  }

  static void commitUpTo(ModelStore store, long lastStep) {
    for (long n = store.lastStep() + 1; n <= lastStep; n++) {
      store.commitStep(record(n), offsetsOf(n));
    }
  }

  @Test
  void manyFlushes_leaveAFamilyAtMostItsFileBudget() {
    // Every flush of the steps family is a file whose keys lie above all others: without merging,
    // 60 flushes would leave 60 files.
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      long most = 0;
      for (int flush = 1; flush <= 60; flush++) {
        commitUpTo(store, flush * 70L);
        store.sizeOnDisk(); // flushes every family
        most = Math.max(most, store.tableFiles().get("steps"));
      }
      assertTrue(most > 1, "flushes made files: " + most);
      assertTrue(most <= StoreDatabase.MAX_SMALL_FILES_PER_FAMILY + 1, "the steps family held " + most + " files");
      assertEquals(60 * 70L, store.lastStep());
      assertEquals(60 * 70L, store.steps(1, store.lastStep()).size(), "every step is still there");
    }
  }

  @Test
  void open_differentBaseModel_refusedNamingBoth() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 2);
    }
    RunIdentity other =
        new RunIdentity("sha256:2222bbbb", 1, IDENTITY.trainableLayout(), IDENTITY.runConfig());
    StoreMismatchException e =
        assertThrows(StoreMismatchException.class, () -> ModelStore.open(dir, other));
    assertTrue(e.getMessage().contains("sha256:1111aaaa"), e.getMessage());
    assertTrue(e.getMessage().contains("sha256:2222bbbb"), e.getMessage());
    assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
    assertTrue(e.getMessage().contains("--data-dir"), e.getMessage());
    // The refused open released the store: the original run can still open it.
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(2, store.lastStep());
    }
  }

  @Test
  void open_differentKernelVersion_refusedNamingBoth() {
    ModelStore.open(dir, IDENTITY).close();
    RunIdentity other =
        new RunIdentity(IDENTITY.baseModelHash(), 7, IDENTITY.trainableLayout(), "");
    StoreMismatchException e =
        assertThrows(StoreMismatchException.class, () -> ModelStore.open(dir, other));
    assertTrue(e.getMessage().contains("kernel version 1"), e.getMessage());
    assertTrue(e.getMessage().contains("uses version 7"), e.getMessage());
  }

  @Test
  void open_differentTrainableLayout_refusedNamingBoth() {
    ModelStore.open(dir, IDENTITY).close();
    RunIdentity other =
        new RunIdentity(IDENTITY.baseModelHash(), 1, "layers.0.q[8, 8];", IDENTITY.runConfig());
    StoreMismatchException e =
        assertThrows(StoreMismatchException.class, () -> ModelStore.open(dir, other));
    assertTrue(e.getMessage().contains(IDENTITY.trainableLayout()), e.getMessage());
    assertTrue(e.getMessage().contains("uses layers.0.q[8, 8];:"), e.getMessage());
  }

  @Test
  void open_changedRunConfig_keepsLatestAndRecordsWhen() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 5);
      assertEquals(Map.of(1L, IDENTITY.runConfig()), store.runConfigs());
    }
    RunIdentity changed = IDENTITY.withRunConfig("{\"lr\":5e-7}");
    try (ModelStore store = ModelStore.open(dir, changed)) {
      assertEquals(changed, store.identity());
      commitUpTo(store, 8);
    }
    try (ModelStore store = ModelStore.open(dir, changed)) {
      assertEquals(Map.of(1L, IDENTITY.runConfig(), 6L, changed.runConfig()), store.runConfigs());
    }
    try (ModelStore store = ModelStore.openReadOnly(dir)) {
      assertEquals(changed, store.identity());
    }
  }

  @Test
  void open_whileOpen_inUseMessage() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 1);
      StoreException e = assertThrows(StoreException.class, () -> ModelStore.open(dir, IDENTITY));
      assertTrue(e.getMessage().contains("is in use"), e.getMessage());
      assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
      // The failed open did not disturb the first one.
      store.commitStep(record(2), offsetsOf(2));
      assertEquals(2, store.lastStep());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(2, store.lastStep());
    }
  }

  @Test
  void open_pathIsFile_clearMessage() throws IOException {
    Path file = Files.writeString(dir.resolve("model"), "not a store");
    StoreException e = assertThrows(StoreException.class, () -> ModelStore.open(file, IDENTITY));
    assertTrue(e.getMessage().contains("is a file, not a directory"), e.getMessage());
  }

  @Test
  void open_missingDirectory_createsIt() {
    Path nested = dir.resolve("data").resolve("model");
    try (ModelStore store = ModelStore.open(nested, IDENTITY)) {
      assertEquals(IDENTITY, store.identity());
    }
    assertTrue(Files.isRegularFile(nested.resolve("CURRENT")));
  }

  @Test
  void openReadOnly_missingStore_clearMessage() {
    Path missing = dir.resolve("nothing-here");
    StoreException e = assertThrows(StoreException.class, () -> ModelStore.openReadOnly(missing));
    assertTrue(e.getMessage().contains("there is no model store at " + missing), e.getMessage());
    assertFalse(Files.exists(missing), "a read-only open must not create anything");
  }

  @Test
  void openReadOnly_whileWriterOpen_readsStateAndRefusesWrites() {
    try (ModelStore writer = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(writer, 4);
      writer.markCheckpoint("first", Map.of());
      try (ModelStore reader = ModelStore.openReadOnly(dir)) {
        assertEquals(IDENTITY, reader.identity());
        assertEquals(4, reader.lastStep());
        assertEquals(offsetsOf(4), reader.committedOffsets());
        assertEquals(writer.checkpoints(), reader.checkpoints());
        assertThrows(IllegalStateException.class, () -> reader.commitStep(record(5), Map.of()));
        assertThrows(IllegalStateException.class, () -> reader.markCheckpoint(null, Map.of()));
      }
      writer.commitStep(record(5), offsetsOf(5));
    }
  }

  @Test
  void close_thenCall_throwsAndCloseIsIdempotent() {
    ModelStore store = ModelStore.open(dir, IDENTITY);
    store.close();
    store.close();
    assertThrows(IllegalStateException.class, store::lastStep);
    assertThrows(IllegalStateException.class, () -> store.step(1));
    assertThrows(IllegalStateException.class, () -> store.commitStep(record(1), Map.of()));
  }
}
