package io.pockettune.fleet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.pockettune.pipeline.EventLines;
import io.pockettune.pipeline.TrajectoryEntry;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Holds docker-compose.yml (the fleet job on a Kafka cluster) to the build, without Docker: image
 * tags against the pom's Flink and Kafka versions, mounts against the repository and the shaded
 * jar's path, topics and job arguments against {@link FleetJob}'s constants, read reflectively.
 * Only the last test needs Docker ({@code docker compose config}) and is skipped without it.
 */
class ComposeFileTest {

  private static final Path ROOT = Path.of(System.getProperty("pockettune.repoRoot", "..")).toAbsolutePath().normalize();
  private static final Path COMPOSE = ROOT.resolve("docker-compose.yml");
  private static final List<String> SERVICES = List.of("kafka", "kafka-init", "jobmanager", "taskmanager", "producer");
  private static final List<String> FLINK_CLUSTER = List.of("jobmanager", "taskmanager");
  private static final String JOB_CLASS = "io.pockettune.fleet.FleetJob";
  private static final String JAR_IN_FLINK = "/opt/flink/lib/pockettune-fleet.jar";
  /** What Flink's KafkaSink sets transaction.timeout.ms to when the job does not (1 h). */
  private static final long KAFKA_SINK_TRANSACTION_TIMEOUT_MS = 3_600_000;
  private static final Pattern PORT = Pattern.compile(
      "(?:(?<ip>\\d{1,3}(?:\\.\\d{1,3}){3}|\\[[0-9a-fA-F:]+]):)?(?:(?<host>\\d+):)?(?<container>\\d+)(?:/(?<proto>tcp|udp))?");

  private static JsonNode compose;

  @BeforeAll
  static void read() throws IOException {
    assertTrue(Files.isRegularFile(COMPOSE), "there is no " + COMPOSE + " (pockettune.repoRoot=" + ROOT + ")");
    compose = new YAMLMapper().readTree(COMPOSE.toFile());
  }

  @Test
  void services_allPresent() {
    Set<String> present = new TreeSet<>();
    compose.path("services").properties().forEach(f -> present.add(f.getKey()));
    for (String s : SERVICES) {
      assertTrue(present.contains(s), COMPOSE + " has no service '" + s + "'; it has " + present);
    }
  }

  @Test
  void images_allNamePinnedTags() {
    services().forEach((name, service) -> {
      String image = service.path("image").asText("");
      assertTrue(!image.isEmpty(), "service '" + name + "' names no image");
      String tag = tag(image);
      assertTrue(!tag.isEmpty() && !tag.equals("latest"),
          "service '" + name + "' uses image '" + image + "': name a version tag, not latest or none");
    });
  }

  @Test
  void kafkaImages_majorVersionIsKafkaClients() {
    String clients = property("pockettune.kafkaVersion");
    String image = image("kafka");
    assertEquals("apache/kafka", repository(image), "service 'kafka' should run the apache/kafka image");
    assertEquals(major(clients), major(tag(image)), "service 'kafka' runs " + image
        + " but the project's kafka-clients is " + clients + ": use an apache/kafka:" + major(clients) + ".x tag");
    assertEquals(image, image("kafka-init"), "kafka-init should use the broker's image (its kafka-topics.sh)");
  }

  @Test
  void kafka_allowsTheKafkaSinksDefaultTransactionTimeout() {
    String max = environment(service("kafka")).get("KAFKA_TRANSACTION_MAX_TIMEOUT_MS");
    assertTrue(max != null && Long.parseLong(max) >= KAFKA_SINK_TRANSACTION_TIMEOUT_MS,
        "kafka should set KAFKA_TRANSACTION_MAX_TIMEOUT_MS to at least " + KAFKA_SINK_TRANSACTION_TIMEOUT_MS
            + " (Flink KafkaSink's default transaction.timeout.ms; the broker's own limit is 15 min): it is " + max);
  }

  @Test
  void flinkImages_tagIsFlinkVersionScala212Java17() {
    String expected = "flink:" + property("pockettune.flinkVersion") + "-scala_2.12-java17";
    for (String s : List.of("jobmanager", "taskmanager", "producer")) {
      assertEquals(expected, image(s), "service '" + s + "' must run the Flink the job is built against"
          + " (fleet/pom.xml flink.version)");
    }
    services().forEach((name, service) -> {
      if (repository(service.path("image").asText()).equals("flink")) {
        assertEquals(expected, service.path("image").asText(), "service '" + name + "' runs another Flink image");
      }
    });
  }

