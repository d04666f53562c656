package statefunwsgi.e2e3;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.statefun.flink.harness.io.SerializableConsumer;
import org.apache.flink.statefun.flink.io.kafka.binders.egress.v1.GenericKafkaEgressSerializer;
import org.apache.flink.statefun.flink.io.kinesis.binders.egress.v1.GenericKinesisEgressSerializer;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * Appends one line per egress record to a file, flushed at once: {@code <egress namespace>/<egress
 * type> <typename> <base64 of value>}, or {@code ... <typename> -} for a record with {@code
 * has_value=false}. Appends from all egresses of the JVM go through one lock, so lines never
 * interleave.
 *
 * <p>An egress of kind {@link Kind#KAFKA} or {@link Kind#KINESIS} first hands the record to the
 * serializer of the runtime's generic Kafka ({@code io.statefun.kafka.v1/egress}) or Kinesis
 * ({@code io.statefun.kinesis.v1/egress}) egress, exactly as that egress would: a record of another
 * type name, or one that does not parse, fails the job as it would with a broker. The line still
 * holds the record as the function sent it.
 */
public final class FileEgressConsumer implements SerializableConsumer<TypedValue> {
  private static final long serialVersionUID = 1L;

  /** How an egress checks its records before they are written. */
  public enum Kind {
    /** Any record. */
    ANY,
    /** A {@code type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord}. */
    KAFKA,
    /** A {@code type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord}. */
    KINESIS
  }

  private static final Map<String, OutputStream> OPEN = new HashMap<>();

  private final String egress;
  private final String path;
  private final Kind kind;

  public FileEgressConsumer(String egressNamespace, String egressType, String path, Kind kind) {
    this.egress = egressNamespace + "/" + egressType;
    this.path = path;
    this.kind = kind;
  }

  @Override
  public void accept(TypedValue value) {
    switch (kind) {
      case KAFKA:
        new GenericKafkaEgressSerializer().serialize(value);
        break;
      case KINESIS:
        new GenericKinesisEgressSerializer().serialize(value);
        break;
      default:
        break;
    }
    String line =
        egress
            + " "
            + value.getTypename()
            + " "
            + (value.getHasValue()
                ? Base64.getEncoder().encodeToString(value.getValue().toByteArray())
                : E2eMessage.NO_VALUE)
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
