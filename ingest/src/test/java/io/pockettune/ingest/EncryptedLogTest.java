package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.batches;
import static io.pockettune.ingest.LogTestSupport.entries;
import static io.pockettune.ingest.LogTestSupport.randomBatches;
import static io.pockettune.ingest.LogTestSupport.segments;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.pockettune.ingest.LogTestSupport.BatchSpan;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Encryption at rest of the embedded log, on real files: no plaintext in any file, reopening with
 * the key, the three key mistakes refused in one sentence, a tampered batch cut by recovery, and
 * the seal/open pair keeping a batch's length a function of its plaintext length.
 */
class EncryptedLogTest {

    private static final LogConfig CLEAR = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(128);

    @TempDir
    Path dir;

    private static byte[] key(long seed) {
        byte[] key = new byte[32];
        new Random(seed).nextBytes(key);
        return key;
    }

    private static List<List<LogRecord>> textBatches(int n) {
        List<List<LogRecord>> batches = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            batches.add(List.of(new LogRecord(1_700_000_000_000L + i, ("user-" + i).getBytes(StandardCharsets.UTF_8),
                    ("secret message number " + i + " about the dentist").getBytes(StandardCharsets.UTF_8))));
        }
        return batches;
    }

    private static boolean anyFileContains(Path root, byte[] needle) throws IOException {
        try (Stream<Path> files = Files.walk(root)) {
            for (Path f : files.filter(Files::isRegularFile).toList()) {
                byte[] bytes = Files.readAllBytes(f);
                outer:
                for (int i = 0; i + needle.length <= bytes.length; i++) {
                    for (int j = 0; j < needle.length; j++) {
                        if (bytes[i + j] != needle[j]) {
                            continue outer;
                        }
                    }
                    return true;
                }
            }
        }
        return false;
    }

    @Test
    void encryptedFilesHoldNoPlaintextAndReopenReadsAll() throws IOException {
        List<List<LogRecord>> batches = textBatches(40);
        Path clear = dir.resolve("clear");
        Path sealed = dir.resolve("sealed");
        for (Path root : List.of(clear, sealed)) {
            LogConfig config = root == sealed ? CLEAR.withEncryptionKey(key(1)) : CLEAR;
            try (EmbeddedLog log = EmbeddedLog.open(root, config)) {
                log.createTopic("events", 1);
                EmbeddedLogTest.appendAll(log, batches);
            }
        }
        byte[] needle = "about the dentist".getBytes(StandardCharsets.UTF_8);
        assertTrue(anyFileContains(clear, needle), "the clear log must hold the text, or the check proves nothing");
        assertFalse(anyFileContains(sealed, needle), "an encrypted log must not hold the text");
        assertTrue(segments(sealed.resolve("events-0")).size() > 1, "the workload must roll segments");
        try (EmbeddedLog log = EmbeddedLog.open(sealed, CLEAR.withEncryptionKey(key(1)))) {
            assertEquals(0, log.segmentsRecoveredAtOpen(), "a clean encrypted log must load its indexes, not rescan");
            assertEntries(entries(batches), log.read("events", 0, 0, 1000));
            log.append("events", 0, List.of(new LogRecord(5L, null, "after reopen".getBytes(StandardCharsets.UTF_8))));
            assertEquals(41, log.endOffset("events", 0));
        }
        try (LogSnapshot snapshot = LogSnapshot.open(sealed, key(1))) {
            assertEntries(entries(batches), snapshot.read("events", 0, 0, 40));
        }
    }

    @Test
    void keyMistakesAreRefusedInOneSentence() throws IOException {
        Path sealed = dir.resolve("sealed");
        try (EmbeddedLog log = EmbeddedLog.open(sealed, CLEAR.withEncryptionKey(key(1)))) {
            log.createTopic("events", 1);
            EmbeddedLogTest.appendAll(log, textBatches(3));
        }
        Path clear = dir.resolve("clear");
        try (EmbeddedLog log = EmbeddedLog.open(clear, CLEAR)) {
            log.createTopic("events", 1);
        }
        String missing = assertThrows(IllegalStateException.class, () -> EmbeddedLog.open(sealed, CLEAR)).getMessage();
        assertTrue(missing.contains("is encrypted but no key was given"), missing);
        String wrong = assertThrows(IllegalStateException.class,
                () -> EmbeddedLog.open(sealed, CLEAR.withEncryptionKey(key(2)))).getMessage();
        assertTrue(wrong.contains("is not the key"), wrong);
        String onClear = assertThrows(IllegalStateException.class,
                () -> EmbeddedLog.open(clear, CLEAR.withEncryptionKey(key(1)))).getMessage();
        assertTrue(onClear.contains("is not encrypted"), onClear);
        assertThrows(IllegalStateException.class, () -> LogSnapshot.open(sealed, null));
        assertThrows(IllegalStateException.class, () -> LogSnapshot.open(sealed, key(2)));
        assertThrows(IllegalStateException.class, () -> LogSnapshot.open(clear, key(1)));
        for (String m : List.of(missing, wrong, onClear)) {
            assertEquals(1, m.split("\\. ").length, "one sentence: " + m);
            assertTrue(m.endsWith("") && !m.contains("\n"), m);
        }
        String marker = Files.readString(sealed.resolve(LogEncryption.FILE));
        assertFalse(marker.contains(java.util.HexFormat.of().formatHex(key(1))), "the marker must not hold the key");
        // the refusals damaged nothing
        try (EmbeddedLog log = EmbeddedLog.open(sealed, CLEAR.withEncryptionKey(key(1)))) {
            assertEquals(3, log.endOffset("events", 0));
        }
    }

    @Test
    void recoveryCutsAtTheFirstBatchThatFailsAuthentication() throws IOException {
        List<List<LogRecord>> batches = randomBatches(new Random(3), 30);
        LogConfig config = LogConfig.defaults().withEncryptionKey(key(1));
        EmbeddedLog log = EmbeddedLog.open(dir, config);
        log.createTopic("events", 1);
        EmbeddedLogTest.appendAll(log, batches);
        log.abandon();
        Path segment = segments(dir.resolve("events-0")).get(0);
        List<BatchSpan> spans = batches(segment);
        assertEquals(30, spans.size());
        BatchSpan victim = spans.get(17);
        // flip one byte inside the encrypted records section; the CRC field is not involved
        long position = victim.end() - 20;
        byte[] b = new byte[1];
        try (var ch = java.nio.channels.FileChannel.open(segment, java.nio.file.StandardOpenOption.READ)) {
            ch.read(ByteBuffer.wrap(b), position);
        }
        LogTestSupport.overwrite(segment, position, new byte[] {(byte) (b[0] ^ 0x01)});
        try (EmbeddedLog reopened = EmbeddedLog.open(dir, config)) {
            assertEquals(victim.baseOffset(), reopened.endOffset("events", 0));
            assertEquals(victim.start(), Files.size(segment));
            List<LogEntry> expected = entries(batches).subList(0, (int) victim.baseOffset());
            assertEntries(expected, reopened.read("events", 0, 0, 1000));
        }
    }

    @Test
    void sealedLengthIsAFunctionOfPlainLengthAndOpenInvertsSeal() throws IOException {
        byte[] raw = new byte[32];
        new SecureRandom().nextBytes(raw);
        BatchCipher cipher = new BatchCipher(raw);
        Random random = new Random(5);
        List<List<LogRecord>> all = new ArrayList<>(randomBatches(random, 50));
        byte[] large = new byte[3 * BatchCipher.PIECE_BYTES + 17]; // sealed in several pieces
        random.nextBytes(large);
        all.add(List.of(new LogRecord(1L, null, large), new LogRecord(2L, null, large)));
        for (List<LogRecord> records : all) {
            ProducerBatch producer = random.nextBoolean() ? null : new ProducerBatch(7, (short) 1, 3);
            int size = (int) RecordBatch.sizeInBytes(records, producer);
            ByteBuffer plain = RecordBatch.encode(records, size, producer);
            RecordBatch.setBaseOffset(plain, 1234);
            ByteBuffer sealed = cipher.seal(plain);
            assertEquals(BatchCipher.sealedSize(size), sealed.remaining());
            assertEquals(sealed.remaining() - RecordBatch.LOG_OVERHEAD, sealed.getInt(RecordBatch.LENGTH_OFFSET));
            ByteBuffer opened = cipher.open(sealed);
            assertEquals(plain, opened);
            ByteBuffer again = cipher.seal(plain);
            assertFalse(again.equals(sealed), "every seal takes a fresh nonce");
            for (int i = 0; i < sealed.remaining(); i += sealed.remaining() > 1000 ? 101 : 7) {
                ByteBuffer damaged = ByteBuffer.allocate(sealed.remaining()).put(sealed.duplicate()).flip();
                damaged.put(i, (byte) (damaged.get(i) ^ 0x40));
                final ByteBuffer d = damaged;
                assertThrows(RecordBatch.CorruptBatchException.class, () -> cipher.open(d), "byte " + i);
            }
        }
    }

    private static void assertEntries(List<LogEntry> expected, List<LogEntry> actual) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i).offset(), actual.get(i).offset());
            assertEquals(expected.get(i).timestamp(), actual.get(i).timestamp());
            assertArrayEquals(expected.get(i).key(), actual.get(i).key());
            assertArrayEquals(expected.get(i).value(), actual.get(i).value());
        }
    }
}
