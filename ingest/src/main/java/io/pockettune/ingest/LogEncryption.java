package io.pockettune.ingest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HexFormat;
import java.util.List;
import org.apache.kafka.common.utils.Utils;

/**
 * The marker of an encrypted log: {@code <log>/encryption}, text, three lines: the version
 * {@code 1}, the algorithm {@code AES-256-GCM}, and the hex key check (HMAC-SHA256 of a constant
 * under the key, {@link BatchCipher#keyCheck}), which tells the right key from a wrong one without
 * revealing it. The key itself is never stored here.
 *
 * <p>Rules at open: a log with the marker needs a key whose check matches; a log without it that
 * already holds partitions is in the clear and takes no key; a log with neither marker nor
 * partitions becomes encrypted if a key is given (the marker is written durably first).
 */
final class LogEncryption {

    /** The marker's file name in the log directory. */
    static final String FILE = "encryption";
    private static final String ALGORITHM = "AES-256-GCM";

    private LogEncryption() {
    }

    /** @return whether the log in {@code root} is encrypted (its marker exists) */
    static boolean isEncrypted(Path root) {
        return Files.exists(root.resolve(FILE));
    }

    /**
     * Checks {@code key} (null for none) against the log in {@code root}, writing the marker for a
     * new encrypted log when {@code mayCreate} and the log holds no partitions yet (without
     * {@code mayCreate}, a key for a log without marker or partitions passes unchecked).
     *
     * @throws IllegalStateException with one sentence if the key is missing, wrong, or given for a
     *     log in the clear
     */
    static void check(Path root, byte[] key, boolean hasPartitions, boolean mayCreate) throws IOException {
        Path marker = root.resolve(FILE);
        if (Files.exists(marker)) {
            List<String> lines = Files.readAllLines(marker, StandardCharsets.US_ASCII);
            if (lines.size() < 3 || !"1".equals(lines.get(0).trim()) || !ALGORITHM.equals(lines.get(1).trim())) {
                throw new IllegalStateException("the encryption marker " + marker
                        + " is not one this version understands; restore it from a backup of this data directory");
            }
            if (key == null) {
                throw new IllegalStateException("the log in " + root + " is encrypted but no key was given;"
                        + " keep the data directory's key file next to it or pass the key through the runtime API");
            }
            byte[] expected;
            try {
                expected = HexFormat.of().parseHex(lines.get(2).trim());
            } catch (IllegalArgumentException e) {
                throw new IllegalStateException("the encryption marker " + marker
                        + " holds no readable key check; restore it from a backup of this data directory", e);
            }
            if (!BatchCipher.sameCheck(expected, BatchCipher.keyCheck(key))) {
                throw new IllegalStateException("the key given is not the key the log in " + root
                        + " was encrypted with; supply this data directory's own key");
            }
            return;
        }
        if (key == null) {
            return;
        }
        if (hasPartitions) {
            throw new IllegalStateException("the log in " + root + " is not encrypted, so it cannot be opened with a key;"
                    + " open it without one, or start a new data directory with encryption");
        }
        if (!mayCreate) {
            return;
        }
        Path tmp = root.resolve(FILE + ".tmp");
        String text = "1\n" + ALGORITHM + "\n" + HexFormat.of().formatHex(BatchCipher.keyCheck(key)) + "\n";
        try (var ch = OwnerOnly.open(tmp, java.nio.file.StandardOpenOption.CREATE,
                java.nio.file.StandardOpenOption.TRUNCATE_EXISTING, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(text.getBytes(StandardCharsets.US_ASCII)));
            ch.force(true);
        }
        Files.move(tmp, marker, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        Utils.flushDir(root);
    }
}
