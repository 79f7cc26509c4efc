package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import java.util.SplittableRandom;

/**
 * Builds a GPT-2-style decoder-only transformer as an ONNX model, deterministically from a
 * {@link DecoderLmConfig}. No model hub is reachable on the devices we target, so tests, benchmarks
 * and the demo use models made here; users bring real pretrained models as ONNX files.
 *
 * <p>The graph deliberately looks like a Hugging Face GPT-2 export, so that one rewrite path serves
 * both: inputs {@code input_ids} and {@code attention_mask} (int64, {@code [batch, sequence]}),
 * output {@code logits} ({@code [batch, sequence, vocab]}), weights as float initializers named
 * {@code transformer.wte.weight}, {@code transformer.h.N.attn.c_attn.weight}, ... with GPT-2's
 * {@code [in, out]} layout. The output projection is tied to the token embedding. Initialization
 * follows GPT-2: normal(0, 0.02), residual projections scaled by {@code 1/sqrt(2 * layers)}, layer
 * norms at identity.
 *
 * <p>Attention uses an additive bias: {@code -1e9} above the diagonal (causal) and on padded keys.
 *
 * <p>{@link Signature#WITH_PAST} emits optimum's with-past signature instead, a real KV cache:
 * inputs {@code input_ids}, {@code attention_mask} (covering past and current tokens),
 * {@code position_ids} and {@code past_key_values.N.key/value} ({@code [batch, heads, past,
 * head_dim]}); outputs {@code logits} and {@code present.N.key/value}, the past concatenated with
 * the current tokens' keys and values. Query i (absolute position past + i) attends keys
 * {@code j <= past + i}. The weights are drawn in the same order, so both signatures of one config
 * hold the same weights and, with an empty past and positions 0..n-1, compute the same logits.
 */
public final class DecoderLmBuilder {
  private static final int FLOAT = DataType.FLOAT.getNumber();
  private static final int INT64 = DataType.INT64.getNumber();
  private static final float INIT_STD = 0.02f;
  private static final float MASKED = -1e9f;

  /** The graph's inputs and outputs. */
  public enum Signature {
    /** {@code input_ids}, {@code attention_mask} in; {@code logits} out (a GPT-2 export without cache). */
    PLAIN,
    /** Optimum's with-past signature: positions and a KV cache in, {@code present.*} out as well. */
    WITH_PAST
  }

  private DecoderLmBuilder() {}

  /** @return the serialized ONNX model with the {@link Signature#PLAIN plain} signature */
  public static byte[] build(DecoderLmConfig c) {
    return buildProto(c).toByteArray();
  }

  /** @return the serialized ONNX model with the given signature */
  public static byte[] build(DecoderLmConfig c, Signature signature) {
    return buildProto(c, signature).toByteArray();
  }

  static OnnxMl.ModelProto buildProto(DecoderLmConfig c) {
    return buildProto(c, Signature.PLAIN);
  }

