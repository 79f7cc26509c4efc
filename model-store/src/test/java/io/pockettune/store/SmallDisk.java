package io.pockettune.store;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * A small tmpfs mounted for one test, so the disk really fills ({@code ENOSPC} from the kernel,
 * not a mock). Needs root and permission to mount: otherwise {@link #mount} skips the test through
 * a JUnit assumption that says why. {@link #fill} writes a filler file until the disk is full;
 * {@link #free} deletes it; {@link #close} unmounts.
 */
public final class SmallDisk implements AutoCloseable {
  private final Path dir;
  private final Path filler;

  private SmallDisk(Path dir) {
    this.dir = dir;
    this.filler = dir.resolve("filler");
  }

  /** Mounts a tmpfs of {@code mib} MiB at {@code dir} (created), or skips the test. */
  public static SmallDisk mount(Path dir, int mib) throws IOException, InterruptedException {
    Files.createDirectories(dir);
    String out;
    int exit;
    try {
      Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", "size=" + mib + "m", "tmpfs", dir.toString())
          .redirectErrorStream(true).start();
      out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
      exit = p.waitFor(30, TimeUnit.SECONDS) ? p.exitValue() : -1;
    } catch (IOException e) {
      out = e.toString();
      exit = -1;
    }
    assumeTrue(exit == 0, "skipped: this test mounts a " + mib + " MiB tmpfs to fill a real disk, which needs root"
        + " and permission to mount (mount said: " + out + ")");
    return new SmallDisk(dir);
  }

  /** @return the mount point */
  public Path dir() {
    return dir;
  }

  /** Writes the filler until the disk is full. @return bytes written */
  public long fill() throws IOException {
    long written = 0;
    byte[] chunk = new byte[64 * 1024];
    try (OutputStream out = Files.newOutputStream(filler)) {
      for (int size = chunk.length; size >= 512; size /= 2) {
        try {
          while (true) {
            out.write(chunk, 0, size);
            out.flush();
            written += size;
          }
        } catch (IOException full) {
          // smaller writes next, until not even 512 bytes fit
        }
      }
    } catch (IOException closingWhenFull) {
      // the stream's close may fail too on a full disk; the file stays
    }
    return written;
  }

  /** Deletes the filler. */
  public void free() throws IOException {
    Files.deleteIfExists(filler);
  }

  @Override
  public void close() throws IOException, InterruptedException {
    Process p = new ProcessBuilder("umount", "-l", dir.toString()).redirectErrorStream(true).start();
    p.getInputStream().readAllBytes();
    p.waitFor(30, TimeUnit.SECONDS);
  }
}
