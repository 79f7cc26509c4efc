package io.pockettune.pipeline;

import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.ModelExport;
import io.pockettune.trainer.PerturbationKernel;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune export --checkpoint <id> --out <file>}: writes the model at a checkpoint as a
 * standalone ONNX file, the base model with the trained values in its initializers (see {@link
 * ModelExport}). Opens the store read-only, so it works while another process trains.
 */
@Command(name = "export", mixinStandardHelpOptions = true,
    description = "Write a standalone ONNX model with the trained values of a checkpoint.")
final class ExportCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Option(names = "--checkpoint", required = true, paramLabel = "ID",
      description = "checkpoint id (see 'pockettune checkpoints')")
  long checkpointId;

  @Option(names = "--out", required = true, paramLabel = "FILE", description = "the .onnx file to write")
  Path out;

  @Option(names = "--threads", description = "worker threads (default: all cores)")
  int threads = Runtime.getRuntime().availableProcessors();

  @Override
  public Integer call() throws IOException {
    if (threads < 1) {
      throw new IllegalArgumentException("--threads must be positive");
    }
    if (Files.isDirectory(out)) {
      throw new IllegalArgumentException("--out " + out + " is a directory: give a file name such as model.onnx");
    }
    PrintWriter stdout = spec.commandLine().getOut();
    byte[] onnx = StoreCommands.baseModel(common.dataDir);
    try (ModelStore store = StoreCommands.openReadOnly(common.dataDir)) {
      Checkpoint c = store.checkpoint(checkpointId).orElseThrow(() -> new IllegalArgumentException(
          "there is no checkpoint " + checkpointId + ": list them with 'pockettune checkpoints'"));
      if (!c.live()) {
        throw new IllegalArgumentException("checkpoint " + c.id() + " is on branch " + c.branch()
            + ", abandoned by a rollback: export a checkpoint on the live trajectory");
      }
      try (LossModel model = StoreCommands.loadModel(onnx, store.identity(), threads);
          PerturbationKernel kernel = new PerturbationKernel(threads)) {
        Restored r = store.restore(c.step(), model, StoreCommands.replayConfig(store.identity()), kernel);
        String digest = model.parameters().digest();
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("pockettune.checkpoint", Long.toString(c.id()));
        meta.put("pockettune.step", Long.toString(c.step()));
        meta.put("pockettune.parameters_sha256", digest);
        if (c.label() != null) {
          meta.put("pockettune.label", c.label());
        }
        byte[] exported = ModelExport.withTrainedValues(onnx, model.parameters(), meta);
        Path target = out.toAbsolutePath();
        if (target.getParent() != null) {
          Files.createDirectories(target.getParent());
        }
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.write(tmp, exported);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        stdout.printf(Locale.ROOT, "exported checkpoint #%d (step %d) to %s: %,d bytes, outputs %s, parameters sha256 %s%n",
            c.id(), c.step(), target, exported.length, ModelExport.outputs(exported), digest);
        if (common.json) {
          stdout.println(new JsonLine().put("checkpoint", c.id()).put("step", c.step()).put("out", target.toString())
              .put("bytes", exported.length).put("parameters_sha256", digest)
              .put("replayed", r.replayed()).put("restore_ms", r.nanos() / 1_000_000));
        }
      }
    }
    return 0;
  }
}
