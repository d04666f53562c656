"""StateFun 3.x module.yaml texts with what StateFun 3.3.0 does with each, shared by
``tests/test_module_yaml.py`` (our loader must agree) and
``tests/e2e/test_flink3_module_yaml.py`` (the real 3.3.0 loader must do what the table says).

The 3.x sibling of ``tests/module_yaml_cases.py`` (2.2.2). Each :class:`Case` has
``runtime``, True when the 3.3.0 runtime accepts the file (its loader, its component binders,
and what it builds as a job starts: each function's transport client for its URL, each
ingress's source and egress's sink), and ``error``, None when ours accepts it, else a piece of
our error message. The two agree on every case but those in :data:`DIVERGENT`, each with the
reason.

The verdicts were taken from the real loader (tests/e2e/ModuleYaml3Probe.java, on the 3.3.0
harness's classpath: statefun-flink-distribution 3.3.0 with its shaded Jackson 2.12.4); the
comments quote what it said for the case or group below them. A failing case of the e2e test
shows the runtime's whole exception chain.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, List, Optional

import pytest

from statefun_wsgi import StatefulFunctions
from statefun_wsgi.module_yaml import OKHTTP_TRANSPORT, generate_module_yaml


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    runtime: bool
    error: Optional[str] = None


def ok(id: str, text: str) -> Case:
    return Case(id, text, runtime=True)


def refused(id: str, text: str, error: str) -> Case:
    return Case(id, text, runtime=False, error=error)


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(text, " " * spaces)


def endpoint(
    functions: str = "example/greeter",
    url: str = "http://app:8000/statefun",
    extra: str = "",
    kind: str = "io.statefun.endpoints.v2/http",
) -> str:
    """One ``kind:`` endpoint document; ``extra`` goes under its spec."""
    return f"kind: {kind}\nspec:\n  functions: {functions}\n  urlPathTemplate: {url}\n" + _indent(extra, 2)


def okhttp(timeouts: str = "", extra: str = "") -> str:
    """An endpoint's ``transport:`` of the okhttp kind, with ``timeouts:`` when given."""
    text = f"transport:\n  type: {OKHTTP_TRANSPORT}\n"
    if timeouts:
        text += "  timeouts:\n" + _indent(timeouts, 4)
    return text + _indent(extra, 2)


def asynchronous(props: str = "") -> str:
    """An endpoint's ``transport:`` of the async kind with ``props``."""
    return "transport:\n  type: io.statefun.transports.v1/async\n" + _indent(props, 2)


KAFKA_INGRESS = """\
kind: io.statefun.kafka.v1/ingress
spec:
  id: example/names
  address: kafka:9092
  consumerGroupId: greeter
  topics:
    - topic: names
      valueType: type.googleapis.com/example.GreetRequest
      targets:
        - example/greeter
"""

KAFKA_EGRESS = """\
kind: io.statefun.kafka.v1/egress
spec:
  id: example/greets
  address: kafka:9092
  deliverySemantic:
    type: at-least-once
"""


def docs(*documents: str) -> str:
    return "---\n".join(documents)


def with_ingress(old: str, new: str) -> str:
    """The endpoint and a Kafka ingress in which ``old`` is replaced by ``new``."""
    assert old in KAFKA_INGRESS, old
    return docs(endpoint(), KAFKA_INGRESS.replace(old, new))


def with_egress(old: str, new: str) -> str:
    assert old in KAFKA_EGRESS, old
    return docs(endpoint(), KAFKA_EGRESS.replace(old, new))


_LEGACY_ENDPOINT = """\
- endpoint:
    meta:
      kind: http
    spec:
      functions: example/*
      urlPathTemplate: http://app:8000/statefun/{function.name}
"""

_LEGACY_INGRESS = """\
- ingress:
    meta:
      type: io.statefun.kafka/ingress
      id: example/names
    spec:
      address: kafka:9092
      consumerGroupId: greeter
      topics:
        - topic: names
          valueType: type.googleapis.com/example.GreetRequest
          targets: [example/greeter]
"""

_LEGACY_EGRESS = """\
- egress:
    meta:
      type: io.statefun.kafka/egress
      id: example/greets
    spec:
      address: kafka:9092
"""


