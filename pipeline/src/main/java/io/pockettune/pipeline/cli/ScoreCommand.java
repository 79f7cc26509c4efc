package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune score}: the personalized model's loss and perplexity on a text (for a
 * classifier, against the text's label, with that label's probability).
 */
@Command(name = "score", mixinStandardHelpOptions = true,
    description = "Score a text (or a file of them): loss per token and perplexity under the personalized model.")
final class ScoreCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Mixin AskOptions ask;

  @Option(names = "--label", description = "the text's label (classifiers)")
  String label;

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    List<AskOptions.Item> items = ask.items(label);
    List<PersonalModel.Score> results;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(ask.threads).open()) {
      results = tune.score(ask.checkpoint, items.stream().map(AskOptions.Item::text).toList(),
          items.stream().map(AskOptions.Item::label).toList());
    }
    List<Object> json = new ArrayList<>();
    double sum = 0;
    long tokens = 0;
    for (int i = 0; i < results.size(); i++) {
      PersonalModel.Score s = results.get(i);
      out.printf(Locale.ROOT, "loss %.4f  perplexity %.3f  (%d tokens%s; step %d)%s%n", s.loss(), s.perplexity(),
          s.tokens(), s.labelProbability() == null ? "" : String.format(Locale.ROOT, ", label probability %.4f",
              s.labelProbability()), s.step(), items.size() > 1 ? "  " + ClassifyCommand.abbreviate(items.get(i).text()) : "");
      json.add(s.json());
      sum += s.loss() * s.tokens();
      tokens += s.tokens();
    }
    if (common.json) {
      out.println(results.size() == 1 ? results.get(0).json()
          : new JsonLine().put("results", json).put("loss", sum / tokens).put("perplexity", Math.exp(sum / tokens))
              .put("step", results.get(0).step()));
    }
    return 0;
  }
}
