package io.pockettune.ingest;

import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.zip.CRC32C;
import org.apache.kafka.common.utils.ByteUtils;

/**
 * The on-disk record batch: the unit that is appended, checksummed, fsynced and recovered.
 *
 * <p>Format versions 1 and 2. Fixed-width integers are big-endian; varints are zigzag encoded as
 * in Kafka's record format ({@link ByteUtils}). Version 2 is version 1 with a producer identity
 * (Kafka's idempotent producer) between the header and the records; it is written only for a batch
 * that carries one, so a batch without one is byte for byte what version 1 always wrote, and
 * readers and recovery accept both in any mix.
 *
 * <pre>
 *  position  size  field
 *         0     8  baseOffset      offset of the first record; record i has offset baseOffset + i
 *         8     4  batchLength     number of bytes after this field (crc through the last record)
 *        12     4  crc             CRC32C of every byte after this field
 *        16     1  magic           format version, 1 or 2
 *        17     4  recordCount     number of records, at least 1
 *        21     8  firstTimestamp  timestamp of the first record
 *                  version 2 only:
 *        29     8  producerId      0 or more
 *        37     2  producerEpoch   0 or more
 *        39     4  baseSequence    sequence number of the first record, 0 or more; record i has
 *                                  baseSequence + i, wrapping from Integer.MAX_VALUE to 0
 *    29 (v1)       records         recordCount times:
 *    43 (v2)         timestampDelta  varlong  timestamp - firstTimestamp (wrapping arithmetic)
 *                    keyLength       varint   -1 for a null key
 *                    key             keyLength bytes
 *                    valueLength     varint   0 or more
 *                    value           valueLength bytes
 *                  or, for a record erased by {@link #erase} (exact forgetting):
 *                    timestampDelta  varlong  as it was
 *                    keyLength       varint   -2, {@link #ERASED}
 *                    fillerLength    varint   0 or more, possibly in more bytes than it needs
 *                    filler          fillerLength zero bytes
 * </pre>
 *
 * <p>An erased record keeps its offset and timestamp and the exact byte length it had, so that
 * erasing rewrites a batch in place: positions, indexes, the record count and the producer fields
 * stay valid, and the CRC is computed again. Readers skip erased records, as a Kafka consumer skips
 * the offsets compaction removed: offsets stay unique and increasing but may have holes.
 *
 * <p>The fields every version shares ({@link #HEADER_SIZE} bytes) are enough to walk a segment and
 * to check offsets; the producer fields ({@link #PRODUCER_HEADER_SIZE} bytes of header in all) are
 * what {@link ProducerStateTable} rebuilds its state from at open, without reading records.
 *
 * <p>Why the CRC covers what it covers: everything from the magic byte on is checksummed, so a torn
 * or bit-rotted batch body is detected with certainty for short bursts and with probability
 * 1 - 2^-32 otherwise. The base offset is outside the CRC, as in Kafka, so a batch is encoded and
 * checksummed before the append lock is taken and stamped with its offset under the lock for free.
 * A damaged base offset is still caught: recovery and reads demand that offsets continue exactly
 * where the previous batch ended. The producer fields are inside the CRC, so recovery and reads
 * catch a damaged one like any other byte (the header walk that rebuilds producer state after a
 * clean shutdown trusts them, as it trusts those segments). A damaged length is caught by the
 * bounds check or, failing that, by the CRC computed over the wrong range. The two leading fields
 * (baseOffset and batchLength) are the {@link #LOG_OVERHEAD}: enough to walk a segment from batch
 * to batch without reading bodies.
 *
 * <p>This class is stateless and thread-safe.
 */
final class RecordBatch {

