package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.zip.CRC32C;
import org.junit.jupiter.api.Test;

class RecordBatchTest {

    private static final List<LogRecord> RECORDS = List.of(
            new LogRecord(Long.MAX_VALUE, null, new byte[0]),
            new LogRecord(Long.MIN_VALUE, new byte[] {1}, new byte[] {2, 3}),
            new LogRecord(0, new byte[0], new byte[300]));

    @Test
    void encode_thenDecode_returnsTheRecordsAtConsecutiveOffsets() throws Exception {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS));
        RecordBatch.setBaseOffset(batch, 41);
        assertEquals(RecordBatch.sizeInBytes(RECORDS), batch.remaining());
        assertEquals(3, RecordBatch.verify(batch));
        List<LogEntry> out = new ArrayList<>();
        RecordBatch.decode(batch, 0, Long.MAX_VALUE, Integer.MAX_VALUE, out);
        assertEquals(List.of(41L, 42L, 43L), out.stream().map(LogEntry::offset).toList());
        assertEquals(RECORDS, out.stream().map(LogEntry::record).toList());
    }

    @Test
    void decode_window_returnsOnlyOffsetsInRangeUpToMax() throws Exception {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS));
        RecordBatch.setBaseOffset(batch, 10);
        List<LogEntry> out = new ArrayList<>();
        RecordBatch.decode(batch, 11, 13, 5, out);
        assertEquals(List.of(11L, 12L), out.stream().map(LogEntry::offset).toList());
        out.clear();
        RecordBatch.decode(batch, 10, 13, 1, out);
        assertEquals(List.of(10L), out.stream().map(LogEntry::offset).toList());
    }

    /** The base offset is outside the CRC by design; every other byte is covered. */
    @Test
    void verify_flippedBitAnywhereButTheBaseOffset_isDetected() throws Exception {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS));
        Random random = new Random(3);
        for (int i = 0; i < batch.remaining(); i++) {
            ByteBuffer damaged = ByteBuffer.wrap(batch.array().clone());
            damaged.put(i, (byte) (damaged.get(i) ^ (1 << random.nextInt(8))));
            if (i < RecordBatch.LENGTH_OFFSET) {
                assertEquals(3, RecordBatch.verify(damaged), "byte " + i);
            } else {
                assertThrows(RecordBatch.CorruptBatchException.class, () -> RecordBatch.verify(damaged), "byte " + i);
            }
        }
    }

    @Test
    void verify_truncatedBatch_isDetected() {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS));
        ByteBuffer shorter = batch.duplicate().limit(batch.limit() - 1);
        assertThrows(RecordBatch.CorruptBatchException.class, () -> RecordBatch.verify(shorter));
    }

    private static final ProducerBatch PRODUCER = new ProducerBatch(0x0102030405060708L, (short) 0x0a0b, 0x0c0d0e0f);

    /** Version 1 as documented, built by hand: a batch without a producer must keep these bytes. */
    @Test
    void encode_withoutProducer_isVersion1ByteForByte() {
        List<LogRecord> records = List.of(new LogRecord(5, null, new byte[] {7}),
                new LogRecord(3, new byte[] {1}, new byte[0]));
        ByteBuffer expected = ByteBuffer.allocate(29 + 4 + 4)
                .putLong(0).putInt(37 - 12).putInt(0).put((byte) 1).putInt(2).putLong(5)
                .put(new byte[] {0x00, 0x01, 0x02, 0x07}) // delta 0, key null (-1), value length 1, value
                .put(new byte[] {0x03, 0x02, 0x01, 0x00}); // delta -2, key length 1, key, value length 0
        expected.putInt(12, crc(expected.array()));

        ByteBuffer batch = RecordBatch.encode(records, (int) RecordBatch.sizeInBytes(records));
        assertArrayEquals(expected.array(), batch.array());
        int size = (int) RecordBatch.sizeInBytes(records, null);
        assertArrayEquals(expected.array(), RecordBatch.encode(records, size, null).array());
        assertNull(RecordBatch.producer(batch));
    }

    @Test
    void encode_withProducer_isVersion2WithTheProducerFieldsBeforeTheRecords() throws Exception {
        ByteBuffer v1 = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS));
        ByteBuffer v2 = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS, PRODUCER), PRODUCER);
        assertEquals(v1.remaining() + 14, v2.remaining());
        assertEquals(2, v2.get(16));
        assertEquals(v2.remaining() - 12, v2.getInt(8));
        assertEquals(3, v2.getInt(17));
        assertEquals(v1.getLong(21), v2.getLong(21));
        assertEquals(PRODUCER.producerId(), v2.getLong(29));
        assertEquals(PRODUCER.producerEpoch(), v2.getShort(37));
        assertEquals(PRODUCER.baseSequence(), v2.getInt(39));
        assertArrayEquals(Arrays.copyOfRange(v1.array(), 29, v1.remaining()),
                Arrays.copyOfRange(v2.array(), 43, v2.remaining()), "the records must be encoded alike");
        assertEquals(crc(v2.array()), v2.getInt(12));
        assertEquals(PRODUCER, RecordBatch.producer(v2));
    }

    @Test
    void decode_version2_returnsTheRecordsLikeVersion1() throws Exception {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS, PRODUCER), PRODUCER);
        RecordBatch.setBaseOffset(batch, 41);
        assertEquals(3, RecordBatch.verify(batch));
        List<LogEntry> out = new ArrayList<>();
        RecordBatch.decode(batch, 0, Long.MAX_VALUE, Integer.MAX_VALUE, out);
        assertEquals(List.of(41L, 42L, 43L), out.stream().map(LogEntry::offset).toList());
        assertEquals(RECORDS, out.stream().map(LogEntry::record).toList());
        assertEquals(Long.MAX_VALUE, RecordBatch.maxTimestamp(batch));
        out.clear();
        RecordBatch.decode(batch, 42, 43, 5, out);
        assertEquals(List.of(42L), out.stream().map(LogEntry::offset).toList());
    }

    /** Every bit of the producer fields, and every other byte but the base offset, is under the CRC. */
    @Test
    void verify_version2FlippedBitAnywhereButTheBaseOffset_isDetected() throws Exception {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS, PRODUCER), PRODUCER);
        Random random = new Random(5);
        for (int i = 0; i < batch.remaining(); i++) {
            int bits = i >= RecordBatch.PRODUCER_ID_OFFSET && i < RecordBatch.PRODUCER_RECORDS_OFFSET ? 0xff
                    : 1 << random.nextInt(8);
            for (int bit = 0; bit < 8; bit++) {
                if ((bits & 1 << bit) == 0) {
                    continue;
                }
                ByteBuffer damaged = ByteBuffer.wrap(batch.array().clone());
                damaged.put(i, (byte) (damaged.get(i) ^ 1 << bit));
                if (i < RecordBatch.LENGTH_OFFSET) {
                    assertEquals(3, RecordBatch.verify(damaged), "byte " + i);
                } else {
                    assertThrows(RecordBatch.CorruptBatchException.class, () -> RecordBatch.verify(damaged),
                            "byte " + i + " bit " + bit);
                }
            }
        }
    }

    @Test
    void verify_version2ShorterThanItsHeader_isDetected() {
        // A valid smallest version 1 batch relabelled as version 2 with a matching CRC.
        List<LogRecord> one = List.of(new LogRecord(0, null, new byte[0]));
        ByteBuffer batch = RecordBatch.encode(one, (int) RecordBatch.sizeInBytes(one));
        assertEquals(RecordBatch.MIN_BATCH_LENGTH, batch.getInt(8));
        batch.put(16, (byte) 2);
        batch.putInt(12, crc(batch.array()));
        RecordBatch.CorruptBatchException e = assertThrows(RecordBatch.CorruptBatchException.class,
                () -> RecordBatch.verify(batch));
        assertEquals("batch length 20 is shorter than the smallest batch of format version 2", e.getMessage());
    }

    @Test
    void verify_version2WithNegativeProducerFieldsAndValidCrc_isDetected() {
        for (int field : new int[] {RecordBatch.PRODUCER_ID_OFFSET, RecordBatch.PRODUCER_EPOCH_OFFSET,
                RecordBatch.BASE_SEQUENCE_OFFSET}) {
            ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS, PRODUCER), PRODUCER);
            batch.put(field, (byte) 0x80);
            batch.putInt(12, crc(batch.array()));
            assertThrows(RecordBatch.CorruptBatchException.class, () -> RecordBatch.verify(batch), "field at " + field);
        }
    }

    @Test
    void verify_unknownMagicWithValidCrc_isDetected() {
        ByteBuffer batch = RecordBatch.encode(RECORDS, (int) RecordBatch.sizeInBytes(RECORDS, PRODUCER), PRODUCER);
        batch.put(16, (byte) 3);
        batch.putInt(12, crc(batch.array()));
        RecordBatch.CorruptBatchException e = assertThrows(RecordBatch.CorruptBatchException.class,
                () -> RecordBatch.verify(batch));
        assertEquals("unknown batch format version 3", e.getMessage());
    }

    @Test
    void producerBatch_negativeField_isRejected() {
        assertThrows(IllegalArgumentException.class, () -> new ProducerBatch(-1, (short) 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new ProducerBatch(0, (short) -1, 0));
        assertThrows(IllegalArgumentException.class, () -> new ProducerBatch(0, (short) 0, -1));
    }

    /** The CRC as documented: CRC32C of every byte from the magic on, computed independently. */
    private static int crc(byte[] batch) {
        CRC32C crc = new CRC32C();
        crc.update(batch, 16, batch.length - 16);
        return (int) crc.getValue();
    }
}
