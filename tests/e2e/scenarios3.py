"""The StateFun 3.x scenario table: what the real 3.3.0 runtime does with our app, which
LocalRuntime 3.x must do too (issue 14: "the same scenarios on LocalRuntime 3.x").

One description per scenario (the messages sent and what must come of them), run by

- ``tests/e2e/test_flink3_ours.py`` (marker ``flink``) on the real 3.3.0 runtime, and
- ``tests/e2e/test_scenarios3.py`` (the default suite, no JVM) on LocalRuntime 3.x, over
  HTTP to the same app under gunicorn (``-c gunicorn.conf.py``, the runtime's listener)
  and, where the app allows it, in process,

each asserting the same :class:`Outcome3`. The functions are the ``e2e3`` functions (and
``e2e/counter``) of ``tests/e2e/e2e_app.py``; what reaches the app is read from its
request log (``$E2E_REQUEST_LOG3``: ``<protocol> <address> <invocations> <states> <reply>``).

- :data:`SCENARIOS3`: one function each, all run together in one job (a tag in the
  identity per job): state discovery, an Any state's round trip, a typed state written
  with another type refused in the function, delayed messages with one cancelled and an
  empty token refused, Kafka and Kinesis records with the 3.x type names, and messages both
  ways with the official SDK's ``sdk33/echo`` (:attr:`Scenario3.official`).
- :data:`RESTART`: a 400 fails the job, the restart (the real runtime: from a checkpoint;
  LocalRuntime: :meth:`~statefun_wsgi.local.LocalRuntime.restart`) sends the failed batch
  again, whose first request carries no state: the function declares it again, and the
  counts go on exactly once.
- :data:`EVOLVING`: a new app version declares a state with another type; after the
  restart the declaration fails the job (``RemoteValueTypeMismatchException``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord

__all__ = [
    "ANY", "DELAY_S", "EVOLVING", "INT_TYPE", "KAFKA", "KINESIS", "OUT", "RESTART", "SCENARIOS3", "STRING_VALUE",
    "Outcome3", "Restart3", "Scenario3", "outcome3", "request_shape", "text",
]

OUT, KAFKA, KINESIS = "e2e/out", "e2e/kafka", "e2e/kinesis"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
INT64_VALUE = "type.googleapis.com/google.protobuf.Int64Value"
ANY = "type.googleapis.com/google.protobuf.Any"
INT_TYPE = "io.statefun.types/int"
KAFKA_RECORD_TYPE = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
KINESIS_RECORD_TYPE = "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
DELAY_S = 4.0  # the delayed messages' delay: the cancellation must arrive before it

Sent = Tuple[str, bytes]  # (type name, value) as an ingress message
Record = Tuple[str, str, str, bytes]  # (record type name, topic or stream, key, value)


def text(value: str) -> bytes:
    return StringValue(value=value).SerializeToString()


def _sent(message: Message) -> Sent:
    return f"type.googleapis.com/{message.DESCRIPTOR.full_name}", message.SerializeToString()


@dataclass(frozen=True)
class Discovery:
    """A function with one state: its first request carries none and the reply declares it;
    every later one carries it (``<state>=-`` before a value is written, then
    ``<state>=<registered>``), ``invocations`` invocations in all after the first."""

    state: str
    registered: str
    invocations: int


@dataclass(frozen=True)
class Scenario3:
    """One function type; ``{id}`` in texts stands for the identity (its tag in a job)."""

    id: str
    function: str
    messages: Tuple[Sent, ...]  # sent back to back at the start ({id} in a StringValue's text)
    said: Tuple[str, ...]  # what it egresses to e2e/out, in this order
    said_in_any_order: Tuple[str, ...] = ()  # then these, in any order
    then: Optional[Tuple[str, Tuple[Sent, ...]]] = None  # once it said this text, send these
    kafka: Tuple[Record, ...] = ()
    kinesis: Tuple[Record, ...] = ()
    discovery: Optional[Discovery] = None  # None: no state, every request "- result"
    official: bool = False  # needs the official SDK's sdk33/echo

    def address(self, identity: str) -> str:
        return f"{self.function}/{identity}"

    def sends(self, identity: str, messages: Sequence[Sent]) -> List[Tuple[str, str, bytes]]:
        """``(address, type name, value)`` for the harness's stdin or LocalRuntime.send."""
        return [(self.address(identity), typename,
                 text(StringValue.FromString(value).value.format(id=identity)) if typename == STRING_VALUE
                 else value)
                for typename, value in messages]

    def expected(self, identity: str) -> Outcome3:
        said = [t.format(id=identity) for t in self.said] + sorted(t.format(id=identity)
                                                                    for t in self.said_in_any_order)
        records = [(a, b, c.format(id=identity), d) for a, b, c, d in self.kafka]
        streams = [(a, b, c.format(id=identity), d) for a, b, c, d in self.kinesis]
        if self.discovery is None:
            shape: Tuple[object, ...] = ("no state",)
        else:
            d = self.discovery
            shape = ("declared", d.state, d.registered, d.invocations)
        return Outcome3(said, records, streams, shape)


