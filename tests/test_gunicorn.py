"""Real gunicorn, real HTTP: every app served as a user would start it.

Each server is a gunicorn subprocess on a free port (tests/servers.py), started
the way the docs say (``gunicorn -w 4 app:wsgi``, ``gunicorn -c gunicorn.conf.py
...``, each framework example), plus explicit sync and gthread workers. Replies are compared byte for byte with what the
endpoint answers in-process for the same request, so nothing between the server
and the runtime (headers, status, body) may differ.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import io
import os
import re
import socket
import sys
import threading
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

import pytest
from builders import decode_reply, request
from gunicorn import version_info as gunicorn_version
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value
from servers import Server, free_port, start

from examples.greeter.functions import functions
from examples.greeter.messages_pb2 import FormatRequest, GreetRequest, Reminder
from statefun_wsgi import Endpoint, RequestReplyHandler
from statefun_wsgi.endpoint import DEFAULT_MAX_BODY_SIZE

OCTET = "application/octet-stream"
MIB = 1024 * 1024
TIMEOUT = 10.0  # every socket operation of the tests


class Spec(NamedTuple):
    app: str
    args: Tuple[str, ...]
    conf_file: bool = False  # -c gunicorn.conf.py, bound through STATEFUN_BIND
    threaded: bool = True  # gthread (keeps connections alive), as gunicorn.conf.py sets


# From the repository root gunicorn also reads ./gunicorn.conf.py by itself, so the
# commands without -c get its settings too (gthread); command-line flags override it.
SERVERS: Dict[str, Spec] = {
    "as-typed": Spec("app:wsgi", ("-w", "4")),  # the README's command
    # gunicorn turns sync into gthread when threads > 1, and the conf file sets threads.
    "sync": Spec("app:wsgi", ("-w", "4", "--worker-class", "sync", "--threads", "1"), threaded=False),
    "gthread": Spec("app:wsgi", ("--worker-class", "gthread", "--workers", "2", "--threads", "8")),
    "conf-file": Spec("app:wsgi", ("-c", "gunicorn.conf.py"), conf_file=True),
    "flask": Spec("examples.flask_app:app", ("-c", "gunicorn.conf.py"), conf_file=True),
    "pyramid": Spec("examples.pyramid_app:app", ()),
    "django-wsgi-wrapper": Spec("examples.django_project.wsgi:application", ()),
    "django-middleware": Spec("examples.django_project.wsgi:django_application", ("-c", "gunicorn.conf.py"),
                              conf_file=True),
}


@pytest.fixture(scope="module")
def servers() -> Iterator[Dict[str, Server]]:
    """All the servers, booted side by side (they are slow to start one by one)."""
    started: Dict[str, Server] = {}
    try:
        for name, spec in SERVERS.items():
            # The documented overrides of gunicorn.conf.py, small enough for any test box
            # (its default is one worker per core).
            env = {"WEB_CONCURRENCY": "2", "STATEFUN_THREADS": "8"}
            if spec.conf_file:
                env["STATEFUN_BIND"] = f"127.0.0.1:{free_port()}"
            if name == "conf-file":  # the worker's pid first: which worker served a request
                env["STATEFUN_ACCESS_LOG_FORMAT"] = 'pid=%(p)s %(h)s "%(r)s" %(s)s %(B)s %(D)sus'
            started[name] = start(spec.app, *spec.args, env=env, bind=not spec.conf_file)
        for server in started.values():
            server.wait_ready()
        yield started
    finally:
        for server in started.values():
            server.terminate()  # all at once: each takes a moment to wind down
        for server in started.values():
            server.stop()


class Answer(NamedTuple):
    status: int
    headers: Dict[str, str]
    body: bytes
    will_close: bool


def exchange(connection: http.client.HTTPConnection, body: Optional[bytes], *, method: str = "POST",
             content_type: Optional[str] = OCTET, chunks: Optional[List[bytes]] = None) -> Answer:
    headers = {} if content_type is None else {"Content-Type": content_type}
    if chunks is not None:
        headers["Transfer-Encoding"] = "chunked"
        connection.request(method, "/statefun", body=iter(chunks), headers=headers, encode_chunked=True)
    else:
        connection.request(method, "/statefun", body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data, response.will_close)


def post(server: Server, body: Optional[bytes], **kwargs) -> Answer:
    connection = server.connection(TIMEOUT)
    try:
        return exchange(connection, body, **kwargs)
    finally:
        connection.close()


def expected(body: bytes, method: str = "POST", content_type: Optional[str] = OCTET) -> Tuple[int, dict, bytes]:
    """What the endpoint answers in-process: the reference for every byte on the wire."""
    reply = Endpoint(functions).respond(method, content_type, str(len(body)), io.BytesIO(body))
    if reply.status == 200:
        assert reply.body == RequestReplyHandler(functions)(body)
    return reply.status, {name.lower(): value for name, value in reply.headers}, reply.body


def assert_same(answer: Answer, body: bytes, method: str = "POST", content_type: Optional[str] = OCTET) -> None:
    status, headers, reply = expected(body, method, content_type)
    assert answer.status == status, answer.body
    assert answer.body == reply
    for name, value in headers.items():  # Content-Type, Content-Length, and Allow on a 405
        assert answer.headers.get(name) == value, (name, answer.headers)


def blob(size: int) -> BytesValue:
    """A state value of ``size`` bytes that no function reads (a serialized Any, as the runtime sends)."""
    return BytesValue(value=b"x" * size)


def greet(name: str, seen: int = 0, **state: object) -> bytes:
    count = Int64Value(value=seen) if seen else None
    return request("example/greeter", name, state={"seen_count": count, **state}, messages=[GreetRequest(name=name)])


CASES = [
    # (body, method, content type)
    pytest.param(greet("alice"), "POST", OCTET, id="first-visit"),
    pytest.param(greet("bob", seen=6, padding=blob(3 * MIB)), "POST", OCTET, id="3MB-state"),
    pytest.param(request("example/formatter", "carol", messages=[FormatRequest(name="carol", visits=2)],
                         caller=("example/greeter", "carol")), "POST", "application/x-protobuf", id="formatter"),
    pytest.param(request("example/greeter", "dave", state={"seen_count": Int64Value(value=1)},
                         messages=[Reminder(name="dave"), GreetRequest(name="dave")]), "POST", None,
                 id="two-invocations-no-content-type"),
    pytest.param(request("example/nobody", "x", messages=[GreetRequest()]), "POST", OCTET, id="404-unknown-function"),
    pytest.param(b"\x08\x96\x01 not a batch", "POST", OCTET, id="400-garbage"),
    pytest.param(request("example/greeter", "x", messages=[GreetRequest()]), "POST", OCTET,
                 id="500-state-not-sent"),
    pytest.param(greet("alice"), "POST", "text/plain", id="415-text-plain"),
    pytest.param(greet("alice"), "PUT", OCTET, id="405-put"),
]


@pytest.mark.parametrize("name", list(SERVERS))
@pytest.mark.parametrize(("body", "method", "content_type"), CASES)
def test_replies_byte_for_byte(servers: Dict[str, Server], name: str, body: bytes, method: str,
                               content_type: Optional[str]) -> None:
    answer = post(servers[name], body, method=method, content_type=content_type)
    assert_same(answer, body, method, content_type)


@pytest.mark.parametrize("name", list(SERVERS))
def test_the_apps_own_page_is_served_by_the_same_process(servers: Dict[str, Server], name: str) -> None:
    connection = servers[name].connection(TIMEOUT)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        page = response.read()
    finally:
        connection.close()
    assert response.status == 200
    assert b"example/greeter" in page


@pytest.mark.parametrize("name", list(SERVERS))
def test_a_chunked_body_is_accepted(servers: Dict[str, Server], name: str) -> None:
    body = greet("erin", seen=2, padding=blob(200_000))
    chunks = [body[i : i + 7919] for i in range(0, len(body), 7919)]
    answer = post(servers[name], None, chunks=chunks)
    assert_same(answer, body)
    assert decode_reply(answer.body).mutations["seen_count"].message == Int64Value(value=3)


@pytest.mark.parametrize("name", ["sync", "gthread", "django-middleware"])
def test_an_oversized_chunked_body_is_413(servers: Dict[str, Server], name: str) -> None:
    # Just past the default limit: the server reads limit + 1 bytes, answers, and
    # drains the short rest, so the client reads the 413 rather than a reset.
    size = DEFAULT_MAX_BODY_SIZE + 1000
    chunk = b"\0" * MIB
    chunks = [chunk] * (size // MIB) + [b"\0" * (size % MIB)]
    answer = post(servers[name], None, chunks=chunks)
    assert answer.status == 413, answer.body
    limit = DEFAULT_MAX_BODY_SIZE
    assert answer.body == (f"413 Request Entity Too Large: the body is larger than the limit of {limit} bytes; raise it "
                           "with max_body_size (StatefunMiddleware, Endpoint) or STATEFUN_MAX_BODY_SIZE (the Django "
                           "middleware's setting), above your largest state plus a batch of messages\n").encode()


@pytest.mark.parametrize("name", ["sync", "conf-file", "django-middleware"])
def test_an_oversized_content_length_is_413_before_the_body_is_sent(servers: Dict[str, Server], name: str) -> None:
    connection = servers[name].connection(TIMEOUT)
    try:
        connection.putrequest("POST", "/statefun")
        connection.putheader("Content-Type", OCTET)
        connection.putheader("Content-Length", str(DEFAULT_MAX_BODY_SIZE + 1))
        connection.endheaders()  # and no body: a server that waited for it would time out
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 413
    assert body.startswith(f"413 Request Entity Too Large: the body of {DEFAULT_MAX_BODY_SIZE + 1} bytes".encode())


@pytest.mark.parametrize("name", [name for name, spec in SERVERS.items() if spec.threaded])
def test_gthread_keeps_the_connection_alive(servers: Dict[str, Server], name: str) -> None:
    connection = servers[name].connection(TIMEOUT)
    try:
        answer = exchange(connection, greet("frank"))
        sock = connection.sock
        assert sock is not None and not answer.will_close
        for visit in range(1, 21):
            body = greet("frank", seen=visit)
            answer = exchange(connection, body)
            assert_same(answer, body)
            assert connection.sock is sock, "the server closed a keep-alive connection"
        # Errors keep the connection too: the runtime's pool would otherwise reconnect.
        assert exchange(connection, b"junk").status == 400
        assert connection.sock is sock
    finally:
        connection.close()


def test_the_sync_worker_closes_every_connection(servers: Dict[str, Server]) -> None:
    # Why gunicorn.conf.py picks gthread: with sync, every batch pays a new connection.
    answer = post(servers["sync"], greet("gina"))
    assert answer.will_close and answer.headers.get("connection") == "close"


@pytest.mark.parametrize(("name", "worker", "workers"), [
    pytest.param("sync", "sync", 4, id="sync-flags"),
    pytest.param("gthread", "gthread", 2, id="gthread-flags"),
    pytest.param("as-typed", "gthread", 4, id="implicit-conf-file-and-flags"),
    pytest.param("pyramid", "gthread", 2, id="implicit-conf-file"),
])
def test_the_worker_class_is_the_one_asked_for(servers: Dict[str, Server], name: str, worker: str,
                                               workers: int) -> None:
    log = servers[name].wait_for_log("Booting worker with pid", workers)
    assert f"Using worker: {worker}" in log


def test_the_conf_file_reads_its_environment(servers: Dict[str, Server]) -> None:
    server = servers["conf-file"]
    post(server, greet("hank"))
    server.wait_for_log('"POST /statefun HTTP/1.1" 200 ')  # the access log format
    log = server.wait_for_log("Booting worker with pid", 2)  # WEB_CONCURRENCY
    assert "Using worker: gthread" in log
    # STATEFUN_BIND and STATEFUN_RUNTIME_BIND: gunicorn 24+ names each in a line of gunicorn.conf.py's
    # when_ready; older gunicorn lists every address, comma-separated, in its own line.
    for port in {server.port, server.public_port}:
        if SOCKET_PER_WORKER:
            assert f"Workers listen at: http://127.0.0.1:{port} " in log
        else:
            listening = re.search(r"Listening at: (\S+)", log)
            assert listening and f"http://127.0.0.1:{port}" in listening.group(1).split(","), log


def listening_sockets(pid: int, port: int) -> Set[str]:
    """The inodes of the TCP sockets process ``pid`` holds that listen on ``port`` (Linux /proc)."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    listening.add(fields[9])
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            held.add(target[len("socket:["):-1])
    return held & listening


