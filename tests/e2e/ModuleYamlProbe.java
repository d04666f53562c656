/*
 * Loads module.yaml files with the real StateFun 2.2.2 code, as the runtime does when a job
 * starts, and prints for each whether the runtime accepts it. Used by
 * tests/e2e/test_module_yaml_flink.py; run on the e2e harness's classpath (Java 11+ runs a
 * single source file):
 *
 *   java -cp "$(cat tests/e2e/harness/target/classpath.txt)" tests/e2e/ModuleYamlProbe.java a.yaml b.yaml
 *
 * Prints one line a file: "<path>\tACCEPTED", or "<path>\tREFUSED\t<exception chain>".
 *
 * What it runs, in the runtime's order (2.2.2 sources):
 *   1. JsonServiceLoader.fromUrl: parse the YAML, /module/meta/type, /module/spec, /version.
 *   2. JsonModule.configure into a StatefulFunctionsUniverse: functions, ingresses, routers and
 *      egresses, with the universe's duplicate checks (Modules.createStatefulFunctionsUniverse).
 *   3. For each function: HttpFunctionProvider.functionOfType (the state registry, which refuses
 *      a state name twice, and the OkHttp client with its timeouts), and for each state the TTL
 *      that FlinkState sets on its Flink state descriptor (ExpirationUtil.configureStateTtl).
 */

import java.io.File;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.api.common.state.StateDescriptor;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.statefun.flink.core.StatefulFunctionsUniverse;
import org.apache.flink.statefun.flink.core.httpfn.HttpFunctionProvider;
import org.apache.flink.statefun.flink.core.httpfn.HttpFunctionSpec;
import org.apache.flink.statefun.flink.core.httpfn.StateSpec;
import org.apache.flink.statefun.flink.core.jsonmodule.JsonServiceLoader;
import org.apache.flink.statefun.flink.core.message.MessageFactoryType;
import org.apache.flink.statefun.sdk.FunctionType;
import org.apache.flink.statefun.sdk.StatefulFunctionProvider;
import org.apache.flink.statefun.sdk.spi.StatefulFunctionModule;
import org.apache.flink.statefun.sdk.state.Expiration;

public final class ModuleYamlProbe {

  public static void main(String[] args) throws Exception {
    Method mapper = JsonServiceLoader.class.getDeclaredMethod("mapper");
    mapper.setAccessible(true);
    Method fromUrl =
        JsonServiceLoader.class.getDeclaredMethod("fromUrl", ObjectMapper.class, URL.class);
    fromUrl.setAccessible(true);
    Class<?> expirationUtil =
        Class.forName("org.apache.flink.statefun.flink.core.state.ExpirationUtil");
    Method configureStateTtl =
        expirationUtil.getDeclaredMethod(
            "configureStateTtl", StateDescriptor.class, Expiration.class);
    configureStateTtl.setAccessible(true);

    for (String path : args) {
      String verdict;
      try {
        URL url = new File(path).toURI().toURL();
        StatefulFunctionModule module =
            (StatefulFunctionModule) unwrap(() -> fromUrl.invoke(null, mapper.invoke(null), url));
        StatefulFunctionsUniverse universe =
            new StatefulFunctionsUniverse(MessageFactoryType.WITH_PROTOBUF_PAYLOADS);
        Map<String, String> conf = new HashMap<>();
        module.configure(conf, universe);
        for (Map.Entry<FunctionType, StatefulFunctionProvider> entry :
            universe.functions().entrySet()) {
          StatefulFunctionProvider provider = entry.getValue();
          provider.functionOfType(entry.getKey());
          if (provider instanceof HttpFunctionProvider) {
            HttpFunctionSpec spec = ((HttpFunctionProvider) provider).getFunctionSpec(entry.getKey());
            for (StateSpec state : spec.states()) {
              ValueStateDescriptor<byte[]> descriptor =
                  new ValueStateDescriptor<>(state.name(), byte[].class);
              unwrap(() -> configureStateTtl.invoke(null, descriptor, state.ttlExpiration()));
            }
            ((HttpFunctionProvider) provider).shutdown();
          }
        }
        verdict = "ACCEPTED";
      } catch (Throwable t) {
        verdict = "REFUSED\t" + chain(t);
      }
      System.out.println(path + "\t" + verdict);
    }
    System.out.flush();
    System.exit(0);
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
