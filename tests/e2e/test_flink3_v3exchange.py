"""End to end against the real Apache Flink StateFun 3.3.0 runtime: a statefun_wsgi.v3 function
exchanges messages with a function of the official StateFun 3.3 Python SDK served beside it.

    bash tests/e2e/harness_setup.sh 3.3.0 && bash tests/e2e/statefun_sdk_setup.sh
    python -m pytest -m flink tests/e2e/test_flink3_v3exchange.py -q -s

Two gunicorns: ``tests.e2e.v3api_peer_app:wsgi`` (``ours33/driver``, plain ``def``, and
``ours33/adriver``, ``async def``, on statefun_wsgi.v3 under StatefunMiddleware, in the project's
virtualenv, protobuf 4+) and ``tests.e2e.official33_peer_app:app`` (``sdk33peer/peer``, the
official SDK's ``handle_sync``, in its own virtualenv, protobuf 3.20). Per round, ours sends the
peer an ``IntType``, a ``StringType``, a ``make_protobuf_type(Duration)`` and a
``make_json_type("e2e/point")`` value; the peer keeps each in a state of that type and answers
with a value of the same type; ours keeps the answer in a state of that type. Both report to
``e2e/out`` what they received and what their state held before.

Asserted, for the okhttp and async transports: every value arrives on each side decoded as
sent (10·r, ``"hello r"``, ``Duration(r s, 7 ns)``, the JSON object; and the answers 10·r + 1,
``"official saw hello r"``, ``Duration(r + 1 s, 7 ns)``, the object with ``seen_by``), exactly
once, in order; each state held the previous round's value (both SDKs' state round trips
through the runtime, typed); the peer's ``seen`` counts every message; the job never restarted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple, Optional

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

RUNNING_TIMEOUT = 90.0
EXCHANGE_TIMEOUT = 90.0

OUT = "e2e/out"
STRING_TYPE = "io.statefun.types/string"
ROUNDS = 5
IDS = 3
KINDS = ("int", "str", "pb", "json")


class Setup(NamedTuple):
    java_cmd: Path
    python: str  # the official SDK's virtualenv


@pytest.fixture(scope="module")
def setup() -> Setup:
    try:
        return Setup(runtime.build_harness("3.3.0"), runtime.official_sdk_python())
    except runtime.SetupError as exc:
        if exc.missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def apps(setup: Setup) -> Iterator[Dict[str, servers.Server]]:
    started: Dict[str, servers.Server] = {}
    try:
        started["official"] = runtime.start_app(
            setup.python, "tests.e2e.official33_peer_app:app", "--worker-class", "gthread", "--workers", "2",
            "--threads", "4")
        started["ours"] = runtime.start_app(
            sys.executable, "tests.e2e.v3api_peer_app:wsgi", "--worker-class", "gthread", "--workers", "2",
            "--threads", "4")
        for server in started.values():
            server.wait_ready("/")
        yield started
    finally:
        for server in started.values():
            server.stop()


def sent(kind: str, r: int) -> Any:
    """What ours sends the peer in round ``r`` (as the reports show it)."""
    return {"int": 10 * r, "str": f"hello {r}", "pb": [r, 7], "json": {"round": r, "tags": ["a", "ü"]}}[kind]


def answered(kind: str, r: int) -> Any:
    """What the peer answers to round ``r``'s value."""
    return {"int": 10 * r + 1, "str": f"official saw hello {r}", "pb": [r + 1, 7],
            "json": {"round": r, "tags": ["a", "ü"], "seen_by": "official"}}[kind]


def reports(jvm: runtime.HarnessJvm) -> List[Dict[str, Any]]:
    found = []
    for record in jvm.records(OUT):
        assert record.typename == STRING_TYPE and record.has_value, record
        found.append(json.loads(StringValue.FromString(record.value).value))
    return found


def _previous(kind: str, r: int, of: Any) -> Optional[Any]:
    return None if r == 1 else of(kind, r - 1)


@pytest.mark.parametrize("transport", ["okhttp", "async"])
def test_a_v3_function_and_an_official_sdk_function_exchange_typed_values_and_keep_state(
    setup: Setup, apps: Dict[str, servers.Server], tmp_path: Path, transport: str
) -> None:
    module_yaml = runtime.module_yaml3([
        runtime.Endpoint3("sdk33peer/*", f"{apps['official'].base_url}/statefun/{{function.name}}", transport),
        runtime.Endpoint3("ours33/*", f"{apps['ours'].base_url}/statefun", transport),
    ])
    # The peer answers at the driver's id: ids distinct across the two driver types.
    addresses = [f"ours33/{function}/{function}-{transport}-{n}" for function in ("driver", "adriver")
                 for n in range(IDS)]
    expected = len(addresses) * ROUNDS * len(KINDS)

    with runtime.HarnessJvm.start(setup.java_cmd, tmp_path, module_yaml, egresses=[OUT]) as jvm:
        jvm.extra_diagnostics = lambda: "\n".join(
            f"--- {name} gunicorn (tail) ---\n" + "\n".join(server.log().splitlines()[-30:])
            for name, server in apps.items())
        started = jvm.send_many([(address, STRING_TYPE, StringValue(value=f"round {r}").SerializeToString())
                                 for r in range(1, ROUNDS + 1) for address in addresses])
        running = jvm.wait_running(RUNNING_TIMEOUT)
        jvm.wait_for(lambda: len(reports(jvm)) >= 2 * expected, EXCHANGE_TIMEOUT, "every report")
        done = time.monotonic()
        time.sleep(0.5)  # a repeat would show now

        assert jvm.starts() == 1, f"the job restarted\n{jvm.diagnostics()}"
        everything = reports(jvm)
        assert len(everything) == 2 * expected, everything
        for address in addresses:
            identity = address.rsplit("/", 1)[1]
            official = [report for report in everything if report["side"] == "official" and report["id"] == identity]
            ours = [report for report in everything if report["side"] == "ours" and report["id"] == identity]
            # The peer got each round's four values in the order sent, decoded by type, with its states.
            assert official == [
                {"side": "official", "id": identity, "kind": kind, "value": sent(kind, r),
                 "prev": _previous(kind, r, sent), "seen": (r - 1) * len(KINDS) + i + 1}
                for r in range(1, ROUNDS + 1) for i, kind in enumerate(KINDS)
            ], address
            # And ours got the peer's answers the same way.
            assert ours == [
                {"side": "ours", "id": identity, "kind": kind, "value": answered(kind, r),
                 "prev": _previous(kind, r, answered)}
                for r in range(1, ROUNDS + 1) for kind in KINDS
            ], address
        print(f"\n[flink3 v3 exchange e2e] {transport}: JVM start -> RUNNING {running:.2f} s; {2 * expected} "
              f"reports {done - started:.2f} s after sending")
