"""Tests for statefun_wsgi.local.transport: HttpTransport against real servers.

The functions are the greeter example served by ``app:wsgi`` under real gunicorn
(gthread workers, bound to a TCP port and to a unix socket); odd answers come from a
tiny WSGI app served in a thread, and replies cut short from a raw socket server.
"""

from __future__ import annotations

import http.client
import socket
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Dict, Iterator, List
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from builders import Call, Sent, decode_reply, request
from google.protobuf.wrappers_pb2 import Int64Value
from servers import Server, free_port, gunicorn

from examples.greeter import functions as greeter_module
from examples.greeter.messages_pb2 import FormatRequest, GreetRequest, GreetResponse
from statefun_wsgi.local import FunctionCallFailedError, HttpTransport, LocalRuntime, TransportError
from statefun_wsgi.local.transport import parse_unix_endpoint
from statefun_wsgi.module_yaml import FunctionSpec, StateSpec, generate_module_yaml, parse_module_yaml


@pytest.fixture(scope="module")
def unix_socket() -> Iterator[str]:
    # A directory whose name holds ".sock" too: the runtime's socket is the first path segment
    # that ENDS in .sock, so this endpoint's socket is .../my.socket.d/app.sock.
    with tempfile.TemporaryDirectory(prefix="statefun-", dir="/tmp") as directory:
        Path(directory, "my.socket.d").mkdir()
        yield f"{directory}/my.socket.d/app.sock"


@pytest.fixture(scope="module")
def server(unix_socket: str) -> Iterator[Server]:
    """app:wsgi under gunicorn: gthread workers, on a free TCP port and on a unix socket."""
    with gunicorn(
        "app:wsgi", "--bind", f"unix:{unix_socket}", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
        env={"STATEFUN_ACCESS_LOG": "off"},
    ) as running:
        yield running


@pytest.fixture
def transport() -> Iterator[HttpTransport]:
    transport = HttpTransport()
    yield transport
    transport.close()


def spec(endpoint: str, typename: str = "example/formatter") -> FunctionSpec:
    return FunctionSpec(typename, endpoint)


def format_request(name: str = "alice", visits: int = 1) -> bytes:
    return request(
        "example/formatter", name,
        messages=[Call(FormatRequest(name=name, visits=visits), caller=("example/greeter", name))],
    )


# -- success and connection reuse ------------------------------------------------------------


def test_a_200_reply_is_returned_and_decodes(server: Server, transport: HttpTransport) -> None:
    reply = decode_reply(transport(spec(server.base_url + "/statefun"), format_request("alice", 2)))
    assert reply.sent == [
        Sent.to("example/greeter", "alice", GreetResponse(name="alice", greeting="Hello alice! This is visit number 2.",
                                                          visits=2))
    ]


