package io.pockettune.store;

import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What {@link ModelStore#rollbackTo} did.
 *
 * @param step                 the step the live trajectory now ends at
 * @param branch               the branch the later steps went to, or empty if there were none
 * @param checkpointsAbandoned ids of the checkpoints now on that branch
 * @param snapshotsDropped     snapshots after {@code step} that were deleted
 * @param offsets              the committed offsets now, those of {@code step}; sorted
 */
public record Rollback(
    long step,
    Optional<Branch> branch,
    List<Long> checkpointsAbandoned,
    int snapshotsDropped,
    Map<SourcePartition, Long> offsets) {

  /** @return the number of steps taken off the live trajectory */
  public long stepsAbandoned() {
    return branch.map(Branch::steps).orElse(0L);
  }
}
