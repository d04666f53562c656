"""Hostile input: the request-reply handler and the WSGI middleware under a fuzzer.

Hypothesis feeds the handler (``RequestReplyHandler``) and the middleware
(``StatefunMiddleware``, through a WSGI ``environ``) with:

* random bytes;
* valid batches, mutated: truncated, bits flipped, bytes inserted or deleted,
  ranges and whole fields duplicated, requests spliced together;
* requests written field by field in the protobuf wire format, with wrong wire
  types for known fields, lengths that lie (short, long, 2**64), oversized strings,
  invalid UTF-8, absurd type URLs, empty or missing targets, stray groups;
* deep nesting of groups and sub-messages (up to thousands of levels);
* batches of thousands of invocations;
* odd HTTP framing: methods, content types, ``Content-Length`` values that lie.

The property, checked against an oracle that parses the body with the protocol's
own message definitions (``request_reply.proto``, where a state is plain bytes):

* a body that is not a valid ``ToFunction`` invocation batch gets a 4xx
  (:class:`~statefun_wsgi.errors.RequestError`), never a 5xx, and no other exception;
* a valid batch for an unbound function type gets 404;
* a valid batch for a bound function gets 200 with a ``FromFunction``, or a 500
  only through :class:`~statefun_wsgi.FunctionInvocationError` caused by what the
  SDK documents (a message or state of an unexpected type, a state the runtime did
  not send);
* the middleware answers the same status and body as the handler implies;
* peak memory while handling a hostile request stays within a small multiple of
  its size (tracemalloc for Python objects; peak RSS for protobuf's arenas).

Runs are bounded. The default profile (``HYPOTHESIS_PROFILE`` unset or ``ci``) tries
~300 inputs per test in well under 20 s; a long run by hand::

    HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py --hypothesis-show-statistics

(100 times the examples, an example database under ``~/.cache/statefun-wsgi``;
``STATEFUN_FUZZ_SCALE=N`` multiplies the example counts of either profile).
Every failure the fuzzer ever found is kept below as a literal regression case.
"""

from __future__ import annotations

import io
import logging
import os
import random
import socket
import tracemalloc
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
import robust_app
from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError
from google.protobuf.wrappers_pb2 import Int64Value, StringValue
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import event as _event
from hypothesis import note as _note
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.control import currently_in_test_context
from hypothesis.database import DirectoryBasedExampleDatabase

from statefun_wsgi import (
    AsyncRequestReplyHandler,
    FunctionInvocationError,
    MissingStateError,
    RequestReplyHandler,
    StatefunError,
    StatefunMiddleware,
    UnexpectedMessageTypeError,
)
from statefun_wsgi.errors import RequestError
from statefun_wsgi._proto import request_reply_pb2 as reference

# -- profiles ----------------------------------------------------------------------------

#: Hypothesis keeps caches (and writes patches for failures) under ./.hypothesis by
#: default: keep them out of the repository.
_STORAGE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "statefun-wsgi" / "hypothesis"
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(_STORAGE)

#: Reporting a failure makes hypothesis import a module that warns on this interpreter;
#: under ``filterwarnings = error`` that would hide the failure itself.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

_SCALE = float(os.environ.get("STATEFUN_FUZZ_SCALE", "1"))
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if _PROFILE not in ("ci", "long"):
    _PROFILE = "ci"  # another project-wide profile name: keep this file bounded

_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("statefun-fuzz-ci", database=None, **_COMMON)
settings.register_profile(
    "statefun-fuzz-long",
    database=DirectoryBasedExampleDatabase(str(_STORAGE / "examples")),
    **_COMMON,
)
_BASE = settings.get_profile(f"statefun-fuzz-{_PROFILE}")
_LONG_FACTOR = 100 if _PROFILE == "long" else 1


def fuzz(examples: int) -> settings:
    """Settings for one test: ``examples`` inputs in CI, 100x in the long profile."""
    return settings(_BASE, max_examples=max(1, int(examples * _LONG_FACTOR * _SCALE)))


# -- the functions under test ------------------------------------------------------------

FUNCTIONS = robust_app.functions
BOUND = sorted(FUNCTIONS.typenames)
#: What the generators aim at: every bound function but robust/flaky, which raises on purpose.
TARGETS = [typename for typename in BOUND if typename != "robust/flaky"]
HANDLER = RequestReplyHandler(FUNCTIONS)
ASYNC_HANDLER = AsyncRequestReplyHandler(FUNCTIONS)
MAX_BODY = 32 * 1024 * 1024  # the default
MIDDLEWARE = StatefunMiddleware(None, FUNCTIONS, max_body_size=MAX_BODY)
SMALL_LIMIT = 2048
SMALL_MIDDLEWARE = StatefunMiddleware(None, FUNCTIONS, max_body_size=SMALL_LIMIT)

#: What a FunctionInvocationError may be caused by when the batch itself is valid.
DOCUMENTED_CAUSES = (UnexpectedMessageTypeError, MissingStateError)


@pytest.fixture(autouse=True)
def _quiet_endpoint_log() -> Iterator[None]:
    """The endpoint logs every rejected request; thousands of records would only slow
    the run and hold memory (pytest keeps captured records until the test ends)."""
    logger = logging.getLogger("statefun_wsgi")
    disabled = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = disabled


# -- the protobuf wire format, written by hand --------------------------------------------

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as protobuf writes them
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def ld(field: int, payload: bytes, declared: Optional[int] = None) -> bytes:
    """A length-delimited field; ``declared`` overrides the length written."""
    return key(field, LEN) + varint(len(payload) if declared is None else declared) + payload


def group(field: int, payload: bytes) -> bytes:
    return key(field, START_GROUP) + payload + key(field, END_GROUP)


def address(namespace: str = "fuzz", type: str = "echo", id: str = "id-1") -> bytes:
    return ld(1, namespace.encode()) + ld(2, type.encode()) + ld(3, id.encode())


def any_bytes(message) -> bytes:
    packed = Any()
    packed.Pack(message)
    return packed.SerializeToString()


def batch(target: bytes, states: Sequence[bytes] = (), invocations: Sequence[bytes] = ()) -> bytes:
    """A ToFunction: ``target`` (Address bytes), states and invocations (their bytes)."""
    body = ld(1, target) + b"".join(ld(2, s) for s in states) + b"".join(ld(3, i) for i in invocations)
    return ld(100, body)


def invocation(argument: bytes, caller: Optional[bytes] = None) -> bytes:
    return (b"" if caller is None else ld(1, caller)) + ld(2, argument)


def state(name: str, value: bytes = b"") -> bytes:
    return ld(1, name.encode()) + (ld(2, value) if value else b"")


