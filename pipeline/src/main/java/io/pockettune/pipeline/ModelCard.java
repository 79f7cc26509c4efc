package io.pockettune.pipeline;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.pockettune.trainer.MezoConfig;
import java.util.List;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The typed card of a model package ({@code pockettune-model.json}): what the model is for and
 * how it trains. Jackson reads and writes it; unknown fields are refused, so a misspelt field is
 * named rather than silently ignored. The card is part of the package's content hash: a data
 * directory trained under one card refuses another.
 *
 * @param version        card format version ({@link #VERSION})
 * @param objective      causal-lm, prompt-classification, embedding-classification or scalar-loss
 * @param trainable      what trains
 * @param tokenizer      {@code tokenizer.json} (a Hugging Face tokenizer in the package) or {@code bytes}
 * @param maxTokens      tokens per example, special tokens included
 * @param labelAttribute the event attribute that carries a label (classification objectives)
 * @param labels         the label names, in score order (classification objectives)
 * @param labelPrompts   per label, the text whose embedding initialises the head (embedding-classification)
 * @param pooling        mean or cls over {@code last_hidden_state} (embedding-classification)
 * @param temperature    scores are cosine similarity times this (embedding-classification)
 * @param template       prompt around the event text, with {@code {text}} (prompt-classification)
 * @param labelWords     per label, the word whose first token's logit scores it (prompt-classification)
 * @param lossOutput     the output holding the model's own scalar loss (scalar-loss)
 * @param lr             suggested learning rate
 * @param eps            suggested perturbation scale
 * @param estimator      the gradient estimator, {@code mezo} (when absent) or {@code fzoo}
 * @param directions     FZOO's directions per step N (at least 2; 8 when absent); absent or 1 for MeZO
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
record ModelCard(
    @JsonProperty("version") int version,
    @JsonProperty("objective") String objective,
    @JsonProperty("trainable") Trainable trainable,
    @JsonProperty("tokenizer") String tokenizer,
    @JsonProperty("max_tokens") int maxTokens,
    @JsonProperty("label_attribute") String labelAttribute,
    @JsonProperty("labels") List<String> labels,
    @JsonProperty("label_prompts") List<String> labelPrompts,
    @JsonProperty("pooling") String pooling,
    @JsonProperty("temperature") Float temperature,
    @JsonProperty("template") String template,
    @JsonProperty("label_words") List<String> labelWords,
    @JsonProperty("loss_output") String lossOutput,
    @JsonProperty("lr") float lr,
    @JsonProperty("eps") float eps,
    @JsonProperty("estimator") String estimator,
    @JsonProperty("directions") Integer directions) {

  static final int VERSION = 1;
  static final String CAUSAL_LM = "causal-lm";
  static final String PROMPT_CLASSIFICATION = "prompt-classification";
  static final String EMBEDDING_CLASSIFICATION = "embedding-classification";
  static final String SCALAR_LOSS = "scalar-loss";
  static final List<String> OBJECTIVES = List.of(CAUSAL_LM, PROMPT_CLASSIFICATION, EMBEDDING_CLASSIFICATION, SCALAR_LOSS);
  static final String BYTES = "bytes";
  static final String TOKENIZER_FILE = "tokenizer.json";
  static final String MEZO = "mezo";
  static final String FZOO = "fzoo";
  static final List<String> ESTIMATORS = List.of(MEZO, FZOO);
  /** FZOO's directions per step when the card gives none (the paper's default). */
  static final int FZOO_DEFAULT_DIRECTIONS = 8;

  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
      .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
      .enable(SerializationFeature.INDENT_OUTPUT);

  /**
   * A card that says MeZO explicitly ({@code "estimator": "mezo"}, with no directions or 1) is the
   * same card as one that says nothing: both write without the fields, so their package hashes agree.
   */
  ModelCard {
    if ((estimator == null || estimator.equals(MEZO)) && (directions == null || directions == 1)) {
      estimator = null;
      directions = null;
    }
  }

  /** A card from before estimators were configurable (MeZO). */
  ModelCard(int version, String objective, Trainable trainable, String tokenizer, int maxTokens, String labelAttribute,
      List<String> labels, List<String> labelPrompts, String pooling, Float temperature, String template,
      List<String> labelWords, String lossOutput, float lr, float eps) {
    this(version, objective, trainable, tokenizer, maxTokens, labelAttribute, labels, labelPrompts, pooling, temperature,
        template, labelWords, lossOutput, lr, eps, null, null);
  }

  /**
   * What trains.
   *
   * @param kind     all, patterns, norms, lora or side
   * @param patterns initializer name patterns (regular expressions, whole-name match) for {@code patterns}
   * @param r        LoRA rank; for side, the width reduction (side width = hidden / r; 8 when absent)
   * @param alpha    LoRA alpha (the adapter adds alpha / r times X A B)
   * @param targets  LoRA target weight pattern; for side, the taps: a pattern over layer-norm output or
   *                 node names choosing the hidden states the side network reads (one per layer when absent)
   */
  @JsonInclude(JsonInclude.Include.NON_NULL)
  record Trainable(
      @JsonProperty("kind") String kind,
      @JsonProperty("patterns") List<String> patterns,
      @JsonProperty("r") Integer r,
      @JsonProperty("alpha") Float alpha,
      @JsonProperty("targets") String targets) {
    static final List<String> KINDS = List.of("all", "patterns", "norms", "lora", "side");
    /** The side network's width reduction when none is given. */
    static final int SIDE_DEFAULT_R = 8;

    static Trainable all() {
      return new Trainable("all", null, null, null, null);
    }

    /**
     * Parses the command line's {@code --trainable}: all, norms, lora, lora:R:ALPHA[:TARGETS], side,
     * side:R[:TAPS] or a pattern list.
     */
    static Trainable parse(String s) {
      String t = s.strip();
      if (t.equals("all") || t.equals("norms")) {
        return new Trainable(t, null, null, null, null);
      }
      if (t.equals("side") || t.startsWith("side:")) {
        String[] p = t.split(":", 3);
        int r;
        try {
          r = p.length > 1 ? Integer.parseInt(p[1].strip()) : SIDE_DEFAULT_R;
        } catch (NumberFormatException e) {
          r = 0;
        }
        if (r < 1) {
          throw new IllegalArgumentException("--trainable " + s + " is not side[:R[:TAPS]] with R a whole number of"
              + " at least 1, e.g. side:8");
        }
        String taps = p.length > 2 ? p[2] : null;
        String bad = badTaps(taps);
        if (bad != null) {
          throw new IllegalArgumentException("--trainable " + s + " names the taps " + bad);
        }
        return new Trainable("side", null, r, null, taps);
      }
      if (t.equals("lora") || t.startsWith("lora:")) {
        String[] p = t.split(":", 4);
        try {
          int r = p.length > 1 ? Integer.parseInt(p[1]) : 8;
          float alpha = p.length > 2 ? Float.parseFloat(p[2]) : 16f;
          return new Trainable("lora", null, r, alpha, p.length > 3 ? p[3] : null);
        } catch (NumberFormatException e) {
          throw new IllegalArgumentException("--trainable " + s + " is not lora:R:ALPHA[:TARGETS] with whole R and"
              + " numeric ALPHA, e.g. lora:8:16");
        }
      }
      return new Trainable("patterns", List.of(t.split(",")), null, null, null);
    }

    @Override
    public String toString() {
      return switch (kind) {
        case "patterns" -> "patterns " + patterns;
        case "lora" -> "lora r=" + r + " alpha=" + alpha + (targets == null ? "" : " on " + targets);
        case "side" -> "side r=" + (r == null ? SIDE_DEFAULT_R : r) + (targets == null ? "" : " on " + targets);
        default -> kind;
      };
    }

    /**
     * @return null when {@code taps} is absent or a usable pattern, else what is wrong with it,
     *     naming it ("'(', which is not a valid regular expression (...): ...")
     */
    static String badTaps(String taps) {
      if (taps == null) {
        return null;
      }
      if (taps.isBlank()) {
        return "'" + taps + "', which is empty: leave TAPS out for one hidden state per layer";
      }
      try {
        java.util.regex.Pattern.compile(taps);
        return null;
      } catch (java.util.regex.PatternSyntaxException e) {
        return "'" + taps + "', which is not a valid regular expression (" + e.getDescription() + " at index "
            + e.getIndex() + "): quote it for your shell, or fix the pattern";
      }
    }
  }

  /** The card of the built-in demo decoder: byte tokens, causal LM, every weight trains. */
  static ModelCard demo(int maxTokens) {
    return new ModelCard(VERSION, CAUSAL_LM, Trainable.all(), BYTES, maxTokens, null, null, null, null, null, null,
        null, null, 1e-3f, 1e-3f);
  }

  /** Why a side network cannot train a scalar-loss model, as the start of a sentence. */
  static final String SIDE_NEEDS_TOKENS = "side-tuning needs token inputs (the side network reads the hidden states"
      + " of the tokens), which objective scalar-loss does not give: choose another trainable kind";

  /** @return the gradient estimator the card names (MeZO when it names none) */
  MezoConfig.Estimator estimatorOrDefault() {
    return FZOO.equals(estimator) ? MezoConfig.Estimator.FZOO : MezoConfig.Estimator.MEZO;
  }

  /** @return directions per step: the card's, else 8 for FZOO and 1 for MeZO */
  int directionsOrDefault() {
    return directions != null ? directions
        : estimatorOrDefault() == MezoConfig.Estimator.FZOO ? FZOO_DEFAULT_DIRECTIONS : 1;
  }

  boolean classification() {
    return objective.equals(PROMPT_CLASSIFICATION) || objective.equals(EMBEDDING_CLASSIFICATION);
  }

  /** @return the label attribute, defaulting to {@code label} */
  String labelAttributeOrDefault() {
    return labelAttribute == null ? "label" : labelAttribute;
  }

  String toJson() {
    try {
      return JSON.writeValueAsString(this) + "\n";
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot write a model card: " + e.getMessage(), e);
    }
  }

  /**
   * Parses and checks a card.
   *
   * @param where the card's file, for messages
   * @throws IllegalArgumentException one sentence naming the field and the fix
   */
  static ModelCard parse(String json, String where) {
    try {
      return parseUnchecked(json, where);
    } catch (IllegalArgumentException e) {
      // The messages quote the card's field names and values: keep them one line, whatever the card holds.
      throw new IllegalArgumentException(oneLine(e.getMessage()), e.getCause());
    }
  }

  /** {@code text} with control and line-separator characters written as Java escapes (backslash, u, 4 hex digits). */
  static String oneLine(String text) {
    StringBuilder b = new StringBuilder(text.length());
    for (int i = 0; i < text.length(); i++) {
      char ch = text.charAt(i);
      if (Character.isISOControl(ch) || ch == '\u2028' || ch == '\u2029') {
        b.append(String.format("\\u%04x", (int) ch));
      } else {
        b.append(ch);
      }
    }
    return b.toString();
  }

  private static ModelCard parseUnchecked(String json, String where) {
    ModelCard c;
    try {
      c = JSON.readValue(json, ModelCard.class);
    } catch (JsonMappingException e) {
      String field = e.getPath().stream()
          .map(r -> r.getFieldName() != null ? r.getFieldName() : "[" + r.getIndex() + "]")
          .collect(Collectors.joining("."));
      String what = e instanceof com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException
          ? "has an unknown field '" + field + "'"
          : field.isEmpty() ? "is not a card (" + e.getOriginalMessage() + ")"
          : "has a bad value for '" + field + "' (" + e.getOriginalMessage().replaceAll("\\s+", " ") + ")";
      throw new IllegalArgumentException("the model card " + where + " " + what
          + ": fix it, or write a new one with 'pockettune model init'");
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("the model card " + where + " is not JSON (" + e.getOriginalMessage()
          + "): fix it, or write a new one with 'pockettune model init'");
    }
    c.check(where);
    return c;
  }

  private void check(String where) {
    String fix = ": fix the card " + where;
    if (version != VERSION) {
      throw new IllegalArgumentException("the model card " + where + " has version " + version + ", but this PocketTune"
          + " reads version " + VERSION + ": write it again with 'pockettune model init'");
    }
    if (objective == null || !OBJECTIVES.contains(objective)) {
      throw new IllegalArgumentException("field 'objective' is " + (objective == null ? "missing" : "'" + objective + "'")
          + ", not one of " + OBJECTIVES + fix);
    }
    if (trainable == null || trainable.kind() == null || !Trainable.KINDS.contains(trainable.kind())) {
      throw new IllegalArgumentException("field 'trainable.kind' must be one of " + Trainable.KINDS + fix);
    }
    if (trainable.kind().equals("patterns") && (trainable.patterns() == null || trainable.patterns().isEmpty())) {
      throw new IllegalArgumentException("field 'trainable.patterns' must list at least one name pattern" + fix);
    }
    if (trainable.kind().equals("side")) {
      if (trainable.r() != null && trainable.r() < 1) {
        throw new IllegalArgumentException("field 'trainable.r' (the side network's width reduction) must be a whole"
            + " number of at least 1, not " + trainable.r() + fix);
      }
      if (trainable.patterns() != null || trainable.alpha() != null) {
        throw new IllegalArgumentException("fields 'trainable.patterns' and 'trainable.alpha' do not apply to a side"
            + " network (it takes 'r' and 'targets')" + fix);
      }
      String bad = Trainable.badTaps(trainable.targets());
      if (bad != null) {
        throw new IllegalArgumentException("field 'trainable.targets' (the side network's taps) is " + bad + fix);
      }
      if (objective.equals(SCALAR_LOSS)) {
        throw new IllegalArgumentException(SIDE_NEEDS_TOKENS + fix);
      }
    }
    if (estimator != null && !ESTIMATORS.contains(estimator)) {
      throw new IllegalArgumentException("field 'estimator' is '" + estimator + "', not one of " + ESTIMATORS + fix);
    }
    if (FZOO.equals(estimator) && directions != null && directions < 2) {
      throw new IllegalArgumentException("field 'directions' must be at least 2 for fzoo (the spread of their losses"
          + " scales each step), not " + directions + fix);
    }
    if (!FZOO.equals(estimator) && directions != null) {
      throw new IllegalArgumentException("field 'directions' is " + directions + ", but mezo takes one direction per"
          + " step: remove it, or set 'estimator' to fzoo" + fix);
    }
    if (tokenizer == null || tokenizer.isBlank()) {
      throw new IllegalArgumentException("field 'tokenizer' is missing (tokenizer.json or bytes)" + fix);
    }
    if (maxTokens < 2) {
      throw new IllegalArgumentException("field 'max_tokens' must be at least 2, not " + maxTokens + fix);
    }
    if (!(lr >= 0) || !(eps > 0)) {
      throw new IllegalArgumentException("fields 'lr' (not negative) and 'eps' (positive) are required" + fix);
    }
    if (classification() && (labels == null || labels.size() < 2)) {
      throw new IllegalArgumentException("field 'labels' must name at least two labels for " + objective + fix);
    }
    switch (objective) {
      case EMBEDDING_CLASSIFICATION -> {
        if (labelPrompts == null || labelPrompts.size() != labels.size()) {
          throw new IllegalArgumentException("field 'label_prompts' must give one prompt per label (" + labels.size()
              + ")" + fix);
        }
        if (pooling == null || !List.of("mean", "cls").contains(pooling.toLowerCase(Locale.ROOT))) {
          throw new IllegalArgumentException("field 'pooling' must be mean or cls" + fix);
        }
        if (temperature == null || !(temperature > 0)) {
          throw new IllegalArgumentException("field 'temperature' must be positive" + fix);
        }
      }
      case PROMPT_CLASSIFICATION -> {
        if (labelWords == null || labelWords.size() != labels.size()) {
          throw new IllegalArgumentException("field 'label_words' must give one word per label (" + labels.size() + ")"
              + fix);
        }
        if (template == null || !template.contains("{text}")) {
          throw new IllegalArgumentException("field 'template' must contain {text}" + fix);
        }
      }
      case SCALAR_LOSS -> {
        if (lossOutput == null || lossOutput.isBlank()) {
          throw new IllegalArgumentException("field 'loss_output' must name the output that holds the loss" + fix);
        }
      }
      default -> { }
    }
  }
}