  @Test
  void hostMounts_existInRepositoryOrAreTheFleetJar() {
    Path jar = Path.of(property("pockettune.fleetJar")).toAbsolutePath().normalize();
    services().forEach((name, service) -> {
      for (Mount m : mounts(service)) {
        if (!m.bind()) {
          continue;
        }
        Path host = ROOT.resolve(m.source()).normalize();
        if (m.source().endsWith(".jar")) {
          assertEquals(jar, host, "service '" + name + "' mounts " + m.source()
              + ", which is not the jar fleet/pom.xml builds (finalName pockettune-fleet)");
        } else {
          assertTrue(Files.exists(host), "service '" + name + "' mounts " + m.source() + ", which does not exist"
              + " in the repository (" + host + ")");
        }
      }
    });
    for (String s : List.of("jobmanager", "taskmanager", "producer")) {
      Mount m = mounts(service(s)).stream().filter(x -> x.target().equals(JAR_IN_FLINK)).findFirst()
          .orElseThrow(() -> new AssertionError("service '" + s + "' does not mount the fleet jar at " + JAR_IN_FLINK
              + " (lib, so that ONNX Runtime's native library loads once per JVM)"));
      assertEquals(jar, ROOT.resolve(m.source()).normalize(), "service '" + s + "' mounts another jar");
      assertTrue(m.readOnly(), "service '" + s + "' should mount the fleet jar read-only");
    }
  }

  @Test
  void namedVolumes_declaredAndSharedByTheFlinkCluster() {
    Set<String> declared = new TreeSet<>();
    compose.path("volumes").properties().forEach(f -> declared.add(f.getKey()));
    services().forEach((name, service) -> {
      for (Mount m : mounts(service)) {
        if (!m.bind()) {
          assertTrue(declared.contains(m.source()), "service '" + name + "' mounts volume '" + m.source()
              + "', which the top-level volumes do not declare (" + declared + ")");
        }
      }
    });
    for (String s : FLINK_CLUSTER) {
      assertTrue(mounts(service(s)).contains(new Mount("checkpoints", "/checkpoints", false, false)),
          "service '" + s + "' must mount the volume checkpoints at /checkpoints (execution.checkpointing.dir)");
    }
  }

  @Test
  void flinkCluster_sharesOneConfigurationWithRocksDbAndCheckpoints() {
    String jobmanager = environment(service("jobmanager")).get("FLINK_PROPERTIES");
    assertNotNull(jobmanager, "service 'jobmanager' sets no FLINK_PROPERTIES");
    assertEquals(jobmanager, environment(service("taskmanager")).get("FLINK_PROPERTIES"),
        "jobmanager and taskmanager should have the same FLINK_PROPERTIES");
    Map<String, String> config = new HashMap<>();
    for (String line : jobmanager.split("\n")) {
      int colon = line.indexOf(':');
      if (colon > 0) {
        config.put(line.substring(0, colon).strip(), line.substring(colon + 1).strip());
      }
    }
    Map<String, String> required = Map.of("jobmanager.rpc.address", "jobmanager", "state.backend.type", "rocksdb",
        "execution.checkpointing.dir", "file:///checkpoints");
    required.forEach((key, value) -> assertEquals(value, config.get(key), "FLINK_PROPERTIES " + key));
    for (String key : List.of("taskmanager.numberOfTaskSlots", "execution.checkpointing.interval")) {
      assertTrue(config.containsKey(key), "FLINK_PROPERTIES should set " + key);
    }
    assertEquals(List.of("taskmanager"), command(service("taskmanager")), "the taskmanager's command");
  }

  @Test
  void mainClasses_load() {
    List<String> job = command(service("jobmanager"));
    assertEquals("standalone-job", job.get(0), "the jobmanager should run the job in application mode");
    String jobClass = valueOf(job, "--job-classname")
        .orElseThrow(() -> new AssertionError("the jobmanager's command has no --job-classname"));
    assertEquals(JOB_CLASS, jobClass, "the jobmanager runs another class");
    load(jobClass, "the jobmanager's --job-classname");
    String producer = producerMainClass();
    assertEquals(JsonlProducer.class.getName(), producer, "the producer runs another class");
    load(producer, "the producer's main class");
  }

