package io.pockettune.ingest;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.net.SocketException;
import java.nio.ByteBuffer;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.function.BiConsumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One Kafka client connection of a {@link KafkaListener}: a reader thread that takes size-prefixed
 * request frames off the socket and hands them to {@link ListenerApis} one at a time, and a writer
 * thread that sends the replies in request order. A reply may be deferred (a produce request's
 * answer waits for its fsync), so the reader goes on with the next request while the writer waits;
 * the queue between them is bounded, which holds a client that pipelines too far back.
 *
 * <p>Anything malformed ({@link ListenerApis.Malformed}) or failing in a handler closes this
 * connection only, after a warning naming the client and the reason.
 */
final class ListenerConnection {

    private static final Logger LOG = LoggerFactory.getLogger(ListenerConnection.class);
    /** Replies not yet written; a client with more requests in flight waits for the socket. */
    private static final int MAX_QUEUED_REPLIES = 32;

    private final Socket socket;
    private final ListenerApis apis;
    private final int maxRequestBytes;
    private final BiConsumer<ListenerConnection, Boolean> onClose;
    private final ListenerApis.Session session;
    private final BlockingQueue<ListenerApis.Reply> replies = new ArrayBlockingQueue<>(MAX_QUEUED_REPLIES);
    private final Thread reader;
    private final Thread writer;
    private volatile boolean closing;
    private volatile boolean closedForError;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    ListenerConnection(Socket socket, ListenerApis apis, int maxRequestBytes,
            BiConsumer<ListenerConnection, Boolean> onClose) throws IOException {
        this.socket = socket;
        this.apis = apis;
        this.maxRequestBytes = maxRequestBytes;
        this.onClose = onClose;
        socket.setTcpNoDelay(true);
        String peer = String.valueOf(socket.getRemoteSocketAddress());
        this.session = new ListenerApis.Session(peer, socket.getLocalAddress().getHostAddress(), socket.getLocalPort(),
                socket.getInetAddress().getHostAddress());
        this.reader = new Thread(this::readLoop, "pockettune-kafka-read " + peer);
        this.writer = new Thread(this::writeLoop, "pockettune-kafka-write " + peer);
        reader.setDaemon(true);
        writer.setDaemon(true);
    }

    void start() {
        writer.start();
        reader.start();
    }

    private void readLoop() {
        // Not try-with-resources: closing the stream closes the socket, and a reply that closes the
        // connection (a failed SASL authentication) must first reach the client; the writer closes it.
        try {
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 64 * 1024));
            while (!closing) {
                int size;
                try {
                    size = in.readInt();
                } catch (EOFException end) {
                    break; // the client closed the connection
                }
                if (size < 0 || size > maxRequestBytes) {
                    throw new ListenerApis.Malformed("a request frame of " + size + " bytes, outside 0.."
                            + maxRequestBytes + " (socket.request.max.bytes)");
                }
                byte[] frame = new byte[size];
                try {
                    in.readFully(frame);
                } catch (EOFException truncated) {
                    throw new ListenerApis.Malformed("a request frame cut short: " + size + " bytes announced");
                }
                ListenerApis.Reply reply = apis.handle(session, ByteBuffer.wrap(frame));
                if (reply != null) {
                    replies.put(reply);
                    if (reply.closesAfter()) {
                        return; // the writer closes once the reply is out
                    }
                }
            }
            shutdown(false);
        } catch (ListenerApis.Malformed e) {
            LOG.warn("closing the Kafka connection from {}: {}", session.peer(), e.getMessage());
            closedForError = true;
            shutdown(true);
        } catch (InterruptedException e) {
            shutdown(false);
        } catch (SocketException e) {
            shutdown(false); // reset by the client, or closed by us
        } catch (IOException | RuntimeException e) {
            if (!closing) {
                LOG.warn("closing the Kafka connection from {} after an error: {}", session.peer(), e.toString());
                closedForError = true;
            }
            shutdown(true);
        }
    }

    private void writeLoop() {
        try (OutputStream out = new BufferedOutputStream(socket.getOutputStream(), 64 * 1024)) {
            while (true) {
                ListenerApis.Reply reply = replies.poll();
                if (reply == null) {
                    out.flush();
                    if (closing) {
                        return;
                    }
                    reply = replies.poll(100, java.util.concurrent.TimeUnit.MILLISECONDS);
                    if (reply == null) {
                        continue;
                    }
                }
                if (reply == ListenerApis.Reply.END) {
                    out.flush();
                    return;
                }
                ByteBuffer body = reply.await();
                writeFrame(out, body);
                if (reply.closesAfter()) {
                    out.flush();
                    closedForError = true;
                    return;
                }
            }
        } catch (ListenerApis.Malformed e) {
            LOG.warn("closing the Kafka connection from {}: {}", session.peer(), e.getMessage());
            closedForError = true;
        } catch (IOException | InterruptedException | RuntimeException e) {
            if (!closing) {
                LOG.warn("closing the Kafka connection from {}: could not answer ({})", session.peer(), e.toString());
                closedForError = true;
            }
        } finally {
            closeSocket();
        }
    }

    private static void writeFrame(OutputStream out, ByteBuffer body) throws IOException {
        int n = body.remaining();
        out.write(n >>> 24);
        out.write(n >>> 16);
        out.write(n >>> 8);
        out.write(n);
        if (body.hasArray()) {
            out.write(body.array(), body.arrayOffset() + body.position(), n);
        } else {
            byte[] copy = new byte[n];
            body.duplicate().get(copy);
            out.write(copy);
        }
    }

    /** Ends the connection: on error at once, otherwise after the replies already queued. */
    private void shutdown(boolean now) {
        if (now) {
            closing = true;
            closeSocket();
        } else {
            try {
                replies.put(ListenerApis.Reply.END);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                closeSocket();
            }
        }
    }

    private void closeSocket() {
        closing = true;
        try {
            socket.close();
        } catch (IOException ignored) {
            // the connection is gone either way
        }
        if (closed.compareAndSet(false, true)) {
            session.closed();
            onClose.accept(this, closedForError);
        }
    }

    /** Closes the socket; both threads end soon after. */
    void close() {
        closing = true;
        closeSocket();
        reader.interrupt();
        writer.interrupt();
    }

    void join(long millis) throws InterruptedException {
        reader.join(millis);
        writer.join(millis);
    }
}