@dataclass
class Outcome3:
    """What a run of a scenario gave: the same on both runtimes."""

    said: List[str]
    kafka: List[Record]
    kinesis: List[Record]
    requests: Tuple[object, ...]  # see request_shape
    detail: List[List[str]] = field(default_factory=list, compare=False)  # the request log rows


def request_shape(scenario: Scenario3, rows: List[List[str]]) -> Tuple[object, ...]:
    """The request log rows (``[invocations, states, reply]``) of one address, summed up as
    :meth:`Scenario3.expected` states them, or why they do not fit."""
    if scenario.discovery is None:
        bad = [r for r in rows if r[1:] != ["-", "result"]]
        return ("no state",) if rows and not bad else ("unexpected", tuple(map(tuple, rows)))
    d = scenario.discovery
    fits = (len(rows) >= 2 and rows[0][1:] == ["-", f"missing:{d.state}"]
            and all(r[1] in (f"{d.state}=-", f"{d.state}={d.registered}") and r[2] == "result" for r in rows[1:])
            and rows[-1][1] == f"{d.state}={d.registered}")
    if not fits:
        return ("unexpected", tuple(map(tuple, rows)))
    return ("declared", d.state, d.registered, sum(int(r[0]) for r in rows[1:]))


def outcome3(scenario: Scenario3, identity: str, said: List[str], kafka: List[Record], kinesis: List[Record],
             rows: List[List[str]]) -> Outcome3:
    """An :class:`Outcome3` from what was egressed (``said``: e2e/out's texts of this
    address; records of this identity) and the request log rows of the address."""
    ordered = len(scenario.said)
    return Outcome3(said[:ordered] + sorted(said[ordered:]), kafka, kinesis, request_shape(scenario, rows), rows)


def kafka_record(typename: str, value: bytes) -> Record:
    record = KafkaProducerRecord.FromString(value)
    return typename, record.topic, record.key, record.value_bytes


def kinesis_record(typename: str, value: bytes) -> Record:
    record = KinesisEgressRecord.FromString(value)
    return typename, record.stream, record.partition_key, record.value_bytes


_A, _SEVEN, _B = StringValue(value="a"), Int64Value(value=7), StringValue(value="b")

