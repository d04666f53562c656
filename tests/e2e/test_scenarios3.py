"""The 3.x scenario table (tests/e2e/scenarios3.py) on LocalRuntime 3.x.

    python -m pytest tests/e2e/test_scenarios3.py -s

The same descriptions ``tests/e2e/test_flink3_ours.py`` runs on the real 3.3.0 runtime
(marker ``flink``), here on LocalRuntime (default suite, no JVM): over HTTP to
``tests.e2e.e2e_app:wsgi3`` under gunicorn (``-c gunicorn.conf.py``, LocalRuntime calling
the runtime's listener), driven by the same module.yaml the real runtime gets (okhttp and
async with ``kind:`` documents, okhttp with ``version: "3.0"``), and in process (the app's
handler, a virtual clock). Each must give the scenario's expected :class:`Outcome3`.

The official SDK's ``sdk33/echo`` (:attr:`Scenario3.official`) runs over HTTP when its
virtualenv is set up (``bash tests/e2e/statefun_sdk_setup.sh``), else is skipped. Not here:
the changed state type in process (the new app
version is a reimport: it runs over HTTP, gunicorn reloading its workers, as on the real
runtime).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Tuple

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import e2e_app, runtime  # noqa: E402
from e2e.scenarios3 import (  # noqa: E402
    DELAY_S,
    EVOLVING,
    KAFKA,
    KINESIS,
    OUT,
    RESTART,
    SCENARIOS3,
    Outcome3,
    Restart3,
    Scenario3,
    by_address,
    kafka_record,
    kinesis_record,
    outcome3,
    outcome_runs,
)

from statefun_wsgi import RequestReplyHandler  # noqa: E402
from statefun_wsgi.local import (  # noqa: E402
    FunctionCallFailedError,
    HttpTransport,
    InProcessTransport,
    LocalRuntime,
    SystemClock,
    VirtualClock,
)
from statefun_wsgi.local.ingress import parse_address  # noqa: E402
from statefun_wsgi.local.transport import Transport  # noqa: E402
from statefun_wsgi.module_yaml import parse_module_yaml  # noqa: E402

RUN_TIMEOUT = 60.0
VARIANTS = [("okhttp", "kind"), ("async", "kind"), ("okhttp", "3.0")]
VARIANT_IDS = [f"{transport}-{version}" for transport, version in VARIANTS]
LOCAL_SCENARIOS = [s for s in SCENARIOS3 if not s.official]


class App(NamedTuple):
    server: servers.Server
    request_log: Path
    fail_file: Path

    def rows(self) -> List[List[str]]:
        try:
            return [line.split(" ") for line in self.request_log.read_text().splitlines()]
        except FileNotFoundError:
            return []


def start_app(work: Path, workers: str = "2", **env: str) -> App:
    request_log, fail_file = work / "requests.txt", work / "fail-once"
    server = servers.start(
        "tests.e2e.e2e_app:wsgi3", "-c", "gunicorn.conf.py", "--workers", workers,
        env={"STATEFUN_BIND": f"127.0.0.1:{servers.free_port()}", "STATEFUN_ACCESS_LOG": "off",
             "E2E_REQUEST_LOG3": str(request_log), "E2E_FAIL_FILE": str(fail_file), **env},
        bind=False,
    )
    return App(server, request_log, fail_file)


def local_runtime(yaml: str, transport: Transport, clock, concurrency: int) -> LocalRuntime:  # type: ignore[no-untyped-def]
    """LocalRuntime for the module.yaml the real runtime gets, and the harness's e2e/out egress."""
    module = parse_module_yaml(yaml)
    assert module.protocol == "3.x"
    egresses: Dict[str, str] = {egress.id: egress.type for egress in module.egresses}
    egresses[OUT] = "statefunwsgi.e2e/file"
    return LocalRuntime(dict(module.functions), transport, clock=clock, egresses=egresses, concurrency=concurrency)


def send(local: LocalRuntime, sends: List[Tuple[str, str, bytes]]) -> None:
    for address, typename, value in sends:
        function, identity = parse_address(address)
        local.send(function, identity, Any(type_url=typename, value=value))


