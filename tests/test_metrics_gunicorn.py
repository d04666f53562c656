"""Metrics across gunicorn workers: exact totals from 4 worker processes.

gunicorn -c gunicorn.conf.py with ``STATEFUN_METRICS=1`` and 4 workers serves
``tests/metrics_app.py`` (the 2.x API on ``/statefun`` for 2.x and 3.x requests, the
official 3.3 API on ``/v3``), through StatefunMiddleware or through Django's middleware.
A known plan of batches, some failing, some refused, goes out over fresh connections
(so the kernel spreads them over the workers); every scrape, whichever worker answers it,
must then show every count exactly. A worker is then killed: its counts stay, its live
gauge goes (child_exit), and a second round adds up with the first.
"""

from __future__ import annotations

import http.client
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, FrozenSet, List, NamedTuple, Optional, Tuple

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from prometheus_client.parser import text_string_to_metric_families

from builders import request, to_v3
from servers import Server, free_port, start, workers_of
from prometheus_client import CollectorRegistry

from statefun_wsgi.metrics import DURATION_BUCKETS, INVOCATION_BUCKETS, Metrics

WORKERS = 4

Key = Tuple[str, FrozenSet[Tuple[str, str]]]


class Batch(NamedTuple):
    """One request of the plan and what it must be counted as."""

    path: str
    body: bytes
    method: str
    function_type: str  # the label it is counted under
    status: int
    invocations: int  # that ran (0 unless 200)
    exception: Optional[str] = None


def batch(path: str, typename: str, identity: str, invocations: int, protocol: str, status: int,
          exception: Optional[str] = None, label: Optional[str] = None) -> Batch:
    body = request(typename, identity, messages=[StringValue(value=f"m{n}") for n in range(invocations)])
    if protocol == "3.x":
        body = to_v3(body)
    ran = invocations if status == 200 else 0
    return Batch(path, body, "POST", label or typename, status, ran, exception)


def plan(round_number: int) -> List[Batch]:
    """Batches of every kind: both protocols, both APIs, failures, refusals."""
    prefix = f"r{round_number}-"
    batches = []
    for n in range(24):  # the 2.x API, 2.x requests, 1 to 4 invocations
        batches.append(batch("/statefun", "metrics/counter", f"{prefix}ok-{n}", n % 4 + 1, "2.x", 200))
    for n in range(10):  # the same function, 3.x requests
        batches.append(batch("/statefun", "metrics/counter", f"{prefix}ok3-{n}", 3, "3.x", 200))
    for n in range(5):
        batches.append(batch("/statefun", "metrics/counter", f"fail-{prefix}{n}", 1, "2.x", 500, "ValueError"))
    for n in range(12):
        batches.append(batch("/statefun", "metrics/other", f"{prefix}ok-{n}", 2, "3.x", 200))
    for n in range(4):
        batches.append(batch("/statefun", "metrics/other", f"fail-{prefix}{n}", 2, "3.x", 500,
                             "metrics_app.DeclinedError"))
    for n in range(15):  # the official 3.3 API
        batches.append(batch("/v3", "metrics/v3", f"{prefix}ok-{n}", n % 3 + 1, "3.x", 200))
    for n in range(3):
        batches.append(batch("/v3", "metrics/v3", f"fail-{prefix}{n}", 1, "3.x", 500, "RuntimeError"))
    for n in range(2):  # nobody serves it: counted, but not under a label anyone can choose
        batches.append(batch("/statefun", "metrics/nobody", f"{prefix}{n}", 1, "2.x", 404, label="unknown"))
    batches.append(Batch("/statefun", b"", "GET", "unknown", 405, 0))
    batches.append(Batch("/statefun", b"\xff\xff\xff", "POST", "unknown", 400, 0))
    return batches


