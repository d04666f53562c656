"""Tests for statefun_wsgi.endpoint: every status the endpoint core answers, and why.

The core answers from a method, a content type, a content length and a stream
(``Endpoint.respond``); reading those from a WSGI environ is tests/test_wsgi.py's.
The runtime fails the Flink job at once on a 4xx other than those it retries and
retries a 5xx, so each status here is part of the contract (see docs/protocol.md).
"""

from __future__ import annotations

import io
import logging
from typing import Optional, Tuple

import pytest
from builders import Egress, Mutation, decode_reply, from_v3, request, to_function, to_v3
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES

from statefun_wsgi import (
    AsyncRequestReplyHandler,
    ConfigurationError,
    Endpoint,
    OverloadedError,
    Reply,
    RequestReplyHandler,
    StatefulFunctions,
)
from statefun_wsgi.endpoint import DEFAULT_MAX_BODY_SIZE, Readable

OCTET = "application/octet-stream"
LIMIT = 4096  # a small max_body_size keeps the size cases cheap

functions = StatefulFunctions()


@functions.bind("example/counter", states=["count"])
def counter(context, message: StringValue) -> None:
    count = context.state("count").unpack(Int64Value) or Int64Value()
    count.value += 1
    context.state("count").pack(count)
    context.pack_and_send_egress("example/out", StringValue(value=f"{message.value} #{count.value}"))


@functions.bind("example/boom")
def boom(context, message: StringValue) -> None:
    raise ValueError("boom\nand a second line")


def counter_request(value: int = 41, text: str = "hi", **state: object) -> bytes:
    return request("example/counter", "alice", state={"count": Int64Value(value=value), **state},
                   messages=[StringValue(value=text)])


def padded_request(size: int) -> bytes:
    """A valid counter batch of exactly ``size`` bytes (an unregistered state pads it)."""
    padding = max(0, size - len(counter_request(padding=BytesValue())))
    for _ in range(10):
        data = counter_request(padding=BytesValue(value=b"x" * padding))
        if len(data) == size:
            return data
        padding -= len(data) - size  # the length varints grow by a byte or two
    raise AssertionError(f"cannot pad a batch to exactly {size} bytes")


GOOD = counter_request()
AUTO = object()


class RecordingStream(io.BytesIO):
    """A body stream that counts the reads asked of it."""

    def __init__(self, data: bytes = b"") -> None:
        super().__init__(data)
        self.calls = 0

    def read(self, size: Optional[int] = -1) -> bytes:
        self.calls += 1
        return super().read(size)

    def readinto(self, buffer) -> int:  # type: ignore[override]
        self.calls += 1
        return super().readinto(buffer)


Request = Tuple[str, Optional[str], Optional[str], Optional[Readable]]


def post(
    body: bytes = GOOD,
    *,
    method: str = "POST",
    content_type: Optional[str] = OCTET,
    content_length: object = AUTO,
    chunked: bool = False,
    readable: bool = True,
    stream: Optional[io.BytesIO] = None,
) -> Request:
    """``Endpoint.respond``'s arguments. ``chunked``: no content length, the stream read to its
    end; ``readable=False``: no stream (a WSGI server that cannot say where the body ends)."""
    if content_length is AUTO:
        content_length = None if chunked or not readable else str(len(body))
    body_stream = (stream if stream is not None else RecordingStream(body)) if readable else None
    return method, content_type, content_length, body_stream  # type: ignore[return-value]


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint(functions, max_body_size=LIMIT)


def assert_ok(reply: Reply) -> None:
    assert reply.status == 200, reply.body
    assert reply.status_line == "200 OK"
    assert reply.headers == [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(reply.body)))]
    decoded = decode_reply(reply.body)
    assert decoded.egresses == [Egress.to("example/out", StringValue(value="hi #42"))]
    assert decoded.mutations == {"count": Mutation.modify(Int64Value(value=42))}


def assert_error(reply: Reply, status: int, fragment: str) -> None:
    """An error reply: the status, one line of text naming the problem, no traceback."""
    text = reply.body.decode("utf-8")
    assert reply.status == status, text
    assert reply.status_line == f"{status} {HTTP_STATUS_CODES[status]}"
    assert text.startswith(f"{status} {HTTP_STATUS_CODES[status]}: "), text
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert fragment in text, text
    assert "Traceback" not in text
    headers = dict(reply.headers)
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == str(len(reply.body))
    assert ("Allow" in headers) == (status == 405)


# -- 200 -------------------------------------------------------------------------------------


