"""End to end against the real Apache Flink StateFun 3.3.0 runtime, with a function of the
official StateFun 3.3 Python SDK.

    bash tests/e2e/harness_setup.sh 3.3.0 && bash tests/e2e/statefun_sdk_setup.sh
    python -m pytest -m flink tests/e2e/test_flink3.py -q -s

One gunicorn serves ``tests.e2e.official33_app:app`` (a counter written in the official 3.3
API, ``RequestReplyHandler.handle_sync``) from the SDK's own virtualenv (Python 3.11,
protobuf 3.20) for the whole module; each test starts its own harness JVM (the real runtime,
see tests/e2e/harness3/README.md) with a module.yaml of one format and transport. Every wait
is bounded, and every process is killed at teardown.

What is asserted, for the okhttp and async transports (``kind:`` documents) and the legacy
``version: "3.0"`` format (okhttp):

- state discovery: the first request carries no state and is answered with
  ``incomplete_invocation_context`` naming ``count``; every later request carries ``count``;
- 3 counters x 40 messages, sent at once: each address egresses the counts 1..40 exactly once
  and in order (``io.statefun.types/string`` on ``e2e/out``), plus one Kafka record per message
  (``type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord``, checked by the runtime's
  own generic Kafka egress serializer);
- the job started once (no restart).

And that the harness's Kafka egress check is real: a function sending a ``StringType`` record
to the Kafka egress fails the job, as the generic Kafka egress does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List, NamedTuple

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord  # noqa: E402
import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

#: Bounds on every wait, in seconds.
RUNNING_TIMEOUT = 90.0  # JVM spawn -> job RUNNING (~2.5 s here)
COUNTS_TIMEOUT = 60.0  # messages sent -> every egress record

OUT, KAFKA = "e2e/out", "e2e/kafka"
STRING_TYPE = "io.statefun.types/string"  # the SDK's StringType: a StringWrapper, wire-equal to StringValue
KAFKA_RECORD_TYPE = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
COUNTERS = 3
MESSAGES = 40


class OfficialApp:
    """The official SDK's app under gunicorn, its request log, and its fail-once file."""

    def __init__(self, server: servers.Server, request_log: Path, fail_file: Path) -> None:
        self.server = server
        self.request_log = request_log
        self.fail_file = fail_file

    def requests(self, start: int = 0) -> List[List[str]]:
        """Request log lines from line ``start`` on: ``[address, invocations, states, reply]``."""
        try:
            lines = self.request_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [line.split(" ") for line in lines[start:]]

    def diagnostics(self) -> str:
        return (f"--- request log (tail) ---\n{runtime.tail(self.request_log, 30)}\n"
                f"--- gunicorn log (tail) ---\n{chr(10).join(self.server.log().splitlines()[-40:])}")


class Setup(NamedTuple):
    java_cmd: Path  # the 3.3.0 harness's java-cmd.json
    python: str  # the official SDK's virtualenv


@pytest.fixture(scope="module")
def setup() -> Setup:
    """Build the harness and the SDK's virtualenv (idempotent); skip only if a tool is missing."""
    started = time.monotonic()
    try:
        result = Setup(runtime.build_harness("3.3.0"), runtime.official_sdk_python())
    except runtime.SetupError as exc:
        if exc.missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))
    print(f"\n[flink3 e2e] harness_setup.sh 3.3.0 + statefun_sdk_setup.sh: {time.monotonic() - started:.2f} s")
    return result


@pytest.fixture(scope="module")
def official_app(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfficialApp]:
    work = tmp_path_factory.mktemp("official33")
    request_log, fail_file = work / "requests.txt", work / "fail-once"
    server = runtime.start_app(
        setup.python, "tests.e2e.official33_app:app",
        "--worker-class", "gthread", "--workers", "2", "--threads", "4",
        env={"E2E_REQUEST_LOG": str(request_log), "E2E_FAIL_FILE": str(fail_file)},
    )
    try:
        server.wait_ready("/")
        yield OfficialApp(server, request_log, fail_file)
    finally:
        server.stop()


