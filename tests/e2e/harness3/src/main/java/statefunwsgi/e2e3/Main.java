package statefunwsgi.e2e3;

import java.util.HashSet;
import java.util.Set;
import org.apache.flink.statefun.flink.harness.Harness;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.statefun.sdk.reqreply.generated.TypedValue;

/**
 * Runs the StateFun 3.3.0 runtime (a Flink 1.16.2 MiniCluster, parallelism 1) in this JVM.
 *
 * <ul>
 *   <li>Functions: the module.yaml named by {@code -De2e.module} (a {@code statefun.remote.module-name}:
 *       {@code file:///path/module.yaml}, or the default {@code classpath:module.yaml}: put a
 *       directory holding a generated one on the classpath).
 *   <li>Ingress: stdin, one line per message: {@code <namespace>/<type>/<id> <typename> <base64>}.
 *   <li>Egress: each id of {@code -De2e.egresses=ns/type,...} (default {@code e2e/out}) appends
 *       {@code <ns>/<type> <typename> <base64 of value>} lines to {@code -De2e.egress.file}; the
 *       ids also named in {@code -De2e.kafka.egresses} / {@code -De2e.kinesis.egresses} check each
 *       record as the generic Kafka / Kinesis egress does.
 * </ul>
 *
 * <p>Other system properties: {@code e2e.checkpoint.interval} (default {@code 1s}), {@code
 * e2e.restart.delay} (default {@code 1s}), {@code e2e.restart.attempts} (default 1000), {@code
 * e2e.log.level} (default WARN; log4j 1.2 output goes to stderr). Each may also be given as a
 * program argument {@code -Dkey=value} after the main class.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    // -Dkey=value given after the main class work like JVM -D options (easy to append).
    for (String arg : args) {
      int eq = arg.indexOf('=');
      if (arg.startsWith("-D") && eq > 2) {
        System.setProperty(arg.substring(2, eq), arg.substring(eq + 1));
      } else {
        System.err.println("E2E-HARNESS error: unknown argument " + arg + " (expected -Dkey=value)");
        System.exit(2);
      }
    }
    // Before anything touches log4j: our own config (stderr, WARN), unless the caller set one.
    if (System.getProperty("log4j.configuration") == null) {
      System.setProperty("log4j.configuration", "statefunwsgi-e2e3-log4j.properties");
    }
    if (System.getProperty("e2e.log.level") == null) {
      System.setProperty("e2e.log.level", "WARN");
    }

    String egressFile = System.getProperty("e2e.egress.file");
    if (egressFile == null || egressFile.isEmpty()) {
      System.err.println("E2E-HARNESS error: -De2e.egress.file=/path/to/egress.txt is required");
      System.exit(2);
    }
    FileEgressConsumer.touch(egressFile);
    String module = System.getProperty("e2e.module", "classpath:module.yaml");

    // The 3.x Harness hands its whole configuration to the local environment, so the
    // MiniCluster's own settings (bind addresses, slots) go here too.
    Harness harness =
        new Harness()
            .withFlinkJobName("statefun-wsgi-e2e3")
            .withParallelism(1)
            .withConfiguration("statefun.remote.module-name", module)
            .withConfiguration("rest.bind-address", "127.0.0.1")
            .withConfiguration("rest.address", "127.0.0.1")
            .withConfiguration("rest.bind-port", "0")
            .withConfiguration("taskmanager.host", "127.0.0.1")
            .withConfiguration("jobmanager.rpc.address", "127.0.0.1")
            .withConfiguration("taskmanager.numberOfTaskSlots", "1")
            .withConfiguration(
                "execution.checkpointing.interval", System.getProperty("e2e.checkpoint.interval", "1s"))
            .withConfiguration("restart-strategy", "fixed-delay")
            .withConfiguration(
                "restart-strategy.fixed-delay.attempts",
                System.getProperty("e2e.restart.attempts", "1000"))
            .withConfiguration(
                "restart-strategy.fixed-delay.delay", System.getProperty("e2e.restart.delay", "1s"))
            .withFlinkSourceFunction(E2eModule.INGRESS, new StdinSource());

    Set<EgressIdentifier<TypedValue>> kafka =
        new HashSet<>(E2eModule.egressIds(E2eModule.KAFKA_EGRESSES_PROPERTY, ""));
    Set<EgressIdentifier<TypedValue>> kinesis =
        new HashSet<>(E2eModule.egressIds(E2eModule.KINESIS_EGRESSES_PROPERTY, ""));
    StringBuilder names = new StringBuilder();
    for (EgressIdentifier<TypedValue> id :
        E2eModule.egressIds(E2eModule.EGRESSES_PROPERTY, E2eModule.DEFAULT_EGRESSES)) {
      FileEgressConsumer.Kind kind =
          kafka.remove(id)
              ? FileEgressConsumer.Kind.KAFKA
              : kinesis.remove(id) ? FileEgressConsumer.Kind.KINESIS : FileEgressConsumer.Kind.ANY;
      harness.withConsumingEgress(
          id, new FileEgressConsumer(id.namespace(), id.name(), egressFile, kind));
      names.append(names.length() == 0 ? "" : ",").append(id.namespace()).append('/')
          .append(id.name());
      if (kind != FileEgressConsumer.Kind.ANY) {
        names.append('(').append(kind.name().toLowerCase()).append(')');
      }
    }
    if (!kafka.isEmpty() || !kinesis.isEmpty()) {
      kafka.addAll(kinesis);
      System.err.println(
          "E2E-HARNESS error: -De2e.kafka.egresses / -De2e.kinesis.egresses name ids missing from "
              + "-De2e.egresses (or named twice): " + kafka);
      System.exit(2);
    }
    System.err.println(
        "E2E-HARNESS starting: module=" + module + " egresses=" + names + " egress-file="
            + egressFile);
    try {
      harness.start(); // runs the streaming job; returns only if the job ends
      System.err.println("E2E-HARNESS job ended");
    } catch (Throwable t) {
      System.err.println("E2E-HARNESS job failed for good:");
      t.printStackTrace();
      // The MiniCluster leaves non-daemon threads behind: exit explicitly so the test sees it.
      System.exit(1);
    }
    System.exit(0);
  }
}