  static OnnxMl.ModelProto buildProto(DecoderLmConfig c, Signature signature) {
    boolean past = signature == Signature.WITH_PAST;
    GraphBuilder g = new GraphBuilder("pockettune_decoder_lm");
    SplittableRandom rng = new SplittableRandom(c.seed());
    int d = c.dModel();
    int hd = d / c.heads();
    int ff = d * c.mlpRatio();
    float residualStd = (float) (INIT_STD / Math.sqrt(2.0 * c.layers()));

    String ids = g.input("input_ids", INT64, "batch", "sequence");
    String mask = g.input("attention_mask", INT64, "batch", past ? "past_sequence + sequence" : "sequence");
    String positionIds = past ? g.input("position_ids", INT64, "batch", "sequence") : null;
    if (past) {
      for (int l = 0; l < c.layers(); l++) {
        g.input("past_key_values." + l + ".key", FLOAT, "batch", (long) c.heads(), "past_sequence", (long) hd);
        g.input("past_key_values." + l + ".value", FLOAT, "batch", (long) c.heads(), "past_sequence", (long) hd);
      }
    }

    String wte = weight(g, rng, "transformer.wte.weight", INIT_STD, c.vocabSize(), d);
    String wpe = weight(g, rng, "transformer.wpe.weight", INIT_STD / 2, c.maxPositions(), d);

    String seqLen = g.node("Gather", "seq_len", new String[] {g.node("Shape", "ids_shape", ids), g.constScalarInt("one", 1)}, "axis", 0L);
    String positions = past ? positionIds
        : g.node("Range", "positions", g.constScalarInt("zero", 0), seqLen, g.constScalarInt("step", 1));
    String x =
        g.node("Add", "embed", g.node("Gather", "tok_embed", wte, ids), g.node("Gather", "pos_embed", wpe, positions));

    String attnBias = past ? attentionBiasWithPast(g, mask, seqLen) : attentionBias(g, mask, seqLen);
    String scale = g.constScalar("attn_scale", (float) (1.0 / Math.sqrt(hd)));
    String headShape = g.constInts("head_shape", 0, 0, c.heads(), hd);
    String mergedShape = g.constInts("merged_shape", 0, 0, d);
    String split = g.constInts("qkv_split", d, d, d);

    for (int l = 0; l < c.layers(); l++) {
      String p = "transformer.h." + l + ".";
      String h = layerNorm(g, p + "ln_1", x, d);
      String qkv = linear(g, rng, p + "attn.c_attn", h, d, 3 * d, INIT_STD);
      String[] parts =
          g.nodeMulti("Split", new String[] {g.fresh("q"), g.fresh("k"), g.fresh("v")}, new String[] {qkv, split}, "axis", 2L);
      String q = g.node("Transpose", "q_heads", new String[] {g.node("Reshape", "q_r", parts[0], headShape)}, "perm", new long[] {0, 2, 1, 3});
      String kT;
      String v;
      if (past) {
        String k = g.node("Transpose", "k_heads", new String[] {g.node("Reshape", "k_r", parts[1], headShape)}, "perm", new long[] {0, 2, 1, 3});
        String vNew = g.node("Transpose", "v_heads", new String[] {g.node("Reshape", "v_r", parts[2], headShape)}, "perm", new long[] {0, 2, 1, 3});
        String kAll = g.nodeNamed("Concat", "present." + l + ".key", new String[] {"past_key_values." + l + ".key", k}, "axis", 2L);
        v = g.nodeNamed("Concat", "present." + l + ".value", new String[] {"past_key_values." + l + ".value", vNew}, "axis", 2L);
        kT = g.node("Transpose", "k_all_t", new String[] {kAll}, "perm", new long[] {0, 1, 3, 2});
      } else {
        kT = g.node("Transpose", "k_heads_t", new String[] {g.node("Reshape", "k_r", parts[1], headShape)}, "perm", new long[] {0, 2, 3, 1});
        v = g.node("Transpose", "v_heads", new String[] {g.node("Reshape", "v_r", parts[2], headShape)}, "perm", new long[] {0, 2, 1, 3});
      }
      String scores = g.node("Add", "scores", g.node("Mul", "scaled", g.node("MatMul", "qk", q, kT), scale), attnBias);
      String probs = g.node("Softmax", "probs", new String[] {scores}, "axis", -1L);
      String ctx = g.node("Transpose", "ctx_t", new String[] {g.node("MatMul", "ctx", probs, v)}, "perm", new long[] {0, 2, 1, 3});
      String merged = g.node("Reshape", "ctx_merged", ctx, mergedShape);
      x = g.node("Add", "resid_attn", x, linear(g, rng, p + "attn.c_proj", merged, d, d, residualStd));

      String h2 = layerNorm(g, p + "ln_2", x, d);
      String up = gelu(g, linear(g, rng, p + "mlp.c_fc", h2, d, ff, INIT_STD));
      x = g.node("Add", "resid_mlp", x, linear(g, rng, p + "mlp.c_proj", up, ff, d, residualStd));
    }
    String out = layerNorm(g, "transformer.ln_f", x, d);
    String wteT = g.node("Transpose", "wte_t", new String[] {wte}, "perm", new long[] {1, 0});
    g.nodeNamed("MatMul", "logits", new String[] {out, wteT});
    g.output("logits", FLOAT, "batch", "sequence", c.vocabSize());
    if (past) {
      for (int l = 0; l < c.layers(); l++) {
        g.output("present." + l + ".key", FLOAT, "batch", (long) c.heads(), "past_sequence + sequence", (long) hd);
        g.output("present." + l + ".value", FLOAT, "batch", (long) c.heads(), "past_sequence + sequence", (long) hd);
      }
    }
    return g.build("pockettune-decoder-lm");
  }

