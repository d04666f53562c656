"""Only the runtime's listener runs functions: real gunicorn, two listeners, a counter that records every call.

gunicorn runs with gunicorn.conf.py, bound where its variables say: the public listener
(``STATEFUN_BIND``) and the runtime's (``STATEFUN_RUNTIME_BIND``), both on 127.0.0.1. The
app's counter function (tests/listener_app.py) appends a line to a file every time it runs.

- On the public listener, batches to the functions path with every method, with ``Host``
  naming the runtime's port, ``X-Forwarded-*``, ``Forwarded`` and an absolute request
  target naming it, run no function (the file stays empty) and get the app's own answer:
  for a plain WSGI app, for ``StatefunMiddleware(None, ...)`` and for Django with our
  middleware first in MIDDLEWARE. The same requests on the runtime's listener are answered
  by the functions (a POST runs the counter; any other method gets the endpoint's 405).
- A Unix socket as the runtime's listener beside a public TCP one (reuse_port off).
- gunicorn.conf.py refuses binds it cannot honour, keeps the runtime's listener under --preload and
  SIGHUP, and warns when a --bind on the command line replaced its default runtime listener.
- Mutual TLS: a second gunicorn (``STATEFUN_SERVE=runtime`` with ``STATEFUN_RUNTIME_CERTFILE``,
  ``_KEYFILE``, ``_CA_CERTS``) serves the runtime's listener and answers only clients with
  a certificate signed by the CA; the public gunicorn (``STATEFUN_SERVE=public``) serves
  plain HTTP and runs no function. Certificates are made here with the openssl command.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import pytest
from builders import Mutation, decode_reply, request
from google.protobuf.wrappers_pb2 import Int64Value
from servers import REPO, Server, free_port, start

TIMEOUT = 10.0
METHODS = ["POST", "GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]
APPS = {"wsgi": "listener_app:wsgi", "bare": "listener_app:bare", "django": "listener_app:django_app()"}


def batch(identity: str) -> bytes:
    return request("test/counter", identity, state={"count": None}, messages=[Int64Value(value=1)])


def forgeries(runtime_port: int) -> Dict[str, Tuple[str, Dict[str, str]]]:
    """(request target, headers) that claim the runtime's listener every way a client can."""
    internal = f"127.0.0.1:{runtime_port}"
    return {
        "plain": ("/statefun", {}),
        "host": ("/statefun", {"Host": internal}),
        "host-name": ("/statefun", {"Host": f"localhost:{runtime_port}"}),
        "x-forwarded": ("/statefun", {
            "Host": internal, "X-Forwarded-Host": internal, "X-Forwarded-Port": str(runtime_port),
            "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Real-IP": "127.0.0.1",
            "X-Forwarded-Server": "127.0.0.1"}),
        "forwarded": ("/statefun", {"Forwarded": f'for=127.0.0.1;host="{internal}";proto=http'}),
        "absolute-target": (f"http://{internal}/statefun", {"Host": internal}),
    }


class Answer(NamedTuple):
    status: int
    headers: Dict[str, str]
    body: bytes


def send(connection: http.client.HTTPConnection, method: str, target: str, body: Optional[bytes],
         headers: Dict[str, str]) -> Answer:
    try:
        connection.request(method, target, body=body, headers={"Content-Type": "application/octet-stream", **headers})
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def tcp(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self.path)