def test_a_3x_batch_is_answered_in_3x_with_the_same_headers(endpoint: Endpoint) -> None:
    reply = endpoint.respond(*post(body=to_v3(counter_request())))
    assert reply.headers == [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(reply.body)))]
    assert reply.body != from_v3(reply.body)
    assert_ok(Reply(reply.status, [("Content-Type", OCTET), ("Content-Length", str(len(from_v3(reply.body))))], from_v3(reply.body)))


@pytest.mark.parametrize("protocols, refused", [("2.x", "3.x"), ("3.x", "2.x")])
def test_a_request_of_a_protocol_not_served_is_a_415_that_names_the_setting(protocols: str, refused: str) -> None:
    body = counter_request() if refused == "2.x" else to_v3(counter_request())
    reply = Endpoint(functions, protocols=protocols).respond(*post(body=body))
    assert_error(reply, 415, f"the request is a StateFun {refused} one, but this endpoint serves {protocols} only (the protocols setting")


def test_protocols_beside_a_handler_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"protocols is a setting for a StatefulFunctions"):
        Endpoint(RequestReplyHandler(functions), protocols="3.x")
    with pytest.raises(ConfigurationError, match=r"protocols is a setting for a StatefulFunctions"):
        Endpoint(lambda body: body, protocols="2.x")


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(OCTET, id="octet-stream"),
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param("application/x-protobuf", id="x-protobuf"),
        pytest.param("application/octet-stream; charset=binary", id="charset-suffix"),
        pytest.param("Application/Octet-Stream", id="other-casing"),
    ],
)
def test_a_batch_is_answered_200_with_exactly_octet_stream(endpoint: Endpoint, content_type: Optional[str]) -> None:
    assert_ok(endpoint.respond(*post(content_type=content_type)))


def test_a_chunked_body_decoded_by_the_server_is_read_to_its_end(endpoint: Endpoint) -> None:
    assert_ok(endpoint.respond(*post(chunked=True)))


def test_a_content_length_is_read_exactly_never_past(endpoint: Endpoint) -> None:
    stream = RecordingStream(GOOD + b"next request")
    assert_ok(endpoint.respond(*post(stream=stream, content_length=str(len(GOOD)))))
    assert stream.tell() == len(GOOD)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "read-to-end"])
def test_a_stream_that_returns_short_reads_is_gathered(chunked: bool) -> None:
    class Trickle(io.BytesIO):
        def read(self, size: Optional[int] = -1) -> bytes:
            return super().read(min(7, size) if size is not None and size >= 0 else 7)

    assert_ok(Endpoint(functions).respond(*post(stream=Trickle(GOOD), chunked=chunked)))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "read-to-end"])
@pytest.mark.parametrize("content_type", [OCTET, "application/x-protobuf"], ids=["hot-path", "checked-path"])
def test_an_input_stream_that_enforces_its_own_limit_gets_413(chunked: bool, content_type: str) -> None:
    class Capped(io.BytesIO):  # as werkzeug's LimitedStream(..., is_max=True) behaves past its limit
        def read(self, size: Optional[int] = -1) -> bytes:
            raise RequestEntityTooLarge()

    reply = Endpoint(functions).respond(*post(stream=Capped(GOOD), content_type=content_type, chunked=chunked))
    assert_error(reply, 413, "is larger than the limit of")


def test_a_stream_error_that_is_not_the_client_leaving_is_not_taken_for_one() -> None:
    class Broken(io.BytesIO):
        def read(self, size: Optional[int] = -1) -> bytes:
            raise RuntimeError("a bug in the stream")

    with pytest.raises(RuntimeError, match="a bug in the stream"):
        Endpoint(functions).respond(*post(stream=Broken(GOOD)))


@pytest.mark.parametrize("good_bytes", [0, 10], ids=["on-the-first-read", "after-a-short-read"])
@pytest.mark.parametrize("error", [OSError("connection reset"), ClientDisconnected()], ids=["oserror", "werkzeug"])
def test_a_client_that_leaves_mid_body_gets_400_and_nothing_runs(good_bytes: int, error: Exception) -> None:
    ran = []

    class Leaving(io.BytesIO):
        def read(self, size: Optional[int] = -1) -> bytes:
            if self.tell() >= good_bytes:
                raise error
            return super().read(good_bytes - self.tell())

    endpoint = Endpoint(lambda body: ran.append(body) or b"")
    reply = endpoint.respond(*post(stream=Leaving(GOOD), content_length=str(len(GOOD))))
    assert reply.status == 400
    assert b"ended before its Content-Length" in reply.body
    assert ran == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_of_exactly_max_body_size_is_accepted(endpoint: Endpoint, chunked: bool) -> None:
    body = padded_request(LIMIT)
    assert len(body) == LIMIT
    assert_ok(endpoint.respond(*post(body, chunked=chunked)))


