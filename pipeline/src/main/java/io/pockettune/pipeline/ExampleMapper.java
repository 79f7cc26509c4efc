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
   * Classification: the text as {@link #defaults()} (put into {@code template} at {@code {text}}
   * when one is given), the label from the event attribute {@code attribute}, whose value must be
   * one of {@code labels} (its index is the label). An event without the attribute maps to an
   * unlabelled example, which classification does not train on; an unknown label is refused.
   */
  static ExampleMapper labelled(String attribute, List<String> labels, String template) {
    return event -> {
      String text = textOf(event);
      if (template != null) {
        text = template.replace("{text}", text);
      }
      Map<String, String> attrs = attrsOf(event);
      String value = attrs == null ? null : attrs.get(attribute);
      if (value == null) {
        return TrainingExample.text(text);
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
