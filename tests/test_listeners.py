"""statefun_wsgi.listeners, and both middlewares' runtime_listeners, in process.

Connections are real: a socket listens, a client connects, and the accepted socket is
what goes into the environ as ``gunicorn.socket`` (or ``werkzeug.socket``), as a server
puts it there. Real gunicorn and Django under it: tests/test_runtime_listener.py.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import socket
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from builders import request
from google.protobuf.wrappers_pb2 import Int64Value

from statefun_wsgi import ConfigurationError, StatefunMiddleware
from statefun_wsgi.listeners import (
    ENVIRONMENT_VARIABLE,
    Listener,
    RuntimeListeners,
    listeners_from_environment,
    parse_listener,
    runtime_listeners_from,
)

import listener_app  # tests/listener_app.py

BATCH = request("test/counter", "alice", state={"count": None}, messages=[Int64Value(value=1)])


@pytest.fixture(autouse=True)
def no_runtime_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this process's environment holds, the tests start from none."""
    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, path, host, port",
    [
        ("0.0.0.0:9000", None, None, 9000),
        ("[::]:9000", None, None, 9000),
        (":9000", None, None, 9000),
        ("tcp://0.0.0.0:9000", None, None, 9000),
        ("127.0.0.1:9000", None, "127.0.0.1", 9000),
        ("[::1]:9000", None, "::1", 9000),
        ("localhost:9000", None, "localhost", 9000),
        ("statefun-internal", None, "statefun-internal", 8000),  # gunicorn's default port
        (" 10.0.0.5:9000 ", None, "10.0.0.5", 9000),
        ("unix:/run/app/statefun.sock", "/run/app/statefun.sock", None, 0),
        ("unix:///run/app/statefun.sock", "/run/app/statefun.sock", None, 0),
    ],
    ids=lambda value: repr(value) if isinstance(value, str) else None,
)
def test_listeners_are_read_as_gunicorn_binds_them(text: str, path: Optional[str], host: Optional[str], port: int) -> None:
    assert parse_listener(text) == Listener(text.strip(), path, host, port)


def test_a_relative_unix_path_is_taken_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_listener("unix:run/statefun.sock").path == str(tmp_path / "run" / "statefun.sock")


@pytest.mark.parametrize(
    "text, message",
    [
        ("fd://3", "runtime listener 'fd://3': a file descriptor cannot be matched; name the address it is bound to"),
        ("127.0.0.1:0", "runtime listener '127.0.0.1:0': port 0 cannot be matched (0 is a port chosen when binding); name the port"),
        ("host:http", "runtime listener 'host:http' is not HOST:PORT or unix:PATH: 'http' is not a valid port number."),
        ("", "a runtime listener is HOST:PORT or unix:PATH, got ''"),
        ("unix:", "runtime listener 'unix:' names no Unix socket path"),
    ],
)
def test_a_listener_that_cannot_be_matched_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_listener(text)
    assert str(info.value) == message


def test_a_string_holds_several_listeners_and_the_setting_is_named_in_errors() -> None:
    listeners = RuntimeListeners("127.0.0.1:9000, unix:/tmp/a.sock  [::1]:9001", setting="STATEFUN_RUNTIME_BIND")
    assert [item.text for item in listeners.listeners] == ["127.0.0.1:9000", "unix:/tmp/a.sock", "[::1]:9001"]
    with pytest.raises(ConfigurationError, match=r"^STATEFUN_RUNTIME_BIND: runtime listener 'fd://4': "):
        RuntimeListeners("127.0.0.1:9000,fd://4", setting="STATEFUN_RUNTIME_BIND")
    with pytest.raises(ConfigurationError, match=r"^runtime_listeners names no listener: give HOST:PORT or unix:PATH$"):
        RuntimeListeners([])
    with pytest.raises(ConfigurationError, match=r"^runtime_listeners names no listener"):
        RuntimeListeners(" , ")


