package io.pockettune.schemas;

import java.io.IOException;
import org.apache.avro.Schema;
import org.apache.avro.io.Decoder;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumReader;

/**
 * A {@link SpecificDatumReader} whose allocations are bounded by the bytes a payload really holds,
 * not by the lengths and counts it claims: strings and bytes go through a {@link GuardedDecoder},
 * and a map or array starts with at most {@value #MAX_PRESIZE} slots, growing as entries are
 * actually read (Avro presizes it to the declared block count, up to 2^31 entries).
 *
 * <p>Thread-safe once constructed, like its superclass: one instance serves all threads.
 */
final class GuardedDatumReader<T> extends SpecificDatumReader<T> {

  static final int MAX_PRESIZE = 1024;

  GuardedDatumReader(Schema writer, Schema reader, SpecificData data) {
    super(writer, reader, data);
  }

  @Override
  public T read(T reuse, Decoder in) throws IOException {
    return super.read(reuse, new GuardedDecoder(in));
  }

  @Override
  protected Object newArray(Object old, int size, Schema schema) {
    return super.newArray(old, Math.min(size, MAX_PRESIZE), schema);
  }

  @Override
  protected Object newMap(Object old, int size) {
    return super.newMap(old, Math.min(size, MAX_PRESIZE));
  }
}
