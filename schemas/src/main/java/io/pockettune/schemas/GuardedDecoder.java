package io.pockettune.schemas;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import org.apache.avro.SystemLimitException;
import org.apache.avro.io.Decoder;
import org.apache.avro.util.Utf8;

/**
 * A binary {@link Decoder} that never allocates more than the payload actually holds.
 *
 * <p>In the binary encoding a string or bytes value is a zig-zag varint length followed by that
 * many bytes. Avro 1.12's {@code BinaryDecoder} allocates the declared length before reading, so a
 * corrupt five-byte length makes it allocate up to 2 GiB for a payload of a few bytes (an
 * {@link OutOfMemoryError} on a phone). This decoder reads such values in chunks that double in
 * size (the first at most {@value #FIRST_CHUNK} bytes), so a lie about the length ends in an
 * {@link java.io.EOFException} after allocating about twice what is really there.
 *
 * <p>Everything else is delegated unchanged. The delegate must be a binary decoder: the chunked
 * reads rely on the binary layout. Not thread-safe, like every {@link Decoder}; one is made per
 * datum read.
 */
final class GuardedDecoder extends Decoder {

  static final int FIRST_CHUNK = 64 * 1024;

  private final Decoder in;

  GuardedDecoder(Decoder binary) {
    this.in = binary;
  }

  @Override
  public Utf8 readString(Utf8 old) throws IOException {
    int length = SystemLimitException.checkMaxStringLength(in.readLong());
    if (length > FIRST_CHUNK) {
      return new Utf8(readChunked(length));
    }
    Utf8 result = old != null ? old : new Utf8();
    result.setByteLength(length);
    in.readFixed(result.getBytes(), 0, length);
    return result;
  }

  @Override
  public String readString() throws IOException {
    return readString(null).toString();
  }

  @Override
  public ByteBuffer readBytes(ByteBuffer old) throws IOException {
    int length = SystemLimitException.checkMaxBytesLength(in.readLong());
    return ByteBuffer.wrap(readChunked(length));
  }

  private byte[] readChunked(int length) throws IOException {
    byte[] bytes = new byte[Math.min(length, FIRST_CHUNK)];
    int filled = 0;
    while (true) {
      in.readFixed(bytes, filled, bytes.length - filled);
      filled = bytes.length;
      if (filled == length) {
        return bytes;
      }
      bytes = Arrays.copyOf(bytes, (int) Math.min(length, 2L * filled));
    }
  }

  @Override
  public void readNull() throws IOException {
    in.readNull();
  }

  @Override
  public boolean readBoolean() throws IOException {
    return in.readBoolean();
  }

  @Override
  public int readInt() throws IOException {
    return in.readInt();
  }

  @Override
  public long readLong() throws IOException {
    return in.readLong();
  }

  @Override
  public float readFloat() throws IOException {
    return in.readFloat();
  }

  @Override
  public double readDouble() throws IOException {
    return in.readDouble();
  }

  @Override
  public void skipString() throws IOException {
    in.skipString();
  }

  @Override
  public void skipBytes() throws IOException {
    in.skipBytes();
  }

  @Override
  public void readFixed(byte[] bytes, int start, int length) throws IOException {
    in.readFixed(bytes, start, length);
  }

  @Override
  public void skipFixed(int length) throws IOException {
    in.skipFixed(length);
  }

  @Override
  public int readEnum() throws IOException {
    return in.readEnum();
  }

  @Override
  public long readArrayStart() throws IOException {
    return in.readArrayStart();
  }

  @Override
  public long arrayNext() throws IOException {
    return in.arrayNext();
  }

  @Override
  public long skipArray() throws IOException {
    return in.skipArray();
  }

  @Override
  public long readMapStart() throws IOException {
    return in.readMapStart();
  }

  @Override
  public long mapNext() throws IOException {
    return in.mapNext();
  }

  @Override
  public long skipMap() throws IOException {
    return in.skipMap();
  }

  @Override
  public int readIndex() throws IOException {
    return in.readIndex();
  }
}
