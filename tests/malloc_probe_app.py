"""A WSGI app that shows whether glibc keeps freed heap memory, for tests/test_malloc.py.

    gunicorn -c gunicorn.conf.py tests.malloc_probe_app:app

``GET /`` runs 12 rounds, in the request's own thread as a batch would run: hold six 1 MiB
blocks at once (a 1 MiB-state batch's buffers), free them, and count the minor page faults
the thread took meanwhile. JSON: ``{"faults": [per round], "glibc": "2.36"}``.

With glibc's adaptive thresholds the first freed 1 MiB block lifts the trim threshold to
2 MiB only, so every round hands about 5 MiB back to the kernel and faults it in again on the
next (about 1,250 faults a round); with the thresholds fixed, the rounds after the first take
none.
"""

from __future__ import annotations

import json
import resource
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


def app(environ: dict, start_response) -> Iterable[bytes]:  # type: ignore[no-untyped-def]
    body = json.dumps({"faults": rounds(), "glibc": glibc_version()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