def record_lines(path: Path) -> List[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- the apps' own answers ----------------------------------------------------------------------


def site_answer(method: str, answer: Answer) -> bool:
    body = b"" if method == "HEAD" else f"site: 404 {method} /statefun\n".encode()
    return answer.status == 404 and answer.body == body


def bare_answer(method: str, answer: Answer) -> bool:
    return answer.status == 404 and answer.body == (b"" if method == "HEAD" else b"Not Found\n")


def django_answer(method: str, answer: Answer) -> bool:
    # Django's own 404 page (DEBUG off), HTML, never the endpoint's octet-stream or text line.
    return (answer.status == 404 and answer.headers.get("content-type", "").startswith("text/html")
            and (method == "HEAD" or b"<h1>Not Found</h1>" in answer.body))


OWN_ANSWER: Dict[str, Callable[[str, Answer], bool]] = {"wsgi": site_answer, "bare": bare_answer, "django": django_answer}


# -- the servers ---------------------------------------------------------------------------------


class Served(NamedTuple):
    server: Server
    record: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Served]]:
    """Each app under gunicorn -c gunicorn.conf.py, public and runtime listener on 127.0.0.1."""
    directory = tmp_path_factory.mktemp("listeners")
    started: Dict[str, Served] = {}
    try:
        for name, app in APPS.items():
            record = directory / f"{name}.record"
            env = {"WEB_CONCURRENCY": "2", "STATEFUN_THREADS": "4", "STATEFUN_ACCESS_LOG": "off",
                   "STATEFUN_BIND": f"127.0.0.1:{free_port()}", "LISTENER_RECORD": str(record)}
            started[name] = Served(start(app, "-c", "gunicorn.conf.py", "--pythonpath", "tests", env=env, bind=False),
                                   record)
        for item in started.values():
            wait_answering(item.server.public_port)
            wait_answering(item.server.port)
        yield started
    finally:
        for item in started.values():
            item.server.terminate()
        for item in started.values():
            item.server.stop()


def wait_answering(port: int, context: Optional[ssl.SSLContext] = None, deadline_s: float = 30.0,
                   server: Optional[Server] = None) -> None:
    """Until GET / on ``port`` gets an HTTP answer (over TLS with ``context``)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if server is not None and server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        connection = (http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context) if context
                      else http.client.HTTPConnection("127.0.0.1", port, timeout=2))
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            connection.close()


@pytest.mark.parametrize("app", list(APPS))
def test_the_public_listener_runs_no_function_whatever_the_request_claims(served: Dict[str, Served], app: str) -> None:
    server, record = served[app]
    own_answer = OWN_ANSWER[app]
    wrong = []
    for forgery, (target, headers) in forgeries(server.port).items():
        for method in METHODS:
            answer = send(tcp(server.public_port), method, target, batch(f"{forgery}-{method}"), headers)
            if not own_answer(method, answer):
                wrong.append((forgery, method, answer))
    assert wrong == [], f"not the app's own answer on the public listener:\n{server.log()}"
    assert record_lines(record) == [], "a function ran for a request on the public listener"


@pytest.mark.parametrize("app", list(APPS))
def test_the_runtimes_listener_answers_the_same_requests(served: Dict[str, Served], app: str) -> None:
    server, record = served[app]
    before = len(record_lines(record))
    posted = []
    for forgery, (target, headers) in forgeries(server.port).items():
        for method in METHODS:
            identity = f"{forgery}-{method}"
            answer = send(tcp(server.port), method, target, batch(identity), headers)
            if method == "POST":
                assert answer.status == 200, (forgery, answer)
                assert answer.headers["content-type"] == "application/octet-stream"
                assert decode_reply(answer.body).mutations == {"count": Mutation.modify(Int64Value(value=1))}
                posted.append(identity)
            else:  # the endpoint's answer, not the app's: 405 with Allow: POST
                assert (answer.status, answer.headers.get("allow")) == (405, "POST"), (forgery, method, answer)
    assert sorted(record_lines(record)[before:]) == sorted(posted)


@pytest.mark.parametrize("app", ["wsgi", "django"])
def test_the_app_itself_answers_on_both_listeners(served: Dict[str, Served], app: str) -> None:
    server, _ = served[app]
    for port in (server.public_port, server.port):
        answer = send(tcp(port), "GET", "/", None, {})
        assert answer.status == 200
        assert answer.body in (b"site: 200 GET /\n", b"django: home\n")


def test_both_listeners_get_a_socket_per_worker(served: Dict[str, Served]) -> None:
    """reuse_port (gunicorn 24+) with two TCP binds: the file logs each, and the runtime's."""
    server = served["wsgi"].server
    log = server.log()
    assert "The StateFun runtime's listener: 127.0.0.1:%d (the only one where functions run)" % server.port in log
    from gunicorn import version_info

    if version_info >= (24,):
        for port in (server.public_port, server.port):
            assert f"Workers listen at: http://127.0.0.1:{port} (reuse_port: one socket per worker)" in log


