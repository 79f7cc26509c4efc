package io.pockettune.pipeline.cli;

import io.pockettune.pipeline.JsonLine;
import io.pockettune.pipeline.PocketTune;
import io.pockettune.store.Branch;
import io.pockettune.store.Checkpoint;
import io.pockettune.store.Prune;
import java.io.IOException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.StringJoiner;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code pockettune checkpoints}: the history of the model. Lists the checkpoints (id, step,
 * label, time, metrics, and whether a rollback abandoned them) and the abandoned branches; with
 * {@code --prune}, deletes the abandoned branches (and with {@code --thin-snapshots} the snapshots
 * no live checkpoint needs) and reports the space given back.
 */
@Command(name = "checkpoints", mixinStandardHelpOptions = true,
    description = "List the checkpoints of a data directory; --prune deletes abandoned branches.")
final class CheckpointsCommand implements Callable<Integer> {
  @Spec CommandSpec spec;

  @Mixin CommonOptions common;

  @Mixin ModelOption modelOption;

  @Option(names = "--prune", description = "delete the steps of abandoned branches and compact the store")
  boolean prune;

  @Option(names = "--thin-snapshots",
      description = "with --prune, also delete snapshots except the latest and those at live checkpoints")
  boolean thinSnapshots;

  @Override
  public Integer call() throws IOException {
    if (thinSnapshots && !prune) {
      throw new IllegalArgumentException("--thin-snapshots goes with --prune: add --prune");
    }
    PrintWriter out = spec.commandLine().getOut();
    Prune pruned = null;
    try (PocketTune tune = common.builder().model(modelOption.model).open()) {
      if (prune) {
        pruned = tune.prune(thinSnapshots);
      }
      List<Checkpoint> checkpoints = tune.checkpoints();
      List<Branch> branches = tune.branches();
      long lastStep = tune.lastStep();
      out.printf(Locale.ROOT, "%d checkpoints, %d steps on the live trajectory, %d abandoned branches%n",
          checkpoints.size(), lastStep, branches.size());
      if (!checkpoints.isEmpty()) {
        out.printf(Locale.ROOT, "%5s %9s  %-20s  %-16s  %s%n", "id", "step", "time (UTC)", "label", "metrics");
      }
      List<Object> rows = new ArrayList<>();
      for (Checkpoint c : checkpoints) {
        StringJoiner metrics = new StringJoiner(" ");
        c.metrics().forEach((k, v) -> metrics.add(String.format(Locale.ROOT, "%s=%.4f", k, v)));
        boolean superseded = branches.stream().anyMatch(b -> b.id() == c.branch() && b.forgotten());
        String state = c.live() ? "" : superseded ? "  [superseded: forget removed events it had learnt from]"
            : "  [abandoned: branch " + c.branch() + "]";
        out.printf(Locale.ROOT, "%5d %9d  %-20s  %-16s  %s%s%n", c.id(), c.step(),
            c.time().toString().replace('T', ' ').replaceFirst("\\.\\d+Z$|Z$", ""),
            c.label() == null ? "-" : c.label(), metrics, state);
        Map<String, Object> row = new LinkedHashMap<>();
        row.put("id", c.id());
        row.put("step", c.step());
        row.put("label", c.label());
        row.put("time", c.time().toString());
        row.put("live", c.live());
        row.put("superseded", superseded);
        row.put("branch", c.branch());
        row.put("metrics", c.metrics());
        row.put("offsets", PocketTune.offsetsJson(c.offsets()));
        rows.add(row);
      }
      List<Object> branchRows = new ArrayList<>();
      for (Branch b : branches) {
        out.printf(Locale.ROOT, "branch %d: steps %d to %d, abandoned by a rollback to step %d at %s%n",
            b.id(), b.firstStep(), b.lastStep(), b.forkStep(), b.time());
        branchRows.add(new JsonLine().put("id", b.id()).put("fork_step", b.forkStep())
            .put("first_step", b.firstStep()).put("last_step", b.lastStep()).put("time", b.time().toString()));
      }
      if (pruned != null) {
        out.printf(Locale.ROOT, "pruned %d branches (%d steps) and %d snapshots: %,d -> %,d bytes, %,d reclaimed%n",
            pruned.branches(), pruned.steps(), pruned.snapshots(), pruned.bytesBefore(), pruned.bytesAfter(),
            pruned.bytesReclaimed());
      }
      if (common.json) {
        JsonLine json = new JsonLine().put("last_step", lastStep).put("checkpoints", rows)
            .put("branches", branchRows);
        if (pruned != null) {
          json.put("pruned", new JsonLine().put("branches", pruned.branches()).put("steps", pruned.steps())
              .put("snapshots", pruned.snapshots()).put("bytes_before", pruned.bytesBefore())
              .put("bytes_after", pruned.bytesAfter()).put("bytes_reclaimed", pruned.bytesReclaimed()));
        }
        out.println(json);
      }
    }
    return 0;
  }
}
