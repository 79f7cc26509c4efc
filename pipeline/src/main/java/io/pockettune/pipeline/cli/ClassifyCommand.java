package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/** {@code pockettune classify}: each label's probability for a text, from the personalized model. */
@Command(name = "classify", mixinStandardHelpOptions = true,
    description = "Classify a text (or a file of them) with the personalized model: each label's probability.")
final class ClassifyCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Mixin AskOptions ask;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    List<AskOptions.Item> items = ask.items(null);
    List<PersonalModel.Classification> results;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(ask.threads).open()) {
      results = tune.classify(ask.checkpoint, items.stream().map(AskOptions.Item::text).toList());
    }
    List<Object> json = new ArrayList<>();
    for (int i = 0; i < results.size(); i++) {
      PersonalModel.Classification c = results.get(i);
      StringJoiner p = new StringJoiner("  ");
      c.probabilities().forEach((label, prob) -> p.add(String.format(Locale.ROOT, "%s %.4f", label, prob)));
      out.printf(Locale.ROOT, "%s  (%s; step %d)%s%n", c.label(), p, c.step(),
          items.size() > 1 ? "  " + abbreviate(items.get(i).text()) : "");
      json.add(c.json());
    }
    if (common.json) {
      out.println(results.size() == 1 ? results.get(0).json()
          : new JsonLine().put("results", json).put("step", results.get(0).step()));
    }
    return 0;
  }

  static String abbreviate(String s) {
    return s.length() <= 60 ? s : s.substring(0, 57) + "...";
  }
}
