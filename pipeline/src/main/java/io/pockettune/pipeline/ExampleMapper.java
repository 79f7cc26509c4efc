package io.pockettune.pipeline;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import org.apache.avro.specific.SpecificRecord;

/**
 * Turns a decoded event into the text a causal language model trains on. A mapper throws
 * {@link IllegalArgumentException} with a reason for an event that cannot train (the reason goes
 * to the dead-letter topic).
 */
@FunctionalInterface
interface ExampleMapper {

  String text(SpecificRecord event);

  /** A message trains on its text; a note on its title and body. */
  static ExampleMapper defaults() {
    return event -> {
      String text;
      if (event instanceof Message m) {
        text = m.getText();
      } else if (event instanceof Note n) {
        text = n.getTitle() + "\n" + n.getBody();
      } else {
        throw new IllegalArgumentException("no mapping for events of type " + event.getSchema().getFullName());
      }
      if (text == null || text.isBlank()) {
        throw new IllegalArgumentException("empty text");
      }
      return text;
    };
  }
}
