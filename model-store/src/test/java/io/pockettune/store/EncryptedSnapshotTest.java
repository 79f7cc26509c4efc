package io.pockettune.store;

import static io.pockettune.store.ModelStoreTest.IDENTITY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Encrypted snapshots in a real RocksDB store: bit-identical restore with the key, no clear float
 * bytes in the store's files, and refusals without the key, with another key, and of a mix.
 */
class EncryptedSnapshotTest {
  @TempDir Path dir;

  private static byte[] key(long seed) {
    byte[] key = new byte[32];
    new Random(seed).nextBytes(key);
    return key;
  }

  @Test
  void encryptedSnapshotRestoresBitIdentically() throws IOException {
    int floats = SnapshotCodec.CHUNK_FLOATS + 17;
    float[] values = randomBits(floats, 5);
    try (ModelStore store = ModelStore.open(dir, IDENTITY).encryptSnapshots(key(1))) {
      store.putSnapshot(0, SnapshotStoreTest.weightsBuffer(values));
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY).encryptSnapshots(key(1))) {
      Snapshot snapshot = store.snapshotAtOrBefore(0).orElseThrow();
      assertArrayEquals(SnapshotCodecTest.bits(values), SnapshotCodecTest.bits(snapshot.values()));
    }
    try (ModelStore store = ModelStore.openReadOnly(dir).encryptSnapshots(key(1))) {
      assertArrayEquals(
          SnapshotCodecTest.bits(values),
          SnapshotCodecTest.bits(store.snapshotAtOrBefore(0).orElseThrow().values()));
    }
    // 64 little-endian float bytes from the middle of the snapshot: present in a clear store
    byte[] probe = new byte[64];
    ByteBuffer.wrap(probe).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(values, 1000, 16);
    assertFalse(anyFileContains(dir, probe), "an encrypted store must not hold the floats' bytes");

    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      StoreException e = assertThrows(StoreException.class, () -> store.snapshotAtOrBefore(0));
      assertTrue(e.getMessage().contains("opened without a key"), e.getMessage());
    }
    try (ModelStore store = ModelStore.open(dir, IDENTITY).encryptSnapshots(key(2))) {
      StoreException e = assertThrows(StoreException.class, () -> store.snapshotAtOrBefore(0));
      assertTrue(e.getMessage().contains("fails authentication"), e.getMessage());
    }
  }

  @Test
  void clearSnapshotIsRefusedByAnEncryptedStoreAndTheCheckCanFail() throws IOException {
    float[] values = randomBits(300, 9);
    try (ModelStore store = ModelStore.open(dir, IDENTITY)) {
      store.putSnapshot(0, SnapshotStoreTest.weightsBuffer(values));
    }
    byte[] probe = new byte[64];
    ByteBuffer.wrap(probe).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(values, 100, 16);
    // random bit patterns do not deflate, so the raw codec stores them as they are
    assertTrue(anyFileContains(dir, probe), "a clear store holds the floats, or the check above proves nothing");
    try (ModelStore store = ModelStore.open(dir, IDENTITY).encryptSnapshots(key(1))) {
      StoreException e = assertThrows(StoreException.class, () -> store.snapshotAtOrBefore(0));
      assertTrue(e.getMessage().contains("stored in the clear"), e.getMessage());
    }
  }

  /** @return floats of random bit patterns (NaN payloads included), which do not compress */
  private static float[] randomBits(int n, long seed) {
    Random random = new Random(seed);
    float[] values = new float[n];
    for (int i = 0; i < n; i++) {
      values[i] = Float.intBitsToFloat(random.nextInt());
    }
    return values;
  }

  static boolean anyFileContains(Path root, byte[] needle) throws IOException {
    try (Stream<Path> files = Files.walk(root)) {
      for (Path f : files.filter(Files::isRegularFile).toList()) {
        byte[] bytes = Files.readAllBytes(f);
        outer:
        for (int i = 0; i + needle.length <= bytes.length; i++) {
          for (int j = 0; j < needle.length; j++) {
            if (bytes[i + j] != needle[j]) {
              continue outer;
            }
          }
          return true;
        }
      }
    }
    return false;
  }
}
