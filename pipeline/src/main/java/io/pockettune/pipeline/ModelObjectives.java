package io.pockettune.pipeline;

import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.HuggingFaceTextTokenizer;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.Objective;
import io.pockettune.trainer.TextTokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * From a package's card to the trainer's loss model: the objective with its label tokens or label
 * prompts tokenized, the trainable choice, and the check that the tokenizer fits the model's
 * embedding table.
 */
final class ModelObjectives {
  private ModelObjectives() {}

  static LossModel open(ModelPackage pkg, int threads) {
    LossModel model = LossModel.open(pkg.graph(), objective(pkg), pkg.selection(), threads);
    try {
      int rows = model.embeddingRows();
      int vocab = pkg.tokenizer().vocabSize();
      if (rows > 0 && vocab > rows) {
        throw new IllegalArgumentException("the tokenizer of " + pkg.describe() + " makes ids up to " + (vocab - 1)
            + " but the model has " + rows + " token embeddings: put the model's own tokenizer.json in the package");
      }
      if (rows > ByteTokenizer.VOCAB_SIZE && pkg.tokenizer() instanceof ByteTokenizer) {
        throw new IllegalArgumentException(pkg.describe() + " has " + rows + " token embeddings, a vocabulary that needs"
            + " its tokenizer, but its card says \"tokenizer\": \"bytes\": copy the model's tokenizer.json into the"
            + " package and name it in the card");
      }
      return model;
    } catch (RuntimeException e) {
      model.close();
      throw e;
    }
  }

  /** The trainer's objective for the card, label words and prompts tokenized by the package's tokenizer. */
  static Objective objective(ModelPackage pkg) {
    ModelCard card = pkg.card();
    return switch (card.objective()) {
      case ModelCard.CAUSAL_LM -> new Objective.CausalLm();
      case ModelCard.PROMPT_CLASSIFICATION -> new Objective.PromptClassification(labelTokens(pkg.tokenizer(), card));
      case ModelCard.EMBEDDING_CLASSIFICATION -> {
        List<long[]> prompts = new ArrayList<>();
        for (String p : card.labelPrompts()) {
          prompts.add(pkg.tokenizer().encode(p, card.maxTokens()));
        }
        yield new Objective.EmbeddingClassification(
            Objective.Pooling.valueOf(card.pooling().toUpperCase(Locale.ROOT)), prompts, card.temperature());
      }
      case ModelCard.SCALAR_LOSS -> new Objective.ScalarLoss(card.lossOutput());
      default -> throw new AssertionError("the card was checked: " + card.objective());
    };
  }

  /** Each label word's first token. */
  static long[] labelTokens(TextTokenizer tokenizer, ModelCard card) {
    long[] ids = new long[card.labelWords().size()];
    for (int i = 0; i < ids.length; i++) {
      String word = card.labelWords().get(i);
      long[] t = tokenizer instanceof HuggingFaceTextTokenizer hf
          ? hf.encodeWithoutSpecialTokens(word)
          : java.util.Arrays.copyOfRange(tokenizer.encode(word, card.maxTokens()), 1, 2);
      if (t.length == 0) {
        throw new IllegalArgumentException("the label word '" + word + "' has no tokens: fix 'label_words' in the card");
      }
      ids[i] = t[0];
    }
    return ids;
  }

  /**
   * The tokenizer of examples. For prompt classification the answer is read at the last token, so
   * a byte tokenizer's end-of-text token is dropped.
   */
  static TextTokenizer encoder(ModelPackage pkg) {
    TextTokenizer t = pkg.tokenizer();
    if (!pkg.card().objective().equals(ModelCard.PROMPT_CLASSIFICATION) || !(t instanceof ByteTokenizer)) {
      return t;
    }
    return new TextTokenizer() {
      @Override
      public long[] encode(String text, int maxTokens) {
        long[] ids = t.encode(text, maxTokens);
        return ids.length > 2 && ids[ids.length - 1] == ByteTokenizer.EOS ? java.util.Arrays.copyOf(ids, ids.length - 1) : ids;
      }

      @Override
      public int vocabSize() {
        return t.vocabSize();
      }

      @Override
      public String decode(long[] ids) {
        return t.decode(ids);
      }
    };
  }
}
