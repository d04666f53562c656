"""Differential tests: statefun_wsgi.v3 against the official StateFun 3.3 Python SDK.

The scenarios of tests/data/v3/scenarios.py (every message type read, every way to send,
states of every built-in, JSON, protobuf and custom type declared, read, written and
deleted, with expiry) were run by the official SDK 3.3.0 and its requests and replies
recorded in tests/data/v3/differential.json. Here the same functions run through
statefun_wsgi.v3 on the same request bytes, and the replies are compared by content:
state mutations by name (the official SDK writes them in ValueSpec order, we in the order
written), messages, delayed messages and egress records in order. Most are byte-identical.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Dict

import pytest

import statefun_wsgi.v3 as sf
from statefun_wsgi import ConfigurationError
from statefun_wsgi._proto import request_reply_v3_pb2 as pb

DATA = Path(__file__).resolve().parent / "data" / "v3"
_spec = importlib.util.spec_from_file_location("v3_scenarios", DATA / "scenarios.py")
assert _spec is not None and _spec.loader is not None
scenario_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scenario_module)

RECORDED: Dict[str, Dict[str, str]] = json.loads((DATA / "differential.json").read_text())
SCENARIOS = scenario_module.scenarios(sf, pb)


def content(reply: bytes) -> Dict[str, Any]:
    parsed = pb.FromFunction.FromString(reply)
    if parsed.HasField("incomplete_invocation_context"):
        return {"missing": [m.SerializeToString() for m in parsed.incomplete_invocation_context.missing_values]}
    result = parsed.invocation_result
    return {
        "mutations": {m.state_name: m.SerializeToString() for m in result.state_mutations},
        "mutation_count": len(result.state_mutations),
        "messages": [m.SerializeToString() for m in result.outgoing_messages],
        "delayed": [m.SerializeToString() for m in result.delayed_invocations],
        "egress": [m.SerializeToString() for m in result.outgoing_egresses],
    }


def test_every_scenario_was_recorded() -> None:
    assert sorted(SCENARIOS) == sorted(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_same_request_same_reply_as_the_official_sdk(name: str) -> None:
    functions, request = SCENARIOS[name]
    assert request.hex() == RECORDED[name]["request"]  # the same bytes in
    ours = sf.RequestReplyHandler(functions).handle_sync(request)
    official = bytes.fromhex(RECORDED[name]["reply"])
    assert content(ours) == content(official)
    assert ours == official  # and byte for byte (mutations happen to be written in ValueSpec order here)
    decoded = content(ours)
    assert decoded.get("missing") or decoded["mutations"] or decoded["messages"] or decoded["egress"]


def test_replies_differ_when_the_function_differs() -> None:
    # The comparison can fail: the reader scenario with one egress text changed.
    functions = sf.StatefulFunctions()

    @functions.bind("example/fn")
    def reader(context: Any, message: Any) -> None:
        context.send_egress(sf.egress_message_builder("example/out", "something else", sf.StringType))

    request = bytes.fromhex(RECORDED["read_builtin_messages"]["request"])
    official = bytes.fromhex(RECORDED["read_builtin_messages"]["reply"])
    assert content(sf.RequestReplyHandler(functions).handle_sync(request)) != content(official)


def test_register_validates_as_the_official_sdk() -> None:
    functions = sf.StatefulFunctions()
    with pytest.raises(ValueError, match="does not expect a context and a message"):
        functions.register("example/fn", lambda context: None)
    with pytest.raises(ValueError, match="function typename must be provided"):
        functions.register("", lambda context, message: None)
    with pytest.raises(TypeError, match="statefun_wsgi.v3.ValueSpec"):
        functions.register("example/fn", lambda context, message: None, ["seen"])  # type: ignore[list-item]


def test_binding_twice_is_refused() -> None:
    # The official SDK silently replaces the first function.
    functions = sf.StatefulFunctions()
    functions.register("example/fn", lambda context, message: None)
    with pytest.raises(ConfigurationError, match="already bound"):
        functions.register("example/fn", lambda context, message: None)


def test_bind_returns_the_function_and_for_typename_finds_it() -> None:
    functions = sf.StatefulFunctions()

    def fn(context: Any, message: Any) -> None:
        pass

    assert functions.bind("example/fn", specs=[sf.ValueSpec("seen", sf.IntType)])(fn) is fn
    registration = functions.for_typename("example/fn")
    assert registration.typename == "example/fn" and list(registration.value_specs) == ["seen"]
    assert registration.value_specs["seen"].typename == "io.statefun.types/int"
    with pytest.raises(KeyError):
        functions.for_typename("example/none")
