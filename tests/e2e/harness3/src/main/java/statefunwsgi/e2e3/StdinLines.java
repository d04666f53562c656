package statefunwsgi.e2e3;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Every line read so far from this JVM's standard input, kept in memory for the life of the JVM.
 *
 * <p>One daemon thread reads stdin; sources only look lines up by index. Because the Flink
 * MiniCluster runs in this same JVM, a source that restarts after a failure can resume from the
 * index of its last checkpoint and replay the lines read since then, and a source being
 * cancelled is never stuck in an uninterruptible read of System.in. On EOF the lines stay, and
 * waiters simply time out (the job keeps running).
 */
final class StdinLines {
  private static final List<String> LINES = new ArrayList<>();
  private static boolean started;
  private static boolean eof;

  private StdinLines() {}

  static synchronized void startReader() {
    if (started) {
      return;
    }
    started = true;
    Thread reader = new Thread(StdinLines::readAll, "e2e-stdin-reader");
    reader.setDaemon(true);
    reader.start();
  }

  private static void readAll() {
    try (BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        synchronized (StdinLines.class) {
          LINES.add(line);
          StdinLines.class.notifyAll();
        }
      }
    } catch (IOException e) {
      System.err.println("E2E-HARNESS stdin read failed: " + e);
    }
    synchronized (StdinLines.class) {
      eof = true;
      StdinLines.class.notifyAll();
    }
    System.err.println("E2E-HARNESS stdin EOF (job keeps running)");
  }

  /** The line at {@code index}, or null if it has not been read within {@code timeoutMs}. */
  static synchronized String await(long index, long timeoutMs) throws InterruptedException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (LINES.size() <= index) {
      long left = deadline - System.currentTimeMillis();
      if (left <= 0) {
        return null;
      }
      StdinLines.class.wait(left);
    }
    return LINES.get((int) index);
  }

  static synchronized boolean isEof() {
    return eof;
  }
}
