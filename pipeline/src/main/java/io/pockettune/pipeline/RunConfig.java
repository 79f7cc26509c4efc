package io.pockettune.pipeline;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.PerturbationKernel;
import java.util.Locale;

/**
 * The configuration of a training run, as the model store keeps it: the only type that writes or
 * reads the store's run-config text. The store records every change with the step it takes effect
 * at, and a restore replays each step under the config then in force ({@link #replayConfig}).
 *
 * <p>Stores written before this record existed hold free-form JSON with some of these keys (or
 * none); missing values read as the defaults those runs used (Gaussian directions, no decay).
 *
 * @param version      format version ({@link #VERSION}; 0 for a legacy text)
 * @param modelPackage content hash of the model package trained
 * @param objective    the card's objective
 * @param trainable    the card's trainable choice, as text
 * @param eps          perturbation scale
 * @param lr           learning rate
 * @param seed         run seed
 * @param batch        examples per step (count trigger)
 * @param maxTokens    tokens per example
 * @param distribution direction distribution (GAUSSIAN or RADEMACHER)
 * @param weightDecay  decoupled weight decay on rank >= 2 tensors
 * @param estimator    gradient estimator (MEZO or FZOO); written only for FZOO, so a MeZO run's text
 *                     is the one it was before estimators existed
 * @param directions   directions per step; written only when more than 1
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
@JsonIgnoreProperties(ignoreUnknown = true)
record RunConfig(
    @JsonProperty("version") int version,
    @JsonProperty("model_package") String modelPackage,
    @JsonProperty("objective") String objective,
    @JsonProperty("trainable") String trainable,
    @JsonProperty("eps") float eps,
    @JsonProperty("lr") float lr,
    @JsonProperty("seed") long seed,
    @JsonProperty("batch") int batch,
    @JsonProperty("max_tokens") int maxTokens,
    @JsonProperty("distribution") String distribution,
    @JsonProperty("weight_decay") float weightDecay,
    @JsonProperty("estimator") String estimator,
    @JsonProperty("directions") Integer directions) {

  static final int VERSION = 1;
  private static final ObjectMapper JSON = new ObjectMapper();

  /** MeZO with one direction is written without the fields (null): the text runs had before. */
  RunConfig {
    if (estimator != null && estimator.equalsIgnoreCase(MezoConfig.Estimator.MEZO.name())) {
      estimator = null;
    }
    if (directions != null && directions == 1) {
      directions = null;
    }
  }

  /** The config of a run of {@code mezo} on a package. */
  static RunConfig of(ModelPackage pkg, MezoConfig mezo, int batch, int maxTokens) {
    return of(pkg.hash(), pkg.card().objective(), pkg.card().trainable().toString(), mezo, batch, maxTokens);
  }

  static RunConfig of(String packageHash, String objective, String trainable, MezoConfig mezo, int batch, int maxTokens) {
    return new RunConfig(VERSION, packageHash, objective, trainable, mezo.eps(), mezo.learningRate(), mezo.runSeed(),
        batch, maxTokens, mezo.distribution().name(), mezo.weightDecay(), mezo.estimator().name(), mezo.directions());
  }

  /** @return the estimator's name, MEZO when none is recorded */
  String estimatorOrDefault() {
    return estimator == null ? MezoConfig.Estimator.MEZO.name() : estimator;
  }

  /** @return directions per step, 1 when none is recorded */
  int directionsOrDefault() {
    return directions == null ? 1 : directions;
  }

  String toJson() {
    try {
      return JSON.writeValueAsString(this);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("cannot write a run config: " + e.getMessage(), e);
    }
  }

  /** Reads a stored run config; text that is not a JSON object reads as a legacy config with defaults. */
  static RunConfig parse(String text) {
    RunConfig defaults = new RunConfig(0, null, null, null, 1e-3f, 1e-3f, 42L, 16, 128, "GAUSSIAN", 0f, null, null);
    String t = text == null ? "" : text.strip();
    if (!t.startsWith("{")) {
      return defaults;
    }
    try {
      com.fasterxml.jackson.databind.JsonNode n = JSON.readTree(t);
      return new RunConfig(n.path("version").asInt(0), text(n, "model_package"), text(n, "objective"),
          text(n, "trainable"), (float) n.path("eps").asDouble(defaults.eps()), (float) n.path("lr").asDouble(defaults.lr()),
          n.path("seed").asLong(defaults.seed()), n.path("batch").asInt(defaults.batch()),
          n.path("max_tokens").asInt(defaults.maxTokens()), n.path("distribution").asText(defaults.distribution()),
          (float) n.path("weight_decay").asDouble(0), text(n, "estimator"),
          n.hasNonNull("directions") ? n.get("directions").asInt(1) : null);
    } catch (JsonProcessingException e) {
      return defaults;
    }
  }

  private static String text(com.fasterxml.jackson.databind.JsonNode n, String field) {
    return n.hasNonNull(field) ? n.get(field).asText() : null;
  }

  /**
   * The trainer config this run trained with. Replay takes lr and eps from each step record, but
   * the distribution, weight decay, estimator and directions from here.
   */
  MezoConfig mezo() {
    PerturbationKernel.Distribution d;
    try {
      d = PerturbationKernel.Distribution.valueOf(distribution.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("the store's run config names the direction distribution '" + distribution
          + "', which this PocketTune does not know: use the version that trained it", e);
    }
    MezoConfig.Estimator e;
    try {
      e = MezoConfig.Estimator.valueOf(estimatorOrDefault().toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException x) {
      throw new IllegalArgumentException("the store's run config names the gradient estimator '" + estimator
          + "', which this PocketTune does not know: use the version that trained it", x);
    }
    MezoConfig mezo = new MezoConfig(eps, lr, seed).withWeightDecay(weightDecay);
    if (e == MezoConfig.Estimator.FZOO) {
      mezo = mezo.withFzoo(directionsOrDefault());
    } else if (directionsOrDefault() > 1) {
      mezo = mezo.withDirections(directionsOrDefault());
    }
    return mezo.withDistribution(d);
  }

  /** Maps a stored run-config text to the config its steps replay with. */
  static MezoConfig replayConfig(String text) {
    return parse(text).mezo();
  }
}
