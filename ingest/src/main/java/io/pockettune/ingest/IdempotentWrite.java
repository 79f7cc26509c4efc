package io.pockettune.ingest;

/**
 * What an idempotent write did: wrote a new batch, or recognised a retry of one already written.
 *
 * @param baseOffset the offset of the batch's first record: of the new batch, or of the original
 *     batch for a duplicate
 * @param duplicate true if the batch was a retry of one of the producer's recent batches and
 *     nothing was written
 */
record IdempotentWrite(long baseOffset, boolean duplicate) {
}
