package io.pockettune.schemas;

import io.pockettune.events.Message;
import io.pockettune.events.Note;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;
import org.apache.avro.Schema;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;

/** The event types this version of PocketTune generates classes for: the one list to extend. */
final class BuiltInEvents {

  private static final List<Class<? extends SpecificRecord>> TYPES =
      List.of(Message.class, Note.class);

  private BuiltInEvents() {}

  /** @return the current (writer) schema of every built-in event type */
  static List<Schema> schemas() {
    return TYPES.stream().map(BuiltInEvents::schemaOf).toList();
  }

  /**
   * @return the generated class whose schema has this full name (namespace and name), or empty
   *     when the name is not a built-in event type
   */
  static Optional<Class<? extends SpecificRecord>> typeNamed(String fullName) {
    return TYPES.stream().filter(type -> schemaOf(type).getFullName().equals(fullName)).findFirst();
  }

  /** @return the simple names of the built-in types, for error messages */
  static String names() {
    return TYPES.stream().map(Class::getSimpleName).collect(Collectors.joining(", "));
  }

  private static Schema schemaOf(Class<?> type) {
    return SpecificData.get().getSchema(type);
  }
}
