package io.pockettune.ingest;

import java.io.IOException;
import java.io.InputStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Properties;

/**
 * The one SASL/PLAIN user of a {@link KafkaListener}: a properties file with {@code username=} and
 * {@code password=} lines, readable by its owner only (mode 0600). The first start writes it with a
 * random 24-byte password; later starts read it, so clients keep working across restarts. A user
 * may edit the file to choose their own password.
 *
 * <p>The file is written to a temporary name and moved into place, so a crash never leaves a half
 * written credentials file; a file that exists but lacks either line is refused in one sentence
 * rather than replaced (replacing it would lock out every configured client).
 */
public record ListenerCredentials(String username, String password) {

    /** The user name the first start writes. */
    public static final String DEFAULT_USERNAME = "pockettune";

    public ListenerCredentials {
        if (username == null || username.isEmpty() || password == null || password.isEmpty()) {
            throw new IllegalArgumentException("the Kafka listener's user name and password must not be empty");
        }
    }

    /**
     * Reads the credentials file, or creates it (mode 0600) with a fresh random password.
     *
     * @return the credentials and whether this call created the file
     * @throws IllegalArgumentException if the file exists without a user name or password line
     */
    public static Loaded loadOrCreate(Path file) throws IOException {
        if (Files.exists(file)) {
            return new Loaded(read(file), false);
        }
        byte[] secret = new byte[24];
        new SecureRandom().nextBytes(secret);
        ListenerCredentials created = new ListenerCredentials(DEFAULT_USERNAME,
                Base64.getUrlEncoder().withoutPadding().encodeToString(secret));
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        Files.deleteIfExists(tmp);
        Files.createFile(tmp, OwnerOnly.fileAttributes(tmp));
        try (Writer out = Files.newBufferedWriter(tmp, StandardCharsets.UTF_8, StandardOpenOption.TRUNCATE_EXISTING)) {
            out.write("# SASL/PLAIN credentials of this device's Kafka listener (pockettune serve --kafka-listener).\n");
            out.write("# Clients use security.protocol=SASL_PLAINTEXT, sasl.mechanism=PLAIN and these values.\n");
            out.write("username=" + created.username() + "\n");
            out.write("password=" + created.password() + "\n");
        }
        try (var channel = java.nio.channels.FileChannel.open(tmp, StandardOpenOption.WRITE)) {
            channel.force(true);
        }
        try {
            Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (FileAlreadyExistsException raced) {
            Files.deleteIfExists(tmp);
            return new Loaded(read(file), false);
        }
        return new Loaded(created, true);
    }

    /** Credentials and whether they were created just now. */
    public record Loaded(ListenerCredentials credentials, boolean created) {
    }

    private static ListenerCredentials read(Path file) throws IOException {
        Properties p = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            p.load(in);
        }
        String user = p.getProperty("username", "").strip();
        String password = p.getProperty("password", "").strip();
        if (user.isEmpty() || password.isEmpty()) {
            throw new IllegalArgumentException("the Kafka listener's credentials file " + file + " has no "
                    + (user.isEmpty() ? "username=" : "password=") + " line: add one, or delete the file to have"
                    + " a new password generated");
        }
        return new ListenerCredentials(user, password);
    }

    /** @return whether the SASL/PLAIN identity and password match, in time independent of where they differ */
    boolean matches(String user, String pass) {
        return MessageDigest.isEqual(username.getBytes(StandardCharsets.UTF_8), user.getBytes(StandardCharsets.UTF_8))
                & MessageDigest.isEqual(password.getBytes(StandardCharsets.UTF_8), pass.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * @return the settings a Kafka client (Java, or librdkafka's names where they are the same) needs
     *     to reach a listener at {@code address} as this user: {@code bootstrap.servers},
     *     {@code security.protocol}, {@code sasl.mechanism} and {@code sasl.jaas.config}
     */
    public java.util.Map<String, Object> clientConfig(java.net.InetSocketAddress address) {
        String host = address.getAddress().getHostAddress();
        java.util.Map<String, Object> c = new java.util.HashMap<>();
        c.put("bootstrap.servers", (host.contains(":") ? "[" + host + "]" : host) + ":" + address.getPort());
        c.put("security.protocol", "SASL_PLAINTEXT");
        c.put("sasl.mechanism", "PLAIN");
        c.put("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\""
                + username + "\" password=\"" + password + "\";");
        return c;
    }

    @Override
    public String toString() {
        return "ListenerCredentials[username=" + username + ", password=<hidden>]";
    }
}
