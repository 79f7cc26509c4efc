package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.locks.ReentrantLock;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One partition of a topic: the directory {@code <topic>-<partition>} with its
 * {@link LogSegment segments}, of which the last is the active one that takes appends.
 *
 * <p><b>Invariants.</b> Segments are ordered by base offset, and each one's offsets continue
 * exactly where the previous one's end. {@code nextOffset} (the end offset) is published only after
 * the batch below it is complete and durable per the flush policy: that is the moment a batch
 * counts as acknowledged, and readers see nothing beyond it, so a consumer never processes an event
 * that a crash could still take back. {@code recoveryPoint} is an offset below which everything is
 * known to be on stable storage: it advances with every batch under
 * {@link LogConfig.FlushPolicy#FSYNC_EACH_BATCH}, and otherwise when a segment rolls (the old
 * segment is forced first) and at clean close. It is saved in the {@link RecoveryCheckpoint} at each
 * roll and at close.
 *
 * <p><b>Recovery.</b> After an unclean shutdown, segments below the one holding the checkpointed
 * recovery point are trusted (they were forced before the checkpoint was written); that segment
 * and every later one are validated batch by batch ({@link LogSegment#recover()}). The first
 * invalid batch ends the partition: its segment is cut there and all later segments are deleted,
 * since offsets must stay contiguous. What survives is forced before the log accepts appends.
 * Guarantee: every batch acknowledged under FSYNC_EACH_BATCH survives, and so does every batch
 * acknowledged under OS unless the machine itself went down; nothing after a damaged batch does.
 * After a clean shutdown nothing is validated: indexes are checked for plausibility and the end
 * offset is found by walking batch headers from the last index entry.
 *
 * <p><b>Thread safety.</b> Appends are serialized by a per-partition lock, so partitions append
 * in parallel. Reads take no lock: they read {@code nextOffset} (volatile) first, then the
 * copy-on-write segment array, and look at no byte at or past that end offset. Opening, closing
 * and (later) retention are excluded from running concurrently with reads and appends by
 * {@link EmbeddedLog}.
 */
final class PartitionLog implements Closeable {

    private static final Logger LOG = LoggerFactory.getLogger(PartitionLog.class);
    private static final Pattern SEGMENT_FILE = Pattern.compile("(\\d{20})\\" + LogSegment.LOG_SUFFIX);
    private static final Pattern INDEX_FILE = Pattern.compile("(\\d{20})\\" + LogSegment.INDEX_SUFFIX);

    private final TopicPartition topicPartition;
    private final Path dir;
    private final LogConfig config;
    private final RecoveryCheckpoint checkpoint;
    private final int segmentsRecovered;
    private final ReentrantLock appendLock = new ReentrantLock();

    private volatile LogSegment[] segments;
    private volatile long nextOffset;
    private volatile long recoveryPoint;
    /** Set when a failed append could not be undone; guarded by appendLock. */
    private IOException failure;

    private PartitionLog(TopicPartition topicPartition, Path dir, LogConfig config, RecoveryCheckpoint checkpoint,
            List<LogSegment> segments, long nextOffset, int segmentsRecovered) {
        this.topicPartition = topicPartition;
        this.dir = dir;
        this.config = config;
        this.checkpoint = checkpoint;
        this.segments = segments.toArray(new LogSegment[0]);
        this.nextOffset = nextOffset;
        this.recoveryPoint = nextOffset;
        this.segmentsRecovered = segmentsRecovered;
    }

    /** @return the directory name of a partition: {@code <topic>-<partition>} */
    static String dirName(TopicPartition tp) {
        return tp.topic() + "-" + tp.partition();
    }

    /** Creates the directory and first segment of a new, empty partition. */
    static PartitionLog create(Path dataDir, TopicPartition tp, LogConfig config, RecoveryCheckpoint checkpoint)
            throws IOException {
        Path dir = dataDir.resolve(dirName(tp));
        Files.createDirectories(dir);
        LogSegment first = LogSegment.create(dir, 0, config.indexIntervalBytes());
        return new PartitionLog(tp, dir, config, checkpoint, List.of(first), 0, 0);
    }

    /**
     * Opens an existing partition, recovering it first if the log was not shut down cleanly (see
     * the class comment). Recovered data is forced before this returns.
     */
    static PartitionLog load(Path dataDir, TopicPartition tp, LogConfig config, RecoveryCheckpoint checkpoint,
            boolean cleanShutdown) throws IOException {
        Path dir = dataDir.resolve(dirName(tp));
        List<LogSegment> segments = new ArrayList<>();
        try {
            for (long base : segmentBases(dir)) {
                segments.add(LogSegment.open(dir, base, config.indexIntervalBytes()));
            }
            if (segments.isEmpty()) {
                LOG.warn("{} has no segment; starting it empty at offset 0", dir);
                segments.add(LogSegment.create(dir, 0, config.indexIntervalBytes()));
            }
            int firstToScan = cleanShutdown ? segments.size()
                    : floorIndex(segments.stream().mapToLong(LogSegment::baseOffset).toArray(), checkpoint.get(tp));
            List<LogSegment> scanned = new ArrayList<>();
            long next = -1;
            for (int i = 0; i < segments.size(); i++) {
                LogSegment segment = segments.get(i);
                boolean last = i == segments.size() - 1;
                if (next >= 0 && segment.baseOffset() != next) {
                    LOG.warn("Recovery of {}: segment {} starts at offset {} but the one before it ends at offset {}",
                            tp, segment, segment.baseOffset(), next);
                    deleteFrom(segments, i, tp, dir);
                    break;
                }
                boolean scan = i >= firstToScan;
                if (!scan && !segment.loadIndex()) {
                    LOG.warn("Index of {} is missing or damaged; rebuilding it from the log", segment);
                    scan = true;
                }
                if (!scan && last) {
                    OptionalLong tail = segment.walkTail();
                    if (tail.isPresent()) {
                        next = tail.getAsLong();
                    } else {
                        LOG.warn("The batches of {} do not end at the end of the file although the log was shut"
                                + " down cleanly; validating the segment", segment);
                        scan = true;
                    }
                }
                if (scan) {
                    LogSegment.Recovery r = segment.recover();
                    scanned.add(segment);
                    next = r.nextOffset();
                    if (r.truncatedBytes() > 0) {
                        LOG.warn("Recovery of {} cut {} bytes from segment {} at byte {} (next offset {}) because it"
                                + " found {}", tp, r.truncatedBytes(), segment, r.validBytes(), r.nextOffset(),
                                r.problem());
                        deleteFrom(segments, i + 1, tp, dir);
                        break;
                    }
                } else if (!last) {
                    next = -1;
                }
            }
            for (LogSegment segment : scanned) {
                segment.flush();
            }
            assert next >= 0 : "the last segment must have been walked or recovered";
            if (!scanned.isEmpty()) {
                LOG.info("Recovered {}: validated {} segment(s), end offset {}", tp, scanned.size(), next);
            }
            return new PartitionLog(tp, dir, config, checkpoint, segments, next, scanned.size());
        } catch (IOException | RuntimeException e) {
            for (LogSegment segment : segments) {
                Utils.closeQuietly(segment, "segment " + segment);
            }
            throw e;
        }
    }

    TopicPartition topicPartition() {
        return topicPartition;
    }

    /** @return how many segments {@link #load} validated batch by batch; 0 after a clean shutdown */
    int segmentsRecovered() {
        return segmentsRecovered;
    }

    long startOffset() {
        return segments[0].baseOffset();
    }

    long endOffset() {
        return nextOffset;
    }

    /** @return an offset below which all data is on stable storage */
    long recoveryPoint() {
        return recoveryPoint;
    }

    /**
     * Appends one encoded batch as the next offsets and returns its base offset once it is
     * acknowledged: written, and forced if the flush policy says so. If writing fails, the partial
     * batch is cut off again and the log stays usable; if even that fails, the partition refuses
     * further appends until the log is reopened (and recovered).
     */
    long append(ByteBuffer batch, int recordCount) throws IOException {
        appendLock.lock();
        try {
            if (failure != null) {
                throw new IOException(topicPartition + " stopped accepting appends after an I/O error it could not undo ("
                        + failure.getMessage() + "); close the log and open it again to recover the partition", failure);
            }
            long base = nextOffset;
            LogSegment active = segments[segments.length - 1];
            LogSegment.Mark mark = null;
            try {
                if (shouldRoll(active, batch.remaining(), base, recordCount)) {
                    active = roll(active, base);
                }
                RecordBatch.setBaseOffset(batch, base);
                mark = active.mark();
                active.append(batch, base);
                if (config.flushPolicy() == LogConfig.FlushPolicy.FSYNC_EACH_BATCH) {
                    active.flush();
                }
            } catch (IOException e) {
                if (mark != null) {
                    try {
                        active.rollback(mark);
                    } catch (IOException | RuntimeException undo) {
                        e.addSuppressed(undo);
                        failure = e;
                    }
                }
                throw new IOException("could not append " + recordCount + " records to " + topicPartition + " in " + dir
                        + " (" + e + "); check free disk space and permissions, then retry", e);
            }
            long next = base + recordCount;
            active.publish();
            if (config.flushPolicy() == LogConfig.FlushPolicy.FSYNC_EACH_BATCH) {
                recoveryPoint = next;
            }
            nextOffset = next;
            return base;
        } finally {
            appendLock.unlock();
        }
    }

    /**
     * @return the records from {@code from} on, at most {@code max} of them and none at or past the
     *     end offset as of the call
     * @throws IllegalArgumentException if {@code from} is outside [startOffset, endOffset]
     */
    List<LogEntry> read(long from, int max) throws IOException {
        long end = nextOffset;
        LogSegment[] segs = segments;
        long start = segs[0].baseOffset();
        if (from < start || from > end) {
            throw new IllegalArgumentException("offset " + from + " is out of range for " + topicPartition
                    + ", which holds offsets " + start + " up to (not including) " + end
                    + "; read from an offset between startOffset and endOffset");
        }
        List<LogEntry> out = new ArrayList<>((int) Math.min(max, Math.min(end - from, 1024)));
        long[] bases = Arrays.stream(segs).mapToLong(LogSegment::baseOffset).toArray();
        for (int i = floorIndex(bases, from); i < segs.length && out.size() < max && bases[i] < end; i++) {
            segs[i].read(from, end, max, out);
        }
        assert out.isEmpty() || out.get(0).offset() == from : "read must start at the requested offset";
        return out;
    }

    /** Forces the active segment (rolled ones were forced when they rolled). */
    void flush() throws IOException {
        appendLock.lock();
        try {
            segments[segments.length - 1].flush();
            recoveryPoint = nextOffset;
        } finally {
            appendLock.unlock();
        }
    }

    /** Closes the files; does not flush. */
    @Override
    public void close() throws IOException {
        IOException first = null;
        for (LogSegment segment : segments) {
            try {
                segment.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public String toString() {
        return topicPartition.toString();
    }

    private boolean shouldRoll(LogSegment active, int batchSize, long base, int recordCount) {
        return active.size() > 0
                && (active.size() + (long) batchSize > config.segmentBytes()
                        || base + recordCount - active.baseOffset() > Integer.MAX_VALUE);
    }

    /** Forces the active segment, starts a new one at {@code base} and checkpoints the recovery point. */
    private LogSegment roll(LogSegment active, long base) throws IOException {
        active.flush();
        LogSegment next = LogSegment.create(dir, base, config.indexIntervalBytes());
        LogSegment[] rolled = Arrays.copyOf(segments, segments.length + 1);
        rolled[rolled.length - 1] = next;
        segments = rolled;
        recoveryPoint = base;
        checkpoint.update(topicPartition, base);
        LOG.debug("Rolled {} to a new segment at offset {}", topicPartition, base);
        return next;
    }

    /** @return the index of the last base at or below {@code offset}, or 0 if there is none */
    private static int floorIndex(long[] bases, long offset) {
        int i = Arrays.binarySearch(bases, offset);
        return i >= 0 ? i : Math.max(0, -i - 2);
    }

    /** @return the base offsets of the segments in {@code dir}, ascending; deletes orphaned index files */
    private static List<Long> segmentBases(Path dir) throws IOException {
        List<Long> bases = new ArrayList<>();
        List<Path> indexes = new ArrayList<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
            for (Path file : files) {
                String name = file.getFileName().toString();
                Matcher log = SEGMENT_FILE.matcher(name);
                if (log.matches()) {
                    bases.add(Long.parseLong(log.group(1)));
                } else if (INDEX_FILE.matcher(name).matches()) {
                    indexes.add(file);
                }
            }
        }
        bases.sort(null);
        for (Path index : indexes) {
            String name = index.getFileName().toString();
            if (!bases.contains(Long.parseLong(name.substring(0, 20)))) {
                LOG.info("Deleting index {} whose segment does not exist", index);
                Files.delete(index);
            }
        }
        return bases;
    }

    private static void deleteFrom(List<LogSegment> segments, int from, TopicPartition tp, Path dir) throws IOException {
        if (from >= segments.size()) {
            return;
        }
        while (segments.size() > from) {
            LogSegment segment = segments.remove(segments.size() - 1);
            LOG.warn("Recovery of {} deleted segment {} ({} bytes) because it lies behind the damage",
                    tp, segment, segment.size());
            segment.delete();
        }
        Utils.flushDir(dir);
    }
}