def test_the_environment_variable_blank_is_unset() -> None:
    assert listeners_from_environment({}) is None
    assert listeners_from_environment({ENVIRONMENT_VARIABLE: "  "}) is None
    assert listeners_from_environment({ENVIRONMENT_VARIABLE: "0.0.0.0:9000"}) == "0.0.0.0:9000"


def test_an_argument_comes_before_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runtime_listeners_from(None, "runtime_listeners") is None
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "127.0.0.1:9000")
    from_environment = runtime_listeners_from(None, "runtime_listeners")
    assert from_environment is not None and from_environment.setting == ENVIRONMENT_VARIABLE
    assert [item.port for item in from_environment.listeners] == [9000]
    explicit = runtime_listeners_from(["127.0.0.1:9100"], "runtime_listeners")
    assert explicit is not None and [item.port for item in explicit.listeners] == [9100]


# -- matching real connections -------------------------------------------------------------


@contextlib.contextmanager
def accepted(bind: Any, connect: Any = None, family: int = socket.AF_INET) -> Iterator[socket.socket]:
    """The server's end of a connection accepted on a listener bound at ``bind`` (the
    client connects to ``connect``, by default to where the listener is)."""
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind(bind)
        listener.listen()
        with socket.socket(family, socket.SOCK_STREAM) as client:
            client.connect(connect if connect is not None else listener.getsockname())
            server_side, _ = listener.accept()
            with server_side:
                yield server_side


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def test_a_listener_on_every_address_admits_its_port_whatever_the_local_address() -> None:
    with socket.socket() as listener:  # the wildcard bind, as gunicorn would hold it
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as _client:
            server_side, _ = listener.accept()
            with server_side:
                assert server_side.getsockname() == ("127.0.0.1", port)  # the concrete address
                environ = {"gunicorn.socket": server_side}
                assert RuntimeListeners(f"0.0.0.0:{port}").admits(environ)
                assert RuntimeListeners(f":{port}").admits(environ)
                assert not RuntimeListeners(f"0.0.0.0:{port + 1 if port < 65535 else port - 1}").admits(environ)


def test_a_listener_on_one_address_admits_that_address_only() -> None:
    with accepted(("127.0.0.1", 0)) as public:
        port = port_of(public)
        with accepted(("127.0.0.2", port)) as internal:  # same port, another loopback address
            listeners = RuntimeListeners(f"127.0.0.2:{port}")
            assert listeners.admits({"gunicorn.socket": internal})
            assert not listeners.admits({"gunicorn.socket": public})


def test_a_host_name_is_resolved() -> None:
    with accepted(("127.0.0.1", 0)) as connection:
        port = port_of(connection)
        assert RuntimeListeners(f"localhost:{port}").admits({"gunicorn.socket": connection})
        assert not RuntimeListeners(f"localhost:{port + 1}").admits({"gunicorn.socket": connection})


