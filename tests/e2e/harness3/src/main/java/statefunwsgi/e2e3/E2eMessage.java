package statefunwsgi.e2e3;

import com.google.protobuf.ByteString;
import java.io.Serializable;
import java.util.Arrays;
import java.util.Base64;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * One ingress record: the target function address and the content of the message, a 3.x {@code
 * TypedValue} (type name, has_value, value bytes).
 *
 * <p>A plain POJO (public fields, no-arg constructor), so Flink serializes it with its own POJO
 * serializer should the record ever cross a network boundary between operators; {@link
 * #toTypedValue()} builds the message a remote function receives.
 */
public final class E2eMessage implements Serializable {
  private static final long serialVersionUID = 1L;

  /** The value field that stands for {@code has_value=false} (base64 never produces it). */
  public static final String NO_VALUE = "-";

  public String namespace;
  public String type;
  public String id;
  public String typename;
  public boolean hasValue;
  public byte[] value;

  public E2eMessage() {}

  public E2eMessage(
      String namespace, String type, String id, String typename, boolean hasValue, byte[] value) {
    this.namespace = namespace;
    this.type = type;
    this.id = id;
    this.typename = typename;
    this.hasValue = hasValue;
    this.value = value;
  }

  public TypedValue toTypedValue() {
    return TypedValue.newBuilder()
        .setTypename(typename)
        .setHasValue(hasValue)
        .setValue(ByteString.copyFrom(value))
        .build();
  }

  /**
   * Parses {@code <namespace>/<type>/<id> <typename> <base64 of value bytes>}. The address is
   * split at its last two slashes (so the namespace may contain dots and slashes). The base64 part
   * may be empty or missing (an empty value, has_value=true, as the runtime's own ingresses send);
   * {@code -} sends {@code has_value=false}. Throws IllegalArgumentException on a malformed line.
   */
  public static E2eMessage parse(String line) {
    String[] parts = line.trim().split("\\s+");
    if (parts.length < 2 || parts.length > 3) {
      throw new IllegalArgumentException(
          "expected '<namespace>/<type>/<id> <typename> <base64>', got: " + line);
    }
    String address = parts[0];
    int idSlash = address.lastIndexOf('/');
    int typeSlash = idSlash > 0 ? address.lastIndexOf('/', idSlash - 1) : -1;
    if (typeSlash <= 0 || idSlash == typeSlash + 1 || idSlash == address.length() - 1) {
      throw new IllegalArgumentException(
          "address must be <namespace>/<type>/<id> with non-empty parts, got: " + address);
    }
    String namespace = address.substring(0, typeSlash);
    String type = address.substring(typeSlash + 1, idSlash);
    String id = address.substring(idSlash + 1);
    boolean hasValue = parts.length < 3 || !NO_VALUE.equals(parts[2]);
    byte[] value =
        parts.length == 3 && hasValue ? Base64.getDecoder().decode(parts[2]) : new byte[0];
    return new E2eMessage(namespace, type, id, parts[1], hasValue, value);
  }

  @Override
  public String toString() {
    return namespace + "/" + type + "/" + id + " " + typename + " ("
        + (hasValue ? value.length + " bytes" : "no value") + ")";
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof E2eMessage)) {
      return false;
    }
    E2eMessage m = (E2eMessage) o;
    return toString().equals(m.toString()) && Arrays.equals(value, m.value);
  }

  @Override
  public int hashCode() {
    return toString().hashCode() * 31 + Arrays.hashCode(value);
  }
}
