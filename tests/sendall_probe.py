"""A gunicorn config file for the tests: the recommended settings (gunicorn.conf.py) plus
a probe that watches how each worker writes to its client sockets and can kill the
worker mid-reply.

    gunicorn -c tests/sendall_probe.py --worker-class gthread app:wsgi

- ``PROBE_LOG``: each worker logs every ``socket.sendall`` (its length and first bytes)
  to this file.
- ``PROBE_KILL_FILE``: while this file exists, a worker SIGKILLs itself right after
  the first ``sendall`` that starts a ``200`` reply.
- ``PROBE_KILL_RATE``: a worker does the same after that many of its 200 replies, as a
  fraction (``0.02``: one in fifty, drawn at random).

Killed right after the first write of a 200 is the worst moment the OOM killer or
Kubernetes can pick, made deterministic: a reply written in two pieces then reaches
the client as headers without a body; a reply written in one arrives whole.
"""

from __future__ import annotations

import os
import random
import runpy
import signal
import socket
import threading
from pathlib import Path

# Every setting of the recommended configuration (command-line flags still override them).
globals().update({name: value for name, value in runpy.run_path(
    str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")).items() if not name.startswith("_")})

_lock = threading.Lock()


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    log_path = os.environ.get("PROBE_LOG")
    kill_file = os.environ.get("PROBE_KILL_FILE")
    kill_rate = float(os.environ.get("PROBE_KILL_RATE") or 0)
    draw = random.Random(os.getpid()).random
    sendall = socket.socket.sendall

    def probed_sendall(sock, data, *args):  # type: ignore[no-untyped-def]
        head = bytes(data[:15])
        if log_path:
            with _lock, open(log_path, "a") as log:
                log.write(f"{os.getpid()} {len(data)} {head!r}\n")
        result = sendall(sock, data, *args)
        if head.startswith(b"HTTP/1.1 200") and (
            (kill_file and os.path.exists(kill_file)) or (kill_rate and draw() < kill_rate)
        ):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    socket.socket.sendall = probed_sendall
