/**
 * The embedded, durable, Kafka-like event log of PocketTune. {@link io.pockettune.ingest.EmbeddedLog}
 * is the entry type; {@link io.pockettune.ingest.LogRecord}, {@link io.pockettune.ingest.LogEntry}
 * and {@link io.pockettune.ingest.LogConfig} are its value types. Everything else is
 * package-private and documents its own part of the on-disk format.
 */
package io.pockettune.ingest;