def wire_fields(data: bytes) -> Optional[List[Tuple[int, int, bytes]]]:
    """Split a well-formed message into (field, wire type, whole encoding); None if not."""
    fields = []
    position = 0
    try:
        while position < len(data):
            start = position
            tag, position = _read_varint(data, position)
            field, wire_type = tag >> 3, tag & 7
            if wire_type == VARINT:
                _, position = _read_varint(data, position)
            elif wire_type == FIXED64:
                position += 8
            elif wire_type == FIXED32:
                position += 4
            elif wire_type == LEN:
                length, position = _read_varint(data, position)
                position += length
            else:
                return None
            if position > len(data):
                return None
            fields.append((field, wire_type, data[start:position]))
    except IndexError:
        return None
    return fields


def _read_varint(data: bytes, position: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, position


def _payload(encoded: bytes) -> bytes:
    """The payload of one length-delimited field encoding."""
    _, position = _read_varint(encoded, 0)
    length, position = _read_varint(encoded, position)
    return encoded[position : position + length]


# -- the oracle ----------------------------------------------------------------------------

INVALID, UNBOUND, VALID = "invalid", "unbound", "valid"


def note(text: str) -> None:
    """hypothesis.note, where there is a hypothesis test to note it for."""
    if currently_in_test_context():
        _note(text)


def event(text: str) -> None:
    """hypothesis.event (counted in --hypothesis-show-statistics), inside a test."""
    if currently_in_test_context():
        _event(text)


def classify(body: bytes) -> str:
    """What the protocol says ``body`` is, read with the protocol's own messages.

    A state value must be a serialized ``google.protobuf.Any`` (the runtime only ever
    stores what a function wrote); it is parsed at the same nesting depth as in a
    request (a ``FromFunction``'s outgoing argument sits as deep), so protobuf's
    nesting limit applies to it exactly as it does in the handler.
    """
    request = reference.ToFunction()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError, RuntimeError):
        return INVALID
    if not request.HasField("invocation"):
        return INVALID
    batch_ = request.invocation
    if not batch_.invocations:
        return INVALID
    for persisted in batch_.state:
        if persisted.state_value:
            try:
                reference.FromFunction.FromString(ld(100, ld(2, ld(2, persisted.state_value))))
            except (DecodeError, ValueError, RuntimeError):
                return INVALID
    if f"{batch_.target.namespace}/{batch_.target.type}" not in BOUND:
        return UNBOUND
    return VALID


class Outcome:
    """What the handler did with one body: its status, reply bytes or error text."""

    def __init__(self, status: int, reply: bytes = b"", error: Optional[StatefunError] = None) -> None:
        self.status = status
        self.reply = reply
        self.error = error


def check_handler(body: bytes) -> Outcome:
    """Run the handler on ``body`` and check it against the oracle."""
    expected = classify(body)
    note(f"oracle: {expected}; body ({len(body)} bytes): {body[:200]!r}")
    try:
        reply = HANDLER(body)
    except RequestError as error:
        assert expected != VALID, f"a valid batch was refused: {error}"
        wanted = 404 if expected == UNBOUND else 400
        assert error.status == wanted, f"{expected} body answered {error.status}: {error}"
        return Outcome(error.status, error=error)
    except FunctionInvocationError as error:
        assert expected == VALID, f"{expected} body raised {error!r}"
        cause = error.__cause__
        assert isinstance(cause, DOCUMENTED_CAUSES), f"a function failed with an undocumented cause: {cause!r}"
        return Outcome(500, error=error)
    # Anything else (another StatefunError, any other exception) fails the test as it is.
    assert expected == VALID, f"{expected} body answered 200"
    reference.FromFunction.FromString(reply)  # it parses (not str()-ed: Anys holding junk would not print)
    note(f"reply: {len(reply)} bytes")
    return Outcome(200, reply)


def check_async_handler(body: bytes, outcome: Outcome) -> None:
    """The async handler agrees with the sync one, to the byte."""
    import asyncio

    try:
        reply = asyncio.run(ASYNC_HANDLER(body))
    except StatefunError as error:
        assert outcome.error is not None and type(error) is type(outcome.error), f"{error!r} vs {outcome.error!r}"
        assert str(error) == str(outcome.error)
        return
    assert outcome.status == 200 and reply == outcome.reply


