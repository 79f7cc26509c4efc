/**
 * The embedded, durable, Kafka-like event log of PocketTune. {@link io.pockettune.ingest.EmbeddedLog}
 * is the entry type; {@link io.pockettune.ingest.LogRecord}, {@link io.pockettune.ingest.LogEntry}
 * and {@link io.pockettune.ingest.LogConfig} are its value types. Code written for Kafka uses it
 * through {@link io.pockettune.ingest.EmbeddedProducer} (a Kafka {@code Producer}) and
 * {@link io.pockettune.ingest.EmbeddedConsumer} (a Kafka {@code Consumer}); Avro events travel as
 * bytes through {@link io.pockettune.ingest.EventSerializer} and
 * {@link io.pockettune.ingest.EventDeserializer}, with a broker or without. Everything else is
 * package-private and documents its own part of the on-disk format.
 */
package io.pockettune.ingest;