def test_a_unix_socket_as_the_runtimes_listener(tmp_path: Path) -> None:
    path = tmp_path / "statefun.sock"
    record = tmp_path / "record"
    public = free_port()
    env = {"WEB_CONCURRENCY": "2", "STATEFUN_ACCESS_LOG": "off", "STATEFUN_BIND": f"127.0.0.1:{public}",
           "STATEFUN_RUNTIME_BIND": f"unix:{path}", "LISTENER_RECORD": str(record)}
    server = _start_unix(env)
    try:
        wait_answering(public, server=server)
        for forgery, (target, headers) in forgeries(9).items():
            assert site_answer("POST", send(tcp(public), "POST", target, batch(forgery), headers))
        assert record_lines(record) == []
        answer = send(UnixConnection(str(path)), "POST", "/statefun", batch("over-unix"), {})
        assert answer.status == 200
        assert record_lines(record) == ["over-unix"]
        log = server.log()  # reuse_port off (the file's on_starting): the arbiter binds both
        assert f"Listening at: http://127.0.0.1:{public},unix:{path} (" in log
        assert "Workers listen at" not in log
    finally:
        server.stop()


def _start_unix(env: Dict[str, str]) -> Server:
    """servers.start reads a TCP port from STATEFUN_RUNTIME_BIND; a Unix one is started here."""
    environment = {**os.environ, **env}
    command = [sys.executable, "-m", "gunicorn", "--graceful-timeout", "3", *_quiet(), "-c", "gunicorn.conf.py",
               "--pythonpath", "tests", "listener_app:wsgi"]
    return Server(command, environment, "127.0.0.1", int(env["STATEFUN_BIND"].rsplit(":", 1)[1]))


def _quiet() -> Tuple[str, ...]:
    from gunicorn.config import KNOWN_SETTINGS

    return ("--no-control-socket",) if "control_socket_disable" in {s.name for s in KNOWN_SETTINGS} else ()


# -- gunicorn.conf.py: binds it cannot honour ----------------------------------------------------