  @Test
  void initTopics_includeTheJobsAndTheSamplesTopics() throws IOException {
    Set<String> created = createdTopics();
    Set<String> needed = new LinkedHashSet<>();
    needed.addAll(fleetJobConstant("DEFAULT_TOPICS"));
    needed.add(TrajectoryEntry.DEFAULT_TOPIC);
    List<String> job = jobArguments();
    valueOf(job, "--topics").ifPresent(t -> needed.addAll(List.of(t.split(","))));
    valueOf(job, "--trajectory-topic").ifPresent(needed::add);
    List<String> producer = command(service("producer"));
    String file = valueOf(producer, "--file").orElseThrow(() -> new AssertionError("the producer has no --file"));
    Path sample = hostPath(service("producer"), file);
    List<String> lines = Files.readAllLines(sample, StandardCharsets.UTF_8);
    String defaultTopic = valueOf(producer, "--topic").orElse(null);
    for (int i = 0; i < lines.size(); i++) {
      if (!lines.get(i).isBlank()) {
        needed.add(EventLines.parse(lines.get(i), defaultTopic, i + 1).topic());
      }
    }
    for (String topic : needed) {
      assertTrue(created.contains(topic), "kafka-init does not create topic '" + topic + "', which the job or the"
          + " sample " + ROOT.relativize(sample) + " needs (the broker does not create topics); it creates " + created);
    }
  }

  @Test
  void publishedPorts_wellFormedAndUnique() {
    Map<String, String> owners = new HashMap<>();
    services().forEach((name, service) -> {
      for (JsonNode p : service.path("ports")) {
        String host;
        String protocol;
        if (p.isObject()) {
          host = p.path("published").asText("");
          protocol = p.path("protocol").asText("tcp");
          assertTrue(validPort(p.path("target").asText("")), "service '" + name + "' has port " + p
              + " without a valid target");
        } else {
          Matcher m = PORT.matcher(p.asText());
          assertTrue(m.matches(), "service '" + name + "' publishes '" + p.asText()
              + "', which is not [IP:]HOST:CONTAINER[/tcp|udp]");
          assertTrue(validPort(m.group("container")), "service '" + name + "' has container port " + p.asText());
          host = m.group("host") == null ? "" : m.group("host");
          protocol = m.group("proto") == null ? "tcp" : m.group("proto");
        }
        if (!host.isEmpty()) {
          assertTrue(validPort(host), "service '" + name + "' publishes host port '" + host + "'");
          String previous = owners.put(host + "/" + protocol, name);
          assertTrue(previous == null, "host port " + host + "/" + protocol + " is published by both '" + previous
              + "' and '" + name + "'");
        }
      }
    });
    assertTrue(owners.containsKey("8081/tcp") && owners.get("8081/tcp").equals("jobmanager"),
        "the jobmanager should publish the Flink web UI on 8081; published: " + owners);
  }

  @Test
  void jobArguments_allAcceptedByFleetJob() {
    List<String> options = fleetJobConstant("OPTIONS");
    List<String> arguments = jobArguments();
    assertTrue(valueOf(arguments, "--bootstrap-servers").isPresent(), "the job needs --bootstrap-servers");
    for (String a : arguments) {
      if (a.startsWith("--")) {
        assertTrue(options.contains(a), "the jobmanager passes " + a + ", which FleetJob does not accept;"
            + " it accepts " + options);
      }
    }
  }

  @Test
  void bootstrapServers_areKafkasListenerInsideTheNetwork() {
    Set<String> advertised = new TreeSet<>();
    String listeners = environment(service("kafka")).getOrDefault("KAFKA_ADVERTISED_LISTENERS", "");
    for (String l : listeners.split(",")) {
      String address = l.substring(l.indexOf("://") + 3);
      if (compose.path("services").has(address.substring(0, address.lastIndexOf(':')))) {
        advertised.add(address);
      }
    }
    assertTrue(!advertised.isEmpty(), "kafka advertises no listener named after a compose service: " + listeners);
    Map<String, List<String>> clients = Map.of("jobmanager", jobArguments(), "producer", command(service("producer")));
    clients.forEach((name, args) -> {
      String servers = valueOf(args, "--bootstrap-servers")
          .orElseThrow(() -> new AssertionError("service '" + name + "' passes no --bootstrap-servers"));
      for (String s : servers.split(",")) {
        assertTrue(advertised.contains(s), "service '" + name + "' connects to " + s + ", which is not a listener"
            + " kafka advertises inside the compose network " + advertised);
      }
    });
  }

