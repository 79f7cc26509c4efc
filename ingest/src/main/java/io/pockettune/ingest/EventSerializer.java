package io.pockettune.ingest;

import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Serializer;

/**
 * A Kafka {@link Serializer} for PocketTune's Avro events ({@code Message}, {@code Note}, ...):
 * Avro single-object encoding through {@link EventSerde}, the same bytes whether the producer is
 * embedded or a {@code KafkaProducer}. The no-argument constructor (for {@code value.serializer}
 * by class name) uses the built-in schemas only. Thread-safe.
 */
public final class EventSerializer implements Serializer<SpecificRecord> {

    private final EventSerde serde;

    /** Uses a schema store holding the built-in event schemas. */
    public EventSerializer() {
        this(new EventSerde(SchemaStore.withBuiltIns()));
    }

    public EventSerializer(EventSerde serde) {
        this.serde = java.util.Objects.requireNonNull(serde, "serde");
    }

    @Override
    public byte[] serialize(String topic, SpecificRecord event) {
        if (event == null) {
            return null;
        }
        try {
            return serde.serialize(event);
        } catch (RuntimeException e) {
            throw new SerializationException("cannot serialize the event for topic '" + topic + "': " + e.getMessage(), e);
        }
    }
}
