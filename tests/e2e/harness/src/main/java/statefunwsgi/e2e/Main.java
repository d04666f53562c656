package statefunwsgi.e2e;

import com.google.protobuf.Any;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.statefun.flink.harness.Harness;
import org.apache.flink.statefun.sdk.io.EgressIdentifier;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Runs the StateFun 2.2.2 runtime (a Flink MiniCluster, parallelism 1) in this JVM.
 *
 * <ul>
 *   <li>Functions: every {@code module.yaml} on the classpath (put a directory holding a generated
 *       one on the classpath).
 *   <li>Ingress: stdin, one line per message: {@code <namespace>/<type>/<id> <typeUrl> <base64>}.
 *   <li>Egress: each id of {@code -De2e.egresses=ns/type,...} (default {@code e2e/out}) appends
 *       {@code <ns>/<type> <typeUrl> <base64 of value>} lines to {@code -De2e.egress.file}.
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
      System.setProperty("log4j.configuration", "statefunwsgi-e2e-log4j.properties");
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

    // The MiniCluster: parallelism 1, one slot, its REST endpoint on a free port of loopback.
    Configuration cluster = new Configuration();
    cluster.setString("rest.bind-address", "127.0.0.1");
    cluster.setString("rest.address", "127.0.0.1");
    cluster.setString("rest.bind-port", "0");
    cluster.setString("taskmanager.host", "127.0.0.1");
    cluster.setString("jobmanager.rpc.address", "127.0.0.1");
    cluster.setString("taskmanager.numberOfTaskSlots", "1");
    StreamExecutionEnvironment.setDefaultLocalParallelism(1);
    LocalCluster.install(cluster);

    Harness harness =
        new Harness()
            .withFlinkJobName("statefun-wsgi-e2e")
            .withConfiguration("parallelism.default", "1")
            .withConfiguration(
                "execution.checkpointing.interval", System.getProperty("e2e.checkpoint.interval", "1s"))
            .withConfiguration("restart-strategy", "fixed-delay")
            .withConfiguration(
                "restart-strategy.fixed-delay.attempts",
                System.getProperty("e2e.restart.attempts", "1000"))
            .withConfiguration(
                "restart-strategy.fixed-delay.delay", System.getProperty("e2e.restart.delay", "1s"))
            .withFlinkSourceFunction(E2eModule.INGRESS, new StdinSource());

    StringBuilder names = new StringBuilder();
    for (EgressIdentifier<Any> id : E2eModule.egressIds()) {
      harness.withConsumingEgress(id, new FileEgressConsumer(id.namespace(), id.name(), egressFile));
      names.append(names.length() == 0 ? "" : ",").append(id.namespace()).append('/').append(id.name());
    }
    System.err.println(
        "E2E-HARNESS starting: egresses=" + names + " egress-file=" + egressFile);
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
