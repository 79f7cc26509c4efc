package io.pockettune.pipeline;

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
 *   metrics/             the service's Dropwizard metrics as CSV
 *   reports/             replay reports (HTML, CSV, JSON)
 * </pre>
 */
final class DataDirectory {
  private final Path root;

  private DataDirectory(Path root) {
    this.root = root.toAbsolutePath().normalize();
  }

  static DataDirectory at(Path root) {
    return new DataDirectory(root);
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
