package io.pockettune.pipeline;

import io.pockettune.ingest.EmbeddedLog;
import io.pockettune.pipeline.cli.PersonaStream;
import io.pockettune.schemas.EventSerde;
import io.pockettune.schemas.SchemaStore;
import io.pockettune.store.ModelStore;
import io.pockettune.store.RunIdentity;
import io.pockettune.store.SourcePartition;
import io.pockettune.trainer.ByteTokenizer;
import io.pockettune.trainer.DecoderLmBuilder;
import io.pockettune.trainer.DecoderLmConfig;
import io.pockettune.trainer.LossModel;
import io.pockettune.trainer.MezoConfig;
import io.pockettune.trainer.MezoTrainer;
import io.pockettune.trainer.PerturbationKernel;
import io.pockettune.trainer.TrainableSelection;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.kafka.common.TopicPartition;

/** One pipeline over real files: an embedded log, a RocksDB store and a tiny ONNX model. */
final class PipelineFixture implements AutoCloseable {
  static final DecoderLmConfig TINY = new DecoderLmConfig(ByteTokenizer.VOCAB_SIZE, 64, 32, 1, 2, 2, 3L);
  static final byte[] MODEL = DecoderLmBuilder.build(TINY);
  static final MezoConfig MEZO = new MezoConfig(1e-3f, 1e-3f, 17L);

  final EmbeddedLog log;
  final EventSerde serde;
  final LossModel model;
  final PerturbationKernel kernel;
  final ModelStore store;
  final MezoTrainer trainer;

  /** Opens (or reopens) a log and store; restores the model by replaying committed steps. */
  PipelineFixture(Path logDir, Path storeDir) throws IOException {
    log = EmbeddedLog.open(logDir);
    Topics.create(log);
    serde = new EventSerde(SchemaStore.withBuiltIns());
    model = LossModel.causalLm(MODEL, TrainableSelection.all(), 1);
    kernel = new PerturbationKernel(1);
    store = ModelStore.open(storeDir, new RunIdentity(model.baseModelHash(), PerturbationKernel.VERSION,
        model.parameters().layout(), "test"));
    trainer = store.restore(store.lastStep(), model, MEZO, kernel).trainer();
  }

  /** A job reading every partition from the committed offsets to the current end of the log. */
  TrainingJob job(int batch) {
    Map<TopicPartition, Long> start = new LinkedHashMap<>();
    Map<TopicPartition, Long> end = new LinkedHashMap<>();
    Map<SourcePartition, Long> committed = store.committedOffsets();
    for (TopicPartition tp : Topics.sources()) {
      start.put(tp, committed.getOrDefault(new SourcePartition(tp.topic(), tp.partition()), 0L));
      end.put(tp, log.endOffset(tp.topic(), tp.partition()));
    }
    return new TrainingJob(new LogSource(log, start, end), serde, ExampleMapper.defaults(), new ByteTokenizer(),
        TINY.maxPositions(), MicroBatcher.byCount(batch), trainer, store, new DeadLetters(log), 5,
        model.parameters(), 4);
  }

  /** Appends persona events straight to the log, messages keyed by conversation, as the demo's producer does. */
  /**
   * Makes a model package of the tiny decoder under {@code dir} (as {@code pockettune model init}
   * does), with 32 tokens per example and the card's lr and eps given (null: the defaults).
   *
   * @return the package directory, {@code dir/model}
   */
  static Path tinyPackage(Path dir, Float lr, Float eps) throws Exception {
    Path onnx = dir.resolve("decoder.onnx");
    java.nio.file.Files.write(onnx, MODEL);
    Path m = dir.resolve("model");
    PocketTune.initModel(new PocketTune.ModelInit(onnx, null, null, null, null, null, null, null, null, null, null,
        null, 32, lr, eps, m));
    return m;
  }

  static void appendPersona(EmbeddedLog log, EventSerde serde, PersonaStream persona, int count) throws IOException {
    for (PersonaStream.Event e : persona.next(count)) {
      org.apache.avro.specific.SpecificRecord record;
      TopicPartition tp;
      String key;
      if (e instanceof PersonaStream.ChatMessage m) {
        record = io.pockettune.events.Message.newBuilder().setId(m.id()).setConversation(m.conversation())
            .setSender(m.sender()).setText(m.text()).setEventTime(m.time()).setAttrs(m.attrs()).build();
        key = m.conversation();
        tp = new TopicPartition(Topics.MESSAGES, Topics.partitionOf(key, Topics.MESSAGE_PARTITIONS));
      } else {
        PersonaStream.NoteEvent n = (PersonaStream.NoteEvent) e;
        record = io.pockettune.events.Note.newBuilder().setId(n.id()).setTitle(n.title()).setBody(n.body())
            .setEventTime(n.time()).setAttrs(n.attrs()).build();
        key = "maya";
        tp = new TopicPartition(Topics.NOTES, 0);
      }
      log.append(tp.topic(), tp.partition(), java.util.List.of(new io.pockettune.ingest.LogRecord(
          e.time().toEpochMilli(), key.getBytes(java.nio.charset.StandardCharsets.UTF_8), serde.serialize(record))));
    }
  }

  @Override
  public void close() throws IOException {
    store.close();
    kernel.close();
    model.close();
    log.close();
  }
}
