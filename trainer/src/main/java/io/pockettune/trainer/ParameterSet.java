package io.pockettune.trainer;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * The trainable values of a model, all in ONE direct (off-heap) float buffer in native byte order.
 * Each trainable tensor is a slice of it; ONNX Runtime reads the slices in place as graph inputs,
 * so a perturbation written into the buffer is seen by the next forward pass with no copy. One
 * contiguous buffer also makes the perturbation kernel a single flat loop, and index {@code i}
 * of the buffer is index {@code i} of the random direction z.
 *
 * <p>Not thread-safe: the trainer mutates it between forward passes.
 */
public final class ParameterSet {

  /** One trainable tensor: its place in the buffer, in floats. */
  public record Tensor(String name, long[] dims, int offset, int count) {}

  private final List<Tensor> tensors;
  private final ByteBuffer bytes;
  private final FloatBuffer floats;

  ParameterSet(List<ModelRewriter.LiftedTensor> lifted) {
    long total = 0;
    List<Tensor> list = new ArrayList<>();
    for (ModelRewriter.LiftedTensor t : lifted) {
      list.add(new Tensor(t.name(), t.dims(), (int) total, t.values().length));
      total += t.values().length;
    }
    if (total > Integer.MAX_VALUE / Float.BYTES) {
      throw new ModelException("more than 512M trainable floats: choose fewer trainable tensors or LoRA");
    }
    this.tensors = List.copyOf(list);
    this.bytes = ByteBuffer.allocateDirect((int) total * Float.BYTES).order(ByteOrder.nativeOrder());
    this.floats = bytes.asFloatBuffer();
    for (int i = 0; i < lifted.size(); i++) {
      floats.put(list.get(i).offset(), lifted.get(i).values());
    }
  }

  /** @return the number of trainable floats */
  public int size() {
    return floats.capacity();
  }

  public List<Tensor> tensors() {
    return tensors;
  }

  /** The whole buffer as floats; index i is parameter i. Shares memory with the model. */
  public FloatBuffer floats() {
    return floats.duplicate();
  }

  /** @return a copy of every trainable value */
  public float[] toArray() {
    float[] out = new float[size()];
    floats.get(0, out);
    return out;
  }

  /** Overwrites every trainable value (e.g. from a snapshot). */
  public void load(float[] values) {
    if (values.length != size()) {
      throw new IllegalArgumentException("expected " + size() + " values, got " + values.length);
    }
    floats.put(0, values);
  }

  /** Every value's bytes, in place: a direct, native-order view of the whole buffer. */
  ByteBuffer allBytes() {
    return bytes.duplicate().order(ByteOrder.nativeOrder());
  }

  /** The bytes of one tensor, in place: a direct, native-order view. */
  ByteBuffer view(Tensor t) {
    return bytes.slice(t.offset() * Float.BYTES, t.count() * Float.BYTES).order(ByteOrder.nativeOrder());
  }

  /**
   * The ranges that weight decay applies to: tensors of rank 2 or more (weights, embeddings, LoRA
   * factors). Biases and normalization parameters, rank 1, are never decayed.
   */
  public PerturbationKernel.Ranges decayRanges() {
    List<int[]> ranges = new ArrayList<>();
    for (Tensor t : tensors) {
      if (t.dims().length < 2) {
        continue;
      }
      int[] last = ranges.isEmpty() ? null : ranges.get(ranges.size() - 1);
      if (last != null && last[1] == t.offset()) {
        last[1] = t.offset() + t.count();
      } else {
        ranges.add(new int[] {t.offset(), t.offset() + t.count()});
      }
    }
    int[] starts = new int[ranges.size()];
    int[] ends = new int[ranges.size()];
    for (int i = 0; i < starts.length; i++) {
      starts[i] = ranges.get(i)[0];
      ends[i] = ranges.get(i)[1];
    }
    return new PerturbationKernel.Ranges(starts, ends);
  }

  /** A stable description of names and shapes, recorded with a run so it cannot silently change. */
  public String layout() {
    StringBuilder sb = new StringBuilder();
    for (Tensor t : tensors) {
      sb.append(t.name()).append(java.util.Arrays.toString(t.dims())).append(';');
    }
    return sb.toString();
  }

  /** SHA-256 of the values' IEEE bits, in order: equal digests mean bit-identical parameters. */
  public String digest() {
    try {
      MessageDigest md = MessageDigest.getInstance("SHA-256");
      ByteBuffer le = ByteBuffer.allocate(size() * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
      le.asFloatBuffer().put(floats.duplicate().rewind());
      md.update(le);
      return HexFormat.of().formatHex(md.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new AssertionError("SHA-256 is required of every JDK", e);
    }
  }
}
