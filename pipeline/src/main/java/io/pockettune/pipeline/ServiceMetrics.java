package io.pockettune.pipeline;

import com.codahale.metrics.CsvReporter;
import com.codahale.metrics.Gauge;
import com.codahale.metrics.Histogram;
import com.codahale.metrics.Meter;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.Snapshot;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.DoubleSupplier;
import java.util.function.LongSupplier;
import javax.management.JMException;
import javax.management.MBeanServer;
import javax.management.ObjectName;

/**
 * The service's figures, in a Dropwizard {@link MetricRegistry} under {@code pockettune.*}:
 * meters {@code events.in}, {@code steps} (its rates are steps per second) and
 * {@code dead-letters}; histograms {@code step.latency.ms} and {@code forward.latency.ms}; gauges
 * {@code consumer.lag}, {@code loss} and {@code memory.rss.bytes}. Reported three ways: CSV files
 * under {@code <data-dir>/metrics/} (Dropwizard's {@link CsvReporter}, every 10 s), JMX (an MXBean
 * {@code io.pockettune:type=Service}, registered on the platform server through
 * java.lang.management, since metrics-jmx is not a dependency yet), and {@code status}.
 *
 * <p>{@code forward.latency.ms} is the mean ONNX Runtime forward time within each step (a MeZO
 * step is two forward passes plus three perturbation passes). Thread-safe.
 */
final class ServiceMetrics implements AutoCloseable {

  /** What JMX shows. */
  public interface ServiceMXBean {
    long getEventsIn();
    long getSteps();
    double getStepsPerSecond();
    long getConsumerLag();
    double getLoss();
    double getStepLatencyP50Ms();
    long getResidentBytes();
  }

  private static final String PREFIX = "pockettune.";

  final MetricRegistry registry = new MetricRegistry();
  final Meter eventsIn = registry.meter(PREFIX + "events.in");
  final Meter steps = registry.meter(PREFIX + "steps");
  final Meter deadLetters = registry.meter(PREFIX + "dead-letters");
  final Histogram stepLatency = registry.histogram(PREFIX + "step.latency.ms");
  final Histogram forwardLatency = registry.histogram(PREFIX + "forward.latency.ms");
  private final LongSupplier lag;
  private final DoubleSupplier loss;
  private CsvReporter csv;
  private ObjectName jmxName;

  ServiceMetrics(LongSupplier lag, DoubleSupplier loss) {
    this.lag = lag;
    this.loss = loss;
    registry.register(PREFIX + "consumer.lag", (Gauge<Long>) lag::getAsLong);
    registry.register(PREFIX + "loss", (Gauge<Double>) loss::getAsDouble);
    registry.register(PREFIX + "memory.rss.bytes", (Gauge<Long>) Governor::residentSetBytes);
  }

  /**
   * @param nanos         wall time of the step
   * @param forwards      forward passes it ran
   * @param forwardNanos  time those passes took in total
   */
  void stepTook(long nanos, long forwards, long forwardNanos) {
    steps.mark();
    stepLatency.update(nanos / 1_000_000);
    if (forwards > 0) {
      forwardLatency.update(forwardNanos / forwards / 1_000_000);
    }
  }

  /** Starts the CSV reporter and the JMX bean. */
  void report(Path csvDir) throws IOException {
    Files.createDirectories(csvDir);
    csv = CsvReporter.forRegistry(registry).formatFor(Locale.ROOT).convertRatesTo(TimeUnit.SECONDS)
        .convertDurationsTo(TimeUnit.MILLISECONDS).build(csvDir.toFile());
    csv.start(10, TimeUnit.SECONDS);
    try {
      MBeanServer server = ManagementFactory.getPlatformMBeanServer();
      ObjectName name = new ObjectName("io.pockettune:type=Service");
      if (!server.isRegistered(name)) {
        server.registerMBean(new Bean(), name);
        jmxName = name;
      }
    } catch (JMException e) {
      org.slf4j.LoggerFactory.getLogger(ServiceMetrics.class).warn("no JMX: {}", e.toString());
    }
  }

  /** @return the figures for {@code status}, by metric name */
  Map<String, Object> figures() {
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("events_in", eventsIn.getCount());
    // The one-minute rate is an average ticked every 5 s: zero until the first tick.
    m.put("steps_per_second", round(steps.getOneMinuteRate() > 0 ? steps.getOneMinuteRate() : steps.getMeanRate()));
    m.put("steps_per_second_mean", round(steps.getMeanRate()));
    m.put("dead_letters", deadLetters.getCount());
    Snapshot s = stepLatency.getSnapshot();
    m.put("step_latency_ms", Map.of("p50", round(s.getMedian()), "p99", round(s.get99thPercentile()),
        "mean", round(s.getMean())));
    Snapshot f = forwardLatency.getSnapshot();
    m.put("forward_latency_ms", Map.of("p50", round(f.getMedian()), "p99", round(f.get99thPercentile())));
    m.put("rss_bytes", Governor.residentSetBytes());
    return m;
  }

  private static double round(double v) {
    return Math.round(v * 1000) / 1000.0;
  }

  @Override
  public void close() {
    if (csv != null) {
      csv.report();
      csv.close();
    }
    if (jmxName != null) {
      try {
        ManagementFactory.getPlatformMBeanServer().unregisterMBean(jmxName);
      } catch (JMException e) {
        // already gone
      }
    }
  }

  private final class Bean implements ServiceMXBean {
    public long getEventsIn() {
      return eventsIn.getCount();
    }

    public long getSteps() {
      return steps.getCount();
    }

    public double getStepsPerSecond() {
      return steps.getOneMinuteRate();
    }

    public long getConsumerLag() {
      return lag.getAsLong();
    }

    public double getLoss() {
      return loss.getAsDouble();
    }

    public double getStepLatencyP50Ms() {
      return stepLatency.getSnapshot().getMedian();
    }

    public long getResidentBytes() {
      return Governor.residentSetBytes();
    }
  }
}