def legacy(endpoints: Optional[str] = _LEGACY_ENDPOINT, ingresses: Optional[str] = None,
           egresses: Optional[str] = None, version: str = '"3.0"', module_type: str = "remote") -> str:
    """The legacy single document (``version: "3.0"``); a list left None is not written."""
    text = f"version: {version}\nmodule:\n  meta:\n    type: {module_type}\n  spec:\n"
    for key, body in (("endpoints", endpoints), ("ingresses", ingresses), ("egresses", egresses)):
        if body is not None:
            text += f"    {key}:\n" + _indent(body, 6)
    return text


def generated(**options: Any) -> str:
    """``generate_module_yaml`` for two functions, one with states."""
    functions = StatefulFunctions()
    functions.register("example/counter", lambda context, message: None, states=["count", "seen"])
    functions.register("example/stateless", lambda context, message: None)
    return generate_module_yaml(functions, options.pop("endpoint", "http://app:8000/statefun"), **options)


def cli_generated(*options: str) -> str:
    """What ``statefun-wsgi module-yaml generate app:wsgi`` (the repository's greeter) prints."""
    import contextlib
    import io
    import sys
    from pathlib import Path

    from statefun_wsgi.cli import main

    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["module-yaml", "generate", "app:wsgi", "--endpoint", "http://app:8000/statefun", *options])
    assert status == 0, options
    return out.getvalue()


