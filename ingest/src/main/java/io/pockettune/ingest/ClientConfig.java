package io.pockettune.ingest;

import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.common.utils.Utils;

/**
 * Kafka-style client settings ({@code linger.ms}, {@code group.id}, ...) as given to the embedded
 * producer and consumer: a map or {@link Properties} whose values are strings or already-typed
 * objects. Keys the embedded clients do not use (bootstrap.servers, acks, compression.type, ...)
 * are accepted and ignored, so one configuration serves both a real cluster and the embedded log.
 * Immutable.
 */
final class ClientConfig {

    private final Map<String, Object> values;

    ClientConfig(Map<String, ?> values) {
        this.values = new HashMap<>(values == null ? Map.of() : values);
    }

    ClientConfig(Properties properties) {
        this(Utils.propsToMap(properties == null ? new Properties() : properties));
    }

    Object raw(String key) {
        return values.get(key);
    }

    long getLong(String key, long defaultValue) {
        Object v = values.get(key);
        if (v == null) {
            return defaultValue;
        }
        if (v instanceof Number n) {
            return n.longValue();
        }
        try {
            return Long.parseLong(v.toString().trim());
        } catch (NumberFormatException e) {
            throw new ConfigException(key, v, "expected a whole number; fix the value of '" + key + "'");
        }
    }

    int getInt(String key, int defaultValue) {
        long v = getLong(key, defaultValue);
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE) {
            throw new ConfigException(key, v, "out of the int range; choose a smaller '" + key + "'");
        }
        return (int) v;
    }

    boolean getBoolean(String key, boolean defaultValue) {
        Object v = values.get(key);
        if (v == null) {
            return defaultValue;
        }
        if (v instanceof Boolean b) {
            return b;
        }
        String s = v.toString().trim();
        if (s.equalsIgnoreCase("true") || s.equalsIgnoreCase("false")) {
            return Boolean.parseBoolean(s);
        }
        throw new ConfigException(key, v, "expected true or false; fix the value of '" + key + "'");
    }

    String getString(String key, String defaultValue) {
        Object v = values.get(key);
        return v == null ? defaultValue : v.toString().trim();
    }

    /**
     * @return an instance of the class named by {@code key} (a Class or a class name), configured
     *     with all settings, or null if the key is absent
     */
    <T> T instance(String key, Class<T> type, boolean isKey) {
        Object v = values.get(key);
        if (v == null) {
            return null;
        }
        try {
            Class<?> c = v instanceof Class<?> cls ? cls : Class.forName(v.toString().trim(), true,
                    Utils.getContextOrKafkaClassLoader());
            Object instance = Utils.newInstance(c);
            if (!type.isInstance(instance)) {
                throw new ConfigException(key, v, "is not a " + type.getName() + "; name a class that implements it");
            }
            T t = type.cast(instance);
            if (t instanceof org.apache.kafka.common.serialization.Serializer<?> s) {
                s.configure(values, isKey);
            } else if (t instanceof org.apache.kafka.common.serialization.Deserializer<?> d) {
                d.configure(values, isKey);
            }
            return t;
        } catch (ClassNotFoundException e) {
            throw new ConfigException(key, v, "class not found; put it on the class path or fix the name");
        }
    }
}
