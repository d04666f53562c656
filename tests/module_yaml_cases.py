"""module.yaml texts with what StateFun 2.2.2 does with each, shared by
``tests/test_module_yaml.py`` (our loader must agree) and
``tests/e2e/test_module_yaml_flink.py`` (the real 2.2.2 loader must do what the table says).

Each :class:`Case` has ``runtime``, True when the runtime accepts the file (its loader, and
what it checks as a job starts: state TTLs, state names, the HTTP client's timeouts), and
``error``, None when ours accepts it, else a piece of our error message. The two agree on
every case but those in :data:`DIVERGENT`, each with the reason.

The verdicts were taken from the real loader (tests/e2e/ModuleYamlProbe.java); what it said
is in the comment on each case where it refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, List, Optional

import pytest

from statefun_wsgi import StatefulFunctions, ValueSpec
from statefun_wsgi.module_yaml import generate_module_yaml


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    runtime: bool
    error: Optional[str] = None


_TEMPLATE = """\
version: {version}
module:
  meta:
    type: {module_type}
  spec:
    functions:
      - function:
          meta:
{meta}
          spec:
            endpoint: {endpoint}
            states:
              - name: {state}
{state_extra}{spec_extra}"""


def module(
    version: str = '"2.0"',
    module_type: str = "remote",
    meta: str = "kind: http\ntype: example/fn",
    endpoint: str = "http://localhost:8000/statefun",
    state: str = "seen",
    state_extra: str = "",
    spec: str = "",
) -> str:
    """A module with one function; ``state_extra`` goes under its state, ``spec`` under its spec."""

    def indent(text: str, spaces: int) -> str:
        return "".join(" " * spaces + line + "\n" for line in text.splitlines())

    return _TEMPLATE.format(
        version=version, module_type=module_type, meta=indent(meta, 12).rstrip("\n"), endpoint=endpoint,
        state=state, state_extra=indent(state_extra, 16), spec_extra=indent(spec, 12),
    )


def ok(id: str, text: str) -> Case:
    return Case(id, text, runtime=True)


def refused(id: str, text: str, error: str) -> Case:
    return Case(id, text, runtime=False, error=error)


_IO = """\
    ingresses:
      - ingress:
          meta:
            type: statefun.kafka.io/routable-protobuf-ingress
            id: example/names
          spec:
            address: kafka-broker:9092
      - ingress:
          meta:
            type: statefun.kafka.io/routable-protobuf-ingress
            id: example/other-names
          spec:
            address: kafka-broker:9092
    routers:
      - router:
          meta:
            type: org.apache.flink.statefun.sdk/protobuf-router
          spec:
            ingress: example/raw
            target: "example/fn/{{$.value}}"
            descriptorSet: wrappers.desc
            messageType: google.protobuf.StringValue
    egresses:
      - egress:
          meta:
            type: statefun.kafka.io/generic-egress
            id: example/greets
          spec:
            address: kafka-broker:9092
