package io.pockettune.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A wall-clock sampler of what some threads are doing: every {@link #INTERVAL_MS} ms it takes the
 * stacks of the live threads whose names start with one of some prefixes and counts, per thread name (digits
 * and peer addresses removed), one state: in an fsync ({@code FileChannel.force}), in a socket read
 * or write, parked (a queue, a lock, a condition: named by the first frame outside the JDK), or
 * running (named by its top frame). CPU time says how much a thread works; this says what it waits
 * for while it does not. Safepoint-biased, like every {@link ThreadMXBean} stack sample, so "running"
 * frames are approximate; the waiting states are exact. Start and stop it from one thread.
 */
final class ThreadStateSampler implements AutoCloseable {
  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
  static final int INTERVAL_MS = 2;
  private static final int DEPTH = 24;

  private final List<String> prefixes;
  private final Map<String, AtomicLong> counts = new ConcurrentHashMap<>();
  private final Map<String, AtomicLong> samplesPerThread = new ConcurrentHashMap<>();
  private volatile boolean running;

  /** @param prefixes the beginnings of the names of the threads to sample */
  ThreadStateSampler(List<String> prefixes) {
    this.prefixes = List.copyOf(prefixes);
  }

  /** Samples until {@link #pause()}; may be called again after it. */
  void resume() {
    if (!running) {
      running = true;
      Thread t = new Thread(this::loop, "bench-thread-state-sampler");
      t.setDaemon(true);
      t.start();
    }
  }

  void pause() {
    running = false;
  }

  private void loop() {
    long[] ids = new long[0];
    for (int sample = 0; running; sample++) {
      if (sample % 100 == 0) { // threads come and go with connections
        ids = Arrays.stream(THREADS.getThreadInfo(THREADS.getAllThreadIds()))
            .filter(i -> i != null && prefixes.stream().anyMatch(i.getThreadName()::startsWith))
            .mapToLong(ThreadInfo::getThreadId).toArray();
      }
      for (ThreadInfo info : THREADS.getThreadInfo(ids, DEPTH)) {
        if (info != null) {
          String thread = ThreadCpu.group(info.getThreadName());
          counts.computeIfAbsent(thread + ": " + state(info), k -> new AtomicLong()).incrementAndGet();
          samplesPerThread.computeIfAbsent(thread, k -> new AtomicLong()).incrementAndGet();
        }
      }
      try {
        Thread.sleep(INTERVAL_MS);
      } catch (InterruptedException e) {
        return;
      }
    }
  }

  private static String state(ThreadInfo info) {
    StackTraceElement[] stack = info.getStackTrace();
    for (StackTraceElement f : stack) {
      String c = f.getClassName();
      if (f.getMethodName().startsWith("force") && (c.contains("FileChannelImpl") || c.contains("FileDispatcher"))) {
        return "fsync (FileChannel.force)";
      }
      if (c.contains("NioSocketImpl") || c.contains("SocketInputStream") || c.contains("SocketOutputStream")) {
        return f.getMethodName().toLowerCase(Locale.ROOT).contains("write") ? "socket write" : "socket read";
      }
    }
    boolean parked = info.getThreadState() == Thread.State.WAITING || info.getThreadState() == Thread.State.TIMED_WAITING
        || info.getThreadState() == Thread.State.BLOCKED;
    String where = stack.length == 0 ? "?" : frame(stack[0]);
    String on = "";
    for (StackTraceElement f : stack) {
      if (f.getClassName().endsWith("BlockingQueue")) {
        on = " (on a " + f.getClassName().substring(f.getClassName().lastIndexOf('.') + 1) + ")";
      }
      if (f.getClassName().startsWith("io.pockettune")) {
        where = frame(f);
        break;
      }
    }
    return (parked ? "parked in " : "running in ") + where + on;
  }

  private static String frame(StackTraceElement f) {
    String c = f.getClassName();
    return c.substring(c.lastIndexOf('.') + 1) + "." + f.getMethodName();
  }

  /**
   * @return per thread name and state, its share of that thread's samples in percent, the largest
   *     first, leaving out shares below {@code minPercent}
   */
  Map<String, Double> percentages(double minPercent) {
    Map<String, Double> out = new LinkedHashMap<>();
    new TreeMap<>(counts).entrySet().stream()
        .sorted((a, b) -> Long.compare(b.getValue().get(), a.getValue().get()))
        .forEach(e -> {
          String thread = e.getKey().substring(0, e.getKey().indexOf(": "));
          double pct = 100.0 * e.getValue().get() / samplesPerThread.get(thread).get();
          if (pct >= minPercent) {
            out.put(e.getKey(), Math.round(pct * 10) / 10.0);
          }
        });
    return out;
  }

  @Override
  public void close() {
    pause();
  }
}