def test_consecutive_calls_reuse_one_keep_alive_connection(
    server: Server, transport: HttpTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects: List[tuple] = []
    original = http.client.HTTPConnection.connect

    def counting_connect(self: http.client.HTTPConnection) -> None:
        original(self)
        connects.append(self.sock.getsockname())

    monkeypatch.setattr(http.client.HTTPConnection, "connect", counting_connect)
    endpoint = spec(server.base_url + "/statefun")
    for visits in range(1, 6):
        reply = decode_reply(transport(endpoint, format_request("bob", visits)))
        assert reply.sent[0].message.visits == visits
    assert len(connects) == 1, connects  # one TCP connection for all five batches


def test_a_connection_dropped_by_the_server_is_replaced(server: Server, transport: HttpTransport) -> None:
    endpoint = spec(server.base_url + "/statefun")
    transport(endpoint, format_request())
    # Close the pooled connection's socket under it, as a server's idle timeout would.
    for connection in transport._local.pool.values():
        connection.sock.close()
    with pytest.raises(TransportError) as info:
        transport(endpoint, format_request())
    assert info.value.retryable  # a connection error: the runtime retries
    assert decode_reply(transport(endpoint, format_request())).sent  # and the retry gets a new connection


def test_close_closes_the_connections_of_every_thread(server: Server) -> None:
    transport = HttpTransport()
    endpoint = spec(server.base_url + "/statefun")
    connections: List[http.client.HTTPConnection] = []

    def call() -> None:
        transport(endpoint, format_request())
        connections.extend(transport._local.pool.values())

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(connections) == 3 and all(connection.sock is not None for connection in connections)
    transport.close()  # from another thread than the ones that opened them
    assert all(connection.sock is None for connection in connections)


# -- statuses ---------------------------------------------------------------------------------------


def test_a_function_failure_500_is_retryable(server: Server, transport: HttpTransport) -> None:
    # The greeter declares seen_count; a batch without it fails in the function (500).
    data = request("example/greeter", "alice", messages=[GreetRequest(name="alice")])
    with pytest.raises(TransportError) as info:
        transport(spec(server.base_url + "/statefun", "example/greeter"), data)
    assert info.value.retryable
    assert "answered 500" in info.value.reason
    assert "seen_count" in info.value.reason


def test_an_unknown_function_404_is_not_retryable(server: Server, transport: HttpTransport) -> None:
    data = request("example/nope", "x", messages=[GreetRequest(name="x")])
    with pytest.raises(TransportError) as info:
        transport(spec(server.base_url + "/statefun", "example/nope"), data)
    assert not info.value.retryable
    assert "answered 404" in info.value.reason and "example/nope" in info.value.reason


def test_a_wrong_path_404_is_not_retryable(server: Server, transport: HttpTransport) -> None:
    with pytest.raises(TransportError) as info:
        transport(spec(server.base_url + "/not-statefun"), format_request())
    assert not info.value.retryable
    assert info.value.reason.startswith(f"{server.base_url}/not-statefun answered 404")


def test_a_malformed_batch_400_is_not_retryable(server: Server, transport: HttpTransport) -> None:
    with pytest.raises(TransportError) as info:
        transport(spec(server.base_url + "/statefun"), b"\xff\xff not a ToFunction")
    assert not info.value.retryable
    assert "answered 400" in info.value.reason


def test_connection_refused_is_retryable(transport: HttpTransport) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/statefun"
    with pytest.raises(TransportError) as info:
        transport(spec(endpoint), format_request())
    assert info.value.retryable
    assert "ConnectionRefusedError" in info.value.reason


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a /slow/ request still sleeping holds up neither the next test nor the shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def odd_app(environ, start_response):
    """Answers as the path says: /status/<code>, /content-type/<type>, /empty, /slow/<seconds>."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    path = environ["PATH_INFO"]
    status, content_type, body = "200 OK", "application/octet-stream", b"\x00"
    if path.startswith("/slow/"):
        time.sleep(float(path.rsplit("/", 1)[1]))
    if path.startswith("/status/"):
        status, body = f"{path.rsplit('/', 1)[1]} Whatever", b"nope"
    elif path.startswith("/content-type/"):
        content_type = environ["QUERY_STRING"].replace("%20", " ").replace("%3B", ";")
    elif path == "/empty":
        body = b""
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def odd_server() -> Iterator[str]:
    httpd: WSGIServer = make_server("127.0.0.1", 0, odd_app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (408, True), (409, True), (420, True), (429, True), (499, True),
     (400, False), (401, False), (403, False), (404, False), (410, False), (413, False), (415, False)],
)
def test_statuses_are_retried_as_the_runtime_retries_them(
    odd_server: str, transport: HttpTransport, status: int, retryable: bool
) -> None:
    with pytest.raises(TransportError) as info:
        transport(spec(f"{odd_server}/status/{status}"), format_request())
    assert info.value.retryable is retryable
    assert f"answered {status}" in info.value.reason


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream; charset=utf-8", "Application/Octet-Stream", "application/x-protobuf", "text/plain"],
)
def test_a_reply_content_type_other_than_exactly_octet_stream_fails_without_retry(
    odd_server: str, transport: HttpTransport, content_type: str
) -> None:
    query = content_type.replace(" ", "%20").replace(";", "%3B")
    with pytest.raises(TransportError) as info:
        transport(spec(f"{odd_server}/content-type/x?{query}"), format_request())
    assert not info.value.retryable
    assert repr(content_type) in info.value.reason


def test_the_tiny_server_answers_well_formed_replies(odd_server: str, transport: HttpTransport) -> None:
    """The control for the cases above: the exact content type is accepted."""
    assert transport(spec(f"{odd_server}/content-type/x?application/octet-stream"), format_request()) == b"\x00"


def test_a_200_with_an_empty_body_is_a_reply(odd_server: str, transport: HttpTransport) -> None:
    # The runtime parses an empty body as an empty FromFunction: no effects, and it carries on.
    assert transport(spec(f"{odd_server}/empty"), format_request()) == b""


def test_the_local_runtime_carries_on_after_an_empty_200(odd_server: str) -> None:
    functions = {"example/formatter": FunctionSpec("example/formatter", f"{odd_server}/empty")}
    with LocalRuntime(functions, HttpTransport()) as runtime:
        for name in ("a", "b", "a"):
            runtime.send("example/formatter", name, FormatRequest(name=name, visits=1))
        runtime.run_until_idle(timeout=30)
        assert runtime.batches_sent == 3  # a, b, then a's second message: no failure, no retry


# -- timeouts -----------------------------------------------------------------------------------------


def slow_spec(endpoint: str, timeout: float, read_timeout: float) -> FunctionSpec:
    return FunctionSpec("example/formatter", endpoint, timeout=timedelta(seconds=timeout),
                        read_timeout=timedelta(seconds=read_timeout), connect_timeout=timedelta(seconds=read_timeout),
                        write_timeout=timedelta(seconds=read_timeout))


def test_a_reply_slower_than_the_read_timeout_is_a_retryable_timeout(
    odd_server: str, transport: HttpTransport
) -> None:
    # The reply comes 3 s late, far past the 200 ms read timeout: a busy machine cannot blur the two.
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        transport(slow_spec(f"{odd_server}/slow/3", timeout=5, read_timeout=0.2), format_request())
    assert info.value.retryable
    assert info.value.reason == f"{odd_server}/slow/3: read timed out after readTimeout 200ms"
    assert info.value.elapsed is not None and 0.2 <= info.value.elapsed < 3
    assert time.monotonic() - started < 3


def test_the_call_timeout_bounds_the_whole_attempt(odd_server: str, transport: HttpTransport) -> None:
    # readTimeout 1 s, but only 0.3 s of the call timeout is left for the whole attempt.
    with pytest.raises(TransportError) as info:
        transport(slow_spec(f"{odd_server}/slow/0.6", timeout=0.3, read_timeout=1), format_request())
    assert info.value.retryable
    assert info.value.reason == f"{odd_server}/slow/0.6: read timed out after the call timeout (300ms)"


def test_a_timed_out_call_is_retried_until_the_deadline(odd_server: str) -> None:
    """readTimeout 0.2 s, timeout 0.5 s, a reply after 0.3 s: attempts at 0, 0.21, 0.43 s
    (backoffs of 10 and 20 ms), each timed out after 0.2 s (each attempt has a call
    timeout of its own); at 0.63 s nothing is left of the 0.5 s: the job fails."""
    functions = {"example/formatter": slow_spec(f"{odd_server}/slow/0.3", timeout=0.5, read_timeout=0.2)}
    with LocalRuntime(functions, HttpTransport()) as runtime:
        runtime.send("example/formatter", "a", FormatRequest(name="a", visits=1))
        with pytest.raises(FunctionCallFailedError) as info:
            runtime.run_until_idle(timeout=30)
        assert runtime.batches_sent == 3
        assert info.value.reason.startswith("maximal request time has elapsed: 3 attempts over 0.")
        assert info.value.reason.endswith(f"(timeout 500ms); the last: {odd_server}/slow/0.3: "
                                          "read timed out after readTimeout 200ms")


# -- replies cut short (issue 18) ---------------------------------------------------------------------


class CutServer:
    """A raw HTTP server on 127.0.0.1 that answers each request as its path says, then
    closes the connection:

    - ``/cut``: a 200 (``Content-Length: 100``) with only 10 bytes of its body;
    - ``/headers-only``: the 200's status line and headers, no body (a worker killed
      between gunicorn's two writes);
    - ``/garbage``: a complete 200 whose body is not a ``FromFunction``;
    - ``/reset``: nothing at all (a worker killed before it answered).

    ``requests`` counts the requests per path.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: Dict[str, int] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        while len(body) < length:
            body += connection.recv(65536)
        path = lines[0].split(" ")[1]
        self.requests[path] = self.requests.get(path, 0) + 1
        headers = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        if path == "/cut":
            connection.sendall(headers + b"Content-Length: 100\r\n\r\n" + b"\x00" * 10)
        elif path == "/headers-only":
            connection.sendall(headers + b"Content-Length: 100\r\n\r\n")
        elif path == "/garbage":
            connection.sendall(headers + b"Content-Length: 4\r\n\r\n\xff\xff\xff\xff")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def cut_server() -> Iterator[CutServer]:
    server = CutServer()
    yield server
    server.close()


@pytest.mark.parametrize("path", ["/cut", "/headers-only"])
def test_a_200_whose_body_is_cut_short_is_not_retryable(
    cut_server: CutServer, transport: HttpTransport, path: str
) -> None:
    with pytest.raises(TransportError) as info:
        transport(spec(cut_server.url(path)), format_request())
    assert not info.value.retryable
    assert info.value.reason.startswith(f"{cut_server.url(path)} answered 200, but its body could not be read "
                                        "in full (IncompleteRead on read: ")


def test_a_connection_closed_before_any_reply_is_retryable(cut_server: CutServer, transport: HttpTransport) -> None:
    """The control: a worker killed before it answered is a reset, which the runtime retries."""
    with pytest.raises(TransportError) as info:
        transport(spec(cut_server.url("/reset")), format_request())
    assert info.value.retryable
    assert "RemoteDisconnected" in info.value.reason


@pytest.mark.parametrize("path, reason", [
    ("/cut", "answered 200, but its body could not be read in full"),
    ("/headers-only", "answered 200, but its body could not be read in full"),
    ("/garbage", "the reply is not a FromFunction"),
])
def test_the_local_runtime_fails_at_once_on_a_200_it_cannot_parse(cut_server: CutServer, path: str,
                                                                  reason: str) -> None:
    functions = {"example/formatter": FunctionSpec("example/formatter", cut_server.url(path), (StateSpec("s"),))}
    with LocalRuntime(functions, HttpTransport()) as runtime:
        runtime.send("example/formatter", "a", FormatRequest(name="a", visits=1))
        with pytest.raises(FunctionCallFailedError) as info:
            runtime.run_until_idle(timeout=30)
        assert reason in info.value.reason
        assert cut_server.requests == {path: 1}  # one attempt: no retry
        assert runtime.batches_sent == 1
        assert runtime.state("example/formatter", "a", "s") is None


# -- unix sockets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["path", "host-ignored", "doubled-slashes"])
def test_http_unix_endpoint(server: Server, unix_socket: str, transport: HttpTransport, form: str) -> None:
    assert Path(unix_socket).is_socket() and ".socket.d/" in unix_socket
    endpoint = {
        "path": f"http+unix://{unix_socket}/statefun",
        "host-ignored": f"http+unix://localhost{unix_socket}/statefun",  # the runtime reads the path alone
        "doubled-slashes": f"http+unix://{unix_socket.replace('/', '//')}//statefun/",
    }[form]
    for visits in (1, 2):
        reply = decode_reply(transport(spec(endpoint), format_request("carol", visits)))
        assert reply.sent[0].message == GreetResponse(
            name="carol", visits=visits,
            greeting="Hello carol! Nice to meet you." if visits == 1 else "Hello carol! This is visit number 2.",
        )


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param("http+unix:///run/app/statefun", id="no-sock-segment"),
        pytest.param("http+unix:///run/app.socket/statefun", id="sock-not-at-the-end"),
        pytest.param("http+unix://%2Frun%2Fapp.sock/statefun", id="socket-in-the-host-part"),
    ],
)
def test_http_unix_endpoint_without_a_socket_file_is_refused(transport: HttpTransport, endpoint: str) -> None:
    # The runtime fails the job on these: "Unix Domain Socket path should contain a .sock file".
    with pytest.raises(ValueError, match="path names a socket file ending in .sock"):
        transport(spec(endpoint), format_request())


