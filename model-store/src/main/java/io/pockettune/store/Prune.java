package io.pockettune.store;

/**
 * What {@link ModelStore#prune} removed, and the space it gave back.
 *
 * @param branches    abandoned branches deleted
 * @param steps       steps on them
 * @param snapshots   snapshots deleted
 * @param bytesBefore bytes of the store's table and blob files before, memtables flushed
 * @param bytesAfter  the same after deleting and compacting
 */
public record Prune(long branches, long steps, long snapshots, long bytesBefore, long bytesAfter) {
  /** @return bytes given back to the file system; may be negative on a tiny store */
  public long bytesReclaimed() {
    return bytesBefore - bytesAfter;
  }
}