#: gunicorn 24 gave each worker its own socket under reuse_port; gunicorn.conf.py enables it from there.
SOCKET_PER_WORKER = gunicorn_version >= (24,)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.skipif(not SOCKET_PER_WORKER, reason="gunicorn < 24 shares one socket between workers")
def test_each_worker_listens_on_its_own_socket(servers: Dict[str, Server]) -> None:
    # gunicorn.conf.py sets reuse_port: the kernel, not the race to accept(), spreads the
    # runtime's few pooled connections over the workers.
    server = servers["conf-file"]
    log = server.wait_for_log("Booting worker with pid", 2)
    workers = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", log)]
    sockets = [listening_sockets(pid, server.port) for pid in workers]
    assert all(len(held) == 1 for held in sockets), sockets
    assert sockets[0] != sockets[1]
    assert not listening_sockets(server.process.pid, server.port)  # the arbiter holds none


@pytest.mark.skipif(not SOCKET_PER_WORKER, reason="gunicorn < 24 shares one socket between workers")
def test_keep_alive_connections_are_spread_over_the_workers(servers: Dict[str, Server]) -> None:
    server = servers["conf-file"]
    connections = [server.connection(TIMEOUT) for _ in range(32)]
    try:
        for number, connection in enumerate(connections):  # all open at once, as a connection pool
            connection.request("POST", f"/statefun?spread-{number}", body=greet("ivy"),
                               headers={"Content-Type": OCTET})
        for connection in connections:
            response = connection.getresponse()
            response.read()
            assert response.status == 200
    finally:
        for connection in connections:
            connection.close()
    log = server.wait_for_log("POST /statefun?spread-", 32)
    pids = set(re.findall(r"pid=<(\d+)> \S+ \"POST /statefun\?spread-", log))
    # With one shared socket, one worker often accepts every connection; with a socket
    # per worker, all 32 on one of the two has a probability of 2**-31.
    assert len(pids) == 2, pids


