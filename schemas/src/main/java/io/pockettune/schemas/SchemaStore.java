package io.pockettune.schemas;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.regex.Pattern;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * The writer schemas a reader can resolve, keyed by their 64-bit fingerprint: the CRC-64-AVRO
 * ({@link SchemaNormalization#parsingFingerprint64}) of the schema's Parsing Canonical Form.
 *
 * <p>Every event on the log names its writer schema by this fingerprint (see {@link EventSerde}),
 * so an event can be decoded only while its writer schema is in the store. This is the local,
 * serverless stand-in for a schema registry: a newer PocketTune reads events written by an older
 * one because the older schemas were kept, and vice versa.
 *
 * <p>The canonical form drops docs, defaults, aliases and logical types, so schemas differing only
 * in those share a fingerprint; the first one registered is kept. That is harmless for a writer
 * schema: decoding uses only the parts the canonical form keeps.
 *
 * <p><b>Persistence.</b> A store made by {@link #open(Path)} keeps each schema as
 * {@code <16 lower-case hex digits of the fingerprint>.avsc} (the full JSON, docs and logical
 * types included) in its folder. A file is written to a temporary name, forced to disk and moved
 * into place atomically, so a crash leaves either the whole file or none (at worst a stray
 * {@code .tmp} file, which is ignored). Files are never rewritten or deleted: a schema, once
 * registered, stays readable.
 *
 * <p>This class is thread-safe: lookups are lock-free, registrations of new schemas are serialized.
 * Several processes may share a folder; each sees the others' schemas when it next opens it.
 */
public final class SchemaStore {

  private static final Pattern SCHEMA_FILE = Pattern.compile("[0-9a-f]{16}\\.avsc");

  private final ConcurrentMap<Long, Schema> byFingerprint = new ConcurrentHashMap<>();
  private final Object registration = new Object();
  private final Path folder;

  private SchemaStore(Path folder) {
    this.folder = folder;
  }

  /** @return an in-memory store holding the current schemas of the built-in events (Message, Note) */
  public static SchemaStore withBuiltIns() {
    SchemaStore store = inMemory();
    BuiltInEvents.schemas().forEach(store::register);
    return store;
  }

  /** @return an empty in-memory store */
  static SchemaStore inMemory() {
    return new SchemaStore(null);
  }

  /**
   * Opens (creating it if needed) a persistent store in {@code folder}: loads every schema file
   * found there and registers the current built-in schemas, so that events written by this
   * version stay readable by later ones.
   *
   * @param folder the folder owned by the store, for example {@code <data-dir>/schemas}
   * @return the store
   * @throws IOException if the folder cannot be created or read, or holds a schema file that is
   *     not a valid schema or whose content does not match its name
   */
  public static SchemaStore open(Path folder) throws IOException {
    Objects.requireNonNull(folder, "folder");
    Files.createDirectories(folder);
    SchemaStore store = new SchemaStore(folder);
    try (DirectoryStream<Path> files = Files.newDirectoryStream(folder)) {
      for (Path file : files) {
        if (SCHEMA_FILE.matcher(file.getFileName().toString()).matches()) {
          store.load(file);
        }
      }
    }
    try {
      BuiltInEvents.schemas().forEach(store::register);
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
    return store;
  }

  /**
   * Adds a writer schema (a no-op when its fingerprint is already known). For a persistent store
   * the schema is on disk when this returns.
   *
   * @param schema the schema events are (or were) written with
   * @return the schema's fingerprint, the value single-object encoded payloads carry
   * @throws UncheckedIOException if a persistent store cannot write the schema file
   */
  public long register(Schema schema) {
    Objects.requireNonNull(schema, "schema");
    long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
    if (byFingerprint.containsKey(fingerprint)) {
      return fingerprint;
    }
    synchronized (registration) {
      if (!byFingerprint.containsKey(fingerprint)) {
        if (folder != null) {
          persist(fingerprint, schema);
        }
        byFingerprint.put(fingerprint, schema);
      }
    }
    return fingerprint;
  }

  /**
   * @param fingerprint a schema fingerprint, as read from a payload's header
   * @return the schema registered under it, or empty when it is unknown
   */
  public Optional<Schema> find(long fingerprint) {
    return Optional.ofNullable(byFingerprint.get(fingerprint));
  }

  /** @return the fingerprint as 16 lower-case hex digits, as used in file names and messages */
  static String hex(long fingerprint) {
    return HexFormat.of().toHexDigits(fingerprint);
  }

  private void load(Path file) throws IOException {
    Schema schema;
    try {
      schema = new Schema.Parser().parse(file.toFile());
    } catch (AvroRuntimeException e) {
      throw new IOException("schema file " + file + " is not a valid Avro schema (" + e.getMessage()
          + "): restore it from a backup, since events written with it cannot be read without it", e);
    }
    long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
    if (!file.getFileName().toString().equals(fileName(fingerprint))) {
      throw new IOException("schema file " + file + " holds the schema with fingerprint "
          + hex(fingerprint) + ", not the one its name says: restore the original file from a"
          + " backup (files in this folder are written by PocketTune and must not be edited)");
    }
    byFingerprint.put(fingerprint, schema);
  }

  private void persist(long fingerprint, Schema schema) {
    Path target = folder.resolve(fileName(fingerprint));
    try {
      Path temporary = Files.createTempFile(folder, "." + hex(fingerprint), ".tmp");
      try {
        ByteBuffer json = ByteBuffer.wrap(schema.toString().getBytes(StandardCharsets.UTF_8));
        try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.WRITE)) {
          while (json.hasRemaining()) {
            channel.write(json);
          }
          channel.force(true);
        }
        moveIntoPlace(temporary, target);
      } finally {
        Files.deleteIfExists(temporary);
      }
      forceFolder();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write schema file " + target + " (" + e.getMessage()
          + "): check that the folder is writable and the disk is not full", e);
    }
  }

  private static void moveIntoPlace(Path temporary, Path target) throws IOException {
    try {
      Files.move(temporary, target, StandardCopyOption.ATOMIC_MOVE);
    } catch (AtomicMoveNotSupportedException e) {
      // Only on file systems without rename. A crash mid-copy can then leave a partial file,
      // which open() reports because its content no longer matches its name.
      Files.move(temporary, target, StandardCopyOption.REPLACE_EXISTING);
    }
  }

  /** Makes the new directory entry durable (POSIX); a no-op where folders cannot be opened. */
  private void forceFolder() throws IOException {
    FileChannel channel;
    try {
      channel = FileChannel.open(folder, StandardOpenOption.READ);
    } catch (IOException | UnsupportedOperationException e) {
      return; // Windows cannot open a folder as a channel, so there is nothing to force.
    }
    try (channel) {
      channel.force(true);
    }
  }

  private static String fileName(long fingerprint) {
    return hex(fingerprint) + ".avsc";
  }
}
