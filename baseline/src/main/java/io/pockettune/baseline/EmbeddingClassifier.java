package io.pockettune.baseline;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * PocketTune's embedding-classification objective (trainer's {@code
 * Objective.EmbeddingClassification} with mean pooling) on a {@link BertEncoder}, so autograd can
 * train it: rows are mean-pooled over real tokens, scored by {@code temperature * cos(pooled,
 * head_j)} (both sides divided by their norm, at least 1e-12, as trainer's {@code
 * ModelRewriter.normalize}), and the loss is the mean cross-entropy against the labels. The head
 * [labels, hidden] starts as the pooled embeddings of the label prompts, each prompt run alone
 * through the base model as trainer's {@code LossModel} does at load, so the untrained classifier
 * is PocketTune's zero-shot classifier.
 *
 * <p>Not thread-safe: one training loop owns an instance.
 */
final class EmbeddingClassifier implements AutoCloseable {
  /** all-MiniLM-L6-v2's attention heads: the graph does not state them plainly. */
  static final int HEADS = 12;
  /** The head's name among {@link #parameters()}, as trainer's {@code LossModel.HEAD}. */
  static final String HEAD = "pockettune.head";

  private final BertEncoder encoder;
  private final NDArray head;
  private final float temperature;
  private final Map<String, NDArray> parameters;

  private EmbeddingClassifier(BertEncoder encoder, NDArray head, float temperature) {
    this.encoder = encoder;
    this.head = head;
    this.temperature = temperature;
    Map<String, NDArray> all = new LinkedHashMap<>(encoder.parameters());
    all.put(HEAD, head);
    this.parameters = java.util.Collections.unmodifiableMap(all);
  }

  /**
   * @param onnx        an optimum export of all-MiniLM-L6-v2 (or a BERT encoder with 12 heads)
   * @param promptIds   per label, its prompt's token ids as the tokenizer makes them
   * @param temperature scale of the cosine scores
   * @param manager     the PyTorch manager that will own the parameters
   */
  static EmbeddingClassifier load(Path onnx, List<long[]> promptIds, float temperature, NDManager manager) throws IOException {
    BertEncoder encoder = BertEncoder.load(onnx, HEADS, manager);
    try {
      float[][] rows = new float[promptIds.size()][];
      for (int j = 0; j < rows.length; j++) {
        try (NDManager step = manager.newSubManager()) {
          // Alone, padded to at least 2 tokens like trainer's TokenBatch: nothing depends on the other prompts.
          NDList in = inputs(List.of(promptIds.get(j)), step);
          rows[j] = BertEncoder.meanPool(encoder.forward(in.get(0), in.get(1), in.get(2)), in.get(1)).toFloatArray();
        }
      }
      return new EmbeddingClassifier(encoder, headArray(rows, manager), temperature);
    } catch (RuntimeException e) {
      encoder.close();
      throw e;
    }
  }

  /** A classifier with a given head, e.g. an export's: {@code head} is [labels][hidden]. */
  static EmbeddingClassifier load(Path onnx, float[][] head, float temperature, NDManager manager) throws IOException {
    BertEncoder encoder = BertEncoder.load(onnx, HEADS, manager);
    return new EmbeddingClassifier(encoder, headArray(head, manager), temperature);
  }

  private static NDArray headArray(float[][] rows, NDManager manager) {
    int hidden = rows[0].length;
    float[] flat = new float[rows.length * hidden];
    for (int j = 0; j < rows.length; j++) {
      System.arraycopy(rows[j], 0, flat, j * hidden, hidden);
    }
    NDArray head = manager.create(flat, new Shape(rows.length, hidden));
    head.setName(HEAD);
    head.setRequiresGradient(true);
    return head;
  }

  /**
   * input_ids, attention_mask and token_type_ids (zeros), int64 [rows, longest], padded on the right
   * with id 0 to the longest row (at least 2, as trainer's {@code TokenBatch}).
   */
  static NDList inputs(List<long[]> rows, NDManager nd) {
    int length = 2;
    for (long[] r : rows) {
      length = Math.max(length, r.length);
    }
    long[] ids = new long[rows.size() * length];
    long[] mask = new long[ids.length];
    for (int i = 0; i < rows.size(); i++) {
      long[] r = rows.get(i);
      System.arraycopy(r, 0, ids, i * length, r.length);
      Arrays.fill(mask, i * length, i * length + r.length, 1L);
    }
    Shape shape = new Shape(rows.size(), length);
    NDArray a = nd.create(ids, shape);
    a.setName("input_ids");
    NDArray b = nd.create(mask, shape);
    b.setName("attention_mask");
    NDArray c = nd.create(new long[ids.length], shape);
    c.setName("token_type_ids");
    return new NDList(a, b, c);
  }

  /** @return every trainable array by name: the encoder's in module order, then the head */
  Map<String, NDArray> parameters() {
    return parameters;
  }

  BertEncoder encoder() {
    return encoder;
  }

  /** @return the label scores, [rows, labels], in {@code nd} */
  NDArray scores(List<long[]> rows, NDManager nd) {
    NDList in = inputs(rows, nd);
    NDArray pooled = BertEncoder.meanPool(encoder.forward(in.get(0), in.get(1), in.get(2)), in.get(1));
    return normalize(pooled).matMul(normalize(head).transpose()).mul(temperature);
  }

  private static NDArray normalize(NDArray x) {
    return x.div(x.square().sum(new int[] {1}, true).sqrt().maximum(1e-12f));
  }

  /** @return the mean cross-entropy of the scores of {@code rows} against {@code labels}, a scalar */
  NDArray loss(List<long[]> rows, int[] labels, NDManager nd) {
    NDArray scores = scores(rows, nd);
    long k = scores.getShape().get(1);
    float[] oneHot = new float[(int) (labels.length * k)];
    for (int i = 0; i < labels.length; i++) {
      oneHot[(int) (i * k + labels[i])] = 1f;
    }
    NDArray target = nd.create(oneHot, new Shape(labels.length, k));
    return scores.logSoftmax(1).mul(target).sum(new int[] {1}).neg().mean();
  }

  /** @return per row, the label with the highest score (the first on ties), in batches of {@code batch} */
  int[] predict(List<long[]> rows, int batch, NDManager manager) {
    int[] best = new int[rows.size()];
    for (int from = 0; from < rows.size(); from += batch) {
      List<long[]> part = rows.subList(from, Math.min(rows.size(), from + batch));
      float[] s;
      long k;
      try (NDManager step = manager.newSubManager()) {
        NDArray scores = scores(part, step);
        k = scores.getShape().get(1);
        s = scores.toFloatArray();
      }
      for (int r = 0; r < part.size(); r++) {
        int b = 0;
        for (int j = 1; j < k; j++) {
          if (s[(int) (r * k + j)] > s[(int) (r * k + b)]) {
            b = j;
          }
        }
        best[from + r] = b;
      }
    }
    return best;
  }

  /** @return the head's values, [labels][hidden] */
  float[][] head() {
    long k = head.getShape().get(0);
    int hidden = (int) head.getShape().get(1);
    float[] flat = head.toFloatArray();
    float[][] rows = new float[(int) k][];
    for (int j = 0; j < k; j++) {
      rows[j] = Arrays.copyOfRange(flat, j * hidden, (j + 1) * hidden);
    }
    return rows;
  }

  @Override
  public void close() {
    head.close();
    encoder.close();
  }
}
