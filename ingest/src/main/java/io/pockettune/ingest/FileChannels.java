package io.pockettune.ingest;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileAttribute;
import java.util.Set;

/**
 * How the log opens the channels of its segments and indexes: the one seam through which their
 * writes and forces go. Production uses {@link #system()}, which is {@link FileChannel#open}; a
 * test can pass another through {@link LogConfig#withChannels} to inject faults (a {@code force}
 * that throws, a disk that fills) into real files.
 */
@FunctionalInterface
public interface FileChannels {

    /**
     * Opens {@code file} as {@link FileChannel#open(Path, Set, FileAttribute[])} does.
     *
     * @throws IOException as that method does
     */
    FileChannel open(Path file, Set<? extends OpenOption> options, FileAttribute<?>... attributes) throws IOException;

    /** @return {@link FileChannel#open(Path, Set, FileAttribute[])}, the production default */
    static FileChannels system() {
        return FileChannel::open;
    }
}