def environ_for(
    body: bytes,
    *,
    method: str = "POST",
    path: str = "/statefun",
    content_type: Optional[str] = "application/octet-stream",
    content_length: Optional[str] = "exact",
    stream_body: Optional[bytes] = None,
    terminated: bool = False,
) -> Dict[str, object]:
    environ: Dict[str, object] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "SERVER_NAME": "fuzz",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(body if stream_body is None else stream_body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length == "exact":
        environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    if terminated:
        environ["wsgi.input_terminated"] = True
    return environ


def call_wsgi(app: Callable, environ: Dict[str, object]) -> Tuple[int, Dict[str, str], bytes]:
    captured: Dict[str, object] = {}

    def start_response(status: str, headers: List[Tuple[str, str]], exc_info: object = None) -> None:
        captured["status"] = status
        captured["headers"] = headers

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    status = int(str(captured["status"]).split()[0])
    headers = dict(captured["headers"])  # type: ignore[arg-type]
    assert int(headers["Content-Length"]) == len(body)
    return status, headers, body


def check_middleware(body: bytes, outcome: Outcome) -> None:
    """The middleware answers what the handler's outcome implies, to the byte."""
    status, headers, reply = call_wsgi(MIDDLEWARE, environ_for(body))
    assert status == outcome.status, f"middleware {status}, handler {outcome.status}: {reply[:300]!r}"
    if status == 200:
        assert headers["Content-Type"] == "application/octet-stream"
        assert reply == outcome.reply
    else:
        assert headers["Content-Type"].startswith("text/plain")
        assert reply.count(b"\n") == 1 and reply.endswith(b"\n"), "an error body is one line"
        assert b"Traceback" not in reply


def check(body: bytes, *, via_async: bool = False) -> Outcome:
    outcome = check_handler(body)
    event(f"status {outcome.status}")
    check_middleware(body, outcome)
    if via_async:
        check_async_handler(body, outcome)
    return outcome


# -- strategies: building blocks --------------------------------------------------------

INVALID_UTF8 = [
    b"\xff",
    b"\xc3",  # a lead byte without its continuation
    b"\xc0\x80",  # an overlong NUL
    b"\xed\xa0\x80",  # a UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"abc\x80def",
]

ABSURD_TYPE_URLS = [
    "",
    "/",
    "//////////",
    "type.googleapis.com/",
    "no-slash-at-all",
    "type.googleapis.com/google.protobuf.StringValue",
    "type.googleapis.com/google.protobuf.Int64Value",
    "type.googleapis.com/google.protobuf.Any",
    "com.googleapis/google.protobuf.StringValue",
    "a/b/c/d/google.protobuf.StringValue",
    "type.googleapis.com/google.protobuf.StringValue/",
    "type.googleapis.com/org.apache.flink.statefun.flink.core.polyglot.ToFunction",
    "type.googleapis.com/\x00",
    "type.googleapis.com/\u202e\u0645\U0001f600",
    "x" * 5000 + "/google.protobuf.StringValue",
]

KNOWN_ARGUMENTS = [
    any_bytes(StringValue(value="hello")),
    any_bytes(StringValue(value="")),
    any_bytes(Int64Value(value=7)),
    any_bytes(Int64Value(value=-(1 << 63))),
    any_bytes(Int64Value(value=(1 << 63) - 1)),
    b"",  # an empty Any
]

@st.composite
def _text(draw: st.DrawFn, oversized: bool) -> bytes:
    """A string field's bytes: mostly valid UTF-8, sometimes not, sometimes huge."""
    roll = draw(st.integers(min_value=0, max_value=39))
    if roll < 36:
        return draw(st.text(max_size=12)).encode("utf-8")
    if roll < 37:
        return draw(st.sampled_from(INVALID_UTF8))
    if roll < 39 or not oversized:
        return draw(st.binary(max_size=12))
    return b"n" * draw(st.integers(min_value=1_000, max_value=300_000))


small_text_bytes = _text(oversized=False)
text_bytes = _text(oversized=True)


#: Field numbers: the protocol's, their neighbours, the extremes, and anything valid.
field_numbers = st.one_of(
    st.sampled_from([1, 2, 3, 4, 99, 100, 101, 15, 16, 2047, 2048, 19000, (1 << 29) - 1]),
    st.integers(min_value=1, max_value=(1 << 29) - 1),
)


@st.composite
def stray_field(draw: st.DrawFn, depth: int = 0) -> bytes:
    """Any one field: a random number and wire type (including the invalid 6 and 7,
    a lone end-group, truncated varints and lying lengths)."""
    field = draw(st.one_of(field_numbers, st.just(0)))
    kind = draw(
        st.sampled_from(["varint", "fixed32", "fixed64", "bytes", "group", "bad-wire-type", "end-group",
                         "truncated-varint", "lying-length", "huge-length"])
    )
    if kind == "varint":
        return key(field, VARINT) + varint(draw(st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)))
    if kind == "fixed32":
        return key(field, FIXED32) + draw(st.binary(min_size=4, max_size=4))
    if kind == "fixed64":
        return key(field, FIXED64) + draw(st.binary(min_size=8, max_size=8))
    if kind == "bytes":
        return ld(field, draw(st.binary(max_size=32)))
    if kind == "group":
        inner = b"".join(draw(st.lists(stray_field(depth + 1), max_size=2))) if depth < 3 else b""
        return group(field, inner)
    if kind == "bad-wire-type":
        return key(field, draw(st.sampled_from([6, 7]))) + draw(st.binary(max_size=4))
    if kind == "end-group":
        return key(field, END_GROUP)
    if kind == "truncated-varint":
        return key(field, VARINT) + b"\x80" * draw(st.integers(min_value=1, max_value=11))
    payload = draw(st.binary(max_size=16))
    if kind == "lying-length":
        return ld(field, payload, declared=len(payload) + draw(st.integers(min_value=1, max_value=1 << 20)))
    return ld(field, payload, declared=draw(st.integers(min_value=1 << 31, max_value=(1 << 64) - 1)))


#: One field in how many is damaged (0: none), as drawn by the request being built.
_damage = {"one_in": 8}


@st.composite
def field_encoding(draw: st.DrawFn, field: int, payload: bytes) -> bytes:
    """Field ``field`` carrying ``payload`` (length-delimited), encoded well or badly."""
    one_in = _damage["one_in"]
    if not one_in or draw(st.integers(min_value=1, max_value=one_in)) > 1:
        return ld(field, payload)
    how = draw(
        st.sampled_from(["twice", "omitted", "wrong-wire-type", "declared-longer", "declared-shorter",
                         "huge-length", "as-group"])
    )
    if how == "twice":
        return ld(field, payload) + ld(field, payload)
    if how == "omitted":
        return b""
    if how == "wrong-wire-type":
        wire_type = draw(st.sampled_from([VARINT, FIXED64, FIXED32]))
        if wire_type == VARINT:
            return key(field, VARINT) + varint(draw(st.integers(min_value=0, max_value=(1 << 64) - 1)))
        return key(field, wire_type) + draw(st.binary(min_size=8, max_size=8))[: 8 if wire_type == FIXED64 else 4]
    if how == "declared-longer":
        return ld(field, payload, declared=len(payload) + draw(st.integers(min_value=1, max_value=64)))
    if how == "declared-shorter":
        assume(payload)
        return ld(field, payload, declared=draw(st.integers(min_value=0, max_value=len(payload) - 1)))
    if how == "huge-length":
        return ld(field, payload, declared=draw(st.integers(min_value=1 << 31, max_value=(1 << 64) - 1)))
    return group(field, payload)


@st.composite
def message(draw: st.DrawFn, fields: Sequence[Tuple[int, bytes]]) -> bytes:
    """A message of ``fields`` (number, payload), each encoded by :func:`field_encoding`,
    in any order, with stray fields mixed in now and then."""
    parts = [draw(field_encoding(number, payload)) for number, payload in fields]
    one_in = _damage["one_in"]
    if one_in and draw(st.integers(min_value=1, max_value=one_in)) == 1:
        parts += draw(st.lists(stray_field(), min_size=1, max_size=2))
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        parts = draw(st.permutations(parts))
    return b"".join(parts)


@st.composite
def address_payload(draw: st.DrawFn, text: st.SearchStrategy[bytes] = text_bytes) -> bytes:
    typename = draw(st.sampled_from(TARGETS + ["fuzz/unbound", "robust/", "/echo", "", "fuzz/echo/extra"]))
    namespace, _, name = typename.rpartition("/")
    namespace_bytes = draw(st.one_of(st.just(namespace.encode()), text))
    name_bytes = draw(st.one_of(st.just(name.encode()), text))
    id_bytes = draw(st.one_of(st.text(max_size=8).map(str.encode), text))
    choice = draw(st.integers(min_value=0, max_value=9))
    if choice == 0:  # all three fields present but empty, or none at all
        return draw(st.sampled_from([b"", ld(1, b"") + ld(2, b"") + ld(3, b"")]))
    if choice < 6:  # well formed, a bound function most of the time
        return ld(1, namespace.encode()) + ld(2, name.encode()) + ld(3, id_bytes)
    return draw(message([(1, namespace_bytes), (2, name_bytes), (3, id_bytes)]))


