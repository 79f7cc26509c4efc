package io.pockettune.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The labelled texts of {@code pockettune bench quality}, read from {@code ../shared/data}: SST-2
 * in the MeZO paper's k-shot layout ({@code sst2-kshot/16-42/{train,dev,test}.tsv}: a header, then
 * {@code sentence TAB 0|1}) and the SMS Spam Collection ({@code sms/SMSSpamCollection}:
 * {@code ham|spam TAB text}, in the collection's order, which is the stream order).
 */
final class QualityData {
  private QualityData() {}

  /** A text and the index of its label. */
  record Example(String text, int label) {}

  /** The three splits of one k-shot folder. */
  record Split(List<Example> train, List<Example> dev, List<Example> test) {}

  static final List<String> SST2_LABELS = List.of("negative", "positive");
  /** The MeZO paper's SST-2 label words, as sentence-embedding prompts. */
  static final List<String> SST2_PROMPTS = List.of("It was terrible.", "It was great.");
  static final List<String> SMS_LABELS = List.of("ham", "spam");
  /** Chosen before any SMS figure was seen; not tuned on the stream or the held-out part. */
  static final List<String> SMS_PROMPTS = List.of("A personal text message to a friend or family member.",
      "Spam: an advertisement, a prize to claim or a number to call or text.");

  static Split sst2(Path folder) throws IOException {
    return new Split(tsv(folder.resolve("train.tsv")), tsv(folder.resolve("dev.tsv")), tsv(folder.resolve("test.tsv")));
  }

  static List<Example> tsv(Path file) throws IOException {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(file + " is missing: bench quality reads ../shared/data (give --data DIR)");
    }
    List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
    List<Example> out = new ArrayList<>();
    for (int i = 1; i < lines.size(); i++) {
      String line = lines.get(i);
      int tab = line.lastIndexOf('\t');
      if (tab <= 0) {
        throw new IllegalArgumentException(file + " line " + (i + 1) + " has no tab between sentence and label");
      }
      out.add(new Example(line.substring(0, tab).strip(), Integer.parseInt(line.substring(tab + 1).strip())));
    }
    return out;
  }

  /** Every message of the SMS Spam Collection in file order; label 0 ham, 1 spam. */
  static List<Example> sms(Path file) throws IOException {
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException(file + " is missing: bench quality reads ../shared/data (give --data DIR)");
    }
    List<Example> out = new ArrayList<>();
    for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
      int tab = line.indexOf('\t');
      if (tab <= 0) {
        continue;
      }
      String label = line.substring(0, tab);
      if (label.equals("ham") || label.equals("spam")) {
        out.add(new Example(line.substring(tab + 1).strip(), label.equals("spam") ? 1 : 0));
      }
    }
    return out;
  }

  /**
   * The training stream of one seed: {@code count} examples, epoch after epoch over {@code train},
   * each epoch in its own shuffle drawn from the seed. MeZO (as events) and Adam see this same order.
   */
  static List<Example> trainingOrder(List<Example> train, int count, long seed) {
    List<Example> out = new ArrayList<>(count);
    Random rng = new Random(seed);
    while (out.size() < count) {
      List<Example> epoch = new ArrayList<>(train);
      java.util.Collections.shuffle(epoch, rng);
      out.addAll(epoch.subList(0, Math.min(epoch.size(), count - out.size())));
    }
    return out;
  }

  /** The first {@code limit} examples (all when {@code limit <= 0}). */
  static List<Example> first(List<Example> examples, int limit) {
    return limit <= 0 || limit >= examples.size() ? examples : examples.subList(0, limit);
  }

  /**
   * {@code limit} examples evenly spaced over the list (all when {@code limit <= 0}): the k-shot
   * dev files are sorted by label, so a prefix would hold one label only.
   */
  static List<Example> spaced(List<Example> examples, int limit) {
    if (limit <= 0 || limit >= examples.size()) {
      return examples;
    }
    List<Example> out = new ArrayList<>(limit);
    for (int i = 0; i < limit; i++) {
      out.add(examples.get((int) ((long) i * examples.size() / limit)));
    }
    return out;
  }
}