def said(local: LocalRuntime, address: str) -> List[str]:
    prefix = address + " "
    texts = [record.unpack(StringValue).value for record in local.egress(OUT)]
    return [t[len(prefix):] for t in texts if t.startswith(prefix)]


def run_table(local: LocalRuntime, scenarios: List[Scenario3], tag: str) -> None:
    """Every scenario at once, as one job: the messages, each ``then`` once its text shows,
    then until nothing (delayed messages included) is left."""
    for scenario in scenarios:
        send(local, scenario.sends(tag, scenario.messages))
    local.run_until_idle(timeout=RUN_TIMEOUT)
    for scenario in scenarios:
        if scenario.then is not None:
            trigger, messages = scenario.then
            assert trigger in said(local, scenario.address(tag)), (scenario.id, said(local, scenario.address(tag)))
            send(local, scenario.sends(tag, messages))
    local.run_until_idle(timeout=RUN_TIMEOUT, include_delayed=True)


def outcomes(local: LocalRuntime, scenarios: List[Scenario3], tag: str,
             rows: List[List[str]]) -> Dict[str, Outcome3]:
    kafka = [kafka_record(r.argument.type_url, r.argument.value) for r in local.egress(KAFKA)]
    kinesis = [kinesis_record(r.argument.type_url, r.argument.value) for r in local.egress(KINESIS)]
    kafka, kinesis = [k for k in kafka if k[2] == tag], [k for k in kinesis if k[2] == tag]
    # The records carry no sender: all of this job's go to the scenario(s) expecting records,
    # and no other record may be there.
    expecting = [s for s in scenarios if s.kafka or s.kinesis]
    assert len(kafka) == len(local.egress(KAFKA)) and len(kinesis) == len(local.egress(KINESIS))
    per_address = by_address(rows)
    return {s.id: outcome3(s, tag, said(local, s.address(tag)), kafka if s in expecting else [],
                           kinesis if s in expecting else [], per_address.get(s.address(tag), []))
            for s in scenarios}


def report(where: str, found: Dict[str, Outcome3]) -> None:
    for scenario_id, outcome in found.items():
        print(f"\n[scenarios3] {where} {scenario_id}: said {outcome.said} kafka {len(outcome.kafka)} "
              f"kinesis {len(outcome.kinesis)} requests {outcome.requests}")


def test_the_table_uses_only_types_the_app_serves() -> None:
    served = {function.typename for function in e2e_app.functions}
    assert {s.function for s in SCENARIOS3} <= served
    assert {RESTART.address.rpartition("/")[0], EVOLVING.address.rpartition("/")[0]} <= served
    assert len({s.id for s in SCENARIOS3}) == len(SCENARIOS3)


# -- over HTTP ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    app = start_app(tmp_path_factory.mktemp("scenarios3-http"))
    try:
        app.server.wait_ready("/")
        yield app
    finally:
        app.server.stop()


@pytest.fixture(scope="module")
def http_results(app3: App) -> Dict[Tuple[str, str], Dict[str, Outcome3]]:
    """Each variant's job, run once: ``{(transport, version): {scenario id: outcome}}``."""
    results: Dict[Tuple[str, str], Dict[str, Outcome3]] = {}
    for transport, version in VARIANTS:
        tag = f"local-{transport}-{version.replace('.', '')}"
        endpoint = runtime.Endpoint3("e2e3/*", f"{app3.server.base_url}/statefun", transport=transport)
        yaml = runtime.module_yaml3([endpoint], kafka_egresses=[KAFKA], kinesis_egresses=[KINESIS], version=version)
        started = time.monotonic()
        with local_runtime(yaml, HttpTransport(), SystemClock(), 8) as local:
            run_table(local, LOCAL_SCENARIOS, tag)
            results[(transport, version)] = outcomes(local, LOCAL_SCENARIOS, tag, app3.rows())
        print(f"\n[scenarios3] over HTTP {transport}/{version}: {time.monotonic() - started:.2f} s")
    return results


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("scenario", LOCAL_SCENARIOS, ids=[s.id for s in LOCAL_SCENARIOS])
def test_scenario_on_the_local_runtime_over_http(
    scenario: Scenario3, variant: Tuple[str, str], http_results: Dict[Tuple[str, str], Dict[str, Outcome3]]
) -> None:
    transport, version = variant
    outcome = http_results[variant][scenario.id]
    report(f"over HTTP {transport}/{version}", {scenario.id: outcome})
    assert outcome == scenario.expected(f"local-{transport}-{version.replace('.', '')}"), outcome.detail