# What StateFun 2.2.2's own classes make of each endpoint (UnixDomainHttpEndpoint.parseFrom, then
# OkHttp 3.14.6's HttpUrl.Builder().addPathSegment(...).encodedPath(), run on the JVM).
@pytest.mark.parametrize(
    ("endpoint", "socket_path", "target"),
    [
        ("http+unix:///run/app.sock/statefun", "/run/app.sock", "/%2Fstatefun"),
        ("http+unix:///run/app.sock", "/run/app.sock", "/%2F"),
        ("http+unix:///run/app.sock/", "/run/app.sock", "/%2F"),
        ("http+unix:///run/my.socket.d/app.sock/statefun", "/run/my.socket.d/app.sock", "/%2Fstatefun"),
        ("http+unix:///run//app.sock//a/b/", "/run/app.sock", "/%2Fa%2Fb"),
        ("http+unix:///run/app.sock/a%20b%2Fc%25d?x=1#f", "/run/app.sock", "/%2Fa%20b%2Fc%25d"),
        ("http+unix://localhost/run/app.sock/statefun", "/run/app.sock", "/%2Fstatefun"),
        ("HTTP+UNIX:///run/app.sock/x", "/run/app.sock", "/%2Fx"),
        ("https+unix:///run/app.sock/x", "/run/app.sock", "/%2Fx"),
        ("http+unix:///run/.sock/x", "/run/.sock", "/%2Fx"),
        ("http+unix:///run/a.sock/b.sock/c", "/run/a.sock", "/%2Fb.sock%2Fc"),
        ("http+unix:///run/app.sock/caf%C3%A9", "/run/app.sock", "/%2Fcaf%C3%A9"),
        ("http+unix:///run/app.sock/./x/../y", "/run/app.sock", "/%2F.%2Fx%2F..%2Fy"),
        ("http+unix:///run/app.sock/a+b;c=d@e:f", "/run/app.sock", "/%2Fa+b;c=d@e:f"),
    ],
)
def test_a_unix_endpoint_is_parsed_as_the_runtime_parses_it(endpoint: str, socket_path: str, target: str) -> None:
    assert parse_unix_endpoint(endpoint) == (socket_path, target)


