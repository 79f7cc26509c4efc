package io.pockettune.bench;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.Locale;

/**
 * The memory chart of {@code bench quality}: per model, peak resident set against batch size for
 * MeZO, Adam and plain inference, with the Adam / MeZO ratio written above each Adam point. Plain
 * SVG 1.1, no script, so it renders on GitHub and in any browser.
 */
final class MemoryChart {
  private static final int PANEL_W = 440;
  private static final int PANEL_H = 300;
  private static final int LEFT = 60;
  private static final int TOP = 50;
  private static final int BOTTOM = 50;

  private MemoryChart() {}

  /** @param memory the {@code memory} object of the result document */
  static String svg(JsonNode memory) {
    List<String> models = List.of("minilm", "bench10m");
    int panels = (int) models.stream().filter(memory::has).count();
    int width = Math.max(1, panels) * (PANEL_W + LEFT) + 20;
    int height = TOP + PANEL_H + BOTTOM + 40;
    StringBuilder s = new StringBuilder();
    s.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
        + "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">%n", width, height, width, height));
    s.append(String.format(Locale.ROOT, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>%n", width, height));
    s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">Peak resident set"
        + " (MB) against batch size, %s tokens per sequence, one JVM per point</text>%n", LEFT,
        memory.path("tokens").asText("128")));
    int x0 = LEFT;
    for (String model : models) {
      if (!memory.has(model)) {
        continue;
      }
      panel(s, memory.path(model), model.equals("minilm") ? "all-MiniLM-L6-v2 (22.7M, encoder)"
          : "bench10m decoder (10.8M)", x0);
      x0 += PANEL_W + LEFT;
    }
    int ly = TOP + PANEL_H + 62;
    legend(s, LEFT, ly, "#d62728", "Adam, DJL PyTorch (label: Adam / MeZO)", false);
    legend(s, LEFT + 300, ly, "#1f77b4", "MeZO, PocketTune", false);
    legend(s, LEFT + 450, ly, "#7f7f7f", "inference, plain ONNX Runtime", true);
    s.append("</svg>\n");
    return s.toString();
  }

  private static void panel(StringBuilder s, JsonNode m, String title, int x0) {
    JsonNode batches = m.path("batches");
    int n = batches.size();
    double max = 1;
    for (String k : List.of("mezo_mb", "adam_mb", "inference_mb")) {
      for (JsonNode v : m.path(k)) {
        max = Math.max(max, v.asDouble());
      }
    }
    double top = niceCeiling(max * 1.12);
    s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>%n", x0, TOP - 12, title));
    s.append(String.format(Locale.ROOT, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>%n",
        x0, TOP, PANEL_W, PANEL_H));
    for (int i = 0; i <= 4; i++) {
      double v = top * i / 4;
      double y = TOP + PANEL_H - PANEL_H * i / 4.0;
      s.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#eee\"/>%n", x0, y,
          x0 + PANEL_W, y));
      s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%,.0f</text>%n", x0 - 6, y + 4, v));
    }
    for (int i = 0; i < n; i++) {
      s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>%n", x(x0, i, n),
          TOP + PANEL_H + 16, batches.get(i).asInt()));
    }
    s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">batch size</text>%n",
        x0 + PANEL_W / 2, TOP + PANEL_H + 32));
    series(s, m.path("inference_mb"), x0, n, top, "#7f7f7f", true, null);
    series(s, m.path("mezo_mb"), x0, n, top, "#1f77b4", false, null);
    series(s, m.path("adam_mb"), x0, n, top, "#d62728", false, m.path("adam_over_mezo"));
  }

  private static void series(StringBuilder s, JsonNode values, int x0, int n, double top, String color, boolean dashed,
      JsonNode labels) {
    StringBuilder points = new StringBuilder();
    for (int i = 0; i < n; i++) {
      double v = values.path(i).asDouble(-1);
      if (v < 0) {
        continue;
      }
      double x = x(x0, i, n);
      double y = TOP + PANEL_H - PANEL_H * v / top;
      points.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
      s.append(String.format(Locale.ROOT, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%,.0f MB</title></circle>%n",
          x, y, color, v));
      if (labels != null && labels.path(i).isNumber()) {
        s.append(String.format(Locale.ROOT, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"%s\">%.1fx</text>%n",
            x, y - 8, color, labels.path(i).asDouble()));
      }
    }
    s.append(String.format(Locale.ROOT, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s/>%n",
        points.toString().trim(), color, dashed ? " stroke-dasharray=\"5,4\"" : ""));
  }

  private static void legend(StringBuilder s, int x, int y, String color, String text, boolean dashed) {
    s.append(String.format(Locale.ROOT, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>%n",
        x, y - 4, x + 24, y - 4, color, dashed ? " stroke-dasharray=\"5,4\"" : ""));
    s.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\">%s</text>%n", x + 30, y, text));
  }

  private static double x(int x0, int i, int n) {
    return x0 + PANEL_W * (i + 0.5) / n;
  }

  /** The next of 1, 2, 2.5, 5 times a power of ten at or above {@code v}. */
  static double niceCeiling(double v) {
    double p = Math.pow(10, Math.floor(Math.log10(v)));
    for (double f : new double[] {1, 2, 2.5, 5, 10}) {
      if (f * p >= v) {
        return f * p;
      }
    }
    return 10 * p;
  }
}
