package io.pockettune.pipeline;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The files a replay writes: CSV (one row per point) and a self-contained HTML page (inline CSS
 * and SVG, no scripts, nothing fetched) with a chart of the metric per checkpoint, or per batch for
 * a prequential run, and the table of figures.
 */
final class ReplayReport {
  /** One point of the chart and row of the table: x (step), y (loss), and the row's cells. */
  record Point(double x, double y, List<Object> cells) {}

  private ReplayReport() {}

  static void writeCsv(Path file, List<String> header, List<Point> points) throws IOException {
    StringBuilder sb = new StringBuilder(String.join(",", header)).append('\n');
    for (Point p : points) {
      for (int i = 0; i < p.cells().size(); i++) {
        if (i > 0) {
          sb.append(',');
        }
        Object v = p.cells().get(i);
        sb.append(v == null ? "" : v.toString().replace(",", ";"));
      }
      sb.append('\n');
    }
    write(file, sb.toString());
  }

  static void writeHtml(Path file, String title, String subtitle, String xLabel, String yLabel, List<String> header,
      List<Point> points) throws IOException {
    StringBuilder sb = new StringBuilder();
    sb.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").append(escape(title))
        .append("</title>\n<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
            + "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            + "th{background:#f3f3f3}.axis{stroke:#888}.line{fill:none;stroke:#1f6fb4;stroke-width:2}"
            + ".dot{fill:#1f6fb4}text{font-size:11px;fill:#444}</style></head><body>\n<h1>")
        .append(escape(title)).append("</h1>\n<p>").append(escape(subtitle)).append("</p>\n");
    sb.append(chart(points, xLabel, yLabel));
    sb.append("<table><tr>");
    for (String h : header) {
      sb.append("<th>").append(escape(h)).append("</th>");
    }
    sb.append("</tr>\n");
    for (Point p : points) {
      sb.append("<tr>");
      for (Object v : p.cells()) {
        sb.append("<td>").append(escape(v == null ? "" : v instanceof Double d ? format(d) : v.toString())).append("</td>");
      }
      sb.append("</tr>\n");
    }
    sb.append("</table>\n</body></html>\n");
    write(file, sb.toString());
  }

  private static String chart(List<Point> points, String xLabel, String yLabel) {
    int w = 720;
    int h = 320;
    int left = 60;
    int right = 20;
    int top = 20;
    int bottom = 40;
    StringBuilder sb = new StringBuilder();
    sb.append(String.format(Locale.ROOT, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"%s by %s\">\n",
        w, h, escape(yLabel), escape(xLabel)));
    sb.append(String.format(Locale.ROOT, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>", left, h - bottom, w - right, h - bottom));
    sb.append(String.format(Locale.ROOT, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", left, top, left, h - bottom));
    List<Point> finite = points.stream().filter(p -> Double.isFinite(p.y())).toList();
    if (!finite.isEmpty()) {
      double minX = finite.stream().mapToDouble(Point::x).min().orElse(0);
      double maxX = finite.stream().mapToDouble(Point::x).max().orElse(1);
      double minY = finite.stream().mapToDouble(Point::y).min().orElse(0);
      double maxY = finite.stream().mapToDouble(Point::y).max().orElse(1);
      if (maxX == minX) {
        maxX = minX + 1;
      }
      if (maxY == minY) {
        maxY = minY + 1e-6;
      }
      double sx = (w - left - right) / (maxX - minX);
      double sy = (h - top - bottom) / (maxY - minY);
      StringBuilder line = new StringBuilder();
      for (Point p : finite) {
        double x = left + (p.x() - minX) * sx;
        double y = h - bottom - (p.y() - minY) * sy;
        line.append(String.format(Locale.ROOT, "%.1f,%.1f ", x, y));
        sb.append(String.format(Locale.ROOT, "<circle class=\"dot\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\"><title>%s %s: %s %s</title></circle>\n",
            x, y, escape(xLabel), format(p.x()), escape(yLabel), format(p.y())));
      }
      sb.append("<polyline class=\"line\" points=\"").append(line.toString().strip()).append("\"/>\n");
      sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>", left - 4, top + 4, format(maxY)));
      sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>", left - 4, h - bottom, format(minY)));
      sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\">%s</text>", left, h - bottom + 14, format(minX)));
      sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", w - right, h - bottom + 14, format(maxX)));
    }
    sb.append(String.format(Locale.ROOT, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>", (left + w - right) / 2, h - 8, escape(xLabel)));
    sb.append(String.format(Locale.ROOT, "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">%s</text>\n",
        (top + h - bottom) / 2, (top + h - bottom) / 2, escape(yLabel)));
    return sb.append("</svg>\n").toString();
  }

  private static String format(double v) {
    return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : String.format(Locale.ROOT, "%.4f", v);
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
  }

  private static void write(Path file, String text) throws IOException {
    Path target = file.toAbsolutePath();
    if (target.getParent() != null) {
      Files.createDirectories(target.getParent());
    }
    Files.writeString(target, text, StandardCharsets.UTF_8);
  }
}
