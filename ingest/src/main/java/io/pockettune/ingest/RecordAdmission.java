package io.pockettune.ingest;

import java.io.IOException;

/**
 * What a {@link KafkaListener} does with each record value a Kafka producer sends, before it is
 * appended: keep it, convert it (a JSON event into the Avro event, say), or refuse it with a
 * reason. The runtime supplies the policy; the listener knows nothing of event formats. (The
 * runtime's policy refuses little: a value that is no event is kept, and the pipeline dead-letters
 * it when it reads it, as it does any undecodable event.)
 *
 * <p>A batch with a refused record is refused as a whole, as a Kafka broker refuses a batch with an
 * invalid record ({@code INVALID_RECORD} with the record's index and the reason): no record of it
 * is appended, so the offsets the producer is told are always the records' own. Before the
 * producer hears of the refusal, each refused record is handed to {@link #deadLetter}, which keeps
 * it durably where the user can see what was refused and why.
 *
 * <p>Implementations must be thread-safe: every connection calls them.
 */
public interface RecordAdmission {

    /** Appends every value as it is and refuses nothing: for tests and for a plain log. */
    RecordAdmission ANY = new RecordAdmission() {
        @Override
        public Verdict admit(String topic, byte[] key, byte[] value, long timestamp) {
            return Verdict.keep(value);
        }

        @Override
        public void deadLetter(String topic, int partition, byte[] key, byte[] value, long timestamp, String reason) {
        }
    };

    /**
     * @param value the record's value as sent, never null
     * @return the verdict on one record
     */
    Verdict admit(String topic, byte[] key, byte[] value, long timestamp);

    /** Durably records a refused record; returns once it is durable. */
    void deadLetter(String topic, int partition, byte[] key, byte[] value, long timestamp, String reason)
            throws IOException;

    /**
     * A verdict: the value to append, or the reason for refusing the record (exactly one is set).
     */
    record Verdict(byte[] value, String refusal) {

        public static Verdict keep(byte[] value) {
            return new Verdict(value, null);
        }

        public static Verdict refuse(String reason) {
            return new Verdict(null, reason);
        }

        public boolean refused() {
            return refusal != null;
        }
    }
}
