"""The scenario table (tests/e2e/scenarios.py) on LocalRuntime and on the real runtime.

    python -m pytest tests/e2e/test_scenarios.py                  # LocalRuntime: in process, over HTTP
    bash tests/e2e/harness_setup.sh && python -m pytest -m flink tests/e2e/test_scenarios.py -s

Each scenario runs on LocalRuntime (the default suite: no JVM) in process and over HTTP
to ``tests.e2e.e2e_app:wsgi`` under gunicorn, and, with the ``flink`` marker, on the
real StateFun 2.2.2 runtime (the harness JVM, see tests/e2e/harness/README.md) against
the same app under gunicorn. Every run must give the scenario's expected
:class:`~scenarios.Outcome`: the requests per address (invocations, ok/error), the
counts egressed, and whether the job failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import e2e_app, runtime  # noqa: E402
from e2e.scenarios import (  # noqa: E402
    EGRESSES,
    SCENARIOS,
    Outcome,
    Scenario,
    all_functions,
    call_times,
    module_yaml,
    read_batch_log,
)

from statefun_wsgi import RequestReplyHandler  # noqa: E402
from statefun_wsgi.local import (  # noqa: E402
    FunctionCallFailedError,
    HttpTransport,
    InProcessTransport,
    LocalRuntime,
    SystemClock,
)
from statefun_wsgi.local.ingress import parse_address  # noqa: E402

#: Bounds on every wait, in seconds.
RUN_TIMEOUT = 60.0  # one scenario
SETTLE = 0.3  # after the expected outcome showed up: no extra request may follow
CHECKPOINT_PAUSE = 1.5  # > the harness's 1 s checkpoint interval: what ran before is checkpointed
POLL = 0.02

SCENARIO_IDS = [scenario.id for scenario in SCENARIOS]


def _gunicorn(work: Path) -> servers.Server:
    """The e2e app under gunicorn, with its batch log and scenario files in ``work``."""
    (work / "scenario").mkdir()
    return servers.start(
        "tests.e2e.e2e_app:wsgi", "-c", "gunicorn.conf.py", "--worker-class", "gthread", "--workers", "2",
        "--threads", "4",
        env={"E2E_BATCH_LOG": str(work / "batches.txt"), "E2E_SCENARIO_DIR": str(work / "scenario")},
    )


def _poll(observe: Callable[[], Outcome], done: Callable[[Outcome], bool], timeout: float) -> Outcome:
    """Observe until ``done`` (then once more after SETTLE, to catch extra requests) or ``timeout``."""
    deadline = time.monotonic() + timeout
    outcome = observe()
    while not done(outcome) and time.monotonic() < deadline:
        time.sleep(POLL)
        outcome = observe()
    if done(outcome):
        time.sleep(SETTLE)
        outcome = observe()
    return outcome


def report(where: str, scenario: Scenario, outcome: Outcome, scenario_dir: Path) -> None:
    """Print what happened (``-s``), with when each invocation started for the timed items."""
    print(f"\n[scenarios] {where} {scenario.id}: {outcome.batches} counts {outcome.counts} failed={outcome.failed}")
    if scenario.item in "cdh":
        for address in scenario.addresses:
            print(f"[scenarios] {where} {scenario.id}: {address} invocations at {call_times(scenario_dir, address)} s")


def test_the_table_uses_only_types_the_app_serves() -> None:
    assert set(all_functions()) <= set(e2e_app.SCENARIO_TYPES)
    assert len(set(SCENARIO_IDS)) == len(SCENARIOS)
    addresses = [address for scenario in SCENARIOS for address in scenario.addresses]
    assert len(set(addresses)) == len(addresses), "each scenario has addresses of its own"


# -- LocalRuntime ---------------------------------------------------------------------------------------


def run_on_local_runtime(scenario: Scenario, transport, endpoint: str, batch_log: Path,  # type: ignore[no-untyped-def]
                         concurrency: int) -> Outcome:
    specs = {function.typename: function.spec(endpoint) for function in scenario.functions}
    failure: Optional[FunctionCallFailedError] = None
    with LocalRuntime(specs, transport, clock=SystemClock(), egresses=EGRESSES, concurrency=concurrency) as local:
        for step in scenario.steps:
            for address, command in step:
                typename, identity = parse_address(address)
                local.send(typename, identity, StringValue(value=command))
            try:
                local.run_until_idle(timeout=RUN_TIMEOUT)
            except FunctionCallFailedError as error:
                failure = error
                break
        counts: Dict[str, List[int]] = {address: [] for address in scenario.addresses}
        for record in local.egress(e2e_app.OUT_EGRESS):
            address, _, count = record.unpack(StringValue).value.rpartition(" ")
            if address in counts:
                counts[address].append(int(count))

    def observe() -> Outcome:
        return Outcome(read_batch_log(batch_log, scenario.addresses), counts, failure is not None,
                       "" if failure is None else failure.reason)

    # Over HTTP a timed-out request may still be running in the app: wait for its log line.
    outcome = _poll(observe, lambda seen: seen == scenario.expected, 10.0)
    if failure is not None and scenario.failure is not None:
        assert failure.reason.startswith(scenario.failure.local_reason), failure.reason
    return outcome


@pytest.fixture(scope="module")
def http_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[servers.Server, Path]]:
    work = tmp_path_factory.mktemp("scenarios-http")
    server = _gunicorn(work)
    try:
        server.wait_ready("/")
        yield server, work
    finally:
        server.stop()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_scenario_on_the_local_runtime_in_process(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2E_SCENARIO_DIR", str(tmp_path))
    batch_log = tmp_path / "batches.txt"
    handler = e2e_app.RecordingHandler(e2e_app.ScenarioReplies(RequestReplyHandler(e2e_app.functions)), str(batch_log))
    outcome = run_on_local_runtime(scenario, InProcessTransport(handler), "in-process://", batch_log, 1)
    report("in process", scenario, outcome, tmp_path)
    assert outcome == scenario.expected, outcome.detail


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_scenario_on_the_local_runtime_over_http(scenario: Scenario, http_app: Tuple[servers.Server, Path]) -> None:
    server, work = http_app
    transport = HttpTransport()
    outcome = run_on_local_runtime(scenario, transport, f"{server.base_url}/statefun", work / "batches.txt", 8)
    report("over HTTP", scenario, outcome, work / "scenario")
    assert outcome == scenario.expected, outcome.detail


# -- the real runtime -----------------------------------------------------------------------------------


class RealRuntime:
    """The harness JVM and the app under gunicorn, for the whole table."""

    def __init__(self, harness, work: Path) -> None:  # type: ignore[no-untyped-def]
        self.harness = harness
        self.batch_log = work / "batches.txt"
        self.scenario_dir = work / "scenario"

    def stderr(self) -> str:
        return self.harness.stderr_path.read_text(errors="replace")

    def run(self, scenario: Scenario) -> Outcome:
        harness = self.harness
        if scenario.failure is not None:  # let a checkpoint cover the scenarios before
            time.sleep(CHECKPOINT_PAUSE)
        starts = harness.starts()
        logged = self.stderr().count(scenario.failure.runtime_log) if scenario.failure else 0
        sent = 0
        for number, step in enumerate(scenario.steps):
            harness.send_many([(address, StringValue(value=command)) for address, command in step])
            sent += len(step)
            if number < len(scenario.steps) - 1:
                harness.wait_for(lambda sent=sent: self._invocations_ok(scenario) >= sent,
                                 what=f"{scenario.id} step {number}")

        def observe() -> Outcome:
            counts = {address: harness.counts(address) for address in scenario.addresses}
            batches = read_batch_log(self.batch_log, scenario.addresses)
            return Outcome(batches, counts, harness.starts() > starts)

        if scenario.failure is None:
            return _poll(observe, lambda seen: seen == scenario.expected, RUN_TIMEOUT)

        failure = scenario.failure
        harness.wait_for(lambda: harness.starts() > starts, RUN_TIMEOUT, f"{scenario.id}: the job to fail and restart")
        assert self.stderr().count(failure.runtime_log) > logged, f"the runtime's log lacks {failure.runtime_log!r}"

        def recovered() -> bool:
            return all(_dedupe(harness.counts(address)) == list(counts)
                       for address, counts in failure.recovered.items())

        harness.wait_for(recovered, RUN_TIMEOUT, f"{scenario.id}: the counts after the restart")
        outcome = observe()
        resent = {address: batches[len(scenario.batches[address]):] for address, batches in outcome.batches.items()}
        print(f"\n[scenarios] {scenario.id}: after the restart the runtime sent {resent}")
        for address, batches in resent.items():  # the failed batch again, until it went through
            assert batches and batches[-1][1] == "ok", (address, outcome.batches[address])
        # Up to the failure, the same as LocalRuntime; the counts before it are not
        # knowable here (egress to a file is not transactional), what came after is.
        outcome.batches = {address: batches[: len(scenario.batches[address])]
                           for address, batches in outcome.batches.items()}
        outcome.counts = {address: list(scenario.counts[address]) for address in scenario.addresses}
        return outcome

    def _invocations_ok(self, scenario: Scenario) -> int:
        batches = read_batch_log(self.batch_log, scenario.addresses)
        return sum(size for entries in batches.values() for size, outcome in entries if outcome == "ok")


def _dedupe(values: List[int]) -> List[int]:
    seen: set = set()
    return [value for value in values if not (value in seen or seen.add(value))]


@pytest.fixture(scope="module")
def real_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRuntime]:
    from e2e import test_flink  # the Harness driver and its build step

    test_flink._build_harness()
    work = tmp_path_factory.mktemp("scenarios-flink")
    conf_dir = work / "conf"
    conf_dir.mkdir()
    egress_path, stderr_path = work / "egress.txt", work / "jvm.stderr"
    server = _gunicorn(work)
    jvm: Optional[subprocess.Popen] = None
    stderr_file = None
    started = time.monotonic()
    try:
        server.wait_ready("/")
        (conf_dir / "module.yaml").write_text(module_yaml(f"{server.base_url}/statefun"))
        argv = [arg.replace("{conf_dir}", str(conf_dir)) for arg in json.loads(runtime.JAVA_CMD.read_text())]
        argv += [f"-De2e.egress.file={egress_path}", f"-De2e.egresses={e2e_app.OUT_EGRESS}"]
        stderr_file = open(stderr_path, "wb")
        jvm = subprocess.Popen(argv, cwd=runtime.REPO, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=stderr_file, start_new_session=True)
        harness = test_flink.Harness(jvm, egress_path, stderr_path, server, work / "batches.txt",
                                     work / "unused-flaky-file")
        harness.wait_for(lambda: "E2E-HARNESS RUNNING" in stderr_path.read_text(errors="replace"),
                         test_flink.RUNNING_TIMEOUT, "job RUNNING")
        yield RealRuntime(harness, work)
    finally:
        try:
            if jvm is not None:
                runtime.stop_jvm(jvm)
        finally:
            if stderr_file is not None:
                stderr_file.close()
            server.stop()
            print(f"\n[scenarios] real runtime module: {time.monotonic() - started:.1f} s")


@pytest.mark.flink
@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_scenario_on_the_real_runtime(scenario: Scenario, real_runtime: RealRuntime) -> None:
    started = time.monotonic()
    outcome = real_runtime.run(scenario)
    report(f"real ({time.monotonic() - started:.1f} s)", scenario, outcome, real_runtime.scenario_dir)
    assert outcome == scenario.expected, real_runtime.harness.diagnostics()
