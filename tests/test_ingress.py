"""Tests for statefun_wsgi.local.ingress: the development HTTP ingress (a WSGI app)
in front of a local runtime running the greeter example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import Int64Value
from werkzeug.test import Client

from examples.greeter import functions as greeter_module
from examples.greeter.messages_pb2 import GreetRequest
from statefun_wsgi.local import LocalRuntime
from statefun_wsgi.local.ingress import IngressApp, parse_address

GREET = "example.greeter.GreetRequest"


@pytest.fixture
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime.for_functions(greeter_module.functions) as runtime:
        yield runtime


@pytest.fixture
def client(runtime: LocalRuntime) -> Client:
    return Client(IngressApp(runtime))


def packed(message) -> bytes:
    argument = Any()
    argument.Pack(message)
    return argument.SerializeToString()


def kafka_values(client: Client) -> list:
    response = client.get("/egress/example/greets")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return [(record["kafka"]["topic"], record["kafka"]["key"], record["kafka"]["value"]) for record in response.json]


def test_post_json_message(client: Client, runtime: LocalRuntime) -> None:
    response = client.post("/ingress/example/greeter/alice", json={"@type": GREET, "name": "alice"})
    assert response.status_code == 202
    assert response.json == {"accepted": "example/greeter/alice", "type": f"type.googleapis.com/{GREET}"}
    runtime.run_until_idle()
    assert kafka_values(client) == [("greetings", "alice", "Hello alice! Nice to meet you.")]
    assert runtime.state("example/greeter", "alice", "seen_count", Int64Value) == Int64Value(value=1)


def test_post_json_with_a_full_type_url_and_no_content_type(client: Client, runtime: LocalRuntime) -> None:
    body = json.dumps({"@type": f"type.googleapis.com/{GREET}", "name": "bob"})
    response = client.post("/ingress/example/greeter/bob", data=body)
    assert response.status_code == 202, response.text
    runtime.run_until_idle()
    assert kafka_values(client) == [("greetings", "bob", "Hello bob! Nice to meet you.")]


def test_post_serialized_any(client: Client, runtime: LocalRuntime) -> None:
    for _ in range(2):
        response = client.post(
            "/ingress/example/greeter/carol",
            data=packed(GreetRequest(name="carol")),
            content_type="application/octet-stream",
        )
        assert response.status_code == 202
        assert response.json["type"] == f"type.googleapis.com/{GREET}"
    runtime.run_until_idle()
    assert kafka_values(client) == [
        ("greetings", "carol", "Hello carol! Nice to meet you."),
        ("greetings", "carol", "Hello carol! This is visit number 2."),
    ]


def test_an_egress_module_yaml_does_not_declare_is_not_found() -> None:
    module = Path(__file__).resolve().parents[1] / "deploy" / "module.yaml"
    with LocalRuntime.for_functions(greeter_module.functions, module_yaml=module) as runtime:
        client = Client(IngressApp(runtime))
        assert client.get("/egress/example/greets").json == []
        response = client.get("/egress/example/elsewhere")
        assert response.status_code == 404
        assert response.text == "no egress example/elsewhere is declared (module.yaml declares example/greets)\n"


def test_get_state_and_egress_after_run_until_idle(client: Client, runtime: LocalRuntime) -> None:
    assert client.get("/state/example/greeter/dave/seen_count").json is None  # absent
    assert client.get("/egress/example/greets").json == []
    for _ in range(3):
        client.post("/ingress/example/greeter/dave", json={"@type": GREET, "name": "dave"})
    # Nothing is delivered until the runtime runs.
    assert client.get("/state/example/greeter/dave/seen_count").json is None
    runtime.run_until_idle()

    state = client.get("/state/example/greeter/dave/seen_count")
    assert state.status_code == 200
    assert state.json == {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "3"}
    assert client.get("/egress/example/greets").json == [
        {"egress": "example/greets", "kafka": {"topic": "greetings", "key": "dave", "value": value}}
        for value in ("Hello dave! Nice to meet you.", "Hello dave! This is visit number 2.",
                      "Hello dave! This is visit number 3.")
    ]
    # No module.yaml here: the runtime takes records for any egress, so any may be asked for.
    assert client.get("/egress/example/elsewhere").json == []

    runtime.advance(greeter_module.REMINDER_DELAY)
    assert kafka_values(client)[-1] == ("reminders", "dave", "Hi dave, still there? Come back soon!")


BAD_REQUESTS = [
    pytest.param("/ingress/example/greeter/x", {"data": "{not json", "content_type": "application/json"},
                 "the body is not JSON", id="bad JSON"),
    pytest.param("/ingress/example/greeter/x", {"json": {"@type": "example.greeter.Nope", "name": "x"}},
                 "message type 'example.greeter.Nope' is not known here", id="unknown message type"),
    pytest.param("/ingress/example/greeter/x", {"json": {"name": "x"}}, '"@type"', id="no @type"),
    pytest.param("/ingress/example/greeter/x", {"json": {"@type": GREET, "nome": "x"}},
                 f"the JSON does not fit {GREET}", id="unknown field"),
    pytest.param("/ingress/example/greeter", {"json": {"@type": GREET, "name": "x"}},
                 "is not an address like 'namespace/type/id'", id="bad address"),
    pytest.param("/ingress/example/nobody/x", {"json": {"@type": GREET, "name": "x"}},
                 "no function type example/nobody", id="unknown function type"),
    pytest.param("/ingress/example/greeter/x", {"data": b"\xff\xff\xff", "content_type": "application/octet-stream"},
                 "not a serialized google.protobuf.Any", id="not an Any"),
    pytest.param("/ingress/example/greeter/x", {"data": b"", "content_type": "application/octet-stream"},
                 "the Any has no type_url", id="empty Any"),
]


@pytest.mark.parametrize(("path", "body", "problem"), BAD_REQUESTS)
def test_bad_messages_are_400_and_not_sent(client: Client, runtime: LocalRuntime, path: str, body: dict,
                                           problem: str) -> None:
    response = client.post(path, **body)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert problem in response.text
    assert response.text.count("\n") == 1  # one line
    runtime.run_until_idle()
    assert runtime.batches_sent == 0


def test_bad_reads_are_400(client: Client) -> None:
    unknown_state = client.get("/state/example/greeter/alice/no_such_state")
    assert unknown_state.status_code == 400
    assert "no registered state 'no_such_state'" in unknown_state.text
    assert client.get("/state/example/greeter").status_code == 400


def test_other_routes(client: Client) -> None:
    health = client.get("/health")
    assert (health.status_code, health.text) == (200, "ok\n")
    wrong_method = client.get("/ingress/example/greeter/alice")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert client.get("/nowhere").status_code == 404
    assert client.post("/egress/example/greets").status_code == 404


@pytest.mark.parametrize(
    ("text", "expected"),
    [("example/greeter/alice", ("example/greeter", "alice")),
     ("/com.example.fns/greeter/id-1/", ("com.example.fns/greeter", "id-1")),
     ("a/b/c/d", ("a/b/c", "d"))],
)
def test_parse_address(text: str, expected: tuple) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "greeter/alice", "example//alice", "example/greeter/"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not an address"):
        parse_address(text)


def test_official_api_functions_take_and_show_the_builtin_types_as_json() -> None:
    """A statefun_wsgi.v3 registry (the 3.x protocol): ``{"@type": "io.statefun.types/string",
    "value": ...}`` in, states and egress records of the built-in types shown the same way."""
    from tests.v3_app import functions as official_api_functions

    with LocalRuntime.for_functions(official_api_functions) as runtime:
        client = Client(IngressApp(runtime))
        for text in ("hi", "ho"):
            response = client.post("/ingress/example/counter/ann", json={"@type": "io.statefun.types/string",
                                                                         "value": text})
            assert response.status_code == 202, response.text
            assert response.json == {"accepted": "example/counter/ann", "type": "io.statefun.types/string"}
        runtime.run_until_idle()
        assert client.get("/state/example/counter/ann/count").json == {"@type": "io.statefun.types/int", "value": 2}
        assert client.get("/state/example/counter/ann/last").json == {"@type": "io.statefun.types/string",
                                                                       "value": "ho"}
        records = [record["kafka"] for record in client.get("/egress/example/out").json]
        assert [r["value"] for r in records if r["topic"] == "counts"] == ["hi 1", "ho 2"]
        assert [r["value"] for r in records if r["topic"] == "doubled"] == ["2", "4"]