OFFICIAL_PYTHON = Path(__file__).resolve().parent / ".venv-statefun33" / "bin" / "python"
OFFICIAL_SCENARIOS = [s for s in SCENARIOS3 if s.official]


@pytest.fixture(scope="module")
def official_app() -> Iterator[servers.Server]:
    """The official 3.3 SDK's app (tests/e2e/official33_app.py), when its virtualenv is there
    already (``bash tests/e2e/statefun_sdk_setup.sh``; the default suite installs nothing)."""
    if not OFFICIAL_PYTHON.exists():
        pytest.skip("the official SDK's virtualenv is not set up: bash tests/e2e/statefun_sdk_setup.sh")
    server = runtime.start_app(str(OFFICIAL_PYTHON), "tests.e2e.official33_app:app",
                               "--worker-class", "gthread", "--workers", "1", "--threads", "4")
    try:
        server.wait_ready("/")
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("scenario", OFFICIAL_SCENARIOS, ids=[s.id for s in OFFICIAL_SCENARIOS])
def test_official_sdk_scenario_on_the_local_runtime_over_http(
    scenario: Scenario3, variant: Tuple[str, str], app3: App, official_app: servers.Server
) -> None:
    transport, version = variant
    tag = f"local-official-{transport}-{version.replace('.', '')}"
    endpoints = [runtime.Endpoint3("e2e3/*", f"{app3.server.base_url}/statefun", transport=transport),
                 runtime.Endpoint3("sdk33/*", f"{official_app.base_url}/statefun/{{function.name}}",
                                   transport=transport)]
    yaml = runtime.module_yaml3(endpoints, kafka_egresses=[KAFKA], kinesis_egresses=[KINESIS], version=version)
    with local_runtime(yaml, HttpTransport(), SystemClock(), 8) as local:
        run_table(local, [scenario], tag)
        outcome = outcomes(local, [scenario], tag, app3.rows())[scenario.id]
    report(f"over HTTP {transport}/{version}", {scenario.id: outcome})
    assert outcome == scenario.expected(tag), outcome.detail


def test_restart_on_the_local_runtime_over_http(app3: App) -> None:
    endpoint = runtime.Endpoint3("e2e/*", f"{app3.server.base_url}/statefun", transport="okhttp")
    start = len(app3.rows())
    with local_runtime(runtime.module_yaml3([endpoint]), HttpTransport(), SystemClock(), 8) as local:
        run_restart(local, RESTART, app3.fail_file)
        found = said(local, RESTART.address)
    rows = by_address(app3.rows()[start:]).get(RESTART.address, [])
    print(f"\n[scenarios3] over HTTP {RESTART.id}: said {found}, requests {outcome_runs(rows, RESTART.state)}")
    assert found == list(RESTART.said)
    assert outcome_runs(rows, RESTART.state) == list(RESTART.outcomes), rows


def run_restart(local: LocalRuntime, scenario: Restart3, fail_file: Path) -> None:
    """``before`` messages; ``fail-once`` with the fail file there (a 400: the call fails for
    good); :meth:`LocalRuntime.restart` (the failed batch again); ``after`` messages."""
    function, identity = parse_address(scenario.address)
    for n in range(scenario.before):
        local.send(function, identity, StringValue(value=str(n)))
    local.run_until_idle(timeout=RUN_TIMEOUT)
    fail_file.write_text("")
    local.send(function, identity, StringValue(value="fail-once"))
    with pytest.raises(FunctionCallFailedError, match="400"):
        local.run_until_idle(timeout=RUN_TIMEOUT)
    assert not fail_file.exists()
    local.restart()
    for n in range(scenario.after):
        local.send(function, identity, StringValue(value=str(n)))
    local.run_until_idle(timeout=RUN_TIMEOUT)