  @Test
  void dockerComposeConfig_exitsZero() throws Exception {
    Run version = run(List.of("docker", "compose", "version"));
    Assumptions.assumeTrue(version.exitCode() == 0, "skipped: no 'docker compose' here (" + version.output().strip()
        + "); with docker and its compose plugin on the PATH this test runs docker compose config -q");
    Run config = run(List.of("docker", "compose", "-f", COMPOSE.toString(), "config", "-q"));
    assertEquals(0, config.exitCode(), "docker compose -f docker-compose.yml config -q rejected the file: "
        + config.output().strip());
  }

  /** A short-syntax ({@code SOURCE:TARGET[:ro]}) or long-syntax mount of a service. */
  private record Mount(String source, String target, boolean readOnly, boolean bind) {}

  private static List<Mount> mounts(JsonNode service) {
    List<Mount> mounts = new ArrayList<>();
    for (JsonNode v : service.path("volumes")) {
      if (v.isObject()) {
        String type = v.path("type").asText("volume");
        mounts.add(new Mount(v.path("source").asText(), v.path("target").asText(), v.path("read_only").asBoolean(),
            type.equals("bind")));
      } else {
        String[] parts = v.asText().split(":");
        assertTrue(parts.length == 2 || parts.length == 3, "cannot read mount '" + v.asText() + "'");
        String source = parts[0];
        boolean bind = source.startsWith(".") || source.startsWith("/") || source.startsWith("~");
        mounts.add(new Mount(source, parts[1], parts.length == 3 && List.of(parts[2].split(",")).contains("ro"), bind));
      }
    }
    return mounts;
  }

  /** The host path of {@code containerPath} in {@code service}, through its bind mounts. */
  private static Path hostPath(JsonNode service, String containerPath) {
    for (Mount m : mounts(service)) {
      if (m.bind() && (containerPath.equals(m.target()) || containerPath.startsWith(m.target() + "/"))) {
        return ROOT.resolve(m.source()).resolve(containerPath.substring(m.target().length()).replaceFirst("^/", ""))
            .normalize();
      }
    }
    throw new AssertionError(containerPath + " is on no bind mount of the service");
  }

  private static Set<String> createdTopics() {
    Set<String> topics = new TreeSet<>();
    String script = String.join("\n", command(service("kafka-init")));
    Matcher m = Pattern.compile("--topic\\s+(\\S+)").matcher("");
    for (String line : script.split("\n")) {
      if (line.contains("kafka-topics.sh") && line.contains("--create") && m.reset(line).find()) {
        topics.add(m.group(1));
      }
    }
    return topics;
  }

  private static List<String> jobArguments() {
    List<String> job = command(service("jobmanager"));
    int i = job.indexOf("--job-classname");
    assertTrue(i >= 0 && i + 1 < job.size(), "the jobmanager's command has no --job-classname: " + job);
    return job.subList(i + 2, job.size());
  }

  private static String producerMainClass() {
    List<String> c = command(service("producer"));
    assertEquals("java", c.get(0), "the producer should run java");
    for (int i = 1; i < c.size(); i++) {
      if (c.get(i).equals("-cp") || c.get(i).equals("-classpath")) {
        i++;
      } else if (!c.get(i).startsWith("-")) {
        return c.get(i);
      }
    }
    throw new AssertionError("the producer's command names no main class: " + c);
  }

  private static Optional<String> valueOf(List<String> arguments, String option) {
    int i = arguments.indexOf(option);
    return i >= 0 && i + 1 < arguments.size() ? Optional.of(arguments.get(i + 1)) : Optional.empty();
  }

