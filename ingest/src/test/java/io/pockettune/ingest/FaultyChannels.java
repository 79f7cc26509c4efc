package io.pockettune.ingest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileAttribute;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;

/**
 * A {@link FileChannels} for fault injection: real files, whose {@code force} throws an
 * {@link IOException} once {@link #failForces} is on, for the files {@code affected} selects.
 * A failing force also cuts the file back to its size at its last successful force, as a kernel
 * that dropped the dirty pages after a failed writeback leaves it (PostgreSQL's "fsyncgate"), so
 * anything the log acknowledged without a force that covered it is really gone after a reopen.
 * Everything else goes to the real channel. Public, so the pipeline's tests can use it.
 */
public final class FaultyChannels implements FileChannels {
    private final Predicate<Path> affected;
    private volatile boolean failForces;
    private final AtomicInteger failedForces = new AtomicInteger();

    /** @param affected which files fail their forces once {@link #failForces} is on */
    public FaultyChannels(Predicate<Path> affected) {
        this.affected = affected;
    }

    /** @return channels whose forces fail for the files in a partition directory named {@code dirName} */
    public static FaultyChannels forPartitionDir(String dirName) {
        return new FaultyChannels(p -> p.getParent() != null && p.getParent().getFileName().toString().equals(dirName));
    }

    /** From now on (or no longer), forces of the affected files throw. */
    public void failForces(boolean on) {
        failForces = on;
    }

    /** @return how many forces have thrown */
    public int failedForces() {
        return failedForces.get();
    }

    @Override
    public FileChannel open(Path file, Set<? extends OpenOption> options, FileAttribute<?>... attributes)
            throws IOException {
        FileChannel real = FileChannel.open(file, options, attributes);
        return affected.test(file) ? new Channel(real, file) : real;
    }

    /** A delegating channel whose force can fail. */
    private final class Channel extends FileChannel {
        private final FileChannel real;
        private final Path file;
        private long forcedSize;

        Channel(FileChannel real, Path file) throws IOException {
            this.real = real;
            this.file = file;
            this.forcedSize = real.size();
        }

        @Override
        public void force(boolean metaData) throws IOException {
            if (failForces) {
                failedForces.incrementAndGet();
                synchronized (this) {
                    if (real.size() > forcedSize) {
                        real.truncate(forcedSize); // the unwritten pages are lost
                    }
                }
                throw new IOException("Input/output error (injected) forcing " + file);
            }
            long size = real.size();
            real.force(metaData);
            synchronized (this) {
                forcedSize = Math.max(forcedSize, size);
            }
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            return real.read(dst);
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
            return real.read(dsts, offset, length);
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            return real.write(src);
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            return real.write(srcs, offset, length);
        }

        @Override
        public long position() throws IOException {
            return real.position();
        }

        @Override
        public FileChannel position(long newPosition) throws IOException {
            real.position(newPosition);
            return this;
        }

        @Override
        public long size() throws IOException {
            return real.size();
        }

        @Override
        public synchronized FileChannel truncate(long size) throws IOException {
            real.truncate(size);
            forcedSize = Math.min(forcedSize, size);
            return this;
        }

        @Override
        public long transferTo(long position, long count, WritableByteChannel target) throws IOException {
            return real.transferTo(position, count, target);
        }

        @Override
        public long transferFrom(ReadableByteChannel src, long position, long count) throws IOException {
            return real.transferFrom(src, position, count);
        }

        @Override
        public int read(ByteBuffer dst, long position) throws IOException {
            return real.read(dst, position);
        }

        @Override
        public int write(ByteBuffer src, long position) throws IOException {
            return real.write(src, position);
        }

        @Override
        public MappedByteBuffer map(MapMode mode, long position, long size) throws IOException {
            return real.map(mode, position, size);
        }

        @Override
        public FileLock lock(long position, long size, boolean shared) throws IOException {
            return real.lock(position, size, shared);
        }

        @Override
        public FileLock tryLock(long position, long size, boolean shared) throws IOException {
            return real.tryLock(position, size, shared);
        }

        @Override
        protected void implCloseChannel() throws IOException {
            real.close();
        }
    }
}