def test_a_unix_endpoint_gets_the_runtimes_request_line_and_host(transport: HttpTransport) -> None:
    # What reaches the socket, byte for byte: the runtime's POST /%2Fstatefun and Host: unused.
    with tempfile.TemporaryDirectory(prefix="statefun-", dir="/tmp") as directory:
        path = f"{directory}/raw.sock"
        heads: List[bytes] = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            listener.settimeout(10)

            def answer() -> None:
                connection, _ = listener.accept()
                with connection:
                    data = b""
                    # The whole request, body included: closing with unread bytes would reset
                    # the connection, and the client could see the reset before the reply.
                    while b"\r\n\r\n" not in data or not data.endswith(b"batch"):
                        data += connection.recv(65536)
                    heads.append(data.split(b"\r\n\r\n")[0])
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                       b"Content-Length: 2\r\n\r\nok")

            thread = threading.Thread(target=answer)
            thread.start()
            try:
                assert transport(spec(f"http+unix://{directory}/raw.sock/statefun"), b"batch") == b"ok"
            finally:
                thread.join(10)
        [head] = heads
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /%2Fstatefun HTTP/1.1"
        assert b"Host: unused" in lines[1:]


# -- the local runtime over HTTP ----------------------------------------------------------------------


def test_local_runtime_drives_gunicorn_concurrently_with_exact_counts(server: Server) -> None:
    module = parse_module_yaml(generate_module_yaml(greeter_module.functions, "http://unused:1/statefun"))
    names = [f"user-{number}" for number in range(20)]
    visits = 10
    with LocalRuntime.from_module_yaml(module, endpoint=server.base_url + "/statefun") as runtime:
        assert runtime.functions["example/greeter"].endpoint == server.base_url + "/statefun"

        def send_all() -> None:
            for _ in range(visits):
                for name in names:
                    runtime.send("example/greeter", name, GreetRequest(name=name))
                time.sleep(0.005)  # let batches go out, so that later visits arrive while they are in flight

        sender = threading.Thread(target=send_all)
        sender.start()
        while sender.is_alive():  # deliver while messages keep arriving
            runtime.run_until_idle(timeout=30)
        sender.join()
        runtime.run_until_idle(timeout=30)

        for name in names:
            assert runtime.state("example/greeter", name, "seen_count", Int64Value) == Int64Value(value=visits)
        greetings: Dict[str, List[str]] = {}
        for record in runtime.egress(greeter_module.GREETS_EGRESS):
            greetings.setdefault(record.kafka.key, []).append(record.kafka.value_bytes.decode())
        assert sorted(greetings) == sorted(names)
        for name in names:  # each visit greeted exactly once, in order
            assert greetings[name] == [f"Hello {name}! Nice to meet you."] + [
                f"Hello {name}! This is visit number {number}." for number in range(2, visits + 1)
            ]
        assert runtime.pending_delayed == len(names)  # one reminder per first visit, not due yet