def _counts(jvm: runtime.HarnessJvm, address: str) -> List[int]:
    """The counts ``address`` egressed to e2e/out, in order."""
    prefix = address + " "
    counts = []
    for record in jvm.records(OUT):
        assert record.typename == STRING_TYPE and record.has_value, record
        text = StringValue.FromString(record.value).value
        if text.startswith(prefix):
            counts.append(int(text[len(prefix):]))
    return counts


def _text(value: str) -> bytes:
    return StringValue(value=value).SerializeToString()


@pytest.mark.parametrize("transport,version", [("okhttp", "kind"), ("async", "kind"), ("okhttp", "3.0")])
def test_official_sdk_counter_counts_exactly_once(
    setup: Setup, official_app: OfficialApp, tmp_path: Path, transport: str, version: str
) -> None:
    endpoint = runtime.Endpoint3("sdk33/*", f"{official_app.server.base_url}/statefun/{{function.name}}",
                                 transport=transport)
    module_yaml = runtime.module_yaml3([endpoint], kafka_egresses=[KAFKA], version=version)
    log_start = len(official_app.requests())
    addresses = [f"sdk33/counter/{transport}-{version}-{n}" for n in range(COUNTERS)]

    with runtime.HarnessJvm.start(setup.java_cmd, tmp_path, module_yaml,
                                  egresses=[OUT, KAFKA], kafka_egresses=[KAFKA]) as jvm:
        jvm.extra_diagnostics = official_app.diagnostics
        # Sent before the job runs: the harness buffers stdin, so this also measures start-up.
        sent = jvm.send_many([(address, STRING_TYPE, _text(str(n)))
                              for n in range(MESSAGES) for address in addresses])
        running = jvm.wait_running(RUNNING_TIMEOUT)
        jvm.wait_for(lambda: len(jvm.records(KAFKA)) >= COUNTERS * MESSAGES and
                     all(MESSAGES in _counts(jvm, a) for a in addresses), COUNTS_TIMEOUT, "every count")
        done = time.monotonic()
        time.sleep(0.5)  # anything extra (a repeat) would show now

        assert jvm.starts() == 1, f"the job restarted\n{jvm.diagnostics()}"
        for address in addresses:
            assert _counts(jvm, address) == list(range(1, MESSAGES + 1)), address

        kafka = jvm.records(KAFKA)
        assert {record.typename for record in kafka} == {KAFKA_RECORD_TYPE}
        assert len(kafka) == COUNTERS * MESSAGES
        for address in addresses:
            key = address.rsplit("/", 1)[1]
            records = [KafkaProducerRecord.FromString(r.value) for r in kafka]
            mine = [r for r in records if r.key == key]
            assert [(r.topic, r.value_bytes.decode()) for r in mine] == [
                ("counts", str(n)) for n in range(1, MESSAGES + 1)]

        # State discovery: the runtime knew no state at first; the SDK declared `count`; the
        # runtime re-sent the batch, and from then on every request carries it.
        requests = official_app.requests(log_start)
        assert requests[0][2:] == ["-", "missing:count"], requests[:3]
        assert all(r[2:] == ["count", "result"] for r in requests[1:]), requests
        invocations = sum(int(r[1]) for r in requests[1:])
        assert invocations == COUNTERS * MESSAGES, (invocations, requests)
        print(f"\n[flink3 e2e] {transport}/{version}: JVM start -> RUNNING {running:.2f} s; "
              f"{COUNTERS * MESSAGES} messages counted {done - sent:.2f} s after sending, "
              f"in {len(requests)} requests (batches {[int(r[1]) for r in requests]})")


