package statefunwsgi.e2e;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Makes {@code StreamExecutionEnvironment.getExecutionEnvironment()} (which the Harness calls)
 * return a local environment built from our own configuration: the MiniCluster's configuration
 * (parallelism, bind addresses) cannot be set through {@code Harness.withConfiguration}, which
 * only reaches the job-level options (checkpointing, restart strategy).
 *
 * <p>Extends StreamExecutionEnvironment only to reach its protected static hook; never created.
 */
final class LocalCluster extends StreamExecutionEnvironment {
  private LocalCluster() {}

  static void install(Configuration configuration) {
    initializeContextEnvironment(
        () -> StreamExecutionEnvironment.createLocalEnvironment(1, configuration));
  }
}
