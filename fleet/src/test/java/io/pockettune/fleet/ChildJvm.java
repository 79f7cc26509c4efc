package io.pockettune.fleet;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs {@link DeviceCheck} in a child JVM whose classpath is this test's without Flink's
 * frocksdbjni and with the device store (model-store and rocksdbjni, which surefire keeps out of
 * this JVM): both ship classes named org.rocksdb.*, so they cannot share one class path.
 */
final class ChildJvm {
  private ChildJvm() {}

  /** @return the child's standard output, line by line; fails with its standard error if it fails */
  static List<String> run(Path dir, String... args) throws IOException, InterruptedException {
    String device = System.getProperty("pockettune.device.classpath");
    if (device == null || device.contains("${")) {
      throw new IllegalStateException("pockettune.device.classpath is not set: run the test through Maven, whose"
          + " fleet/pom.xml sets it to model-store's and rocksdbjni's jars");
    }
    List<String> cp = new ArrayList<>();
    for (String e : System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"))
        .split(File.pathSeparator)) {
      if (!e.contains("frocksdbjni") && !e.contains("flink-statebackend-rocksdb")) {
        cp.add(e);
      }
    }
    cp.add(device);
    Files.createDirectories(dir);
    Path out = dir.resolve("stdout.txt");
    Path err = dir.resolve("stderr.txt");
    List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "--enable-native-access=ALL-UNNAMED", "-DOPT_OUT_TRACKING=true", "-Dai.djl.offline=true", "-Xmx1g", "-cp",
        String.join(File.pathSeparator, cp), DeviceCheck.class.getName()));
    command.addAll(List.of(args));
    Process p = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
    if (!p.waitFor(5, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      throw new AssertionError("the device check did not finish within 5 minutes; its stderr is in " + err);
    }
    if (p.exitValue() != 0) {
      throw new AssertionError("the device check failed (exit " + p.exitValue() + "): "
          + Files.readString(err, StandardCharsets.UTF_8));
    }
    return Files.readAllLines(out, StandardCharsets.UTF_8);
  }
}
