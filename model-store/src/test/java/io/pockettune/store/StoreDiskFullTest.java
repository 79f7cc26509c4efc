package io.pockettune.store;

import static io.pockettune.store.ModelStoreTest.IDENTITY;
import static io.pockettune.store.ModelStoreTest.offsetsOf;
import static io.pockettune.store.ModelStoreTest.record;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The disk under the store fills while steps commit (a real tmpfs, {@link SmallDisk}): the commit
 * that finds it full throws {@link StoreFullException} in one sentence and commits nothing; after
 * the filler is deleted the same commit succeeds in the same open store (which resumes RocksDB
 * from the read-only state the error left it in), and after a reopen every committed step is there
 * with its offsets.
 */
class StoreDiskFullTest {
  @TempDir Path dir;

  @Test
  void aCommitOnAFullDiskFailsWithNothingCommittedAndSucceedsOnceSpaceIsFree() throws Exception {
    try (SmallDisk disk = SmallDisk.mount(dir.resolve("disk"), 16)) {
      Path storeDir = disk.dir().resolve("store");
      long last;
      try (ModelStore store = ModelStore.open(storeDir, IDENTITY)) {
        ModelStoreTest.commitUpTo(store, 20);
        disk.fill();
        StoreFullException full = null;
        long n = store.lastStep() + 1;
        for (; n < 200_000 && full == null; n++) {
          try {
            store.commitStep(record(n), offsetsOf(n));
          } catch (StoreFullException e) {
            full = e;
          }
        }
        assertNotNull(full, "the disk never filled");
        long failedStep = n - 1;
        assertEquals(failedStep - 1, store.lastStep(), "the failed commit committed nothing");
        assertTrue(full.getMessage().startsWith("could not commit step " + failedStep + " in the model store at "),
            full.getMessage());
        assertTrue(full.getMessage().contains("the disk is full; free some space and try again"), full.getMessage());
        assertEquals(offsetsOf(failedStep - 1).get(ModelStoreTest.MESSAGES_0),
            store.committedOffsets().get(ModelStoreTest.MESSAGES_0));

        // Still full: the retry fails the same way, and still commits nothing.
        long stillFull = failedStep;
        StoreFullException again = org.junit.jupiter.api.Assertions.assertThrows(StoreFullException.class,
            () -> store.commitStep(record(stillFull), offsetsOf(stillFull)));
        assertTrue(again.getMessage().contains("the disk is full"), again.getMessage());

        disk.free();
        store.commitStep(record(failedStep), offsetsOf(failedStep));
        ModelStoreTest.commitUpTo(store, failedStep + 10);
        last = store.lastStep();
        assertEquals(failedStep + 10, last);
      }
      try (ModelStore store = ModelStore.open(storeDir, IDENTITY)) {
        assertEquals(last, store.lastStep());
        assertEquals(record(last), store.step(last).orElseThrow());
        assertEquals(last, store.steps(1, last).size());
        assertEquals(offsetsOf(last).get(ModelStoreTest.MESSAGES_0), store.committedOffsets().get(ModelStoreTest.MESSAGES_0));
      }
    }
  }
}