    static final int BASE_OFFSET_OFFSET = 0;
    static final int LENGTH_OFFSET = 8;
    static final int CRC_OFFSET = 12;
    static final int MAGIC_OFFSET = 16;
    static final int COUNT_OFFSET = 17;
    static final int FIRST_TIMESTAMP_OFFSET = 21;
    /** Where the records of a version 1 batch start. */
    static final int RECORDS_OFFSET = 29;
    static final int PRODUCER_ID_OFFSET = 29;
    static final int PRODUCER_EPOCH_OFFSET = 37;
    static final int BASE_SEQUENCE_OFFSET = 39;
    /** Where the records of a version 2 batch start. */
    static final int PRODUCER_RECORDS_OFFSET = 43;
    /** Size of the header fields every version has: enough to walk batches and check offsets. */
    static final int HEADER_SIZE = RECORDS_OFFSET;
    /** Size of the header of a version 2 batch, producer fields included. */
    static final int PRODUCER_HEADER_SIZE = PRODUCER_RECORDS_OFFSET;
    /** Bytes in front of the length-counted part: baseOffset and batchLength. */
    static final int LOG_OVERHEAD = CRC_OFFSET;
    /**
     * The smallest possible batchLength of any version: a version 1 header and one record with a
     * null key and empty value. Bounds checks that have not read the magic byte use this one.
     */
    static final int MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD + 3;
    /** The smallest possible batchLength of a version 2 batch. */
    static final int MIN_PRODUCER_BATCH_LENGTH = PRODUCER_HEADER_SIZE - LOG_OVERHEAD + 3;
    /** The key length that marks an erased record (see the class comment). */
    static final int ERASED = -2;
    /** The format of a batch without a producer identity. */
    static final byte MAGIC = 1;
    /** The format of a batch with a producer identity. */
    static final byte PRODUCER_MAGIC = 2;

    private RecordBatch() {
    }

    /** A batch whose bytes do not form a valid batch; the message says what is wrong. */
    static final class CorruptBatchException extends IOException {
        CorruptBatchException(String message) {
            super(message);
        }
    }

    /**
     * @return the exact encoded size of a batch holding {@code records}, as a long because a
     *     careless caller can exceed 2 GiB
     */
    static long sizeInBytes(List<LogRecord> records) {
        return sizeInBytes(records, null);
    }

    /**
     * @param producer the batch's producer identity, or null for none (version 1)
     * @return the exact encoded size of a batch holding {@code records}, as a long because a
     *     careless caller can exceed 2 GiB
     */
    static long sizeInBytes(List<LogRecord> records, ProducerBatch producer) {
        long first = records.get(0).timestamp();
        long size = producer == null ? HEADER_SIZE : PRODUCER_HEADER_SIZE;
        for (LogRecord r : records) {
            int keyLength = r.key() == null ? -1 : r.key().length;
            size += ByteUtils.sizeOfVarlong(r.timestamp() - first)
                    + ByteUtils.sizeOfVarint(keyLength) + Math.max(keyLength, 0)
                    + ByteUtils.sizeOfVarint(r.value().length) + r.value().length;
        }
        return size;
    }

    /**
     * Encodes {@code records} as a version 1 batch with base offset 0; {@link #setBaseOffset}
     * stamps the real one.
     *
     * @param size the value of {@link #sizeInBytes} for these records, at most Integer.MAX_VALUE
     * @return a buffer positioned at 0 whose remaining bytes are the batch
     */
    static ByteBuffer encode(List<LogRecord> records, int size) {
        return encode(records, size, null);
    }

