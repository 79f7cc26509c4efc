package io.pockettune.fleet;

import io.pockettune.pipeline.TrajectoryEntry;
import io.pockettune.trainer.StepRecord;
import java.nio.charset.StandardCharsets;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * (user, encoded {@link TrajectoryEntry}) to a Kafka record on the trajectory topic, keyed by the
 * user (so one user's steps stay in order in one partition), timestamped with the step's time. The
 * entry of step 1 carries the run config in {@link TrajectoryEntry#RUN_CONFIG_HEADER}, which a
 * device pulling the trajectory records in its store.
 */
final class TrajectorySerializer implements KafkaRecordSerializationSchema<Tuple2<String, byte[]>> {
  private static final long serialVersionUID = 1L;
  private final String topic;
  private final byte[] runConfig;

  TrajectorySerializer(String topic, String runConfig) {
    this.topic = topic;
    this.runConfig = runConfig.getBytes(StandardCharsets.UTF_8);
  }

  @Override
  public ProducerRecord<byte[], byte[]> serialize(Tuple2<String, byte[]> step, KafkaSinkContext context, Long timestamp) {
    StepRecord rec = TrajectoryEntry.decode(step.f1).record();
    ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, null, rec.timeMillis(),
        step.f0.getBytes(StandardCharsets.UTF_8), step.f1);
    if (rec.step() == 1) {
      r.headers().add(TrajectoryEntry.RUN_CONFIG_HEADER, runConfig);
    }
    return r;
  }
}
