package io.pockettune.trainer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * What a model is trained to do: the one typed description of the loss appended to the user's
 * graph, given to {@link LossModel#open}. A model card names one of these; everything the rewrite
 * needs (label words, label prompts, the loss output) is in the record, so two equal objectives
 * always build the same loss graph.
 *
 * <p>Records holding arrays copy them in and out and compare them by content.
 */
public sealed interface Objective {

  /** @return the number of labels of a classification objective, 0 for the others */
  default int labelCount() {
    return 0;
  }

  /**
   * Causal language modelling: mean shifted cross-entropy of {@code logits} over real target
   * tokens, padding ignored. Batches are {@link TokenBatch}es.
   */
  record CausalLm() implements Objective {}

  /**
   * Prompt classification, MeZO's formulation: at each row's answer position, the {@code logits}
   * of the label words give a distribution over labels. Batches are {@link TokenBatch}es; a row
   * without an answer position is answered at its last real token.
   *
   * @param labelTokens the token id of each label word (its first token), in label order
   */
  record PromptClassification(long[] labelTokens) implements Objective {
    public PromptClassification {
      if (labelTokens.length < 2) {
        throw new IllegalArgumentException("a classifier needs at least two label words, got " + labelTokens.length);
      }
      labelTokens = labelTokens.clone();
    }

    @Override
    public long[] labelTokens() {
      return labelTokens.clone();
    }

    @Override
    public int labelCount() {
      return labelTokens.length;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof PromptClassification p && Arrays.equals(labelTokens, p.labelTokens);
    }

    @Override
    public int hashCode() {
      return Arrays.hashCode(labelTokens);
    }

    @Override
    public String toString() {
      return "PromptClassification" + Arrays.toString(labelTokens);
    }
  }

  /** How an encoder's {@code last_hidden_state} becomes one vector per row. */
  enum Pooling {
    /** Mean over the real tokens (attention_mask 1), as sentence-transformers do. */
    MEAN,
    /** The first token ([CLS] for BERT); assumes right padding, which {@link TokenBatch} uses. */
    CLS
  }

  /**
   * Classification over an encoder's pooled {@code last_hidden_state}: a head {@code [labels,
   * hidden]} (tensor {@link LossModel#HEAD}) scores each row by {@code temperature * cos(pooled,
   * head_j)}; the loss is the cross-entropy against the row's label. The head is initialised with
   * the pooled embeddings of the label prompts, computed by the base model at load, so the
   * untrained model is the zero-shot classifier. The head always trains, beside whatever the
   * trainable choice selects.
   *
   * @param pooling           how rows are pooled
   * @param labelPromptTokens per label, the token ids of its prompt (e.g. "It was great."), special
   *                          tokens included as the tokenizer adds them
   * @param temperature       scale of the cosine similarities (e.g. 20), positive
   */
  record EmbeddingClassification(Pooling pooling, List<long[]> labelPromptTokens, float temperature)
      implements Objective {
    public EmbeddingClassification {
      if (labelPromptTokens.size() < 2) {
        throw new IllegalArgumentException("a classifier needs at least two label prompts, got " + labelPromptTokens.size());
      }
      if (!(temperature > 0) || !Float.isFinite(temperature)) {
        throw new IllegalArgumentException("temperature must be a positive number, was " + temperature);
      }
      List<long[]> copy = new ArrayList<>(labelPromptTokens.size());
      for (long[] p : labelPromptTokens) {
        if (p.length == 0) {
          throw new IllegalArgumentException("a label prompt has no tokens");
        }
        copy.add(p.clone());
      }
      labelPromptTokens = List.copyOf(copy);
    }

    @Override
    public List<long[]> labelPromptTokens() {
      return labelPromptTokens.stream().map(long[]::clone).toList();
    }

    @Override
    public int labelCount() {
      return labelPromptTokens.size();
    }

    @Override
    public boolean equals(Object o) {
      if (!(o instanceof EmbeddingClassification e) || e.pooling != pooling
          || Float.floatToIntBits(e.temperature) != Float.floatToIntBits(temperature)
          || e.labelPromptTokens.size() != labelPromptTokens.size()) {
        return false;
      }
      for (int i = 0; i < labelPromptTokens.size(); i++) {
        if (!Arrays.equals(labelPromptTokens.get(i), e.labelPromptTokens.get(i))) {
          return false;
        }
      }
      return true;
    }

    @Override
    public int hashCode() {
      int h = pooling.hashCode() * 31 + Float.hashCode(temperature);
      for (long[] p : labelPromptTokens) {
        h = h * 31 + Arrays.hashCode(p);
      }
      return h;
    }

    @Override
    public String toString() {
      StringBuilder sb = new StringBuilder("EmbeddingClassification[").append(pooling).append(", prompts ");
      labelPromptTokens.forEach(p -> sb.append(Arrays.toString(p)));
      return sb.append(", temperature ").append(temperature).append(']').toString();
    }
  }

  /**
   * A scalar loss the model computes itself, in output {@code output}. Batches are
   * {@link TensorBatch}es naming the model's inputs.
   */
  record ScalarLoss(String output) implements Objective {}
}
