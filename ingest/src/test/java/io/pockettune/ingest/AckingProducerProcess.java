package io.pockettune.ingest;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Map;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The child process of {@link ProducerKillTest}: {@code <dir> <trial>} opens the log (recovering it
 * if the previous child was killed), then sends {@code <trial>:<sequence>} values keyed over two
 * partitions through an {@link EmbeddedProducer} as fast as it can, printing
 * {@code ACK <partition> <offset> <value>} from each successful callback, that is only once the
 * record is durable. It never stops by itself: the parent kills it with SIGKILL.
 */
final class AckingProducerProcess {

    private AckingProducerProcess() {
    }

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        String trial = args[1];
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false, "UTF-8");
        EmbeddedLog log = EmbeddedLog.open(dir, LogConfig.defaults().withSegmentBytes(64 * 1024));
        log.createTopic("events", 2);
        EmbeddedProducer<String, String> producer = new EmbeddedProducer<>(log, Map.of("linger.ms", 1),
                new StringSerializer(), new StringSerializer());
        out.println("READY");
        out.flush();
        for (long seq = 0; ; seq++) {
            String value = trial + ":" + seq;
            producer.send(new ProducerRecord<>("events", "key-" + (seq % 5), value), (m, e) -> {
                if (e == null) {
                    synchronized (out) {
                        out.println("ACK " + m.partition() + " " + m.offset() + " " + value);
                        out.flush();
                    }
                }
            });
        }
    }
}
