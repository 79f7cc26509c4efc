package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
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
}
