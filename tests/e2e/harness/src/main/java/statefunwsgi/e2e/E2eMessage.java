package statefunwsgi.e2e;

import com.google.protobuf.Any;
import com.google.protobuf.ByteString;
import java.io.Serializable;
import java.util.Arrays;
import java.util.Base64;

/**
 * One ingress record: the target function address and the payload (the content of a
 * {@code google.protobuf.Any}: type URL + value bytes).
 *
 * <p>A plain POJO (public fields, no-arg constructor) rather than a field of type {@link Any}, so
 * Flink can serialize it with its own POJO serializer should the record ever cross a network
 * boundary between operators; {@link #toAny()} builds the Any.
 */
public final class E2eMessage implements Serializable {
  private static final long serialVersionUID = 1L;

  public String namespace;
  public String type;
  public String id;
  public String typeUrl;
  public byte[] value;

  public E2eMessage() {}

  public E2eMessage(String namespace, String type, String id, String typeUrl, byte[] value) {
    this.namespace = namespace;
    this.type = type;
    this.id = id;
    this.typeUrl = typeUrl;
    this.value = value;
  }

  public Any toAny() {
    return Any.newBuilder().setTypeUrl(typeUrl).setValue(ByteString.copyFrom(value)).build();
  }

  /**
   * Parses {@code <namespace>/<type>/<id> <typeUrl> <base64 of value bytes>}. The address is split
   * at its last two slashes (so the namespace may contain dots and slashes). The base64 part may
   * be empty or missing (empty value). Throws IllegalArgumentException on a malformed line.
   */
  public static E2eMessage parse(String line) {
    String[] parts = line.trim().split("\\s+");
    if (parts.length < 2 || parts.length > 3) {
      throw new IllegalArgumentException(
          "expected '<namespace>/<type>/<id> <typeUrl> <base64>', got: " + line);
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
    byte[] value = parts.length == 3 ? Base64.getDecoder().decode(parts[2]) : new byte[0];
    return new E2eMessage(namespace, type, id, parts[1], value);
  }

  @Override
  public String toString() {
    return namespace + "/" + type + "/" + id + " " + typeUrl + " (" + value.length + " bytes)";
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
