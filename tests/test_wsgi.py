"""Tests for statefun_wsgi.wsgi: a WSGI environ read into the endpoint core's request.

What the core decides from a request (every status) is tests/test_endpoint.py's; here,
what only a WSGI environ says: where the body is (``wsgi.input``), whether a body
without ``CONTENT_LENGTH`` can be read (``wsgi.input_terminated``), the socket that gets
prompt ACKs, and the raw request target for the runtime's unix-socket path.
"""

from __future__ import annotations

import io
import socket
from typing import Iterator, Optional

import pytest
from test_endpoint import GOOD, LIMIT, OCTET, RecordingStream, assert_error, assert_ok, functions, padded_request

from statefun_wsgi.endpoint import DEFAULT_MAX_BODY_SIZE, Endpoint
from statefun_wsgi.wsgi import (
    PROMPT_ACK_BODY_SIZE,
    is_escaped_path_target,
    raw_request_target,
    respond_to_environ,
    unix_socket_path_info,
)

AUTO = object()


def environ(
    body: bytes = GOOD,
    *,
    method: str = "POST",
    content_type: Optional[str] = OCTET,
    content_length: object = AUTO,
    terminated: bool = False,
    stream: Optional[io.BytesIO] = None,
) -> dict:
    """A WSGI environ for the function path. ``terminated`` = the server decoded a chunked body."""
    env: dict = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/statefun",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": stream if stream is not None else RecordingStream(body),
    }
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    if content_length is AUTO:
        content_length = None if terminated else str(len(body))
    if content_length is not None:
        env["CONTENT_LENGTH"] = content_length
    if terminated:
        env["wsgi.input_terminated"] = True
    return env


@pytest.fixture
def endpoint() -> Endpoint:
    return Endpoint(functions, max_body_size=LIMIT)


# -- the request: method, content type, length and body, from the environ -------------------


@pytest.mark.parametrize("content_type", [OCTET, None, "", "application/x-protobuf"],
                         ids=["octet-stream", "missing", "empty", "x-protobuf"])
def test_a_batch_is_answered_from_the_environ(endpoint: Endpoint, content_type: Optional[str]) -> None:
    assert_ok(respond_to_environ(endpoint, environ(content_type=content_type)))


def test_a_chunked_body_decoded_by_the_server_is_read_to_its_end(endpoint: Endpoint) -> None:
    assert_ok(respond_to_environ(endpoint, environ(terminated=True)))


def test_an_empty_content_length_is_no_content_length(endpoint: Endpoint) -> None:
    assert_ok(respond_to_environ(endpoint, environ(content_length="", terminated=True)))
    assert_error(respond_to_environ(endpoint, environ(content_length="")), 411, "needs a Content-Length")


def test_content_length_and_a_terminated_stream_read_exactly_that_length(endpoint: Endpoint) -> None:
    stream = RecordingStream(GOOD + b"next request")
    assert_ok(respond_to_environ(endpoint, environ(stream=stream, content_length=str(len(GOOD)), terminated=True)))
    assert stream.tell() == len(GOOD)


ERRORS = [
    pytest.param(environ(method="GET"), 405, "GET is not allowed", id="405-request-method"),
    pytest.param({k: v for k, v in environ().items() if k != "REQUEST_METHOD"}, 405, "GET is not allowed",
                 id="405-no-request-method-is-a-get"),
    pytest.param(environ(content_type="text/plain"), 415, "'text/plain'", id="415-content-type"),
    pytest.param(environ(content_length="abc"), 400, "is not a number of bytes", id="400-content-length"),
    pytest.param(environ(GOOD[:-3], content_length=str(len(GOOD))), 400, "ended before its Content-Length",
                 id="400-shorter-than-content-length"),
    pytest.param(environ(GOOD[:-3], content_length=str(len(GOOD)), terminated=True), 400,
                 "ended before its Content-Length", id="400-shorter-than-content-length-terminated"),
    pytest.param(environ(content_length=None), 411, "needs a Content-Length", id="411-no-length-not-terminated"),
    pytest.param(environ(content_type="text/plain", content_length=None), 415, "text/plain", id="415-before-411"),
    pytest.param(environ(b"\0" * (LIMIT + 1)), 413, f"limit of {LIMIT} bytes", id="413-content-length"),
    pytest.param(environ(b"\0" * (LIMIT + 1), terminated=True), 413, f"limit of {LIMIT} bytes",
                 id="413-chunked-one-byte-over"),
]


@pytest.mark.parametrize(("env", "status", "fragment"), ERRORS)
def test_error_statuses_from_the_environ(endpoint: Endpoint, env: dict, status: int, fragment: str) -> None:
    assert_error(respond_to_environ(endpoint, env), status, fragment)


def test_411_does_not_read_the_body(endpoint: Endpoint) -> None:
    env = environ(content_length=None)
    assert_error(respond_to_environ(endpoint, env), 411, "Content-Length")
    assert env["wsgi.input"].calls == 0


# -- prompt ACKs (Linux's TCP_QUICKACK) -----------------------------------------------------

quickack = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")


