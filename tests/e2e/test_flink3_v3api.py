"""End to end against the real Apache Flink StateFun 3.3.0 runtime, with the official SDK's
counter (tests/e2e/official33_app.py, unchanged) running on statefun_wsgi.v3
(tests/e2e/v3api_app.py) in the project's virtualenv.

    bash tests/e2e/harness_setup.sh 3.3.0
    python -m pytest -m flink tests/e2e/test_flink3_v3api.py -q -s

Asserted, as tests/e2e/test_flink3.py asserts of the official SDK: state discovery
(``incomplete_invocation_context`` naming ``count`` first, ``count`` sent ever after), 3
counters x 40 messages counted exactly once and in order on ``e2e/out``, one Kafka record per
message accepted by the runtime's generic Kafka egress, and no job restart; once through the
app's own WSGI wrapper (``handle_sync``), once through :class:`~statefun_wsgi.StatefunMiddleware`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator, List

import pytest

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)
from e2e.test_flink3 import COUNTERS, KAFKA, KAFKA_RECORD_TYPE, MESSAGES, OUT, STRING_TYPE, _counts, _text  # noqa: E402

from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord  # noqa: E402

pytestmark = pytest.mark.flink

RUNNING_TIMEOUT = 90.0
COUNTS_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def java_cmd() -> Path:
    return runtime.harness_for_test("3.3.0")


def _serve(app: str, env: dict) -> servers.Server:
    server = runtime.start_app(
        sys.executable, app, "--worker-class", "gthread", "--workers", "2", "--threads", "4", env=env
    )
    server.wait_ready("/")
    return server


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    work = tmp_path_factory.mktemp("v3api")
    log = work / "requests.txt"
    env = {"E2E_REQUEST_LOG": str(log), "E2E_FAIL_FILE": str(work / "fail-once")}
    started: List[servers.Server] = []
    try:
        started.append(_serve("tests.e2e.v3api_app:app", env))
        started.append(_serve("tests.e2e.v3api_app:wsgi", env))
        yield {"app": started[0], "wsgi": started[1], "log": log}
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize("served_by", ["app", "wsgi"])
def test_the_official_counter_on_statefun_wsgi_v3_counts_exactly_once(
    java_cmd: Path, apps: dict, tmp_path: Path, served_by: str
) -> None:
    server = apps[served_by]
    url = f"{server.base_url}/statefun/{{function.name}}" if served_by == "app" else f"{server.base_url}/statefun"
    module_yaml = runtime.module_yaml3([runtime.Endpoint3("sdk33/*", url, transport="okhttp")], kafka_egresses=[KAFKA])
    addresses = [f"sdk33/counter/{served_by}-{n}" for n in range(COUNTERS)]
    log: Path = apps["log"]
    log_start = len(log.read_text().splitlines()) if log.exists() else 0

    with runtime.HarnessJvm.start(
        java_cmd, tmp_path, module_yaml, egresses=[OUT, KAFKA], kafka_egresses=[KAFKA]
    ) as jvm:
        jvm.extra_diagnostics = lambda: "\n".join(server.log().splitlines()[-40:])
        sent = jvm.send_many([(a, STRING_TYPE, _text(str(n))) for n in range(MESSAGES) for a in addresses])
        running = jvm.wait_running(RUNNING_TIMEOUT)
        jvm.wait_for(
            lambda: (
                len([r for r in jvm.records(KAFKA)]) >= COUNTERS * MESSAGES
                and all(MESSAGES in _counts(jvm, a) for a in addresses)
            ),
            COUNTS_TIMEOUT,
            "every count",
        )
        done = time.monotonic()
        time.sleep(0.5)  # a repeat would show now

        assert jvm.starts() == 1, f"the job restarted\n{jvm.diagnostics()}"
        for address in addresses:
            assert _counts(jvm, address) == list(range(1, MESSAGES + 1)), address
        kafka = jvm.records(KAFKA)
        assert {record.typename for record in kafka} == {KAFKA_RECORD_TYPE} and len(kafka) == COUNTERS * MESSAGES
        records = [KafkaProducerRecord.FromString(r.value) for r in kafka]
        for address in addresses:
            key = address.rsplit("/", 1)[1]
            assert [(r.topic, r.value_bytes.decode()) for r in records if r.key == key] == [
                ("counts", str(n)) for n in range(1, MESSAGES + 1)
            ]
        if served_by == "app":  # its wrapper logs every request: state discovery as with the official SDK
            requests = [line.split(" ") for line in log.read_text().splitlines()[log_start:]]
            assert requests[0][2:] == ["-", "missing:count"], requests[:3]
            assert all(r[2:] == ["count", "result"] for r in requests[1:]), requests
            assert sum(int(r[1]) for r in requests[1:]) == COUNTERS * MESSAGES
        print(
            f"\n[flink3 v3api e2e] {served_by}: JVM start -> RUNNING {running:.2f} s; "
            f"{COUNTERS * MESSAGES} messages counted {done - sent:.2f} s after sending"
        )