CASES: List[Case] = [
    # -- documents ---------------------------------------------------------------------------
    ok("endpoint", endpoint()),
    ok("endpoint, Kafka ingress and egress", docs(endpoint(), KAFKA_INGRESS, KAFKA_EGRESS)),
    ok("a namespace", endpoint("example/*", "http://app:8000/statefun/{function.name}")),
    ok("a namespace and a type of it", docs(endpoint("example/*"), endpoint("example/greeter"))),
    ok("empty documents are skipped", "---\n" + endpoint() + "---\n---\n"),
    ok("the v1 endpoint kind", endpoint(kind="io.statefun.endpoints.v1/http",
                                        extra="timeouts:\n  call: 2s\n  connect: 1s\n  read: 1s\n  write: 1s\n")),
    # IllegalStateException: An extension with type TypeName(io.statefun.endpoints.v9, http) does not exist.
    refused("unknown kind", endpoint(kind="io.statefun.endpoints.v9/http"), "has no binder"),
    # ComponentJsonFormatException: Invalid binder kind format. / IllegalArgumentException: Invalid type name string
    refused("kind without namespace", endpoint(kind="http"), "kind 'http' is not 'namespace/name'"),
    refused("kind with two slashes", endpoint(kind="io.statefun/endpoints.v2/http"), "'namespace/name'"),
    # ComponentJsonFormatException: Invalid ComponentJsonObject; components should be ... [kind] and [spec].
    refused("document without kind", docs(endpoint(), "spec:\n  functions: example/other\n"),
            "document 2: a component is a mapping with 'kind' and 'spec'"),
    refused("document without spec", docs(endpoint(), "kind: io.statefun.endpoints.v2/http\n"),
            "document 2: a component is a mapping"),
    refused("document that is a list", docs(endpoint(), "- kind: io.statefun.endpoints.v2/http\n"),
            "document 2: a component is a mapping"),
    refused("kind a number", "kind: 5\nspec: {}\n", "document 1.kind: 5 is a YAML integer"),
    # IllegalStateException: A binding for the key FunctionType(example, greeter) was previously defined.
    refused("a type bound twice", docs(endpoint(), endpoint(url="http://other:8000/statefun")),
            "functions example/greeter are bound twice"),
    refused("a namespace bound twice", docs(endpoint("example/*"), endpoint("example/*")),
            "functions example/* are bound twice"),
    # -- the legacy format, version "3.0" ------------------------------------------------------
    ok("version 3.0", legacy()),
    ok("version 3.0 with ingress and egress", legacy(ingresses=_LEGACY_INGRESS, egresses=_LEGACY_EGRESS)),
    ok("version 3.0 without functions", legacy(endpoints=None, egresses=_LEGACY_EGRESS)),
    ok("version 3.0 with an empty spec", 'version: "3.0"\nmodule:\n  meta:\n    type: remote\n  spec:\n'),
    ok("version 3.0 module type REMOTE", legacy(module_type="REMOTE")),
    ok("version 3.0 with a v2 endpoint kind", legacy(
        endpoints=_LEGACY_ENDPOINT.replace("kind: http", "kind: io.statefun.endpoints.v2/http"))),
    ok("version 3.0 with timeouts", legacy(endpoints=_LEGACY_ENDPOINT + "      timeouts:\n        call: 2s\n"
                                                                        "        connect: 1s\n        read: 2s\n"
                                                                        "        write: 2s\n")),
    # IllegalStateException: Unknown module type embedded, currently supported: REMOTE
    refused("version 3.0 module type embedded", legacy(module_type="embedded"), "module.meta.type: expected 'remote'"),
    # IllegalStateException: A module without a spec at file:...
    refused("version 3.0 without module spec", 'version: "3.0"\nmodule:\n  meta:\n    type: remote\n',
            "module: 'spec' is required"),
    # IllegalStateException: Unrecognized format version: 3.1
    refused("version 3.1", legacy(version='"3.1"'), "'3.1' is not a format StateFun 3.3 loads"),
    # WrongTypeException: Wrong type for key /version not a string
    refused("version 3.0 unquoted", legacy(version="3.0"), "version: 3.0 is a YAML number, not a string"),
    # IllegalArgumentException: Only format versions higher than or equal to 3.0 is supported. Was version 2.0.
    Case("version 2.0 (StateFun 2.2's)", legacy(version='"2.0"', endpoints=None), runtime=False),
    # ComponentJsonFormatException: ... [kind] and [spec] (two documents: not the legacy format)
    refused("version 3.0 and a second document", docs(legacy(), endpoint()), "document 1: a component is a mapping"),
    # IllegalArgumentException: Invalid type name string: grpc. Must be of format <namespace>/<name>.
    refused("version 3.0 endpoint kind grpc", legacy(endpoints=_LEGACY_ENDPOINT.replace("kind: http", "kind: grpc")),
            "kind 'grpc' is not 'namespace/name'"),
    # MissingKeyException: missing key /ingress/meta/id
    refused("version 3.0 ingress without id",
            legacy(ingresses=_LEGACY_INGRESS.replace("      id: example/names\n", "")),
            "ingress.meta: 'id' is required"),
    # -- functions -----------------------------------------------------------------------------
    # NullPointerException (the builder's functions)
    refused("no functions", "kind: io.statefun.endpoints.v2/http\nspec:\n  urlPathTemplate: http://app/\n",
            "'functions' is required"),
    refused("no urlPathTemplate", "kind: io.statefun.endpoints.v2/http\nspec:\n  functions: example/greeter\n",
            "'urlPathTemplate' is required"),
    # IllegalArgumentException: Invalid syntax for target functions. Only <namespace>/<name> or <namespace>/* ...
    refused("star in the name", endpoint("example/gr*"), "only <namespace>/<name> or <namespace>/* are supported"),
    refused("star in the namespace", endpoint('"*/greeter"'), "only <namespace>/<name> or <namespace>/*"),
    # IllegalArgumentException: Invalid type name string: greeter. Must be of format <namespace>/<name>.
    refused("functions without namespace", endpoint("greeter"), "'greeter' is not 'namespace/name'"),
    refused("functions with two slashes", endpoint("example/sub/greeter"), "'namespace/name'"),
    refused("functions a number", endpoint("5"), "functions: 5 is a YAML integer"),
    # -- urlPathTemplate ---------------------------------------------------------------------
    ok("url https", endpoint(url="https://app:8443/statefun")),
    ok("url with {function.name} on a type", endpoint(url="http://app/fn/{function.name}")),
    ok("url unix socket with okhttp", endpoint(url="http+unix:///run/app.sock/statefun", extra=okhttp())),
    ok("url host with underscore, okhttp", endpoint(url="http://my_host:8000/statefun", extra=okhttp())),
    # IllegalArgumentException: hostname can't be null (the async transport's endpoint)
    refused("url unix socket with async", endpoint(url="http+unix:///run/app.sock/statefun"),
            "the async transport has no unix sockets"),
    # IllegalStateException: URISyntaxException: Illegal character in hostname at index 10
    refused("url host with underscore, async", endpoint(url="http://my_host:8000/statefun"),
            "'my_host' is not a host name"),
    refused("url without a host, async", endpoint(url="http:///statefun"), "has no host"),
    ok("url IPv6 host, async", endpoint(url="http://[::1]:8000/statefun")),
    ok("url IPv4 host and user info, async", endpoint(url="http://user@10.0.0.1:8000/statefun")),
    ok("url host with a trailing dot, async", endpoint(url="http://app.example.:8000/statefun")),
    # IllegalStateException: java.net.URISyntaxException: Illegal character in hostname at index 14
    refused("url host whose last label is a number, async", endpoint(url="http://10.0.0.300/statefun"),
            "'10.0.0.300' is not a host name"),
    refused("url percent-encoded host, async", endpoint(url="http://%61pp/statefun"), "'%61pp' is not a host name"),
    # IllegalArgumentException: Expected URL scheme 'http' or 'https' but was 'ftp'
    refused("url scheme ftp, okhttp", endpoint(url="ftp://app/statefun", extra=okhttp()), "the scheme 'ftp' is not"),
    Case("url scheme ftp, async", endpoint(url="ftp://app/statefun"), runtime=True, error="the scheme 'ftp' is not"),
    # IllegalArgumentException: Illegal character in path at index 15: http://app/fn/{name}
    refused("url with another placeholder", endpoint(url="http://app/fn/{name}"), "'{' at index 14 must be"),
    refused("url without scheme", endpoint(url="/statefun"), "has no scheme"),
    refused("url with a space", endpoint(url='"http://app /statefun"'), "' ' at index 10 must be percent-encoded"),
    # IllegalArgumentException: port out of range:65536
    refused("url port 65536, async", endpoint(url="http://app:65536/statefun"), "the port '65536' is not a number"),
    refused("url a number", endpoint(url="5"), "urlPathTemplate: 5 is a YAML integer, not a string"),
    # -- maxNumBatchRequests -------------------------------------------------------------------
    ok("maxNumBatchRequests 0", endpoint(extra="maxNumBatchRequests: 0\n")),
    ok("maxNumBatchRequests -1", endpoint(extra="maxNumBatchRequests: -1\n")),
    ok("maxNumBatchRequests 1_000", endpoint(extra="maxNumBatchRequests: 1_000\n")),
    ok("maxNumBatchRequests a quoted number", endpoint(extra='maxNumBatchRequests: "5"\n')),
    ok("maxNumBatchRequests 5.0", endpoint(extra="maxNumBatchRequests: 5.0\n")),
    refused("maxNumBatchRequests past int", endpoint(extra="maxNumBatchRequests: 2147483648\n"),
            "found 2147483648"),
    refused("maxNumBatchRequests a word", endpoint(extra="maxNumBatchRequests: many\n"), "found 'many'"),
    refused("maxNumBatchRequests true", endpoint(extra="maxNumBatchRequests: true\n"), "found True"),
    # WrongTypeException: Wrong type for key /maxNumBatchRequests not an integer (v1: Selectors)
    refused("v1 maxNumBatchRequests a quoted number",
            endpoint(kind="io.statefun.endpoints.v1/http", extra='maxNumBatchRequests: "5"\n'), "found '5'"),
    # -- transport ---------------------------------------------------------------------------
    ok("transport okhttp", endpoint(extra=okhttp())),
    ok("transport async", endpoint(extra=asynchronous())),
    ok("transport without type (async)", endpoint(extra="transport:\n  call: 5s\n")),
    # IllegalStateException: An extension with type TypeName(io.statefun.transports.v1, grpc) does not exist.
    refused("transport grpc", endpoint(extra="transport:\n  type: io.statefun.transports.v1/grpc\n"),
            "has no transport 'io.statefun.transports.v1/grpc'"),
    refused("transport type without namespace", endpoint(extra="transport:\n  type: okhttp\n"),
            "'okhttp' is not 'namespace/name'"),
    refused("transport a string", endpoint(extra="transport: okhttp\n"), "transport: expected a mapping"),
    # -- okhttp timeouts -----------------------------------------------------------------------
    ok("okhttp timeouts", endpoint(extra=okhttp("call: 3s\nconnect: 1s\nread: 2s\nwrite: 500\n"))),
    ok("okhttp timeouts in long units", endpoint(extra=okhttp("call: 2 minutes\nconnect: 10 seconds\n"))),
    ok("okhttp unknown timeout key", endpoint(extra=okhttp("call: 1min\nidle: 5s\n"))),
    ok("okhttp async keys are ignored", endpoint(extra=okhttp(extra="call: 0s\npool_size: 0\n"))),
    # IllegalArgumentException: Timeout durations must be larger than 0.
    refused("okhttp call 0s", endpoint(extra=okhttp("call: 0s\n")), "Timeout durations must be larger than 0"),
    # IllegalArgumentException: Read timeout cannot be larger than request timeout.
    refused("okhttp read over call", endpoint(extra=okhttp("call: 5s\nconnect: 1s\nread: 6s\n")),
            "Read timeout cannot be larger than request timeout"),
    refused("okhttp default connect over call", endpoint(extra=okhttp("call: 5s\n")),
            "Connect timeout cannot be larger than request timeout"),
    refused("okhttp call 5mins", endpoint(extra=okhttp("call: 5mins\n")), "unknown time unit 'mins'"),
    refused("okhttp call 500us", endpoint(extra=okhttp("call: 500us\n")), "not 'us'"),
    refused("okhttp call null", endpoint(extra=okhttp("call:\n")), "call: null"),
    refused("okhttp timeouts a string", endpoint(extra="transport:\n  type: io.statefun.transports.v1/okhttp\n"
                                                       "  timeouts: 5s\n"), "timeouts: expected a mapping"),
    refused("okhttp timeouts null", endpoint(extra="transport:\n  type: io.statefun.transports.v1/okhttp\n"
                                                   "  timeouts:\n"), "timeouts: expected a mapping"),
    # (OkHttp takes whole milliseconds: under 1 ms is 0, no timeout at all)
    ok("okhttp call under 1 ms",
       endpoint(extra=okhttp("call: 500µs\nconnect: 100µs\nread: 100µs\nwrite: 100µs\n"))),
    refused("okhttp call past OkHttp's int of ms", endpoint(extra=okhttp("call: 25d\n")), "longer than OkHttp takes"),
    refused("version 3.0 read over call", legacy(endpoints=_LEGACY_ENDPOINT + "      timeouts:\n        call: 2s\n"
                                                                              "        connect: 1s\n"),
            "Read timeout cannot be larger than request timeout"),
    # -- async transport -----------------------------------------------------------------------
    ok("async keys", endpoint(extra=asynchronous("call: 5s\nconnect: 2s\npool_ttl: 1min\npool_size: 8\n"
                                                 "payload_max_bytes: 1024\n"))),
    ok("async timeouts win", endpoint(extra=asynchronous("call: 5s\ntimeouts:\n  call: 7s\n"))),
    ok("async call 0s", endpoint(extra=asynchronous("call: 0s\n"))),
    ok("async call null", endpoint(extra=asynchronous("call:\n"))),
    ok("async connect over call", endpoint(extra=asynchronous("call: 1s\nconnect: 5s\n"))),
    ok("async pool_size a quoted number", endpoint(extra=asynchronous('pool_size: "8"\n'))),
    refused("async timeouts connect 0ms", endpoint(extra=asynchronous("timeouts:\n  connect: 0ms\n")),
            "Timeout durations must be larger than 0"),
    refused("async pool_size 0", endpoint(extra=asynchronous("pool_size: 0\n")), "pool_size: 0 is not 1 or more"),
    refused("async pool_size a word", endpoint(extra=asynchronous("pool_size: many\n")), "found 'many'"),
    refused("async call 5mins", endpoint(extra=asynchronous("call: 5mins\n")), "unknown time unit 'mins'"),
    refused("async payload_max_bytes past int", endpoint(extra=asynchronous("payload_max_bytes: 2147483648\n")),
            "found 2147483648"),
    # -- Kafka ingress -------------------------------------------------------------------------
    ok("kafka ingress options", with_ingress("  consumerGroupId: greeter\n", "  consumerGroupId: greeter\n"
                                             "  autoOffsetResetPosition: earliest\n  startupPosition:\n"
                                             "    type: group-offsets\n  properties:\n    - max.poll.records: 10\n")),
    ok("kafka ingress address in properties", with_ingress(
        "  address: kafka:9092\n", "  properties:\n    - bootstrap.servers: kafka:9092\n")),
    ok("kafka ingress startup at specific offsets", with_ingress("  consumerGroupId: greeter\n",
                                                                 "  consumerGroupId: greeter\n  startupPosition:\n"
                                                                 "    type: specific-offsets\n    offsets:\n"
                                                                 "      - names/0: 42\n")),
    ok("kafka ingress startup at a date", with_ingress("  consumerGroupId: greeter\n",
                                                       "  consumerGroupId: greeter\n  startupPosition:\n"
                                                       "    type: date\n    date: 2020-02-01 04:15:00.000 +0000\n")),
    # IllegalArgumentException: Missing setting for Kafka address.
    refused("kafka ingress without address", with_ingress("  address: kafka:9092\n", ""), "Kafka address"),
    # IllegalArgumentException: Missing setting for consumer group id.
    refused("kafka ingress without group", with_ingress("  consumerGroupId: greeter\n", ""), "consumer group id"),
    # IllegalArgumentException: Must define at least one Kafka topic to consume from.
    refused("kafka ingress without topics", docs(endpoint(), KAFKA_INGRESS.split("  topics:")[0]), "at least one"),
    refused("kafka ingress without id", with_ingress("  id: example/names\n", ""), "'id' is required"),
    refused("kafka ingress id without namespace", with_ingress("id: example/names", "id: names"),
            "id 'names' is not 'namespace/name'"),
    refused("kafka route without targets", with_ingress("      targets:\n        - example/greeter\n", ""),
            "'targets' is required"),
    refused("kafka route without valueType", with_ingress(
        "      valueType: type.googleapis.com/example.GreetRequest\n", ""), "'valueType' is required"),
    refused("kafka route target without namespace", with_ingress("- example/greeter", "- greeter"),
            "target 'greeter' is not 'namespace/name'"),
    # IllegalArgumentException: Invalid autoOffsetResetPosition: sometimes; valid values are [LATEST, EARLIEST]
    refused("kafka autoOffsetResetPosition unknown", with_ingress("  consumerGroupId: greeter\n",
                                                                  "  consumerGroupId: greeter\n"
                                                                  "  autoOffsetResetPosition: sometimes\n"),
            "autoOffsetResetPosition: expected one of"),
    refused("kafka startupPosition unknown", with_ingress("  consumerGroupId: greeter\n",
                                                          "  consumerGroupId: greeter\n  startupPosition:\n"
                                                          "    type: yesterday\n"), "startupPosition.type"),
    refused("kafka startup date malformed", with_ingress("  consumerGroupId: greeter\n",
                                                         "  consumerGroupId: greeter\n  startupPosition:\n"
                                                         "    type: date\n    date: 2020-02-01\n"),
            "startupPosition.date"),
    # IllegalStateException: A binding for the key IngressIdentifier(example, names, ...) was previously defined.
    refused("kafka ingress id twice", docs(endpoint(), KAFKA_INGRESS, KAFKA_INGRESS),
            "ingress id example/names appears twice"),
    # -- Kafka egress --------------------------------------------------------------------------
    ok("kafka egress exactly-once", with_egress("type: at-least-once", "type: exactly-once\n    "
                                                "transactionTimeout: 15min")),
    ok("kafka egress none, with properties", with_egress("type: at-least-once", "type: none\n  properties:\n"
                                                         "    - acks: all")),
    ok("kafka egress without deliverySemantic", with_egress("  deliverySemantic:\n    type: at-least-once\n", "")),
    # NullPointerException (KafkaEgressSpec's address)
    refused("kafka egress without address", with_egress("  address: kafka:9092\n", ""), "'address' is required"),
    refused("kafka egress address in properties only", with_egress(
        "  address: kafka:9092\n", "  properties:\n    - bootstrap.servers: kafka:9092\n"), "'address' is required"),
    # IllegalArgumentException: Invalid delivery semantic type: sometimes; valid types are [...]
    refused("kafka egress semantic unknown", with_egress("type: at-least-once", "type: sometimes"),
            "deliverySemantic.type"),
    refused("kafka egress exactly-once without timeout", with_egress("type: at-least-once", "type: exactly-once"),
            "transactionTimeout"),
    refused("kafka egress id twice", docs(endpoint(), KAFKA_EGRESS, KAFKA_EGRESS),
            "egress id example/greets appears twice"),
    # -- more edges, as the runtime's Jackson reads them ------------------------------------
    ok("functions with an empty namespace", endpoint("/greeter")),
    ok("functions with a trailing slash", endpoint("example/greeter/")),
    refused("functions a namespace and a slash", endpoint("example/"), "'example/' is not 'namespace/name'"),
    ok("maxNumBatchRequests hex", endpoint(extra="maxNumBatchRequests: 0x10\n")),
    ok("maxNumBatchRequests octal", endpoint(extra="maxNumBatchRequests: 010\n")),
    ok("maxNumBatchRequests 5.5", endpoint(extra="maxNumBatchRequests: 5.5\n")),
    ok("maxNumBatchRequests null", endpoint(extra="maxNumBatchRequests:\n")),
    ok("maxNumBatchRequests a quoted number with spaces", endpoint(extra='maxNumBatchRequests: " 5 "\n')),
    ok("maxNumBatchRequests a quoted +5", endpoint(extra='maxNumBatchRequests: "+5"\n')),
    ok("maxNumBatchRequests an empty string", endpoint(extra='maxNumBatchRequests: ""\n')),
    refused("maxNumBatchRequests a quoted 5.0", endpoint(extra='maxNumBatchRequests: "5.0"\n'), "found '5.0'"),
    refused("maxNumBatchRequests a list", endpoint(extra="maxNumBatchRequests: [5]\n"), "found [5]"),
    refused("maxNumBatchRequests 1e10", endpoint(extra="maxNumBatchRequests: 1.0e+10\n"), "found 10000000000.0"),
    ok("okhttp call a YAML integer (ms)", endpoint(extra=okhttp("call: 60000\n"))),
    refused("okhttp call a YAML float", endpoint(extra=okhttp("call: 1.5\n")), "1.5 is a YAML number"),
    refused("async timeouts call null", endpoint(extra=asynchronous("timeouts:\n  call:\n")), "call: null"),
    refused("async timeouts a string", endpoint(extra=asynchronous("timeouts: 5s\n")), "timeouts: expected a mapping"),
    ok("async timeouts null", endpoint(extra=asynchronous("timeouts:\n"))),
    ok("async connect 0s", endpoint(extra=asynchronous("connect: 0s\n"))),
    ok("async pool_ttl 0s", endpoint(extra=asynchronous("pool_ttl: 0s\n"))),
    ok("async payload_max_bytes -1", endpoint(extra=asynchronous("payload_max_bytes: -1\n"))),
    refused("async pool_size -1", endpoint(extra=asynchronous("pool_size: -1\n")), "pool_size: -1 is not 1 or more"),
    ok("async pool_size null", endpoint(extra=asynchronous("pool_size:\n"))),
    ok("async connect past an int of ms", endpoint(extra=asynchronous("connect: 30d\n"))),
    ok("async https with trust_cacerts unset", endpoint(url="https://app/statefun", extra=asynchronous())),
    refused("transport null", endpoint(extra="transport:\n"), "transport: expected a mapping, found null"),
    ok("kafka autoOffsetResetPosition Earliest", with_ingress("  consumerGroupId: greeter\n",
                                                             "  consumerGroupId: greeter\n"
                                                             "  autoOffsetResetPosition: Earliest\n")),
    ok("kafka group id in properties", with_ingress("  consumerGroupId: greeter\n",
                                                   "  properties:\n    - group.id: greeter\n")),
    ok("kafka route with no targets", with_ingress("      targets:\n        - example/greeter\n",
                                                  "      targets: []\n")),
    ok("kafka route valueType without a slash", with_ingress("type.googleapis.com/example.GreetRequest", "greeting")),
    refused("kafka route without topic", with_ingress("    - topic: names\n      valueType", "    - valueType"),
            "'topic' is required"),
    refused("kafka properties an empty mapping", with_ingress("  consumerGroupId: greeter\n",
                                                              "  consumerGroupId: greeter\n  properties:\n    - {}\n"),
            "properties[0]"),
    refused("kafka specific offsets partition not a number", with_ingress(
        "  consumerGroupId: greeter\n", "  consumerGroupId: greeter\n  startupPosition:\n"
        "    type: specific-offsets\n    offsets:\n      - names/x: 42\n"), "names/x"),
    ok("kafka egress exactly-once with transactionTimeoutMillis", with_egress(
        "type: at-least-once", "type: exactly-once\n    transactionTimeoutMillis: 60000")),
    ok("kafka egress address a YAML integer", with_egress("address: kafka:9092", "address: 9092")),
    ok("kinesis ingress and egress", docs(endpoint(), """\
kind: io.statefun.kinesis.v1/ingress
spec:
  id: example/names
  awsRegion:
    type: specific
    id: us-west-1
  awsCredentials:
    type: basic
    accessKeyId: key
    secretAccessKey: secret
  startupPosition:
    type: earliest
  streams:
    - stream: names
      valueType: type.googleapis.com/example.GreetRequest
      targets:
        - example/greeter
""", """\
kind: io.statefun.kinesis.v1/egress
spec:
  id: example/greets
  awsRegion:
    type: specific
    id: us-west-1
  maxOutstandingRecords: 9999
""")),
    refused("kinesis ingress startupPosition unknown", docs(endpoint(), """\
kind: io.statefun.kinesis.v1/ingress
spec:
  id: example/names
  awsRegion:
    type: specific
    id: us-west-1
  startupPosition:
    type: yesterday
  streams:
    - stream: names
      valueType: type.googleapis.com/example.GreetRequest
      targets:
        - example/greeter
"""), "startupPosition.type"),
    # -- where ours refuses more (see DIVERGENT) ---------------------------------------------
    Case("an empty file", "", runtime=True, error="module.meta: 'type' is required"),
    Case("url port 0, async", endpoint(url="http://app:0/statefun"), runtime=True,
         error="the port '0' is not a number from 1 to 65535"),
    Case("kafka route targets a string", with_ingress("      targets:\n        - example/greeter\n",
                                                      "      targets: example/greeter\n"),
         runtime=True, error="targets: expected a list of function types, found 'example/greeter'"),
    # -- what module-yaml generate writes ----------------------------------------------------
    ok("generated kind documents", generated(protocol="3.x")),
    ok("generated kind documents, okhttp", generated(protocol="3.x", transport=OKHTTP_TRANSPORT)),
    ok("generated kind documents, okhttp, 4 s, batches of 5",
       generated(protocol="3.x", transport=OKHTTP_TRANSPORT, timeout=timedelta(seconds=4), max_batch_size=5)),
    ok("generated kind documents, async, 4 s", generated(protocol="3.x", timeout=timedelta(seconds=4))),
    ok("generated kind documents, a URL template",
       generated(protocol="3.x", endpoint="http://app:8000/fn/{function.name}")),
    ok("module-yaml generate --format kind", cli_generated("--format", "kind")),
    ok("module-yaml generate --format kind --transport okhttp", cli_generated("--format", "kind", "--transport",
                                                                                "okhttp")),
    ok("module-yaml generate --format 3.0", cli_generated("--format", "3.0")),
    ok("generated version 3.0", generated(protocol="3.0")),
    ok("generated version 3.0, 3 min", generated(protocol="3.0", timeout=timedelta(minutes=3), max_batch_size=0)),
    ok("generated version 3.0, 500 ms", generated(protocol="3.0", timeout=timedelta(milliseconds=500))),
]


#: Case id -> why ours does not do what the runtime does.
DIVERGENT: Dict[str, str] = {
    "version 2.0 (StateFun 2.2's)": "ours reads a \"1.0\" or \"2.0\" file as the StateFun 2.2 format "
    "(ModuleSpec.protocol '2.x'), which is what it is; 3.3 refuses it",
    "url scheme ftp, async": "the async transport ignores the scheme (it speaks plain HTTP to any scheme but "
    "https); a URL that is not http or https is a mistake",
    "url port 0, async": "the async transport reads port 0 as the scheme's default (80 or 443); OkHttp refuses it",
    "kafka route targets a string": "the runtime iterates a string as an empty list and routes the topic to no "
    "function at all; a mistake, not a choice",
    "an empty file": "nothing in it tells a 3.x file from a 2.x one; ours reads it as 2.x, which StateFun 2.2 "
    "refuses (3.3 loads it as a module with nothing in it)",
}


def params() -> List["pytest.param"]:  # type: ignore[name-defined]
    return [pytest.param(case, id=case.id) for case in CASES]
