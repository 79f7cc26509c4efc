package io.pockettune.pipeline;

import io.pockettune.store.Checkpoint;
import io.pockettune.store.ModelStore;
import io.pockettune.store.Restored;
import io.pockettune.trainer.ModelExport;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Export of a checkpoint as a standalone ONNX file: the package's graph with the trained values
 * in its initializers ({@link ModelExport}), with the checkpoint, step and parameter digest in the
 * model's metadata. Opens the store read-only, so it works while training runs.
 */
final class Exports {
  private Exports() {}

  static PocketTune.ExportResult export(DataDirectory dir, ModelPackage pkg, int threads, long checkpointId, Path out,
      boolean keepAdapters) throws IOException {
    if (Files.isDirectory(out)) {
      throw new IllegalArgumentException("--out " + out + " is a directory: give a file name such as model.onnx");
    }
    try (StoreSession session = StoreSession.readOnly(dir, pkg, threads)) {
      ModelStore store = session.store();
      Checkpoint c = store.checkpoint(checkpointId).orElseThrow(() -> new IllegalArgumentException(
          "there is no checkpoint " + checkpointId + ": list them with 'pockettune checkpoints'"));
      if (!c.live()) {
        boolean forgotten = store.branches().stream().anyMatch(b -> b.id() == c.branch() && b.forgotten());
        throw new IllegalArgumentException(forgotten
            ? "checkpoint " + c.id() + " (step " + c.step() + ") was superseded when forget removed events it had"
                + " learnt from, and can no longer be restored: export a live checkpoint (see 'pockettune checkpoints')"
            : "checkpoint " + c.id() + " is on branch " + c.branch()
                + ", abandoned by a rollback: export a checkpoint on the live trajectory");
      }
      Restored r = session.restore(c.step());
      String digest = session.model().parameters().digest();
      Map<String, String> meta = new LinkedHashMap<>();
      meta.put("pockettune.checkpoint", Long.toString(c.id()));
      meta.put("pockettune.step", Long.toString(c.step()));
      meta.put("pockettune.parameters_sha256", digest);
      meta.put("pockettune.model_package", pkg.hash());
      if (c.label() != null) {
        meta.put("pockettune.label", c.label());
      }
      byte[] exported = ModelExport.withTrainedValues(Files.readAllBytes(pkg.graph()), session.model().parameters(),
          pkg.selection(), keepAdapters ? ModelExport.Adapters.KEEP : ModelExport.Adapters.MERGE,
          session.model().objective(), meta);
      Path target = out.toAbsolutePath();
      ModelPackage.writeAtomically(target, exported);
      return new PocketTune.ExportResult(c.id(), c.step(), target, exported.length, ModelExport.outputs(exported), digest,
          r.replayed(), r.nanos() / 1_000_000);
    }
  }
}
