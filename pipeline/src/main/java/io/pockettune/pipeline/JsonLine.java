package io.pockettune.pipeline;

import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes one JSON object on one line, for the {@code --json} contract: the last line of standard
 * output is a machine-readable summary. Values are numbers, booleans, strings, null, nested
 * {@link JsonLine}s, maps and collections of those. The runtime reports figures in this form (the
 * command line prints them as they are). Not thread-safe.
 */
public final class JsonLine {
  private final Map<String, Object> fields = new LinkedHashMap<>();

  /** @return a JSON object with the entries of {@code map}, in its order */
  public static JsonLine of(Map<String, ?> map) {
    JsonLine j = new JsonLine();
    j.fields.putAll(map);
    return j;
  }

  /** Sets a field (replacing one of the same name); @return this */
  public JsonLine put(String key, Object value) {
    fields.put(key, value);
    return this;
  }

  /** @return the value of a field, or null */
  public Object get(String key) {
    return fields.get(key);
  }

  /** @return the fields, in order (unmodifiable) */
  public Map<String, Object> fields() {
    return java.util.Collections.unmodifiableMap(fields);
  }

  @Override
  public String toString() {
    StringBuilder sb = new StringBuilder();
    write(sb, fields);
    return sb.toString();
  }

  private static void write(StringBuilder sb, Object v) {
    if (v == null) {
      sb.append("null");
    } else if (v instanceof JsonLine j) {
      write(sb, j.fields);
    } else if (v instanceof Map<?, ?> m) {
      sb.append('{');
      boolean first = true;
      for (Map.Entry<?, ?> e : m.entrySet()) {
        if (!first) {
          sb.append(',');
        }
        first = false;
        string(sb, String.valueOf(e.getKey()));
        sb.append(':');
        write(sb, e.getValue());
      }
      sb.append('}');
    } else if (v instanceof Collection<?> c) {
      sb.append('[');
      boolean first = true;
      for (Object o : c) {
        if (!first) {
          sb.append(',');
        }
        first = false;
        write(sb, o);
      }
      sb.append(']');
    } else if (v instanceof Double d) {
      sb.append(Double.isFinite(d) ? d.toString() : "null");
    } else if (v instanceof Float f) {
      sb.append(Float.isFinite(f) ? f.toString() : "null");
    } else if (v instanceof Number || v instanceof Boolean) {
      sb.append(v);
    } else {
      string(sb, v.toString());
    }
  }

  private static void string(StringBuilder sb, String s) {
    sb.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        default -> {
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
    sb.append('"');
  }
}
