package io.pockettune.trainer;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * A Hugging Face {@code tokenizer.json} (BPE, WordPiece, Unigram) through DJL's tokenizers
 * binding, whose native library ships inside the jar: nothing is downloaded. Padding and
 * truncation settings baked into the file are overridden: batches are padded by
 * {@link TokenBatch#of}, and truncation follows the caller's {@code maxTokens}.
 *
 * <p>Thread-safe.
 */
public final class HuggingFaceTextTokenizer implements TextTokenizer, AutoCloseable {
  static {
    if (System.getProperty("OPT_OUT_TRACKING") == null) {
      System.setProperty("OPT_OUT_TRACKING", "true");
    }
    if (System.getProperty("ai.djl.offline") == null) {
      System.setProperty("ai.djl.offline", "true");
    }
  }

  private final HuggingFaceTokenizer tokenizer;
  private final int vocabSize;

  private HuggingFaceTextTokenizer(HuggingFaceTokenizer tokenizer, int vocabSize) {
    this.tokenizer = tokenizer;
    this.vocabSize = vocabSize;
  }

  /**
   * @param path a {@code tokenizer.json} file, or a folder holding one
   * @param maxTokens the longest sequence it will produce (special tokens included)
   */
  public static HuggingFaceTextTokenizer load(Path path, int maxTokens) {
    Path file = Files.isDirectory(path) ? path.resolve("tokenizer.json") : path;
    if (!Files.isRegularFile(file)) {
      throw new ModelException("no tokenizer.json at " + file + ": give the path of a Hugging Face tokenizer.json or its folder");
    }
    try {
      HuggingFaceTokenizer t = HuggingFaceTokenizer.newInstance(file, Map.of(
          "padding", "false", "truncation", "true", "maxLength", Integer.toString(maxTokens),
          "addSpecialTokens", "true"));
      return new HuggingFaceTextTokenizer(t, vocabSize(file));
    } catch (IOException | RuntimeException e) {
      throw new ModelException("cannot read the tokenizer at " + file + " (" + e.getMessage() + "): check that it is a Hugging Face tokenizer.json", e);
    }
  }

  /** Vocabulary size: the largest id in the file's vocab or added tokens, plus one. */
  private static int vocabSize(Path file) throws IOException {
    String json = Files.readString(file);
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("\"(?:[^\"\\\\]|\\\\.)*\"\\s*:\\s*(\\d+)").matcher(json);
    int max = -1;
    int vocabStart = json.indexOf("\"vocab\"");
    if (vocabStart >= 0) {
      m.region(vocabStart, json.length());
    }
    while (m.find()) {
      long v = Long.parseLong(m.group(1));
      if (v < Integer.MAX_VALUE) {
        max = (int) Math.max(max, v);
      }
    }
    java.util.regex.Matcher added = java.util.regex.Pattern.compile("\"id\"\\s*:\\s*(\\d+)").matcher(json);
    while (added.find()) {
      max = Math.max(max, Integer.parseInt(added.group(1)));
    }
    return max + 1;
  }

  @Override
  public long[] encode(String text, int maxTokens) {
    Encoding e = tokenizer.encode(text);
    long[] ids = e.getIds();
    return ids.length <= maxTokens ? ids : java.util.Arrays.copyOf(ids, maxTokens);
  }

  @Override
  public int vocabSize() {
    return vocabSize;
  }

  /** @return the ids of {@code text} without special tokens (e.g. a label word) */
  public long[] encodeWithoutSpecialTokens(String text) {
    return tokenizer.encode(text, false, false).getIds();
  }

  @Override
  public String decode(long[] ids) {
    return tokenizer.decode(ids);
  }

  @Override
  public void close() {
    tokenizer.close();
  }
}