@st.composite
def any_payload(draw: st.DrawFn, text: st.SearchStrategy[bytes] = text_bytes) -> bytes:
    if draw(st.integers(min_value=0, max_value=2)) == 0:
        return draw(st.sampled_from(KNOWN_ARGUMENTS))
    type_url = draw(st.one_of(st.sampled_from(ABSURD_TYPE_URLS).map(str.encode), text))
    value = draw(st.one_of(st.sampled_from([b"", b"\x08\x07", b"\x0a\x02hi", b"\x0a\x02\xff\xfe"]),
                           st.binary(max_size=24)))
    return draw(message([(1, type_url), (2, value)]))


@st.composite
def state_payload(draw: st.DrawFn) -> bytes:
    name = draw(st.one_of(st.sampled_from([b"count", b"", b"other"]), text_bytes))
    value = draw(
        st.one_of(
            st.just(b""),
            st.sampled_from([any_bytes(Int64Value(value=3)), any_bytes(Int64Value(value=(1 << 62) - 1)),
                             any_bytes(StringValue(value="not a count"))]),
            any_payload(),
            st.binary(max_size=16),
        )
    )
    return draw(message([(1, name)] + ([(2, value)] if value else [])))


@st.composite
def invocation_payload(draw: st.DrawFn, text: st.SearchStrategy[bytes] = text_bytes) -> bytes:
    fields = [(2, draw(any_payload(text)))]
    if draw(st.booleans()):
        fields.insert(0, (1, draw(address_payload(text))))
    return draw(message(fields))


@st.composite
def structured_request(draw: st.DrawFn) -> bytes:
    """A ToFunction written field by field: clean (two times in five), or with one
    field in 64, 16 or 4 encoded badly (and stray fields as often); sometimes cut short."""
    saved = _damage["one_in"]
    _damage["one_in"] = draw(st.sampled_from([0, 0, 64, 16, 4]))
    try:
        target = draw(address_payload())
        states = draw(st.lists(state_payload(), max_size=4))
        invocations = draw(st.lists(invocation_payload(), min_size=0, max_size=6))
        fields = [(1, target)] + [(2, s) for s in states] + [(3, i) for i in invocations]
        body = draw(message(fields))
        top = draw(message([(100, body)]))
    finally:
        _damage["one_in"] = saved
    if draw(st.integers(min_value=0, max_value=7)) == 0:
        cut = draw(st.integers(min_value=0, max_value=len(top)))
        top = top[:cut]
    return top


@st.composite
def valid_request(draw: st.DrawFn) -> bytes:
    """A batch as the runtime sends it, for one of the bound functions (or not)."""
    typename = draw(st.sampled_from(TARGETS + ["fuzz/unbound"]))
    namespace, _, name = typename.rpartition("/")
    target = address(namespace, name, draw(st.text(max_size=10)))
    states = []
    if typename.endswith("counter") or typename.startswith("robust/"):
        value = draw(st.sampled_from([b"", any_bytes(Int64Value(value=draw(st.integers(0, 1000))))]))
        states.append(state("count", value))
    if typename == "fuzz/names":
        value = draw(st.sampled_from([b"", any_bytes(StringValue(value="hello")), any_bytes(Int64Value(value=1))]))
        states.append(state("last", value))
    if draw(st.booleans()):
        states.append(state("extra", any_bytes(StringValue(value="unused"))))
    calls = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        argument = draw(st.sampled_from(KNOWN_ARGUMENTS[:3]))
        caller = draw(st.sampled_from([None, address("fuzz", "echo", "caller"), b""]))
        calls.append(invocation(argument, caller))
    return batch(target, states, calls)


@st.composite
def mutated_request(draw: st.DrawFn) -> bytes:
    """A valid request after 1 to 4 mutations."""
    data = draw(valid_request())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        data = draw(mutation(data))
    return data


