package io.pockettune.ingest;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Owner-only permissions for what holds a user's data: directories 0700, files 0600. The log's
 * segments hold the user's messages and notes as written, so nobody else on the device may read
 * them. Files are created with the mode (never created wider and narrowed after), and what an
 * older version created wider is narrowed when it is opened. On a file system without POSIX
 * permissions (FAT on removable storage, Windows) these calls leave modes to the file system.
 */
public final class OwnerOnly {
    private static final Set<PosixFilePermission> FILE = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> DIRECTORY = PosixFilePermissions.fromString("rwx------");

    private OwnerOnly() {}

    /**
     * Creates {@code dir} and its missing parents as 0700, and narrows {@code dir} itself to 0700 when
     * it existed. Existing parents keep their modes (they may be the user's own folders).
     */
    public static void createDirectories(Path dir) throws IOException {
        if (!posix(dir)) {
            Files.createDirectories(dir);
            return;
        }
        if (Files.isDirectory(dir)) {
            restrict(dir);
            return;
        }
        Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(DIRECTORY));
    }

    /** Narrows an existing file to 0600, or directory to 0700; a no-op without POSIX permissions. */
    public static void restrict(Path path) throws IOException {
        if (posix(path)) {
            Files.setPosixFilePermissions(path, Files.isDirectory(path) ? DIRECTORY : FILE);
        }
    }

    /** Opens a file as {@link FileChannel#open(Path, OpenOption...)} does, creating it as 0600. */
    static FileChannel open(Path file, OpenOption... options) throws IOException {
        return open(FileChannels.system(), file, options);
    }

    /** As {@link #open(Path, OpenOption...)}, through {@code channels} (the log's seam for fault injection). */
    static FileChannel open(FileChannels channels, Path file, OpenOption... options) throws IOException {
        return channels.open(file, Set.of(options), fileAttributes(file));
    }

    /** @return the attributes that create a file as 0600, none without POSIX permissions */
    static FileAttribute<?>[] fileAttributes(Path file) {
        return posix(file) ? new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(FILE)} : new FileAttribute<?>[0];
    }

    private static boolean posix(Path path) {
        return path.getFileSystem().supportedFileAttributeViews().contains("posix");
    }

    /**
     * Writes {@code bytes} to a new file readable by the owner only (0600 on POSIX) and forces it.
     *
     * @throws java.nio.file.FileAlreadyExistsException if the file exists
     */
    public static void writeNew(Path file, byte[] bytes) throws IOException {
        try (FileChannel ch = open(file, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                ch.write(b);
            }
            ch.force(true);
        }
    }
}