# -- StateFun 3.x: the async transport (Netty) retries every failure ---------------------------------

ASYNC = "io.statefun.transports.v1/async"


def async_spec(endpoint: str) -> FunctionSpec:
    return FunctionSpec("example/formatter", endpoint, protocol="3.x", transport=ASYNC)


@pytest.mark.parametrize("status", [400, 404, 415, 500, 503])
def test_the_async_transport_retries_every_non_2xx(odd_server: str, transport: HttpTransport, status: int) -> None:
    with pytest.raises(TransportError) as info:
        transport(async_spec(f"{odd_server}/status/{status}"), format_request())
    assert info.value.retryable
    assert f"answered {status}" in info.value.reason


@pytest.mark.parametrize("content_type, accepted", [("Application/Octet-Stream", True), ("text/plain", False)])
def test_the_async_transport_compares_the_content_type_ignoring_case_and_retries_a_wrong_one(
    odd_server: str, transport: HttpTransport, content_type: str, accepted: bool
) -> None:
    query = content_type.replace(" ", "%20").replace(";", "%3B")
    if accepted:
        transport(async_spec(f"{odd_server}/content-type/x?{query}"), format_request())
        return
    with pytest.raises(TransportError) as info:
        transport(async_spec(f"{odd_server}/content-type/x?{query}"), format_request())
    assert info.value.retryable and repr(content_type) in info.value.reason


