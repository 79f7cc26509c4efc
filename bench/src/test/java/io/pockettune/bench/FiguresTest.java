package io.pockettune.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FiguresTest {

  @Test
  void toString_oneObjectOnOneLineInPutOrder() {
    String line = new Figures().put("steps", 40).put("ratio", 3.5).put("note", "a \"quoted\"\nline")
        .put("sizes", Map.of("steps", 12L)).put("ids", List.of(1, 2)).toString();
    assertEquals("{\"steps\":40,\"ratio\":3.5,\"note\":\"a \\\"quoted\\\"\\nline\",\"sizes\":{\"steps\":12},"
        + "\"ids\":[1,2]}", line);
  }

  @Test
  void toString_nonFiniteNumberIsNull() {
    assertEquals("{\"a\":null,\"b\":null,\"c\":null}",
        new Figures().put("a", Double.NaN).put("b", Float.POSITIVE_INFINITY).put("c", null).toString());
  }
}
