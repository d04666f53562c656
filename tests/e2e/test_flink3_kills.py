"""gunicorn workers SIGKILLed under the real StateFun 3.3.0 runtime: the job never restarts.

    bash tests/e2e/harness_setup.sh 3.3.0 && python -m pytest -m flink tests/e2e/test_flink3_kills.py -s

The 3.3.0 counterpart of test_flink_kills.py, for both of its transports: our app
(``tests.e2e.e2e_app:wsgi``, whose ``e2e/counter`` declares its state with
``bind(..., states=["count"])``, so the runtime learns it from the first reply) under
gunicorn with tests/sendall_probe.py (the recommended settings: the runtime calls the
runtime's listener), whose workers SIGKILL themselves right after the
first write of one 200 reply in fifty, while a thread SIGKILLs a random worker every
0.4 s. The okhttp transport fails the job on a cut 200 (as 2.2.2 does); the async one,
the default since 3.2, retries it; a reply that leaves the worker in one write is never
cut, so neither restarts.

Asserted, per transport: every counter's egress reads exactly 1..n, the state agrees (a
probe message counts n + 1), and the job started once.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

OUT = "e2e/out"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
ADDRESSES = 30
MESSAGES = 1500
FEED_SECONDS = 8.0
KILL_INTERVAL = 0.4
KILL_RATE = 0.02
RUNNING_TIMEOUT = 90.0
COUNTS_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def java_cmd() -> Path:
    return runtime.harness_for_test("3.3.0")


def counts(jvm: runtime.HarnessJvm, address: str) -> List[int]:
    """The counts ``address`` egressed to e2e/out, in order."""
    prefix = address + " "
    found = []
    for record in jvm.records(OUT):
        assert record.typename == STRING_VALUE and record.has_value, record
        text = StringValue.FromString(record.value).value
        if text.startswith(prefix):
            found.append(int(text[len(prefix):]))
    return found


@pytest.mark.parametrize("transport", ["okhttp", "async"])
def test_sigkilled_workers_never_fail_the_job(java_cmd: Path, tmp_path: Path, transport: str) -> None:
    # The recommended settings' two listeners: the runtime calls its own (server.port), and
    # the functions answer nowhere else.
    server = servers.start(
        "tests.e2e.e2e_app:wsgi", "-c", "tests/sendall_probe.py",
        "--worker-class", "gthread", "--workers", "2", "--threads", "4",
        env={"PROBE_KILL_RATE": str(KILL_RATE), "STATEFUN_BIND": f"127.0.0.1:{servers.free_port()}",
             "STATEFUN_ACCESS_LOG": "off"},
        bind=False,
    )
    try:
        server.wait_ready("/")
        workers = 2
        server.wait_for_log("Booting worker", workers)
        endpoint = runtime.Endpoint3("e2e/*", f"{server.base_url}/statefun", transport=transport)
        rng = random.Random(33)
        plan = [f"e2e/counter/{transport}-{rng.randrange(ADDRESSES):02d}" for _ in range(MESSAGES)]
        expected: Dict[str, int] = {}
        for address in plan:
            expected[address] = expected.get(address, 0) + 1

        with runtime.HarnessJvm.start(java_cmd, tmp_path, runtime.module_yaml3([endpoint]), egresses=[OUT]) as jvm:
            jvm.wait_running(RUNNING_TIMEOUT)
            killer = servers.Killer(server, kills=int(FEED_SECONDS / KILL_INTERVAL), interval=KILL_INTERVAL, seed=33)
            started = time.monotonic()
            killer.start()
            try:
                chunk = 50
                for index in range(0, MESSAGES, chunk):
                    jvm.send_many([(address, STRING_VALUE, StringValue(value=str(index + n)).SerializeToString())
                                   for n, address in enumerate(plan[index:index + chunk])])
                    time.sleep(max(0.0, started + FEED_SECONDS * (index + chunk) / MESSAGES - time.monotonic()))
                jvm.wait_for(lambda: all(count in counts(jvm, address) for address, count in expected.items()),
                             COUNTS_TIMEOUT, "every count")
            finally:
                killer.stop.set()
                killer.join(timeout=10)
            elapsed = time.monotonic() - started

            mid_reply = server.log().count("was sent SIGKILL") - len(killer.killed)
            print(f"\n[flink3 e2e] {transport}: {MESSAGES} messages to {len(expected)} counters in {elapsed:.1f} s, "
                  f"{len(killer.killed)} workers SIGKILLed at random and {mid_reply} right after a reply's first "
                  f"write, job starts: {jvm.starts()}")
            assert len(killer.killed) >= 10 and mid_reply >= 3, (len(killer.killed), mid_reply)
            assert jvm.starts() == 1, f"the job restarted\n{jvm.diagnostics()}"
            wrong = [address for address, count in expected.items()
                     if counts(jvm, address) != list(range(1, count + 1))]
            assert not wrong, [(address, counts(jvm, address)[:20]) for address in wrong[:5]]

            # The state agrees with the egress: one more message to each counts n + 1.
            jvm.send_many([(address, STRING_VALUE, StringValue(value="probe").SerializeToString())
                           for address in expected])
            jvm.wait_for(lambda: all(count + 1 in counts(jvm, address) for address, count in expected.items()),
                         COUNTS_TIMEOUT, "the probes")
            assert jvm.starts() == 1

        deadline = time.monotonic() + 20
        while len(servers.workers_of(server.process.pid)) != workers and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(servers.workers_of(server.process.pid)) == workers
    finally:
        server.stop()