def send(server: Server, batches: List[Batch], threads: int = 8) -> List[int]:
    """Send every batch on a connection of its own; the reply sizes, in the plan's order."""
    sizes: List[int] = [-1] * len(batches)
    failures: List[str] = []

    def worker(indexes: range) -> None:
        for index in indexes:
            item = batches[index]
            connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
            try:
                headers = {"Content-Type": "application/octet-stream"} if item.method == "POST" else {}
                connection.request(item.method, item.path, item.body if item.method == "POST" else None, headers)
                response = connection.getresponse()
                reply = response.read()
            finally:
                connection.close()
            if response.status != item.status:
                failures.append(f"{item.function_type} {item.path}: {response.status}, not {item.status}: {reply!r}")
            sizes[index] = len(reply)

    pool = [threading.Thread(target=worker, args=(range(start, len(batches), threads),)) for start in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not failures, failures
    return sizes


def expected(batches: List[Batch], sizes: List[int]) -> Dict[Key, float]:
    """Every sample the plan must produce, exactly."""
    values: Counter = Counter()

    def add(name: str, amount: float, **labels: str) -> None:
        values[(name, frozenset(labels.items()))] += amount

    for item, size in zip(batches, sizes):
        label = item.function_type
        add("statefun_batches_total", 1, function_type=label, status=str(item.status))
        if item.method == "POST":  # read and run: timed, its bytes counted
            add("statefun_batch_duration_seconds_count", 1, function_type=label)
            add("statefun_request_bytes_total", len(item.body), function_type=label)
        add("statefun_reply_bytes_total", size, function_type=label)
        if item.invocations:
            add("statefun_invocations_total", item.invocations, function_type=label)
            add("statefun_batch_invocations_count", 1, function_type=label)
            add("statefun_batch_invocations_sum", item.invocations, function_type=label)
            for bound in INVOCATION_BUCKETS:
                if item.invocations <= bound:
                    add("statefun_batch_invocations_bucket", 1, function_type=label, le=f"{float(bound)}")
            add("statefun_batch_invocations_bucket", 1, function_type=label, le="+Inf")
        if item.exception:
            add("statefun_function_exceptions_total", 1, function_type=label, exception=item.exception)
    return dict(values)


def scrape(server: Server, path: str) -> Dict[Key, float]:
    connection = http.client.HTTPConnection(server.host, server.public_port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    assert response.status == 200, text
    assert response.getheader("Content-Type", "").startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def checked(samples: Dict[Key, float], want: Dict[Key, float]) -> None:
    """Every expected sample is there with its value, and no other statefun count is."""
    counted = {key: value for key, value in samples.items()
               if key[0].startswith("statefun_") and not key[0].startswith("statefun_batch_duration_seconds_")
               and not key[0].startswith("statefun_batch_invocations_bucket")}
    counted.update({key: value for key, value in samples.items()
                    if key[0] in ("statefun_batch_duration_seconds_count", "statefun_batch_invocations_bucket")})
    assert {key: value for key, value in counted.items() if value} == want
    durations = {key: value for key, value in samples.items() if key[0] == "statefun_batch_duration_seconds_bucket"}
    for (_, labels), value in durations.items():  # cumulative, ending at the count
        label = dict(labels)
        if label["le"] == "+Inf":
            assert value == want[("statefun_batch_duration_seconds_count",
                                  frozenset({("function_type", label["function_type"])}))]
    assert {dict(labels)["le"] for _, labels in durations} == {*(f"{float(b)}" for b in DURATION_BUCKETS), "+Inf"}


def serve(app: str, metrics_dir: Path, *args: str) -> Server:
    environment = {
        "WEB_CONCURRENCY": str(WORKERS),
        "STATEFUN_METRICS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "STATEFUN_ACCESS_LOG": "off",
        "STATEFUN_LOG_LEVEL": "info",
        "STATEFUN_BIND": f"127.0.0.1:{free_port()}",
    }
    server = start(app, "-c", "gunicorn.conf.py", "--pythonpath", "tests", *args, env=environment, bind=False)
    try:
        server.wait_ready()
        server.wait_for_log("Booting worker", WORKERS)
        if "--preload" not in args:  # a worker logs "Booting" before it imports the app, which sets its gauge
            deadline = time.monotonic() + 30
            while len(list(metrics_dir.glob("gauge_livesum_*.db"))) < WORKERS:
                assert time.monotonic() < deadline, f"the workers did not all import the app:\n{server.log()}"
                time.sleep(0.05)
    except BaseException:
        server.stop()
        raise
    return server


def writers(metrics_dir: Path) -> set:
    """The pids that wrote statefun counts to the multiprocess directory."""
    return {int(path.stem.split("_")[1]) for path in metrics_dir.glob("statefun_*.metrics")}


def wait_for_workers(server: Server, count: int, timeout: float = 20.0) -> List[int]:
    deadline = time.monotonic() + timeout
    while len(pids := workers_of(server.process.pid)) != count:
        assert time.monotonic() < deadline, f"{len(pids)} workers, not {count}:\n{server.log()}"
        time.sleep(0.05)
    return pids


@pytest.mark.parametrize(
    "app, metrics_path, preload",
    [("metrics_app:wsgi", "/metrics", False), ("metrics_app:django_wsgi", "/django-metrics", False),
     ("metrics_app:wsgi", "/metrics", True)],
    ids=["StatefunMiddleware", "Django middleware", "StatefunMiddleware, app made before the fork (--preload)"],
)
def test_four_workers_count_every_batch_exactly(tmp_path: Path, app: str, metrics_path: str, preload: bool) -> None:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"an earlier run's counts")  # on_starting empties it
    earlier = Metrics(CollectorRegistry())  # ... and an earlier run's statefun counts (a file of this pid)
    earlier._counts.directory = str(metrics_dir)
    earlier.record("metrics/counter", 200, 5, 0.001, 100, 100)
    earlier._counts.file.close()  # type: ignore[union-attr]
    assert list(metrics_dir.glob("statefun_*.metrics"))
    server = serve(app, metrics_dir, *(["--preload"] if preload else []))
    try:
        first = plan(1)
        want = expected(first, send(server, first))
        answering = writers(metrics_dir)
        assert len(answering & set(workers_of(server.process.pid))) >= 2, "the batches reached one worker only"
        for _ in range(8):  # whichever worker answers the scrape
            samples = scrape(server, metrics_path)
            checked(samples, want)
            if not preload:  # (set on import: with --preload, by the master alone)
                assert samples[("metrics_app_workers", frozenset())] == WORKERS

        # A worker that answered batches dies: its counts stay, its live gauge goes.
        victim = next(pid for pid in workers_of(server.process.pid) if pid in answering)
        os.kill(victim, signal.SIGKILL)
        server.wait_for_log("Booting worker", WORKERS + 1)
        wait_for_workers(server, WORKERS)
        second = plan(2)
        more = expected(second, send(server, second))
        total = {key: want.get(key, 0) + more.get(key, 0) for key in {*want, *more}}
        for _ in range(4):
            samples = scrape(server, metrics_path)
            checked(samples, total)
            if not preload:
                assert samples[("metrics_app_workers", frozenset())] == WORKERS
        assert victim in writers(metrics_dir)
        # Each failure in one line: the address, the status, the cause (its traceback follows).
        log = server.log()
        assert "metrics/counter (id 'fail-r1-0') answered 500: raised ValueError in invocation 1 of 1: " in log
        assert ("metrics/v3 (id 'fail-r2-2') answered 500: raised RuntimeError in invocation 1 of 1: "
                "asked to fail") in log
        assert "metrics/nobody (id 'r1-0') answered 404: no function is bound to metrics/nobody" in log
    finally:
        server.stop()
