package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Side-tuning: a small network beside the frozen backbone, which reads the backbone's hidden
 * states and is never read by it (the structure of Ladder Side-Tuning, Sung et al. 2022, with
 * MobiLLM's parallel adapters as blocks), trained on the device by zeroth-order steps.
 *
 * <h2>The network</h2>
 * Backbone width d, side width w = d / r. The taps are K hidden states of the backbone (by default
 * one per layer: every other layer-norm output before the last hidden state, which for a pre-norm
 * decoder is each block's first norm, for a post-norm encoder the embeddings' norm and each layer's
 * output norm but the last). Side block i reads tap i:
 *
 * <pre>
 *   x_i = tap_i Down_i + b_i                               down-projection, [d, w]
 *   s   = x_0                          (i = 0)
 *   s   = sigmoid(gate_i) x_i + (1 - sigmoid(gate_i)) s     (i > 0, a learnable scalar gate)
 *   s   = s + gelu(LN_i(s) Fc_i + c_i) Proj_i + p_i          a position-wise residual adapter, [w, w]
 *   adapted = hidden + s Up + u                             up-projection into the frozen head, [w, d]
 * </pre>
 *
 * Up and u start at zero, so at step 0 the adapted model computes the base model's outputs. The
 * head is the model's own: for a causal LM its output projection ({@code logits = hidden W [+ b]}),
 * for prompt classification only the label words' columns of W, for an embedding classifier the
 * pooling and the label-prompt similarities. Every block is position-wise, so an exported side
 * network works with the graph's KV cache unchanged.
 *
 * <h2>Two sessions, one backbone pass</h2>
 * The backbone session is the user's graph with the taps, the last hidden state and the head's
 * weight as outputs (the head itself pruned). The side session takes those, plus all trainable
 * values as ONE input {@code theta} of shape {@code [variants, P]}: each row a full parameter
 * vector, each tensor a column range of it (sliced inside the graph). So one backbone pass serves
 * any number of parameter variants (MeZO's +eps and -eps, FZOO's N + 1), evaluated in one run of
 * the side session over a batch {@code variants} times as large, and the loss comes out per
 * variant, {@code [variants]}. With nothing trainable inside the backbone, the backbone's work is
 * truly shared, which LoRA cannot do.
 */
final class SideNetwork {
  static final String THETA = "pockettune.side.theta";
  static final String HIDDEN = "pockettune.hidden";
  static final String HEAD_WEIGHT = "pockettune.head_weight";
  static final String HEAD_BIAS = "pockettune.head_bias";
  private static final String TAP = "pockettune.tap.";
  private static final int FLOAT = DataType.FLOAT.getNumber();
  private static final int INT64 = DataType.INT64.getNumber();

  private SideNetwork() {}

  /**
   * Where the side network attaches to a graph.
   *
   * @param taps        names of the hidden states the blocks read, in order
   * @param hidden      the last hidden state, which the head reads
   * @param headWeight  the head's weight W ({@code logits = hidden W}), null for an encoder
   * @param headBias    the head's bias, or null
   * @param headOutput  the output of the head's MatMul, null for an encoder
   * @param width       d
   * @param sideWidth   w
   */
  record Plan(List<String> taps, String hidden, String headWeight, String headBias, String headOutput, int width,
      int sideWidth) {
    int blocks() {
      return taps.size();
    }

    String tapOutput(int i) {
      return TAP + i;
    }
  }

  /** A layer norm found in a graph: its output, its node's name and its width. */
  record Norm(String output, String node, int width) {}

  /**
   * Decides where the side network attaches.
   *
   * @throws ModelException when the graph has no head or hidden states the side network can use
   */
  static Plan plan(GraphProto graph, Objective objective, TrainableSelection selection) {
    if (objective instanceof Objective.ScalarLoss) {
      throw new ModelException("side-tuning reads a model's hidden states and its head, which a model that computes its own loss does not expose: choose all, norms or lora");
    }
    return plan(graph, objective instanceof Objective.EmbeddingClassification, selection);
  }

  /** Like {@link #plan(GraphProto, Objective, TrainableSelection)}: an encoder's head pools last_hidden_state, a decoder's reads logits. */
  static Plan plan(GraphProto graph, boolean encoder, TrainableSelection selection) {
    Map<String, NodeProto> producers = producers(graph);
    String hidden;
    String weight = null;
    String bias = null;
    String headOutput = null;
    if (encoder) {
      hidden = "last_hidden_state";
    } else {
      NodeProto head = producers.get("logits");
      if (head != null && head.getOpType().equals("Add")) {
        for (int k = 0; k < 2 && headOutput == null; k++) {
          NodeProto mm = producers.get(head.getInput(k));
          if (mm != null && mm.getOpType().equals("MatMul")) {
            headOutput = mm.getOutput(0);
            bias = head.getInput(1 - k);
            head = mm;
          }
        }
      }
      if (head == null || !head.getOpType().equals("MatMul")) {
        throw new ModelException("side-tuning needs logits = MatMul(hidden, W) (optionally + bias), but this graph's logits come from "
            + (head == null ? "no node" : "a " + head.getOpType() + " node") + ": choose all, norms or lora");
      }
      if (headOutput == null) {
        headOutput = head.getOutput(0);
      }
      hidden = head.getInput(0);
      weight = head.getInput(1);
    }
    List<Norm> norms = layerNorms(graph);
    int width = -1;
    for (Norm n : norms) {
      if (n.output().equals(hidden)) {
        width = n.width();
      }
    }
    if (width < 0) {
      TensorProto table = ModelRewriter.tokenEmbedding(graph);
      if (table == null) {
        throw new ModelException("side-tuning cannot tell the width of the hidden state " + hidden
            + " (it is not a layer norm's output and the graph has no token-embedding table): choose all, norms or lora");
      }
      width = (int) table.getDims(1);
    }
    List<Norm> candidates = new ArrayList<>();
    for (Norm n : norms) {
      if (n.width() == width && !n.output().equals(hidden)) {
        candidates.add(n);
      }
    }
    List<String> taps = new ArrayList<>();
    for (int i = 0; i < candidates.size(); i++) {
      Norm n = candidates.get(i);
      boolean chosen = selection.defaultTaps() ? i % 2 == 0
          : selection.pattern().matcher(n.output()).matches() || selection.pattern().matcher(n.node()).matches();
      if (chosen) {
        taps.add(n.output());
      }
    }
    if (taps.isEmpty()) {
      throw new ModelException(candidates.isEmpty()
          ? "side-tuning reads the backbone's layer-norm outputs, and this graph has none of width " + width
              + " besides the last hidden state: choose all, norms or lora"
          : "no layer norm's output or node name matches " + selection.pattern().pattern()
              + ": name hidden states such as " + candidates.get(0).output() + " (side:R:TAPS), or leave TAPS out for one per layer");
    }
    int w = Math.max(1, width / selection.rank());
    return new Plan(List.copyOf(taps), hidden, weight, bias, headOutput, width, w);
  }

  private static Map<String, NodeProto> producers(GraphProto graph) {
    Map<String, NodeProto> producers = new HashMap<>();
    for (NodeProto n : graph.getNodeList()) {
      n.getOutputList().forEach(o -> producers.put(o, n));
    }
    return producers;
  }

  /**
   * The graph's layer norms in graph order: LayerNormalization (and ONNX Runtime's fused forms),
   * and the decomposed form older exports use, {@code Add(Mul(Div(Sub(x, ReduceMean(x)), ...),
   * gamma), beta)}. The width is gamma's length.
   */
  static List<Norm> layerNorms(GraphProto graph) {
    Map<String, TensorProto> inits = new HashMap<>();
    graph.getInitializerList().forEach(t -> inits.put(t.getName(), t));
    Map<String, NodeProto> producers = producers(graph);
    List<Norm> out = new ArrayList<>();
    for (NodeProto n : graph.getNodeList()) {
      String op = n.getOpType();
      if ((op.equals("LayerNormalization") || op.equals("SkipLayerNormalization")) && n.getInputCount() > 1) {
        TensorProto scale = inits.get(n.getInput(op.equals("LayerNormalization") ? 1 : 2));
        if (scale != null && scale.getDimsCount() == 1) {
          out.add(new Norm(n.getOutput(0), n.getName(), (int) scale.getDims(0)));
        }
        continue;
      }
      if (!op.equals("Add") || n.getInputCount() != 2) {
        continue;
      }
      for (int k = 0; k < 2; k++) {
        NodeProto mul = producers.get(n.getInput(k));
        if (mul == null || !mul.getOpType().equals("Mul") || !inits.containsKey(n.getInput(1 - k))) {
          continue;
        }
        TensorProto gamma = null;
        NodeProto div = null;
        for (int j = 0; j < 2; j++) {
          NodeProto p = producers.get(mul.getInput(j));
          if (p != null && p.getOpType().equals("Div") && inits.containsKey(mul.getInput(1 - j))) {
            div = p;
            gamma = inits.get(mul.getInput(1 - j));
          }
        }
        if (div == null || gamma.getDimsCount() != 1) {
          continue;
        }
        NodeProto sub = producers.get(div.getInput(0));
        NodeProto mean = sub == null || !sub.getOpType().equals("Sub") ? null : producers.get(sub.getInput(1));
        if (mean != null && mean.getOpType().equals("ReduceMean")) {
          out.add(new Norm(n.getOutput(0), n.getName(), (int) gamma.getDims(0)));
          break;
        }
      }
    }
    return out;
  }

  /**
   * The side network's tensors with their initial values, in the order of the parameter buffer.
   * Gaussian weights are seeded by their names, so the same plan always starts from the same bits.
   */
  static List<ModelRewriter.LiftedTensor> initialTensors(Plan p) {
    int d = p.width();
    int w = p.sideWidth();
    List<ModelRewriter.LiftedTensor> t = new ArrayList<>();
    for (int i = 0; i < p.blocks(); i++) {
      String b = "side." + i + ".";
      t.add(new ModelRewriter.LiftedTensor(b + "down", new long[] {d, w}, ModelRewriter.loraA(b + "down", d, w)));
      t.add(new ModelRewriter.LiftedTensor(b + "down_bias", new long[] {w}, new float[w]));
      if (i > 0) {
        t.add(new ModelRewriter.LiftedTensor(b + "gate", new long[] {1}, new float[1]));
      }
      float[] ones = new float[w];
      java.util.Arrays.fill(ones, 1f);
      t.add(new ModelRewriter.LiftedTensor(b + "norm_scale", new long[] {w}, ones));
      t.add(new ModelRewriter.LiftedTensor(b + "norm_bias", new long[] {w}, new float[w]));
      t.add(new ModelRewriter.LiftedTensor(b + "fc", new long[] {w, w}, ModelRewriter.loraA(b + "fc", w, w)));
      t.add(new ModelRewriter.LiftedTensor(b + "fc_bias", new long[] {w}, new float[w]));
      t.add(new ModelRewriter.LiftedTensor(b + "proj", new long[] {w, w}, ModelRewriter.loraA(b + "proj", w, w)));
      t.add(new ModelRewriter.LiftedTensor(b + "proj_bias", new long[] {w}, new float[w]));
    }
    t.add(new ModelRewriter.LiftedTensor("side.up", new long[] {w, d}, new float[w * d]));
    t.add(new ModelRewriter.LiftedTensor("side.up_bias", new long[] {d}, new float[d]));
    return t;
  }

  /**
   * The backbone session's graph: {@code fed} (the user's graph with its standard inputs fed) with
   * outputs {@code pockettune.tap.i}, {@link #HIDDEN} and, for a causal LM, {@link #HEAD_WEIGHT}
   * (and {@link #HEAD_BIAS}); the head and everything else no output needs is pruned.
   */
  static ModelProto backbone(ModelProto fed, Plan p) {
    GraphProto.Builder graph = fed.getGraph().toBuilder().clearOutput();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_backbone/", GraphBuilder.opsetOf(fed));
    for (int i = 0; i < p.blocks(); i++) {
      g.nodeNamed("Identity", p.tapOutput(i), new String[] {p.taps().get(i)});
      g.output(p.tapOutput(i), FLOAT, "batch", "sequence", (long) p.width());
    }
    g.nodeNamed("Identity", HIDDEN, new String[] {p.hidden()});
    g.output(HIDDEN, FLOAT, "batch", "sequence", (long) p.width());
    if (p.headWeight() != null) {
      g.nodeNamed("Identity", HEAD_WEIGHT, new String[] {p.headWeight()});
      graph.addOutput(untyped(HEAD_WEIGHT));
      if (p.headBias() != null) {
        g.nodeNamed("Identity", HEAD_BIAS, new String[] {p.headBias()});
        graph.addOutput(untyped(HEAD_BIAS));
      }
    }
    return ModelRewriter.prune(fed.toBuilder().setGraph(graph).build());
  }

  /** A float output whose shape is left to the graph (the head's weight, whatever its layout). */
  private static ValueInfoProto untyped(String name) {
    return ValueInfoProto.newBuilder().setName(name)
        .setType(TypeProto.newBuilder().setTensorType(TypeProto.Tensor.newBuilder().setElemType(FLOAT))).build();
  }

  /**
   * The side session's graph for {@code objective}: inputs the taps, {@link #HIDDEN}, {@link #THETA}
   * {@code [variants, P]}, the head's weight (causal and prompt objectives), the tokens it needs;
   * outputs {@code loss} {@code [variants]}, {@code token_count} (a scalar: every variant sees the
   * same tokens), {@code label_scores} {@code [variants, batch, labels]} and, for an embedding
   * classifier, {@code pooled_embedding} {@code [variants, batch, d]}.
   *
   * @param layout the parameter buffer's tensors; an embedding classifier's head is the last
   * @param total  the buffer's length P
   */
  static ModelProto trainingGraph(Plan p, Objective objective, List<ParameterSet.Tensor> layout, int total) {
    GraphBuilder g = new GraphBuilder("pockettune-side");
    String[] taps = new String[p.blocks()];
    for (int i = 0; i < taps.length; i++) {
      taps[i] = g.input(p.tapOutput(i), FLOAT, "batch", "sequence", (long) p.width());
    }
    g.input(HIDDEN, FLOAT, "batch", "sequence", (long) p.width());
    g.input(THETA, FLOAT, "variants", (long) total);
    String adapted = adapted(g, p, layout, THETA, taps, HIDDEN);
    String variants = g.node("Slice", "variants", g.node("Shape", "theta_shape", THETA), g.constInts("v0", 0), g.constInts("v1", 1));
    if (objective instanceof Objective.CausalLm) {
      g.input("input_ids", INT64, "batch", "sequence");
      g.input("attention_mask", INT64, "batch", "sequence");
      causalLoss(g, p, headLogits(g, p, adapted, null), variants);
      return g.build("pockettune-side");
    }
    if (objective instanceof Objective.PromptClassification c) {
      g.input(ModelRewriter.ANSWER_POSITION, INT64, "batch");
      g.input(ModelRewriter.LABEL, INT64, "batch");
      long[] labels = c.labelTokens();
      String logits = headLogits(g, p, adapted, labels);
      String k = g.constInts("k", labels.length);
      String position = g.node("Reshape", "position", ModelRewriter.ANSWER_POSITION, g.constInts("pos_shape", 1, -1, 1, 1));
      String index = g.node("Expand", "index", position,
          g.node("Concat", "index_shape", new String[] {variants, g.constInts("ones", 1, 1), k}, "axis", 0L));
      String at = g.node("GatherElements", "at_answer", new String[] {logits, index}, "axis", 2L);
      g.nodeNamed("Identity", ModelRewriter.LABEL_SCORES, new String[] {g.squeeze("scores", at, 2)});
      labelLoss(g, variants, labels.length);
      return g.build("pockettune-side");
    }
    Objective.EmbeddingClassification e = (Objective.EmbeddingClassification) objective;
    g.input("attention_mask", INT64, "batch", "sequence");
    g.input(ModelRewriter.LABEL, INT64, "batch");
    ParameterSet.Tensor head = layout.get(layout.size() - 1);
    String pooled;
    if (e.pooling() == Objective.Pooling.CLS) {
      pooled = g.node("Gather", "cls", new String[] {adapted, g.constScalarInt("first", 0)}, "axis", 2L);
    } else {
      String maskF = g.node("Cast", "mask_f", new String[] {"attention_mask"}, "to", (long) FLOAT);
      String masked = g.node("Mul", "masked", adapted, g.unsqueeze("mask_4d", maskF, 0, 3));
      String sum = g.reduceSum("sum", masked, false, 2);
      String count = g.node("Max", "count", g.reduceSum("real", maskF, true, 1), g.constScalar("one", 1f));
      pooled = g.node("Div", "mean", sum, g.unsqueeze("count_3d", count, 0));
    }
    g.nodeNamed("Identity", ModelRewriter.POOLED, new String[] {pooled});
    String rows = ModelRewriter.normalize(g, "rows_n", ModelRewriter.POOLED, -1);
    String heads = ModelRewriter.normalize(g, "head_n", parameter(g, head, THETA), -1);
    String cos = g.node("MatMul", "cos", rows, g.node("Transpose", "head_t", new String[] {heads}, "perm", new long[] {0, 2, 1}));
    g.nodeNamed("Mul", ModelRewriter.LABEL_SCORES, new String[] {cos, g.constScalar("temperature", e.temperature())});
    labelLoss(g, variants, (int) head.dims()[0]);
    g.output(ModelRewriter.POOLED, FLOAT, "variants", "batch", (long) p.width());
    return g.build("pockettune-side");
  }

  /** [variants, batch, sequence, V] (or only the label words' columns): the frozen head over the adapted state. */
  private static String headLogits(GraphBuilder g, Plan p, String adapted, long[] labelTokens) {
    g.graph().addInput(untyped(HEAD_WEIGHT));
    String w = HEAD_WEIGHT;
    String b = null;
    if (p.headBias() != null) {
      g.graph().addInput(untyped(HEAD_BIAS));
      b = HEAD_BIAS;
    }
    if (labelTokens != null) {
      String tokens = g.constInts("label_tokens", labelTokens);
      w = g.node("Gather", "label_weight", new String[] {w, tokens}, "axis", 1L);
      b = b == null ? null : g.node("Gather", "label_bias", new String[] {b, tokens}, "axis", 0L);
    }
    String logits = g.node("MatMul", "logits", adapted, w);
    return b == null ? logits : g.node("Add", "logits_b", logits, b);
  }

  /** Per variant, the mean shifted cross-entropy over real target tokens; the count of targets. */
  private static void causalLoss(GraphBuilder g, Plan p, String logits, String variants) {
    String zero = g.constInts("zero", 0);
    String stop = g.constInts("stop", -1);
    String start = g.constInts("start", 1);
    String end = g.constInts("end", Long.MAX_VALUE);
    String predicting = g.node("Slice", "pred_logits", logits, zero, stop, g.constInts("axis2", 2));
    String axis1 = g.constInts("axis1", 1);
    String targets = g.node("Slice", "targets", "input_ids", start, end, axis1);
    String maskF = g.node("Cast", "mask_f", new String[] {"attention_mask"}, "to", (long) FLOAT);
    String weights = g.node("Slice", "target_weights", maskF, start, end, axis1);
    String logProbs = g.node("LogSoftmax", "log_probs", new String[] {predicting}, "axis", -1L);
    String index = g.node("Expand", "targets_4d", g.unsqueeze("targets_u", targets, 0, 3),
        g.node("Concat", "target_shape", new String[] {variants, g.constInts("ones3", 1, 1, 1)}, "axis", 0L));
    String picked = g.node("GatherElements", "picked", new String[] {logProbs, index}, "axis", 3L);
    String nll = g.node("Neg", "nll", g.squeeze("picked_3d", picked, 3));
    String total = g.reduceSum("nll_sum", g.node("Mul", "nll_w", nll, weights), false, 1, 2);
    g.nodeNamed("Identity", ModelRewriter.TOKEN_COUNT, new String[] {g.reduceSum("targets_n", weights, false)});
    g.nodeNamed("Div", ModelRewriter.LOSS, new String[] {total, g.node("Max", "denominator", ModelRewriter.TOKEN_COUNT, g.constScalar("one", 1f))});
    g.output(ModelRewriter.LOSS, FLOAT, "variants");
    g.output(ModelRewriter.TOKEN_COUNT, FLOAT);
  }

  /** Per variant, the mean over rows of -log softmax(label_scores)[label]; the count of rows. */
  private static void labelLoss(GraphBuilder g, String variants, int labels) {
    String logProbs = g.node("LogSoftmax", "label_log_probs", new String[] {ModelRewriter.LABEL_SCORES}, "axis", 2L);
    String index = g.node("Expand", "label_3d", g.unsqueeze("label_u", ModelRewriter.LABEL, 0, 2),
        g.node("Concat", "label_shape", new String[] {variants, g.constInts("ones2", 1, 1)}, "axis", 0L));
    String picked = g.node("GatherElements", "label_picked", new String[] {logProbs, index}, "axis", 2L);
    String total = g.reduceSum("label_nll", g.node("Neg", "label_neg", picked), false, 1, 2);
    String rows = g.node("Cast", "rows", new String[] {g.squeeze("rows_1", g.node("Shape", "label_n", ModelRewriter.LABEL), 0)},
        "to", (long) FLOAT);
    g.nodeNamed("Identity", ModelRewriter.TOKEN_COUNT, new String[] {rows});
    g.nodeNamed("Div", ModelRewriter.LOSS, new String[] {total, rows});
    g.output(ModelRewriter.LOSS, FLOAT, "variants");
    g.output(ModelRewriter.TOKEN_COUNT, FLOAT);
    g.output(ModelRewriter.LABEL_SCORES, FLOAT, "variants", "batch", (long) labels);
  }

  /**
   * Emits the side network: the adapted hidden state {@code [variants, batch, sequence, d]} from
   * the taps and the hidden state ({@code [batch, sequence, d]}) and {@code theta}
   * ({@code [variants, P]}).
   */
  static String adapted(GraphBuilder g, Plan p, List<ParameterSet.Tensor> layout, String theta, String[] taps, String hidden) {
    Map<String, ParameterSet.Tensor> byName = new HashMap<>();
    layout.forEach(t -> byName.put(t.name(), t));
    float invW = 1f / p.sideWidth();
    String s = null;
    for (int i = 0; i < p.blocks(); i++) {
      String b = "side." + i + ".";
      String tap = g.unsqueeze("tap_" + i, taps[i], 0);
      String x = g.node("Add", "down_" + i, g.node("MatMul", "down_mm_" + i, tap, parameter(g, byName.get(b + "down"), theta)),
          parameter(g, byName.get(b + "down_bias"), theta));
      if (s == null) {
        s = x;
      } else {
        String gate = g.node("Sigmoid", "gate_" + i, parameter(g, byName.get(b + "gate"), theta));
        String keep = g.node("Sub", "keep_" + i, g.constScalar("one_" + i, 1f), gate);
        s = g.node("Add", "mix_" + i, g.node("Mul", "gated_" + i, gate, x), g.node("Mul", "kept_" + i, keep, s));
      }
      String mean = g.node("Mul", "mean_" + i, g.reduceSum("sum_" + i, s, true, -1), g.constScalar("inv_w_" + i, invW));
      String centred = g.node("Sub", "centred_" + i, s, mean);
      String variance = g.node("Mul", "var_" + i, g.reduceSum("sq_sum_" + i, g.node("Mul", "sq_" + i, centred, centred), true, -1),
          g.constScalar("inv_w2_" + i, invW));
      String normed = g.node("Div", "normed_" + i, centred,
          g.node("Sqrt", "std_" + i, g.node("Add", "var_eps_" + i, variance, g.constScalar("eps_" + i, 1e-5f))));
      String ln = g.node("Add", "ln_" + i, g.node("Mul", "ln_scaled_" + i, normed, parameter(g, byName.get(b + "norm_scale"), theta)),
          parameter(g, byName.get(b + "norm_bias"), theta));
      String fc = g.node("Add", "fc_" + i, g.node("MatMul", "fc_mm_" + i, ln, parameter(g, byName.get(b + "fc"), theta)),
          parameter(g, byName.get(b + "fc_bias"), theta));
      String proj = g.node("Add", "proj_" + i, g.node("MatMul", "proj_mm_" + i, gelu(g, "gelu_" + i, fc),
          parameter(g, byName.get(b + "proj"), theta)), parameter(g, byName.get(b + "proj_bias"), theta));
      s = g.node("Add", "side_" + i, s, proj);
    }
    String up = g.node("Add", "up", g.node("MatMul", "up_mm", s, parameter(g, byName.get("side.up"), theta)),
        parameter(g, byName.get("side.up_bias"), theta));
    return g.node("Add", "adapted", g.unsqueeze("hidden_4d", hidden, 0), up);
  }

  /** Exact GELU, 0.5 x (1 + erf(x / sqrt 2)). */
  private static String gelu(GraphBuilder g, String hint, String x) {
    String erf = g.node("Erf", hint + "_erf", g.node("Mul", hint + "_scaled", x, g.constScalar(hint + "_r2", (float) (1 / Math.sqrt(2)))));
    String onePlus = g.node("Add", hint + "_1p", erf, g.constScalar(hint + "_one", 1f));
    return g.node("Mul", hint, g.node("Mul", hint + "_half", x, g.constScalar(hint + "_h", 0.5f)), onePlus);
  }

  /**
   * One tensor of every variant, sliced out of {@code theta} and shaped to broadcast against
   * {@code [variants, batch, sequence, *]}: a matrix {@code [variants, 1, rows, cols]}, a vector
   * {@code [variants, 1, 1, n]}; the embedding head {@code [variants, labels, d]}.
   */
  private static String parameter(GraphBuilder g, ParameterSet.Tensor t, String theta) {
    String slice = g.node("Slice", t.name() + "_cols", theta, g.constInts(t.name() + "_from", t.offset()),
        g.constInts(t.name() + "_to", (long) t.offset() + t.count()), g.constInts(t.name() + "_axis", 1));
    long[] dims = t.dims();
    long[] shape;
    if (t.name().equals(LossModel.HEAD)) {
      shape = new long[] {0, dims[0], dims[1]};
    } else if (dims.length == 2) {
      shape = new long[] {0, 1, dims[0], dims[1]};
    } else {
      shape = new long[] {0, 1, 1, dims[0]};
    }
    return g.node("Reshape", t.name() + "_shaped", slice, g.constInts(t.name() + "_shape", shape));
  }

  /**
   * The standalone graph: {@code base} as the user brought it, with the side network's trained
   * values as one initializer and its nodes between the backbone and the head, so that every
   * output the base model had (logits, last_hidden_state, present.*) comes from the adapted model.
   */
  static ModelProto export(ModelProto base, Plan p, ParameterSet params) {
    ModelProto inlined = inline(base, p, params.tensors(), params.size());
    GraphProto.Builder graph = inlined.getGraph().toBuilder();
    for (int i = graph.getInputCount() - 1; i >= 0; i--) {
      if (graph.getInput(i).getName().equals(THETA)) {
        graph.removeInput(i);
      }
    }
    TensorProto.Builder theta = TensorProto.newBuilder().setName(THETA).setDataType(FLOAT).addDims(1).addDims(params.size());
    ByteBuffer le = ByteBuffer.allocate(params.size() * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    FloatBuffer values = params.floats();
    for (int i = 0; i < params.size(); i++) {
      le.putFloat(values.get(i));
    }
    graph.addInitializer(theta.setRawData(ByteString.copyFrom(le.array())));
    return inlined.toBuilder().setGraph(graph).build();
  }

  /**
   * For decoding: {@code fed} (a causal LM, with or without its KV cache) with the side network
   * inlined and {@link #THETA} {@code [1, P]} a graph input, and the side network's initial tensors.
   */
  static ModelRewriter.Lifted lifted(ModelProto fed, TrainableSelection selection) {
    Plan p = plan(fed.getGraph(), false, selection);
    List<ModelRewriter.LiftedTensor> tensors = initialTensors(p);
    ParameterSet layout = new ParameterSet(tensors);
    return new ModelRewriter.Lifted(inline(fed, p, layout.tensors(), layout.size()), tensors);
  }

  /** {@code base} with the side network's nodes between the backbone and the head, reading the input {@link #THETA}. */
  private static ModelProto inline(ModelProto base, Plan p, List<ParameterSet.Tensor> layout, int total) {
    GraphProto original = base.getGraph();
    GraphProto.Builder graph = original.toBuilder().clearNode();
    graph.addInput(GraphBuilder.valueInfo(THETA, FLOAT, 1L, (long) total));
    GraphBuilder g = new GraphBuilder(graph, "pockettune_side/", GraphBuilder.opsetOf(base));
    String[] taps = p.taps().toArray(String[]::new);
    if (p.headOutput() != null) {
      for (NodeProto n : original.getNodeList()) {
        if (n.getOutputCount() > 0 && n.getOutput(0).equals(p.headOutput())) {
          String adapted = g.squeeze("adapted_3d", adapted(g, p, layout, THETA, taps, p.hidden()), 0);
          graph.addNode(n.toBuilder().setInput(0, adapted));
        } else {
          graph.addNode(n);
        }
      }
      return base.toBuilder().setGraph(graph).build();
    }
    String backboneHidden = "pockettune.backbone_hidden";
    for (NodeProto n : original.getNodeList()) {
      NodeProto.Builder b = n.toBuilder();
      for (int i = 0; i < b.getInputCount(); i++) {
        if (b.getInput(i).equals(p.hidden())) {
          b.setInput(i, backboneHidden);
        }
      }
      for (int i = 0; i < b.getOutputCount(); i++) {
        if (b.getOutput(i).equals(p.hidden())) {
          b.setOutput(i, backboneHidden);
        }
      }
      graph.addNode(b);
    }
    String adapted = g.squeeze("adapted_3d", adapted(g, p, layout, THETA, taps, backboneHidden), 0);
    g.nodeNamed("Identity", p.hidden(), new String[] {adapted});
    return base.toBuilder().setGraph(graph).build();
  }

  /** @return the number of values a side network on this graph trains (without an embedding classifier's head) */
  static long parameterCount(GraphProto graph, boolean encoder, TrainableSelection selection) {
    long n = 0;
    for (ModelRewriter.LiftedTensor t : initialTensors(plan(graph, encoder, selection))) {
      n += t.values().length;
    }
    return n;
  }
}
