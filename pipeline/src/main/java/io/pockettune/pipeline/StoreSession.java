package io.pockettune.pipeline;

import io.pockettune.ingest.OwnerOnly;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.store.RunIdentity;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.PerturbationKernel;
import java.io.IOException;
import java.nio.file.Files;

/**
 * A model package's loss model opened against a data directory's store: what training, restore,
 * rollback, replay and export all start from. Opening checks the directory's binding to the
 * package (a training open binds an unbound directory); the store then checks the base model's
 * hash, the trainable layout and the kernel version against its trajectory.
 *
 * <p>Not thread-safe; closes the model, the kernel and the store it opened.
 */
final class StoreSession implements AutoCloseable {
  private final ModelPackage pkg;
  private final LossModel model;
  private final PerturbationKernel kernel;
  private final ModelStore store;

  private StoreSession(ModelPackage pkg, LossModel model, PerturbationKernel kernel, ModelStore store) {
    this.pkg = pkg;
    this.model = model;
    this.kernel = kernel;
    this.store = store;
  }

  /**
   * Opens for training: binds the directory to the package, creates the store if it is new, and
   * records {@code config} as the run config in force from the next step.
   */
  static StoreSession forTraining(DataDirectory data, ModelPackage pkg, MezoConfig mezo, int batch, int maxTokens,
      int threads) throws IOException {
    return forRunConfig(data, pkg, RunConfig.of(pkg, mezo, batch, maxTokens).toJson(), threads);
  }

  /**
   * As {@link #forTraining}, recording a run config given as the store keeps it: a pull records the
   * config the fleet job trained the pulled steps under.
   */
  static StoreSession forRunConfig(DataDirectory data, ModelPackage pkg, String runConfig, int threads)
      throws IOException {
    pkg.bind(data);
    LossModel model = pkg.open(threads);
    PerturbationKernel kernel = null;
    try {
      kernel = new PerturbationKernel(threads);
      if (!Files.isRegularFile(data.store())) {
        OwnerOnly.createDirectories(data.store()); // snapshots hold what was learnt from the user's text
      }
      ModelStore store = data.withSnapshotKey(ModelStore.open(data.store(), new RunIdentity(model.baseModelHash(),
          PerturbationKernel.VERSION, model.parameters().layout(), runConfig)));
      return new StoreSession(pkg, model, kernel, store);
    } catch (RuntimeException e) {
      if (kernel != null) {
        kernel.close();
      }
      model.close();
      throw e;
    }
  }

  /** Opens an existing store read-only (another process may be training into it). */
  static StoreSession readOnly(DataDirectory data, ModelPackage pkg, int threads) throws IOException {
    return existing(data, pkg, threads, false);
  }

  /** Opens an existing store for writing (rollback), without recording a run config. */
  static StoreSession writable(DataDirectory data, ModelPackage pkg, int threads) throws IOException {
    return existing(data, pkg, threads, true);
  }

  /**
   * Opens an existing store for writing to forget events: like {@link #writable}, but without
   * refusing an unfinished forget, which the caller finishes.
   */
  static StoreSession forForget(DataDirectory data, ModelPackage pkg, int threads) throws IOException {
    requireStore(data);
    return open(data, pkg, threads, true);
  }

  /** Refuses a data directory without a model store, in one sentence. */
  static void requireStore(DataDirectory data) {
    if (!Files.isDirectory(data.store())) {
      throw new IllegalArgumentException("there is no model store in " + data
          + ": check --data-dir (it must be a directory that demo or serve trained in)");
    }
  }

  private static StoreSession existing(DataDirectory data, ModelPackage pkg, int threads, boolean write) throws IOException {
    requireStore(data);
    Forgetting.refuseIfUnfinished(data);
    return open(data, pkg, threads, write);
  }

  private static StoreSession open(DataDirectory data, ModelPackage pkg, int threads, boolean write) throws IOException {
    pkg.checkBinding(data);
    ModelStore store = data.withSnapshotKey(
        write ? ModelStore.openExisting(data.store()) : ModelStore.openReadOnly(data.store()));
    LossModel model = null;
    try {
      if (!store.identity().baseModelHash().equals(pkg.graphHash())) {
        throw new IllegalArgumentException("the store in " + data + " was trained from base model "
            + store.identity().baseModelHash() + ", but " + pkg.describe() + " has " + pkg.graphHash()
            + ": pass the package it was trained with as --model");
      }
      model = pkg.open(threads);
      return new StoreSession(pkg, model, new PerturbationKernel(threads), store);
    } catch (RuntimeException e) {
      if (model != null) {
        model.close();
      }
      store.close();
      throw e;
    }
  }

  ModelPackage modelPackage() {
    return pkg;
  }

  LossModel model() {
    return model;
  }

  PerturbationKernel kernel() {
    return kernel;
  }

  ModelStore store() {
    return store;
  }

  /** The run config in force now (the latest recorded). */
  RunConfig runConfig() {
    return RunConfig.parse(store.identity().runConfig());
  }

  /**
   * Puts the base values back into the model's parameters (from a second, short-lived load of the
   * package), as {@link #restore} needs when the parameters were trained since the session opened.
   */
  void resetToBase() throws IOException {
    try (LossModel fresh = pkg.open(1)) {
      model.parameters().load(fresh.parameters().toArray());
    }
  }

  /**
   * Restores the model's parameters (which must hold the base values) to {@code step}, each step
   * replayed under the run config in force when it trained; the trainer returned trains on under
   * the store's current run config (for a training session, the one it recorded on opening).
   */
  Restored restore(long step) {
    return store.restore(step, model, RunConfig::replayConfig, kernel);
  }

  @Override
  public void close() {
    try {
      store.close();
    } finally {
      try {
        kernel.close();
      } finally {
        model.close();
      }
    }
  }
}
