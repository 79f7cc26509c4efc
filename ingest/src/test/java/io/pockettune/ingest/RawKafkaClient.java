package io.pockettune.ingest;

import java.io.Closeable;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.message.ApiMessageType;
import org.apache.kafka.common.message.RequestHeaderData;
import org.apache.kafka.common.message.SaslAuthenticateRequestData;
import org.apache.kafka.common.message.SaslAuthenticateResponseData;
import org.apache.kafka.common.message.SaslHandshakeRequestData;
import org.apache.kafka.common.message.SaslHandshakeResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.ApiMessage;
import org.apache.kafka.common.protocol.ByteBufferAccessor;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.RequestHeader;
import org.apache.kafka.common.requests.RequestUtils;
import org.apache.kafka.common.requests.ResponseHeader;

/**
 * A Kafka client at the frame level, for protocol tests of the {@link KafkaListener}: a blocking
 * socket, requests framed and responses parsed by kafka-clients' own header and message classes,
 * nothing encoded by hand. It sends what it is told, valid or not, and reports what came back,
 * including a connection closed by the peer. Not thread-safe.
 */
final class RawKafkaClient implements Closeable {

    /** How long a read waits for a response (or for the peer to close) before giving up. */
    static final int READ_TIMEOUT_MS = 5_000;

    /** A response: its header's correlation id and the decoded body. */
    record Response<T extends ApiMessage>(int correlationId, T body) {
    }

    private final Socket socket;
    private final DataInputStream in;
    private final OutputStream out;
    private int nextCorrelationId = 1;

    RawKafkaClient(InetSocketAddress address) throws IOException {
        socket = new Socket();
        socket.connect(address, READ_TIMEOUT_MS);
        socket.setTcpNoDelay(true);
        socket.setSoTimeout(READ_TIMEOUT_MS);
        in = new DataInputStream(socket.getInputStream());
        out = socket.getOutputStream();
    }

    /** @return the frame of a request (without the size prefix), with the next correlation id */
    byte[] frame(ApiKeys key, short version, ApiMessage body) {
        RequestHeader header = new RequestHeader(key, version, "raw", nextCorrelationId++);
        return bytes(RequestUtils.serialize(header.data(), header.headerVersion(), body, version));
    }

    /**
     * @return the frame of a request whose header says {@code headerApiVersion} while the body is
     *     written in {@code bodyVersion}: for versions the message classes cannot write
     */
    byte[] frame(ApiKeys key, short headerApiVersion, short bodyVersion, ApiMessage body) {
        RequestHeaderData header = new RequestHeaderData().setRequestApiKey(key.id)
                .setRequestApiVersion(headerApiVersion).setClientId("raw").setCorrelationId(nextCorrelationId++);
        return bytes(RequestUtils.serialize(header, key.requestHeaderVersion(bodyVersion), body, bodyVersion));
    }

    /** Sends a request; @return its correlation id */
    int send(ApiKeys key, short version, ApiMessage body) throws IOException {
        int id = nextCorrelationId;
        sendFrame(frame(key, version, body));
        return id;
    }

    /** Sends one frame: a 4-byte size, then the bytes. */
    void sendFrame(byte[] frame) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4 + frame.length).putInt(frame.length).put(frame);
        sendRaw(b.array());
    }

    /** Sends bytes as they are, with no framing. */
    void sendRaw(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    /** Reads one response frame of {@code key} in {@code version}. */
    @SuppressWarnings("unchecked")
    <T extends ApiMessage> Response<T> receive(ApiKeys key, short version) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(receiveFrame());
        ResponseHeader header = ResponseHeader.parse(buf, key.responseHeaderVersion(version));
        ApiMessage body = ApiMessageType.fromApiKey(key.id).newResponse();
        body.read(new ByteBufferAccessor(buf), version);
        if (buf.hasRemaining()) {
            throw new IOException(buf.remaining() + " bytes after a " + key.name + " v" + version + " response");
        }
        return new Response<>(header.correlationId(), (T) body);
    }

    /** Sends a request and reads its response, checking the correlation id. */
    <T extends ApiMessage> T call(ApiKeys key, short version, ApiMessage body) throws IOException {
        int id = send(key, version, body);
        Response<T> r = receive(key, version);
        if (r.correlationId() != id) {
            throw new IOException("correlation id " + r.correlationId() + " answered request " + id);
        }
        return r.body();
    }

    /** Reads one size-prefixed frame. */
    byte[] receiveFrame() throws IOException {
        int size = in.readInt();
        byte[] frame = new byte[size];
        in.readFully(frame);
        return frame;
    }

    /** SaslHandshake v1 and SaslAuthenticate v2 with PLAIN; @return the error of the step that failed, or NONE */
    Errors authenticate(String user, String password) throws IOException {
        SaslHandshakeResponseData hs = call(ApiKeys.SASL_HANDSHAKE, (short) 1,
                new SaslHandshakeRequestData().setMechanism("PLAIN"));
        if (hs.errorCode() != Errors.NONE.code()) {
            return Errors.forCode(hs.errorCode());
        }
        SaslAuthenticateResponseData auth = call(ApiKeys.SASL_AUTHENTICATE, (short) 2,
                new SaslAuthenticateRequestData().setAuthBytes(plainToken(user, password)));
        return Errors.forCode(auth.errorCode());
    }

    /** @return the SASL/PLAIN token {@code \0user\0password} */
    static byte[] plainToken(String user, String password) {
        return ("\0" + user + "\0" + password).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Waits up to {@code timeoutMs} for the peer to close. Bytes that arrive meanwhile (responses)
     * are discarded.
     *
     * @return whether the peer closed (end of stream or reset) within the timeout
     */
    boolean isClosedByPeer(int timeoutMs) throws IOException {
        long deadline = System.nanoTime() + timeoutMs * 1_000_000L;
        byte[] sink = new byte[8192];
        try {
            while (true) {
                long left = (deadline - System.nanoTime()) / 1_000_000L;
                if (left <= 0) {
                    return false;
                }
                socket.setSoTimeout((int) left);
                if (in.read(sink) < 0) {
                    return true;
                }
            }
        } catch (SocketTimeoutException e) {
            return false;
        } catch (SocketException | EOFException e) {
            return true;
        } finally {
            if (!socket.isClosed()) {
                socket.setSoTimeout(READ_TIMEOUT_MS);
            }
        }
    }

    private static byte[] bytes(ByteBuffer b) {
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
