package io.pockettune.pipeline;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import java.util.List;
import java.util.Map;
import org.apache.avro.specific.SpecificRecord;

/**
 * The user-supplied step of the pipeline: turns a decoded event into a {@link TrainingExample}. A
 * mapper throws {@link IllegalArgumentException} with a reason for an event that cannot train (the
 * reason goes to the dead-letter topic).
 */
@FunctionalInterface
interface ExampleMapper {

  /** What one event trains on: a text, and for classification the index of its label word. */
  record TrainingExample(String text, int label) {
    static final int NO_LABEL = -1;

    static TrainingExample text(String text) {
      return new TrainingExample(text, NO_LABEL);
    }

    boolean labelled() {
      return label != NO_LABEL;
    }
  }

  TrainingExample map(SpecificRecord event);

  /** @return the text of the example {@link #map} makes */
  default String text(SpecificRecord event) {
    return map(event).text();
  }

  /** Causal language modelling: a message trains on its text; a note on its title and body. */
  static ExampleMapper defaults() {
    return event -> TrainingExample.text(textOf(event));
  }

  /**
   * Prompt classification: the text as {@link #defaults()}, the label from the event attribute
   * {@code attribute}, which must name one of {@code labels} (its index is the label).
   */
  static ExampleMapper labelled(String attribute, List<String> labels) {
    return event -> {
      String text = textOf(event);
      Map<String, String> attrs = attrsOf(event);
      String value = attrs == null ? null : attrs.get(attribute);
      if (value == null) {
        throw new IllegalArgumentException("no '" + attribute + "' attribute to take the label from");
      }
      int label = labels.indexOf(value);
      if (label < 0) {
        throw new IllegalArgumentException("label '" + value + "' is not one of " + labels);
      }
      return new TrainingExample(text, label);
    };
  }

  private static String textOf(SpecificRecord event) {
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
  }

  private static Map<String, String> attrsOf(SpecificRecord event) {
    if (event instanceof Message m) {
      return m.getAttrs();
    }
    return event instanceof Note n ? n.getAttrs() : null;
  }
}
