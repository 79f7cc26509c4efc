package io.pockettune.bench;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import io.pockettune.pipeline.JsonLine;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune bench fuzz --minutes N}: the long run of the fuzz properties that {@code
 * ./mvnw verify} runs briefly (jqwik, from the modules' fuzz test jars): the Avro event decoder,
 * produce's JSON lines and the model card, record batches as recovery parses them (and their
 * erasure), the control socket of a running service, and the Kafka listener's frames. They run
 * again and again, each time from a fresh random seed, until the time is up; every failure is
 * reported with the seed jqwik prints, which replays it ({@code @Property(seed = "...")}).
 */
@Command(name = "fuzz", mixinStandardHelpOptions = true,
    description = "Run the fuzz properties of every input for N minutes, from fresh seeds each round.")
final class BenchFuzzCommand implements Callable<Integer> {
  /** The fuzz properties, one class per input. */
  static final List<String> PROPERTIES = List.of(
      "io.pockettune.schemas.EventDecoderFuzzTest",
      "io.pockettune.pipeline.InputFuzzTest",
      "io.pockettune.ingest.RecordBatchFuzzTest",
      "io.pockettune.pipeline.ControlChannelFuzzTest",
      "io.pockettune.ingest.ListenerFuzzTest");

  @Spec CommandSpec spec;

  @Option(names = "--minutes", description = "how long to fuzz (default: ${DEFAULT-VALUE})")
  double minutes = 10;

  @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
  boolean json;

  @Override
  public Integer call() throws IOException {
    if (!(minutes > 0)) {
      throw new IllegalArgumentException("--minutes must be positive, was " + minutes);
    }
    PrintWriter out = spec.commandLine().getOut();
    Path database = Files.createTempDirectory("pockettune-fuzz-");
    long started = System.nanoTime();
    long deadline = started + (long) (minutes * 60e9);
    Launcher launcher = LauncherFactory.create();
    Map<String, long[]> perClass = new LinkedHashMap<>();
    List<String> failures = new ArrayList<>();
    int rounds = 0;
    try {
      while (System.nanoTime() < deadline) {
        rounds++;
        for (String name : PROPERTIES) {
          if (System.nanoTime() >= deadline && rounds > 1) {
            break;
          }
          long[] counts = perClass.computeIfAbsent(name, k -> new long[3]);
          LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
              .selectors(selectClass(name))
              // A fresh seed each round: no replay of an earlier round's seed from a database.
              .configurationParameter("jqwik.database", database.resolve("round-" + rounds).toString())
              .configurationParameter("jqwik.reporting.onlyfailures", "true")
              .build();
          long t0 = System.nanoTime();
          launcher.execute(request, new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
              if (!id.isTest()) {
                if (result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                  failures.add(name + ": " + result.getThrowable().map(Throwable::toString).orElse("failed"));
                }
                return;
              }
              counts[0]++;
              if (result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                failures.add(name + " " + id.getDisplayName() + ": "
                    + result.getThrowable().map(Throwable::toString).orElse("failed"));
              }
            }
          });
          counts[1] += System.nanoTime() - t0;
          counts[2]++;
        }
        out.printf(Locale.ROOT, "round %d done after %.1f min, %d failure(s) so far%n", rounds,
            (System.nanoTime() - started) / 60e9, failures.size());
        out.flush();
      }
    } finally {
      try (Stream<Path> files = Files.walk(database)) {
        files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
    Map<String, Object> classes = new LinkedHashMap<>();
    perClass.forEach((name, c) -> classes.put(name.substring(name.lastIndexOf('.') + 1), new JsonLine()
        .put("rounds", c[2]).put("properties_run", c[0]).put("seconds", Math.round(c[1] / 1e8) / 10.0)));
    for (String f : failures) {
      out.println("FAILED " + f);
    }
    out.printf(Locale.ROOT, "%d rounds of %d fuzz classes in %.1f min: %d failure(s)%n", rounds, PROPERTIES.size(),
        (System.nanoTime() - started) / 60e9, failures.size());
    if (json) {
      out.println(new JsonLine().put("bench", "fuzz").put("minutes", minutes).put("rounds", rounds)
          .put("classes", classes).put("failures", failures).toString());
    }
    return failures.isEmpty() ? 0 : 1;
  }
}
