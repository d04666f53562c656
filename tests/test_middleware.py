"""Tests for statefun_wsgi.middleware: what it answers, and what it leaves alone.

Every request off the function path must reach the wrapped app exactly as without
the middleware: same environ, the app's own start_response calls, and the app's own
iterable back to the server (so the server calls its ``close()``).
"""

from __future__ import annotations

import io
from typing import Any, Callable, Iterable, List, Optional, Tuple
from wsgiref.util import FileWrapper

import pytest
from builders import Egress, Mutation, decode_reply, from_v3, request, to_v3
from google.protobuf.wrappers_pb2 import Int64Value, StringValue
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from statefun_wsgi import ConfigurationError, RequestReplyHandler, StatefulFunctions, StatefunMiddleware

functions = StatefulFunctions()


@functions.bind("example/counter", states=["count"])
def counter(context, message: StringValue) -> None:
    count = context.state("count").unpack(Int64Value) or Int64Value()
    count.value += 1
    context.state("count").pack(count)
    context.pack_and_send_egress("example/out", StringValue(value=f"{message.value} #{count.value}"))


BATCH = request("example/counter", "alice", state={"count": Int64Value(value=1)}, messages=[StringValue(value="hi")])


class Body:
    """An app's response iterable that records whether the server closed it."""

    def __init__(self, chunks: List[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self):
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


class RecordingApp:
    """A WSGI app that records each call and answers with a :class:`Body`."""

    def __init__(self) -> None:
        self.calls: List[Tuple[dict, Callable]] = []
        self.bodies: List[Body] = []

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self.calls.append((environ, start_response))
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])
        body = Body([b"from the app"])
        self.bodies.append(body)
        return body


def environ(path: str = "/statefun", *, method: str = "POST", body: bytes = BATCH, script_name: str = "") -> dict:
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }


