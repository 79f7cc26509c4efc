package io.pockettune.store;

import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import java.util.NavigableMap;

/**
 * A model brought to a step of its trajectory by {@link ModelStore#restore}.
 *
 * @param trainer      a trainer over the restored parameters, positioned at {@code step}: its
 *                     next step is {@code step + 1}. Its config is the one for the store's current
 *                     run config ({@link ModelStore#identity()}), under which the next committed
 *                     step is recorded; to continue under another, make a {@code new
 *                     MezoTrainer(model, config, kernel, step)}
 * @param step         the step restored
 * @param snapshotStep the snapshot restoring started from (0 with none: the base model)
 * @param replayed     steps replayed on top of it
 * @param nanos        time taken, snapshot read included
 * @param configs      the configs replay applied, each by the first step replayed under it (from
 *                     {@code snapshotStep + 1}); empty if nothing was replayed. Unmodifiable.
 * @param skippedSnapshots why each damaged snapshot after {@code snapshotStep} was passed over,
 *                     newest first (restore then replayed from an earlier one, or from the base);
 *                     empty when none was. Unmodifiable.
 */
public record Restored(
    MezoTrainer trainer,
    long step,
    long snapshotStep,
    long replayed,
    long nanos,
    NavigableMap<Long, MezoConfig> configs,
    java.util.List<String> skippedSnapshots) {}
