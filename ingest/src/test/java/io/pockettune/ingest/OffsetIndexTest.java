package io.pockettune.ingest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OffsetIndexTest {

    @TempDir
    Path dir;

    @Test
    void lookup_returnsLastEntryAtOrBelowTheOffset() throws IOException {
        try (OffsetIndex index = OffsetIndex.open(dir.resolve("a.index"), 100)) {
            index.append(105, 500);
            index.append(110, 1000);
            assertEquals(new OffsetIndex.Entry(100, 0), index.lookup(104));
            assertEquals(new OffsetIndex.Entry(105, 500), index.lookup(105));
            assertEquals(new OffsetIndex.Entry(105, 500), index.lookup(109));
            assertEquals(new OffsetIndex.Entry(110, 1000), index.lookup(Long.MAX_VALUE));
        }
    }

    @Test
    void load_writtenEntries_roundTripsAsEightByteEntries() throws IOException {
        Path file = dir.resolve("a.index");
        try (OffsetIndex index = OffsetIndex.open(file, 100)) {
            index.append(105, 500);
            index.append(110, 1000);
        }
        assertArrayEquals(ByteBuffer.allocate(16).putInt(5).putInt(500).putInt(10).putInt(1000).array(),
                Files.readAllBytes(file));
        try (OffsetIndex index = OffsetIndex.open(file, 100)) {
            assertTrue(index.load(2000));
            assertEquals(new OffsetIndex.Entry(110, 1000), index.last());
        }
    }

    @Test
    void load_positionBeyondLog_isRejected() throws IOException {
        Path file = dir.resolve("a.index");
        Files.write(file, ByteBuffer.allocate(8).putInt(5).putInt(500).array());
        try (OffsetIndex index = OffsetIndex.open(file, 100)) {
            assertFalse(index.load(500));
            assertEquals(0, index.entries());
        }
    }

    @Test
    void truncateToPosition_dropsEntriesAtOrAfterIt() throws IOException {
        Path file = dir.resolve("a.index");
        try (OffsetIndex index = OffsetIndex.open(file, 0)) {
            index.append(5, 500);
            index.append(10, 1000);
            index.truncateToPosition(1000);
            assertEquals(new OffsetIndex.Entry(5, 500), index.last());
            assertEquals(8, Files.size(file));
        }
    }
}
