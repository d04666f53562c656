"""A WSGI app that shows whether glibc keeps freed heap memory, for tests/test_malloc.py.

    gunicorn -c gunicorn.conf.py tests.malloc_probe_app:app

``GET /`` runs 12 rounds, in the request's own thread as a batch would run: hold six 1 MiB
blocks at once (a 1 MiB-state batch's buffers), free them, and count the minor page faults
the thread took meanwhile. JSON: ``{"faults": [per round], "glibc": "2.36"}``.

With glibc's adaptive thresholds the first freed 1 MiB block lifts the trim threshold to
2 MiB only, so every round hands about 5 MiB back to the kernel and faults it in again on the
next (about 1,250 faults a round); with the thresholds fixed, the rounds after the first take
none.

``GET /heaps`` has 6 threads allocate at once, then counts glibc's heaps (arenas):
``{"heaps": n}``. glibc gives each new thread a heap of its own, up to its cap.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import tempfile
import threading
from typing import Iterable, List

from statefun_wsgi.malloc import glibc_version

BLOCK = 1024 * 1024
BLOCKS = 6
ROUNDS = 12


def rounds() -> List[int]:
    faults = []
    for _ in range(ROUNDS):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        held = [bytes(BLOCK) for _ in range(BLOCKS)]  # zero-filled: every page touched
        del held
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    return faults


def heaps(threads: int = 6) -> int:
    """How many heaps (arenas) glibc has once ``threads`` threads have each allocated at the same
    time (a new thread gets a heap of its own while the cap allows), from ``malloc_info``."""
    barrier = threading.Barrier(threads)

    def allocate() -> None:
        held = bytes(BLOCK)
        barrier.wait(10)
        del held

    workers = [threading.Thread(target=allocate) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "malloc-info.xml")
        stream = libc.fopen(path.encode(), b"w")
        if not stream or libc.malloc_info(0, stream) != 0:
            raise OSError("malloc_info failed")
        libc.fclose(stream)
        with open(path) as file:
            return file.read().count("<heap nr=")


def app(environ: dict, start_response) -> Iterable[bytes]:  # type: ignore[no-untyped-def]
    if environ.get("PATH_INFO") == "/heaps":
        result = {"heaps": heaps()}
    else:
        result = {"faults": rounds(), "glibc": glibc_version()}
    body = json.dumps(result).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