  /** A service's command as its arguments: a list as it is, a string split as compose splits it. */
  private static List<String> command(JsonNode service) {
    JsonNode c = service.path("command");
    List<String> args = new ArrayList<>();
    if (c.isArray()) {
      c.forEach(a -> args.add(a.asText()));
      return args;
    }
    StringBuilder current = null;
    char quote = 0;
    for (char ch : c.asText("").toCharArray()) {
      if (quote != 0) {
        if (ch == quote) {
          quote = 0;
        } else {
          current.append(ch);
        }
      } else if (ch == '\'' || ch == '"') {
        quote = ch;
        current = current == null ? new StringBuilder() : current;
      } else if (Character.isWhitespace(ch)) {
        if (current != null) {
          args.add(current.toString());
          current = null;
        }
      } else {
        current = current == null ? new StringBuilder() : current;
        current.append(ch);
      }
    }
    if (current != null) {
      args.add(current.toString());
    }
    return args;
  }

  private static Map<String, String> environment(JsonNode service) {
    Map<String, String> env = new LinkedHashMap<>();
    JsonNode e = service.path("environment");
    if (e.isObject()) {
      e.properties().forEach(f -> env.put(f.getKey(), f.getValue().asText()));
    } else {
      for (JsonNode kv : e) {
        String s = kv.asText();
        int eq = s.indexOf('=');
        env.put(eq < 0 ? s : s.substring(0, eq), eq < 0 ? "" : s.substring(eq + 1));
      }
    }
    return env;
  }

  private static Map<String, JsonNode> services() {
    Map<String, JsonNode> services = new LinkedHashMap<>();
    compose.path("services").properties().forEach(f -> services.put(f.getKey(), f.getValue()));
    return services;
  }

  private static JsonNode service(String name) {
    JsonNode s = compose.path("services").path(name);
    if (s.isMissingNode()) {
      fail(COMPOSE + " has no service '" + name + "'");
    }
    return s;
  }

  private static String image(String service) {
    return service(service).path("image").asText("");
  }

  private static String tag(String image) {
    int slash = image.lastIndexOf('/');
    int colon = image.indexOf(':', slash + 1);
    return colon < 0 ? "" : image.substring(colon + 1);
  }

  private static String repository(String image) {
    int slash = image.lastIndexOf('/');
    int colon = image.indexOf(':', slash + 1);
    return colon < 0 ? image : image.substring(0, colon);
  }

  private static String major(String version) {
    return version.split("[.-]")[0];
  }

  private static boolean validPort(String s) {
    try {
      int p = Integer.parseInt(s);
      return p >= 1 && p <= 65535;
    } catch (NumberFormatException e) {
      return false;
    }
  }

  private static String property(String name) {
    String v = System.getProperty(name);
    assertNotNull(v, "system property " + name + " is not set: run this test through Maven (fleet/pom.xml sets it)");
    return v;
  }

  private static void load(String className, String what) {
    try {
      Class.forName(className, false, ComposeFileTest.class.getClassLoader());
    } catch (ClassNotFoundException e) {
      fail(what + " is " + className + ", which is not on the fleet module's class path (does it exist yet?)");
    }
  }

  /** A static constant of FleetJob, read reflectively so that this test compiles without it. */
  @SuppressWarnings("unchecked")
  private static List<String> fleetJobConstant(String field) {
    Class<?> job;
    try {
      job = Class.forName(JOB_CLASS);
    } catch (ClassNotFoundException e) {
      throw new AssertionError(JOB_CLASS + " does not exist yet: the compose file is checked against its " + field);
    }
    try {
      return List.copyOf((List<String>) job.getField(field).get(null));
    } catch (NoSuchFieldException | IllegalAccessException | ClassCastException e) {
      throw new AssertionError(JOB_CLASS + " has no public static List<String> " + field + " (" + e + ")");
    }
  }

  /** A command's exit code (-1 when it cannot start) and its output. */
  private record Run(int exitCode, String output) {}

  // Output is captured, never inherited: the test JVM's standard streams are surefire's channel.
  private static Run run(List<String> command) throws InterruptedException {
    Process p;
    try {
      p = new ProcessBuilder(command).directory(ROOT.toFile()).redirectErrorStream(true)
          .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
    } catch (IOException e) {
      return new Run(-1, e.getMessage());
    }
    CompletableFuture<String> output = CompletableFuture.supplyAsync(() -> {
      try {
        return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      } catch (IOException e) {
        return e.getMessage();
      }
    });
    if (!p.waitFor(120, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError(String.join(" ", command) + " did not finish within 120 s");
    }
    return new Run(p.exitValue(), output.join());
  }
}
