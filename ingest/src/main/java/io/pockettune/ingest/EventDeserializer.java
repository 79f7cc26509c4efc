package io.pockettune.ingest;

import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;

/**
 * A Kafka {@link Deserializer} for PocketTune's Avro events: reads what {@link EventSerializer}
 * wrote into the built-in generated class its writer schema names, resolving older or newer writer
 * schemas the store knows (schema evolution). Thread-safe.
 */
public final class EventDeserializer implements Deserializer<SpecificRecord> {

    private final EventSerde serde;

    /** Uses a schema store holding the built-in event schemas. */
    public EventDeserializer() {
        this(new EventSerde(SchemaStore.withBuiltIns()));
    }

    public EventDeserializer(EventSerde serde) {
        this.serde = java.util.Objects.requireNonNull(serde, "serde");
    }

    @Override
    public SpecificRecord deserialize(String topic, byte[] payload) {
        if (payload == null) {
            return null;
        }
        try {
            return serde.deserialize(payload);
        } catch (RuntimeException e) {
            throw new SerializationException("cannot deserialize an event of topic '" + topic + "': " + e.getMessage(), e);
        }
    }
}
