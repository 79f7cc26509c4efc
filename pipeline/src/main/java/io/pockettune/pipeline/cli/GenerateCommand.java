package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.PersonalModel;
import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code pockettune generate}: continues a prompt with the personalized model. */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = "Continue a prompt with the personalized model (greedy, or sampled with a seed).")
final class GenerateCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--prompt", required = true, description = "the text to continue")
  String prompt;

  @Option(names = "--checkpoint", paramLabel = "ID|base|latest|step:N",
      description = "which model: base, latest (default), a checkpoint id or step:N")
  String checkpoint = "latest";

  @Option(names = "--max-new-tokens", description = "at most this many new tokens (default: ${DEFAULT-VALUE})")
  int maxNewTokens = 32;

  @Option(names = "--temperature", description = "0 for greedy decoding (default: ${DEFAULT-VALUE})")
  float temperature = 0f;

  @Option(names = "--top-k", description = "sample among the k most probable tokens (default: all)")
  int topK = 0;

  @Option(names = "--top-p", description = "sample within this probability mass (default: ${DEFAULT-VALUE})")
  float topP = 1f;

  @Option(names = "--seed", description = "makes sampling repeatable (default: ${DEFAULT-VALUE})")
  long seed = 0;

  @Option(names = "--stop", description = "stop after this string (repeatable)")
  List<String> stop = List.of();

  @Option(names = "--no-kv-cache", description = "recompute the prefix for every token even if the model has a KV cache")
  boolean noKvCache;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    PrintWriter out = spec.commandLine().getOut();
    PersonalModel.CompletionOptions options = new PersonalModel.CompletionOptions(maxNewTokens, temperature, topK, topP,
        seed, stop, !noKvCache);
    PersonalModel.Completion c;
    try (PocketTune tune = common.builder().model(modelOption.model).threads(threads).open()) {
      c = tune.generate(checkpoint, prompt, options);
    }
    out.println(prompt + c.text());
    out.printf(Locale.ROOT, "(%d new tokens, %.1f tokens/s, %s, step %d)%n", c.tokens(), c.tokensPerSecond(),
        c.kvCache() ? "KV cache" : "prefix recomputed", c.step());
    if (common.json) {
      out.println(c.json());
    }
    return 0;
  }
}
