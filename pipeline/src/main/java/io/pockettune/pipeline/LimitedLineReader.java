package io.pockettune.pipeline;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.Reader;

/**
 * A {@link BufferedReader} whose {@link #readLine} refuses a line longer than a limit instead of
 * buffering it whole: what the control socket reads requests with, so that a client sending bytes
 * without a line break cannot make the service allocate without bound.
 */
final class LimitedLineReader extends BufferedReader {
  private final int maxChars;

  LimitedLineReader(Reader in, int maxChars) {
    super(in);
    this.maxChars = maxChars;
  }

  /**
   * @return the next line without its terminator ({@code \n} or {@code \r\n}), or null at the end
   * @throws IOException when a line is longer than the limit
   */
  @Override
  public String readLine() throws IOException {
    StringBuilder line = new StringBuilder();
    while (true) {
      int c = read();
      if (c < 0) {
        return line.isEmpty() ? null : line.toString();
      }
      if (c == '\n') {
        int end = line.length();
        return end > 0 && line.charAt(end - 1) == '\r' ? line.substring(0, end - 1) : line.toString();
      }
      if (line.length() >= maxChars) {
        throw new IOException("a request line is longer than " + maxChars + " characters: send one event or request"
            + " per line");
      }
      line.append((char) c);
    }
  }
}