@pytest.mark.parametrize("path", ["/cut", "/headers-only"])
def test_the_async_transport_retries_a_200_cut_short_as_a_lost_connection(
    cut_server: CutServer, transport: HttpTransport, path: str
) -> None:
    with pytest.raises(TransportError) as info:
        transport(async_spec(cut_server.url(path)), format_request())
    assert info.value.retryable
    assert "the async transport retries it as a lost connection" in info.value.reason


def test_local_runtime_3x_drives_gunicorn_with_exact_counts(server: Server) -> None:
    module = parse_module_yaml(generate_module_yaml(greeter_module.functions, "http://unused:1/statefun",
                                                    protocol="3.x"))
    names = [f"user-{number}" for number in range(5)]
    visits = 3
    with LocalRuntime.from_module_yaml(module, endpoint=server.base_url + "/statefun") as runtime:
        assert runtime.protocol == "3.x"
        for _ in range(visits):
            for name in names:
                runtime.send("example/greeter", name, GreetRequest(name=name))
            runtime.run_until_idle(timeout=60)
        for name in names:
            assert runtime.state("example/greeter", name, "seen_count", Int64Value) == Int64Value(value=visits)
        greetings: Dict[str, List[str]] = {}
        for record in runtime.egress(greeter_module.GREETS_EGRESS):
            assert record.argument.type_url == "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
            greetings.setdefault(record.kafka.key, []).append(record.kafka.value_bytes.decode())
        for name in names:
            assert greetings[name] == [f"Hello {name}! Nice to meet you."] + [
                f"Hello {name}! This is visit number {number}." for number in range(2, visits + 1)
            ]
