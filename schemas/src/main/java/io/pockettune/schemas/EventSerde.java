package io.pockettune.schemas;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import org.apache.avro.AvroRuntimeException;
import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;

/**
 * Turns events into the bytes stored on the log and back, in Avro's
 * <a href="https://avro.apache.org/docs/1.12.0/specification/#single-object-encoding">single-object
 * encoding</a>:
 *
 * <pre>
 * offset  size  content
 *      0     2  marker C3 01 (format version 1)
 *      2     8  writer schema fingerprint: CRC-64-AVRO of its Parsing Canonical Form, little-endian
 *     10     n  the record in Avro binary encoding, written with that schema
 * </pre>
 *
 * <p><b>Why.</b> Avro binary carries no field names or types, so a reader needs the exact schema
 * the writer used. The 8-byte fingerprint names that schema at the cost of 10 bytes per event,
 * and the local {@link SchemaStore} maps it back to the schema, so no schema registry server is
 * needed. Knowing the writer's schema, Avro resolves the record to whatever schema the reader
 * wants (fields added with defaults are filled in, fields the reader lacks are skipped): a new
 * version of PocketTune reads an old log, and an old version reads events from a newer producer as
 * long as their schema is in its store.
 *
 * <p>Encoding and decoding are Avro's own {@link BinaryMessageEncoder} and
 * {@link BinaryMessageDecoder}; the only addition is that decoding is guarded against corrupt
 * length fields (see {@link GuardedDecoder}), so that any bad payload ends in an
 * {@link EventDecodingException} rather than a huge allocation.
 *
 * <p>This class is thread-safe: one instance serves all producers and consumers. Avro's message
 * encoders and decoders are themselves thread-safe (per-thread buffers inside), and one of each is
 * kept per record class.
 */
public final class EventSerde {

  private static final byte MARKER_0 = (byte) 0xC3;
  private static final byte MARKER_1 = (byte) 0x01;
  private static final int HEADER_LENGTH = 10;

  private final SchemaStore schemas;
  private final ConcurrentMap<Class<?>, BinaryMessageEncoder<SpecificRecord>> encoders =
      new ConcurrentHashMap<>();
  private final ConcurrentMap<Class<?>, BinaryMessageDecoder<SpecificRecord>> decoders =
      new ConcurrentHashMap<>();

  /**
   * @param schemas where writer schemas are registered on serialization and looked up on
   *     deserialization; usually {@link SchemaStore#open} on the data folder
   */
  public EventSerde(SchemaStore schemas) {
    this.schemas = Objects.requireNonNull(schemas, "schemas");
  }

  /**
   * Encodes a record with its class's schema, registering that schema in the store first so the
   * payload can always be read back.
   *
   * @param record a generated record, for example a {@code Message} or {@code Note}
   * @return a new array holding the single-object encoding of {@code record}
   * @throws IllegalArgumentException if the record cannot be encoded with its schema (a required
   *     field is null)
   * @throws UncheckedIOException if a persistent store cannot save the writer schema
   */
  public byte[] serialize(SpecificRecord record) {
    Objects.requireNonNull(record, "record");
    BinaryMessageEncoder<SpecificRecord> encoder = encoderFor(record);
    ByteArrayOutputStream out = new ByteArrayOutputStream(128);
    try {
      encoder.encode(record, out);
    } catch (IOException e) {
      throw new UncheckedIOException(e); // a ByteArrayOutputStream does not fail
    } catch (RuntimeException e) {
      throw new IllegalArgumentException("cannot encode " + record.getSchema().getFullName()
          + " (" + e.getMessage() + "): set every field that has no default before serializing"
          + " (the generated builder checks this)", e);
    }
    return out.toByteArray();
  }

  /**
   * Decodes a payload into {@code type}, resolving whatever writer schema the payload names to the
   * schema of {@code type} (schema evolution).
   *
   * @param <T> the record type
   * @param payload a single-object encoded event
   * @param type the generated class to decode into
   * @return a new record
   * @throws EventDecodingException if the payload is malformed, names an unknown writer schema, is
   *     corrupt, or was written with a schema that cannot be resolved to {@code type}'s
   * @throws IllegalArgumentException if {@code type} is not an Avro generated class
   */
  public <T extends SpecificRecord> T deserialize(byte[] payload, Class<T> type) {
    Objects.requireNonNull(type, "type");
    long fingerprint = fingerprintOf(payload);
    return type.cast(decode(payload, fingerprint, writerSchema(fingerprint), type));
  }

  /**
   * Decodes a payload into the generated class its writer schema names: a {@code Message} or a
   * {@code Note}, read with this version's schema of that type.
   *
   * @param payload a single-object encoded event
   * @return a new record, an instance of the built-in class with the writer schema's full name
   * @throws EventDecodingException if {@link #deserialize(byte[], Class)} would, or if the writer
   *     schema's full name is not a built-in event type
   */
  public SpecificRecord deserialize(byte[] payload) {
    long fingerprint = fingerprintOf(payload);
    Schema writer = writerSchema(fingerprint);
    Class<? extends SpecificRecord> type = BuiltInEvents.typeNamed(writer.getFullName())
        .orElseThrow(() -> new EventDecodingException("payload was written as "
            + writer.getFullName() + " (writer schema fingerprint 0x" + SchemaStore.hex(fingerprint)
            + "), which is not a built-in event type (" + BuiltInEvents.names()
            + "): decode it with deserialize(payload, type) and that record's generated class",
            fingerprint, null));
    return decode(payload, fingerprint, writer, type);
  }

