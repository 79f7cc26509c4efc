package io.pockettune.store;

import static io.pockettune.store.ModelStoreTest.IDENTITY;
import static io.pockettune.store.ModelStoreTest.commitUpTo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Snapshots ({@link SnapshotStore}), through the facade. */
class SnapshotStoreTest {
  @TempDir Path dir;

  static FloatBuffer weightsBuffer(float[] values) {
    FloatBuffer direct =
        ByteBuffer.allocateDirect(values.length * Float.BYTES)
            .order(ByteOrder.nativeOrder())
            .asFloatBuffer();
    direct.put(values).flip();
    return direct;
  }

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 300_000, SnapshotCodec.CHUNK_FLOATS + 3})
  void putSnapshot_reopen_bitExact(int floats) {
    float[] values = SnapshotCodecTest.weights(floats, 11);
    FloatBuffer buffer = weightsBuffer(values);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      store.putSnapshot(0, buffer);
      assertEquals(0, buffer.position());
      assertEquals(floats, buffer.limit());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      Snapshot snapshot = store.snapshotAtOrBefore(0).orElseThrow();
      assertEquals(0, snapshot.step());
      assertArrayEquals(SnapshotCodecTest.bits(values), SnapshotCodecTest.bits(snapshot.values()));
    }
  }

  @Test
  void manySnapshots_memtablesAndBlockCacheStayWithinTheirBudgets() {
    // Each snapshot is about 1.7 MB (Gaussian values deflate little); 30 of them, left in RocksDB's
    // default 64 MiB memtables, would all stay in memory: the resident-set growth bench soak found.
    float[] values = SnapshotCodecTest.weights(446_336, 5);
    long most = 0;
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 30);
      for (int step = 1; step <= 30; step++) {
        values[step] = step;
        store.putSnapshot(step, weightsBuffer(values));
        most = Math.max(most, store.memoryUsage().get("memtables"));
      }
      for (int step = 1; step <= 30; step++) {
        assertEquals((float) step, store.snapshotAtOrBefore(step).orElseThrow().values()[step]);
      }
      assertTrue(store.memoryUsage().get("block_cache") <= StoreDatabase.BLOCK_CACHE_BYTES,
          "block cache " + store.memoryUsage());
    }
    assertTrue(most > 0, "the memtables were measured");
    assertTrue(most <= 2 * StoreDatabase.MEMTABLE_BYTES,
        "memtables reached " + most + " bytes, over twice the budget of " + StoreDatabase.MEMTABLE_BYTES);
  }

  @Test
  void snapshotAtOrBefore_picksLatestNotAfter() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      assertEquals(Optional.empty(), store.snapshotAtOrBefore(100));
      commitUpTo(store, 300);
      for (long step : new long[] {256, 0, 10, 255}) {
        store.putSnapshot(step, FloatBuffer.wrap(new float[] {step, -step}));
      }
      long[][] queryAndExpected = {
        {0, 0}, {9, 0}, {10, 10}, {11, 10}, {254, 10}, {255, 255}, {256, 256}, {300, 256},
        {Long.MAX_VALUE, 256}
      };
      for (long[] q : queryAndExpected) {
        Snapshot s = store.snapshotAtOrBefore(q[0]).orElseThrow();
        assertEquals(q[1], s.step(), "at or before " + q[0]);
        assertEquals((float) q[1], s.values()[0]);
      }
      assertEquals(Optional.empty(), store.snapshotAtOrBefore(-1));
    }
  }

  @Test
  void putSnapshot_aheadOfLastStep_refused() {
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 3);
      IllegalStateException e =
          assertThrows(
              IllegalStateException.class,
              () -> store.putSnapshot(4, FloatBuffer.wrap(new float[] {1})));
      assertTrue(e.getMessage().contains("last committed step 3"), e.getMessage());
      assertEquals(Optional.empty(), store.snapshotAtOrBefore(10));
    }
  }

  @Test
  void putSnapshot_replacedBySmaller_leavesNoStaleChunk() {
    float[] large = SnapshotCodecTest.weights(SnapshotCodec.CHUNK_FLOATS + 10, 12);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 1);
      store.putSnapshot(1, FloatBuffer.wrap(large));
      assertTrue(store.rawGet(Column.SNAPSHOTS, SnapshotCodec.key(1, 1)) != null);
      store.putSnapshot(1, FloatBuffer.wrap(new float[] {42f}));
      assertEquals(null, store.rawGet(Column.SNAPSHOTS, SnapshotCodec.key(1, 1)));
      assertArrayEquals(new float[] {42f}, store.snapshotAtOrBefore(1).orElseThrow().values());
    }
  }

  @Test
  void snapshotAtOrBefore_corruptedBytes_checksumErrorNamingStep() {
    float[] values = SnapshotCodecTest.weights(300_000, 13);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      commitUpTo(store, 20);
      store.putSnapshot(10, FloatBuffer.wrap(values));
      store.putSnapshot(20, FloatBuffer.wrap(values));
      byte[] key = SnapshotCodec.key(20, 0);
      byte[] stored = store.rawGet(Column.SNAPSHOTS, key);
      // Re-encode different floats under the original checksum: a payload that decodes cleanly but
      // is not what was stored, which only the checksum can catch.
      float[] other = values.clone();
      other[123_456] = Math.nextUp(other[123_456]);
      byte[] forged = SnapshotCodec.encode(FloatBuffer.wrap(other), SnapshotCodec.CHUNK_FLOATS).get(0);
      System.arraycopy(stored, 14, forged, 14, 4);
      store.rawPut(Column.SNAPSHOTS, key, forged);
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      StoreCorruptedException e =
          assertThrows(StoreCorruptedException.class, () -> store.snapshotAtOrBefore(25));
      assertTrue(e.getMessage().contains("snapshot of step 20 fails its checksum"), e.getMessage());
      // The earlier snapshot is intact.
      assertArrayEquals(
          SnapshotCodecTest.bits(values),
          SnapshotCodecTest.bits(store.snapshotAtOrBefore(19).orElseThrow().values()));
    }
  }
}
