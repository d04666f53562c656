package statefunwsgi.e2e3;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.apache.flink.statefun.sdk.Address;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.statefun.sdk.io.IngressIdentifier;
import org.apache.flink.statefun.sdk.io.Router;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;

/**
 * Binds the router of the e2e ingress: every {@link E2eMessage} goes to the function address it
 * names, as the {@link TypedValue} a 3.x remote function takes.
 *
 * <p>The ingress spec (stdin) and the egress specs (file) are supplied by {@link Main} through the
 * Harness, which puts them into the universe after all modules are configured (replacing any
 * egress of the same id a module.yaml declared); the remote functions come from the module.yaml
 * ({@code statefun.remote.module-name}, {@code classpath:module.yaml} unless {@code -De2e.module}
 * says otherwise).
 */
public final class E2eModule implements StatefulFunctionModule {

  public static final IngressIdentifier<E2eMessage> INGRESS =
      new IngressIdentifier<>(E2eMessage.class, "statefunwsgi.e2e", "in");

  /** System property: comma-separated egress ids {@code namespace/type} written to the file. */
  public static final String EGRESSES_PROPERTY = "e2e.egresses";

  /** System property: those of the egress ids that check records as the generic Kafka egress. */
  public static final String KAFKA_EGRESSES_PROPERTY = "e2e.kafka.egresses";

  /** System property: those of the egress ids that check records as the generic Kinesis egress. */
  public static final String KINESIS_EGRESSES_PROPERTY = "e2e.kinesis.egresses";

  public static final String DEFAULT_EGRESSES = "e2e/out";

  @Override
  public void configure(Map<String, String> globalConfiguration, Binder binder) {
    binder.bindIngressRouter(INGRESS, new AddressRouter());
  }

  /** The egress identifiers named by system property {@code property} ({@code ns/type,...}). */
  public static List<EgressIdentifier<TypedValue>> egressIds(String property, String defaults) {
    String spec = System.getProperty(property, defaults).trim();
    if (spec.isEmpty()) {
      return Collections.emptyList();
    }
    List<EgressIdentifier<TypedValue>> ids = new ArrayList<>();
    for (String item : spec.split(",")) {
      item = item.trim();
      if (item.isEmpty()) {
        continue;
      }
      int slash = item.lastIndexOf('/');
      if (slash <= 0 || slash == item.length() - 1) {
        throw new IllegalArgumentException(
            property + ": expected namespace/type, got '" + item + "'");
      }
      ids.add(
          new EgressIdentifier<>(
              item.substring(0, slash), item.substring(slash + 1), TypedValue.class));
    }
    return ids;
  }

  static final class AddressRouter implements Router<E2eMessage> {
    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void route(E2eMessage message, Downstream<E2eMessage> downstream) {
      // Downstream is typed by the ingress type, but a remote function takes a TypedValue: it is
      // passed on as such (type erasure), as the runtime's own routable ingresses do.
      ((Downstream) downstream)
          .forward(
              new Address(new FunctionType(message.namespace, message.type), message.id),
              message.toTypedValue());
    }
  }
}
