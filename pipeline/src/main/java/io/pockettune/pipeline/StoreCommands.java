package io.pockettune.pipeline;

import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Locale;
import java.util.StringJoiner;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the store commands ({@code checkpoints}, {@code rollback}, {@code export}) share: where a
 * data directory keeps its model and store (the layout {@code demo} and {@code serve} leave
 * behind: {@code model/base.onnx}, {@code store/}), and loading the base model with the trainable
 * tensors the store was recorded with.
 */
final class StoreCommands {
  private static final Pattern DISTRIBUTION = Pattern.compile("\"distribution\"\\s*:\\s*\"(\\w+)\"");
  private static final Pattern WEIGHT_DECAY =
      Pattern.compile("\"weight_decay\"\\s*:\\s*([-+0-9.eE]+)");

  private StoreCommands() {}

  static Path storeDir(Path dataDir) {
    return dataDir.resolve("store");
  }

  static byte[] baseModel(Path dataDir) throws IOException {
    Path file = dataDir.resolve("model").resolve("base.onnx");
    if (!Files.isRegularFile(file)) {
      throw new IllegalArgumentException("there is no base model at " + file
          + ": check --data-dir (it must be a directory that demo or serve trained in)");
    }
    return Files.readAllBytes(file);
  }

  /** Loads the base model with the trainable tensors the store's layout names. */
  static LossModel loadModel(byte[] onnx, RunIdentity identity, int threads) {
    return LossModel.causalLm(onnx, selection(identity.trainableLayout()), threads);
  }

  /** A selection of exactly the tensors a layout ("name[d0, d1];name2[d0];") names. */
  static TrainableSelection selection(String layout) {
    if (layout.contains(".lora_A[")) {
      throw new IllegalArgumentException("this store trained LoRA adapters, which the store commands do not"
          + " restore yet (they need the rank and alpha recorded with the run): use a full-parameter run");
    }
    StringJoiner names = new StringJoiner("|");
    for (String entry : layout.split(";")) {
      int bracket = entry.lastIndexOf('[');
      if (bracket > 0) {
        names.add(Pattern.quote(entry.substring(0, bracket)));
      }
    }
    return TrainableSelection.matching(names.toString());
  }

  /**
   * The config to replay a store's steps with. Replay takes lr and eps from each step record, but
   * the direction distribution and weight decay from the config; they are read from the run
   * config's JSON keys {@code "distribution"} and {@code "weight_decay"}, defaulting to plain MeZO
   * (Gaussian, no decay) as the demo trains. The commands never train, so the rest is unused.
   */
  static MezoConfig replayConfig(RunIdentity identity) {
    MezoConfig config = new MezoConfig(1e-3f, 0f, 0L);
    Matcher d = DISTRIBUTION.matcher(identity.runConfig());
    if (d.find()) {
      try {
        config = config.withDistribution(
            PerturbationKernel.Distribution.valueOf(d.group(1).toUpperCase(Locale.ROOT)));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("the store's run config names the direction distribution '"
            + d.group(1) + "', which this PocketTune does not know: use the version that trained it", e);
      }
    }
    Matcher w = WEIGHT_DECAY.matcher(identity.runConfig());
    if (w.find()) {
      config = config.withWeightDecay(Float.parseFloat(w.group(1)));
    }
    return config;
  }

  static Map<String, Long> offsetsJson(Map<SourcePartition, Long> offsets) {
    Map<String, Long> out = new LinkedHashMap<>();
    offsets.forEach((p, o) -> out.put(p.toString(), o));
    return out;
  }

  static String offsetsText(Map<SourcePartition, Long> offsets) {
    if (offsets.isEmpty()) {
      return "(none: the source starts from the beginning)";
    }
    StringJoiner j = new StringJoiner(", ");
    offsets.forEach((p, o) -> j.add(p + "=" + o));
    return j.toString();
  }

  /** Opens the data directory's store for reading, with the message the commands share. */
  static ModelStore openReadOnly(Path dataDir) {
    return ModelStore.openReadOnly(storeDir(dataDir));
  }
}