"""
def generated(**options: Any) -> str:
    """``generate_module_yaml`` for two functions, one with states (two of them expiring)."""
    functions = StatefulFunctions()
    functions.register("example/counter", lambda context, message: None, states=[
        "count", ValueSpec("seen", expire_after_call=timedelta(days=1)),
        ValueSpec("last", expire_after_write=timedelta(milliseconds=1500))])
    functions.register("example/stateless", lambda context, message: None)
    return generate_module_yaml(functions, "http://app:8000/statefun", **options)


_IO_TIMEOUTS_5S = "connectTimeout: 5s\nreadTimeout: 5s\nwriteTimeout: 5s\n"

CASES: List[Case] = [
    ok("plain", module()),
    # -- version: Selectors.textAt("/version"), then exactly "1.0" or "2.0" --------------------
    # WrongTypeException: Wrong type for key /version not a string
    refused("version unquoted 2.0", module(version="2.0"), "version: 2.0 is a YAML number, not a string"),
    refused("version unquoted 2", module(version="2"), "version: 2 is a YAML integer, not a string"),
    # IllegalArgumentException: Unrecognized format version:  2.0
    refused("version with a space", module(version='" 2.0"'), "expected \"1.0\" or \"2.0\", found ' 2.0'"),
    # MissingKeyException: missing key /version
    refused("no version", module().replace('version: "2.0"\n', ""), "the document: 'version' is required"),
    ok("version 1.0 quoted", module(version="'1.0'").replace("- name: seen", "- seen")),
    # -- module --------------------------------------------------------------------------------
    ok("module type Remote", module(module_type="Remote")),
    ok("module type REMOTE quoted", module(module_type='"REMOTE"')),
    # IllegalStateException: Unknown module type embedded, currently supported: REMOTE
    refused("module type embedded", module(module_type="embedded"), "module.meta.type: expected 'remote'"),
    # IllegalStateException: A module without a spec at file:...
    refused("no module spec", 'version: "2.0"\nmodule:\n  meta:\n    type: remote\n', "module: 'spec' is required"),
    ok("module spec empty", 'version: "2.0"\nmodule:\n  meta:\n    type: remote\n  spec:\n'),
    # WrongTypeException: Wrong type for key /functions not a list
    refused("functions null", 'version: "2.0"\nmodule:\n  meta:\n    type: remote\n  spec:\n    functions:\n',
            "module.spec.functions: expected a list, found null"),
    # -- function meta -------------------------------------------------------------------------
    # MissingKeyException: missing key /function/meta/kind
    refused("no kind", module(meta="type: example/fn"), "function.meta: 'kind' is required"),
    ok("kind HTTP", module(meta="kind: HTTP\ntype: example/fn")),
    ok("kind Http", module(meta="kind: Http\ntype: example/fn")),
    # IllegalArgumentException: No enum constant ...FunctionSpec.Kind.HTTPS
    refused("kind https", module(meta="kind: https\ntype: example/fn"), ".meta.kind: expected 'http', found 'https'"),
    # IllegalArgumentException: examplef does not conform to the <namespace>/<name> format
    refused("type without slash", module(meta="kind: http\ntype: examplef"), "function type 'examplef' is not"),
    refused("type ending in slash", module(meta="kind: http\ntype: a/"), "function type 'a/' is not"),
    ok("type with two slashes", module(meta="kind: http\ntype: a/b/c")),
    # -- endpoint ------------------------------------------------------------------------------
    ok("scheme HTTP", module(endpoint="HTTP://localhost:8000/statefun")),
    ok("scheme Https", module(endpoint="Https://localhost:8000/statefun")),
    ok("host with underscore", module(endpoint="http://my_host:8000/statefun")),
    ok("IPv6 host", module(endpoint="http://[::1]:8000/statefun")),
    ok("non-ASCII path", module(endpoint="http://localhost/é")),
    ok("fragment", module(endpoint='"http://localhost/a#frag"')),
    ok("unix socket", module(endpoint="http+unix:///run/app.sock/statefun")),
    # IllegalArgumentException: Missing scheme in function endpoint ftp://h/; an http or https or ...
    refused("scheme ftp", module(endpoint="ftp://localhost/"), "the scheme 'ftp' is not http"),
    refused("host and port, no scheme", module(endpoint="localhost:8000"), "the scheme 'localhost' is not http"),
    refused("no scheme", module(endpoint="/statefun"), "has no scheme"),
    # IllegalArgumentException: Illegal character in authority at index 7: http://local host:8000/
    refused("space in host", module(endpoint='"http://local host:8000/"'), "' ' at index 12 must be percent-encoded"),
    # IllegalArgumentException: Illegal character in path at index 9: http://h/{a}
    refused("brace in path", module(endpoint="http://h/{a}"), "'{' at index 9 must be percent-encoded"),
    # IllegalArgumentException: Malformed escape pair at index 9: http://h/%zz
    refused("bad percent escape", module(endpoint="http://h/%zz"), "'%' at index 9 is not followed by two hex"),
    # IllegalArgumentException: Malformed IPv6 address at index 8: http://[zz]/
    refused("bad IPv6 host", module(endpoint="http://[zz]/"), "is not an IPv6 address in brackets"),
    # NullPointerException (OkHttp's HttpUrl.get cannot read it, as the job starts)
    refused("port not a number", module(endpoint="http://h:abc/"), "the port 'abc' is not a number"),
    refused("port 0", module(endpoint="http://h:0/"), "the port '0' is not a number"),
    ok("no host after three slashes", module(endpoint="http:///statefun")),
    ok("opaque http:host", module(endpoint="http:localhost")),
    ok("user info", module(endpoint="http://user@localhost:8000/statefun")),
    ok("brackets in the query", module(endpoint="http://localhost/a?b=[1]")),
    ok("unix socket, no path after it", module(endpoint="https+unix:///run/app.sock")),
    ok("unix socket under a host", module(endpoint="http+unix://run/app.sock/statefun")),
    # IllegalArgumentException: Expected authority at index 7: http://
    refused("no host", module(endpoint="http://"), "has no host"),
    ok("empty port (the scheme's)", module(endpoint="http://localhost:/statefun")),
    refused("port 65536", module(endpoint="http://localhost:65536/statefun"), "the port '65536' is not a number"),
    refused("bracket in the path", module(endpoint="http://localhost/[a]"), "'[' and ']' belong only around"),
    refused("two fragments", module(endpoint='"http://localhost/a#b#c"'), "it has two '#'"),
    # NullPointerException (an opaque URI has no path)
    refused("opaque unix socket", module(endpoint="http+unix:app.sock"), "ending in '.sock'"),
    # IllegalStateException: Unix Domain Socket path should contain a .sock file
    refused("unix socket without .sock", module(endpoint="http+unix:///run/app/statefun"), "ending in '.sock'"),
    # -- states --------------------------------------------------------------------------------
    # WrongTypeException: Wrong type for key /name not a string
    refused("state name a YAML integer", module(state="5"), ".states[0].name: 5 is a YAML integer"),
    refused("state name 1e5 (a number to the runtime)", module(state="1e5"), "100000.0 is a YAML number"),
    refused("state name .5", module(state=".5"), "0.5 is a YAML number"),
    refused("state name 010", module(state="010"), "10 is a YAML integer"),
    refused("state name yes", module(state="yes"), "True is a YAML boolean"),
    refused("state name null", module(state="null"), "None is null"),
    refused("state name ~", module(state="~"), "None is null"),
    refused("state name !!float 1", module(state="!!float 1"), "1.0 is a YAML number"),
    ok("state name !!bool maybe", module(state="!!bool maybe")),
    ok("state name !!timestamp", module(state="!!timestamp 2001-12-14")),
    # JsonParseException: Malformed numeric value '-_'
    refused("state name -_", module(state="-_"), "malformed numeric value '-_'"),
    ok("state name 0x1F (a string to the runtime)", module(state="0x1F")),
    ok("state name 0b101", module(state="0b101")),
    ok("state name 1:30", module(state="1:30")),
    ok("state name a date", module(state="2001-12-14")),
    ok("state name a timestamp", module(state="2001-12-14t21:59:43.10-05:00")),
    ok("state name y", module(state="y")),
    ok("state name nUll", module(state="nUll")),
    ok("state name =", module(state="=")),
    ok("state name <<", module(state="<<")),
    ok("state name !!str 5", module(state="!!str 5")),
    ok("state name with a local tag", module(state="!foo bar")),
    ok("state name empty", module(state='""')),
    # JsonParseException: Malformed numeric value '.inf'
    refused("state name .inf", module(state=".inf"), "not valid YAML at line 14, column 23: malformed numeric value '.inf'"),
    # NumberFormatException: For input string: "1_000"
    refused("an integer with _", module(spec="maxNumBatchRequests: 1_000"), "cannot read the integer '1_000'"),
    # IllegalStateException: State name 'seen' was registered twice; ...
    refused("state twice", module().replace("- name: seen\n", "- name: seen\n              - name: seen\n"),
            "state names repeated: seen"),
    ok("format 1.0 drops a state that is not a string", module(version='"1.0"').replace("- name: seen", "- seen\n"
                                                                                           "              - {a: b}")),
    # MissingKeyException: missing key /name
    refused("format 2.0 bare state name", module().replace("- name: seen", "- seen"), "write '- name: seen'"),
    # WrongTypeException: Wrong type for key /function/spec/states not a list
    refused("states null", module().replace("              - name: seen\n", ""),
            ".spec.states: expected a list, found null"),
    refused("states a mapping", module().replace("              - name: seen\n", "              name: seen\n"),
            ".spec.states: expected a list, found a mapping"),
    refused("state name binary", module(state="!!binary aGVsbG8="), ".name: b'hello' is binary, not a string"),
    # -- expireAfter / expireMode --------------------------------------------------------------
    ok("expireMode without expireAfter", module(state_extra="expireMode: whatever")),
    ok("expireAfter 1ms", module(state_extra="expireAfter: 1ms")),
    ok("expireAfter quoted number (ms)", module(state_extra='expireAfter: "60000"')),
    ok("expireAfter 5MIN", module(state_extra="expireAfter: 5MIN")),
    ok("expireAfter 5000µS", module(state_extra="expireAfter: 5000µS")),
    ok("expireAfter with spaces", module(state_extra='expireAfter: " 5 s "')),
    ok("expireAfter with a tab", module(state_extra='expireAfter: "5\\ts"')),
    ok("expireAfter with a control character", module(state_extra='expireAfter: "5\\x01s"')),
    ok("expireAfter Long.MAX ms", module(state_extra="expireAfter: 9223372036854775807ms")),
    ok("expireAfter after-write", module(state_extra="expireAfter: 1h\nexpireMode: after-write")),
    # IllegalArgumentException: TTL is expected to be positive.
    refused("expireAfter 0s", module(state_extra="expireAfter: 0s"), "is under 1 ms: Flink refuses it"),
    refused("expireAfter 999micro", module(state_extra="expireAfter: 999micro"), "is under 1 ms"),
    # WrongTypeException: Wrong type for key /expireAfter not a string
    refused("expireAfter a YAML integer", module(state_extra="expireAfter: 60000"),
            ".states[0].expireAfter: 60000 is a YAML integer, and the runtime reads durations as strings"),
    refused("expireAfter null", module(state_extra="expireAfter:"), "expireAfter: None is null"),
    # IllegalArgumentException: Time interval unit label 'us' does not match any of the recognized units: ...
    refused("expireAfter 500us", module(state_extra="expireAfter: 500us"), "not 'us'"),
    refused("expireAfter Greek mu", module(state_extra="expireAfter: 5000μs"), "unknown time unit 'μs'"),
    refused("expireAfter 5mins", module(state_extra="expireAfter: 5mins"), "unknown time unit 'mins'"),
    refused("expireAfter 5hrs", module(state_extra="expireAfter: 5hrs"), "unknown time unit 'hrs'"),
    refused("expireAfter 5ds", module(state_extra="expireAfter: 5ds"), "unknown time unit 'ds'"),
    # IllegalArgumentException: Time interval unit label ' s' ... (a no-break space is not trimmed)
    refused("expireAfter with a no-break space", module(state_extra='expireAfter: "5\\u00a0s"'),
            "unknown time unit '\\xa0s'"),
    # NumberFormatException: text does not start with a number
    refused("expireAfter +5s", module(state_extra='expireAfter: "+5s"'), "does not start with a number"),
    refused("expireAfter Arabic digit", module(state_extra='expireAfter: "٥s"'), "does not start with a number"),
    # IllegalArgumentException: argument is an empty- or whitespace-only string
    refused("expireAfter empty", module(state_extra='expireAfter: ""'), "is empty"),
    # IllegalArgumentException: The value '9223372036854775808' cannot be re represented as 64bit number
    refused("expireAfter past 64 bits", module(state_extra="expireAfter: 9223372036854775808ms"),
            "does not fit in 64 bits"),
    # ArithmeticException: long overflow
    refused("expireAfter overflowing a Duration", module(state_extra="expireAfter: 106751991167301d"),
            "long overflow"),
    # ArithmeticException: long overflow (Duration.toMillis, as the job starts)
    refused("expireAfter past a long of milliseconds", module(state_extra="expireAfter: 9223372036854775807s"),
            "is more milliseconds than a long holds"),
    # IllegalArgumentException: Invalid state ttl expire mode; must be one of [after-invoke, after-write].
    refused("expireMode in capitals", module(state_extra="expireAfter: 1s\nexpireMode: AFTER-WRITE"),
            ".expireMode: 'AFTER-WRITE' is not one of after-invoke, after-write"),
    # WrongTypeException: Wrong type for key /expireMode not a string
    refused("expireMode a YAML integer", module(state_extra="expireAfter: 1s\nexpireMode: 5"),
            ".expireMode: 5 is a YAML integer, not a string"),
    # -- timeouts ------------------------------------------------------------------------------
    # IllegalArgumentException: Connect timeout cannot be larger than request timeout.
    refused("timeout 5s", module(spec="timeout: 5s"),
            ".spec.timeout: '5s' is shorter than connectTimeout (10s when not set)"),
    refused("timeout 5s, only connectTimeout set", module(spec="timeout: 5s\nconnectTimeout: 5s"),
            "is shorter than readTimeout (10s when not set)"),
    refused("connectTimeout 2min, timeout not set", module(spec="connectTimeout: 2min"),
            ".spec.connectTimeout: '2min' is longer than timeout (1min when not set), which the runtime refuses"),
    ok("timeout 5s with I/O timeouts", module(spec="timeout: 5s\n" + _IO_TIMEOUTS_5S)),
    refused("connectTimeout a nanosecond over", module(spec="timeout: 10s\nconnectTimeout: 10000000001ns"),
            "is shorter than connectTimeout '10000000001ns'"),
    ok("connectTimeout a nanosecond over the default", module(spec="connectTimeout: 10000000001ns")),
    # WrongTypeException: Wrong type for key /function/spec/timeout not a string
    refused("timeout a YAML integer", module(spec="timeout: 500"), ".spec.timeout: 500 is a YAML integer"),
    ok("timeout quoted number (ms)", module(spec='timeout: "20000"')),
    # IllegalArgumentException: Timeout durations must be larger than 0.
    refused("readTimeout 0s", module(spec="readTimeout: 0s"), ".spec.readTimeout: '0s' is zero"),
    refused("readTimeout 0ns", module(spec="readTimeout: 0ns"), ".spec.readTimeout: '0ns' is zero"),
    ok("readTimeout 1ns", module(spec="readTimeout: 1ns")),
    ok("all timeouts 500micro", module(spec="timeout: 500micro\nconnectTimeout: 500micro\n"
                                            "readTimeout: 500micro\nwriteTimeout: 500micro")),
    refused("timeout 500us", module(spec="timeout: 500us"), "unknown time unit 'us'"),
    ok("timeout 24d", module(spec="timeout: 24d")),
    ok("timeout 2147483647ms", module(spec="timeout: 2147483647ms")),
    # IllegalArgumentException: timeout too large.
    refused("timeout 2147483648ms", module(spec="timeout: 2147483648ms"), "\"timeout too large\""),
    refused("timeout 30d", module(spec="timeout: 30d"), "\"timeout too large\""),
    ok("generated", generated()),
    ok("generated with timeout 5s", generated(timeout=timedelta(seconds=5))),
    ok("generated with timeout 1ms and no batch limit", generated(timeout=timedelta(milliseconds=1), max_batch_size=0)),
    ok("generated with timeout 2min", generated(timeout=timedelta(minutes=2), max_batch_size=-1)),
    # -- maxNumBatchRequests: Selectors.optionalIntegerAt (an int) -----------------------------
    ok("maxNumBatchRequests 0", module(spec="maxNumBatchRequests: 0")),
    ok("maxNumBatchRequests -1", module(spec="maxNumBatchRequests: -1")),
    ok("maxNumBatchRequests int max", module(spec="maxNumBatchRequests: 2147483647")),
    ok("maxNumBatchRequests int min", module(spec="maxNumBatchRequests: -2147483648")),
    ok("maxNumBatchRequests +10", module(spec="maxNumBatchRequests: +10")),
    # WrongTypeException: Wrong type for key /function/spec/maxNumBatchRequests not an integer
    refused("maxNumBatchRequests past int", module(spec="maxNumBatchRequests: 2147483648"),
            "expected an integer (32-bit; 0 or negative for no limit), found 2147483648"),
    refused("maxNumBatchRequests a string", module(spec='maxNumBatchRequests: "5"'), "found '5'"),
    refused("maxNumBatchRequests 5.0", module(spec="maxNumBatchRequests: 5.0"), "found 5.0"),
    refused("maxNumBatchRequests null", module(spec="maxNumBatchRequests:"), "found None"),
    refused("maxNumBatchRequests true", module(spec="maxNumBatchRequests: true"), "found True"),
    refused("maxNumBatchRequests 08 (a float to the runtime)", module(spec="maxNumBatchRequests: 08"), "found 8.0"),
    refused("maxNumBatchRequests hex (a string)", module(spec="maxNumBatchRequests: 0x10"), "found '0x10'"),
    refused("maxNumBatchRequests 1:30 (a string)", module(spec="maxNumBatchRequests: 1:30"), "found '1:30'"),
    # -- grpc ----------------------------------------------------------------------------------
    # MissingKeyException: missing key /function/spec/host
    refused("kind grpc without host", module(meta="kind: grpc\ntype: example/fn"), "use kind: http"),
    Case("kind grpc", module(meta="kind: grpc\ntype: example/fn", spec="host: localhost\nport: 5000"),
         runtime=True, error="use kind: http"),
    # -- ingresses, routers, egresses ----------------------------------------------------------
    ok("ingress, router and egress", module() + _IO),
    # IllegalStateException: A binding for the key IngressIdentifier(example, names, ...) was previously defined.
    refused("ingress id twice", module() + _IO.replace("example/other-names", "example/names"),
            "ingress id example/names appears twice"),
    # IllegalStateException: A binding for the key EgressKey(example, greets, ...) was previously defined.
    refused("egress id twice", module() + _IO + _IO.split("    egresses:\n")[1],
            "egress id example/greets appears twice"),
    # MissingKeyException: missing key /ingress/meta/type
    refused("ingress without type",
            module() + _IO.replace("type: statefun.kafka.io/routable-protobuf-ingress\n", "", 1),
            "module.spec.ingresses[0].ingress.meta: 'type' is required"),
    # IllegalArgumentException: greets does not conform to the <namespace>/<name> format
    refused("egress id without namespace", module() + _IO.replace("id: example/greets", "id: greets"),
            "egress id 'greets' is not 'namespace/name'"),
    # IllegalStateException: Invalid router type my/router
    refused("router of another type", module() + _IO.replace("type: org.apache.flink.statefun.sdk/protobuf-router",
                                                             "type: my/router"),
            "module.spec.routers[0].router.meta.type: expected 'org.apache.flink.statefun.sdk/protobuf-router'"),
    Case("router with a descriptor set that is not there",
         module() + _IO.replace("descriptorSet: wrappers.desc", "descriptorSet: nowhere.desc"), runtime=False),
    # -- YAML ----------------------------------------------------------------------------------
    # RuntimeException: Failed loading a module ... (the file is empty: no module type)
    refused("empty file", "", "module.meta: 'type' is required"),
    refused("a list", "- version: '2.0'\n", "module.meta: 'type' is required"),
    # NumberFormatException: For input string: "1_000" (anywhere in the file)
    refused("an integer with _ in an ingress spec", module() + _IO.replace("address: kafka-broker:9092", "n: 1_000", 1),
            "cannot read the integer '1_000'"),
    ok("a key given twice (the last wins)", module(spec="timeout: 5s\ntimeout: 1min")),
    # MissingKeyException: missing key /function/spec/endpoint ('<<' is a key like any other)
    refused("a merge key is not merged",
            module().replace("          spec:\n            endpoint:", "          spec:\n            <<: *base\n"
                                                                        "            not-endpoint:")
            .replace("version:", "base: &base {endpoint: http://localhost:8000/statefun}\nversion:"),
            ".spec: 'endpoint' is required"),
    # MissingKeyException: missing key /function/spec/endpoint
    refused("function without spec", module().split("          spec:")[0], ".spec: 'endpoint' is required"),
    # (the runtime reads the first document and ignores the rest)
    ok("a second document", module() + "---\nanything: [at all\n"),
    ok("an alias (a string to the runtime)", module(state="&anchor seen", spec="timeout: *anchor")
       .replace("timeout: *anchor", "timeout: 1min")),
    # Unknown module type ..., currently supported: REMOTE (the alias reads as the anchor's name)
    refused("an alias for the module type", module(module_type="*kind").replace(
        "version:", "anchors: &kind remote\nversion:"), "module.meta.type: expected 'remote', found 'kind'"),
]

#: The descriptor set that _IO's router names, a file beside the module.yaml (the runtime
#: reads a descriptorSet without a scheme as a path from its working directory).
DESCRIPTOR_SET = "wrappers.desc"


def descriptor_set() -> bytes:
    """A FileDescriptorSet holding google/protobuf/wrappers.proto."""
    from google.protobuf import descriptor_pb2, wrappers_pb2

    files = descriptor_pb2.FileDescriptorSet()
    wrappers_pb2.DESCRIPTOR.CopyToProto(files.file.add())
    return files.SerializeToString()


#: Case id -> why ours does not do what the runtime does.
DIVERGENT: Dict[str, str] = {
    "router with a descriptor set that is not there": "the descriptor set is a path on the runtime's machine "
    "(or its classpath), which the file does not tell us how to reach",
    "kind grpc": "2.2.2 loads a grpc function but fails the job on its first message ('not yet supported')",
}


def params() -> List["pytest.param"]:  # type: ignore[name-defined]
    return [pytest.param(case, id=case.id) for case in CASES]