    /**
     * Encodes {@code records} with base offset 0, as version 2 if {@code producer} is not null and
     * as version 1 otherwise; {@link #setBaseOffset} stamps the real offset.
     *
     * @param size the value of {@link #sizeInBytes(List, ProducerBatch)} for these records and
     *     producer, at most Integer.MAX_VALUE
     * @return a buffer positioned at 0 whose remaining bytes are the batch
     */
    static ByteBuffer encode(List<LogRecord> records, int size, ProducerBatch producer) {
        assert size == sizeInBytes(records, producer) : "size does not match the records";
        ByteBuffer buf = ByteBuffer.allocate(size);
        long first = records.get(0).timestamp();
        buf.putLong(0L)
                .putInt(size - LOG_OVERHEAD)
                .putInt(0)
                .put(producer == null ? MAGIC : PRODUCER_MAGIC)
                .putInt(records.size())
                .putLong(first);
        if (producer != null) {
            buf.putLong(producer.producerId())
                    .putShort(producer.producerEpoch())
                    .putInt(producer.baseSequence());
        }
        for (LogRecord r : records) {
            ByteUtils.writeVarlong(r.timestamp() - first, buf);
            if (r.key() == null) {
                ByteUtils.writeVarint(-1, buf);
            } else {
                ByteUtils.writeVarint(r.key().length, buf);
                buf.put(r.key());
            }
            ByteUtils.writeVarint(r.value().length, buf);
            buf.put(r.value());
        }
        assert !buf.hasRemaining() : "encoded size differs from sizeInBytes";
        buf.putInt(CRC_OFFSET, (int) crc(buf, size));
        return buf.rewind();
    }

    /** Writes {@code baseOffset} into an encoded batch; the CRC stays valid because it excludes it. */
    static void setBaseOffset(ByteBuffer batch, long baseOffset) {
        batch.putLong(batch.position() + BASE_OFFSET_OFFSET, baseOffset);
    }

    /**
     * Checks everything that can be checked about one complete batch: length field, CRC, magic,
     * record count, producer fields (version 2) and that the records exactly fill the batch. The
     * base offset is the caller's to check, against where the previous batch ended.
     *
     * @param batch a buffer whose remaining bytes are exactly one batch (position unchanged)
     * @return the batch's record count
     */
    static int verify(ByteBuffer batch) throws CorruptBatchException {
        ByteBuffer b = checkHeader(batch);
        int count = b.getInt(COUNT_OFFSET);
        try {
            for (int i = 0; i < count; i++) {
                ByteUtils.readVarlong(b);
                int keyLength = ByteUtils.readVarint(b);
                if (keyLength == ERASED) {
                    int filler = ByteUtils.readVarint(b);
                    if (filler < 0) {
                        throw new CorruptBatchException("erased record " + i + " has filler length " + filler);
                    }
                    skip(b, filler);
                    continue;
                }
                if (keyLength < -1) {
                    throw new CorruptBatchException("record " + i + " has key length " + keyLength);
                }
                skip(b, Math.max(keyLength, 0));
                int valueLength = ByteUtils.readVarint(b);
                if (valueLength < 0) {
                    throw new CorruptBatchException("record " + i + " has value length " + valueLength);
                }
                skip(b, valueLength);
            }
        } catch (BufferUnderflowException | IllegalArgumentException e) {
            throw new CorruptBatchException("records overrun the batch length");
        }
        if (b.hasRemaining()) {
            throw new CorruptBatchException(b.remaining() + " bytes follow the last record");
        }
        return count;
    }

    /**
     * Verifies one batch and adds its records with offsets in [{@code from}, {@code end}) to
     * {@code out} until {@code out} holds {@code max} entries.
     */
    static void decode(ByteBuffer batch, long from, long end, int max, List<LogEntry> out)
            throws CorruptBatchException {
        verify(batch);
        ByteBuffer b = batch.slice();
        long offset = b.getLong(BASE_OFFSET_OFFSET);
        int count = b.getInt(COUNT_OFFSET);
        long first = b.getLong(FIRST_TIMESTAMP_OFFSET);
        b.position(recordsOffset(b.get(MAGIC_OFFSET)));
        for (int i = 0; i < count && offset < end && out.size() < max; i++, offset++) {
            long timestamp = first + ByteUtils.readVarlong(b);
            int keyLength = ByteUtils.readVarint(b);
            if (keyLength == ERASED) {
                int filler = ByteUtils.readVarint(b);
                b.position(b.position() + filler);
                continue;
            }
            byte[] key = keyLength < 0 ? null : bytes(b, keyLength);
            byte[] value = bytes(b, ByteUtils.readVarint(b));
            if (offset >= from) {
                out.add(new LogEntry(offset, timestamp, key, value));
            }
        }
    }

