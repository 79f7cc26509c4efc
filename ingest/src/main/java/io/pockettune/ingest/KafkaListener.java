package io.pockettune.ingest;

import java.io.Closeable;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.utils.Time;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Kafka wire-protocol listener over an {@link EmbeddedLog}: producers and consumers written for
 * Kafka, in any language (the Java clients, librdkafka and what is built on it: kcat, Python, Go,
 * Node), produce to and consume from the device's log with no code change. Off unless asked for.
 *
 * <p><b>What it speaks.</b> The APIs and versions of {@link ListenerApis#SUPPORTED}, decoded and
 * encoded by the message classes {@code kafka-clients} ships ({@code org.apache.kafka.common.message}),
 * never by hand. It presents itself as a one-node cluster (node 1, every partition's leader) at the
 * address each connection arrived on; topics are the log's, topic auto-creation is off.
 *
 * <p><b>Safety.</b> Loopback addresses only unless {@link Settings#allowRemote()}. SASL/PLAIN is
 * required: a connection that has not authenticated gets answers to ApiVersions and the SASL APIs
 * and nothing else (any other request closes it). The password travels in the clear, as SASL/PLAIN
 * over plaintext always does; that is why remote addresses need a second opt-in. A malformed frame
 * (a length out of bounds, a truncated or undecodable request, an unknown API key or an
 * unadvertised version) closes that connection only.
 *
 * <p><b>Durability.</b> A produce request is answered only after its records are durable under the
 * log's flush policy (the same group commit as every other append), or not at all for acks=0.
 * Batches of idempotent producers are de-duplicated by producer id, epoch and sequence, across
 * restarts too (see {@link EmbeddedLog#writeIdempotent}). Record headers are not stored: the log
 * keeps timestamp, key and value.
 *
 * <p><b>Threads.</b> One acceptor thread; per connection a reader that decodes and handles
 * requests in order and a writer that sends the answers in that order, so a produce request waits
 * for its fsync while the reader already appends the next one (the group commit then covers both).
 * Closing the listener closes every connection; the log stays open.
 */
public final class KafkaListener implements Closeable {

    private static final Logger LOG = LoggerFactory.getLogger(KafkaListener.class);
    /** Kafka's {@code socket.request.max.bytes} default: the largest request frame accepted. */
    public static final int DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024;
    public static final int DEFAULT_MAX_CONNECTIONS = 64;

    /**
     * How a listener is set up.
     *
     * @param address where to listen; port 0 picks a free port
     * @param allowRemote whether a non-loopback address may be used
     * @param credentials the one SASL/PLAIN user
     * @param admission what happens to each produced value
     * @param maxRequestBytes the largest request frame; larger ones close the connection
     * @param maxConnections connections beyond this are closed at once
     */
    public record Settings(InetSocketAddress address, boolean allowRemote, ListenerCredentials credentials,
            RecordAdmission admission, int maxRequestBytes, int maxConnections) {

        public Settings {
            Objects.requireNonNull(address, "address");
            Objects.requireNonNull(credentials, "credentials");
            Objects.requireNonNull(admission, "admission");
            if (maxRequestBytes < 1024 || maxConnections < 1) {
                throw new IllegalArgumentException("the Kafka listener needs maxRequestBytes of at least 1024 and"
                        + " at least one connection");
            }
        }

        /** Defaults for everything but the address, the credentials and the admission. */
        public Settings(InetSocketAddress address, boolean allowRemote, ListenerCredentials credentials,
                RecordAdmission admission) {
            this(address, allowRemote, credentials, admission, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_CONNECTIONS);
        }
    }

    private final Settings settings;
    private final ServerSocket server;
    private final ListenerApis apis;
    private final Thread acceptor;
    private final Set<ListenerConnection> connections = ConcurrentHashMap.newKeySet();
    private final Map<ApiKeys, Set<Short>> versionsUsed;
    private final AtomicLong connectionsClosedForErrors = new AtomicLong();
    private final AtomicLong unexpectedErrors = new AtomicLong();
    private volatile boolean closed;

    private KafkaListener(Settings settings, ServerSocket server, ListenerApis apis, Map<ApiKeys, Set<Short>> used) {
        this.settings = settings;
        this.versionsUsed = used;
        this.server = server;
        this.apis = apis;
        this.acceptor = new Thread(this::acceptLoop, "pockettune-kafka-listener " + server.getLocalSocketAddress());
        this.acceptor.setDaemon(true);
    }

    /**
     * Binds the address and starts accepting connections.
     *
     * @throws IllegalArgumentException if the address is not a loopback address and remote
     *     connections were not allowed, or it cannot be resolved
     * @throws IOException if the address cannot be bound (in use, say)
     */
    public static KafkaListener start(EmbeddedLog log, Settings settings, Time time) throws IOException {
        Objects.requireNonNull(log, "log");
        InetSocketAddress address = settings.address();
        if (address.isUnresolved()) {
            throw new IllegalArgumentException("the Kafka listener address " + address.getHostString()
                    + " does not resolve: give an IP address such as 127.0.0.1:9092");
        }
        if (!settings.allowRemote() && !address.getAddress().isLoopbackAddress()) {
            throw new IllegalArgumentException("the Kafka listener address " + address.getAddress().getHostAddress()
                    + " is not a loopback address: listen on 127.0.0.1, or add --kafka-listener-allow-remote to"
                    + " accept connections from other machines (SASL/PLAIN sends the password in the clear)");
        }
        ServerSocket server = new ServerSocket();
        server.setReuseAddress(true);
        try {
            server.bind(address, 128);
        } catch (IOException e) {
            server.close();
            throw new IOException("cannot listen for Kafka clients on " + address.getAddress().getHostAddress() + ":"
                    + address.getPort() + " (" + e.getMessage() + "): choose another port or stop what uses it", e);
        }
        Map<ApiKeys, Set<Short>> used = new ConcurrentHashMap<>();
        KafkaListener started = new KafkaListener(settings, server,
                new ListenerApis(log, settings.credentials(), settings.admission(), time, used), used);
        started.acceptor.start();
        return started;
    }

    /** @return the bound address, with the port chosen if 0 was asked for */
    public InetSocketAddress address() {
        return (InetSocketAddress) server.getLocalSocketAddress();
    }

    /** @return per API, the versions clients used so far (what they negotiated) */
    public Map<String, Set<Short>> versionsUsed() {
        Map<String, Set<Short>> out = new TreeMap<>();
        versionsUsed.forEach((k, v) -> out.put(k.name, new TreeSet<>(v)));
        return out;
    }

    /** @return the number of connections open now */
    public int connections() {
        return connections.size();
    }

    /** @return connections closed because of a malformed or refused request, since start */
    public long connectionsClosedForErrors() {
        return connectionsClosedForErrors.get();
    }

    /**
     * @return handler failures other than a malformed or refused request (a RuntimeException that
     *     escaped a handler: a bug), since start; each also closed its connection
     */
    long unexpectedErrors() {
        return unexpectedErrors.get();
    }

    private void acceptLoop() {
        while (!closed) {
            Socket socket;
            try {
                socket = server.accept();
            } catch (SocketException e) {
                if (!closed) {
                    LOG.warn("the Kafka listener on {} stopped accepting: {}", address(), e.getMessage());
                }
                return;
            } catch (IOException e) {
                LOG.warn("accepting a Kafka client failed: {}", e.getMessage());
                continue;
            }
            if (connections.size() >= settings.maxConnections()) {
                LOG.warn("refusing a Kafka client from {}: {} connections are open, the most allowed",
                        socket.getRemoteSocketAddress(), connections.size());
                closeQuietly(socket);
                continue;
            }
            try {
                ListenerConnection c = new ListenerConnection(socket, apis, settings.maxRequestBytes(), this::closed,
                        unexpectedErrors);
                connections.add(c);
                c.start();
            } catch (IOException | RuntimeException e) {
                LOG.warn("could not set up a Kafka client connection from {}: {}", socket.getRemoteSocketAddress(),
                        e.toString());
                closeQuietly(socket);
            }
        }
    }

    private void closed(ListenerConnection c, boolean forError) {
        connections.remove(c);
        if (forError) {
            connectionsClosedForErrors.incrementAndGet();
        }
    }

    private static void closeQuietly(Socket socket) {
        try {
            socket.close();
        } catch (IOException ignored) {
            // nothing was exchanged on it
        }
    }

    /** Stops accepting, closes every connection (blocked calls are woken) and waits for their threads. */
    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        server.close();
        apis.close();
        for (ListenerConnection c : connections) {
            c.close();
        }
        try {
            acceptor.join(5_000);
            for (ListenerConnection c : connections) {
                c.join(5_000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "KafkaListener[" + address() + ", " + connections.size() + " connections]";
    }
}
