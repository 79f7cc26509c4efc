package io.pockettune.pipeline.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PocketTune;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code pockettune model init|inspect}: make a model package from an ONNX export, and check one. */
@Command(name = "model", mixinStandardHelpOptions = true,
    description = "Make a model package from your ONNX export (init), or check one (inspect).",
    subcommands = {ModelCommand.Init.class, ModelCommand.Inspect.class})
final class ModelCommand implements Runnable {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Spec CommandSpec spec;

  @Override
  public void run() {
    spec.commandLine().usage(spec.commandLine().getOut());
  }

  /** Prints a package description for people. */
  static void describe(PrintWriter out, JsonLine report) throws IOException {
    JsonNode r = JSON.readTree(report.toString());
    long head = r.path("head_parameters").asLong();
    out.printf(Locale.ROOT, "%s: %s (%s), trainable %s: %,d of the model's %,d parameters%s%n",
        r.path("package").asText(), r.path("objective").asText(), r.path("kind").asText(), r.path("trainable").asText(),
        r.path("trainable_parameters").asLong() - head, r.path("parameters").asLong(),
        head > 0 ? String.format(Locale.ROOT, ", and the %,d of the classifier head", head) : "");
    StringBuilder in = new StringBuilder();
    r.path("inputs").forEach(p -> in.append(in.isEmpty() ? "" : ", ").append(p.path("name").asText()));
    StringBuilder outs = new StringBuilder();
    r.path("outputs").forEach(p -> outs.append(outs.isEmpty() ? "" : ", ").append(p.path("name").asText()));
    out.printf("inputs: %s%noutputs: %s%n", in, outs);
    StringBuilder groups = new StringBuilder();
    r.path("parameters_by_group").properties().forEach(e ->
        groups.append(groups.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%s %,d", e.getKey(), e.getValue().asLong())));
    out.printf("parameters by group: %s%n", groups);
    out.printf(Locale.ROOT, "one forward pass, batch of 16: loss %.4f in %.1f ms; resident set %d MB (training needs"
        + " about this: MeZO keeps no gradients or optimizer state)%n", r.path("dummy_batch_loss").asDouble(),
        r.path("forward_ms_batch_16").asDouble(), r.path("estimated_training_bytes").asLong() >> 20);
  }

  @Command(name = "init", mixinStandardHelpOptions = true,
      description = "Inspect an ONNX export and write a model package with a card that works.")
  static final class Init implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Option(names = "--onnx", required = true, paramLabel = "FILE", description = "the model's ONNX export")
    Path onnx;

    @Option(names = "--tokenizer", paramLabel = "FILE", description = "its Hugging Face tokenizer.json (default: byte tokens)")
    Path tokenizer;

    @Option(names = "--objective", description = "causal-lm, prompt-classification, embedding-classification or scalar-loss (default: from the graph)")
    String objective;

    @Option(names = "--labels", paramLabel = "A,B,...", description = "label names (classification)")
    String labels;

    @Option(names = "--label-prompts", paramLabel = "p1|p2|...", description = "one prompt per label, whose embedding starts the head (embedding-classification)")
    String labelPrompts;

    @Option(names = "--label-words", paramLabel = "w1|w2|...", description = "one word per label (prompt-classification)")
    String labelWords;

    @Option(names = "--template", description = "prompt around {text} (prompt-classification), e.g. \"{text} It was\"")
    String template;

    @Option(names = "--pooling", description = "mean or cls (embedding-classification; default mean)")
    String pooling;

    @Option(names = "--temperature", description = "cosine similarity scale (embedding-classification; default 20)")
    Float temperature;

    @Option(names = "--loss-output", description = "the output holding the model's loss (scalar-loss)")
    String lossOutput;

    @Option(names = "--trainable", description = "all, norms, lora[:R:ALPHA[:TARGETS]], side[:R[:TAPS]] (a side"
        + " network of width hidden/R reading the layer-norm outputs matching TAPS) or name patterns A,B (default: all)")
    String trainable;

    @Option(names = "--estimator", paramLabel = "mezo|fzoo[:N]",
        description = "gradient estimator: mezo, or fzoo with N directions per step (default: mezo; fzoo: 8)")
    String estimator;

    @Option(names = "--label-attribute", description = "event attribute holding the label (default: label)")
    String labelAttribute;

    @Option(names = "--max-tokens", description = "tokens per example (default: 128)")
    Integer maxTokens;

    @Option(names = "--lr", description = "suggested learning rate (default: by trainable choice)")
    Float lr;

    @Option(names = "--eps", description = "suggested perturbation scale (default: by trainable choice)")
    Float eps;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "the package folder to write")
    Path out;

    @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
    boolean json;

    @Override
    public Integer call() throws IOException {
      PrintWriter stdout = spec.commandLine().getOut();
      JsonLine report = PocketTune.initModel(new PocketTune.ModelInit(onnx, tokenizer, objective, split(labels, ","),
          split(labelPrompts, "|"), split(labelWords, "|"), template, pooling, temperature, lossOutput, trainable,
          labelAttribute, maxTokens, lr, eps, estimator, out));
      stdout.println("wrote the model package " + report.get("out"));
      describe(stdout, report);
      if (json) {
        stdout.println(report);
      }
      return 0;
    }

    private static List<String> split(String s, String separator) {
      return s == null ? null : List.of(s.split(Pattern.quote(separator), -1)).stream().map(String::strip).toList();
    }
  }

  @Command(name = "inspect", mixinStandardHelpOptions = true,
      description = "Validate a model package with one forward pass and describe it.")
  static final class Inspect implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Parameters(paramLabel = "DIR", description = "the model package")
    Path dir;

    @Option(names = "--threads", description = "worker threads (default: all cores)")
    int threads = Runtime.getRuntime().availableProcessors();

    @Option(names = "--json", description = "make the last line of standard output one JSON object with the figures")
    boolean json;

    @Override
    public Integer call() throws IOException {
      PrintWriter stdout = spec.commandLine().getOut();
      JsonLine report = PocketTune.inspectModel(dir, threads);
      describe(stdout, report);
      if (json) {
        stdout.println(report);
      }
      return 0;
    }
  }
}