def test_restart_restores_counts_and_states_are_declared_again(
    setup: Setup, official_app: OfficialApp, tmp_path: Path
) -> None:
    endpoint = runtime.Endpoint3("sdk33/*", f"{official_app.server.base_url}/statefun/{{function.name}}")
    module_yaml = runtime.module_yaml3([endpoint], kafka_egresses=[KAFKA])
    address = "sdk33/counter/restart"
    log_start = len(official_app.requests())
    with runtime.HarnessJvm.start(setup.java_cmd, tmp_path, module_yaml,
                                  egresses=[OUT, KAFKA], kafka_egresses=[KAFKA]) as jvm:
        jvm.extra_diagnostics = official_app.diagnostics
        jvm.send_many([(address, STRING_TYPE, _text(str(n))) for n in range(10)])
        jvm.wait_running(RUNNING_TIMEOUT)
        jvm.wait_for(lambda: _counts(jvm, address) == list(range(1, 11)), COUNTS_TIMEOUT, "counts 1..10")
        # Two more checkpoints: the second began after the first ended, so after the 10th count:
        # it holds count 10 and nothing in flight.
        done = len(jvm.checkpoints())
        jvm.wait_for(lambda: len(jvm.checkpoints()) >= done + 2, COUNTS_TIMEOUT, "two more checkpoints")
        official_app.fail_file.write_text("")
        jvm.send(address, STRING_TYPE, _text("fail-once"))  # a 400, not retried by okhttp: the job fails
        jvm.wait_for(lambda: jvm.starts() == 2, COUNTS_TIMEOUT, "the job's restart")
        restored = jvm.checkpoints()[-1]
        jvm.send_many([(address, STRING_TYPE, _text(str(n))) for n in range(5)])
        jvm.wait_for(lambda: 16 in _counts(jvm, address), COUNTS_TIMEOUT, "count 16")
        time.sleep(0.5)  # anything extra (a repeat) would show now

        assert not official_app.fail_file.exists()
        assert jvm.starts() == 2, jvm.diagnostics()
        # Stdin offset 10: the lines before "fail-once" (11 if a checkpoint caught the failing
        # request in flight: then it is re-sent after the restore, and goes through).
        assert restored[1] in (10, 11), f"restored from {restored}"
        # Restored from count 10 (not replayed from 0): every count once, in order.
        assert _counts(jvm, address) == list(range(1, 17)), jvm.diagnostics()

    requests = official_app.requests(log_start)
    outcomes = [r[2:] for r in requests]
    failed = outcomes.index(["count", "failed"])
    assert outcomes[0] == ["-", "missing:count"], requests
    assert all(o == ["count", "result"] for o in outcomes[1:failed]), requests
    # After the restore the runtime knew no state again: the SDK declared `count` once more.
    assert outcomes[failed + 1] == ["-", "missing:count"], requests
    assert all(o == ["count", "result"] for o in outcomes[failed + 2:]), requests
    print(f"\n[flink3 e2e] restart: restored checkpoint {restored[0]} (stdin offset {restored[1]}); "
          f"requests {requests}")


def test_wrong_record_type_on_the_kafka_egress_fails_the_job(
    setup: Setup, official_app: OfficialApp, tmp_path: Path
) -> None:
    endpoint = runtime.Endpoint3("sdk33/*", f"{official_app.server.base_url}/statefun/{{function.name}}")
    module_yaml = runtime.module_yaml3([endpoint], kafka_egresses=[KAFKA])
    properties = {"e2e.restart.attempts": "1", "e2e.restart.delay": "200ms"}
    with runtime.HarnessJvm.start(setup.java_cmd, tmp_path, module_yaml,
                                  egresses=[OUT, KAFKA], kafka_egresses=[KAFKA], properties=properties) as jvm:
        jvm.extra_diagnostics = official_app.diagnostics
        jvm.send("sdk33/bad-kafka/x", STRING_TYPE, _text("x"))
        jvm.wait_running(RUNNING_TIMEOUT)
        # One restart (the attempt allowed), which replays the message and fails again: for good.
        try:
            returncode = jvm.process.wait(timeout=COUNTS_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the job did not fail within {COUNTS_TIMEOUT} s\n{jvm.diagnostics()}")
        assert returncode == 1, jvm.diagnostics()
        stderr = jvm.stderr()
        assert jvm.starts() == 2, jvm.diagnostics()
        assert "The generic Kafka egress expects only messages of type" in stderr, jvm.diagnostics()
        assert "E2E-HARNESS job failed for good" in stderr
        assert jvm.records(KAFKA) == []