@pytest.fixture
def tcp_connection() -> Iterator[socket.socket]:
    """The server's side of a real loopback TCP connection, in delayed-ACK mode."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            server_side, _ = listener.accept()
            with server_side:
                server_side.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
                assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 0
                yield server_side


def acks_promptly(sock: socket.socket) -> bool:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1


@quickack
@pytest.mark.parametrize("key", ["gunicorn.socket", "werkzeug.socket"])
@pytest.mark.parametrize(("terminated", "content_type"), [
    (False, OCTET),  # what the runtime sends: the hot path
    (False, "application/x-protobuf"),  # the checked path
    (True, OCTET),  # a chunked body
], ids=["content-length", "checked-path", "chunked"])
def test_a_large_body_has_its_connection_acknowledging_promptly(tcp_connection: socket.socket, key: str,
                                                                terminated: bool, content_type: str) -> None:
    # The runtime writes bodies over ~8 KiB in pieces that wait for the server's ACK (Nagle);
    # Linux would hold that ACK 40 ms. The endpoint asks for it at once.
    body = padded_request(PROMPT_ACK_BODY_SIZE + 1)
    env = {**environ(body, terminated=terminated, content_type=content_type), key: tcp_connection}
    assert_ok(respond_to_environ(Endpoint(functions), env))
    assert acks_promptly(tcp_connection)


@quickack
@pytest.mark.parametrize(("overrides", "status"), [
    pytest.param({"CONTENT_LENGTH": None}, 411, id="411-no-length"),
    pytest.param({"REQUEST_METHOD": "PUT"}, 405, id="405"),
    pytest.param({"CONTENT_TYPE": "text/plain"}, 415, id="415"),
    pytest.param({"CONTENT_LENGTH": str(DEFAULT_MAX_BODY_SIZE + 1)}, 413, id="413-by-content-length"),
    pytest.param({"CONTENT_LENGTH": "\uff14\uff10\uff19\uff17"}, 400, id="400-fullwidth-digits"),
])
def test_a_request_refused_before_reading_costs_no_system_call(tcp_connection: socket.socket, overrides: dict,
                                                               status: int) -> None:
    # Refused on its headers, the body is never read: nothing asked of the kernel.
    body = padded_request(PROMPT_ACK_BODY_SIZE + 1)
    env = {**environ(body), "gunicorn.socket": tcp_connection}
    for key, value in overrides.items():
        if value is None:
            del env[key]
        else:
            env[key] = value
    assert respond_to_environ(Endpoint(functions), env).status == status
    assert not acks_promptly(tcp_connection)


@quickack
def test_a_small_body_costs_no_system_call(tcp_connection: socket.socket) -> None:
    # A batch of up to PROMPT_ACK_BODY_SIZE bytes arrives in one write: nothing to wait for.
    body = padded_request(PROMPT_ACK_BODY_SIZE)
    env = {**environ(body), "gunicorn.socket": tcp_connection}
    assert_ok(respond_to_environ(Endpoint(functions), env))
    assert not acks_promptly(tcp_connection)


@pytest.mark.parametrize("sock", ["unix", "not-a-socket"])
def test_a_server_socket_that_is_not_tcp_is_left_alone(sock: str) -> None:
    body = padded_request(PROMPT_ACK_BODY_SIZE + 1)
    left, right = socket.socketpair()
    with left, right:
        env = {**environ(body), "gunicorn.socket": left if sock == "unix" else object()}
        assert_ok(respond_to_environ(Endpoint(functions), env))


# -- the runtime's path over a unix socket --------------------------------------------------


@pytest.mark.parametrize(("path", "path_info"), [
    ("/statefun", "//statefun"),
    ("/fn/v2", "//fn/v2"),
    ("/fn/v2/", "//fn/v2"),
    ("/fn//v2", "//fn/v2"),
    ("/", "//"),
])
def test_unix_socket_path_info(path: str, path_info: str) -> None:
    assert unix_socket_path_info(path) == path_info


@pytest.mark.parametrize(("target", "escaped"), [
    pytest.param("/%2Fstatefun", True, id="one-escaped-segment"),
    pytest.param("/%2Fstatefun?x=1", True, id="with-a-query"),
    pytest.param("http://unused/%2Fstatefun", True, id="absolute-form"),
    pytest.param(None, True, id="unknown"),
    pytest.param("//statefun", False, id="slashes-written-out"),
    pytest.param("http://unused//statefun", False, id="absolute-written-out"),
    pytest.param("http://unused", False, id="absolute-no-path"),
    pytest.param("*", False, id="asterisk-form"),
])
def test_is_escaped_path_target(target: Optional[str], escaped: bool) -> None:
    assert is_escaped_path_target(target) is escaped


@pytest.mark.parametrize(("env", "target"), [
    pytest.param({"RAW_URI": "/%2Fa", "REQUEST_URI": "/%2Fb"}, "/%2Fa", id="raw-uri-first"),
    pytest.param({"REQUEST_URI": "/%2Fb"}, "/%2Fb", id="request-uri"),
    pytest.param({}, None, id="neither"),
    pytest.param({"RAW_URI": b"/%2Fa"}, None, id="not-a-string"),
])
def test_raw_request_target(env: dict, target: Optional[str]) -> None:
    assert raw_request_target(env) == target


def test_the_names_that_moved_here_are_still_importable_from_the_endpoint_module() -> None:
    import statefun_wsgi.endpoint as core
    import statefun_wsgi.wsgi as adapter

    for name in ("PROMPT_ACK_BODY_SIZE", "is_escaped_path_target", "raw_request_target", "unix_socket_path_info"):
        assert getattr(core, name) is getattr(adapter, name)
    with pytest.raises(AttributeError, match="has no attribute 'respond_to_environ'"):
        core.respond_to_environ  # noqa: B018  the core reads no environ
