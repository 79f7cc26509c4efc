package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.OptionalLong;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.junit.jupiter.api.Test;

/** The rules of {@link ProducerStateTable} on their own; {@link IdempotentWriteTest} runs them on files. */
class ProducerStateTableTest {

    private final ProducerStateTable table = new ProducerStateTable(new TopicPartition("t", 0));

    private static ProducerBatch batch(long producerId, int epoch, int baseSequence) {
        return new ProducerBatch(producerId, (short) epoch, baseSequence);
    }

    @Test
    void lastSequence_wrapsFromMaxValueToZero() {
        assertEquals(4, ProducerStateTable.lastSequence(0, 5));
        assertEquals(Integer.MAX_VALUE, ProducerStateTable.lastSequence(Integer.MAX_VALUE, 1));
        assertEquals(0, ProducerStateTable.lastSequence(Integer.MAX_VALUE, 2));
        // MAX_VALUE records from MAX_VALUE: MAX_VALUE, 0, 1, ..., MAX_VALUE - 2.
        assertEquals(Integer.MAX_VALUE - 2, ProducerStateTable.lastSequence(Integer.MAX_VALUE, Integer.MAX_VALUE));
        assertEquals(0, ProducerStateTable.nextSequence(Integer.MAX_VALUE));
        assertEquals(8, ProducerStateTable.nextSequence(7));
    }

    @Test
    void check_changesNothing() {
        table.append(batch(1, 0, 0), 2, 100);
        assertEquals(OptionalLong.empty(), table.check(batch(1, 0, 2), 1));
        assertEquals(OptionalLong.empty(), table.check(batch(1, 0, 2), 1));
        assertEquals(OptionalLong.of(100), table.check(batch(1, 0, 0), 2));
        assertEquals(OptionalLong.empty(), table.check(batch(2, 0, 9), 1));
        assertEquals(1, table.size());
    }

    @Test
    void append_keepsTheLastFiveBatches() {
        for (int seq = 0; seq < 7; seq++) {
            table.append(batch(1, 0, seq), 1, seq * 10L);
        }
        assertThrows(OutOfOrderSequenceException.class, () -> table.check(batch(1, 0, 1), 1));
        for (int seq = 2; seq < 7; seq++) {
            assertEquals(OptionalLong.of(seq * 10L), table.check(batch(1, 0, seq), 1));
        }
    }

    @Test
    void append_newerEpochReplacesTheStateAndOlderOneIsIgnored() {
        table.append(batch(1, 0, 0), 3, 0);
        table.append(batch(1, 1, 0), 1, 3);
        table.append(batch(1, 0, 3), 1, 4);
        assertEquals(OptionalLong.of(3), table.check(batch(1, 1, 0), 1));
        assertEquals(OptionalLong.empty(), table.check(batch(1, 1, 1), 1));
        assertThrows(InvalidProducerEpochException.class, () -> table.check(batch(1, 0, 0), 3));
        assertThrows(OutOfOrderSequenceException.class, () -> table.check(batch(1, 2, 1), 1));
        assertEquals(OptionalLong.empty(), table.check(batch(1, 2, 0), 1));
    }

    @Test
    void maxProducerId_isTheLargestAppendedOrMinusOne() {
        assertEquals(-1, table.maxProducerId());
        table.append(batch(9, 0, 0), 1, 0);
        table.append(batch(3, 0, 0), 1, 1);
        assertEquals(9, table.maxProducerId());
    }
}
