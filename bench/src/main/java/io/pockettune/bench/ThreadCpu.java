package io.pockettune.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Where a benchmark's CPU went, per group of threads: the CPU time (and heap allocation) of every
 * live Java thread (from {@link ThreadMXBean}) and of the whole process, taken before and after a run. Threads are grouped
 * by name with digits and peer addresses removed, so {@code data-plane-kafka-request-handler-3} and
 * {@code pockettune-kafka-read /127.0.0.1:41234} count under one name each. What no Java thread
 * accounts for (garbage collection, the JIT compiler) shows as the difference between the process
 * and the sum of the threads. A thread that ended during the run loses its last interval; the
 * bench's threads live across its runs. Not thread-safe.
 */
final class ThreadCpu {
  private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();
  /** Group name for CPU the process used outside Java threads. */
  static final String OUTSIDE_JAVA_THREADS = "(gc, jit: not a java thread)";

  private final Map<String, Long> nanosByGroup = new TreeMap<>();
  private final Map<String, Long> bytesByGroup = new TreeMap<>();
  private long processNanos;
  private long wallNanos;

  /** A point to measure from: CPU time per thread id and of the process. */
  record Mark(Map<Long, Long> threadNanos, Map<Long, Long> threadBytes, Map<Long, String> names, long processNanos,
      long wallNanos) {}

  static Mark mark() {
    Map<Long, Long> nanos = new HashMap<>();
    Map<Long, Long> bytes = new HashMap<>();
    Map<Long, String> names = new HashMap<>();
    for (ThreadInfo info : THREADS.getThreadInfo(THREADS.getAllThreadIds())) {
      if (info == null) {
        continue;
      }
      long cpu = THREADS.getThreadCpuTime(info.getThreadId());
      if (cpu >= 0) {
        nanos.put(info.getThreadId(), cpu);
        names.put(info.getThreadId(), info.getThreadName());
        if (THREADS instanceof com.sun.management.ThreadMXBean hotspot) {
          bytes.put(info.getThreadId(), hotspot.getThreadAllocatedBytes(info.getThreadId()));
        }
      }
    }
    return new Mark(nanos, bytes, names, processCpuNanos(), System.nanoTime());
  }

  /** Adds the CPU used between {@code from} and now to this account. */
  void addSince(Mark from) {
    Mark to = mark();
    long threads = 0;
    for (Map.Entry<Long, Long> e : to.threadNanos().entrySet()) {
      long used = e.getValue() - from.threadNanos().getOrDefault(e.getKey(), 0L);
      if (used > 0) {
        nanosByGroup.merge(group(to.names().get(e.getKey())), used, Long::sum);
        threads += used;
      }
    }
    for (Map.Entry<Long, Long> e : to.threadBytes().entrySet()) {
      long allocated = e.getValue() - from.threadBytes().getOrDefault(e.getKey(), 0L);
      if (allocated > 0) {
        bytesByGroup.merge(group(to.names().get(e.getKey())), allocated, Long::sum);
      }
    }
    long process = to.processNanos() - from.processNanos();
    processNanos += process;
    if (process > threads) {
      nanosByGroup.merge(OUTSIDE_JAVA_THREADS, process - threads, Long::sum);
    }
    wallNanos += to.wallNanos() - from.wallNanos();
  }

  /** @return CPU milliseconds of the whole process per 1,000 events over {@code events} */
  double processMsPer1kEvents(long events) {
    return processNanos / 1e6 / (events / 1000.0);
  }

  /** @return the mean number of cores busy in this process while it was measured */
  double coresBusy() {
    return wallNanos == 0 ? Double.NaN : (double) processNanos / wallNanos;
  }

  /**
   * @return the groups that used at least {@code minShare} of the process's CPU, largest first,
   *     as CPU milliseconds per 1,000 events
   */
  Map<String, Double> groupsMsPer1kEvents(long events, double minShare) {
    Map<String, Double> out = new LinkedHashMap<>();
    nanosByGroup.entrySet().stream()
        .filter(e -> e.getValue() >= minShare * processNanos)
        .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
        .forEach(e -> out.put(e.getKey(), Math.round(e.getValue() / 1e6 / (events / 1000.0) * 1000) / 1000.0));
    return out;
  }

  /**
   * @return the groups that allocated at least {@code minShare} of what all threads allocated,
   *     largest first, as kilobytes per 1,000 events (heap allocation, from HotSpot's
   *     {@code getThreadAllocatedBytes}: what garbage collection then has to clear)
   */
  Map<String, Long> groupsKbPer1kEvents(long events, double minShare) {
    long total = bytesByGroup.values().stream().mapToLong(Long::longValue).sum();
    Map<String, Long> out = new LinkedHashMap<>();
    bytesByGroup.entrySet().stream()
        .filter(e -> e.getValue() >= minShare * total)
        .sorted(Map.Entry.<String, Long>comparingByValue().reversed())
        .forEach(e -> out.put(e.getKey(), Math.round(e.getValue() / 1024.0 / (events / 1000.0))));
    return out;
  }

  /** @return kilobytes all threads allocated per 1,000 events */
  long kbPer1kEvents(long events) {
    return Math.round(bytesByGroup.values().stream().mapToLong(Long::longValue).sum() / 1024.0 / (events / 1000.0));
  }

  /** @return the thread's name without digits and peer address, its group */
  static String group(String threadName) {
    String name = threadName == null ? "?" : threadName;
    int peer = name.indexOf(" /");
    if (peer >= 0) {
      name = name.substring(0, peer);
    }
    return name.replaceAll("[0-9]+", "N");
  }

  private static long processCpuNanos() {
    if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
      return os.getProcessCpuTime();
    }
    return -1;
  }
}