@st.composite
def mutation(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate-range",
                                 "duplicate-field", "drop-field", "reorder-fields", "splice", "overwrite"]))
    size = len(data)
    if kind == "truncate":
        return data[: draw(st.integers(min_value=0, max_value=max(0, size - 1)))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            if out:
                position = draw(st.integers(min_value=0, max_value=len(out) - 1))
                out[position] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        return bytes(out)
    if kind == "insert":
        position = draw(st.integers(min_value=0, max_value=size))
        return data[:position] + draw(st.binary(min_size=1, max_size=8)) + data[position:]
    if kind == "delete":
        start = draw(st.integers(min_value=0, max_value=size))
        end = draw(st.integers(min_value=start, max_value=min(size, start + 8)))
        return data[:start] + data[end:]
    if kind == "duplicate-range":
        start = draw(st.integers(min_value=0, max_value=size))
        end = draw(st.integers(min_value=start, max_value=size))
        at = draw(st.integers(min_value=0, max_value=size))
        return data[:at] + data[start:end] + data[at:]
    if kind == "overwrite":
        start = draw(st.integers(min_value=0, max_value=size))
        patch = draw(st.binary(min_size=1, max_size=4))
        return data[:start] + patch + data[start + len(patch):]
    if kind == "splice":
        other = draw(valid_request())
        return data[: draw(st.integers(0, size))] + other[draw(st.integers(0, len(other))):]
    return _mutate_fields(draw, data, kind)


def _mutate_fields(draw: st.DrawFn, data: bytes, kind: str) -> bytes:
    """Duplicate, drop or reorder whole fields, at the top or inside the batch."""
    top = wire_fields(data)
    if not top:
        return data
    index = next((i for i, (field, wire_type, _) in enumerate(top) if field == 100 and wire_type == LEN), None)
    inner = wire_fields(_payload(top[index][2])) if index is not None else None
    if inner and draw(st.booleans()):
        edited = _edit(draw, inner, kind)
        top = list(top)
        top[index] = (100, LEN, ld(100, b"".join(encoding for _, _, encoding in edited)))
        return b"".join(encoding for _, _, encoding in top)
    return b"".join(encoding for _, _, encoding in _edit(draw, top, kind))


def _edit(draw: st.DrawFn, fields: List[Tuple[int, int, bytes]], kind: str) -> List[Tuple[int, int, bytes]]:
    fields = list(fields)
    if not fields:
        return fields
    i = draw(st.integers(min_value=0, max_value=len(fields) - 1))
    if kind == "duplicate-field":
        fields.insert(draw(st.integers(min_value=0, max_value=len(fields))), fields[i])
    elif kind == "drop-field":
        del fields[i]
    else:
        fields = draw(st.permutations(fields))
    return fields


# -- the properties --------------------------------------------------------------------------


@fuzz(300)
@given(st.binary(max_size=512))
def test_random_bytes(body: bytes) -> None:
    check(body)


@fuzz(100)
@given(st.binary(min_size=1, max_size=64).map(lambda b: b"\xa2\x06" + varint(len(b)) + b))
def test_random_bytes_inside_the_batch_field(body: bytes) -> None:
    """Random bytes as the content of field 100: past the first tag, into the batch."""
    check(body)


@fuzz(300)
@given(valid_request())
def test_valid_requests(body: bytes) -> None:
    """The baseline: batches as the runtime sends them never get a 4xx for a bound
    function, and the async handler agrees to the byte."""
    outcome = check(body, via_async=True)
    if classify(body) == VALID:
        assert outcome.status in (200, 500)


@fuzz(300)
@given(mutated_request())
def test_mutated_requests(body: bytes) -> None:
    check(body, via_async=True)


@fuzz(300)
@given(structured_request())
def test_structurally_odd_requests(body: bytes) -> None:
    check(body)


#: Where the nesting goes. Only groups are parsed when unknown (a length-delimited
#: unknown field is kept as bytes, however deep its content), so groups are what reach
#: the parser's nesting limit; an argument's value is parsed by the function instead.
NESTING_PLACES = ["top", "batch", "target", "caller", "invocation", "argument", "state-value", "argument-value"]
NESTING_SHAPES = ["groups", "submessages", "mixed"]


def nested(place: str, shape: str, depth: int, seed: int = 0) -> bytes:
    """A request with ``depth`` levels of ``shape`` nesting at ``place``."""
    rng = random.Random(seed)
    inner = b""
    for _ in range(depth):
        as_group = shape == "groups" or (shape == "mixed" and rng.random() < 0.5)
        field = rng.choice([5, 9, 15, 2047]) if place != "argument-value" else rng.choice([1, 2, 7])
        inner = group(field, inner) if as_group else ld(field, inner)
    hello = KNOWN_ARGUMENTS[0]
    if place == "top":
        return batch(address(), (), [invocation(hello)]) + inner
    if place == "batch":
        return ld(100, _payload(batch(address(), (), [invocation(hello)])) + inner)
    if place == "target":
        return batch(address() + inner, (), [invocation(hello)])
    if place == "caller":
        return batch(address(), (), [invocation(hello, caller=address() + inner)])
    if place == "invocation":
        return batch(address(), (), [invocation(hello) + inner])
    if place == "argument":
        return batch(address("fuzz", "echo"), (), [invocation(hello + inner)])
    if place == "state-value":
        return batch(address("fuzz", "counter"), [state("count", any_bytes(Int64Value(value=1)) + inner)],
                     [invocation(hello)])
    string_value = ld(1, b"type.googleapis.com/google.protobuf.StringValue")
    return batch(address("fuzz", "typed"), (), [invocation(string_value + ld(2, inner))])


@fuzz(150)
@given(
    st.sampled_from(NESTING_PLACES),
    st.sampled_from(NESTING_SHAPES),
    st.one_of(st.integers(min_value=1, max_value=120), st.integers(min_value=90, max_value=110),
              st.integers(min_value=120, max_value=5000)),
    st.integers(min_value=0, max_value=1 << 16),
)
def test_deep_nesting(place: str, shape: str, depth: int, seed: int) -> None:
    """Groups nested past protobuf's limit (100 levels in upb) make a malformed body: 400.
    Nesting inside a length-delimited unknown field is kept as bytes: no limit applies."""
    check(nested(place, shape, depth, seed))


@fuzz(30)
@given(
    st.integers(min_value=1000, max_value=20000),
    st.sampled_from(["fuzz/echo", "fuzz/counter", "fuzz/typed", "fuzz/unbound"]),
    st.lists(invocation_payload(small_text_bytes), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=3),
)
def test_thousands_of_invocations(count: int, typename: str, templates: List[bytes], damage: int) -> None:
    """Batches of thousands of invocations, a few of them odd; sometimes cut short."""
    assume(max(len(template) for template in templates) <= 200)  # bodies of at most ~4 MB
    namespace, _, name = typename.rpartition("/")
    calls = [templates[i % len(templates)] for i in range(count)]
    body = batch(address(namespace, name), [state("count", any_bytes(Int64Value(value=1)))], [])
    body = ld(100, _payload(body) + b"".join(ld(3, call) for call in calls))
    if damage == 1:
        body = body[: len(body) - 1]
    elif damage == 2:
        body = body + b"\x1a\x05\x12\x03"  # a dangling, truncated invocation after the batch
    outcome = check(body)
    if outcome.status == 200 and typename == "fuzz/echo":
        response = reference.FromFunction.FromString(outcome.reply)
        assert len(response.invocation_result.outgoing_egresses) == count


# -- HTTP framing through the middleware --------------------------------------------------

METHODS = ["POST", "GET", "PUT", "HEAD", "DELETE", "OPTIONS", "post", "PATCH", ""]
CONTENT_TYPES = [
    "application/octet-stream",
    "application/x-protobuf",
    None,
    "",
    "Application/Octet-Stream",
    "application/octet-stream; charset=binary",
    "text/plain",
    "application/json",
    "multipart/form-data; boundary=x",
    "application/octet-stream\x00",
    ";",
]


@st.composite
def framing(draw: st.DrawFn) -> Tuple[Dict[str, object], bytes, Optional[bytes]]:
    """An environ with odd framing; returns it, the bytes on the stream, and the body
    the endpoint would see if it reads one (None when the framing is refused)."""
    body = draw(st.one_of(valid_request(), mutated_request(), st.binary(max_size=64),
                          st.integers(min_value=SMALL_LIMIT - 2, max_value=SMALL_LIMIT + 2).map(lambda n: b"\x00" * n)))
    stream = body
    length_kind = draw(st.sampled_from(["exact", "exact", "exact", "shorter", "longer", "missing", "chunked",
                                        "not-a-number", "negative", "spaces", "unicode-digits", "huge", "zero"]))
    content_length: Optional[str] = None
    terminated = False
    effective: Optional[bytes] = body
    if length_kind == "exact":
        content_length = str(len(body))
    elif length_kind == "shorter":
        assume(body)
        cut = draw(st.integers(min_value=0, max_value=len(body) - 1))
        content_length, effective = str(cut), body[:cut]
    elif length_kind == "longer":
        content_length, effective = str(len(body) + draw(st.integers(min_value=1, max_value=100))), None
    elif length_kind == "missing":
        effective = None
    elif length_kind == "chunked":  # a server that decodes chunked bodies says so
        terminated = True
    elif length_kind == "zero":
        content_length, effective = "0", b""
    else:
        content_length = {"not-a-number": "abc", "negative": "-1", "spaces": f" {len(body)} ",
                          "unicode-digits": "\u0663", "huge": "9" * 40}[length_kind]
        effective = None
    environ = environ_for(
        body,
        method=draw(st.sampled_from(METHODS)),
        path=draw(st.sampled_from(["/statefun", "/statefun", "/statefun", "/", "/statefun/", "/STATEFUN"])),
        content_type=draw(st.sampled_from(CONTENT_TYPES)),
        content_length=content_length,
        stream_body=stream,
        terminated=terminated,
    )
    return environ, body, effective


@fuzz(300)
@given(framing(), st.booleans())
def test_http_framing(case: Tuple[Dict[str, object], bytes, Optional[bytes]], small_limit: bool) -> None:
    """Whatever the method, path, content type and Content-Length: a 4xx unless the
    request is a POST of a valid batch; never a 5xx for bad input."""
    environ, body, effective = case
    app = SMALL_MIDDLEWARE if small_limit else MIDDLEWARE
    limit = SMALL_LIMIT if small_limit else MAX_BODY
    status, headers, reply = call_wsgi(app, environ)
    note(f"status {status}: {reply[:200]!r}")
    content_type = environ.get("CONTENT_TYPE")
    acceptable = not content_type or str(content_type).split(";", 1)[0].strip().lower() in (
        "application/octet-stream", "application/x-protobuf")
    if environ["PATH_INFO"] != "/statefun":
        assert status == 404
        return
    if environ["REQUEST_METHOD"] != "POST":
        assert status == 405 and headers.get("Allow") == "POST"
        return
    if not acceptable:
        assert status == 415
        return
    if effective is None or len(effective) > limit:
        assert 400 <= status < 500, f"bad framing answered {status}: {reply[:200]!r}"
        return
    assert status != 411 and status != 415
    outcome = check_handler(effective)
    assert status == outcome.status
    if status == 200:
        assert reply == outcome.reply


# -- memory -------------------------------------------------------------------------------

#: Python-level peak (tracemalloc) allowed per byte of hostile request, plus a constant.
PYTHON_PEAK_FACTOR = 32
#: Peak resident memory (protobuf's arenas included) allowed per byte of hostile request.
RSS_PEAK_FACTOR = 48
KIB = 1024
MIB = 1024 * 1024


def hostile_bodies(kind: str, size: int) -> bytes:
    """A hostile request of about ``size`` bytes, of the costliest shapes found."""
    if kind == "empty-invocations":
        return batch(address("fuzz", "noop"), (), [b""] * (size // 2))
    if kind == "empty-callers":
        return batch(address("fuzz", "noop"), (), [ld(1, b"") + ld(2, b"")] * (size // 6))
    if kind == "empty-invocations-echoed":
        return batch(address("fuzz", "echo"), (), [b""] * (size // 2))
    if kind == "distinct-states":
        return batch(address("fuzz", "noop"), [state(f"{i:x}") for i in range(size // 8)], [b""])
    if kind == "states-for-counter":
        return batch(address("fuzz", "counter"), [state(f"{i:x}") for i in range(size // 8)] + [state("count")],
                     [invocation(KNOWN_ARGUMENTS[0])])
    if kind == "long-type-url":
        return batch(address("fuzz", "typed"), (), [invocation(ld(1, b"/" * size))])
    if kind == "long-target":
        return batch(address("n" * (size // 2), "t" * (size // 2)), (), [b""])
    if kind == "unknown-field":
        return batch(address(), (), [b""]) + ld(5, b"u" * size)
    if kind == "many-egress-replies":
        return batch(address("fuzz", "echo"), (), [invocation(KNOWN_ARGUMENTS[0], address())] * (size // 60))
    raise AssertionError(kind)


HOSTILE_KINDS = ["empty-invocations", "empty-callers", "empty-invocations-echoed", "distinct-states",
                 "states-for-counter", "long-type-url", "long-target", "unknown-field", "many-egress-replies"]


@fuzz(12)
@given(st.sampled_from(HOSTILE_KINDS), st.integers(min_value=1 * KIB, max_value=256 * KIB))
def test_python_peak_memory_is_a_small_multiple_of_the_request(kind: str, size: int) -> None:
    """tracemalloc's peak while the middleware answers a hostile request (the body read
    from the stream included) is at most PYTHON_PEAK_FACTOR times its size."""
    body = hostile_bodies(kind, size)
    environ = environ_for(body)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        status, _, reply = call_wsgi(MIDDLEWARE, environ)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    note(f"{kind}: {len(body)} bytes, status {status}, peak {peak} bytes ({peak / len(body):.1f}x)")
    assert status in (200, 400, 404, 500)
    assert peak <= PYTHON_PEAK_FACTOR * len(body) + 256 * KIB, f"{kind}: peak {peak} for {len(body)} bytes"
    assert len(reply) <= 8 * len(body) + 4 * KIB


def _peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(field)


def _trim_heap() -> None:
    """Give freed heap pages back to the kernel (glibc), so that what a request takes
    shows as RSS growth instead of reusing what earlier tests freed."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_peak_rss_is_a_bounded_multiple_of_the_request(kind: str) -> None:
    """The same, with protobuf's own (C) memory counted: while the middleware answers a
    2 MiB hostile request, peak RSS grows by at most RSS_PEAK_FACTOR times the bytes
    that go in and out (the request, and the reply the function chose to write)."""
    if not _peak_rss_reset():
        pytest.skip("/proc/self/clear_refs is not writable here")
    body = hostile_bodies(kind, 2 * MIB)
    environ = environ_for(body)
    _trim_heap()
    before = _status_kib("VmRSS") * KIB
    _peak_rss_reset()
    status, _, reply = call_wsgi(MIDDLEWARE, environ)
    peak = _status_kib("VmHWM") * KIB - before
    moved = len(body) + len(reply)
    print(f"{kind}: {len(body)} bytes in, {len(reply)} out -> status {status}, "
          f"peak RSS +{peak / MIB:.1f} MiB ({peak / moved:.1f}x the bytes in and out)")
    assert status in (200, 400, 404, 500)
    assert peak <= RSS_PEAK_FACTOR * moved + 16 * MIB


# -- regressions: literal inputs ----------------------------------------------------------
#
# Each is a case the fuzzer (or its author) found interesting, with the status it must
# get. The fuzzer found no crash in the handler or the middleware (no exception other
# than RequestError / FunctionInvocationError, no 5xx for a malformed body); what the
# runs did find is listed in docs/robustness.md.

COUNTER = ld(1, b"fuzz") + ld(2, b"counter") + ld(3, b"c")
ECHO = ld(1, b"fuzz") + ld(2, b"echo") + ld(3, b"e")
TYPED = ld(1, b"fuzz") + ld(2, b"typed") + ld(3, b"t")
NAMES = ld(1, b"fuzz") + ld(2, b"names") + ld(3, b"n")
HELLO = any_bytes(StringValue(value="hello"))
CALL = invocation(HELLO)
STRING_VALUE_URL = ld(1, b"type.googleapis.com/google.protobuf.StringValue")
ONE = any_bytes(Int64Value(value=1))

REGRESSIONS = [
    ("empty body", b"", 400),
    ("one zero byte", b"\x00", 400),  # field number 0
    ("lone end-group", b"\x0c", 400),
    ("start-group never ended", b"\x0b", 400),
    ("100000 nested start-groups", b"\x0b" * 100_000, 400),
    ("groups nested inside the batch", b"\xa2\x06\x86\x8d\x06" + b"\x0b" * 100_000, 400),
    ("batch field as a group", b"\xa3\x06\xa4\x06", 400),
    ("batch field as a varint", b"\xa0\x06\x01", 400),
    ("length 2**32-1, no bytes", b"\xa2\x06\xff\xff\xff\xff\x0f", 400),
    ("length 2**63-1, no bytes", b"\xa2\x06\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 400),
    ("10-byte varint length overflowing 64 bits", b"\xa2\x06" + b"\xff" * 9 + b"\x01", 400),
    ("an 11-byte varint", b"\xa0\x06" + b"\x80" * 10 + b"\x00", 400),
    ("wire type 7", b"\x0f", 400),
    ("wire type 6 in the batch", ld(100, b"\x0e"), 400),
    ("batch without invocations", ld(100, ld(1, ECHO)), 400),
    ("invocations as fixed32 only", ld(100, ld(1, ECHO) + b"\x1d\x00\x00\x00\x00"), 400),
    ("no target at all", ld(100, ld(3, b"")), 404),
    ("target sent as a varint", ld(100, b"\x08\x05" + ld(3, b"")), 404),
    ("empty target", ld(100, ld(1, b"") + ld(3, b"")), 404),
    ("target with an empty type", ld(100, ld(1, ld(1, b"fuzz") + ld(2, b"")) + ld(3, b"")), 404),
    ("invalid UTF-8 in the namespace", ld(100, ld(1, ld(1, b"\xff\xfe")) + ld(3, b"")), 400),
    ("a UTF-16 surrogate in the id", ld(100, ld(1, ECHO + ld(3, b"\xed\xa0\x80")) + ld(3, b"")), 400),
    ("invalid UTF-8 in a state name", ld(100, ld(1, ECHO) + ld(2, ld(1, b"\xc0\x80")) + ld(3, b"")), 400),
    ("invalid UTF-8 in a type URL", ld(100, ld(1, ECHO) + ld(3, ld(2, ld(1, b"\xff")))), 400),
    ("invalid UTF-8 in a caller", ld(100, ld(1, ECHO) + ld(3, ld(1, ld(2, b"\x80")))), 400),
    ("a state value that is not an Any", batch(COUNTER, [state("count", b"\xff")], [CALL]), 400),
    ("a state value with invalid UTF-8 in its type URL",
     ld(100, ld(1, COUNTER) + ld(2, ld(1, b"count") + ld(2, ld(1, b"\xff"))) + ld(3, ld(2, HELLO))), 400),
    ("groups nested 99 deep at the top", nested("top", "groups", 99), 200),
    ("groups nested 101 deep at the top", nested("top", "groups", 101), 400),
    ("groups nested 5000 deep in a caller", nested("caller", "groups", 5000), 400),
    ("groups nested 5000 deep in a state value", nested("state-value", "groups", 5000), 400),
    ("groups nested 5000 deep in an argument", nested("argument", "groups", 5000), 400),
    ("submessages nested 5000 deep in an unknown field (kept as bytes)", nested("target", "submessages", 5000), 200),
    ("groups nested 200 deep in an argument's value (parsed by the function)",
     nested("argument-value", "groups", 200), 500),
    ("an empty batch field twice, then invocations", ld(100, ld(1, ECHO)) + ld(100, ld(3, b"")), 200),
    ("target field with the wrong wire type is an unknown field", ld(100, b"\x08\x01" + ld(1, ECHO) + ld(3, b"")), 200),
    ("an empty invocation (no argument, no caller)", ld(100, ld(1, ECHO) + ld(3, b"")), 200),
    ("an empty caller", ld(100, ld(1, ECHO) + ld(3, ld(1, b"") + ld(2, HELLO))), 200),
    ("a 10 MB unknown field", batch(ECHO, (), [CALL]) + ld(5, b"u" * 10_000_000), 200),
    ("a 1 MB type URL to a typed function", batch(TYPED, (), [invocation(ld(1, b"/" * 1_000_000))]), 500),
    ("a type URL with nothing after the last slash",
     batch(TYPED, (), [invocation(ld(1, b"type.googleapis.com/"))]), 500),
    ("a StringValue whose text is not UTF-8",
     batch(TYPED, (), [invocation(STRING_VALUE_URL + ld(2, b"\x0a\x02\xff\xfe"))]), 500),
    ("a declared state not sent", batch(COUNTER, (), [CALL]), 500),
    ("a state of another type", batch(COUNTER, [state("count", HELLO)], [CALL]), 500),
    ("a count state at int64 max",
     batch(COUNTER, [state("count", any_bytes(Int64Value(value=(1 << 63) - 1)))], [CALL]), 200),
    ("the same state twice", batch(COUNTER, [state("count", ONE), state("count")], [CALL]), 200),
    ("unbound function", batch(ld(1, b"fuzz") + ld(2, b"nobody"), (), [CALL]), 404),
    ("unbound function with a 1 MB name", batch(ld(1, b"n" * 500_000) + ld(2, b"t" * 500_000), (), [CALL]), 404),
    # Found by the fuzzer under the pure-Python protobuf (PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python),
    # which raises UnicodeDecodeError, not DecodeError, for a string field that is not UTF-8: an argument
    # that did not parse as the function's message type failed without UnexpectedMessageTypeError.
    ("an argument whose bytes nest 112 submessages (not UTF-8 for the typed function's StringValue)",
     nested("argument-value", "submessages", 112, 1), 500),
    ("a StringValue state whose text is not UTF-8 (the same, through State.unpack)",
     batch(NAMES, [state("last", STRING_VALUE_URL + ld(2, b"\x0a\x02\xff\xfe"))], [CALL]), 500),
    ("20000 empty invocations", batch(ECHO, (), [b""] * 20000), 200),
    ("20000 invocations, the last one truncated", batch(ECHO, (), [CALL] * 20000)[:-1], 400),
]


@pytest.mark.parametrize("body, status", [(body, status) for _, body, status in REGRESSIONS],
                         ids=[name for name, _, _ in REGRESSIONS])
def test_regressions(body: bytes, status: int) -> None:
    outcome = check(body, via_async=len(body) < 100_000)
    assert outcome.status == status


_PURE_PYTHON_SCRIPT = """
import sys
from google.protobuf.internal import api_implementation
assert api_implementation.Type() == "python", api_implementation.Type()
import test_fuzz
failures = []
for name, body, status in test_fuzz.REGRESSIONS:
    if len(body) > 1_000_000:  # the pure-Python parser is slow on the largest ones
        continue
    try:
        outcome = test_fuzz.check(body)
        assert outcome.status == status, f"status {outcome.status}, expected {status}"
    except BaseException as exc:
        failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
print("\\n".join(failures))
sys.exit(1 if failures else 0)
"""


def test_regressions_under_the_pure_python_protobuf() -> None:
    """The literal cases again with protobuf's pure-Python implementation (what runs where
    no compiled wheel exists), which raises other exceptions than upb for the same bytes."""
    import subprocess
    import sys

    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    tests = Path(__file__).resolve().parent
    env["PYTHONPATH"] = os.pathsep.join([str(tests), str(tests.parent)])
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", _PURE_PYTHON_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_error_bodies_stay_short_for_huge_inputs() -> None:
    """An error that quotes the request (a type URL, a function type) is one short line,
    whatever the size of what it quotes; the log line too."""
    records: List[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("statefun_wsgi")
    handler = Keep()
    logger.addHandler(handler)
    logger.disabled = False
    try:
        for body in (batch(TYPED, (), [invocation(ld(1, b"/" * 1_000_000))]),
                     batch(ld(1, b"n" * 500_000) + ld(2, b"t" * 500_000), (), [invocation(HELLO)])):
            status, _, reply = call_wsgi(MIDDLEWARE, environ_for(body))
            assert status in (404, 500)
            assert len(reply) <= 2048, f"a {len(reply)}-byte error body"
    finally:
        logger.removeHandler(handler)
        logger.disabled = True
    assert records
    for record in records:
        assert len(record.getMessage()) <= 4096, f"a {len(record.getMessage())}-character log line"


# -- over HTTP: a real gunicorn must neither answer 5xx to junk nor lose a worker -----------


def _corpus(seed: int, count: int) -> List[bytes]:
    rng = random.Random(seed)
    bodies = [body for _, body, _ in REGRESSIONS if len(body) < 2 * MIB]
    for _ in range(count):
        size = rng.choice([0, 1, 7, 64, 512, 4096])
        bodies.append(bytes(rng.getrandbits(8) for _ in range(size)))
        good = batch(ECHO, (), [invocation(HELLO)] * rng.randint(1, 5))
        cut = rng.randint(0, len(good))
        bodies.append(good[:cut] + bytes([rng.getrandbits(8)]) + good[cut + 1:])
    return bodies


def _http_post(server, body: bytes, content_length: Optional[int] = None) -> Tuple[int, bytes]:
    connection = server.connection(timeout=10)
    try:
        connection.putrequest("POST", "/statefun")
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(len(body) if content_length is None else content_length))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _raw_http_cases() -> List[Tuple[str, bytes, int]]:
    """Requests whose HTTP framing is odd: (name, bytes on the wire, status expected; 0 = any 4xx)."""
    good = batch(ECHO, (), [CALL])
    head = b"POST /statefun HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/octet-stream\r\n"
    chunked = b"Transfer-Encoding: chunked\r\n\r\n"
    return [
        ("chunked", head + chunked + b"%x\r\n" % len(good) + good + b"\r\n0\r\n\r\n", 200),
        ("chunked in two chunks", head + chunked + b"5\r\n" + good[:5] + b"\r\n%x\r\n" % (len(good) - 5)
         + good[5:] + b"\r\n0\r\n\r\n", 200),
        ("a chunk extension", head + chunked + b"%x;x=y\r\n" % len(good) + good + b"\r\n0\r\n\r\n", 200),
        ("an invalid chunk size", head + chunked + b"zz\r\n" + good + b"\r\n0\r\n\r\n", 0),
        ("a chunk larger than its data", head + chunked + b"%x\r\n" % (len(good) + 5) + good + b"\r\n0\r\n\r\n", 0),
        ("a chunk without its terminator", head + chunked + b"%x\r\n" % len(good) + good + b"XX0\r\n\r\n", 0),
        ("chunked and a Content-Length", head + b"Content-Length: %d\r\n" % len(good) + chunked
         + b"%x\r\n" % len(good) + good + b"\r\n0\r\n\r\n", 0),
        ("two Content-Lengths", head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(good), len(good))
         + good, 0),
        ("Content-Length: +n", head + b"Content-Length: +%d\r\n\r\n" % len(good) + good, 0),
        ("Content-Length: -1", head + b"Content-Length: -1\r\n\r\n" + good, 0),
        ("a 23-digit Content-Length", head + b"Content-Length: 99999999999999999999999\r\n\r\n" + good, 413),
        ("Transfer-Encoding: gzip", head + b"Transfer-Encoding: gzip\r\n\r\n" + good, 0),
        ("no framing: the body is not one", head + b"\r\n" + good, 0),
        ("a Content-Length longer than the body, then EOF", head + b"Content-Length: %d\r\n\r\n" % (len(good) + 50)
         + good, 400),
    ]


def _raw_exchange(server, raw: bytes) -> bytes:
    """Send ``raw``, half-close, and read until the server closes (or 10 s pass)."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            data = sock.recv(65536)
            if not data:
                return answer
            answer += data


def test_junk_over_http_never_gets_a_5xx_nor_kills_a_worker() -> None:
    from servers import gunicorn

    bodies = _corpus(seed=20261129, count=150)
    with gunicorn("robust_app:wsgi", "--pythonpath", "tests", "--workers", "2", "--worker-class", "gthread",
                  "--threads", "4", "--access-logfile", "-", "--log-level", "info") as server:
        booted = server.wait_for_log("Booting worker", 2).count("Booting worker")
        for body in bodies:
            expected = classify(body)
            status, reply = _http_post(server, body)
            if expected != VALID:
                assert 400 <= status < 500, f"{expected} body {body[:80]!r} answered {status}: {reply[:200]!r}"
            else:
                assert status in (200, 500)
                assert status == check_handler(body).status
        # Odd HTTP framing, written on the socket: gunicorn or the endpoint answers 4xx.
        expected_reply = HANDLER(batch(ECHO, (), [CALL]))
        for name, raw, wanted in _raw_http_cases():
            answer = _raw_exchange(server, raw)
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
            if wanted == 0:
                assert 400 <= status < 500, f"{name}: {answer[:300]!r}"
            else:
                assert status == wanted, f"{name}: {answer[:300]!r}"
            if wanted == 200:
                assert answer.endswith(b"\r\n\r\n" + expected_reply), f"{name}: {answer[-300:]!r}"
        # The workers that booted are the ones still serving: none crashed or was replaced.
        log = server.log()
        assert log.count("Booting worker") == booted, log
        for sign in ("WORKER TIMEOUT", "was sent SIG", "Exception in worker process", "Worker exiting"):
            assert sign not in log, log
        assert server.process.poll() is None
