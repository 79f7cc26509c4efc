package io.pockettune.trainer;

import ai.onnx.proto.OnnxMl;
import ai.onnx.proto.OnnxMl.AttributeProto;
import ai.onnx.proto.OnnxMl.NodeProto;
import ai.onnx.proto.OnnxMl.TensorProto;
import ai.onnx.proto.OnnxMl.TensorShapeProto;
import ai.onnx.proto.OnnxMl.TypeProto;
import ai.onnx.proto.OnnxMl.ValueInfoProto;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A thin, append-only writer of ONNX graphs over the protobuf classes. Every node gets a unique
 * output name derived from a caller-supplied hint, so graph code reads like the math it encodes.
 * Constants are emitted as {@code Constant} nodes, never as initializers: initializers are reserved
 * for weights, which keeps "every float initializer" a meaningful trainable selection.
 *
 * <p>Not thread-safe.
 */
final class GraphBuilder {
  static final int OPSET = 17;

  private final OnnxMl.GraphProto.Builder graph;
  private final String prefix;
  private final long opset;
  private int counter;

  GraphBuilder(String name) {
    this.graph = OnnxMl.GraphProto.newBuilder().setName(name);
    this.prefix = "";
    this.opset = OPSET;
  }

  /**
   * Continues an existing graph; every name this builder makes starts with {@code prefix}, so it
   * cannot collide with names already in the graph.
   */
  GraphBuilder(OnnxMl.GraphProto.Builder existing, String prefix) {
    this(existing, prefix, OPSET);
  }

  /**
   * Continues a graph whose model imports the default domain at {@code opset}. Nodes appended to a
   * user's model must speak its opset (the model's own nodes fix it; ONNX has one version per
   * domain), so the few operators whose signature changed are emitted through {@link #squeeze},
   * {@link #unsqueeze} and {@link #reduceSum}, which pick the attribute or the input form.
   */
  GraphBuilder(OnnxMl.GraphProto.Builder existing, String prefix, long opset) {
    this.graph = existing;
    this.prefix = prefix;
    this.opset = opset;
  }

  /** @return the default domain's opset of the model (its first import of "" or "ai.onnx") */
  static long opsetOf(OnnxMl.ModelProto model) {
    for (OnnxMl.OperatorSetIdProto o : model.getOpsetImportList()) {
      if (o.getDomain().isEmpty() || o.getDomain().equals("ai.onnx")) {
        return o.getVersion();
      }
    }
    return OPSET;
  }

  /** Squeeze over {@code axes}: an attribute before opset 13, an input since. */
  String squeeze(String hint, String x, long... axes) {
    return opset < 13 ? node("Squeeze", hint, new String[] {x}, "axes", axes) : node("Squeeze", hint, x, constInts(hint + "_axes", axes));
  }

  /** Unsqueeze at {@code axes}: an attribute before opset 13, an input since. */
  String unsqueeze(String hint, String x, long... axes) {
    return opset < 13 ? node("Unsqueeze", hint, new String[] {x}, "axes", axes) : node("Unsqueeze", hint, x, constInts(hint + "_axes", axes));
  }

  /** ReduceSum over {@code axes} (all axes when empty): an attribute before opset 13, an input since. */
  String reduceSum(String hint, String x, boolean keepDims, long... axes) {
    long keep = keepDims ? 1L : 0L;
    if (axes.length == 0) {
      return node("ReduceSum", hint, new String[] {x}, "keepdims", keep);
    }
    return opset < 13
        ? node("ReduceSum", hint, new String[] {x}, "axes", axes, "keepdims", keep)
        : node("ReduceSum", hint, new String[] {x, constInts(hint + "_axes", axes)}, "keepdims", keep);
  }

  OnnxMl.GraphProto.Builder graph() {
    return graph;
  }

  /** Declares a graph input whose dimensions are numbers or symbolic names (Strings). */
  String input(String name, int elemType, Object... dims) {
    graph.addInput(valueInfo(name, elemType, dims));
    return name;
  }

  void output(String name, int elemType, Object... dims) {
    graph.addOutput(valueInfo(name, elemType, dims));
  }

  /** Adds a float initializer (a weight) stored as little-endian raw data. */
  String initializer(String name, long[] dims, float[] values) {
    ByteBuffer bytes = ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    bytes.asFloatBuffer().put(values);
    TensorProto.Builder t =
        TensorProto.newBuilder()
            .setName(name)
            .setDataType(TensorProto.DataType.FLOAT.getNumber())
            .setRawData(ByteString.copyFrom(bytes.array()));
    for (long d : dims) {
      t.addDims(d);
    }
    graph.addInitializer(t);
    return name;
  }

