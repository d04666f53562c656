"""End to end over a unix socket: the real StateFun 2.2.2 runtime, ``http+unix`` endpoints.

    bash tests/e2e/harness_setup.sh && python -m pytest -m flink tests/e2e/test_flink_unix.py -q -s

gunicorn serves ``tests.e2e.e2e_app:wsgi`` on a unix socket in a directory whose name
looks like a socket too (``.../my.socket.d/app.sock``); the runtime's ``module.yaml`` says
``endpoint: http+unix://.../my.socket.d/app.sock/statefun``. For that endpoint the runtime
connects to the first path segment ending in ``.sock`` and sends ``POST /%2Fstatefun``
(``Host: unused``), which gunicorn hands the app as ``PATH_INFO = "//statefun"``.

What is asserted, from the runtime's own effects and gunicorn's access log:

- 300 messages to one address are counted exactly once each, in order, over the socket
  (a probe then reads 301: the state was kept);
- every request the runtime made had the request line ``POST /%2Fstatefun HTTP/1.1`` and
  the Host ``unused``, and was answered 200;
- the LocalRuntime, given the same module.yaml, reaches the same app through the same
  socket with the same request line and Host, and counts the same way.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)
from e2e.test_flink import (  # noqa: E402
    FIRST_EGRESS_TIMEOUT,
    OUT,
    RUNNING_TIMEOUT,
    STRING_VALUE_URL,
    Harness,
    _build_harness,
    _dedupe,
    tail,
)
from statefun_wsgi.local import LocalRuntime  # noqa: E402
from statefun_wsgi.module_yaml import parse_module_yaml  # noqa: E402

pytestmark = pytest.mark.flink

#: type -> (states, maxNumBatchRequests)
FUNCTIONS = {"e2e/counter": ([{"name": "count"}], 50)}

#: gunicorn's access log: the request line as sent (RAW_URI), the status, the Host header.
ACCESS_LOG_FORMAT = 'ACCESS "%(r)s" %(s)s host=%({host}i)s'
ACCESS_LINE = re.compile(r'ACCESS "(?P<line>[^"]*)" (?P<status>\d+) host=(?P<host>\S*)')


def access_log(server: servers.Server) -> List[Tuple[str, str, str]]:
    """``(request line, status, host)`` per request gunicorn logged, in order."""
    return [(m["line"], m["status"], m["host"]) for m in ACCESS_LINE.finditer(server.log())]


class UnixSetup:
    """The running pieces: the harness driver, the server, the socket and the module.yaml."""

    def __init__(self, driver: Harness, server: servers.Server, socket_path: str, module_yaml: str) -> None:
        self.driver = driver
        self.server = server
        self.socket_path = socket_path
        self.module_yaml = module_yaml


@pytest.fixture(scope="module")
def unix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnixSetup]:
    _build_harness()
    work = tmp_path_factory.mktemp("flink-unix")
    conf_dir = work / "conf"
    conf_dir.mkdir()
    egress_path, stderr_path, batch_log, flaky_file = (
        work / "egress.txt", work / "jvm.stderr", work / "batches.txt", work / "flaky-failures")
    flaky_file.write_text("0\n")
    # A short directory (a unix socket path is limited to 107 bytes) whose name holds ".sock".
    socket_dir = Path(tempfile.mkdtemp(prefix="statefun-e2e-", dir="/tmp"))
    (socket_dir / "my.socket.d").mkdir()
    socket_path = str(socket_dir / "my.socket.d" / "app.sock")

    # Also on a TCP port (servers.start's --bind): only for the readiness check; the runtime
    # knows the socket alone, and the access log tells the two apart (Host "unused").
    server = servers.start(
        "tests.e2e.e2e_app:wsgi",
        "-c", "gunicorn.conf.py",
        "--bind", f"unix:{socket_path}",
        "--workers", "2",
        "--threads", "4",
        env={
            "E2E_FLAKY_FILE": str(flaky_file),
            "E2E_BATCH_LOG": str(batch_log),
            "STATEFUN_ACCESS_LOG_FORMAT": ACCESS_LOG_FORMAT,
        },
    )
    jvm: Optional[subprocess.Popen] = None
    stderr_file = None
    try:
        server.wait_ready("/")
        assert Path(socket_path).is_socket()
        module_yaml = runtime.module_yaml(f"http+unix://{socket_path}/statefun", FUNCTIONS)
        (conf_dir / "module.yaml").write_text(module_yaml)
        argv = [arg.replace("{conf_dir}", str(conf_dir)) for arg in json.loads(runtime.JAVA_CMD.read_text())]
        argv += [f"-De2e.egress.file={egress_path}", f"-De2e.egresses={OUT}"]
        stderr_file = open(stderr_path, "wb")
        jvm = subprocess.Popen(
            argv, cwd=runtime.REPO, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr_file,
            start_new_session=True,
        )
        driver = Harness(jvm, egress_path, stderr_path, server, batch_log, flaky_file)
        driver.send("e2e/counter/warm-up", b"", STRING_VALUE_URL)
        driver.wait_for(lambda: "E2E-HARNESS RUNNING" in tail(stderr_path, 10**6), RUNNING_TIMEOUT, "job RUNNING")
        driver.wait_for_count("e2e/counter/warm-up", 1, FIRST_EGRESS_TIMEOUT)
        yield UnixSetup(driver, server, socket_path, module_yaml)
    finally:
        try:
            if jvm is not None:
                runtime.stop_jvm(jvm)
        finally:
            if stderr_file is not None:
                stderr_file.close()
            server.stop()
            shutil.rmtree(socket_dir, ignore_errors=True)


def test_the_runtime_reaches_the_functions_over_a_unix_socket(unix: UnixSetup) -> None:
    harness = unix.driver
    address = "e2e/counter/u1"
    total = 300
    starts = harness.starts()
    harness.send_many([(address, StringValue(value=str(n))) for n in range(total)])
    counts = harness.wait_for_count(address, total, timeout=60)
    harness.send(address, StringValue(value="probe"))  # the state says 300: this makes it 301
    harness.wait_for_count(address, total + 1)
    counts = harness.counts(address)

    no_restart = harness.starts() == starts == 1
    if no_restart:
        assert counts == list(range(1, total + 2))
    else:  # a restart replays: records may repeat, never skip or reorder
        assert _dedupe(counts) == list(range(1, total + 2))
    ok = [size for size, outcome in harness.batches(address) if outcome == "ok"]
    requests = [entry for entry in access_log(unix.server) if entry[2] == "unused"]
    print(f"\n[flink e2e unix] {total} + 1 messages over {unix.socket_path}: {len(ok)} requests, "
          f"batch sizes {ok}; request lines {sorted(set(line for line, _, _ in requests))}")
    if no_restart:
        assert sum(ok) == total + 1
    assert len(ok) < total, "the runtime should have batched"
    # Every request the runtime made: its request line and Host, answered 200 (the warm-up too).
    assert len(requests) >= len(ok) + 1
    assert set(requests) == {("POST /%2Fstatefun HTTP/1.1", "200", "unused")}, requests


def test_the_local_runtime_sends_what_the_runtime_sends(unix: UnixSetup) -> None:
    before = len(access_log(unix.server))
    address = ("e2e/counter", "local-1")
    with LocalRuntime.from_module_yaml(parse_module_yaml(unix.module_yaml)) as local:
        for n in range(20):
            local.send(*address, StringValue(value=str(n)))
        local.run_until_idle()
        assert local.state(*address, "count", Int64Value).value == 20
        assert [record.unpack(StringValue).value for record in local.egress(OUT)] == [
            f"{'/'.join(address)} {n}" for n in range(1, 21)
        ]
    requests = access_log(unix.server)[before:]
    assert requests and set(requests) == {("POST /%2Fstatefun HTTP/1.1", "200", "unused")}, requests
