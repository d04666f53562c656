"""Tests for statefun_wsgi.protocols: telling a 2.x request from a 3.x one by its bytes,
the ``protocols`` setting, and which codec answers a request."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import ANY_TYPENAME, Sent, decode_reply, from_v3, request, to_v3, v3
from google.protobuf.any_pb2 import Any
from google.protobuf.empty_pb2 import Empty
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi import ConfigurationError, RequestReplyHandler
from statefun_wsgi.errors import MalformedRequestError, ProtocolMismatchError
from statefun_wsgi import StatefulFunctions, detect_protocol
from statefun_wsgi.protocols import DEFAULT_PROTOCOLS, Protocols, parse_protocols

DATA = Path(__file__).resolve().parent / "data" / "v3"


def typed(typename: str, value: bytes = b"", has_value: bool = True) -> v3.TypedValue:
    return v3.TypedValue(typename=typename, has_value=has_value, value=value)


def v3_request(arguments: list, states: dict | None = None) -> bytes:
    """A 3.x request for example/fn id-1 with these TypedValue arguments and states."""
    message = v3.ToFunction()
    batch = message.invocation
    batch.target.CopyFrom(v3.Address(namespace="example", type="fn", id="id-1"))
    for name, value in (states or {}).items():
        state = batch.state.add(state_name=name)
        if value is not None:
            state.state_value.CopyFrom(value)
    for argument in arguments:
        batch.invocations.add().argument.CopyFrom(argument)
    return message.SerializeToString()


EMPTY_ANY_2X = request(messages=[Any(type_url="type.googleapis.com/google.protobuf.Empty")])

DETECTION = [
    ("2x-message", request(messages=[StringValue(value="hi")]), "2.x"),
    ("2x-state-tells", request(state={"s": Int64Value(value=1)}, messages=[Empty()]), "2.x"),
    ("2x-later-argument-tells", request(messages=[Empty(), StringValue(value="hi")]), "2.x"),
    ("2x-all-defaults", request(messages=[Empty(), Int64Value(value=0)], state={"s": None}), None),
    ("3x-message", v3_request([typed("example/t", b"hi")]), "3.x"),
    ("3x-empty-value", v3_request([typed("example/t")]), "3.x"),  # has_value alone tells
    ("3x-value-without-has-value", v3_request([typed("example/t", b"x", has_value=False)]), "3.x"),
    ("3x-state-tells", v3_request([typed("example/t", has_value=False)], {"s": typed(ANY_TYPENAME, b"")}), "3.x"),
    ("3x-has-value-false", v3_request([typed("example/t", has_value=False)], {"s": None}), None),
    ("3x-vector-1", (DATA / "request-1.bin").read_bytes(), "3.x"),
    ("3x-vector-2", (DATA / "request-2.bin").read_bytes(), "3.x"),
    ("not-a-request", b"\xff\xff\xff", None),
    ("truncated", request(messages=[StringValue(value="hi")])[:-3], None),
    ("empty", b"", None),
]


@pytest.mark.parametrize("data, expected", [d[1:] for d in DETECTION], ids=[d[0] for d in DETECTION])
def test_detect_protocol(data, expected):
    assert detect_protocol(data) == expected


def test_detect_protocol_takes_any_bytes_like():
    data = request(messages=[StringValue(value="hi")])
    assert detect_protocol(bytearray(data)) == detect_protocol(memoryview(data)) == "2.x"


@pytest.mark.parametrize(
    "setting, versions",
    [
        ("2.x,3.x", ("2.x", "3.x")),
        ("3.x, 2.x", ("3.x", "2.x")),
        ("2.x", ("2.x",)),
        ("3.x", ("3.x",)),
        (["3.x", "2.x"], ("3.x", "2.x")),
        (("2.x",), ("2.x",)),
    ],
)
def test_parse_protocols(setting, versions):
    assert parse_protocols(setting) == versions
    assert Protocols(setting).versions == versions


@pytest.mark.parametrize("setting", ["", "2", "3.0", "2.x,2.x", "2.x,3.x,2.x", "4.x", None, 3, [], ["2.x", 3]])
def test_bad_protocols_setting_is_a_configuration_error(setting):
    with pytest.raises(ConfigurationError, match=r"protocols must be '2.x', '3.x', '2.x,3.x' or '3.x,2.x'"):
        Protocols(setting)


def test_default_serves_both_and_prefers_2x():
    assert DEFAULT_PROTOCOLS == "2.x,3.x"
    assert Protocols().versions == ("2.x", "3.x")


def echo_functions() -> StatefulFunctions:
    functions = StatefulFunctions()

    @functions.bind("example/fn")
    def fn(context, message: Any):
        context.send("example/echo", "x", message)

    return functions


ANSWERS = [
    # (request, setting, the protocol of the reply)
    ("2x", "2.x,3.x", "2.x"),
    ("2x", "3.x,2.x", "2.x"),
    ("2x", "2.x", "2.x"),
    ("3x", "2.x,3.x", "3.x"),
    ("3x", "3.x,2.x", "3.x"),
    ("3x", "3.x", "3.x"),
    ("ambiguous", "2.x,3.x", "2.x"),
    ("ambiguous", "3.x,2.x", "3.x"),
    ("ambiguous", "2.x", "2.x"),
    ("ambiguous", "3.x", "3.x"),
]
REQUESTS = {
    "2x": request(messages=[StringValue(value="hi")]),
    "3x": to_v3(request(messages=[StringValue(value="hi")])),
    "ambiguous": EMPTY_ANY_2X,
}


def reply_protocol(reply: bytes) -> str:
    """The protocol a reply holding one outgoing message is written in."""
    argument = v3.FromFunction.FromString(reply).invocation_result.outgoing_messages[0].argument
    return "3.x" if argument.has_value else "2.x"


@pytest.mark.parametrize("kind, setting, answered_in", ANSWERS)
def test_each_request_is_answered_in_its_protocol_and_an_ambiguous_one_in_the_first_configured(
    kind, setting, answered_in
):
    handler = RequestReplyHandler(echo_functions(), protocols=setting)
    reply = handler(REQUESTS[kind])
    assert reply_protocol(reply) == answered_in
    decoded = decode_reply(reply if answered_in == "2.x" else from_v3(reply))
    expected = Empty() if kind == "ambiguous" else StringValue(value="hi")
    assert decoded.sent == [Sent("example", "echo", "x", expected)]


@pytest.mark.parametrize(
    "kind, setting, version", [("3x", "2.x", "3.x"), ("2x", "3.x", "2.x")], ids=["3x-to-2x-only", "2x-to-3x-only"]
)
def test_a_request_of_a_protocol_not_served_is_a_415_naming_the_setting(kind, setting, version):
    handler = RequestReplyHandler(echo_functions(), protocols=setting)
    with pytest.raises(ProtocolMismatchError) as info:
        handler(REQUESTS[kind])
    assert info.value.status == 415
    assert str(info.value) == (
        f"the request is a StateFun {version} one, but this endpoint serves {setting} only (the protocols "
        f"setting; STATEFUN_PROTOCOLS in Django): add {version} to it, or point the {version} runtime at an "
        f"endpoint that serves {version}"
    )


def test_open_returns_the_codec_and_the_parsed_request():
    protocols = Protocols("2.x,3.x")
    codec, parsed = protocols.open(REQUESTS["3x"])
    assert codec.version == "3.x"
    assert parsed.invocation.invocations[0].argument.has_value
    codec, parsed = protocols.open(REQUESTS["2x"])
    assert codec.version == "2.x"
    assert parsed.invocation.invocations[0].argument.value == StringValue(value="hi").SerializeToString()


def test_a_body_that_is_no_request_is_still_malformed():
    with pytest.raises(MalformedRequestError, match="not a serialized ToFunction"):
        Protocols("2.x,3.x").open(b"\x0a\xff")
    with pytest.raises(MalformedRequestError, match="not a serialized StateFun 3.x ToFunction"):
        Protocols("3.x").open(b"\x0a\xff")


def test_repr_and_setting():
    assert repr(Protocols(["3.x", "2.x"])) == "Protocols('3.x,2.x')"


@pytest.mark.parametrize("setting", ["2.x,3.x", "3.x,2.x"])
def test_the_order_tried_follows_the_last_request_but_never_decides_the_answer(setting):
    handler = RequestReplyHandler(echo_functions(), protocols=setting)
    preferred = setting[:3]
    sequence = ["2x", "3x", "3x", "ambiguous", "3x", "2x", "ambiguous", "2x", "3x", "ambiguous"]
    for kind in sequence:
        before = handler.protocols.hint.version
        answered = reply_protocol(handler(REQUESTS[kind]))
        assert answered == {"2x": "2.x", "3x": "3.x", "ambiguous": preferred}[kind], (kind, before)
        # a request that shows its protocol moves the hint there; an undecidable one leaves it
        assert handler.protocols.hint.version == (before if kind == "ambiguous" else answered)


def test_a_malformed_body_is_malformed_whatever_the_hint():
    protocols = Protocols("2.x,3.x")
    protocols.open(REQUESTS["3x"])
    assert protocols.hint.version == "3.x"
    with pytest.raises(MalformedRequestError, match=r"not a serialized ToFunction"):  # the preferred one's error
        protocols.open(b"\x0a\xff")


def test_a_batch_whose_first_argument_is_empty_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty argument proves nothing in either protocol: the other codec's parse would
    only hold a large batch twice in memory (double the peak RSS for a 2 MiB batch of empty
    invocations), so the bytes are walked instead, and the request is answered in 2.x."""
    protocols = Protocols("2.x,3.x")
    data = request(messages=[Any()] * 1000)

    def no_second_parse(request_bytes: bytes) -> object:
        raise AssertionError("the 3.x codec parsed the batch too")

    three = protocols._codecs["3.x"]
    monkeypatch.setattr(three, "parse", no_second_parse)
    monkeypatch.setattr(three, "from_string", no_second_parse)
    codec, parsed = protocols.open(data)
    assert codec.version == "2.x" and len(parsed.invocation.invocations) == 1000  # type: ignore[attr-defined]