def test_a_handler_or_a_plain_callable_can_be_served() -> None:
    assert_ok(Endpoint(RequestReplyHandler(functions)).respond(*post()))
    assert_ok(Endpoint(RequestReplyHandler(functions).__call__).respond(*post()))


def test_default_limit_is_32_mib() -> None:
    assert Endpoint(functions).max_body_size == DEFAULT_MAX_BODY_SIZE == 32 * 1024 * 1024


# -- errors: the status matrix ---------------------------------------------------------------

ERRORS = [
    # (respond's arguments, status, what the one line says)
    pytest.param(post(b"\xff\xfe not protobuf"), 400, "not a serialized ToFunction", id="400-garbage-body"),
    pytest.param(post(b""), 400, "no invocation batch", id="400-empty-body"),
    pytest.param(post(to_function("example/counter", "a").SerializeToString()), 400, "holds no invocations",
                 id="400-no-invocations"),
    pytest.param(post(GOOD[:-3], content_length=str(len(GOOD))), 400, "ended before its Content-Length",
                 id="400-shorter-than-content-length"),
    pytest.param(post(content_length="abc"), 400, "is not a number of bytes", id="400-content-length-word"),
    pytest.param(post(content_length="-1"), 400, "is not a number of bytes", id="400-content-length-negative"),
    pytest.param(post(content_length="1.5"), 400, "is not a number of bytes", id="400-content-length-fraction"),
    pytest.param(post(content_length="0x10"), 400, "is not a number of bytes", id="400-content-length-hex"),
    pytest.param(post(content_length="\uff11\uff10"), 400, "is not a number of bytes",
                 id="400-content-length-fullwidth-digits"),
    pytest.param(post(request("example/nobody", "a", messages=[StringValue()])), 404,
                 "no function is bound to example/nobody", id="404-unknown-function"),
    pytest.param(post(readable=False), 411, "needs a Content-Length", id="411-no-stream"),
    pytest.param(post(b"\0" * (LIMIT + 1)), 413, f"limit of {LIMIT} bytes", id="413-content-length"),
    pytest.param(post(b"\0" * (LIMIT + 1), chunked=True), 413, f"limit of {LIMIT} bytes",
                 id="413-chunked-one-byte-over"),
    pytest.param(post(b"\0" * (LIMIT * 10), chunked=True), 413, f"limit of {LIMIT} bytes",
                 id="413-chunked-far-over"),
    pytest.param(post(content_type="text/plain"), 415, "'text/plain' is not application/octet-stream",
                 id="415-text-plain"),
    pytest.param(post(content_type="application/json"), 415, "'application/json'", id="415-json"),
    pytest.param(post(content_type="text/plain; charset=utf-8"), 415, "text/plain", id="415-text-charset"),
    pytest.param(post(content_type="application/octet-streams"), 415, "octet-streams", id="415-near-miss"),
    # Which check wins when several fail: method, then content type, then length.
    pytest.param(post(method="GET", content_type="text/plain"), 405, "GET is not allowed",
                 id="405-before-415"),
    pytest.param(post(content_type="text/plain", content_length="abc"), 415, "text/plain", id="415-before-400"),
    pytest.param(post(content_type="text/plain", readable=False), 415, "text/plain", id="415-before-411"),
    pytest.param(post(content_length="abc", readable=False), 400, "is not a number of bytes", id="400-before-411"),
    pytest.param(post(content_length=str(LIMIT + 1), readable=False), 413, f"limit of {LIMIT} bytes",
                 id="413-before-411"),
]


@pytest.mark.parametrize(("args", "status", "fragment"), ERRORS)
def test_error_statuses(endpoint: Endpoint, args: Request, status: int, fragment: str) -> None:
    assert_error(endpoint.respond(*args), status, fragment)


TOO_LARGE = [
    pytest.param(post(b"\0" * (LIMIT + 1)), id="by-content-length"),
    pytest.param(post(b"\0" * (LIMIT + 1), chunked=True), id="chunked-one-byte-over"),
    pytest.param(post(b"\0" * (LIMIT * 10), chunked=True), id="chunked-far-over"),
]