def test_a_name_that_does_not_resolve_matches_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with accepted(("127.0.0.1", 0)) as connection:
        port = port_of(connection)
        listeners = RuntimeListeners(f"no-such-host.invalid:{port}")
        with caplog.at_level(logging.ERROR, logger="statefun_wsgi"):
            assert not listeners.admits({"gunicorn.socket": connection})
            assert not listeners.admits({"gunicorn.socket": connection})  # resolved once, logged once
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"runtime_listeners: cannot resolve 'no-such-host.invalid:{port}'"
    ]


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_and_ipv4_mapped_addresses() -> None:
    with accepted(("::1", 0), family=socket.AF_INET6) as connection:
        port = port_of(connection)
        assert RuntimeListeners(f"[::1]:{port}").admits({"gunicorn.socket": connection})
        assert not RuntimeListeners(f"127.0.0.1:{port}").admits({"gunicorn.socket": connection})
    with socket.socket(socket.AF_INET6) as listener:  # dual stack: an IPv4 client shows as ::ffff:127.0.0.1
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind(("::", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            server_side, _ = listener.accept()
            with server_side:
                assert server_side.getsockname()[0] == "::ffff:127.0.0.1"
                assert RuntimeListeners(f"127.0.0.1:{port}").admits({"gunicorn.socket": server_side})


def test_a_unix_socket_is_matched_by_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runtime.sock"
    with accepted(str(path), family=socket.AF_UNIX) as connection:
        environ = {"gunicorn.socket": connection}
        assert RuntimeListeners(f"unix:{path}").admits(environ)
        assert RuntimeListeners(f"unix://{path}").admits(environ)
        monkeypatch.chdir(tmp_path)
        assert RuntimeListeners("unix:runtime.sock").admits(environ)
        assert not RuntimeListeners(f"unix:{tmp_path / 'public.sock'}").admits(environ)
        assert not RuntimeListeners("127.0.0.1:9000").admits(environ)
    with accepted(("127.0.0.1", 0)) as tcp:
        assert not RuntimeListeners(f"unix:{path}").admits({"gunicorn.socket": tcp})


def test_werkzeugs_socket_counts_and_a_closed_one_is_no_listener() -> None:
    with accepted(("127.0.0.1", 0)) as connection:
        port = port_of(connection)
        assert RuntimeListeners(f"127.0.0.1:{port}").admits({"werkzeug.socket": connection})
    assert not RuntimeListeners(f"127.0.0.1:{port}").admits({"gunicorn.socket": connection})  # closed now


def test_no_socket_is_no_listener_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    listeners = RuntimeListeners("0.0.0.0:9000", setting="STATEFUN_RUNTIME_LISTENERS")
    forged = {"SERVER_PORT": "9000", "HTTP_HOST": "127.0.0.1:9000", "HTTP_X_FORWARDED_PORT": "9000"}
    with caplog.at_level(logging.ERROR, logger="statefun_wsgi"):
        assert not listeners.admits(forged)
        assert not listeners.admits(forged)
    (record,) = caplog.records
    assert record.getMessage() == (
        "STATEFUN_RUNTIME_LISTENERS is set, but the server gives no socket (gunicorn.socket / werkzeug.socket) to "
        "tell the listener a request came in on: the functions are answered on no listener of this server. Serve "
        "with gunicorn (gunicorn.socket) or werkzeug's development server (werkzeug.socket), or unset "
        "STATEFUN_RUNTIME_LISTENERS"
    )


# -- the WSGI middleware, in process ----------------------------------------------------------


def call(app: Any, environ: Dict[str, Any]) -> Tuple[str, bytes]:
    seen: List[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return seen[0], body


def batch_environ(sock: Optional[socket.socket], **extra: Any) -> Dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/statefun", "CONTENT_TYPE": "application/octet-stream",
        "CONTENT_LENGTH": str(len(BATCH)), "wsgi.input": io.BytesIO(BATCH), **extra,
    }
    if sock is not None:
        environ["gunicorn.socket"] = sock
    return environ


@pytest.fixture()
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "record"
    path.write_text("")
    monkeypatch.setenv("LISTENER_RECORD", str(path))
    return path


def test_the_middleware_runs_functions_only_on_the_runtimes_listener(record: Path) -> None:
    with accepted(("127.0.0.1", 0)) as public, accepted(("127.0.0.1", 0)) as internal:
        runtime = f"127.0.0.1:{port_of(internal)}"
        wsgi = StatefunMiddleware(listener_app.site, listener_app.functions, runtime_listeners=[runtime])
        bare = StatefunMiddleware(None, listener_app.functions, runtime_listeners=runtime)
        forged = {"HTTP_HOST": runtime, "SERVER_PORT": str(port_of(internal)), "HTTP_X_FORWARDED_PORT": str(port_of(internal))}
        assert call(wsgi, batch_environ(public, **forged)) == ("404 Not Found", b"site: 404 POST /statefun\n")
        assert call(bare, batch_environ(public, **forged)) == ("404 Not Found", b"Not Found\n")
        assert record.read_text() == ""
        status, _ = call(wsgi, batch_environ(internal))
        assert status == "200 OK"
        assert record.read_text() == "alice\n"


def test_the_middleware_reads_the_environment_when_built(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with accepted(("127.0.0.1", 0)) as public, accepted(("127.0.0.1", 0)) as internal:
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, f"127.0.0.1:{port_of(internal)}")
        wsgi = StatefunMiddleware(listener_app.site, listener_app.functions)
        monkeypatch.delenv(ENVIRONMENT_VARIABLE)  # read once, at construction
        assert call(wsgi, batch_environ(public))[0] == "404 Not Found"
        assert call(wsgi, batch_environ(internal))[0] == "200 OK"
        # An argument wins over the environment.
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, f"127.0.0.1:{port_of(internal)}")
        flipped = StatefunMiddleware(listener_app.site, listener_app.functions, runtime_listeners=f"127.0.0.1:{port_of(public)}")
        assert call(flipped, batch_environ(internal))[0] == "404 Not Found"
        assert call(flipped, batch_environ(public))[0] == "200 OK"
    assert record.read_text() == "alice\nalice\n"


def test_a_bad_listener_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"^runtime_listeners: runtime listener '127.0.0.1:0': port 0"):
        StatefunMiddleware(None, listener_app.functions, runtime_listeners=["127.0.0.1:0"])
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "fd://3")
    with pytest.raises(ConfigurationError, match=r"^STATEFUN_RUNTIME_BIND: runtime listener 'fd://3'"):
        StatefunMiddleware(None, listener_app.functions)