  /**
   * [batch, 1, seq, past + seq] additive bias: query i may see keys j <= past + i (Trilu with
   * diagonal offset past), plus key padding over the whole mask.
   */
  private static String attentionBiasWithPast(GraphBuilder g, String mask, String seqLen) {
    String one = g.constScalar("one_f", 1f);
    String masked = g.constScalar("masked", MASKED);
    String total = g.node("Gather", "total_len", new String[] {g.node("Shape", "mask_shape", mask), g.constScalarInt("one", 1)}, "axis", 0L);
    String pastLen = g.node("Sub", "past_len", total, seqLen);
    String rect = g.node("Concat", "rect_shape", new String[] {
        g.node("Unsqueeze", "seq_1d", seqLen, g.constInts("axis0", 0)),
        g.node("Unsqueeze", "total_1d", total, g.constInts("axis0", 0))}, "axis", 0L);
    String ones = g.node("ConstantOfShape", "ones", new String[] {rect}, "value", GraphBuilder.scalarTensor(1f));
    String lower = g.node("Trilu", "lower", new String[] {ones, pastLen}, "upper", 0L);
    String causal = g.node("Mul", "causal_bias", g.node("Sub", "above_diag", one, lower), masked);
    String keep = g.node("Cast", "mask_f", new String[] {mask}, "to", (long) FLOAT);
    String padBias = g.node("Mul", "pad_bias", g.node("Sub", "padded", one, keep), masked);
    String padBias4 = g.node("Unsqueeze", "pad_bias_4d", padBias, g.constInts("axes12", 1, 2));
    return g.node("Add", "attn_bias", causal, padBias4);
  }

  /** [batch, 1, seq, seq] additive bias: causal plus key padding. */
  private static String attentionBias(GraphBuilder g, String mask, String seqLen) {
    String one = g.constScalar("one_f", 1f);
    String masked = g.constScalar("masked", MASKED);
    String square = g.node("Concat", "square_shape", new String[] {
        g.node("Unsqueeze", "seq_1d", seqLen, g.constInts("axis0", 0)),
        g.node("Unsqueeze", "seq_1d", seqLen, g.constInts("axis0", 0))}, "axis", 0L);
    String ones = g.node("ConstantOfShape", "ones", new String[] {square}, "value", GraphBuilder.scalarTensor(1f));
    String lower = g.node("Trilu", "lower", new String[] {ones}, "upper", 0L);
    String causal = g.node("Mul", "causal_bias", g.node("Sub", "above_diag", one, lower), masked);
    String keep = g.node("Cast", "mask_f", new String[] {mask}, "to", (long) FLOAT);
    String padBias = g.node("Mul", "pad_bias", g.node("Sub", "padded", one, keep), masked);
    String padBias4 = g.node("Unsqueeze", "pad_bias_4d", padBias, g.constInts("axes12", 1, 2));
    return g.node("Add", "attn_bias", causal, padBias4);
  }

  private static String layerNorm(GraphBuilder g, String name, String x, int d) {
    String w = g.initializer(name + ".weight", new long[] {d}, filled(d, 1f));
    String b = g.initializer(name + ".bias", new long[] {d}, new float[d]);
    return g.node("LayerNormalization", name.replace('.', '_'), new String[] {x, w, b}, "axis", -1L, "epsilon", 1e-5f);
  }

  private static String linear(GraphBuilder g, SplittableRandom rng, String name, String x, int in, int out, float std) {
    String w = weight(g, rng, name + ".weight", std, in, out);
    String b = g.initializer(name + ".bias", new long[] {out}, new float[out]);
    return g.node("Add", name.replace('.', '_'), g.node("MatMul", "mm", x, w), b);
  }

  /** GELU, tanh approximation (GPT-2's "gelu_new"), from opset-17 primitives. */
  private static String gelu(GraphBuilder g, String x) {
    String cube = g.node("Mul", "x3", g.node("Mul", "x2", x, x), x);
    String inner = g.node("Add", "gelu_in", x, g.node("Mul", "c3", cube, g.constScalar("k", 0.044715f)));
    String t = g.node("Tanh", "gelu_tanh", g.node("Mul", "gelu_s", inner, g.constScalar("s", (float) Math.sqrt(2 / Math.PI))));
    String half = g.node("Mul", "gelu_half", x, g.constScalar("half", 0.5f));
    return g.node("Mul", "gelu", half, g.node("Add", "gelu_1p", t, g.constScalar("one", 1f)));
  }

  private static String weight(GraphBuilder g, SplittableRandom rng, String name, float std, int rows, int cols) {
    float[] v = new float[rows * cols];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (gaussian(rng) * std);
    }
    return g.initializer(name, new long[] {rows, cols}, v);
  }

  /**
   * Box-Muller over StrictMath: unlike {@code RandomGenerator.nextGaussian}, whose algorithm the JDK
   * may change, this gives the same weights (and so the same base-model hash) on every JDK.
   */
  private static double gaussian(SplittableRandom rng) {
    double u = 1.0 - rng.nextDouble();
    double v = rng.nextDouble();
    return StrictMath.sqrt(-2.0 * StrictMath.log(u)) * StrictMath.cos(2.0 * StrictMath.PI * v);
  }

  private static float[] filled(int n, float value) {
    float[] v = new float[n];
    java.util.Arrays.fill(v, value);
    return v;
  }
}