SCENARIOS3: Tuple[Scenario3, ...] = (
    # State discovery and an Any state's round trip: each message stored, read back byte for byte.
    Scenario3(
        "an-any-states-round-trip", "e2e3/remember",
        messages=(_sent(_A), _sent(_SEVEN), _sent(_B)),
        said=("prev none", f"prev {STRING_VALUE} {_A.SerializeToString().hex()}",
              f"prev {INT64_VALUE} {_SEVEN.SerializeToString().hex()}"),
        discovery=Discovery("last", ANY, 3),
    ),
    # A typed state (io.statefun.types/int) written with another type: refused in the
    # function (UnexpectedMessageTypeError), the job goes on.
    Scenario3(
        "a-typed-state-refuses-another-type", "e2e3/typed",
        messages=((STRING_VALUE, text("x")),) * 3,
        said=tuple(line for n in (1, 2, 3) for line in ("refused UnexpectedMessageTypeError", f"n {n}")),
        discovery=Discovery("n", INT_TYPE, 3),
    ),
    # Delayed messages: 4 scheduled, number 2 cancelled before its time, an empty token refused.
    Scenario3(
        "delayed-messages-one-cancelled", "e2e3/delayer",
        messages=((STRING_VALUE, text(f"schedule 4 {DELAY_S}")),),
        then=("scheduled 4", ((STRING_VALUE, text("cancel 2")),)),
        said=("refused-empty ValueError", "scheduled 4", "cancelled 2"),
        said_in_any_order=("fired 0", "fired 1", "fired 3"),
    ),
    # Kafka and Kinesis records under the 3.x type names.
    Scenario3(
        "kafka-and-kinesis-records", "e2e3/records",
        messages=tuple((STRING_VALUE, text(f"r{n}")) for n in range(3)),
        said=(),
        kafka=tuple((KAFKA_RECORD_TYPE, "t3", "{id}", f"r{n}".encode()) for n in range(3)),
        kinesis=tuple((KINESIS_RECORD_TYPE, "s3", "{id}", f"r{n}".encode()) for n in range(3)),
    ),
    # Both ways with the official SDK: ours -> sdk33/echo (io.statefun.types/string) -> ours.
    Scenario3(
        "messages-both-ways-with-the-official-sdk", "e2e3/ping",
        messages=((STRING_VALUE, text("ping hello-{id}")),),
        said=("sent hello-{id}", "got pong hello-{id} from sdk33/echo/{id}"),
        official=True,
    ),
)


@dataclass(frozen=True)
class Restart3:
    """``before`` messages, then ``fail-once`` (answered 400 while the app's fail file exists:
    okhttp does not retry it, the job fails), the restart, then ``after`` messages.

    ``counts``: what the address egresses in all (each exactly once); ``outcomes``: the
    request log's replies, runs of ``result`` collapsed (see :func:`outcome_runs`);
    ``local_reason``/``runtime_log``: the failure after the restart, if any
    (LocalRuntime's ``FunctionCallFailedError.reason`` contains it; the real runtime's log)."""

    id: str
    address: str
    state: str
    before: int
    after: int
    said: Tuple[str, ...]
    outcomes: Tuple[str, ...]
    local_reason: str = ""
    runtime_log: str = ""


def outcome_runs(rows: List[List[str]], state: str) -> List[str]:
    """The request log rows of an address as ``declare`` (no state, the reply declares
    ``state``), ``failed`` (the 400), ``result`` (runs of them as one), or the row itself."""
    runs: List[str] = []
    for row in rows:
        states, reply = row[-2:]
        if [states, reply] == ["-", f"missing:{state}"]:
            token = "declare"
        elif reply == "failed" and states == f"{state}={ANY}":
            token = "failed"
        elif reply == "result" and states in (f"{state}=-", f"{state}={ANY}", f"{state}={INT_TYPE}"):
            token = "result"
        else:
            token = " ".join(row)
        if not (token == "result" and runs and runs[-1] == "result"):
            runs.append(token)
    return runs


RESTART = Restart3(
    "restart-declares-states-again", "e2e/counter/restart3", "count", before=10, after=5,
    said=tuple(str(n) for n in range(1, 17)),
    outcomes=("declare", "result", "failed", "declare", "result"),
)

EVOLVING = Restart3(
    "a-changed-state-type-fails-the-job", "e2e3/evolving/x", "n", before=5, after=0,
    said=tuple(f"n {n}" for n in range(1, 6)),
    outcomes=("declare", "result", "failed", "declare"),
    local_reason=(f"state 'n' was restored with type '{ANY}', and the reply declares it with type '{INT_TYPE}' "
                  "(RemoteValueTypeMismatchException)"),
    runtime_log=("RemoteValueTypeMismatchException: Previous type was: TypeName(type.googleapis.com, "
                 "google.protobuf.Any), new type is: TypeName(io.statefun.types, int)"),
)


def by_address(rows: List[List[str]]) -> Dict[str, List[List[str]]]:
    """3.x request log rows (``[protocol, address, invocations, states, reply]``) per address,
    without the protocol and address."""
    found: Dict[str, List[List[str]]] = {}
    for row in rows:
        if row and row[0] == "3.x":
            found.setdefault(row[1], []).append(row[2:])
    return found
