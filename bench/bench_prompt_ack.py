"""How long a batch written in pieces waits for the server's ACKs (Linux's delayed ACK).

The runtime's OkHttp client writes a body over ~8 KiB in 8 KiB pieces with Nagle's
algorithm on: each piece after the first waits for the server's ACK of the one before,
and Linux holds that ACK up to 40 ms unless the socket asks for prompt ACKs
(``TCP_QUICKACK``), which statefun_wsgi.wsgi does for a body over ``PROMPT_ACK_BODY_SIZE``.
This serves the greeter under gunicorn (``gunicorn.conf.py``; plain app and Django
middleware) and times a 48 KiB batch over one keep-alive connection, written in 8 KiB
pieces and in one write, interleaved. With prompt ACKs the ratio pieces / one write is
about 1 (measured: 0.3 ms against 0.5 ms, 0.8 against 0.6 through Django); without them
each piece after the first could wait for Linux's 40 ms delayed-ACK timer.

    python bench/bench_prompt_ack.py [--rounds 21]

The tests check the behaviour (tests/test_wsgi.py: the socket asks for prompt ACKs;
tests/test_gunicorn.py: a batch written in pieces is answered whole); the time is here.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import bench_serving  # noqa: E402

APPS = {
    "gunicorn.conf.py, app:wsgi": "app:wsgi",
    "gunicorn.conf.py, Django middleware": "examples.django_project.wsgi:django_application",
}
PIECE = 8192


def greeter_batch(padding: int) -> bytes:
    """A batch for ``example/greeter`` carrying a state of ``padding`` bytes it does not read."""
    from google.protobuf.any_pb2 import Any
    from google.protobuf.wrappers_pb2 import BytesValue, Int64Value

    from examples.greeter.messages_pb2 import GreetRequest
    from statefun_wsgi._proto.request_reply_pb2 import ToFunction

    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "example", "greeter", "jay"
    for name, value in (("seen_count", Int64Value(value=2)), ("padding", BytesValue(value=b"x" * padding))):
        packed = Any()
        packed.Pack(value)
        batch.state.add(state_name=name).state_value = packed.SerializeToString()  # a serialized Any, as 2.x sends
    batch.invocations.add().argument.Pack(GreetRequest(name="jay"))
    return request.SerializeToString()


def exchange(sock: socket.socket, body: bytes, piece: int) -> float:
    """POST ``body`` written ``piece`` bytes at a time; the seconds until the whole reply arrived."""
    head = f"POST /statefun HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n" \
           f"Content-Length: {len(body)}\r\n\r\n"
    request = head.encode() + body
    began = time.perf_counter()
    for start in range(0, len(request), piece):
        sock.sendall(request[start:start + piece])
    received = b""
    while b"\r\n\r\n" not in received:
        received += _receive(sock)
    head_bytes, reply = received.split(b"\r\n\r\n", 1)
    if not head_bytes.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"not a 200: {head_bytes[:80]!r}")
    length = int(re.search(rb"(?i)content-length: (\d+)", head_bytes).group(1))  # type: ignore[union-attr]
    while len(reply) < length:
        reply += _receive(sock)
    return time.perf_counter() - began


def _receive(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise SystemExit("the server closed the connection")
    return data


def start(app: str) -> Tuple[subprocess.Popen, int]:
    """gunicorn -c gunicorn.conf.py serving ``app`` with one worker on the runtime's listener only."""
    port = bench_serving.free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "STATEFUN_BIND": "",
           "STATEFUN_RUNTIME_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app], cwd=HERE.parent,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # its access log
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{app}: gunicorn exited with {process.returncode}")
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{app}: gunicorn did not start")


def measure(port: int, body: bytes, rounds: int) -> Tuple[List[float], List[float]]:
    """Milliseconds per exchange: in pieces, and in one write (interleaved, one connection)."""
    pieces: List[float] = []
    whole: List[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        exchange(sock, body, len(body) + 4096)  # warm up the worker
        for _ in range(rounds):
            pieces.append(exchange(sock, body, PIECE) * 1000)
            whole.append(exchange(sock, body, len(body) + 4096) * 1000)
    return pieces, whole


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    body = greeter_batch(48 * 1024)
    print(f"{len(body)} byte batch, {PIECE} byte pieces (as OkHttp writes), {args.rounds} rounds, median ms")
    print()
    print("| server | in pieces | one write | ratio |")
    print("|---|---:|---:|---:|")
    for name, app in APPS.items():
        process, port = start(app)
        try:
            pieces, whole = measure(port, body, args.rounds)
        finally:
            process.terminate()
            process.wait(timeout=30)
        slow, fast = statistics.median(pieces), statistics.median(whole)
        print(f"| {name} | {slow:.1f} | {fast:.1f} | {slow / fast:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
