package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;

/**
 * Fuzzing the record-batch parser recovery relies on (jqwik). Valid batches of both formats
 * (magic 1, and magic 2 with a producer), mutated anywhere past the CRC field, then given a
 * matching length and CRC so that the mutation reaches the structural checks rather than dying at
 * the CRC: {@code verify} either accepts the batch or throws a {@code CorruptBatchException} with
 * a message, nothing else, and a batch it accepts always decodes, into at most its record count.
 * (A CRC that does not match is covered by {@code RecordBatchTest}; whole segments with garbage by
 * {@code LogRecoveryTest}.) A failure prints jqwik's seed; {@code @Property(seed = "...")} replays it.
 */
class RecordBatchFuzzTest {

  @Property(tries = 5000)
  void aMutatedBatchWithAValidCrcIsAcceptedAndDecodesOrIsRefused(@ForAll("batches") ByteBuffer valid,
      @ForAll @IntRange(min = 0, max = 1 << 16) int where, @ForAll byte value, @ForAll @IntRange(min = 0, max = 3) int kind)
      throws Exception {
    ByteBuffer batch = mutate(valid, where, value, kind);
    int count;
    try {
      count = RecordBatch.verify(batch.duplicate());
    } catch (RecordBatch.CorruptBatchException e) {
      assertNotNull(e.getMessage());
      return;
    }
    List<LogEntry> out = new ArrayList<>();
    RecordBatch.decode(batch.duplicate(), 0, Long.MAX_VALUE, Integer.MAX_VALUE, out);
    // A mutation may have made a record look erased (key length -2): decode skips those.
    assertTrue(out.size() <= count, "an accepted batch decodes into at most its record count");
    long previous = 99;
    for (LogEntry e : out) {
      assertTrue(e.offset() > previous && e.offset() < 100 + count, "offsets increase within the batch: " + out);
      previous = e.offset();
    }
  }

  /**
   * Erasing any subset of a batch's records keeps its length, passes {@code verify}, and leaves
   * exactly the other records, byte for byte, with their offsets; erasing again changes nothing.
   */
  @Property(tries = 2000)
  void erasingAnySubsetKeepsTheLengthAndExactlyTheOtherRecords(@ForAll("batches") ByteBuffer valid,
      @ForAll("subsets") java.util.Set<Long> erase) throws Exception {
    List<LogEntry> before = new ArrayList<>();
    RecordBatch.decode(valid.duplicate(), 0, Long.MAX_VALUE, Integer.MAX_VALUE, before);
    ByteBuffer batch = ByteBuffer.allocate(valid.remaining()).put(valid.duplicate()).flip();
    List<Long> erased = RecordBatch.erase(batch, erase);
    assertEquals(valid.remaining(), batch.remaining(), "an erased batch keeps its length");
    assertEquals(before.size(), RecordBatch.verify(batch.duplicate()), "the record count stays");
    List<LogEntry> after = new ArrayList<>();
    RecordBatch.decode(batch.duplicate(), 0, Long.MAX_VALUE, Integer.MAX_VALUE, after);
    List<LogEntry> expected = before.stream().filter(e -> !erase.contains(e.offset())).toList();
    assertEquals(expected, after);
    assertEquals(before.stream().map(LogEntry::offset).filter(erase::contains).toList(), erased);
    ByteBuffer again = ByteBuffer.allocate(batch.remaining()).put(batch.duplicate()).flip();
    assertEquals(List.of(), RecordBatch.erase(again, erase), "erasing twice erases nothing more");
    assertEquals(batch, again);
  }

  @Provide
  Arbitrary<java.util.Set<Long>> subsets() {
    return Arbitraries.longs().between(98, 110).set().ofMaxSize(8);
  }

  @Provide
  Arbitrary<ByteBuffer> batches() {
    Arbitrary<LogRecord> record = Combinators.combine(Arbitraries.longs().between(0, 1L << 42),
        Arbitraries.bytes().array(byte[].class).ofMaxSize(12).injectNull(0.3),
        Arbitraries.bytes().array(byte[].class).ofMaxSize(40)).as(LogRecord::new);
    return Combinators.combine(record.list().ofMinSize(1).ofMaxSize(8), Arbitraries.integers().between(0, 2))
        .as((records, producer) -> {
          ByteBuffer b = producer == 0
              ? RecordBatch.encode(records, (int) RecordBatch.sizeInBytes(records))
              : RecordBatch.encode(records, (int) RecordBatch.sizeInBytes(records, new ProducerBatch(7, (short) 1, 3)),
                  new ProducerBatch(7, (short) 1, 3));
          RecordBatch.setBaseOffset(b, 100);
          return b;
        });
  }

  /**
   * Flips a byte, overwrites one with 0xFF (huge varints), cuts the batch or inserts a byte, past
   * the CRC field; then rewrites the length and the CRC to match.
   */
  static ByteBuffer mutate(ByteBuffer valid, int where, byte value, int kind) {
    byte[] b = new byte[valid.remaining()];
    valid.duplicate().get(b);
    int body = RecordBatch.MAGIC_OFFSET;
    int at = body + where % (b.length - body);
    byte[] out = switch (kind) {
      case 0 -> { b[at] ^= (byte) (value == 0 ? 1 : value); yield b; }
      case 1 -> { b[at] = (byte) 0xFF; yield b; }
      case 2 -> java.util.Arrays.copyOf(b, Math.max(body + 1, at));
      default -> {
        byte[] longer = new byte[b.length + 1];
        System.arraycopy(b, 0, longer, 0, at);
        longer[at] = value;
        System.arraycopy(b, at, longer, at + 1, b.length - at);
        yield longer;
      }
    };
    ByteBuffer m = ByteBuffer.wrap(out);
    if (out.length >= RecordBatch.MAGIC_OFFSET) {
      m.putInt(RecordBatch.LENGTH_OFFSET, out.length - RecordBatch.LOG_OVERHEAD);
      CRC32C crc = new CRC32C();
      crc.update(out, RecordBatch.MAGIC_OFFSET, out.length - RecordBatch.MAGIC_OFFSET);
      m.putInt(RecordBatch.CRC_OFFSET, (int) crc.getValue());
    }
    return m;
  }
}
