package io.pockettune.trainer;

import java.util.regex.Pattern;

/**
 * What trains in a model: a set of its float initializers (lifted to graph inputs), or LoRA
 * adapters injected beside chosen MatMul/Gemm weights (the weights themselves stay frozen).
 *
 * @param kind        how {@code pattern} is used
 * @param pattern     initializer names (full match) that train; for LoRA, weight names or MatMul/Gemm
 *                    node names (full match) whose nodes get adapters, since optimum exports often
 *                    name weights anonymously ({@code onnx::MatMul_787}) while node names keep the
 *                    module path (e.g. {@code .*attention/self/(query|value)/MatMul} for BERT)
 * @param rank        LoRA rank r (LoRA only)
 * @param alpha       LoRA scale numerator: the adapter adds {@code (alpha / r) x A B} (LoRA only)
 * @param description human-readable form, recorded with a run's layout
 */
public record TrainableSelection(Kind kind, Pattern pattern, int rank, float alpha, String description) {

  /** The ways of choosing what trains. */
  public enum Kind {
    /** Float initializers whose names match. */
    INITIALIZERS,
    /** Float initializers of rank 1 (biases and normalization scales and shifts). */
    RANK_ONE,
    /** LoRA adapters beside the matching MatMul/Gemm weights. */
    LORA,
    /**
     * A side network beside the frozen backbone ({@link SideNetwork}): {@code rank} is the width
     * reduction r (side width = hidden / r); {@code pattern} chooses the hidden states it reads
     * (layer-norm outputs whose tensor or node name matches), or every other layer norm when it
     * is {@link #SIDE_DEFAULT_TAPS}.
     */
    SIDE
  }

  /** The side network's default taps: every other layer norm before the last hidden state (one per layer). */
  public static final String SIDE_DEFAULT_TAPS = "every-layer";

  /** LoRA's usual targets: attention query and value projections under common export names. */
  public static final String DEFAULT_LORA_TARGETS = ".*(q_proj|v_proj|query|value|c_attn)\\.weight";

  public TrainableSelection {
    if (kind == Kind.LORA && (rank < 1 || !(alpha > 0))) {
      throw new IllegalArgumentException("LoRA needs a positive rank and alpha, got r=" + rank + " alpha=" + alpha);
    }
  }

  /** Every float initializer of rank at least 1. */
  public static TrainableSelection all() {
    return new TrainableSelection(Kind.INITIALIZERS, Pattern.compile(".*"), 0, 0f, "all");
  }

  /** Initializers whose whole name matches {@code regex}. */
  public static TrainableSelection matching(String regex) {
    return new TrainableSelection(Kind.INITIALIZERS, Pattern.compile(regex), 0, 0f, "matching " + regex);
  }

  /** Biases and normalization parameters: every float initializer of rank 1. */
  public static TrainableSelection biasesAndNorms() {
    return new TrainableSelection(Kind.RANK_ONE, Pattern.compile(".*"), 0, 0f, "biases and norms");
  }

  /** LoRA with rank {@code r} and scale {@code alpha / r} beside weights matching {@code targets}. */
  public static TrainableSelection lora(int r, float alpha, String targets) {
    return new TrainableSelection(Kind.LORA, Pattern.compile(targets), r, alpha,
        "lora r=" + r + " alpha=" + alpha + " on " + targets);
  }

  /**
   * A side network of width hidden / {@code r} reading the hidden states named by {@code taps}
   * (a regex over layer-norm output or node names, or {@link #SIDE_DEFAULT_TAPS}).
   */
  public static TrainableSelection side(int r, String taps) {
    if (r < 1) {
      throw new IllegalArgumentException("a side network needs a positive width reduction r, got " + r);
    }
    String t = taps == null ? SIDE_DEFAULT_TAPS : taps;
    return new TrainableSelection(Kind.SIDE, Pattern.compile(t), r, 1f, "side r=" + r + " on " + t);
  }

  /** A side network of width hidden / 8 reading one hidden state per layer. */
  public static TrainableSelection side() {
    return side(8, SIDE_DEFAULT_TAPS);
  }

  /** @return true for a side network that reads the default taps */
  boolean defaultTaps() {
    return kind == Kind.SIDE && pattern.pattern().equals(SIDE_DEFAULT_TAPS);
  }

  /** LoRA r=8, alpha=16 on attention query/value (the MeZO paper's LoRA setting). */
  public static TrainableSelection lora() {
    return lora(8, 16f, DEFAULT_LORA_TARGETS);
  }

  boolean selects(String initializerName) {
    return pattern.matcher(initializerName).matches();
  }
}