@pytest.mark.parametrize("args", TOO_LARGE)
def test_a_413_says_how_to_raise_the_limit(endpoint: Endpoint, args: Request) -> None:
    assert_error(endpoint.respond(*args), 413,
                 f"limit of {LIMIT} bytes; raise it with max_body_size (StatefunMiddleware, Endpoint) or "
                 "STATEFUN_MAX_BODY_SIZE (the Django middleware's setting)")


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"])
def test_a_415_points_a_message_sent_by_hand_at_send_and_the_dev_ingress(endpoint: Endpoint, content_type: str) -> None:
    assert_error(endpoint.respond(*post(content_type=content_type)), 415,
                 f"Content-Type '{content_type}' is not application/octet-stream: this path takes the StateFun "
                 "runtime's batches (serialized ToFunction) only; to send a function a message by hand, start "
                 "`statefun-wsgi dev APP` (or `statefun-wsgi run`) and use `statefun-wsgi send NAMESPACE/TYPE/ID JSON`")


@pytest.mark.parametrize(("protocols", "body", "named"), [
    pytest.param("2.x", b"\xff\xfe not protobuf", "(org.apache.flink.statefun.flink.core.polyglot.ToFunction, what "
                 "the StateFun 2.x runtime sends;", id="2.x"),
    pytest.param("3.x", b"\xff\xfe not protobuf", "StateFun 3.x ToFunction (io.statefun.sdk.reqreply.ToFunction, "
                 "what the runtime sends): ", id="3.x"),
    pytest.param("3.x", b"\x0a\x05ab", "StateFun 3.x ToFunction (io.statefun.sdk.reqreply.ToFunction, "
                 "what the runtime sends)", id="3.x-truncated"),
])
def test_a_400_names_the_type_the_runtime_sends_not_an_internal_one(protocols: str, body: bytes, named: str) -> None:
    reply = Endpoint(functions, protocols=protocols).respond(*post(body))
    assert_error(reply, 400, named)
    assert b"statefun_wsgi" not in reply.body and b"ToFunctionRaw" not in reply.body, reply.body


def test_the_retried_statuses_are_named_as_the_runtime_retries_them() -> None:
    """The endpoint's docstring and the README list the 4xx the runtime retries: those the
    local runtime (which mirrors the real one) retries."""
    from pathlib import Path

    import statefun_wsgi.endpoint
    from statefun_wsgi.local.transport import RETRYABLE_STATUSES

    listed = ", ".join(str(status) for status in sorted(RETRYABLE_STATUSES)[:-1])
    sentence = f"retries 5xx, {listed} and {max(RETRYABLE_STATUSES)}"
    readme = " ".join((Path(__file__).resolve().parent.parent / "README.md").read_text().split())
    docstring = " ".join((statefun_wsgi.endpoint.__doc__ or "").split())
    assert sentence in docstring, docstring
    assert sentence in readme


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_get_405_with_allow_post(endpoint: Endpoint, method: str) -> None:
    stream = RecordingStream(GOOD)
    reply = endpoint.respond(*post(method=method, stream=stream))
    assert_error(reply, 405, f"{method} is not allowed")
    assert ("Allow", "POST") in reply.headers
    assert stream.calls == 0


def test_413_by_content_length_is_decided_before_reading(endpoint: Endpoint) -> None:
    stream = RecordingStream(b"\0" * (LIMIT + 1))
    reply = endpoint.respond(*post(stream=stream, content_length=str(LIMIT + 1)))
    assert_error(reply, 413, f"the body of {LIMIT + 1} bytes is larger than the limit of {LIMIT} bytes")
    assert stream.calls == 0 and stream.tell() == 0


@pytest.mark.parametrize("digits", [19, 5000], ids=["past-int64", "past-python-int-limit"])
def test_a_content_length_of_many_digits_is_a_413_before_reading(endpoint: Endpoint, digits: int) -> None:
    stream = RecordingStream(GOOD)
    reply = endpoint.respond(*post(stream=stream, content_length="9" * digits))
    assert_error(reply, 413, f"is larger than the limit of {LIMIT} bytes")
    assert len(reply.body) < 400  # the length is shown cut, not all its digits
    assert stream.calls == 0


def test_a_content_length_with_leading_zeros_counts_its_value(endpoint: Endpoint) -> None:
    assert_ok(endpoint.respond(*post(content_length="0" * 5000 + str(len(GOOD)))))


