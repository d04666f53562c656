"""statefun_wsgi.single_write: a reply leaves a gunicorn worker in one write, so a
worker killed mid-reply leaves the runtime the whole reply, never headers alone.

Real gunicorn, real workers: tests/sendall_probe.py logs every ``sendall`` of a worker
and, once the test arms it, SIGKILLs the worker right after the first write of a 200
reply (the worst moment a kill can hit). ``tests/bare_app.py``, an app with nothing of
ours in it, shows what gunicorn does by itself: two writes, and a cut body when killed,
the reply that fails a Flink job ("unexpected end of stream" is not retried).
"""

from __future__ import annotations

import http.client
import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Tuple

import pytest
from builders import decode_reply, request
from servers import Server, gunicorn

from examples.greeter.functions import functions
from examples.greeter.messages_pb2 import GreetRequest
from statefun_wsgi import RequestReplyHandler, single_write

TIMEOUT = 10.0
BATCH = request("example/greeter", "alice", state={"seen_count": None}, messages=[GreetRequest(name="alice")])


class Case(NamedTuple):
    app: str
    args: Tuple[str, ...]


CASES: Dict[str, Case] = {
    "plain-wsgi-gthread": Case("app:wsgi", ("--worker-class", "gthread", "--threads", "4")),
    "plain-wsgi-sync": Case("app:wsgi", ("--worker-class", "sync", "--threads", "1")),
    "django-middleware": Case("examples.django_project.wsgi:django_application",
                              ("--worker-class", "gthread", "--threads", "4")),
}
# gunicorn by itself (no statefun-wsgi in the process): the failure being fixed.
BARE = Case("tests.bare_app:app", ("--worker-class", "gthread", "--threads", "4"))


@pytest.fixture
def probe_log(tmp_path: Path) -> Path:
    return tmp_path / "sendall.log"


def serve(case: Case, probe_log: Path) -> Iterator[Server]:
    """gunicorn with the probe; ``arm(server)`` makes its worker die after its next 200's first write."""
    env = {"PROBE_LOG": str(probe_log), "PROBE_KILL_FILE": str(probe_log.with_suffix(".kill"))}
    # One worker, so the write log and the kill are about the worker that served us.
    return gunicorn(case.app, "-c", "tests/sendall_probe.py", "--workers", "1", *case.args, env=env,
                    ready_path="/nothing-here")


def arm(probe_log: Path) -> None:
    probe_log.with_suffix(".kill").touch()


def post(server: Server, path: str, body: bytes) -> Tuple[http.client.HTTPResponse, bytes]:
    connection = server.connection(TIMEOUT)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        return response, response.read()
    finally:
        connection.close()


def writes_starting_a_200(probe_log: Path) -> List[int]:
    """The length of each logged ``sendall`` that begins a 200 reply."""
    lengths = []
    for line in probe_log.read_text().splitlines():
        _pid, length, head = line.split(" ", 2)
        if head.startswith("b'HTTP/1.1 200"):
            lengths.append(int(length))
    return lengths


def reply_size(response: http.client.HTTPResponse, body: bytes) -> int:
    """Bytes on the wire for a reply: status line, headers, blank line and body."""
    head = f"HTTP/1.1 {response.status} {response.reason}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in response.getheaders()) + "\r\n"
    return len(head.encode("latin-1")) + len(body)


@pytest.mark.parametrize("name", list(CASES))
def test_a_reply_is_one_write(name: str, probe_log: Path) -> None:
    with serve(CASES[name], probe_log) as server:
        probe_log.write_text("")  # what the readiness probe wrote is not about our batch
        response, body = post(server, "/statefun", BATCH)
    assert response.status == 200, body
    assert body == RequestReplyHandler(functions)(BATCH)
    assert writes_starting_a_200(probe_log) == [reply_size(response, body)]


@pytest.mark.parametrize("name", list(CASES))
def test_a_worker_killed_mid_reply_leaves_the_whole_reply(name: str, probe_log: Path) -> None:
    with serve(CASES[name], probe_log) as server:
        arm(probe_log)
        probe_log.write_text("")
        response, body = post(server, "/statefun", BATCH)
        server.wait_for_log("was sent SIGKILL")  # the worker that answered is dead
    assert response.status == 200
    assert len(body) == int(response.getheader("Content-Length"))
    assert decode_reply(body) == decode_reply(RequestReplyHandler(functions)(BATCH))
    assert len(writes_starting_a_200(probe_log)) == 1


