package io.pockettune.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The figures of one benchmark run, in the order they are put, written by {@link #toString()} as
 * one JSON object on one line: the {@code --json} contract (the last line of standard output).
 * A value that is not a finite number is written as null. Not thread-safe.
 */
final class Figures {
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Map<String, Object> values = new LinkedHashMap<>();

  /** @return this, for chaining */
  Figures put(String key, Object value) {
    boolean notFinite = (value instanceof Double d && !Double.isFinite(d))
        || (value instanceof Float f && !Float.isFinite(f));
    values.put(key, notFinite ? null : value);
    return this;
  }

  @Override
  public String toString() {
    try {
      return JSON.writeValueAsString(values);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("figures that are not JSON values: " + values.keySet(), e);
    }
  }
}