def run_gunicorn(env: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """gunicorn -c gunicorn.conf.py with ``args``, expected to stop on its own (it refuses)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STATEFUN_")}
    environment.update({"WEB_CONCURRENCY": "1", **env})
    command = [sys.executable, "-m", "gunicorn", *_quiet(), "-c", "gunicorn.conf.py", "--pythonpath", "tests",
               *args, "listener_app:wsgi"]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "env, args, message",
    [
        pytest.param({"STATEFUN_RUNTIME_BIND": "127.0.0.1:{runtime}"}, ("--bind", "127.0.0.1:{public}"),
                     "Error: statefun_wsgi.gunicorn_conf: the runtime's listener 127.0.0.1:{runtime} (STATEFUN_RUNTIME_BIND) is not "
                     "bound: --bind on the command line replaces these settings' binds; bind it there too, or set "
                     "STATEFUN_BIND instead", id="set-but-not-bound"),
        pytest.param({"STATEFUN_RUNTIME_BIND": "0.0.0.0:{public}", "STATEFUN_BIND": "127.0.0.1:{public}"}, (),
                     "Error: statefun_wsgi.gunicorn_conf: the runtime's listener 0.0.0.0:{public} and the public 127.0.0.1:{public} "
                     "share port {public}", id="shared-port"),
        pytest.param({"STATEFUN_SERVE": "public", "STATEFUN_RUNTIME_BIND": "127.0.0.1:{runtime}"},
                     ("--bind", "127.0.0.1:{public}", "--bind", "127.0.0.1:{runtime}"),
                     "Error: statefun_wsgi.gunicorn_conf: STATEFUN_SERVE=public, but the runtime's listener 127.0.0.1:{runtime} "
                     "is bound here", id="public-binds-runtime"),
        pytest.param({}, ("--bind", "127.0.0.1:{public}", "--preload"),
                     "Error: statefun_wsgi.gunicorn_conf: the runtime's listener 0.0.0.0:9000 (STATEFUN_RUNTIME_BIND) is not bound",
                     id="preloaded-default"),
    ],
)
def test_the_conf_file_refuses_binds_it_cannot_honour(env: Dict[str, str], args: Tuple[str, ...], message: str) -> None:
    ports = {"public": free_port(), "runtime": free_port()}
    result = run_gunicorn({k: v.format(**ports) for k, v in env.items()}, *(a.format(**ports) for a in args))
    assert result.returncode == 1, result.stderr
    assert message.format(**ports) in result.stderr


def test_a_command_line_bind_without_the_runtimes_listener_answers_everywhere_and_warns(tmp_path: Path) -> None:
    """Only where STATEFUN_RUNTIME_BIND was not set: the file's default gives way to --bind, loudly."""
    record = tmp_path / "record"
    server = start("listener_app:wsgi", "-c", "gunicorn.conf.py", "--pythonpath", "tests",
                   env={"WEB_CONCURRENCY": "1", "LISTENER_RECORD": str(record)})
    try:
        server.wait_ready()
        assert send(tcp(server.port), "POST", "/statefun", batch("anyone"), {}).status == 200
        assert record_lines(record) == ["anyone"]
        log = server.wait_for_log("the functions answer on every listener of this server")
        assert ("The StateFun runtime's listener 0.0.0.0:9000 is not bound (--bind replaced "
                "statefun_wsgi.gunicorn_conf's binds): the functions answer on every listener.") in log
    finally:
        server.stop()


#: The repository's file, from the repository; the package's module, from a folder holding
#: nothing of the repository but a stray gunicorn.conf.py that must not be read.
CONFIGS = {"file": ("gunicorn.conf.py", None), "package": ("python:statefun_wsgi.gunicorn_conf", "elsewhere")}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("case", ["preload", "reload", "reload-after-command-line-bind"])
def test_preloading_and_reloading_keep_the_runtimes_listener(tmp_path: Path, case: str, config: str) -> None:
    """--preload builds the app in the master, after the settings set STATEFUN_RUNTIME_BIND; on
    SIGHUP gunicorn reads its configuration again and on_reload checks the binds before new workers
    load the app (which, with a --bind that replaced the settings', answer everywhere again).
    The same with ``-c python:statefun_wsgi.gunicorn_conf`` (a module, imported once) outside
    the repository, as whoever installed the package runs it."""
    import signal

    location, folder = CONFIGS[config]
    cwd = REPO
    if folder is not None:
        cwd = tmp_path / folder
        cwd.mkdir()
        (cwd / "gunicorn.conf.py").write_text('raise SystemExit("a stray gunicorn.conf.py was read")\n')
    flags = ("-c", location, "--pythonpath", str(REPO / "tests"))
    record = tmp_path / "record"
    env = {"WEB_CONCURRENCY": "1", "LISTENER_RECORD": str(record)}
    if case == "reload-after-command-line-bind":
        server = start("listener_app:wsgi", *flags, env=env, cwd=cwd)
    else:
        args = ("--preload",) if case == "preload" else ()
        server = start("listener_app:wsgi", *flags, *args,
                       env={**env, "STATEFUN_BIND": f"127.0.0.1:{free_port()}"}, bind=False, cwd=cwd)
    try:
        server.wait_ready()
        if case != "preload":
            server.wait_for_log("Booting worker")
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("Booting worker", count=2)
            server.wait_for_log("Worker exiting")  # the old worker left: the new one serves
            server.wait_ready()
        if case == "reload-after-command-line-bind":
            assert send(tcp(server.port), "POST", "/statefun", batch("anyone"), {}).status == 200
            assert server.log().count("The StateFun runtime's listener 0.0.0.0:9000 is not bound") == 2
            assert record_lines(record) == ["anyone"]
            return
        assert site_answer("POST", send(tcp(server.public_port), "POST", "/statefun", batch("public"),
                                        {"Host": f"127.0.0.1:{server.port}"}))
        assert send(tcp(server.port), "POST", "/statefun", batch("runtime"), {}).status == 200
        assert record_lines(record) == ["runtime"], server.log()
    finally:
        server.stop()


# -- mutual TLS on the runtime's listener ----------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


#: What a CA certificate needs for Python 3.13's strict verification (VERIFY_X509_STRICT, set by
#: ssl.create_default_context, on gunicorn's side too): its key usage, critical CA constraints.
CA_EXTENSIONS = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_certificates(directory: Path) -> None:
    """A CA; a server certificate for 127.0.0.1 and a client certificate it signed; a client
    certificate signed by another CA. EC P-256 keys, PKCS#8 (what the runtime's client_key reads)."""
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    (directory / "client.ext").write_text(
        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *key, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=statefun-wsgi test {ca}", *CA_EXTENSIONS, cwd=directory)
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("stranger", "other-ca", "client.ext")):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", ext, cwd=directory)


def client_context(directory: Path, certificate: Optional[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(directory / "ca.pem"))
    if certificate is not None:
        context.load_cert_chain(str(directory / f"{certificate}.pem"), str(directory / f"{certificate}.key"))
    return context


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_mutual_tls_on_the_runtimes_listener_only(tmp_path: Path) -> None:
    make_certificates(tmp_path)
    record = tmp_path / "record"
    public_port, runtime_port = free_port(), free_port()
    common = {"WEB_CONCURRENCY": "1", "STATEFUN_ACCESS_LOG": "off", "LISTENER_RECORD": str(record),
              "STATEFUN_BIND": f"127.0.0.1:{public_port}", "STATEFUN_RUNTIME_BIND": f"127.0.0.1:{runtime_port}"}
    tls = {"STATEFUN_RUNTIME_CERTFILE": str(tmp_path / "server.pem"), "STATEFUN_RUNTIME_KEYFILE": str(tmp_path / "server.key"),
           "STATEFUN_RUNTIME_CA_CERTS": str(tmp_path / "ca.pem")}
    args = ("-c", "gunicorn.conf.py", "--pythonpath", "tests")
    public = start("listener_app:wsgi", *args, env={**common, "STATEFUN_SERVE": "public"}, bind=False)
    runtime = start("listener_app:wsgi", *args, env={**common, **tls, "STATEFUN_SERVE": "runtime"}, bind=False)
    try:
        wait_answering(public_port, server=public)
        wait_answering(runtime_port, client_context(tmp_path, "client"), server=runtime)

        # The public gunicorn: plain HTTP, the app's own answers, no function.
        for forgery, (target, headers) in forgeries(runtime_port).items():
            for method in METHODS:
                answer = send(tcp(public_port), method, target, batch(forgery), headers)
                assert site_answer(method, answer), (forgery, method, answer)
        assert "another gunicorn's: no functions here" in public.log()

        # The runtime's: no plain HTTP, no client without a certificate or with one from another CA.
        # (Measured here: RemoteDisconnected; TLSV13_ALERT_CERTIFICATE_REQUIRED; TLSV1_ALERT_UNKNOWN_CA.)
        refused = {
            "plain-http": (lambda: tcp(runtime_port), (http.client.HTTPException, ConnectionError)),
            "no-certificate": (lambda: http.client.HTTPSConnection(
                "127.0.0.1", runtime_port, timeout=TIMEOUT, context=client_context(tmp_path, None)),
                (ssl.SSLError, ConnectionError)),
            "another-ca": (lambda: http.client.HTTPSConnection(
                "127.0.0.1", runtime_port, timeout=TIMEOUT, context=client_context(tmp_path, "stranger")),
                (ssl.SSLError, ConnectionError)),
        }
        for name, (connect, errors) in refused.items():
            with pytest.raises(errors):
                answer = send(connect(), "POST", "/statefun", batch(name), {})
                pytest.fail(f"{name}: answered {answer.status}")  # pragma: no cover
        assert record_lines(record) == []

        # A client with a certificate the CA signed: the functions answer.
        connection = http.client.HTTPSConnection("127.0.0.1", runtime_port, timeout=TIMEOUT,
                                                 context=client_context(tmp_path, "client"))
        answer = send(connection, "POST", "/statefun", batch("runtime"), {})
        assert answer.status == 200, runtime.log()
        assert decode_reply(answer.body).mutations == {"count": Mutation.modify(Int64Value(value=1))}
        assert record_lines(record) == ["runtime"]
    finally:
        public.terminate()
        runtime.terminate()
        public.stop()
        runtime.stop()


# -- gunicorn.conf.py's settings, read as gunicorn reads them ------------------------------------------

CONF_VARIABLES = ("PORT", "STATEFUN_BIND", "STATEFUN_RUNTIME_BIND", "STATEFUN_SERVE", "STATEFUN_RUNTIME_CERTFILE",
                  "STATEFUN_RUNTIME_KEYFILE", "STATEFUN_RUNTIME_CA_CERTS")


def conf(monkeypatch: pytest.MonkeyPatch, **env: str) -> Dict[str, object]:
    """gunicorn.conf.py's namespace with exactly ``env`` among its variables (restored after)."""
    import runpy

    for name in CONF_VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so that what the file sets is undone too
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(REPO / "gunicorn.conf.py"))


def test_the_conf_file_binds_both_listeners_and_tells_the_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = conf(monkeypatch)
    assert settings["bind"] == ["0.0.0.0:8000", "0.0.0.0:9000"]
    assert os.environ["STATEFUN_RUNTIME_BIND"] == "0.0.0.0:9000"
    assert "certfile" not in settings
    settings = conf(monkeypatch, PORT="5000", STATEFUN_RUNTIME_BIND="10.0.0.5:9000, unix:/run/app/statefun.sock")
    assert settings["bind"] == ["0.0.0.0:5000", "10.0.0.5:9000", "unix:/run/app/statefun.sock"]
    assert os.environ["STATEFUN_RUNTIME_BIND"] == "10.0.0.5:9000,unix:/run/app/statefun.sock"
    assert conf(monkeypatch, STATEFUN_SERVE="public")["bind"] == ["0.0.0.0:8000"]
    assert conf(monkeypatch, STATEFUN_SERVE="Runtime")["bind"] == ["0.0.0.0:9000"]
    assert conf(monkeypatch, STATEFUN_BIND="")["bind"] == ["0.0.0.0:9000"]
    # No runtime listener: the public one only, and the middleware answers everywhere (warned).
    assert conf(monkeypatch, STATEFUN_RUNTIME_BIND="")["bind"] == ["0.0.0.0:8000"]
    assert os.environ["STATEFUN_RUNTIME_BIND"] == ""


def test_the_conf_file_takes_mutual_tls_for_a_runtime_only_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    tls = {"STATEFUN_RUNTIME_CERTFILE": "/certs/server.pem", "STATEFUN_RUNTIME_KEYFILE": "/certs/server.key",
           "STATEFUN_RUNTIME_CA_CERTS": "/certs/ca.pem"}
    settings = conf(monkeypatch, STATEFUN_SERVE="runtime", **tls)
    assert (settings["certfile"], settings["keyfile"], settings["ca_certs"]) == (
        "/certs/server.pem", "/certs/server.key", "/certs/ca.pem")
    assert settings["cert_reqs"] == ssl.CERT_REQUIRED
    assert settings["bind"] == ["0.0.0.0:9000"]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"STATEFUN_SERVE": "all"}, "STATEFUN_SERVE='all': expected both, public or runtime"),
        ({"STATEFUN_SERVE": "runtime", "STATEFUN_RUNTIME_BIND": ""},
         "STATEFUN_SERVE=runtime needs STATEFUN_RUNTIME_BIND: the listener the runtime calls"),
        ({"STATEFUN_SERVE": "public", "STATEFUN_RUNTIME_BIND": " "},
         "STATEFUN_SERVE=public needs STATEFUN_RUNTIME_BIND: the listener the runtime calls"),
        ({"STATEFUN_BIND": "", "STATEFUN_RUNTIME_BIND": ""},
         "STATEFUN_BIND and STATEFUN_RUNTIME_BIND are both empty: nothing to listen on"),
        ({"STATEFUN_RUNTIME_CERTFILE": "/s.pem", "STATEFUN_RUNTIME_KEYFILE": "/s.key", "STATEFUN_RUNTIME_CA_CERTS": "/ca.pem"},
         "STATEFUN_RUNTIME_CERTFILE/_KEYFILE/_CA_CERTS: gunicorn's TLS covers every listener it binds, the public one "
         "too; serve the runtime's listener from a gunicorn of its own (STATEFUN_SERVE=runtime)"),
        ({"STATEFUN_SERVE": "runtime", "STATEFUN_RUNTIME_CERTFILE": "/s.pem"},
         "mutual TLS on the runtime's listener needs a certificate, its key and a CA: STATEFUN_RUNTIME_KEYFILE, "
         "STATEFUN_RUNTIME_CA_CERTS unset"),
    ],
    ids=["serve-unknown", "runtime-without-listener", "public-without-listener", "nothing", "tls-on-both",
         "tls-partial"],
)
def test_the_conf_file_refuses_what_it_cannot_do(monkeypatch: pytest.MonkeyPatch, env: Dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        conf(monkeypatch, **env)
    assert str(info.value) == message


def test_the_repositorys_file_gives_the_packages_settings_and_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn.conf.py is thin: what gunicorn reads from it is statefun_wsgi.gunicorn_conf's,
    which a file of one's own gets with ``from statefun_wsgi.gunicorn_conf import *``."""
    from gunicorn.config import KNOWN_SETTINGS

    known = {setting.name for setting in KNOWN_SETTINGS}
    from_file = {name: value for name, value in conf(monkeypatch, PORT="5000").items() if name in known}
    own: Dict[str, object] = {}
    exec("from statefun_wsgi.gunicorn_conf import *", own)  # noqa: S102 - a user's config file, in short
    from_package = {name: value for name, value in own.items() if name in known}
    hooks = {"on_starting", "on_reload", "when_ready", "post_fork", "child_exit", "on_exit"}
    assert hooks <= set(from_file) and {"bind", "workers", "worker_class", "threads", "keepalive", "timeout",
                                         "reuse_port", "accesslog"} <= set(from_file)
    assert set(from_file) == set(from_package)
    for name, value in from_file.items():
        if name in hooks:
            assert (value.__module__, value.__qualname__) == ("statefun_wsgi.gunicorn_conf", name)  # type: ignore[attr-defined]
        else:
            assert value == from_package[name], name
    assert from_file["bind"] == ["0.0.0.0:5000", "0.0.0.0:9000"]
    assert len((REPO / "gunicorn.conf.py").read_text().splitlines()) < 30