def test_gunicorn_by_itself_writes_twice_and_a_kill_cuts_the_body(probe_log: Path) -> None:
    """The control: without statefun-wsgi, the headers go first and the body never comes."""
    with serve(BARE, probe_log) as server:
        probe_log.write_text("")
        response, body = post(server, "/", b"x")
        assert response.status == 200
        assert writes_starting_a_200(probe_log) == [reply_size(response, body) - len(body)]

        arm(probe_log)
        with pytest.raises(http.client.IncompleteRead):
            post(server, "/", b"x")
        server.wait_for_log("was sent SIGKILL")


def test_the_app_pages_are_one_write_too(probe_log: Path) -> None:
    """install() changes gunicorn's writer for the whole process: the app's own pages
    keep their bytes and lose a system call."""
    with serve(CASES["plain-wsgi-gthread"], probe_log) as server:
        probe_log.write_text("")
        connection = server.connection(TIMEOUT)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
    assert response.status == 200 and body.startswith(b"statefun-wsgi greeter example")
    assert writes_starting_a_200(probe_log) == [reply_size(response, body)]


# -- in process: gunicorn's own Response class, a socket that records its writes ---------


class RecordingSocket:
    def __init__(self) -> None:
        self.writes: List[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def gunicorn_response(method: str = "POST"):  # type: ignore[no-untyped-def]
    """A real gunicorn Response for a parsed request, writing into a RecordingSocket."""
    import io

    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser

    raw = f"{method} /statefun HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()

    class Source:
        def __init__(self) -> None:
            self.stream = io.BytesIO(raw)

        def recv(self, size: int) -> bytes:
            return self.stream.read(size)

    config = Config()
    request_ = next(iter(RequestParser(config, Source(), ("127.0.0.1", 1))))
    sock = RecordingSocket()
    response, _ = wsgi.create(request_, sock, ("127.0.0.1", 1), ("127.0.0.1", 8000), config)
    return response, sock


@pytest.fixture
def installed() -> Iterator[None]:
    from gunicorn.http import wsgi

    original = wsgi.Response
    assert single_write.install()
    try:
        yield
    finally:
        wsgi.Response = original


def test_install_is_idempotent(installed: None) -> None:
    from gunicorn.http import wsgi

    first = wsgi.Response
    assert single_write.install() and single_write.install()
    assert wsgi.Response is first and single_write.is_installed()


@pytest.mark.parametrize(("chunks", "writes"), [
    pytest.param([b"body"], 1, id="one-chunk"),
    pytest.param([b"first", b"second"], 2, id="later-chunks-follow"),
    pytest.param([], 1, id="no-body"),
])
def test_headers_and_the_first_chunk_go_together(installed: None, chunks: List[bytes], writes: int) -> None:
    response, sock = gunicorn_response()
    size = sum(map(len, chunks))
    response.start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    for chunk in chunks:
        response.write(chunk)
    response.close()
    assert len(sock.writes) == writes
    wire = b"".join(sock.writes)
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and wire.endswith(b"\r\n\r\n" + b"".join(chunks))


@pytest.mark.parametrize("method", ["POST", "HEAD"])
def test_the_bytes_are_gunicorns_own(method: str) -> None:
    """The same bytes as gunicorn's own writer (HEAD included: whatever this gunicorn
    version does with a HEAD body), only in fewer writes."""
    from gunicorn.http import wsgi

    def written() -> Tuple[bytes, int]:
        """The bytes written (the Date header's value left out), and in how many writes."""
        response, sock = gunicorn_response(method)
        response.start_response("200 OK", [("Content-Length", "4")])
        response.write(b"body")
        response.close()
        return re.sub(rb"Date: [^\r]*", b"Date: -", b"".join(sock.writes)), len(sock.writes)

    original = wsgi.Response
    own, _ = written()
    assert single_write.install()
    try:
        ours, writes = written()
    finally:
        wsgi.Response = original
    assert ours == own
    assert writes == 1


def test_a_write_that_fails_sends_nothing(installed: None) -> None:
    response, sock = gunicorn_response()
    response.start_response("200 OK", [("Content-Length", "4")])
    with pytest.raises(TypeError):
        response.write("not bytes")  # type: ignore[arg-type]
    assert sock.writes == []


def test_install_without_gunicorn_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gunicorn.http", None)  # import gunicorn.http fails
    monkeypatch.setitem(sys.modules, "gunicorn.http.wsgi", None)
    assert single_write.install() is False
    assert single_write.is_installed() is False
