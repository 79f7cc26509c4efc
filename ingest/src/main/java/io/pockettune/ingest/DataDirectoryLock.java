package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.common.utils.Utils;

/**
 * Exclusive ownership of a data directory by one process: an OS file lock on {@code <dir>/.lock},
 * whose content is the owner's process id so that a refused opener can say who holds it.
 *
 * <p>The lock is released by the operating system when the process dies, however it dies, so a
 * crash never leaves a stale lock behind; the file itself stays and is reused.
 *
 * <p>Within one JVM the OS lock cannot be relied on: POSIX record locks belong to the process, and
 * closing any channel on the file (such as a refused second opener's) silently drops the lock the
 * first opener holds. So directories held by this JVM are also kept in a static set, checked
 * before the lock file is even opened. {@link OverlappingFileLockException}, which the JVM throws
 * when it sees the conflict itself, is reported like any other refusal. Each instance is acquired
 * and released once by {@link EmbeddedLog}.
 */
final class DataDirectoryLock implements Closeable {

    static final String FILE_NAME = ".lock";

    /** Real paths of the directories locked by this JVM. */
    private static final Set<Path> HELD_BY_THIS_JVM = ConcurrentHashMap.newKeySet();

    private final Path key;
    private final FileChannel channel;
    private final FileLock lock;

    private DataDirectoryLock(Path key, FileChannel channel, FileLock lock) {
        this.key = key;
        this.channel = channel;
        this.lock = lock;
    }

    /**
     * @throws IllegalStateException if another process, or another {@link EmbeddedLog} in this
     *     process, holds the directory
     */
    static DataDirectoryLock acquire(Path dir) throws IOException {
        Path key = dir.toRealPath();
        if (!HELD_BY_THIS_JVM.add(key)) {
            throw inUse(dir, Long.toString(ProcessHandle.current().pid()));
        }
        FileChannel channel;
        try {
            channel = FileChannel.open(dir.resolve(FILE_NAME), StandardOpenOption.CREATE, StandardOpenOption.READ,
                    StandardOpenOption.WRITE);
        } catch (IOException | RuntimeException e) {
            HELD_BY_THIS_JVM.remove(key);
            throw e;
        }
        try {
            FileLock lock;
            try {
                lock = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                lock = null;
            }
            if (lock == null) {
                throw inUse(dir, owner(channel));
            }
            channel.truncate(0);
            Utils.writeFully(channel.position(0),
                    ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)));
            channel.force(true);
            return new DataDirectoryLock(key, channel, lock);
        } catch (IOException | RuntimeException e) {
            HELD_BY_THIS_JVM.remove(key);
            channel.close();
            throw e;
        }
    }

    /** Releases the lock; the directory may be opened again. */
    @Override
    public void close() throws IOException {
        try {
            try {
                lock.release();
            } finally {
                channel.close();
            }
        } finally {
            HELD_BY_THIS_JVM.remove(key);
        }
    }

    private static IllegalStateException inUse(Path dir, String owner) {
        return new IllegalStateException("data directory " + dir + " is in use by process " + owner
                + ": stop that process or choose another --data-dir");
    }

    /** @return the process id written by the holder, or a description if it cannot be read */
    private static String owner(FileChannel channel) {
        try {
            ByteBuffer buf = ByteBuffer.allocate(32);
            channel.read(buf, 0);
            String pid = new String(buf.array(), 0, buf.position(), StandardCharsets.US_ASCII).trim();
            return pid.matches("\\d+") ? pid : "(unknown pid)";
        } catch (IOException e) {
            return "(unknown pid)";
        }
    }
}
