package io.pockettune.pipeline;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.ingest.LogConfig;
import io.pockettune.ingest.LogSnapshot;
import io.pockettune.ingest.OwnerOnly;
import io.pockettune.store.ModelStore;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;

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
 *   key                  the 32-byte AES-256 key of an encrypted directory made with --encrypt
 *                        (mode 0600); absent when the app supplies the key or nothing is encrypted
 * </pre>
 *
 * <p><b>Encryption at rest</b> (opt-in): a directory is encrypted when its log holds the marker
 * {@code log/encryption}. Then log batches (events and dead letters) and snapshot values are sealed
 * with the directory's key ({@link #withKey}); every open of the log and the store here passes it.
 *
 * <p>A root PocketTune creates is owner-only (0700), as are the log, the store and the control
 * socket in any root: they hold the user's text or what was learnt from it.
 */
final class DataDirectory {
  /** Bytes of an encryption key: AES-256. */
  static final int KEY_BYTES = 32;

  private final Path root;
  /** The encryption key, or null for a directory in the clear. */
  private final byte[] key;

  private DataDirectory(Path root, byte[] key) {
    this.root = root.toAbsolutePath().normalize();
    this.key = key;
  }

  /**
   * @throws IllegalArgumentException when {@code root}, or the nearest of its parents that exists,
   *     is not a directory (the one check every command and the runtime go through)
   */
  static DataDirectory at(Path root) {
    DataDirectory dir = new DataDirectory(root, null);
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

  /**
   * Resolves the directory's encryption key: {@code given} (from the embedding app, so no key file
   * is written) if not null; else the {@link #keyFile} if it exists; else, when {@code encrypt}, a
   * new random key written to the key file (0600) for a directory that holds no data yet; else
   * none. The key is checked against the log's marker, so a missing or wrong key is refused here in
   * one sentence, before any command does work.
   *
   * @return this directory with the key (or none)
   * @throws IllegalStateException if the directory is encrypted and no key is found, the key is not
   *     the directory's, or {@code encrypt} is asked for a directory that already holds clear data
   */
  DataDirectory withKey(byte[] given, boolean encrypt) throws IOException {
    boolean marked = EmbeddedLog.isEncrypted(log());
    byte[] k = given == null ? null : given.clone();
    if (k == null && Files.exists(keyFile())) {
      k = Files.readAllBytes(keyFile());
      if (k.length != KEY_BYTES) {
        throw new IllegalStateException("the key file " + keyFile() + " holds " + k.length + " bytes instead of "
            + KEY_BYTES + "; restore this data directory's key file from a backup");
      }
    }
    if (k != null && k.length != KEY_BYTES) {
      throw new IllegalArgumentException("the encryption key has " + k.length + " bytes but must have " + KEY_BYTES
          + " (AES-256); pass the 32 bytes of this data directory's key");
    }
    if (k == null && encrypt) {
      if (holdsData()) {
        throw new IllegalStateException("--encrypt was given but " + root + " already holds unencrypted data;"
            + " leave --encrypt out for this directory, or give a new --data-dir to start an encrypted one");
      }
      k = new byte[KEY_BYTES];
      new SecureRandom().nextBytes(k);
      createRoot();
      OwnerOnly.writeNew(keyFile(), k);
    }
    if (k == null && marked) {
      throw new IllegalStateException("data directory " + root + " is encrypted but its key file " + keyFile()
          + " is missing and no key was given; restore the key file, or pass the key with"
          + " PocketTune.builder(dir).encryptionKey");
    }
    if (k != null && !marked && holdsData()) {
      throw new IllegalStateException("data directory " + root + " is not encrypted, so it cannot be opened with a key;"
          + " remove the key (or its file " + keyFile() + "), or give a new --data-dir to start an encrypted one");
    }
    if (k != null) {
      EmbeddedLog.checkEncryptionKey(log(), k);
    }
    return new DataDirectory(root, k);
  }

  /** @return whether the log or the store already exists with content */
  private boolean holdsData() throws IOException {
    if (Files.isDirectory(store())) {
      return true;
    }
    if (!Files.isDirectory(log())) {
      return false;
    }
    try (var children = Files.list(log())) {
      return children.anyMatch(Files::isDirectory);
    }
  }

  /** @return whether this directory's log and snapshots are encrypted */
  boolean encrypted() {
    return key != null;
  }

  /** The key file an encrypted directory made with {@code --encrypt} keeps its key in (0600). */
  Path keyFile() {
    return root.resolve("key");
  }

  /** @return the log configuration that opens this directory's log: defaults, with its key */
  LogConfig logConfig() {
    return LogConfig.defaults().withEncryptionKey(key);
  }

  /** Opens the log for writing, with this directory's key. */
  EmbeddedLog openLog() throws IOException {
    return EmbeddedLog.open(log(), logConfig());
  }

  /** Opens the log for writing with {@code config} (segments, retention, channels) and this directory's key. */
  EmbeddedLog openLog(LogConfig config) throws IOException {
    return EmbeddedLog.open(log(), config.withEncryptionKey(key));
  }

  /** Opens a read-only view of the log, with this directory's key. */
  LogSnapshot logSnapshot() throws IOException {
    return LogSnapshot.open(log(), key);
  }

  /** @return {@code store} set to seal its snapshots with this directory's key */
  ModelStore withSnapshotKey(ModelStore store) {
    return store.encryptSnapshots(key);
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
