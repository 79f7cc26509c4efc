package io.pockettune.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayInputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;

/**
 * {@code pockettune bench quality}: its data handling, its chart and table, its errors, and one
 * small real run on ../shared/data (MeZO norms through the runtime and Adam through DJL PyTorch,
 * each in its own JVM), whose figures must be recomputed equal by an independent path.
 */
class BenchQualityTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Path SHARED = Path.of(System.getProperty("pockettune.sharedData", "../../shared/data"));

  @TempDir Path dir;

  private record Run(int exit, String out, String err) {
    static Run of(String... args) {
      StringWriter out = new StringWriter();
      StringWriter err = new StringWriter();
      int exit = BenchCommand.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
      return new Run(exit, out.toString(), err.toString());
    }
  }

  @Test
  void spaced_takesBothLabelsOfASortedFile() {
    List<QualityData.Example> sorted = new ArrayList<>();
    for (int i = 0; i < 1024; i++) {
      sorted.add(new QualityData.Example("s" + i, i < 512 ? 0 : 1));
    }
    List<QualityData.Example> dev = QualityData.spaced(sorted, 256);
    assertEquals(256, dev.size());
    assertEquals(128, dev.stream().filter(e -> e.label() == 1).count(), "a prefix would hold label 0 only");
    assertEquals(256, new HashSet<>(dev).size(), "no example twice");
    assertEquals(sorted, QualityData.spaced(sorted, 0));
  }

  @Test
  void trainingOrder_isEpochsOfShufflesDrawnFromTheSeed() {
    List<QualityData.Example> train = new ArrayList<>();
    for (int i = 0; i < 32; i++) {
      train.add(new QualityData.Example("s" + i, i % 2));
    }
    List<QualityData.Example> a = QualityData.trainingOrder(train, 80, 13);
    assertEquals(80, a.size());
    assertEquals(new HashSet<>(train), new HashSet<>(a.subList(0, 32)), "the first epoch holds every example once");
    assertEquals(new HashSet<>(train), new HashSet<>(a.subList(32, 64)), "and so does the second");
    assertFalse(a.subList(0, 32).equals(a.subList(32, 64)), "each epoch has its own shuffle");
    assertEquals(a, QualityData.trainingOrder(train, 80, 13), "the same seed gives the same order");
    assertFalse(a.equals(QualityData.trainingOrder(train, 80, 21)), "another seed another order");
  }

  @Test
  void memoryChart_isWellFormedSvgWithTheRatios() throws Exception {
    JsonNode memory = JSON.readTree("""
        {"tokens":128,"minilm":{"batches":[1,8],"mezo_mb":[700,760],"adam_mb":[1400,3800],"inference_mb":[400,460],
         "adam_over_mezo":[2.0,5.0]},
         "bench10m":{"batches":[1,8],"mezo_mb":[300,320],"adam_mb":[900,1600],"inference_mb":[200,210],
         "adam_over_mezo":[3.0,5.0]}}""");
    String svg = MemoryChart.svg(memory);
    Document doc = DocumentBuilderFactory.newInstance().newDocumentBuilder()
        .parse(new ByteArrayInputStream(svg.getBytes(StandardCharsets.UTF_8)));
    assertEquals("svg", doc.getDocumentElement().getTagName());
    assertEquals(6, doc.getElementsByTagName("polyline").getLength(), "three series in each of two panels");
    assertEquals(12, doc.getElementsByTagName("circle").getLength(), "one point per series and batch");
    assertTrue(svg.contains(">5.0x<") && svg.contains(">2.0x<") && svg.contains(">3.0x<"), "ratios label the Adam points");
    assertEquals(5000, MemoryChart.niceCeiling(3800 * 1.12));
  }

  @Test
  void markdown_holdsEveryMethodAndTheMemoryRatios() throws Exception {
    JsonNode doc = JSON.readTree("""
        {"tasks":{"sst2-16":{"zero-shot":{"accuracy_mean":0.7122,"accuracy_std":0.0,"forward_passes":0,"peak_rss_mb":600},
          "adam":{"lr":3e-5,"accuracy_mean":0.8,"accuracy_std":0.0123,"forward_passes":100,"seconds":40.5,"peak_rss_mb":2000}}},
         "memory":{"minilm":{"batches":[1],"mezo_mb":[700],"adam_mb":[1400],"inference_mb":[400],"adam_over_mezo":[2.0]}},
         "minutes":1.5}""");
    String md = BenchQualityCommand.markdown(doc);
    assertTrue(md.contains("| sst2-16 | zero-shot | - | 71.22 +- 0.00 | 0 | - | 600 |"), md);
    assertTrue(md.contains("| sst2-16 | adam | 3e-05 | 80.00 +- 1.23 | 100 | 40.5 | 2000 |"), md);
    assertTrue(md.contains("| 1 | 700 | 1400 | 400 | 2.0 |"), md);
  }

  @Test
  void quality_missingDataIsOneSentenceNamingTheFolder() {
    Run r = Run.of("quality", "--quick", "--data", dir.toString());
    assertEquals(1, r.exit());
    assertEquals(1, r.err().strip().lines().count(), r.err());
    assertTrue(r.err().contains("has no sst2-kshot and sms folders: give --data"), r.err());
  }

  @Test
  void quality_unknownPartOrMethodIsNamed() throws Exception {
    Files.createDirectories(dir.resolve("sst2-kshot"));
    Files.createDirectories(dir.resolve("sms"));
    Run part = Run.of("quality", "--data", dir.toString(), "--only", "sst3");
    assertEquals(1, part.exit());
    assertTrue(part.err().contains("--only takes sst2-16, sst2-512, sms, sms-lm, lm-methods, memory, not 'sst3'"), part.err());
    Run method = Run.of("quality", "--data", dir.toString(), "--methods", "sgd");
    assertEquals(1, method.exit());
    assertTrue(method.err().contains("not 'sgd'"), method.err());
  }

  /**
   * A small real run: 16-shot SST-2, MeZO norms (4 steps, replay for selection and test, the
   * export through a plain ONNX Runtime session), a side network trained by FZOO (the same budget
   * of loss evaluations: one step) and Adam (2 steps, the export through a plain
   * session), one JVM each, on 24 test sentences.
   */
  @Test
  void quality_smallRealRunRecomputesEveryFigure() throws Exception {
    assumeTrue(Files.isDirectory(SHARED.resolve("sst2-kshot")),
        "../shared/data is absent: the real-data run of bench quality is skipped");
    Run r = Run.of("quality", "--json", "--data", SHARED.toString(), "--only", "sst2-16", "--methods", "mezo-norms,side-fzoo,adam",
        "--quick", "--steps-16", "4", "--adam-steps", "2", "--test-limit", "24", "--work", dir.resolve("work").toString());
    assertEquals(0, r.exit(), r.err());
    JsonNode doc = JSON.readTree(r.out().strip().lines().reduce((a, b) -> b).orElseThrow());
    JsonNode fzoo = doc.path("tasks").path("sst2-16").path("side-fzoo").path("runs").get(0);
    assertEquals(9, fzoo.path("forward_passes").asInt(), "FZOO at MeZO's budget of 8 loss evaluations: one step of 9");
    for (String method : List.of("mezo-norms", "side-fzoo", "adam")) {
      JsonNode m = doc.path("tasks").path("sst2-16").path(method);
      assertEquals(24, m.path("test_examples").asInt(), method);
      assertEquals(2, m.path("accuracies").size(), method + ": two seeds in --quick");
      if (method.equals("adam")) {
        assertEquals("plain ONNX Runtime session on the exported model", m.path("runs").get(0).path("test_accuracy_source").asText(),
            "Adam's figure comes from the exported model through a plain session");
        assertTrue(m.path("recomputed_equal").isMissingNode(), "no recomputation claimed where none ran");
      } else {
        assertTrue(m.path("recomputed_equal").asBoolean(), method + ": the figure is recomputed equal by a plain session");
      }
      double acc = m.path("accuracy_mean").asDouble(-1);
      assertTrue(acc >= 0 && acc <= 1, method + " accuracy " + acc);
      assertTrue(m.path("peak_rss_mb").asLong() > 100, method + " measured its own JVM");
      for (JsonNode run : m.path("runs")) {
        assertTrue(run.path("dev_accuracy").isNumber(), "selection on dev");
        assertEquals(run.path("dev_curve").size() > 0, true, "dev evaluated during training");
      }
    }
    assertEquals(8, doc.path("tasks").path("sst2-16").path("mezo-norms").path("forward_passes").asInt(), "2 per MeZO step");
  }
}
