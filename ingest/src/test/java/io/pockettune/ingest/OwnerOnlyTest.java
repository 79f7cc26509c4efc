package io.pockettune.ingest;

import static io.pockettune.ingest.LogTestSupport.record;
import static io.pockettune.ingest.LogTestSupport.segments;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The log's directories are 0700 and its segment and index files 0600, new or written by an older version. */
class OwnerOnlyTest {
    private static final LogConfig SMALL = LogConfig.defaults().withSegmentBytes(1024).withIndexIntervalBytes(100);

    @TempDir
    Path dir;

    @BeforeEach
    void posixOnly() {
        assumeTrue(dir.getFileSystem().supportedFileAttributeViews().contains("posix"), "no POSIX permissions here");
    }

    @Test
    void open_freshLog_directoriesAndSegmentFilesOwnerOnly() throws IOException {
        Path root = dir.resolve("data").resolve("log");
        try (EmbeddedLog log = EmbeddedLog.open(root, SMALL)) {
            log.createTopic("events", 2);
            for (int i = 0; i < 40; i++) {
                log.append("events", i % 2, List.of(record("private message number " + i)));
            }
        }
        assertEquals("rwx------", mode(root));
        assertEquals("rwx------", mode(root.getParent()), "a parent the log created");
        Path partition = root.resolve("events-0");
        assertEquals("rwx------", mode(partition));
        assertTrue(segments(partition).size() > 1, "rolled, so later segments are checked too");
        try (Stream<Path> files = Files.list(partition)) {
            for (Path f : files.toList()) {
                assertEquals("rw-------", mode(f), f.toString());
            }
        }
    }

    @Test
    void open_logOfAnOlderVersion_narrowsTheRootAndSegments() throws IOException {
        Path root = dir.resolve("log");
        try (EmbeddedLog log = EmbeddedLog.open(root, SMALL)) {
            log.createTopic("events", 1);
            log.append("events", 0, List.of(record("written before 0600 segments")));
        }
        Path segment = segments(root.resolve("events-0")).get(0);
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.setPosixFilePermissions(segment, PosixFilePermissions.fromString("rw-r--r--"));
        try (EmbeddedLog log = EmbeddedLog.open(root, SMALL)) {
            assertEquals(1, log.endOffset("events", 0));
        }
        assertEquals("rwx------", mode(root));
        assertEquals("rw-------", mode(segment));
    }

    @Test
    void createDirectories_existingParent_keepsItsMode() throws IOException {
        Path parent = dir.resolve("users-folder");
        Files.createDirectory(parent);
        Files.setPosixFilePermissions(parent, PosixFilePermissions.fromString("rwxr-xr-x"));
        OwnerOnly.createDirectories(parent.resolve("log"));
        assertEquals("rwxr-xr-x", mode(parent));
        assertEquals("rwx------", mode(parent.resolve("log")));
    }

    private static String mode(Path p) throws IOException {
        return PosixFilePermissions.toString(Files.getPosixFilePermissions(p));
    }
}
