package io.pockettune.schemas;

import org.apache.avro.Schema;
import org.apache.avro.io.DatumReader;
import org.apache.avro.specific.SpecificData;

/**
 * The data model {@link EventSerde} decodes with: the generated class's own model (same class
 * loader, same logical type conversions, so timestamps become {@link java.time.Instant}) whose
 * readers are {@link GuardedDatumReader}s. Avro's message decoders take a model, not a reader, so
 * this is where the guarded reader is plugged in.
 */
final class GuardedSpecificData extends SpecificData {

  GuardedSpecificData(Class<?> type) {
    super(type.getClassLoader());
    SpecificData.getForClass(type).getConversions().forEach(this::addLogicalTypeConversion);
  }

  @Override
  public DatumReader<Object> createDatumReader(Schema writer, Schema reader) {
    return new GuardedDatumReader<>(writer, reader, this);
  }
}
