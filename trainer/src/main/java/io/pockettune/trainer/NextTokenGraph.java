package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Graph surgery for decoding, the read-side counterpart of the loss heads in {@link ModelRewriter}:
 * a causal LM (already fed and lifted exactly as the trainer lifts it) keeps its body and gets, in
 * place of {@code logits [batch, sequence, vocab]}, the output {@link #NEXT_LOGITS} {@code [batch,
 * vocab]}, the scores of the token after the last position. Decoding reads nothing else, so when
 * {@code logits} is a MatMul of the hidden states (GPT-2's tied head, most Hugging Face exports),
 * the last position's hidden state is sliced out first and only one row per sequence meets the
 * vocabulary; otherwise the last row of {@code logits} is sliced. Of the with-past layout, the
 * {@code present.*} outputs are kept when asked; everything else is pruned.
 *
 * <p>Slicing before the head changes which GEMM ONNX Runtime runs, so the next-token logits agree
 * with the full graph's last row to float rounding, not bit for bit.
 */
final class NextTokenGraph {
  static final String NEXT_LOGITS = "next_token_logits";
  private static final Pattern PAST = Pattern.compile("past_key_values\\.(\\d+)\\.(key|value)");
  private static final Pattern POSITION_TABLE = Pattern.compile("(^|[./])(wpe|position_embeddings|embed_positions)([./]|$)");

  private NextTokenGraph() {}

  /**
   * @return the graph's past inputs, in graph order, when every one has its {@code present.N.*}
   *     output (optimum's with-past layout); empty otherwise
   */
  static List<ValueInfoProto> pastInputs(GraphProto graph) {
    List<ValueInfoProto> pasts = new ArrayList<>();
    java.util.Set<String> outputs = new java.util.HashSet<>();
    graph.getOutputList().forEach(o -> outputs.add(o.getName()));
    for (ValueInfoProto in : graph.getInputList()) {
      if (PAST.matcher(in.getName()).matches()) {
        if (!outputs.contains(presentName(in.getName()))) {
          return List.of();
        }
        pasts.add(in);
      }
    }
    return List.copyOf(pasts);
  }

  /** {@code past_key_values.N.key} to {@code present.N.key}. */
  static String presentName(String pastName) {
    Matcher m = PAST.matcher(pastName);
    if (!m.matches()) {
      throw new AssertionError("not a past input: " + pastName);
    }
    return "present." + m.group(1) + "." + m.group(2);
  }

  /**
   * @param model        a fed and lifted causal LM with output {@code logits}
   * @param presentNames the {@code present.*} outputs to keep, in order (empty for none)
   */
  static ModelProto build(ModelProto model, List<String> presentNames) {
    GraphProto.Builder graph = model.getGraph().toBuilder();
    ValueInfoProto logits = graph.getOutputList().stream().filter(o -> o.getName().equals("logits")).findFirst()
        .orElseThrow(() -> new ModelException("the model has no output named 'logits': generation needs a language model"));
    List<ValueInfoProto> presents = new ArrayList<>();
    for (String name : presentNames) {
      presents.add(graph.getOutputList().stream().filter(o -> o.getName().equals(name)).findFirst().orElseThrow());
    }
    graph.clearOutput();
    GraphBuilder g = new GraphBuilder(graph, "pockettune_next/", GraphBuilder.opsetOf(model));
    String last = g.constInts("last", -1);
    String end = g.constInts("end", Long.MAX_VALUE);
    String axis1 = g.constInts("axis1", 1);
    OnnxMl.NodeProto head = graph.getNodeList().stream()
        .filter(n -> n.getOutputList().contains("logits")).findFirst().orElse(null);
    int rank = logits.getType().getTensorType().getShape().getDimCount();
    String lastRow;
    if (head != null && head.getOpType().equals("MatMul") && rank == 3) {
      String hidden = g.node("Slice", "last_hidden", head.getInput(0), last, end, axis1);
      lastRow = g.node("MatMul", "last_logits", hidden, head.getInput(1));
    } else {
      lastRow = g.node("Slice", "last_logits", "logits", last, end, axis1);
    }
    g.nodeNamed("Identity", NEXT_LOGITS, new String[] {g.squeeze("next", lastRow, 1)});
    List<OnnxMl.TensorShapeProto.Dimension> dims = logits.getType().getTensorType().getShape().getDimList();
    Object vocab = !dims.isEmpty() && dims.get(dims.size() - 1).hasDimValue() ? (Object) dims.get(dims.size() - 1).getDimValue() : "vocab";
    g.output(NEXT_LOGITS, DataType.FLOAT.getNumber(), "batch", vocab);
    graph.addAllOutput(presents);
    return ModelRewriter.prune(model.toBuilder().setGraph(graph).build());
  }

  /**
   * The rows of the position-embedding table: a rank-2 initializer gathered with
   * {@code position_ids}, else one named like GPT-2's {@code wpe} or BERT's
   * {@code position_embeddings}.
   *
   * @return the longest sequence the model can position, or -1 if the graph does not show it
   */
  static int maxPositions(GraphProto graph) {
    java.util.Map<String, TensorProto> tables = new java.util.HashMap<>();
    graph.getInitializerList().stream().filter(t -> t.getDimsCount() == 2).forEach(t -> tables.put(t.getName(), t));
    java.util.Set<String> positions = new java.util.HashSet<>(List.of("position_ids"));
    java.util.Set<String> passThrough = java.util.Set.of("Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity");
    for (OnnxMl.NodeProto n : graph.getNodeList()) {
      if (passThrough.contains(n.getOpType()) && n.getInputCount() > 0 && positions.contains(n.getInput(0))) {
        positions.add(n.getOutput(0));
      }
    }
    TensorProto named = null;
    for (OnnxMl.NodeProto n : graph.getNodeList()) {
      if (!n.getOpType().equals("Gather") || n.getInputCount() < 2 || !tables.containsKey(n.getInput(0))) {
        continue;
      }
      TensorProto t = tables.get(n.getInput(0));
      if (positions.contains(n.getInput(1))) {
        return (int) t.getDims(0);
      }
      if (named == null && POSITION_TABLE.matcher(t.getName()).find()) {
        named = t;
      }
    }
    return named == null ? -1 : (int) named.getDims(0);
  }
}