class StartResponse:
    def __init__(self) -> None:
        self.calls: List[Tuple[str, list]] = []

    def __call__(self, status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
        self.calls.append((status, headers))
        return lambda data: None


def call(middleware: StatefunMiddleware, env: dict) -> Tuple[str, dict, bytes]:
    start_response = StartResponse()
    body = b"".join(middleware(env, start_response))
    [(status, headers)] = start_response.calls
    return status, dict(headers), body


def assert_served(status: str, headers: dict, body: bytes) -> None:
    assert status == "200 OK", body
    assert headers == {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
    reply = decode_reply(body)
    assert reply.egresses == [Egress.to("example/out", StringValue(value="hi #2"))]
    assert reply.mutations == {"count": Mutation.modify(Int64Value(value=2))}


# -- serving the function path ---------------------------------------------------------------


def test_the_function_path_is_answered_without_calling_the_app() -> None:
    app = RecordingApp()
    assert_served(*call(StatefunMiddleware(app, functions), environ()))
    assert app.calls == []


def test_a_request_reply_handler_can_be_served() -> None:
    assert_served(*call(StatefunMiddleware(None, RequestReplyHandler(functions)), environ()))


def test_errors_on_the_function_path_come_from_the_endpoint() -> None:
    status, headers, body = call(StatefunMiddleware(RecordingApp(), functions), environ(method="GET"))
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == "POST"
    assert body.count(b"\n") == 1 and body.endswith(b"\n")


def test_max_body_size_is_passed_to_the_endpoint() -> None:
    middleware = StatefunMiddleware(None, functions, max_body_size=len(BATCH) - 1)
    status, _, body = call(middleware, environ())
    assert status == "413 Request Entity Too Large", body


def test_a_2x_and_a_3x_request_through_the_same_middleware() -> None:
    middleware = StatefunMiddleware(RecordingApp(), functions)
    assert_served(*call(middleware, environ()))
    status, headers, body = call(middleware, environ(body=to_v3(BATCH)))
    assert headers == {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
    assert body != from_v3(body)  # written in 3.x ...
    assert_served(status, {**headers, "Content-Length": str(len(from_v3(body)))}, from_v3(body))  # ... same content


@pytest.mark.parametrize(
    "protocols, served, refused", [("2.x", BATCH, to_v3(BATCH)), ("3.x", to_v3(BATCH), BATCH)], ids=["2.x", "3.x"]
)
def test_protocols_is_passed_to_the_endpoint(protocols: str, served: bytes, refused: bytes) -> None:
    middleware = StatefunMiddleware(None, functions, protocols=protocols)
    status, _, body = call(middleware, environ(body=served))
    assert status == "200 OK"
    status, _, body = call(middleware, environ(body=refused))
    assert status == "415 Unsupported Media Type"
    assert f"this endpoint serves {protocols} only (the protocols setting".encode() in body


def test_through_werkzeug_test_client() -> None:
    client = Client(StatefunMiddleware(RecordingApp(), functions))
    response = client.post("/statefun", data=BATCH, content_type="application/octet-stream")
    assert_served(response.status, dict(response.headers), response.get_data())
    page = client.get("/")
    assert page.status_code == 200 and page.get_data() == b"from the app"


# -- pass-through ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [
        pytest.param("/", "GET", id="root"),
        pytest.param("/statefun/", "POST", id="trailing-slash"),
        pytest.param("/statefunx", "POST", id="prefix-only"),
        pytest.param("/api/statefun", "POST", id="deeper-path"),
        pytest.param("/STATEFUN", "POST", id="other-case"),
        pytest.param("", "GET", id="empty-path-info"),
    ],
)
def test_other_paths_pass_through_untouched(path: str, method: str) -> None:
    app = RecordingApp()
    middleware = StatefunMiddleware(app, functions)
    env = environ(path, method=method)
    snapshot = dict(env)
    start_response = StartResponse()

    result = middleware(env, start_response)

    [(seen_environ, seen_start_response)] = app.calls
    assert seen_environ is env and env == snapshot  # the same dict, not a copy, not modified
    assert seen_start_response is start_response  # the server's own callable
    assert result is app.bodies[0]  # the app's iterable itself, so the server closes it
    assert start_response.calls == [("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])]
    assert env["wsgi.input"].tell() == 0  # the body is the app's to read
    result.close()  # what the server does
    assert app.bodies[0].closed


def test_a_file_wrapper_response_passes_through() -> None:
    def download(environ: dict, start_response: Callable) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file contents"), 4)

    env = environ("/download", method="GET")
    env["wsgi.file_wrapper"] = FileWrapper
    result = StatefunMiddleware(download, functions)(env, StartResponse())
    assert isinstance(result, FileWrapper)  # the server can still send it with sendfile()
    assert b"".join(result) == b"file contents"


def test_a_generator_app_is_not_consumed_by_the_middleware() -> None:
    steps: List[str] = []

    def streaming(environ: dict, start_response: Callable) -> Iterable[bytes]:
        steps.append("called")
        start_response("200 OK", [])
        yield b"one"
        steps.append("resumed")
        yield b"two"

    result = StatefunMiddleware(streaming, functions)(environ("/stream", method="GET"), StartResponse())
    assert steps == []  # not even started: iterating is the server's job
    assert list(result) == [b"one", b"two"]
    assert steps == ["called", "resumed"]


def test_without_an_app_every_other_path_is_404() -> None:
    middleware = StatefunMiddleware(None, functions)
    status, headers, body = call(middleware, environ("/", method="GET"))
    assert status == "404 Not Found"
    assert body == b"Not Found\n"
    assert headers == {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))}
    assert_served(*call(middleware, environ()))


# -- mounting and paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script_name", "path_info", "served"),
    [
        pytest.param("/api", "/statefun", True, id="mounted-under-api"),
        pytest.param("/a/b", "/statefun", True, id="mounted-deeper"),
        pytest.param("", "/api/statefun", False, id="not-mounted-full-path-in-path-info"),
        pytest.param("/statefun", "", False, id="script-name-alone"),
    ],
)
def test_the_path_is_compared_with_path_info_below_script_name(script_name: str, path_info: str, served: bool) -> None:
    app = RecordingApp()
    status, _, body = call(StatefunMiddleware(app, functions), environ(path_info, script_name=script_name))
    if served:
        assert_served(status, {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}, body)
        assert app.calls == []
    else:
        assert body == b"from the app"


def test_mounted_by_werkzeug_dispatcher() -> None:
    site = RecordingApp()
    client = Client(DispatcherMiddleware(site, {"/api": StatefunMiddleware(None, functions)}))
    response = client.post("/api/statefun", data=BATCH, content_type="application/octet-stream")
    assert_served(response.status, dict(response.headers), response.get_data())
    assert client.post("/statefun", data=BATCH).get_data() == b"from the app"


@pytest.mark.parametrize(
    ("path", "served", "passed"),
    [
        pytest.param("/functions/v1", "/functions/v1", "/statefun", id="nested"),
        pytest.param("/", "/", "/statefun", id="root"),
    ],
)
def test_a_custom_path(path: str, served: str, passed: str) -> None:
    app = RecordingApp()
    middleware = StatefunMiddleware(app, functions, path=path)
    assert_served(*call(middleware, environ(served)))
    assert call(middleware, environ(passed))[2] == b"from the app"


# -- the runtime over a unix socket ----------------------------------------------------------------
#
# For http+unix:///run/app.sock/statefun the runtime sends POST /%2Fstatefun (one segment, its
# slash escaped); gunicorn and werkzeug decode that to PATH_INFO "//statefun" and keep the target
# as written in RAW_URI (werkzeug also in REQUEST_URI; uWSGI and waitress in REQUEST_URI alone).