    /**
     * @return the largest record timestamp of a batch that {@link #verify} accepted
     */
    static long maxTimestamp(ByteBuffer batch) {
        ByteBuffer b = batch.slice();
        int count = b.getInt(COUNT_OFFSET);
        long first = b.getLong(FIRST_TIMESTAMP_OFFSET);
        long max = Long.MIN_VALUE;
        b.position(recordsOffset(b.get(MAGIC_OFFSET)));
        for (int i = 0; i < count; i++) {
            max = Math.max(max, first + ByteUtils.readVarlong(b));
            skipKeyAndValue(b);
        }
        return max;
    }

    /**
     * Erases, in place, the records of a batch that {@link #verify} accepted whose offsets are in
     * {@code offsets}: each keeps its timestamp and its byte length, loses its key and value (the
     * bytes become zeros), and is marked {@link #ERASED}; the CRC is computed again. Records already
     * erased are left as they are.
     *
     * @param batch a heap buffer whose remaining bytes are exactly one batch (position unchanged)
     * @return the offsets erased by this call
     */
    static List<Long> erase(ByteBuffer batch, java.util.Set<Long> offsets) {
        ByteBuffer b = batch.slice();
        long offset = b.getLong(BASE_OFFSET_OFFSET);
        int count = b.getInt(COUNT_OFFSET);
        b.position(recordsOffset(b.get(MAGIC_OFFSET)));
        List<Long> erased = new java.util.ArrayList<>();
        for (int i = 0; i < count; i++, offset++) {
            ByteUtils.readVarlong(b);
            int start = b.position();
            if (skipKeyAndValue(b)) {
                continue;
            }
            int end = b.position();
            if (offsets.contains(offset)) {
                writeErased(b, start, end - start);
                erased.add(offset);
            }
        }
        if (!erased.isEmpty()) {
            b.putInt(CRC_OFFSET, (int) crc(b, b.limit()));
        }
        return erased;
    }

    /**
     * Moves past a record's key and value, or an erased record's filler, in a batch that {@link
     * #verify} accepted.
     *
     * @return true when the record is erased
     */
    private static boolean skipKeyAndValue(ByteBuffer b) {
        int keyLength = ByteUtils.readVarint(b);
        if (keyLength == ERASED) {
            int filler = ByteUtils.readVarint(b);
            b.position(b.position() + filler);
            return true;
        }
        b.position(b.position() + Math.max(keyLength, 0));
        int valueLength = ByteUtils.readVarint(b);
        b.position(b.position() + valueLength);
        return false;
    }

    /**
     * Writes the erased form of a record's key and value over the {@code length} bytes at
     * {@code start}: the marker, the filler length in exactly as many bytes as makes the lengths
     * match (a varint may take more bytes than it needs), and zeros. Every length of at least 2, the
     * smallest a record's key and value fields take, has such a form.
     */
    private static void writeErased(ByteBuffer b, int start, int length) {
        for (int width = 1; width <= 5; width++) {
            long filler = length - 1L - width;
            if (filler >= 0 && ByteUtils.sizeOfVarint((int) filler) <= width) {
                b.position(start);
                ByteUtils.writeVarint(ERASED, b);
                long zigzag = filler << 1;
                for (int k = 1; k < width; k++) {
                    b.put((byte) ((zigzag & 0x7f) | 0x80));
                    zigzag >>>= 7;
                }
                b.put((byte) zigzag);
                for (long k = 0; k < filler; k++) {
                    b.put((byte) 0);
                }
                return;
            }
        }
        throw new IllegalStateException("no erased form fits a record of " + length + " bytes");
    }

