package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.GraphProto;
import ai.onnx.proto.OnnxMl.ModelProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorProto.DataType;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import com.google.protobuf.CodedInputStream;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What an ONNX model is, read without running it: for {@code pockettune model inspect} and
 * {@code model init}, which must describe a user's export and choose a card that works before any
 * session exists.
 *
 * <p>The file is memory-mapped and parsed with aliasing, so weight bytes are never copied onto the
 * heap: only names, types and shapes are read (weights in external data files are not opened).
 *
 * <h2>Parameter groups</h2>
 * Initializers are grouped by Hugging Face naming, matched (case-insensitively) against the
 * initializer's name and the name of the first node that reads it, since optimum exports often
 * name weights anonymously ({@code onnx::MatMul_787}) while node names keep the module path
 * ({@code /encoder/layer.0/attention/self/query/MatMul}). In order, first match wins:
 * <ol>
 *   <li>{@link ParameterGroup#NORM}: {@code norm} anywhere, or GPT-2's {@code ln_1}, {@code ln_f};
 *   <li>{@link ParameterGroup#TOKEN_EMBEDDING}: the table a Gather reads with {@code input_ids}, or
 *       {@code wte}, {@code word_embeddings}, {@code embed_tokens}, {@code tok_embeddings};
 *   <li>{@link ParameterGroup#ATTENTION}: {@code attn}, {@code attention}, {@code q_proj},
 *       {@code k_proj}, {@code v_proj}, {@code o_proj}, {@code query}, {@code key}, {@code value};
 *   <li>{@link ParameterGroup#MLP}: {@code mlp}, {@code intermediate}, {@code ffn},
 *       {@code feed_forward}, {@code fc1}, {@code fc2}, {@code c_fc}, {@code gate_proj},
 *       {@code up_proj}, {@code down_proj}, BERT's {@code layer.N.output.dense};
 *   <li>{@link ParameterGroup#OTHER}: the rest (position and token-type embeddings, poolers, ...).
 * </ol>
 * Parameters are float (float32, float16, bfloat16, double) or quantized (int8, uint8, 4-bit)
 * initializer elements; other integer initializers (index tables, shapes) are not parameters.
 *
 * <p>Immutable and thread-safe.
 */
public final class ModelGraph {

  /** What a model computes, by its outputs. */
  public enum Kind {
    /** It has a {@code logits} output: a language model (causal-lm, prompt-classification). */
    DECODER,
    /** It has {@code last_hidden_state} and no {@code logits}: an encoder (embedding-classification). */
    ENCODER,
    /** Neither: only a scalar-loss objective can use it. */
    OTHER
  }

  /** Parameter groups by Hugging Face naming; see the class comment for the heuristics. */
  public enum ParameterGroup { TOKEN_EMBEDDING, ATTENTION, MLP, NORM, OTHER }

  /**
   * A graph input or output.
   *
   * @param name        its name
   * @param elementType ONNX element type, e.g. {@code INT64}, {@code FLOAT}
   * @param dims        each dimension: a number, or the symbolic name the export gave it
   */
  public record Port(String name, String elementType, List<String> dims) {}

  private static final Pattern NORM = Pattern.compile("norm|(^|[./ ])ln_([0-9]+|f)([./ ]|$)");
  private static final Pattern TOKEN_EMBEDDING = Pattern.compile("(^|[./ ])(wte|word_embeddings|embed_tokens|tok_embeddings)([./ ]|$)");
  private static final Pattern ATTENTION = Pattern.compile("attn|attention|q_proj|k_proj|v_proj|o_proj|query|key|value");
  private static final Pattern MLP = Pattern.compile(
      "mlp|intermediate|ffn|feed_forward|fc1|fc2|c_fc|gate_proj|up_proj|down_proj|layer[._]\\d+[./]output[./]dense");
  private static final Pattern PAST = Pattern.compile("past_key_values\\.(\\d+)\\.key");

  private final GraphProto graph;
  private final List<Port> inputs;
  private final List<Port> outputs;
  private final Map<ParameterGroup, Long> groups;
  private final long floatParameters;
  private final long quantizedParameters;
  private final TensorProto tokenEmbedding;

  private ModelGraph(ModelProto model) {
    this.graph = model.getGraph();
    java.util.Set<String> initializers = new java.util.HashSet<>();
    graph.getInitializerList().forEach(t -> initializers.add(t.getName()));
    // Old exports (IR < 4) list every initializer as an input too; those are weights, not inputs.
    this.inputs = ports(graph.getInputList().stream().filter(i -> !initializers.contains(i.getName())).toList());
    this.outputs = ports(graph.getOutputList());
    this.tokenEmbedding = ModelRewriter.tokenEmbedding(graph);
    Map<String, String> firstReader = new HashMap<>();
    for (NodeProto n : graph.getNodeList()) {
      n.getInputList().forEach(i -> firstReader.putIfAbsent(i, n.getName()));
    }
    Map<ParameterGroup, Long> counts = new EnumMap<>(ParameterGroup.class);
    for (ParameterGroup g : ParameterGroup.values()) {
      counts.put(g, 0L);
    }
    long floats = 0;
    long quantized = 0;
    for (TensorProto t : graph.getInitializerList()) {
      boolean isFloat = isFloat(t.getDataType());
      if (!isFloat && !ModelRewriter.isQuantized(t.getDataType())) {
        continue;
      }
      long n = elements(t);
      if (isFloat) {
        floats += n;
      } else {
        quantized += n;
      }
      counts.merge(group(t, firstReader.getOrDefault(t.getName(), "")), n, Long::sum);
    }
    this.groups = Collections.unmodifiableMap(counts);
    this.floatParameters = floats;
    this.quantizedParameters = quantized;
  }

  /**
   * @param onnxFile an ONNX model file (its external data files are not read)
   * @throws ModelException if the file cannot be read or is not an ONNX model
   */
  public static ModelGraph read(Path onnxFile) {
    try (FileChannel ch = FileChannel.open(onnxFile)) {
      if (ch.size() > Integer.MAX_VALUE) {
        throw new ModelException("the model file " + onnxFile + " is over 2 GB, which ONNX does not allow: export it with external data");
      }
      MappedByteBuffer bytes = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size());
      CodedInputStream in = CodedInputStream.newInstance(bytes);
      in.enableAliasing(true);
      return new ModelGraph(ModelRewriter.parse(in));
    } catch (IOException e) {
      throw new ModelException("cannot read the model file " + onnxFile + " (" + e.getMessage() + "): check the path", e);
    }
  }

  /** @param onnx a serialized ONNX model */
  public static ModelGraph of(byte[] onnx) {
    return new ModelGraph(ModelRewriter.parse(onnx));
  }

  public List<Port> inputs() {
    return inputs;
  }

  public List<Port> outputs() {
    return outputs;
  }

  public Kind kind() {
    boolean logits = outputs.stream().anyMatch(o -> o.name().equals("logits"));
    boolean hidden = outputs.stream().anyMatch(o -> o.name().equals("last_hidden_state"));
    return logits ? Kind.DECODER : hidden ? Kind.ENCODER : Kind.OTHER;
  }

  /** @return parameters per group, every group present (possibly 0) */
  public Map<ParameterGroup, Long> parameterCounts() {
    return groups;
  }

  /** @return float plus quantized parameters */
  public long parameters() {
    return floatParameters + quantizedParameters;
  }

  /** @return parameters stored as float32, float16, bfloat16 or double */
  public long floatParameters() {
    return floatParameters;
  }

  /** @return parameters stored as int8, uint8 or 4-bit integers (quantized; they cannot train) */
  public long quantizedParameters() {
    return quantizedParameters;
  }

  /**
   * @return the rows of the token-embedding table that {@code input_ids} index, or -1 if input_ids
   *     reaches no Gather over an initializer; a tokenizer with more ids cannot be used
   */
  public int embeddingRows() {
    return tokenEmbedding == null ? -1 : (int) tokenEmbedding.getDims(0);
  }

  /**
   * @return the files, relative to the model's folder, that hold initializers as ONNX external
   *     data (models over 2 GB must), in order of first use; empty for a self-contained model
   */
  public List<String> externalDataLocations() {
    java.util.LinkedHashSet<String> files = new java.util.LinkedHashSet<>();
    for (TensorProto t : graph.getInitializerList()) {
      if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
        for (OnnxMl.StringStringEntryProto e : t.getExternalDataList()) {
          if (e.getKey().equals("location")) {
            files.add(e.getValue());
          }
        }
      }
    }
    return List.copyOf(files);
  }

  /** @return the number of layers, from the {@code past_key_values.N.key} inputs, if there are any */
  public OptionalInt layers() {
    TreeSet<Integer> layers = new TreeSet<>();
    for (Port p : inputs) {
      Matcher m = PAST.matcher(p.name());
      if (m.matches()) {
        layers.add(Integer.parseInt(m.group(1)));
      }
    }
    return layers.isEmpty() ? OptionalInt.empty() : OptionalInt.of(layers.size());
  }

  /** @return the attention heads, from the declared dims of {@code past_key_values.0.key}, if fixed */
  public OptionalInt heads() {
    for (Port p : inputs) {
      if (p.name().equals("past_key_values.0.key") && p.dims().size() == 4 && p.dims().get(1).matches("\\d+")) {
        return OptionalInt.of(Integer.parseInt(p.dims().get(1)));
      }
    }
    return OptionalInt.empty();
  }

  /**
   * @return the number of values {@code selection} would train, as {@link LossModel#open} would
   *     lift or inject them, without building a session
   * @throws ModelException if the selection matches nothing or picks a non-float tensor
   */
  public long trainableCount(TrainableSelection selection) {
    long n = 0;
    if (selection.kind() == TrainableSelection.Kind.SIDE) {
      boolean encoder = graph.getOutputList().stream().noneMatch(o -> o.getName().equals("logits"));
      return SideNetwork.parameterCount(graph, encoder, selection);
    }
    if (selection.kind() == TrainableSelection.Kind.LORA) {
      for (ModelRewriter.LoraTarget t : ModelRewriter.loraTargets(graph, selection)) {
        n += (long) selection.rank() * (t.in() + t.out());
      }
    } else {
      for (TensorProto t : ModelRewriter.selectedInitializers(graph, selection)) {
        n += elements(t);
      }
    }
    return n;
  }

  /** @return like {@link #trainableCount(TrainableSelection)}, plus the embedding classifier's head */
  public long trainableCount(TrainableSelection selection, Objective objective) {
    long n = trainableCount(selection);
    if (objective instanceof Objective.EmbeddingClassification e) {
      n += (long) e.labelCount() * ModelRewriter.hiddenSize(graph, tokenEmbedding);
    }
    return n;
  }

  private ParameterGroup group(TensorProto t, String reader) {
    String names = (t.getName() + " " + reader).toLowerCase(java.util.Locale.ROOT);
    if (NORM.matcher(names).find()) {
      return ParameterGroup.NORM;
    }
    if (t == tokenEmbedding || TOKEN_EMBEDDING.matcher(names).find()) {
      return ParameterGroup.TOKEN_EMBEDDING;
    }
    if (ATTENTION.matcher(names).find()) {
      return ParameterGroup.ATTENTION;
    }
    if (MLP.matcher(names).find()) {
      return ParameterGroup.MLP;
    }
    return ParameterGroup.OTHER;
  }

  private static boolean isFloat(int type) {
    return type == DataType.FLOAT.getNumber() || type == DataType.FLOAT16.getNumber()
        || type == DataType.BFLOAT16.getNumber() || type == DataType.DOUBLE.getNumber();
  }

  private static long elements(TensorProto t) {
    long n = 1;
    for (long d : t.getDimsList()) {
      n *= d;
    }
    return n;
  }

  private static List<Port> ports(List<ValueInfoProto> values) {
    List<Port> out = new ArrayList<>();
    for (ValueInfoProto v : values) {
      List<String> dims = new ArrayList<>();
      for (TensorShapeProto.Dimension d : v.getType().getTensorType().getShape().getDimList()) {
        dims.add(d.hasDimValue() ? Long.toString(d.getDimValue()) : d.getDimParam());
      }
      out.add(new Port(v.getName(), ModelRewriter.typeName(v.getType().getTensorType().getElemType()), List.copyOf(dims)));
    }
    return List.copyOf(out);
  }
}
