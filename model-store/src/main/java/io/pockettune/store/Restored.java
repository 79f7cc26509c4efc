package io.pockettune.store;

import io.pockettune.trainer.MezoTrainer;

/**
 * A model brought to a step of its trajectory by {@link ModelStore#restore}.
 *
 * @param trainer      a trainer over the restored parameters, positioned at {@code step}: its
 *                     next step is {@code step + 1}
 * @param step         the step restored
 * @param snapshotStep the snapshot restoring started from (0 with none: the base model)
 * @param replayed     steps replayed on top of it
 * @param nanos        time taken, snapshot read included
 */
public record Restored(MezoTrainer trainer, long step, long snapshotStep, long replayed, long nanos) {}