def test_a_changed_state_type_on_the_local_runtime_over_http(tmp_path: Path) -> None:
    """A new app version (gunicorn reloaded) declares ``n`` as io.statefun.types/int; after
    the restart LocalRuntime fails the job as the real runtime does."""
    type_file = tmp_path / "state-type"
    app = start_app(tmp_path, workers="1", E2E_STATE_TYPE_FILE=str(type_file))
    try:
        app.server.wait_ready("/")
        endpoint = runtime.Endpoint3("e2e3/*", f"{app.server.base_url}/statefun", transport="okhttp")
        function, identity = parse_address(EVOLVING.address)
        with local_runtime(runtime.module_yaml3([endpoint]), HttpTransport(), SystemClock(), 8) as local:
            for n in range(EVOLVING.before):
                local.send(function, identity, StringValue(value=str(n)))
            local.run_until_idle(timeout=RUN_TIMEOUT)
            type_file.write_text("int\n")
            app.server.process.send_signal(signal.SIGHUP)
            app.server.wait_for_log("Worker exiting", 1, RUN_TIMEOUT)
            app.server.wait_for_log("Booting worker", 2, RUN_TIMEOUT)
            app.fail_file.write_text("")
            local.send(function, identity, StringValue(value="fail-once"))
            with pytest.raises(FunctionCallFailedError, match="400"):
                local.run_until_idle(timeout=RUN_TIMEOUT)
            local.restart()
            with pytest.raises(FunctionCallFailedError) as failed:
                local.run_until_idle(timeout=RUN_TIMEOUT)
            found = said(local, EVOLVING.address)
        rows = by_address(app.rows()).get(EVOLVING.address, [])
        print(f"\n[scenarios3] over HTTP {EVOLVING.id}: {failed.value.reason}; requests "
              f"{outcome_runs(rows, EVOLVING.state)}")
        assert EVOLVING.local_reason in failed.value.reason
        assert found == list(EVOLVING.said)
        assert outcome_runs(rows, EVOLVING.state) == list(EVOLVING.outcomes), rows
    finally:
        app.server.stop()


# -- in process -----------------------------------------------------------------------------------------


def in_process(tmp_path: Path, yaml: str) -> Tuple[LocalRuntime, Path, Path]:
    request_log, fail_file = tmp_path / "requests.txt", tmp_path / "fail-once"
    handler = e2e_app.StateLog(e2e_app.ScenarioReplies(RequestReplyHandler(e2e_app.functions)), str(request_log),
                               str(fail_file))
    return local_runtime(yaml, InProcessTransport(handler), VirtualClock(), 1), request_log, fail_file


def _rows(path: Path) -> List[List[str]]:
    return [line.split(" ") for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize("transport", ["okhttp", "async"])
def test_the_table_on_the_local_runtime_in_process(transport: str, tmp_path: Path) -> None:
    endpoint = runtime.Endpoint3("e2e3/*", "http://in-process/statefun", transport=transport)
    yaml = runtime.module_yaml3([endpoint], kafka_egresses=[KAFKA], kinesis_egresses=[KINESIS])
    tag = f"in-process-{transport}"
    local, request_log, _ = in_process(tmp_path, yaml)
    with local:
        run_table(local, LOCAL_SCENARIOS, tag)
        assert local.clock.now() >= DELAY_S  # the delayed messages fired on the virtual clock
        found = outcomes(local, LOCAL_SCENARIOS, tag, _rows(request_log))
    report(f"in process {transport}", found)
    assert found == {s.id: s.expected(tag) for s in LOCAL_SCENARIOS}, {k: v.detail for k, v in found.items()}


def test_restart_on_the_local_runtime_in_process(tmp_path: Path) -> None:
    endpoint = runtime.Endpoint3("e2e/*", "http://in-process/statefun", transport="okhttp")
    local, request_log, fail_file = in_process(tmp_path, runtime.module_yaml3([endpoint]))
    with local:
        run_restart(local, RESTART, fail_file)
        found = said(local, RESTART.address)
    rows = by_address(_rows(request_log)).get(RESTART.address, [])
    assert found == list(RESTART.said)
    assert outcome_runs(rows, RESTART.state) == list(RESTART.outcomes), rows
