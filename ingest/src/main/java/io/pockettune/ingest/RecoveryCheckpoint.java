package io.pockettune.ingest;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.utils.Utils;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The file {@code <dir>/recovery-point-offset-checkpoint}: for every partition, an offset below
 * which its data is known to be on stable storage, so recovery after a crash starts there instead
 * of at offset 0.
 *
 * <p>Text, as in Kafka: a version line ({@code 0}), a line with the number of entries, then one
 * {@code <topic> <partition> <offset>} line per partition. Topic names cannot contain spaces.
 *
 * <p>The file is replaced atomically (write a temporary file, force it, rename it over the old one,
 * force the directory), so a crash leaves either the old or the new version. A missing partition
 * means 0; a file that cannot be parsed is ignored with a warning, which costs a longer recovery
 * but never data. Thread-safe: all methods synchronize on the checkpoint.
 */
final class RecoveryCheckpoint {

    static final String FILE_NAME = "recovery-point-offset-checkpoint";
    private static final Logger LOG = LoggerFactory.getLogger(RecoveryCheckpoint.class);
    private static final int VERSION = 0;

    private final Path file;
    private final Map<TopicPartition, Long> points;

    private RecoveryCheckpoint(Path file, Map<TopicPartition, Long> points) {
        this.file = file;
        this.points = points;
    }

    static RecoveryCheckpoint load(Path dir) throws IOException {
        Path file = dir.resolve(FILE_NAME);
        Map<TopicPartition, Long> points = new HashMap<>();
        try {
            List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
            if (Integer.parseInt(lines.get(0).trim()) != VERSION) {
                throw new IllegalArgumentException("unknown version " + lines.get(0));
            }
            int count = Integer.parseInt(lines.get(1).trim());
            for (int i = 0; i < count; i++) {
                String[] parts = lines.get(2 + i).trim().split(" ");
                if (parts.length != 3) {
                    throw new IllegalArgumentException("malformed line " + lines.get(2 + i));
                }
                points.put(new TopicPartition(parts[0], Integer.parseInt(parts[1])), Long.parseLong(parts[2]));
            }
        } catch (NoSuchFileException e) {
            // A new data directory, or one that never rolled or closed: recover from offset 0.
        } catch (RuntimeException | CharacterCodingException e) {
            LOG.warn("Ignoring unreadable recovery checkpoint {} ({}); recovery will validate whole partitions",
                    file, e.toString());
            points.clear();
        }
        return new RecoveryCheckpoint(file, points);
    }

    /** @return the recovery point of {@code tp}, or 0 if none was recorded */
    synchronized long get(TopicPartition tp) {
        return points.getOrDefault(tp, 0L);
    }

    /** Records one partition's recovery point and rewrites the file. */
    synchronized void update(TopicPartition tp, long recoveryPoint) throws IOException {
        points.put(tp, recoveryPoint);
        write();
    }

    /** Records several partitions' recovery points and rewrites the file once. */
    synchronized void updateAll(Map<TopicPartition, Long> recoveryPoints) throws IOException {
        points.putAll(recoveryPoints);
        write();
    }

    private void write() throws IOException {
        StringBuilder text = new StringBuilder().append(VERSION).append('\n').append(points.size()).append('\n');
        Map<String, Long> sorted = new TreeMap<>();
        points.forEach((tp, offset) -> sorted.put(tp.topic() + " " + tp.partition(), offset));
        sorted.forEach((tp, offset) -> text.append(tp).append(' ').append(offset).append('\n'));
        Path tmp = file.resolveSibling(FILE_NAME + ".tmp");
        Files.write(tmp, text.toString().getBytes(StandardCharsets.UTF_8), StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE, StandardOpenOption.SYNC);
        Utils.atomicMoveWithFallback(tmp, file);
    }
}