    /**
     * @return the producer identity of a batch that {@link #verify} accepted, or null for a
     *     version 1 batch
     */
    static ProducerBatch producer(ByteBuffer batch) {
        ByteBuffer b = batch.slice();
        if (b.get(MAGIC_OFFSET) != PRODUCER_MAGIC) {
            return null;
        }
        return new ProducerBatch(b.getLong(PRODUCER_ID_OFFSET), b.getShort(PRODUCER_EPOCH_OFFSET),
                b.getInt(BASE_SEQUENCE_OFFSET));
    }

    /** @return where the records start in a batch of format {@code magic}, 1 or 2 */
    static int recordsOffset(byte magic) {
        assert magic == MAGIC || magic == PRODUCER_MAGIC : "unknown batch format version " + magic;
        return magic == PRODUCER_MAGIC ? PRODUCER_RECORDS_OFFSET : RECORDS_OFFSET;
    }

    /** @return the largest timestamp of {@code records} */
    static long maxTimestamp(List<LogRecord> records) {
        long max = Long.MIN_VALUE;
        for (LogRecord r : records) {
            max = Math.max(max, r.timestamp());
        }
        return max;
    }

    private static ByteBuffer checkHeader(ByteBuffer batch) throws CorruptBatchException {
        ByteBuffer b = batch.slice();
        if (b.remaining() < LOG_OVERHEAD + MIN_BATCH_LENGTH) {
            throw new CorruptBatchException("batch of " + b.remaining() + " bytes is shorter than the smallest batch");
        }
        int length = b.getInt(LENGTH_OFFSET);
        if (length != b.remaining() - LOG_OVERHEAD) {
            throw new CorruptBatchException("batch length " + length + " does not match the "
                    + (b.remaining() - LOG_OVERHEAD) + " bytes present");
        }
        int stored = b.getInt(CRC_OFFSET);
        int actual = (int) crc(b, b.remaining());
        if (stored != actual) {
            throw new CorruptBatchException(String.format("CRC mismatch (stored %08x, computed %08x)", stored, actual));
        }
        byte magic = b.get(MAGIC_OFFSET);
        if (magic != MAGIC && magic != PRODUCER_MAGIC) {
            throw new CorruptBatchException("unknown batch format version " + magic);
        }
        int count = b.getInt(COUNT_OFFSET);
        if (count < 1) {
            throw new CorruptBatchException("record count " + count + " is not positive");
        }
        if (magic == PRODUCER_MAGIC) {
            if (length < MIN_PRODUCER_BATCH_LENGTH) {
                throw new CorruptBatchException("batch length " + length + " is shorter than the smallest batch of"
                        + " format version " + PRODUCER_MAGIC);
            }
            long producerId = b.getLong(PRODUCER_ID_OFFSET);
            short epoch = b.getShort(PRODUCER_EPOCH_OFFSET);
            int sequence = b.getInt(BASE_SEQUENCE_OFFSET);
            if (producerId < 0 || epoch < 0 || sequence < 0) {
                throw new CorruptBatchException("producer id " + producerId + ", epoch " + epoch + " or base sequence "
                        + sequence + " is negative");
            }
        }
        b.position(recordsOffset(magic));
        return b;
    }

    /** Writes the CRC of a batch whose remaining bytes start at index 0 of {@code batch}. */
    static void stampCrc(ByteBuffer batch) {
        batch.putInt(CRC_OFFSET, (int) crc(batch, batch.remaining()));
    }

    /** CRC32C of bytes [MAGIC_OFFSET, size) of a batch starting at index 0 of {@code b}. */
    private static long crc(ByteBuffer b, int size) {
        CRC32C crc = new CRC32C();
        crc.update(b.duplicate().limit(size).position(MAGIC_OFFSET));
        return crc.getValue();
    }

    private static void skip(ByteBuffer b, int n) {
        if (n > b.remaining()) {
            throw new BufferUnderflowException();
        }
        b.position(b.position() + n);
    }

    private static byte[] bytes(ByteBuffer b, int n) {
        byte[] bytes = new byte[n];
        b.get(bytes);
        return bytes;
    }
}
