"""gunicorn workers SIGKILLed under the real StateFun 2.2.2 runtime: the job never restarts.

    bash tests/e2e/harness_setup.sh && python -m pytest -m flink tests/e2e/test_flink_kills.py -s

A harness JVM of its own (test_flink.py's ``harness`` fixture, module-scoped, so a fresh
runtime and a fresh gunicorn: 2 gthread workers of 4 threads) counts thousands of
messages over dozens of ``e2e/counter`` addresses while a thread SIGKILLs a worker every
fraction of a second, and each worker SIGKILLs itself right after the first write of
one 200 reply in fifty (tests/sendall_probe.py). A worker killed while it computes leaves a reset connection, which
the runtime retries. A worker killed between writing a reply's headers and its body used
to leave a ``200`` with no body: the runtime does not retry a reply it cannot parse, so
the job failed and Flink restarted it from its last checkpoint (2 restarts in 13 kills,
before replies went out in one write: statefun_wsgi/single_write.py).

Asserted: every counter's egress reads exactly 1, 2, ..., n (no record lost, none twice),
the state agrees (a probe message counts n + 1), and the harness log shows one job start.
tests/test_robustness.py runs the same scenario on the local runtime (which fails, as the
runtime does, on a cut reply).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1],
              Path(__file__).resolve().parent):  # the repo; tests/; tests/e2e/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from servers import Killer, workers_of  # noqa: E402  (tests/servers.py)
from test_flink import Harness, harness  # noqa: E402,F401,F811  (the fixture: a JVM and a gunicorn of our own)

pytestmark = pytest.mark.flink

# The recommended settings, plus workers that kill themselves right after the first write
# of one 200 reply in KILL_RATE: the worst moment, which random kills hit only now and then.
GUNICORN_CONFIG = "tests/sendall_probe.py"
KILL_RATE = 0.02
GUNICORN_ENV = {"PROBE_KILL_RATE": str(KILL_RATE)}

ADDRESSES = 40
MESSAGES = 3000
FEED_SECONDS = 12.0
KILL_INTERVAL = 0.4  # seconds between kills: ~30 kills while the messages flow
SEED = 18


def test_sigkilled_workers_never_fail_the_job(harness: Harness) -> None:
    rng = random.Random(SEED)
    plan = [f"e2e/counter/k{rng.randrange(ADDRESSES):02d}" for _ in range(MESSAGES)]
    expected: Dict[str, int] = {}
    for address in plan:
        expected[address] = expected.get(address, 0) + 1
    starts = harness.starts()
    workers = len(workers_of(harness.server.process.pid))

    killer = Killer(harness.server, kills=int(FEED_SECONDS / KILL_INTERVAL), interval=KILL_INTERVAL, seed=SEED)
    started = time.monotonic()
    killer.start()
    try:
        chunk = 50
        for index in range(0, MESSAGES, chunk):  # paced over FEED_SECONDS, 50 messages a write
            harness.send_many([(address, StringValue(value=str(index + n)))
                               for n, address in enumerate(plan[index:index + chunk])])
            time.sleep(max(0.0, started + FEED_SECONDS * (index + chunk) / MESSAGES - time.monotonic()))
        for address, count in expected.items():
            harness.wait_for_count(address, count, timeout=120)
    finally:
        killer.stop.set()
        killer.join(timeout=10)
    elapsed = time.monotonic() - started

    restarts = harness.starts() - starts
    mid_reply = harness.server.log().count("was sent SIGKILL") - len(killer.killed)
    print(f"\n[flink e2e] {MESSAGES} messages to {len(expected)} counters in {elapsed:.1f} s, "
          f"{len(killer.killed)} workers SIGKILLed at random and {mid_reply} right after a reply's first "
          f"write, job restarts: {restarts}")
    assert len(killer.killed) >= 20, f"only {len(killer.killed)} kills: the scenario did not run"
    assert mid_reply >= 5, f"only {mid_reply} kills right after a reply's first write"
    assert restarts == 0, f"the job restarted {restarts} times\n{harness.diagnostics()}"
    wrong: List[str] = []
    for address, count in expected.items():
        counts = harness.counts(address)
        if counts != list(range(1, count + 1)):
            wrong.append(f"{address}: {len(counts)} records, expected 1..{count}")
    assert not wrong, wrong[:10]

    # The state agrees with the egress: one more message to each counts n + 1.
    harness.send_many([(address, StringValue(value="probe")) for address in expected])
    for address, count in expected.items():
        harness.wait_for_count(address, count + 1)
    assert harness.starts() == starts

    # gunicorn replaced every killed worker.
    deadline = time.monotonic() + 20
    while len(workers_of(harness.server.process.pid)) != workers and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(workers_of(harness.server.process.pid)) == workers
