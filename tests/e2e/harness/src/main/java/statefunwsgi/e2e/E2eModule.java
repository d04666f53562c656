package statefunwsgi.e2e;

import com.google.protobuf.Any;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.apache.flink.statefun.sdk.Address;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.statefun.sdk.io.IngressIdentifier;
import org.apache.flink.statefun.sdk.io.Router;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;

/**
 * Binds the router of the e2e ingress: every {@link E2eMessage} goes to the function address it
 * names, with its Any as the message payload (remote functions take only Any payloads).
 *
 * <p>The ingress spec (stdin) and the egress specs (file) are supplied by {@link Main} through the
 * Harness, which puts them into the universe after all modules are configured; the remote
 * functions themselves come from the module.yaml found on the classpath.
 */
public final class E2eModule implements StatefulFunctionModule {

  public static final IngressIdentifier<E2eMessage> INGRESS =
      new IngressIdentifier<>(E2eMessage.class, "statefunwsgi.e2e", "in");

  /** System property with a comma-separated list of egress ids {@code namespace/type}. */
  public static final String EGRESSES_PROPERTY = "e2e.egresses";

  public static final String DEFAULT_EGRESSES = "e2e/out";

  @Override
  public void configure(Map<String, String> globalConfiguration, Binder binder) {
    binder.bindIngressRouter(INGRESS, new AddressRouter());
  }

  /** The egress identifiers named by {@code -De2e.egresses=ns/type,ns2/type2}. */
  public static List<EgressIdentifier<Any>> egressIds() {
    String spec = System.getProperty(EGRESSES_PROPERTY, DEFAULT_EGRESSES).trim();
    if (spec.isEmpty()) {
      return Collections.emptyList();
    }
    List<EgressIdentifier<Any>> ids = new ArrayList<>();
    for (String item : spec.split(",")) {
      item = item.trim();
      if (item.isEmpty()) {
        continue;
      }
      int slash = item.lastIndexOf('/');
      if (slash <= 0 || slash == item.length() - 1) {
        throw new IllegalArgumentException(
            EGRESSES_PROPERTY + ": expected namespace/type, got '" + item + "'");
      }
      ids.add(new EgressIdentifier<>(item.substring(0, slash), item.substring(slash + 1), Any.class));
    }
    return ids;
  }

  static final class AddressRouter implements Router<E2eMessage> {
    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void route(E2eMessage message, Downstream<E2eMessage> downstream) {
      // Downstream is typed by the ingress type, but a remote function must receive an Any: the
      // payload is passed on as is (type erasure), exactly what the routable Kafka ingress does.
      ((Downstream) downstream)
          .forward(new Address(new FunctionType(message.namespace, message.type), message.id),
              message.toAny());
    }
  }
}