def okhttp_exchange(sock: socket.socket, body: bytes) -> bytes:
    """POST ``body`` as the runtime's OkHttp client writes it (8 KiB at a time, Nagle's algorithm
    on); the reply's body."""
    def receive() -> bytes:
        data = sock.recv(65536)
        if not data:
            raise AssertionError("the server closed the connection")
        return data

    head = f"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Type: {OCTET}\r\nContent-Length: {len(body)}\r\n\r\n"
    request_bytes = head.encode() + body
    for start_at in range(0, len(request_bytes), 8192):
        sock.sendall(request_bytes[start_at:start_at + 8192])
    received = b""
    while b"\r\n\r\n" not in received:
        received += receive()
    head_bytes, reply = received.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: (\d+)", head_bytes).group(1))
    while len(reply) < length:
        reply += receive()
    return reply


@pytest.mark.parametrize("name", ["conf-file", "django-middleware"])
def test_batches_written_in_pieces_are_answered_whole_over_one_connection(servers: Dict[str, Server], name: str) -> None:
    # The runtime writes a body over ~8 KiB in pieces, each waiting for the server's ACK; the
    # endpoint asks the socket for prompt ACKs (tests/test_endpoint.py checks the socket
    # option), and bench/bench_prompt_ack.py measures what that saves (40+ ms a batch).
    server = servers[name]
    body = greet("jay", seen=2, padding=blob(48 * 1024))
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        replies = [okhttp_exchange(sock, body) for _ in range(7)]
    assert replies == [expected(body)[2]] * 7


