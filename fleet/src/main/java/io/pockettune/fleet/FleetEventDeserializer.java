package io.pockettune.fleet;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Kafka record to {@link FleetEvent}. The key is the user: a record without one belongs to nobody
 * and is dropped with one warning naming it (it cannot train anyone's model). The value is kept as
 * sent; decoding it is the training function's business, as on the device, so a bad value is a
 * dead letter of its user rather than a failure of the job.
 */
final class FleetEventDeserializer implements KafkaRecordDeserializationSchema<FleetEvent> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(FleetEventDeserializer.class);

  @Override
  public void deserialize(ConsumerRecord<byte[], byte[]> r, Collector<FleetEvent> out) {
    if (r.key() == null || r.key().length == 0) {
      LOG.warn("{}-{}@{} has no key, so it belongs to no user and is not trained: producers must key each event by its"
          + " user id", r.topic(), r.partition(), r.offset());
      return;
    }
    out.collect(new FleetEvent(new String(r.key(), StandardCharsets.UTF_8), r.topic(), r.partition(), r.offset(),
        r.timestamp(), r.value()));
  }

  @Override
  public TypeInformation<FleetEvent> getProducedType() {
    return TypeInformation.of(FleetEvent.class);
  }
}
