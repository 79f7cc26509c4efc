package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.OptionalLong;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One segment of a partition: {@code <20-digit baseOffset>.log}, a concatenation of
 * {@link RecordBatch record batches} whose offsets continue without gaps from the base offset in
 * the file name, plus its {@link OffsetIndex} and {@link TimeIndex}.
 *
 * <p><b>Index rule.</b> Before a batch is written at position {@code p}, it gets an index entry if
 * at least {@code indexIntervalBytes} bytes of batches were written since the last entry (or since
 * the start of the segment, so the first batch never gets one: position 0 is implicit). Recovery
 * applies the same rule while scanning, so a rebuilt index equals the one written by appends.
 * The time index gets an entry (largest timestamp so far, offset) at the same moments, when the
 * largest timestamp has grown since its last entry. The segment's largest timestamp is kept in
 * memory for retention by age and time lookups: from appends, from recovery, or (after a clean
 * shutdown) from the last time index entry plus the batches after the last offset index entry.
 *
 * <p><b>Visibility.</b> The segment has two sizes. {@code writePosition} is where the single
 * appender writes next; bytes up to it may belong to a batch that is not acknowledged yet and may
 * still be rolled back. {@code visibleSize} is published (volatile) only after a batch is complete
 * and durable per the flush policy, and readers never look past it, so they cannot observe a torn
 * or rolled-back batch.
 *
 * <p><b>Recovery.</b> {@link #recover()} reads the file from the start and accepts batches while
 * each one fits in the file, has a plausible length, starts at exactly the expected offset and
 * passes {@link RecordBatch#verify}. The file is cut at the first batch that fails: a crash can
 * leave a partial batch, zeros or stale bytes there, and nothing behind it can be kept, because
 * offsets must stay contiguous (and anything behind it was never durable under the policy in
 * force, since an fsync covers every earlier byte of the file).
 *
 * <p>Thread safety: the writer methods ({@link #append}, {@link #mark}, {@link #rollback},
 * {@link #publish}, {@link #flush}, {@link #recover}) must be called by one thread at a time (the
 * partition's append lock). {@link #read} may run concurrently with them from any thread; it uses
 * positional reads, which do not disturb the channel's position.
 *
 * <p><b>Permissions.</b> The segment holds the user's events as written: its files are created
 * owner-only (0600, {@link OwnerOnly}), and a segment an older version wrote wider is narrowed
 * when it is opened.
 *
 * <p><b>Encryption at rest.</b> With a {@link BatchCipher} (an encrypted log), this class is where
 * batches are sealed on their way into the file ({@link #append}) and opened on their way out
 * ({@link #recover}, the index plausibility walk, {@link #read}); positions, sizes and the index
 * rule count sealed bytes, and header walks read the header fields a sealed batch keeps in the
 * clear. A batch that fails authentication is invalid exactly like one that fails its CRC.
 */
final class LogSegment implements Closeable {

    private static final Logger LOG = LoggerFactory.getLogger(LogSegment.class);

    static final String LOG_SUFFIX = ".log";
    static final String INDEX_SUFFIX = ".index";
    static final String TIME_INDEX_SUFFIX = ".timeindex";
    /** The read size of {@link #loadProducerState}: one page. */
    static final int HEADER_WINDOW_BYTES = 4096;

    /** What {@link #recover()} found; {@code problem} is null when nothing was cut. */
    record Recovery(long nextOffset, int validBytes, long truncatedBytes, String problem) {
    }

    /** Writer state before an append, to undo it if the append fails. */
    record Mark(int writePosition, int bytesSinceLastIndexEntry, int timeIndexEntries, long maxTimestamp) {
    }

    private final Path logFile;
    private final long baseOffset;
    private final int indexIntervalBytes;
    private final FileChannel channel;
    private final OffsetIndex index;
    private final TimeIndex timeIndex;
    private final boolean indexExisted;
    /** Held for reading by readers, for writing while {@link #erase} rewrites a batch. */
    private final java.util.concurrent.locks.ReentrantReadWriteLock eraseLock =
            new java.util.concurrent.locks.ReentrantReadWriteLock();
    /** Seals batches on append and opens them on every read; null for a clear log. */
    private final BatchCipher cipher;

    private int writePosition;
    private int bytesSinceLastIndexEntry;
    private volatile int visibleSize;
    /** Largest record timestamp written, Long.MIN_VALUE when none; read by retention. */
    private volatile long maxTimestamp = Long.MIN_VALUE;

    private LogSegment(Path logFile, long baseOffset, int indexIntervalBytes, FileChannel channel,
            OffsetIndex index, TimeIndex timeIndex, boolean indexExisted, int size, BatchCipher cipher) {
        this.cipher = cipher;
        this.logFile = logFile;
        this.baseOffset = baseOffset;
        this.indexIntervalBytes = indexIntervalBytes;
        this.channel = channel;
        this.index = index;
        this.timeIndex = timeIndex;
        this.indexExisted = indexExisted;
        this.writePosition = size;
        this.bytesSinceLastIndexEntry = size;
        this.visibleSize = size;
    }

    static String fileName(long baseOffset, String suffix) {
        return String.format("%020d%s", baseOffset, suffix);
    }

    /** Creates an empty segment and makes its files' existence durable. */
    static LogSegment create(Path dir, long baseOffset, int indexIntervalBytes, FileChannels channels) throws IOException {
        return create(dir, baseOffset, indexIntervalBytes, channels, null);
    }

    /** Creates an empty segment whose batches {@code cipher} seals (null: in the clear). */
    static LogSegment create(Path dir, long baseOffset, int indexIntervalBytes, FileChannels channels, BatchCipher cipher)
            throws IOException {
        Path logFile = dir.resolve(fileName(baseOffset, LOG_SUFFIX));
        Path indexFile = dir.resolve(fileName(baseOffset, INDEX_SUFFIX));
        Path timeIndexFile = dir.resolve(fileName(baseOffset, TIME_INDEX_SUFFIX));
        // Leftovers of a roll that failed half way hold no acknowledged data.
        Files.deleteIfExists(indexFile);
        Files.deleteIfExists(timeIndexFile);
        FileChannel channel = OwnerOnly.open(channels, logFile, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
        OffsetIndex index = null;
        try {
            index = OffsetIndex.open(indexFile, baseOffset, channels);
            TimeIndex timeIndex = TimeIndex.open(timeIndexFile, baseOffset, channels);
            Utils.flushDir(dir);
            return new LogSegment(logFile, baseOffset, indexIntervalBytes, channel, index, timeIndex, true, 0, cipher);
        } catch (IOException | RuntimeException e) {
            channel.close();
            if (index != null) {
                index.close();
            }
            throw e;
        }
    }

    /**
     * Opens an existing segment. Its index is not loaded yet: call {@link #loadIndex()} and, for
     * the last segment, {@link #walkTail()}, or else {@link #recover()}.
     */
    static LogSegment open(Path dir, long baseOffset, int indexIntervalBytes, FileChannels channels) throws IOException {
        return open(dir, baseOffset, indexIntervalBytes, channels, null);
    }

    /** Opens an existing segment whose batches {@code cipher} sealed (null: in the clear). */
    static LogSegment open(Path dir, long baseOffset, int indexIntervalBytes, FileChannels channels, BatchCipher cipher)
            throws IOException {
        Path logFile = dir.resolve(fileName(baseOffset, LOG_SUFFIX));
        Path indexFile = dir.resolve(fileName(baseOffset, INDEX_SUFFIX));
        OwnerOnly.restrict(logFile); // written wider by a version before 0600 segments
        FileChannel channel = channels.open(logFile, java.util.Set.of(StandardOpenOption.READ, StandardOpenOption.WRITE));
        try {
            long size = channel.size();
            if (size > Integer.MAX_VALUE) {
                throw new IOException("segment " + logFile + " is " + size
                        + " bytes, more than a segment can hold; it was not written by this log, move it away");
            }
            Path timeIndexFile = dir.resolve(fileName(baseOffset, TIME_INDEX_SUFFIX));
            boolean indexExisted = Files.exists(indexFile) && Files.exists(timeIndexFile);
            OffsetIndex index = OffsetIndex.open(indexFile, baseOffset, channels);
            TimeIndex timeIndex;
            try {
                timeIndex = TimeIndex.open(timeIndexFile, baseOffset, channels);
            } catch (IOException | RuntimeException e) {
                index.close();
                throw e;
            }
            return new LogSegment(logFile, baseOffset, indexIntervalBytes, channel, index, timeIndex, indexExisted,
                    (int) size, cipher);
        } catch (IOException | RuntimeException e) {
            channel.close();
            throw e;
        }
    }

    long baseOffset() {
        return baseOffset;
    }

    /** @return the size including bytes not yet published; writer thread only */
    int size() {
        return writePosition;
    }

    /**
     * Loads the index file if it existed and is plausible: well formed, and its last entry points at
     * a batch header carrying that entry's offset.
     *
     * @return false if the index must be rebuilt by {@link #recover()}
     */
    boolean loadIndex() throws IOException {
        if (!indexExisted || !index.load(writePosition)) {
            return false;
        }
        OffsetIndex.Entry last = index.last();
        if (!timeIndex.load(last.offset())) {
            return false;
        }
        if (last.position() != 0) {
            if (writePosition - last.position() < RecordBatch.HEADER_SIZE) {
                return false;
            }
            ByteBuffer header = readHeader(last.position());
            if (header.getLong(RecordBatch.BASE_OFFSET_OFFSET) != last.offset()) {
                return false;
            }
        }
        return loadMaxTimestamp(last.position());
    }

    /**
     * Sets the largest timestamp from the last time index entry and the batches from byte
     * {@code from} (the last offset index entry) to the end of the file.
     *
     * @return false if those batches are not intact
     */
    private boolean loadMaxTimestamp(int from) throws IOException {
        TimeIndex.Entry lastTime = timeIndex.last();
        long max = lastTime == null ? Long.MIN_VALUE : lastTime.timestamp();
        int position = from;
        while (position < writePosition) {
            if (writePosition - position < RecordBatch.HEADER_SIZE) {
                return false;
            }
            int length = readHeader(position).getInt(RecordBatch.LENGTH_OFFSET);
            if (length < RecordBatch.MIN_BATCH_LENGTH || length > writePosition - position - RecordBatch.LOG_OVERHEAD) {
                return false;
            }
            ByteBuffer batch = ByteBuffer.allocate(RecordBatch.LOG_OVERHEAD + length);
            Utils.readFully(channel, batch, position);
            batch.flip();
            try {
                batch = plain(batch);
                RecordBatch.verify(batch);
            } catch (RecordBatch.CorruptBatchException e) {
                return false;
            }
            max = Math.max(max, RecordBatch.maxTimestamp(batch));
            position += RecordBatch.LOG_OVERHEAD + length;
        }
        maxTimestamp = max;
        return true;
    }

    /** @return the largest record timestamp in the segment, or Long.MIN_VALUE if it is empty */
    long maxTimestamp() {
        return maxTimestamp;
    }

    /** @return the offset from which to scan for the first record at or after {@code timestamp} */
    long timeScanStart(long timestamp) {
        return timeIndex.scanStart(timestamp);
    }

    /**
     * Walks batch headers (without checking CRCs) from the last index entry to the end of the file,
     * which is cheap and enough to find the next offset after a clean shutdown.
     *
     * @return the next offset, or empty if the headers do not end exactly at the end of the file
     */
    OptionalLong walkTail() throws IOException {
        OffsetIndex.Entry last = index.last();
        int position = last.position();
        long next = last.offset();
        while (position < writePosition) {
            if (writePosition - position < RecordBatch.HEADER_SIZE) {
                return OptionalLong.empty();
            }
            ByteBuffer header = readHeader(position);
            long base = header.getLong(RecordBatch.BASE_OFFSET_OFFSET);
            int length = header.getInt(RecordBatch.LENGTH_OFFSET);
            int count = header.getInt(RecordBatch.COUNT_OFFSET);
            if (base != next || length < RecordBatch.MIN_BATCH_LENGTH
                    || length > writePosition - position - RecordBatch.LOG_OVERHEAD || count < 1) {
                return OptionalLong.empty();
            }
            position += RecordBatch.LOG_OVERHEAD + length;
            next = base + count;
        }
        bytesSinceLastIndexEntry = writePosition - last.position();
        return OptionalLong.of(next);
    }

    /**
     * Replays the producer identities of the segment's version 2 batches, in log order, into
     * {@code table}, reading batch headers only. Headers are read through a window of
     * {@link #HEADER_WINDOW_BYTES}, so batches smaller than that cost no extra read (the device
     * reads whole pages anyway) and larger ones cost one read per batch without their bodies. The
     * segment must have been recovered, or trusted after a clean shutdown; if its headers do not
     * chain, the walk stops there with a warning and the producers of the rest of the segment
     * start unknown, which only weakens de-duplication.
     */
    void loadProducerState(ProducerStateTable table) throws IOException {
        ByteBuffer window = ByteBuffer.allocate(HEADER_WINDOW_BYTES).limit(0);
        int windowStart = 0;
        int position = 0;
        long next = baseOffset;
        while (position < writePosition) {
            int remaining = writePosition - position;
            int wanted = Math.min(RecordBatch.PRODUCER_HEADER_SIZE, remaining);
            if (wanted < RecordBatch.HEADER_SIZE) {
                warnProducerWalk(position, "a partial batch header");
                return;
            }
            if (position + wanted > windowStart + window.limit()) {
                window.clear().limit(Math.min(HEADER_WINDOW_BYTES, remaining));
                Utils.readFullyOrFail(channel, window, position, "batch headers");
                window.flip();
                windowStart = position;
            }
            ByteBuffer header = window.slice(position - windowStart, wanted);
            long base = header.getLong(RecordBatch.BASE_OFFSET_OFFSET);
            int length = header.getInt(RecordBatch.LENGTH_OFFSET);
            int count = header.getInt(RecordBatch.COUNT_OFFSET);
            byte magic = header.get(RecordBatch.MAGIC_OFFSET);
            int minLength = magic == RecordBatch.PRODUCER_MAGIC ? RecordBatch.MIN_PRODUCER_BATCH_LENGTH
                    : RecordBatch.MIN_BATCH_LENGTH;
            if (base != next || count < 1 || (magic != RecordBatch.MAGIC && magic != RecordBatch.PRODUCER_MAGIC)
                    || length < minLength || length > remaining - RecordBatch.LOG_OVERHEAD) {
                warnProducerWalk(position, "base offset " + base + " (expected " + next + "), batch length " + length
                        + ", record count " + count + ", format version " + magic);
                return;
            }
            if (magic == RecordBatch.PRODUCER_MAGIC) {
                long producerId = header.getLong(RecordBatch.PRODUCER_ID_OFFSET);
                short epoch = header.getShort(RecordBatch.PRODUCER_EPOCH_OFFSET);
                int sequence = header.getInt(RecordBatch.BASE_SEQUENCE_OFFSET);
                if (producerId < 0 || epoch < 0 || sequence < 0) {
                    warnProducerWalk(position, "producer id " + producerId + ", epoch " + epoch + ", base sequence "
                            + sequence);
                    return;
                }
                table.append(new ProducerBatch(producerId, epoch, sequence), count, base);
            }
            position += RecordBatch.LOG_OVERHEAD + length;
            next = base + count;
        }
    }

    private void warnProducerWalk(int position, String problem) {
        LOG.warn("The batch headers of {} do not chain at byte {} ({}); producer state is not rebuilt from there"
                + " on, so a retry of an idempotent batch after it may be appended twice", logFile, position, problem);
    }

    /**
     * Validates every batch from the start of the file, rebuilds the index on the way, and cuts the
     * file at the first batch that is not valid (see the class comment). Does not force anything.
     */
    Recovery recover() throws IOException {
        index.reset();
        timeIndex.reset();
        long max = Long.MIN_VALUE;
        long fileSize = channel.size();
        int position = 0;
        long next = baseOffset;
        int sinceIndexEntry = 0;
        String problem = null;
        while (position < fileSize) {
            long remaining = fileSize - position;
            if (remaining < RecordBatch.HEADER_SIZE) {
                problem = "a partial batch header of " + remaining + " bytes";
                break;
            }
            ByteBuffer header = readHeader(position);
            long base = header.getLong(RecordBatch.BASE_OFFSET_OFFSET);
            int length = header.getInt(RecordBatch.LENGTH_OFFSET);
            if (length < RecordBatch.MIN_BATCH_LENGTH || length > remaining - RecordBatch.LOG_OVERHEAD) {
                problem = "batch length " + length + " with " + remaining + " bytes left in the file";
                break;
            }
            if (base != next) {
                problem = "base offset " + base + " where offset " + next + " was expected";
                break;
            }
            int batchSize = RecordBatch.LOG_OVERHEAD + length;
            ByteBuffer batch = ByteBuffer.allocate(batchSize);
            Utils.readFully(channel, batch, position);
            batch.flip();
            int count;
            try {
                batch = plain(batch);
                count = RecordBatch.verify(batch);
            } catch (RecordBatch.CorruptBatchException e) {
                problem = e.getMessage();
                break;
            }
            if (sinceIndexEntry >= indexIntervalBytes) {
                index.append(base, position);
                timeIndex.maybeAppend(max, base);
                sinceIndexEntry = 0;
            }
            max = Math.max(max, RecordBatch.maxTimestamp(batch));
            sinceIndexEntry += batchSize;
            position += batchSize;
            next = base + count;
        }
        long truncated = fileSize - position;
        if (truncated > 0) {
            channel.truncate(position);
        }
        writePosition = position;
        visibleSize = position;
        bytesSinceLastIndexEntry = sinceIndexEntry;
        maxTimestamp = max;
        return new Recovery(next, position, truncated, problem);
    }

    Mark mark() {
        return new Mark(writePosition, bytesSinceLastIndexEntry, timeIndex.entries(), maxTimestamp);
    }

    /**
     * Writes one batch (stamped with its base offset) after the last one, indexing it per the
     * index rule. The bytes are not visible to readers until {@link #publish(int)}.
     */
    void append(ByteBuffer batch, long baseOffset, long batchMaxTimestamp) throws IOException {
        if (cipher != null) {
            batch = cipher.seal(batch);
        }
        int size = batch.remaining();
        if (bytesSinceLastIndexEntry >= indexIntervalBytes) {
            index.append(baseOffset, writePosition);
            timeIndex.maybeAppend(maxTimestamp, baseOffset);
            bytesSinceLastIndexEntry = 0;
        }
        long position = writePosition;
        while (batch.hasRemaining()) {
            position += channel.write(batch, position);
        }
        writePosition += size;
        bytesSinceLastIndexEntry += size;
        maxTimestamp = Math.max(maxTimestamp, batchMaxTimestamp);
    }

    /** Undoes the appends since {@code mark}: nothing of them was published. */
    void rollback(Mark mark) throws IOException {
        index.truncateToPosition(mark.writePosition());
        timeIndex.truncateToEntries(mark.timeIndexEntries());
        channel.truncate(mark.writePosition());
        writePosition = mark.writePosition();
        bytesSinceLastIndexEntry = mark.bytesSinceLastIndexEntry();
        maxTimestamp = mark.maxTimestamp();
    }

    /**
     * Makes the bytes up to {@code position} visible to readers; never shrinks what is visible.
     * Called by whichever thread made them durable, under the partition's publication lock.
     */
    void publish(int position) {
        if (position > visibleSize) {
            visibleSize = position;
        }
    }

    /**
     * Forces the log file's data to stable storage. Safe to call from a thread other than the
     * appender, concurrently with appends: it covers at least every byte written before the call.
     */
    void forceLog() throws IOException {
        channel.force(false);
    }

    /** Forces the log and then both indexes to stable storage. */
    void flush() throws IOException {
        channel.force(true);
        index.flush();
        timeIndex.flush();
    }

    /**
     * Adds the records with offsets in [{@code from}, {@code end}) to {@code out}, in order, until
     * {@code out} holds {@code max} entries or the visible part of the segment ends.
     */
    void read(long from, long end, int max, List<LogEntry> out) throws IOException {
        eraseLock.readLock().lock();
        try {
            readUnlocked(from, end, max, out);
        } finally {
            eraseLock.readLock().unlock();
        }
    }

    private void readUnlocked(long from, long end, int max, List<LogEntry> out) throws IOException {
        int limit = visibleSize;
        OffsetIndex.Entry start = index.lookup(from);
        if (start.position() != 0 && !startsBatch(start, limit)) {
            // A plausible but wrong entry; the log is the truth, so walk from the segment start.
            LOG.warn("Index entry {} of {} does not point at its batch; reading from the segment start",
                    start, index);
            start = new OffsetIndex.Entry(baseOffset, 0);
        }
        int position = start.position();
        long expected = start.offset();
        while (position < limit && out.size() < max) {
            if (limit - position < RecordBatch.HEADER_SIZE) {
                throw corrupt(position, "a partial batch header");
            }
            ByteBuffer header = readHeader(position);
            long base = header.getLong(RecordBatch.BASE_OFFSET_OFFSET);
            int length = header.getInt(RecordBatch.LENGTH_OFFSET);
            int count = header.getInt(RecordBatch.COUNT_OFFSET);
            if (base != expected) {
                throw corrupt(position, "base offset " + base + " where offset " + expected + " was expected");
            }
            if (base >= end) {
                break;
            }
            if (length < RecordBatch.MIN_BATCH_LENGTH || length > limit - position - RecordBatch.LOG_OVERHEAD
                    || count < 1) {
                throw corrupt(position, "batch length " + length + " and record count " + count);
            }
            int batchSize = RecordBatch.LOG_OVERHEAD + length;
            if (base + count > from) {
                ByteBuffer batch = ByteBuffer.allocate(batchSize);
                Utils.readFullyOrFail(channel, batch, position, "record batch");
                batch.flip();
                try {
                    RecordBatch.decode(plain(batch), from, end, max, out);
                } catch (RecordBatch.CorruptBatchException e) {
                    throw corrupt(position, e.getMessage());
                }
            }
            position += batchSize;
            expected = base + count;
        }
    }

    /**
     * Erases the records with offsets in {@code offsets} from the visible part of this segment, in
     * place ({@link RecordBatch#erase}: same length, new CRC; an encrypted batch opened and sealed
     * again under a fresh nonce), and forces the file: their keys and
     * values are overwritten with zeros, their offsets become holes readers skip. Readers of this
     * segment wait while a batch is rewritten, so none sees a half-written one.
     *
     * @return the offsets erased (those already erased, or not in this segment, are not)
     */
    List<Long> erase(java.util.Set<Long> offsets) throws IOException {
        List<Long> erased = new java.util.ArrayList<>();
        int limit = visibleSize;
        int position = 0;
        while (position < limit) {
            ByteBuffer header = readHeader(position);
            long base = header.getLong(RecordBatch.BASE_OFFSET_OFFSET);
            int batchSize = RecordBatch.LOG_OVERHEAD + header.getInt(RecordBatch.LENGTH_OFFSET);
            int count = header.getInt(RecordBatch.COUNT_OFFSET);
            boolean wanted = false;
            for (long o : offsets) {
                wanted |= o >= base && o < base + count;
            }
            if (wanted) {
                ByteBuffer stored = ByteBuffer.allocate(batchSize);
                Utils.readFullyOrFail(channel, stored, position, "record batch");
                stored.flip();
                ByteBuffer batch;
                try {
                    batch = plain(stored);
                    RecordBatch.verify(batch);
                } catch (RecordBatch.CorruptBatchException e) {
                    throw corrupt(position, e.getMessage());
                }
                List<Long> done = RecordBatch.erase(batch, offsets);
                if (!done.isEmpty()) {
                    // An encrypted batch is sealed again, under a fresh nonce: same length, as the
                    // plaintext's is.
                    ByteBuffer out = cipher == null ? batch : cipher.seal(batch);
                    if (out.remaining() != batchSize) {
                        throw new IllegalStateException("an erased batch of " + logFile + " at byte " + position
                                + " would change length, " + batchSize + " to " + out.remaining() + " bytes");
                    }
                    eraseLock.writeLock().lock();
                    try {
                        long at = position;
                        while (out.hasRemaining()) {
                            at += channel.write(out, at);
                        }
                    } finally {
                        eraseLock.writeLock().unlock();
                    }
                    erased.addAll(done);
                }
            }
            position += batchSize;
        }
        if (!erased.isEmpty()) {
            channel.force(false);
        }
        return erased;
    }

    /** Closes the files and deletes them. */
    void delete() throws IOException {
        close();
        deleteFiles();
    }

    /**
     * Deletes the files but keeps them open, so that readers holding this segment keep working
     * (POSIX unlink semantics); {@link #close()} releases them later.
     */
    void deleteFiles() throws IOException {
        Files.deleteIfExists(logFile);
        Files.deleteIfExists(index.file());
        Files.deleteIfExists(timeIndex.file());
    }

    @Override
    public void close() throws IOException {
        try {
            channel.close();
        } finally {
            try {
                index.close();
            } finally {
                timeIndex.close();
            }
        }
    }

    @Override
    public String toString() {
        return logFile.toString();
    }

    /** @return the size a batch of {@code plainSize} bytes takes in this segment's file */
    int storedSize(int plainSize) {
        return cipher == null ? plainSize : BatchCipher.sealedSize(plainSize);
    }

    /** @return the plaintext of a batch as stored in this segment (itself when not encrypted) */
    private ByteBuffer plain(ByteBuffer stored) throws RecordBatch.CorruptBatchException {
        return cipher == null ? stored : cipher.open(stored);
    }

    private boolean startsBatch(OffsetIndex.Entry entry, int limit) throws IOException {
        return limit - entry.position() >= RecordBatch.HEADER_SIZE
                && readHeader(entry.position()).getLong(RecordBatch.BASE_OFFSET_OFFSET) == entry.offset();
    }

    private ByteBuffer readHeader(long position) throws IOException {
        ByteBuffer header = ByteBuffer.allocate(RecordBatch.HEADER_SIZE);
        Utils.readFullyOrFail(channel, header, position, "batch header");
        return header.flip();
    }

    private IOException corrupt(int position, String problem) {
        return new IOException("segment " + logFile + " is damaged at byte " + position + " (" + problem
                + "); stop the process and restore this partition directory from a backup, or delete it to drop its data");
    }

}
