package io.pockettune.trainer;

import java.util.List;

/**
 * A batch of named input tensors, for a model that computes its own scalar loss.
 *
 * @param size    number of examples
 * @param tensors the graph inputs to feed, by name
 */
public record TensorBatch(int size, List<Tensor> tensors) implements Batch {

  /** One input: float or int64 values (exactly one of the two arrays is non-null), row-major. */
  public record Tensor(String name, long[] shape, float[] floats, long[] longs) {
    public static Tensor of(String name, long[] shape, float[] values) {
      return new Tensor(name, shape, values, null);
    }

    public static Tensor of(String name, long[] shape, long[] values) {
      return new Tensor(name, shape, null, values);
    }
  }
}
