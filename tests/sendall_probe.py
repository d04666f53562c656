"""A gunicorn config file for tests/test_single_write.py: it watches how each worker
writes to its client sockets, and can kill the worker mid-reply.

    gunicorn -c tests/sendall_probe.py --worker-class gthread app:wsgi

Each worker logs every ``socket.sendall`` (its length and first bytes) to the file
named by ``PROBE_LOG``. While the file named by ``PROBE_KILL_FILE`` exists, a worker
SIGKILLs itself right after the first ``sendall`` that starts a ``200`` reply: what the OOM killer or Kubernetes
does at the worst moment, made deterministic. A reply written in two pieces then
reaches the client as headers without a body; a reply written in one arrives whole.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

_lock = threading.Lock()


def post_fork(server, worker):  # type: ignore[no-untyped-def]
    log_path = os.environ["PROBE_LOG"]
    kill_file = os.environ["PROBE_KILL_FILE"]
    sendall = socket.socket.sendall

    def logged_sendall(sock, data, *args):  # type: ignore[no-untyped-def]
        head = bytes(data[:15])
        with _lock, open(log_path, "a") as log:
            log.write(f"{os.getpid()} {len(data)} {head!r}\n")
        result = sendall(sock, data, *args)
        if head.startswith(b"HTTP/1.1 200") and os.path.exists(kill_file):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    socket.socket.sendall = logged_sendall
