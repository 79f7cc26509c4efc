package io.pockettune.pipeline.cli;

import io.pockettune.store.SourcePartition;
import java.util.Map;
import java.util.StringJoiner;

/** How the commands print source offsets. */
final class Offsets {
  private Offsets() {}

  static String text(Map<SourcePartition, Long> offsets) {
    if (offsets.isEmpty()) {
      return "(none: the source starts from the beginning)";
    }
    StringJoiner j = new StringJoiner(", ");
    offsets.forEach((p, o) -> j.add(p + "=" + o));
    return j.toString();
  }
}