def test_no_listener_set_answers_everywhere_and_warns_once(record: Path, caplog: pytest.LogCaptureFixture) -> None:
    wsgi = StatefunMiddleware(listener_app.site, listener_app.functions)
    assert wsgi.runtime_listeners is None
    with caplog.at_level(logging.WARNING, logger="statefun_wsgi"):
        assert call(wsgi, batch_environ(None))[0] == "200 OK"
        assert call(wsgi, batch_environ(None))[0] == "200 OK"
        assert call(wsgi, {"REQUEST_METHOD": "GET", "PATH_INFO": "/"})[0] == "200 OK"
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith("the functions answer on every listener of this server: anyone who reaches")
    assert "(runtime_listeners, or STATEFUN_RUNTIME_BIND, which gunicorn.conf.py binds" in warning.getMessage()


def test_a_server_without_a_socket_runs_no_function(record: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The app object builds anywhere (tools import it outside a server); only the request shows
    the server has no socket: the app answers, the record stays empty, one error says why."""
    wsgi = StatefunMiddleware(listener_app.site, listener_app.functions, runtime_listeners="0.0.0.0:9000")
    forged = {"HTTP_HOST": "127.0.0.1:9000", "SERVER_PORT": "9000"}
    with caplog.at_level(logging.ERROR, logger="statefun_wsgi"):
        for _ in range(3):
            assert call(wsgi, batch_environ(None, **forged)) == ("404 Not Found", b"site: 404 POST /statefun\n")
    assert record.read_text() == ""
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["runtime_listeners is set"]


def test_werkzeugs_development_server_on_two_ports(record: Path) -> None:
    """werkzeug's own server gives ``werkzeug.socket``: two servers, one app, one runtime port."""
    from werkzeug.serving import make_server

    public = make_server("127.0.0.1", 0, listener_app.site)  # replaced below: the port first
    internal = make_server("127.0.0.1", 0, listener_app.site)
    wsgi = StatefunMiddleware(listener_app.site, listener_app.functions,
                              runtime_listeners=f"127.0.0.1:{internal.server_port}")
    public.app = internal.app = wsgi
    threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in (public, internal)]
    for thread in threads:
        thread.start()
    try:
        answers = {}
        for name, server in (("public", public), ("internal", internal)):
            connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
            connection.request("POST", "/statefun", body=BATCH, headers={
                "Content-Type": "application/octet-stream", "Host": f"127.0.0.1:{internal.server_port}",
                "X-Forwarded-Port": str(internal.server_port)})
            response = connection.getresponse()
            answers[name] = (response.status, response.read())
            connection.close()
    finally:
        for server in (public, internal):
            server.shutdown()
            server.server_close()
    assert answers["public"] == (404, b"site: 404 POST /statefun\n")
    assert answers["internal"][0] == 200
    assert record.read_text() == "alice\n"