  String constInts(String hint, long... values) {
    TensorProto.Builder t =
        TensorProto.newBuilder().setDataType(TensorProto.DataType.INT64.getNumber()).addDims(values.length);
    for (long v : values) {
      t.addInt64Data(v);
    }
    return constant(hint, t.build());
  }

  String constScalarInt(String hint, long value) {
    return constant(
        hint,
        TensorProto.newBuilder().setDataType(TensorProto.DataType.INT64.getNumber()).addInt64Data(value).build());
  }

  String constScalar(String hint, float value) {
    return constant(
        hint,
        TensorProto.newBuilder().setDataType(TensorProto.DataType.FLOAT.getNumber()).addFloatData(value).build());
  }

  String constant(String hint, TensorProto value) {
    String out = fresh(hint);
    graph.addNode(
        NodeProto.newBuilder()
            .setOpType("Constant")
            .setName(out)
            .addOutput(out)
            .addAttribute(
                AttributeProto.newBuilder()
                    .setName("value")
                    .setType(AttributeProto.AttributeType.TENSOR)
                    .setT(value)));
    return out;
  }

  /** A one-element float tensor, as ConstantOfShape's {@code value} attribute wants. */
  static TensorProto scalarTensor(float value) {
    return TensorProto.newBuilder().setDataType(TensorProto.DataType.FLOAT.getNumber()).addDims(1).addFloatData(value).build();
  }

  /**
   * Adds a single-output node; attributes are name/value pairs (Long, Integer, Float, String,
   * long[], TensorProto).
   */
  String node(String op, String hint, String[] inputs, Object... attributes) {
    return nodeNamed(op, fresh(hint), inputs, attributes);
  }

  String node(String op, String hint, String... inputs) {
    return nodeNamed(op, fresh(hint), inputs);
  }

  /** Like {@link #node} but with an exact output name (for graph outputs). */
  String nodeNamed(String op, String output, String[] inputs, Object... attributes) {
    nodeMulti(op, new String[] {output}, inputs, attributes);
    return output;
  }

  String[] nodeMulti(String op, String[] outputs, String[] inputs, Object... attributes) {
    NodeProto.Builder n = NodeProto.newBuilder().setOpType(op).setName(outputs[0] + "/" + op);
    for (String in : inputs) {
      n.addInput(in);
    }
    for (String out : outputs) {
      n.addOutput(out);
    }
    for (int i = 0; i < attributes.length; i += 2) {
      n.addAttribute(attribute((String) attributes[i], attributes[i + 1]));
    }
    graph.addNode(n);
    return outputs;
  }

  String fresh(String hint) {
    return prefix + hint + "_" + (counter++);
  }

  OnnxMl.ModelProto build(String producer) {
    return OnnxMl.ModelProto.newBuilder()
        .setIrVersion(8)
        .setProducerName(producer)
        .addOpsetImport(OnnxMl.OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
        .setGraph(graph)
        .build();
  }

  static ValueInfoProto valueInfo(String name, int elemType, Object... dims) {
    TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
    for (Object d : dims) {
      if (d instanceof String s) {
        shape.addDimBuilder().setDimParam(s);
      } else {
        shape.addDimBuilder().setDimValue(((Number) d).longValue());
      }
    }
    return ValueInfoProto.newBuilder()
        .setName(name)
        .setType(
            TypeProto.newBuilder()
                .setTensorType(TypeProto.Tensor.newBuilder().setElemType(elemType).setShape(shape)))
        .build();
  }

  private static AttributeProto attribute(String name, Object value) {
    AttributeProto.Builder a = AttributeProto.newBuilder().setName(name);
    if (value instanceof Long l) {
      a.setType(AttributeProto.AttributeType.INT).setI(l);
    } else if (value instanceof Integer i) {
      a.setType(AttributeProto.AttributeType.INT).setI(i);
    } else if (value instanceof Float f) {
      a.setType(AttributeProto.AttributeType.FLOAT).setF(f);
    } else if (value instanceof String s) {
      a.setType(AttributeProto.AttributeType.STRING).setS(ByteString.copyFromUtf8(s));
    } else if (value instanceof TensorProto t) {
      a.setType(AttributeProto.AttributeType.TENSOR).setT(t);
    } else if (value instanceof long[] ints) {
      a.setType(AttributeProto.AttributeType.INTS);
      for (long v : ints) {
        a.addInts(v);
      }
    } else {
      throw new IllegalArgumentException("unsupported attribute type for " + name + ": " + value);
    }
    return a.build();
  }
}