  /**
   * Reads the writer schema fingerprint from a payload's header, without decoding the body.
   *
   * @param payload a single-object encoded event
   * @return the fingerprint (CRC-64-AVRO of the writer schema's Parsing Canonical Form)
   * @throws EventDecodingException if the payload is shorter than the 10-byte header or does not
   *     start with the single-object marker
   */
  public static long fingerprintOf(byte[] payload) {
    Objects.requireNonNull(payload, "payload");
    if (payload.length < HEADER_LENGTH) {
      throw new EventDecodingException("payload is " + payload.length + " bytes long, shorter than"
          + " the 10-byte Avro single-object header: it was truncated or is not a PocketTune event;"
          + " check what wrote it");
    }
    if (payload[0] != MARKER_0 || payload[1] != MARKER_1) {
      throw new EventDecodingException(String.format("payload starts with 0x%02X 0x%02X instead of"
          + " the Avro single-object marker 0xC3 0x01: it is corrupt or not a PocketTune event;"
          + " produce events with EventSerde.serialize", payload[0], payload[1]));
    }
    return ByteBuffer.wrap(payload, 2, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
  }

  private Schema writerSchema(long fingerprint) {
    return schemas.find(fingerprint).orElseThrow(() -> new EventDecodingException(
        "unknown writer schema fingerprint 0x" + SchemaStore.hex(fingerprint) + ": register the"
            + " writer's schema in the SchemaStore (or produce with this version of PocketTune)",
        fingerprint, null));
  }

  private SpecificRecord decode(byte[] payload, long fingerprint, Schema writer, Class<?> type) {
    BinaryMessageDecoder<SpecificRecord> decoder = decoderFor(type);
    ByteArrayInputStream in = new ByteArrayInputStream(payload);
    SpecificRecord record;
    try {
      record = decoder.decode(in, null);
    } catch (AvroTypeException e) {
      throw new EventDecodingException("payload written as " + writer.getFullName()
          + " (writer schema fingerprint 0x" + SchemaStore.hex(fingerprint) + ") cannot be read as "
          + type.getName() + " (" + e.getMessage() + "): read it as its own type, or evolve the"
          + " schema compatibly (add fields with defaults, remove only fields that have one)",
          fingerprint, e);
    } catch (IOException | RuntimeException e) {
      throw new EventDecodingException("payload body written as " + writer.getFullName()
          + " (writer schema fingerprint 0x" + SchemaStore.hex(fingerprint) + ") is corrupt ("
          + describe(e) + "): skip the event, it cannot be recovered", fingerprint, e);
    }
    int unread = in.available();
    if (unread > 0) {
      throw new EventDecodingException("payload has " + unread + (unread == 1 ? " byte" : " bytes")
          + " after the end of its " + writer.getFullName() + " body (writer schema fingerprint 0x"
          + SchemaStore.hex(fingerprint) + "): it is corrupt or several events were joined; skip"
          + " it, and check that the producer writes one event per record", fingerprint, null);
    }
    return record;
  }

  private BinaryMessageEncoder<SpecificRecord> encoderFor(SpecificRecord record) {
    BinaryMessageEncoder<SpecificRecord> encoder = encoders.get(record.getClass());
    if (encoder == null) {
      schemas.register(record.getSchema()); // before the first payload naming it exists
      encoder = encoders.computeIfAbsent(record.getClass(), type ->
          new BinaryMessageEncoder<>(SpecificData.getForClass(type), record.getSchema()));
    }
    return encoder;
  }

  private BinaryMessageDecoder<SpecificRecord> decoderFor(Class<?> type) {
    return decoders.computeIfAbsent(type, t -> {
      Schema reader;
      try {
        reader = SpecificData.get().getSchema(t);
      } catch (AvroRuntimeException e) {
        throw new IllegalArgumentException(t.getName() + " is not an Avro generated class: pass"
            + " a class generated from a schema, such as io.pockettune.events.Message", e);
      }
      return new BinaryMessageDecoder<>(new GuardedSpecificData(t), reader,
          fingerprint -> schemas.find(fingerprint).orElse(null));
    });
  }

  /** @return the exception that says what is wrong, below Avro's "Decoding datum failed" */
  private static String describe(Exception e) {
    Throwable cause = e instanceof AvroRuntimeException && e.getCause() instanceof IOException
        ? e.getCause() : e;
    return cause.getMessage() == null
        ? cause.getClass().getSimpleName()
        : cause.getClass().getSimpleName() + ": " + cause.getMessage();
  }
}