CLIENTS = 32
REQUESTS_PER_CLIENT = 10


@pytest.mark.parametrize("name", ["sync", "conf-file", "django-middleware"])
def test_many_clients_at_once_each_get_their_own_reply(servers: Dict[str, Server], name: str) -> None:
    server = servers[name]
    # Distinct function ids and states per request, so a mixed-up reply cannot pass.
    work = [
        [greet(f"user-{client}-{index}", seen=client * 100 + index, padding=blob(index * 997))
         for index in range(REQUESTS_PER_CLIENT)]
        for client in range(CLIENTS)
    ]
    wanted = [[RequestReplyHandler(functions)(body) for body in bodies] for bodies in work]
    barrier = threading.Barrier(CLIENTS, timeout=TIMEOUT)

    def client(bodies: List[bytes]) -> List[Answer]:
        connection = server.connection(TIMEOUT)
        try:
            barrier.wait()  # all at once
            return [exchange(connection, body) for body in bodies]
        finally:
            connection.close()

    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client, bodies) for bodies in work]
        answers = [future.result(timeout=60) for future in futures]

    assert [len(client_answers) for client_answers in answers] == [REQUESTS_PER_CLIENT] * CLIENTS
    for client_answers, client_wanted in zip(answers, wanted):  # noqa: B905 (strict= needs 3.10)
        for answer, reply in zip(client_answers, client_wanted):  # noqa: B905
            assert answer.status == 200, answer.body
            assert answer.headers["content-type"] == OCTET
            assert answer.body == reply
