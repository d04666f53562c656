package statefunwsgi.e2e;

import com.google.protobuf.Any;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.statefun.flink.harness.io.SerializableConsumer;

/**
 * Appends one line per egress record to a file:
 * {@code <egress namespace>/<egress type> <typeUrl> <base64 of Any.value>}, flushed at once.
 * Appends from all egresses of the JVM go through one lock, so lines never interleave.
 */
public final class FileEgressConsumer implements SerializableConsumer<Any> {
  private static final long serialVersionUID = 1L;

  private static final Map<String, OutputStream> OPEN = new HashMap<>();

  private final String egress;
  private final String path;

  public FileEgressConsumer(String egressNamespace, String egressType, String path) {
    this.egress = egressNamespace + "/" + egressType;
    this.path = path;
  }

  @Override
  public void accept(Any any) {
    String line =
        egress
            + " "
            + any.getTypeUrl()
            + " "
            + Base64.getEncoder().encodeToString(any.getValue().toByteArray())
            + "\n";
    append(path, line);
  }

  static void append(String path, String line) {
    synchronized (OPEN) {
      try {
        OutputStream out = OPEN.get(path);
        if (out == null) {
          out = new FileOutputStream(path, true);
          OPEN.put(path, out);
        }
        out.write(line.getBytes(StandardCharsets.UTF_8));
        out.flush();
      } catch (IOException e) {
        throw new UncheckedIOException("cannot append to egress file " + path, e);
      }
    }
  }

  /** Creates the file (empty) if it does not exist yet, so a test can start tailing it. */
  static void touch(String path) {
    synchronized (OPEN) {
      try (FileOutputStream ignored = new FileOutputStream(path, true)) {
        // nothing
      } catch (IOException e) {
        throw new UncheckedIOException("cannot create egress file " + path, e);
      }
    }
  }
}
