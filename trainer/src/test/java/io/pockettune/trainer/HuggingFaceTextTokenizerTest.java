package io.pockettune.trainer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class HuggingFaceTextTokenizerTest {

  @Test
  void encode_gpt2MatchesKnownIds() {
    try (HuggingFaceTextTokenizer t = HuggingFaceTextTokenizer.load(SharedData.require("tokenizers/gpt2"), 64)) {
      // "Hello world" is [15496, 995] in GPT-2's vocabulary.
      assertArrayEquals(new long[] {15496, 995}, t.encode("Hello world", 64));
      assertEquals(50257, t.vocabSize());
      assertEquals(" great", t.decode(t.encodeWithoutSpecialTokens(" great")));
    }
  }

  @Test
  void encode_bertAddsSpecialTokensAndIgnoresBakedPadding() {
    try (HuggingFaceTextTokenizer t = HuggingFaceTextTokenizer.load(SharedData.require("tokenizers/bert-base-uncased"), 16)) {
      long[] ids = t.encode("Hello world", 16);
      // [CLS] hello world [SEP], not padded to the 256 baked into the file.
      assertArrayEquals(new long[] {101, 7592, 2088, 102}, ids);
      assertEquals(16, t.encode("a very long sentence that goes on and on and on well past sixteen tokens", 16).length);
      assertEquals(30522, t.vocabSize());
    }
  }

  @Test
  void load_missingFileIsAClearError(@TempDir Path dir) {
    ModelException e = assertThrows(ModelException.class, () -> HuggingFaceTextTokenizer.load(dir, 8));
    assertTrue(e.getMessage().contains("no tokenizer.json"), e.getMessage());
  }
}
