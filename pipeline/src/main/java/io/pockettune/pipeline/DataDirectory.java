package io.pockettune.pipeline;

import io.pockettune.ingest.OwnerOnly;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The layout of a data directory, the one place that names its parts. A data directory holds
 * everything PocketTune keeps for one user and one model:
 *
 * <pre>
 *   log/                 the embedded log: one folder per partition (messages-0, notes-0, ...)
 *   schemas/             the local Avro schema store the log's events are encoded against
 *   store/               the RocksDB model store: steps, snapshots, checkpoints, offsets
 *   model/base.onnx      the built-in demo model, written on first use (no --model given)
 *   model-binding.json   which model package the directory is bound to (content hashes)
 *   control.sock         the running service's control socket (Unix domain, owner only)
 *   forget.pending       the journal of a forget in progress (owner only)
 *   metrics/             the service's Dropwizard metrics as CSV
 *   reports/             replay reports (HTML, CSV, JSON)
 * </pre>
 *
 * <p>A root PocketTune creates is owner-only (0700), as are the log, the store and the control
 * socket in any root: they hold the user's text or what was learnt from it.
 */
final class DataDirectory {
  private final Path root;

  private DataDirectory(Path root) {
    this.root = root.toAbsolutePath().normalize();
  }

  /**
   * @throws IllegalArgumentException when {@code root}, or the nearest of its parents that exists,
   *     is not a directory (the one check every command and the runtime go through)
   */
  static DataDirectory at(Path root) {
    DataDirectory dir = new DataDirectory(root);
    Path existing = dir.root;
    while (existing != null && !Files.exists(existing)) {
      existing = existing.getParent();
    }
    if (existing != null && !Files.isDirectory(existing)) {
      throw new IllegalArgumentException("--data-dir " + dir.root + (existing.equals(dir.root) ? " is a file"
          : " lies inside the file " + existing) + ", not a directory: give a directory, or a path to create"
          + " one at, or leave --data-dir out for ./pockettune-data");
    }
    return dir;
  }

  /**
   * Creates the root (and missing parents) owner-only, 0700, as {@link OwnerOnly} does; an existing
   * root keeps its mode, since the user may have pointed {@code --data-dir} at a folder of their own.
   */
  void createRoot() throws IOException {
    if (!Files.isDirectory(root)) {
      OwnerOnly.createDirectories(root);
    }
  }

  Path root() {
    return root;
  }

  Path log() {
    return root.resolve("log");
  }

  Path schemas() {
    return root.resolve("schemas");
  }

  Path store() {
    return root.resolve("store");
  }

  /** Folder of the built-in model's package. */
  Path builtInModel() {
    return root.resolve("model");
  }

  Path binding() {
    return root.resolve("model-binding.json");
  }

  Path controlSocket() {
    return root.resolve("control.sock");
  }

  /** The journal of a forget in progress (mode 0600; see {@link Forgetting}). */
  Path forgetJournal() {
    return root.resolve(Forgetting.JOURNAL);
  }

  /** The Kafka listener's SASL/PLAIN credentials (mode 0600). */
  Path kafkaCredentials() {
    return root.resolve("kafka-credentials");
  }

  Path metrics() {
    return root.resolve("metrics");
  }

  Path reports() {
    return root.resolve("reports");
  }

  @Override
  public String toString() {
    return root.toString();
  }
}
