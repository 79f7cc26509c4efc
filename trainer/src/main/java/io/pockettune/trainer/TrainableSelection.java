package io.pockettune.trainer;

import java.util.regex.Pattern;

/**
 * Which float initializers of a model become trainable graph inputs.
 *
 * @param description human-readable form, recorded with a run's layout
 * @param pattern     initializer names that train (full match)
 */
public record TrainableSelection(String description, Pattern pattern) {

  /** Every float initializer of rank at least 1. */
  public static TrainableSelection all() {
    return new TrainableSelection("all", Pattern.compile(".*"));
  }

  /** Initializers whose whole name matches {@code regex}. */
  public static TrainableSelection matching(String regex) {
    return new TrainableSelection("matching " + regex, Pattern.compile(regex));
  }

  boolean selects(String initializerName) {
    return pattern.matcher(initializerName).matches();
  }
}