# -- the Django middleware, in process ------------------------------------------------------


def django_settings(**values: Any) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(STATEFUN_FUNCTIONS="listener_app:functions", **values)


def django_request(sock: Optional[socket.socket], **meta: Any) -> Any:
    from django.conf import settings

    if not settings.configured:  # as tests/test_django.py: the example project's settings, once
        from examples.django_project import settings as example

        settings.configure(**{name: getattr(example, name) for name in dir(example) if name.isupper()})
        import django

        django.setup()
    from django.test import RequestFactory

    built = RequestFactory().post("/statefun", data=BATCH, content_type="application/octet-stream", **meta)
    if sock is not None:
        built.META["gunicorn.socket"] = sock
    return built


def rest_of_django(request: Any) -> Any:
    from django.http import HttpResponseNotFound

    return HttpResponseNotFound(b"django: not found\n")


def test_the_django_middleware_runs_functions_only_on_the_runtimes_listener(record: Path) -> None:
    from statefun_wsgi.django import StatefunMiddleware as DjangoStatefunMiddleware

    with accepted(("127.0.0.1", 0)) as public, accepted(("127.0.0.1", 0)) as internal:
        runtime = f"127.0.0.1:{port_of(internal)}"
        middleware = DjangoStatefunMiddleware(rest_of_django, django_settings(STATEFUN_RUNTIME_LISTENERS=[runtime]))
        forged = middleware(django_request(public, HTTP_HOST=runtime, SERVER_PORT=str(port_of(internal)),
                                           HTTP_X_FORWARDED_HOST=runtime))
        assert (forged.status_code, forged.content) == (404, b"django: not found\n")
        assert record.read_text() == ""
        answered = middleware(django_request(internal))
        assert answered.status_code == 200 and answered["Content-Type"] == "application/octet-stream"
        assert record.read_text() == "alice\n"


def test_the_django_setting_comes_before_the_environment(record: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from statefun_wsgi.django import StatefunMiddleware as DjangoStatefunMiddleware

    with accepted(("127.0.0.1", 0)) as public, accepted(("127.0.0.1", 0)) as internal:
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, f"127.0.0.1:{port_of(internal)}")
        from_environment = DjangoStatefunMiddleware(rest_of_django, django_settings())
        assert from_environment(django_request(public)).status_code == 404
        assert from_environment(django_request(internal)).status_code == 200
        from_setting = DjangoStatefunMiddleware(
            rest_of_django, django_settings(STATEFUN_RUNTIME_LISTENERS=f"127.0.0.1:{port_of(public)}"))
        assert from_setting(django_request(internal)).status_code == 404
        assert from_setting(django_request(public)).status_code == 200
    assert record.read_text() == "alice\nalice\n"


def test_a_bad_django_setting_is_improperly_configured() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from statefun_wsgi.django import StatefunMiddleware as DjangoStatefunMiddleware

    with pytest.raises(ImproperlyConfigured) as info:
        DjangoStatefunMiddleware(rest_of_django, django_settings(STATEFUN_RUNTIME_LISTENERS=["unix:"]))
    assert str(info.value) == "STATEFUN_RUNTIME_LISTENERS: runtime listener 'unix:' names no Unix socket path"


def test_django_under_asgi_runs_no_function(record: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Under ASGI there is no server socket: with a listener set, the functions path is Django's."""
    from statefun_wsgi.django import StatefunMiddleware as DjangoStatefunMiddleware

    middleware = DjangoStatefunMiddleware(rest_of_django, django_settings(STATEFUN_RUNTIME_LISTENERS="0.0.0.0:9000"))
    asgi_like = django_request(None)
    del asgi_like.META["wsgi.input"]
    with caplog.at_level(logging.ERROR, logger="statefun_wsgi"):
        assert middleware(asgi_like).status_code == 404
    assert record.read_text() == ""
    assert caplog.records[0].getMessage().startswith("STATEFUN_RUNTIME_LISTENERS is set, but the server gives no socket")