def test_a_client_that_leaves_a_chunked_body_gets_400_without_a_length_in_the_message() -> None:
    class Leaving(io.BytesIO):
        def read(self, size: Optional[int] = -1) -> bytes:
            raise ClientDisconnected()

    reply = Endpoint(functions).respond(*post(stream=Leaving(GOOD), chunked=True))
    assert_error(reply, 400, "the body ended early: the client stopped sending in the middle of it")


def test_413_while_reading_a_chunked_body_stops_reading_just_past_the_limit(endpoint: Endpoint) -> None:
    stream = RecordingStream(b"\0" * (LIMIT * 100))
    reply = endpoint.respond(*post(stream=stream, chunked=True))
    assert_error(reply, 413, f"limit of {LIMIT} bytes")
    assert LIMIT < stream.tell() <= LIMIT + 1




# -- 500: user code raised -------------------------------------------------------------------


def test_a_function_that_raises_gets_500_one_line_and_the_traceback_is_logged(
    endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    body = request("example/boom", "b", messages=[StringValue(value="x")])
    with caplog.at_level(logging.ERROR, logger="statefun_wsgi"):
        reply = endpoint.respond(*post(body))
    assert_error(reply, 500, "example/boom (id 'b') raised ValueError in invocation 1 of 1: boom and a second line")
    [record] = [r for r in caplog.records if r.name == "statefun_wsgi"]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert "Traceback (most recent call last)" in caplog.text
    assert 'raise ValueError("boom\\nand a second line")' in caplog.text


def test_a_handler_that_fails_unexpectedly_gets_500_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(body: bytes) -> bytes:
        raise RuntimeError("secret internals")

    with caplog.at_level(logging.ERROR, logger="statefun_wsgi"):
        reply = Endpoint(broken).respond(*post())
    assert_error(reply, 500, "failed unexpectedly; see the server log")
    assert b"secret internals" not in reply.body
    [record] = [r for r in caplog.records if r.name == "statefun_wsgi"]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "secret internals" in caplog.text


def test_rejected_requests_are_logged_as_warnings(endpoint: Endpoint, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="statefun_wsgi"):
        endpoint.respond(*post(content_type="text/plain"))
    [record] = [r for r in caplog.records if r.name == "statefun_wsgi"]
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage().startswith("a request answered 415: Content-Type 'text/plain'")


# -- respond(): the arguments as a host passes them ------------------------------------------

RESPOND = [
    pytest.param("POST", OCTET, str(len(GOOD)), GOOD, 200, id="200-content-length"),
    pytest.param("POST", None, None, GOOD, 200, id="200-read-to-end"),
    pytest.param("POST", OCTET, None, padded_request(LIMIT), 200, id="200-read-to-end-exactly-the-limit"),
    pytest.param("POST", OCTET, None, b"\0" * (LIMIT + 1), 413, id="413-read-to-end-over-the-limit"),
    pytest.param("POST", OCTET, str(LIMIT + 1), b"", 413, id="413-content-length"),
    pytest.param("POST", OCTET, str(len(GOOD) + 1), GOOD, 400, id="400-shorter-than-content-length"),
    pytest.param("POST", OCTET, "twelve", GOOD, 400, id="400-invalid-content-length"),
    pytest.param("PUT", OCTET, None, GOOD, 405, id="405-put"),
    pytest.param("POST", "application/json", None, GOOD, 415, id="415-json"),
]


@pytest.mark.parametrize(("method", "content_type", "content_length", "body", "status"), RESPOND)
def test_respond(endpoint: Endpoint, method: str, content_type: Optional[str], content_length: Optional[str],
                 body: bytes, status: int) -> None:
    stream = RecordingStream(body + b"trailing bytes never read" if content_length else body)
    reply = endpoint.respond(method, content_type, content_length, stream)
    if status == 200:
        assert_ok(reply)
    else:
        assert reply.status == status, reply.body
        assert_error(reply, status, "")
    if content_length is not None and content_length.isdigit() and status != 413:
        assert stream.tell() <= int(content_length)


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "max_body_size",
    [pytest.param(0, id="zero"), pytest.param(-1, id="negative"), pytest.param(1.5, id="float"),
     pytest.param("1024", id="string"), pytest.param(True, id="bool"), pytest.param(None, id="none")],
)
def test_a_bad_max_body_size_is_a_configuration_error(max_body_size: object) -> None:
    with pytest.raises(ConfigurationError, match="max_body_size must be a positive number of bytes"):
        Endpoint(functions, max_body_size=max_body_size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("served", "match"),
    [
        pytest.param(object(), "expected a StatefulFunctions or a RequestReplyHandler, got object", id="object"),
        pytest.param("examples.greeter.functions:functions", "got str", id="dotted-path-string"),
        pytest.param(AsyncRequestReplyHandler(functions), "AsyncRequestReplyHandler cannot answer WSGI", id="async"),
    ],
)
def test_what_cannot_be_served_is_a_configuration_error(served: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Endpoint(served)  # type: ignore[arg-type]


def _with_an_async_function() -> StatefulFunctions:
    registry = StatefulFunctions()
    registry.register("example/plain", lambda context, message: None)

    async def later(context, message):
        pass

    registry.register("example/later", later)
    return registry


def _bound_function(context, message):
    pass


@pytest.mark.parametrize(
    ("served", "match"),
    [
        pytest.param(_with_an_async_function(), "^example/later is an async def function, and a WSGI server runs "
                     r"plain \(def\) functions: make it a plain function", id="async-function"),
        pytest.param(RequestReplyHandler(_with_an_async_function()), "^example/later is an async def function",
                     id="async-function-in-a-handler"),
        pytest.param(_bound_function, r"got '_bound_function', a callable that cannot be called with the request "
                     r"bytes alone \(missing a required argument: 'message'\); a bound function is served through "
                     r"the StatefulFunctions it is bound in$", id="a-bound-function"),
    ],
)
def test_what_would_fail_every_batch_is_refused_at_start_up(served: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Endpoint(served)  # type: ignore[arg-type]


def test_a_handler_that_sheds_load_answers_503_in_one_line() -> None:
    def handler(body: bytes) -> bytes:
        raise OverloadedError("busy: 64 batches in flight")

    reply = Endpoint(handler).respond("POST", None, "3", io.BytesIO(b"abc"))
    assert reply.status == 503
    assert reply.body == b"503 Service Unavailable: busy: 64 batches in flight\n"
    assert reply.status_line == "503 Service Unavailable"


async def _async_handler(body: bytes) -> bytes:
    return body


class _AsyncHandler:
    async def __call__(self, body: bytes) -> bytes:
        return body


@pytest.mark.parametrize("handler", [_async_handler, _AsyncHandler()], ids=["async-def", "async-callable-object"])
def test_an_async_handler_is_refused_at_start_up(handler) -> None:
    with pytest.raises(ConfigurationError, match=r"is an async handler: a WSGI server calls a plain one \(bytes -> bytes\)$"):
        Endpoint(handler)


def test_a_handler_returning_no_bytes_is_a_500_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    reply = Endpoint(lambda body: None).respond("POST", None, "3", io.BytesIO(b"abc"))
    assert reply.status == 500
    assert reply.body == b"500 Internal Server Error: the request-reply handler failed unexpectedly; see the server log\n"
    assert "the request-reply handler failed unexpectedly" in caplog.text


class _Handler:
    def __call__(self, body: bytes) -> bytes:
        return body


@pytest.mark.parametrize("handler", [lambda body: body, _Handler(), bytes], ids=["lambda", "callable-object", "builtin"])
def test_any_callable_taking_the_request_bytes_is_a_handler(handler) -> None:
    endpoint = Endpoint(handler)
    reply = endpoint.respond("POST", None, "3", io.BytesIO(b"abc"))
    assert (reply.status, reply.body) == (200, b"abc")


@pytest.mark.parametrize(("status", "line"), [
    (200, "200 OK"),
    (413, "413 Request Entity Too Large"),  # Python 3.13's http.HTTPStatus says "Content Too Large"
    (422, "422 Unprocessable Entity"),
    (503, "503 Service Unavailable"),
    (299, "299 Unknown"),
])
def test_a_status_line_is_the_same_on_every_python_release(status: int, line: str) -> None:
    assert Reply(status, [], b"").status_line == line


def test_the_core_imports_no_web_framework_and_no_socket() -> None:
    import ast
    from pathlib import Path

    import statefun_wsgi.endpoint

    tree = ast.parse(Path(statefun_wsgi.endpoint.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert not imported & {"werkzeug", "django", "flask", "gunicorn", "socket", "wsgiref"}, imported


def test_the_hosting_docs_example_of_another_host_runs() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "hosting.md").read_text()
    section = text.split("## Another host: the endpoint core\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"functions": functions, "method": "POST", "content_type": OCTET,
                 "content_length": str(len(GOOD)), "stream": io.BytesIO(GOOD)}
    exec(compile(code, "docs/hosting.md", "exec"), namespace)
    assert_ok(namespace["reply"])