@pytest.mark.parametrize(
    ("path", "path_info", "raw", "served"),
    [
        pytest.param("/statefun", "//statefun", {"RAW_URI": "/%2Fstatefun"}, True, id="gunicorn"),
        pytest.param("/statefun", "//statefun", {"RAW_URI": "/%2fstatefun"}, True, id="lower-case-escape"),
        pytest.param("/statefun", "//statefun", {"REQUEST_URI": "/%2Fstatefun?x=1"}, True, id="request-uri-query"),
        pytest.param("/statefun", "//statefun", {}, True, id="no-raw-target"),
        pytest.param("/statefun", "//statefun", {"RAW_URI": "http://unused/%2Fstatefun"}, True, id="absolute-form"),
        pytest.param("/fn/v2", "//fn/v2", {"RAW_URI": "/%2Ffn%2Fv2"}, True, id="nested"),
        pytest.param("/fn/v2/", "//fn/v2", {"RAW_URI": "/%2Ffn%2Fv2"}, True, id="trailing-slash-dropped"),
        pytest.param("/", "//", {"RAW_URI": "/%2F"}, True, id="root"),
        pytest.param("/statefun", "//statefun", {"RAW_URI": "//statefun"}, False, id="slashes-written-out"),
        pytest.param("/statefun", "//statefun", {"REQUEST_URI": "//statefun"}, False, id="written-out-request-uri"),
        pytest.param("/statefun", "//statefun", {"RAW_URI": "/%2F/statefun"}, False, id="two-segments"),
        pytest.param("/statefun", "//statefun", {"RAW_URI": "http://unused//statefun"}, False, id="absolute-written-out"),
        pytest.param("/statefun", "///statefun", {"RAW_URI": "/%2F%2Fstatefun"}, False, id="other-path"),
        pytest.param("/statefun", "//statefun/", {"RAW_URI": "/%2Fstatefun%2F"}, False, id="other-trailing-slash"),
        pytest.param("/fn/v2", "//fn%2Fv2", {"RAW_URI": "/%2Ffn%252Fv2"}, False, id="escaped-percent"),
        pytest.param("/statefun", "/%2Fstatefun", {"RAW_URI": "/%252Fstatefun"}, False, id="not-decoded"),
    ],
)
def test_the_runtimes_unix_socket_request_is_answered(path: str, path_info: str, raw: dict, served: bool) -> None:
    app = RecordingApp()
    status, headers, body = call(StatefunMiddleware(app, functions, path=path), {**environ(path_info), **raw})
    if served:
        assert_served(status, headers, body)
        assert app.calls == []
    else:
        assert body == b"from the app"


def test_the_runtimes_unix_socket_request_through_werkzeug() -> None:
    client = Client(StatefunMiddleware(RecordingApp(), functions))
    response = client.post("/%2Fstatefun", data=BATCH, content_type="application/octet-stream")
    assert_served(response.status, dict(response.headers), response.get_data())
    assert client.post("//statefun", data=BATCH).get_data() == b"from the app"


# -- bad arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"app": "app:wsgi"}, "app must be a WSGI application or None, got str", id="app-string"),
        pytest.param({"app": 42}, "app must be a WSGI application or None, got int", id="app-int"),
        pytest.param({"path": "statefun"}, "path must start with '/'", id="path-relative"),
        pytest.param({"path": ""}, "path must start with '/'", id="path-empty"),
        pytest.param({"path": None}, "path must start with '/'", id="path-none"),
        pytest.param({"path": b"/statefun"}, "path must start with '/'", id="path-bytes"),
        pytest.param({"max_body_size": 0}, "max_body_size must be a positive", id="max-body-size-zero"),
        pytest.param({"max_body_size": "32MiB"}, "max_body_size must be a positive", id="max-body-size-string"),
        pytest.param({"functions": object()}, "expected a StatefulFunctions", id="functions-object"),
        pytest.param({"functions": None}, "expected a StatefulFunctions", id="functions-none"),
        pytest.param({"protocols": "3"}, "protocols must be '2.x', '3.x', '2.x,3.x' or '3.x,2.x'", id="protocols-bad"),
        pytest.param(
            {"functions": RequestReplyHandler(functions), "protocols": "3.x"},
            r"pass it to the handler itself \(RequestReplyHandler\(functions, protocols=...\)\)",
            id="protocols-beside-a-handler",
        ),
    ],
)
def test_bad_arguments_raise_configuration_error(kwargs: dict, match: str) -> None:
    arguments: dict = {"app": RecordingApp(), "functions": functions}
    arguments.update(kwargs)
    app = arguments.pop("app")
    served: Optional[Any] = arguments.pop("functions")
    with pytest.raises(ConfigurationError, match=match):
        StatefunMiddleware(app, served, **arguments)
    assert issubclass(ConfigurationError, ValueError)
