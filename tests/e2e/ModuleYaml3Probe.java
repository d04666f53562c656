/*
 * Loads module.yaml files with the real StateFun 3.3.0 code, as the runtime does when a job
 * starts, and prints for each whether the runtime accepts it. Used by
 * tests/e2e/test_flink3_module_yaml.py; run on the 3.3.0 harness's classpath (Java 11+ runs a
 * single source file):
 *
 *   java -cp "$(cat tests/e2e/harness3/target/classpath.txt)" tests/e2e/ModuleYaml3Probe.java a.yaml
 *
 * Prints one line a file: "<path>\tACCEPTED", or "<path>\tREFUSED\t<exception chain>".
 *
 * What it runs, in the runtime's order (3.3.0 sources):
 *   1. The extension modules (ServiceLoader, as Modules.loadFromClassPath): the component binders
 *      (io.statefun.endpoints.v1/http and v2/http, io.statefun.kafka.v1/ingress and egress,
 *      io.statefun.kinesis.v1/ingress and egress) and the transports (okhttp, async); then the
 *      Flink I/O modules (the Kafka and Kinesis source and sink providers).
 *   2. JsonServiceLoader.fromUrl: parse every YAML document; one document with a 'version' is the
 *      legacy format (LegacyRemoteModuleV30), anything else a RemoteModule of kind: components.
 *   3. module.configure into a StatefulFunctionsUniverse: each component's binder, with the
 *      universe's duplicate checks (Modules.createStatefulFunctionsUniverse).
 *   4. What the job does with the universe as it starts: for each function type (a namespace's
 *      provider with the type "<namespace>/fn") HttpFunctionProvider.functionOfType, which parses
 *      the transport's properties and builds its client for the URL (OkHttp's HttpUrl, or the
 *      async transport's Netty endpoint); for each ingress and egress the source or sink the
 *      job's graph is built with (a Kafka consumer or producer, not connected).
 */

import java.io.File;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.statefun.extensions.ExtensionModule;
import org.apache.flink.statefun.flink.core.StatefulFunctionsUniverse;
import org.apache.flink.statefun.flink.core.jsonmodule.JsonServiceLoader;
import org.apache.flink.statefun.flink.core.message.MessageFactoryKey;
import org.apache.flink.statefun.flink.core.message.MessageFactoryType;
import org.apache.flink.statefun.flink.io.spi.FlinkIoModule;
import org.apache.flink.statefun.flink.io.spi.SinkProvider;
import org.apache.flink.statefun.flink.io.spi.SourceProvider;
import org.apache.flink.statefun.sdk.EgressType;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.IngressType;
import org.apache.flink.statefun.sdk.StatefulFunctionProvider;
import org.apache.flink.statefun.sdk.io.EgressSpec;
import org.apache.flink.statefun.sdk.io.IngressSpec;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;

public final class ModuleYaml3Probe {

  public static void main(String[] args) throws Exception {
    Method mapper = JsonServiceLoader.class.getDeclaredMethod("mapper");
    mapper.setAccessible(true);
    Method fromUrl =
        JsonServiceLoader.class.getDeclaredMethod("fromUrl", ObjectMapper.class, URL.class);
    fromUrl.setAccessible(true);

    for (String path : args) {
      String verdict;
      List<StatefulFunctionProvider> providers = new ArrayList<>();
      try {
        Map<String, String> conf = new HashMap<>();
        StatefulFunctionsUniverse universe =
            new StatefulFunctionsUniverse(
                MessageFactoryKey.forType(MessageFactoryType.WITH_PROTOBUF_PAYLOADS, null));
        for (ExtensionModule extension : ServiceLoader.load(ExtensionModule.class)) {
          extension.configure(conf, universe);
        }
        for (FlinkIoModule io : ServiceLoader.load(FlinkIoModule.class)) {
          io.configure(conf, universe);
        }
        URL url = new File(path).toURI().toURL();
        StatefulFunctionModule module =
            (StatefulFunctionModule) unwrap(() -> fromUrl.invoke(null, mapper.invoke(null), url));
        module.configure(conf, universe);

        for (Map.Entry<FunctionType, StatefulFunctionProvider> entry :
            universe.functions().entrySet()) {
          providers.add(entry.getValue());
          entry.getValue().functionOfType(entry.getKey());
        }
        for (Map.Entry<String, StatefulFunctionProvider> entry :
            universe.namespaceFunctions().entrySet()) {
          providers.add(entry.getValue());
          entry.getValue().functionOfType(new FunctionType(entry.getKey(), "fn"));
        }
        for (IngressSpec<?> spec : universe.ingress().values()) {
          SourceProvider source = universe.sources().get(spec.type());
          if (source == null) {
            throw new IllegalStateException("no source provider for " + spec.type());
          }
          source.forSpec(spec);
        }
        for (EgressSpec<?> spec : universe.egress().values()) {
          SinkProvider sink = universe.sinks().get(spec.type());
          if (sink == null) {
            throw new IllegalStateException("no sink provider for " + spec.type());
          }
          sink.forSpec(spec);
        }
        verdict = "ACCEPTED";
      } catch (Throwable t) {
        verdict = "REFUSED\t" + chain(t);
      } finally {
        for (StatefulFunctionProvider provider : providers) {
          shutdown(provider);
        }
      }
      System.out.println(path + "\t" + verdict);
    }
    System.out.flush();
    System.exit(0);
  }

  /** ManagingResources.shutdown, when the provider has it (the HTTP providers do). */
  private static void shutdown(StatefulFunctionProvider provider) {
    try {
      provider.getClass().getMethod("shutdown").invoke(provider);
    } catch (Throwable ignored) {
      // nothing to release
    }
  }

  interface Call {
    Object run() throws Exception;
  }

  private static Object unwrap(Call call) throws Throwable {
    try {
      return call.run();
    } catch (InvocationTargetException e) {
      throw e.getCause();
    }
  }

  /** "Class: message / Class: message ..." from the outermost exception in, on one line. */
  private static String chain(Throwable t) {
    StringBuilder out = new StringBuilder();
    for (Throwable c = t; c != null; c = c.getCause()) {
      if (out.length() > 0) {
        out.append(" / ");
      }
      out.append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
      if (c.getCause() == c) {
        break;
      }
    }
    return out.toString().replace('\n', ' ').replace('\t', ' ');
  }
}
