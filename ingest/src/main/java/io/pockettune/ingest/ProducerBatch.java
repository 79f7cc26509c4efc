package io.pockettune.ingest;

/**
 * A producer's identity on a batch (Kafka's idempotent producer): who wrote it, in which epoch of
 * that producer id, and the sequence number of its first record. Stored in the batch (format
 * version 2 of {@link RecordBatch}) and checked by {@link ProducerStateTable}.
 *
 * @param producerId the id the producer was given, 0 or more
 * @param producerEpoch the epoch of that id, 0 or more; a higher epoch fences the lower ones
 * @param baseSequence the sequence number of the batch's first record, 0 or more
 */
record ProducerBatch(long producerId, short producerEpoch, int baseSequence) {

    /** @throws IllegalArgumentException if a field is negative */
    ProducerBatch {
        if (producerId < 0 || producerEpoch < 0 || baseSequence < 0) {
            throw new IllegalArgumentException("producer id " + producerId + ", epoch " + producerEpoch
                    + " and base sequence " + baseSequence + " must all be 0 or more; pass the identity the"
                    + " idempotent producer sent, or write the batch without one");
        }
    }
}
