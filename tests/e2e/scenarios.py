"""The scenario table: what the real StateFun 2.2.2 runtime does, which LocalRuntime
must do too (issue 12, section 2).

Each :class:`Scenario` names the functions it needs (type and module.yaml settings), the
messages it sends, and what must come of them: per address, the requests the app got
(invocations per request, and ``"ok"`` or ``"error"`` as the app's batch log says: a
request the runtime timed out still logs ``"ok"``), the counts egressed to ``e2e/out``,
and whether the job failed. The functions are the scenario function of
``tests/e2e/e2e_app.py``, driven by the ``StringValue`` commands its docstring lists.

``tests/e2e/test_scenarios.py`` runs every scenario on LocalRuntime (in the default
suite: in process, and over HTTP to the app under gunicorn) and on the real runtime
(marker ``flink``), and asserts the same :class:`Outcome` on each.

Messages of one step are sent back to back; a step waits for the one before it. When
the job fails, the real runtime restarts it from its last checkpoint and sends the
failed batch again, which then succeeds (the commands fail only so often):
:attr:`Failure.recovered` is what the real runtime egresses after that restart.
LocalRuntime stops at the failure (``FunctionCallFailedError``) with none of the failed
batch applied: ``counts`` is what it egressed before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

from statefun_wsgi.module_yaml import FunctionSpec, StateSpec, format_duration

__all__ = [
    "EGRESSES",
    "SCENARIOS",
    "Failure",
    "Function",
    "Outcome",
    "Scenario",
    "call_times",
    "module_yaml",
    "read_batch_log",
]

#: The egresses the scenarios write to, by id: their module.yaml type. ``e2e/out`` is the
#: harness's file egress (not in module.yaml: any record type); ``e2e/kafka`` a generic
#: Kafka egress that module.yaml declares (nothing listens at its address: no record
#: ever gets as far as being sent).
EGRESSES: Dict[str, str] = {"e2e/out": "statefunwsgi.e2e/file", "e2e/kafka": "statefun.kafka.io/generic-egress"}

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Function:
    """A function type of the scenario function, with its module.yaml settings."""

    typename: str
    max_batch: int = 1000
    timeout: timedelta = 20 * _SECOND
    connect_timeout: timedelta = 5 * _SECOND
    read_timeout: timedelta = 10 * _SECOND
    write_timeout: timedelta = 10 * _SECOND

    def spec(self, endpoint: str) -> FunctionSpec:
        """The FunctionSpec LocalRuntime gets (built here: the value of ``max_batch`` is
        passed as written, 0 and negative ones included)."""
        return FunctionSpec(self.typename, endpoint, (StateSpec("count"),), self.max_batch, self.timeout,
                            self.connect_timeout, self.read_timeout, self.write_timeout)

    def yaml(self, endpoint: str) -> str:
        return (
            "      - function:\n"
            "          meta:\n"
            "            kind: http\n"
            f"            type: {self.typename}\n"
            "          spec:\n"
            f"            endpoint: {endpoint}\n"
            "            states:\n"
            "              - name: count\n"
            f"            maxNumBatchRequests: {self.max_batch}\n"
            f"            timeout: {format_duration(self.timeout)}\n"
            f"            connectTimeout: {format_duration(self.connect_timeout)}\n"
            f"            readTimeout: {format_duration(self.read_timeout)}\n"
            f"            writeTimeout: {format_duration(self.write_timeout)}\n"
        )


@dataclass(frozen=True)
class Failure:
    """The job fails. ``runtime_log``: the real runtime's exception message says this;
    ``local_reason``: ``FunctionCallFailedError.reason`` starts with this;
    ``recovered``: counts per address the real runtime egresses after its restart
    (compared without repeats: egress to a file is not transactional)."""

    runtime_log: str
    local_reason: str
    recovered: Mapping[str, Tuple[int, ...]]


Batch = Tuple[int, str]  # (invocations, "ok" | "error")


@dataclass(frozen=True)
class Scenario:
    id: str
    item: str  # issue 12, section 2
    functions: Tuple[Function, ...]
    steps: Tuple[Tuple[Tuple[str, str], ...], ...]  # ((address, command), ...) per step
    batches: Mapping[str, Tuple[Batch, ...]]  # per address, every request up to the end (or the failure)
    counts: Mapping[str, Tuple[int, ...]]  # per address, what it egressed (before any failure)
    failure: Optional[Failure] = None

    @property
    def addresses(self) -> Tuple[str, ...]:
        return tuple(self.batches)

    @property
    def expected(self) -> Outcome:
        return Outcome({a: list(b) for a, b in self.batches.items()}, {a: list(c) for a, c in self.counts.items()},
                       self.failure is not None)


@dataclass
class Outcome:
    """What a run of a scenario gave: the same on both runtimes."""

    batches: Dict[str, List[Batch]]
    counts: Dict[str, List[int]]
    failed: bool
    detail: str = field(default="", compare=False)  # the failure's text, for the report


def ok(invocations: int) -> Batch:
    return invocations, "ok"


def error(invocations: int) -> Batch:
    return invocations, "error"


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


BATCHING = Function("e2e/batching")
FANOUT = Function("e2e/fanout")
THRESHOLD2 = Function("e2e/threshold2", max_batch=2)
NO_LIMIT = Function("e2e/nolimit", max_batch=0)
UNLIMITED = Function("e2e/unlimited", max_batch=-1)
# 2.2.2's loader wants connect/read/write timeouts no larger than `timeout`.
RECOVERING = Function("e2e/recovering", timeout=2 * _SECOND, connect_timeout=_SECOND, read_timeout=2 * _SECOND,
                      write_timeout=2 * _SECOND)
SLOW = Function("e2e/slow", timeout=2 * _SECOND, connect_timeout=_SECOND, read_timeout=_SECOND,
                write_timeout=_SECOND)
KAFKA_OUT = Function("e2e/kafka-out")
EMPTY = Function("e2e/empty")
MUTATION = Function("e2e/mutation")
EXHAUSTED = Function("e2e/exhausted", timeout=_SECOND, connect_timeout=_SECOND, read_timeout=_SECOND,
                     write_timeout=_SECOND)

SCENARIOS: Tuple[Scenario, ...] = (
    # a. The first message to an idle address goes alone; the two behind it, together.
    Scenario(
        "a-three-messages-to-an-idle-address", "a", (BATCHING,),
        steps=((("e2e/batching/a1", "sleep 0.3"), ("e2e/batching/a1", "count"), ("e2e/batching/a1", "count")),),
        batches={"e2e/batching/a1": (ok(1), ok(2))},
        counts={"e2e/batching/a1": (1, 2, 3)},
    ),
    # a. Five messages in one reply, to an idle address: the first alone, then four.
    Scenario(
        "a-fan-out-of-five-to-an-idle-address", "a", (FANOUT, BATCHING),
        steps=((("e2e/fanout/a2", "fanout 5 e2e/batching/a2"),),),
        batches={"e2e/fanout/a2": (ok(1),), "e2e/batching/a2": (ok(1), ok(4))},
        counts={"e2e/fanout/a2": (), "e2e/batching/a2": (1, 2, 3, 4, 5)},
    ),
    # b. A threshold of 2 holds back the ingress, not the five messages of one reply:
    # they all join the backlog behind the message in flight, and go as one batch.
    Scenario(
        "b-threshold-2-fan-out-of-five-behind-one-in-flight", "b", (FANOUT, THRESHOLD2),
        steps=((("e2e/threshold2/b1", "sleep 0.3"), ("e2e/fanout/b1", "fanout 5 e2e/threshold2/b1")),),
        batches={"e2e/threshold2/b1": (ok(1), ok(5)), "e2e/fanout/b1": (ok(1),)},
        counts={"e2e/threshold2/b1": (1, 2, 3, 4, 5, 6), "e2e/fanout/b1": ()},
    ),
    # b. From the ingress, a backlog at the threshold stops the input until its call is done.
    Scenario(
        "b-threshold-2-six-from-the-ingress", "b", (THRESHOLD2,),
        steps=(tuple(("e2e/threshold2/b2", "sleep 0.1") for _ in range(6)),),
        batches={"e2e/threshold2/b2": (ok(1), ok(2), ok(2), ok(1))},
        counts={"e2e/threshold2/b2": (1, 2, 3, 4, 5, 6)},
    ),
    # b. 0 and negative thresholds are none.
    Scenario(
        "b-threshold-0-is-none", "b", (NO_LIMIT,),
        steps=(tuple(("e2e/nolimit/b3", "sleep 0.1") for _ in range(6)),),
        batches={"e2e/nolimit/b3": (ok(1), ok(5))},
        counts={"e2e/nolimit/b3": (1, 2, 3, 4, 5, 6)},
    ),
    Scenario(
        "b-threshold-minus-1-is-none", "b", (UNLIMITED,),
        steps=(tuple(("e2e/unlimited/b4", "sleep 0.1") for _ in range(6)),),
        batches={"e2e/unlimited/b4": (ok(1), ok(5))},
        counts={"e2e/unlimited/b4": (1, 2, 3, 4, 5, 6)},
    ),
    # c. timeout 2s, failing until 1.8 s after the first call: attempts at 0, 0.01, 0.03,
    # 0.07, 0.15, 0.31, 0.63, 1.27 s fail; the 1.28 s backoff is cut to the 0.73 s left,
    # and the 9th attempt, at the deadline, succeeds (the old rule gave up after 1.27 s).
    Scenario(
        "c-a-last-attempt-at-the-deadline", "c", (RECOVERING,),
        steps=((("e2e/recovering/c1", "fail-until 1.8"),),),
        batches={"e2e/recovering/c1": (error(1),) * 8 + (ok(1),)},
        counts={"e2e/recovering/c1": (1,)},
    ),
    # d. readTimeout 1s, timeout 2s, the function takes 1.5 s (twice): timed out at 1 s,
    # again at 2.01 s, past the timeout: the job fails although the function ran twice.
    Scenario(
        "d-slower-than-the-read-timeout", "d", (SLOW,),
        steps=((("e2e/slow/d1", "slow-first 2 1.5"),),),
        batches={"e2e/slow/d1": (ok(1), ok(1))},
        counts={"e2e/slow/d1": ()},
        failure=Failure("Maximal request time has elapsed",
                        "maximal request time has elapsed: 2 attempts", {"e2e/slow/d1": (1,)}),
    ),
    # e. A StringValue to a generic Kafka egress fails the job.
    Scenario(
        "e-a-string-to-a-generic-kafka-egress", "e", (KAFKA_OUT,),
        steps=((("e2e/kafka-out/e1", "kafka-string-once"),),),
        batches={"e2e/kafka-out/e1": (ok(1),)},
        counts={"e2e/kafka-out/e1": ()},
        failure=Failure("The generic Kafka egress expects only messages of type",
                        "egress e2e/kafka is a statefun.kafka.io/generic-egress: it takes only",
                        {"e2e/kafka-out/e1": (1,)}),
    ),
    # f. Empty 200s: no effects (the count stays absent), and the job carries on.
    Scenario(
        "f-an-empty-200-is-no-effects", "f", (EMPTY,),
        steps=((("e2e/empty/f1", "empty 0.3"), ("e2e/empty/f1", "empty"), ("e2e/empty/f1", "empty")),
               (("e2e/empty/f1", "count"),)),
        batches={"e2e/empty/f1": (ok(1), ok(2), ok(1))},
        counts={"e2e/empty/f1": (1,)},
    ),
    # g. A mutation of an unknown type (7, value 99) neither deletes nor writes the state.
    Scenario(
        "g-an-unknown-mutation-type-is-ignored", "g", (MUTATION,),
        steps=((("e2e/mutation/g1", "count"),), (("e2e/mutation/g1", "unknown-mutation"),),
               (("e2e/mutation/g1", "count"),)),
        batches={"e2e/mutation/g1": (ok(1), ok(1), ok(1))},
        counts={"e2e/mutation/g1": (1, 2)},
    ),
    # h. timeout 1s, failing until 1.5 s: attempts at 0 .. 0.63 s, and at the 1 s deadline;
    # then the job fails. The real one restarts and sends the batch again (it succeeds).
    Scenario(
        "h-retries-run-out", "h", (EXHAUSTED,),
        steps=((("e2e/exhausted/h1", "fail-until 1.5"),),),
        batches={"e2e/exhausted/h1": (error(1),) * 8},
        counts={"e2e/exhausted/h1": ()},
        failure=Failure("Maximal request time has elapsed",
                        "maximal request time has elapsed: 8 attempts", {"e2e/exhausted/h1": (1,)}),
    ),
)


def all_functions() -> Dict[str, Function]:
    """Every function type the table uses (each with one setting throughout)."""
    found: Dict[str, Function] = {}
    for scenario in SCENARIOS:
        for function in scenario.functions:
            assert found.setdefault(function.typename, function) == function, function.typename
    return found


def module_yaml(endpoint: str) -> str:
    """The module.yaml (format "2.0") of every function of the table, and ``e2e/kafka``."""
    functions = "".join(function.yaml(endpoint) for function in all_functions().values())
    return (
        'version: "2.0"\n'
        "module:\n"
        "  meta:\n"
        "    type: remote\n"
        "  spec:\n"
        "    functions:\n"
        f"{functions}"
        "    egresses:\n"
        "      - egress:\n"
        "          meta:\n"
        f"            type: {EGRESSES['e2e/kafka']}\n"
        "            id: e2e/kafka\n"
        "          spec:\n"
        "            address: 127.0.0.1:9\n"
        "            deliverySemantic:\n"
        "              type: none\n"
    )


def call_times(scenario_dir: Path, address: str) -> List[float]:
    """When each invocation of ``address`` started, in seconds after the first (the app
    notes it in ``$E2E_SCENARIO_DIR``): for the report, not for assertions."""
    path = scenario_dir / (address.replace("/", "_") + ".calls")
    try:
        times = [float(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []
    return [round(t - times[0], 3) for t in times]


def read_batch_log(path: Path, addresses: Tuple[str, ...]) -> Dict[str, List[Batch]]:
    """The app's batch log (e2e_app.RecordingHandler) for ``addresses``, in order."""
    batches: Dict[str, List[Batch]] = {address: [] for address in addresses}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        lines = []
    for fields in map(str.split, lines):
        if fields and fields[0] in batches:
            batches[fields[0]].append((int(fields[1]), fields[2]))
    return batches
