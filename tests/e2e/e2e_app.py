"""The WSGI app the end-to-end tests serve to the real StateFun runtime.

    gunicorn --worker-class gthread --workers 2 tests.e2e.e2e_app:wsgi

It serves, on ``/statefun``, the greeter example's functions (``example/greeter``,
``example/formatter``, unchanged) and a few functions that exist only for the e2e
tests. Each of those egresses a ``google.protobuf.StringValue`` reading
``"<namespace>/<type>/<id> <count>"`` to ``e2e/out``, so the test can tell the
addresses apart in the one egress file:

``e2e/counter``   state ``count``: +1 per message.
``e2e/expiring``  state ``seen``: +1 per message, except that a ``StringValue("peek")``
                  egresses the count without writing it; module.yaml registers it with
                  ``expireAfter``, so after the expiry the count restarts at 1.
``e2e/flaky``     state ``count``: +1 per message, but first raises (HTTP 500, which the
                  runtime retries) while the number in the file ``$E2E_FLAKY_FILE`` is
                  above 0, decrementing it (under an ``fcntl`` lock) on every raise.
``e2e/bulk``      state ``count``: +1 per message, as e2e/counter; module.yaml lets the
                  runtime batch up to 500 messages for it (large requests).

The scenario table (``tests/e2e/scenarios.py``) drives one more function, bound to
each type of :data:`SCENARIO_TYPES` (one type per module.yaml setting). Each message
is a ``StringValue`` command; every command but ``fanout`` and ``unknown-mutation``
ends as ``count`` does (state ``count`` +1, egressed to ``e2e/out``):

``count``                  just that;
``sleep S``                sleep S seconds first;
``fanout N NS/TYPE/ID``    send N ``count`` messages to that address, in one reply;
``fail-until S``           raise (a 500) until S seconds after this address's first call;
``slow-first N S``         sleep S seconds in this address's first N calls;
``kafka-string-once``      the first time: also a ``StringValue`` to the Kafka egress
                           ``e2e/kafka``, which takes only ``KafkaProducerRecord``;
``empty [S]``              (sleep S seconds); the reply body is then dropped: the
                           runtime gets a 200 with an empty body;
``unknown-mutation``       nothing; the reply then carries a mutation of ``count`` of
                           an unknown type (7, value 99).

Per-address bookkeeping (first call, calls left, when each invocation started) lives in
files under ``$E2E_SCENARIO_DIR``, shared by the workers.

With ``$E2E_BATCH_LOG`` set, every request to ``/statefun`` appends one line
``<namespace>/<type>/<id> <number of invocations> ok|error <body bytes> <body wait ms>``
to that file (one ``write`` on an ``O_APPEND`` descriptor, so lines from both workers
never mix): the test reads from it how the runtime batched and retried, and how long
each request's body took to arrive after the request reached the app.

``wsgi3`` serves the same functions with a request log for the StateFun 3.x e2e tests
(tests/e2e/test_flink3_ours.py), and the ``e2e3`` functions described above it.

The example's registry is not modified: its functions are registered again on a
registry of our own.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from datetime import timedelta
from typing import Callable, Union

from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from examples.greeter.functions import functions as greeter_functions
from statefun_wsgi import (
    IntWrapper,
    RequestReplyHandler,
    StatefulFunctions,
    StatefunMiddleware,
    StringWrapper,
    UnexpectedMessageTypeError,
    ValueSpec,
    detect_protocol,
    kafka_egress_record,
    kinesis_egress_record,
)
from statefun_wsgi._proto import request_reply_v3_pb2 as v3
from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction
from statefun_wsgi.errors import RequestError
from statefun_wsgi.context import pack_any

__all__ = [
    "KAFKA_EGRESS", "KINESIS_EGRESS", "OUT_EGRESS", "SCENARIO_TYPES", "RecordingHandler", "ScenarioReplies", "StateLog",
    "functions", "wsgi", "wsgi3",
]

#: The egress every e2e-only function writes to.
OUT_EGRESS = "e2e/out"
#: A generic Kafka egress (module.yaml declares it for the scenario table).
KAFKA_EGRESS = "e2e/kafka"
#: The types the scenario function is bound to.
SCENARIO_TYPES = (
    "e2e/batching", "e2e/fanout", "e2e/threshold2", "e2e/nolimit", "e2e/unlimited", "e2e/recovering",
    "e2e/slow", "e2e/kafka-out", "e2e/empty", "e2e/mutation", "e2e/exhausted",
)
UNKNOWN_MUTATION_TYPE = 7

functions = StatefulFunctions()
for _function in greeter_functions:
    functions.register(_function.typename, _function.func, _function.states)


class FlakyFailure(RuntimeError):
    """Raised by e2e/flaky while its failure budget lasts."""


def _increment(context, state_name: str) -> int:
    count = context.state(state_name).unpack(Int64Value) or Int64Value()
    count.value += 1
    context.state(state_name).pack(count)
    address = context.address
    context.pack_and_send_egress(
        OUT_EGRESS, StringValue(value=f"{address.namespace}/{address.type}/{address.identity} {count.value}")
    )
    return count.value


@functions.bind("e2e/counter", states=["count"])
def counter(context, message: Any) -> None:
    _increment(context, "count")


@functions.bind("e2e/expiring", states=["seen"])
def expiring(context, message: Any) -> None:
    if message.Is(StringValue.DESCRIPTOR):
        text = StringValue.FromString(message.value).value
        if text == "peek":  # egress the count without writing the state (a read only)
            seen = context.state("seen").unpack(Int64Value) or Int64Value()
            address = context.address
            context.pack_and_send_egress(
                OUT_EGRESS, StringValue(value=f"{address.namespace}/{address.type}/{address.identity} {seen.value}")
            )
            return
    _increment(context, "seen")


def take_failure(path: Union[str, os.PathLike, None]) -> bool:
    """Decrement the number in ``path`` if above 0 (under an exclusive lock); True if it was."""
    if not path:
        return False
    with open(path, "r+") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            left = int(file.read().strip() or "0")
            if left <= 0:
                return False
            file.seek(0)
            file.truncate()
            file.write(f"{left - 1}\n")
            file.flush()
            os.fsync(file.fileno())
            return True
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


@functions.bind("e2e/flaky", states=["count"])
def flaky(context, message: Any) -> None:
    if take_failure(os.environ.get("E2E_FLAKY_FILE")):
        raise FlakyFailure("e2e/flaky fails on purpose (failures left in $E2E_FLAKY_FILE)")
    _increment(context, "count")


@functions.bind("e2e/bulk", states=["count"])
def bulk(context, message: Any) -> None:
    _increment(context, "count")


def _scenario_file(context, suffix: str) -> str:
    address = context.address
    name = f"{address.namespace}_{address.type}_{address.identity}.{suffix}".replace("/", "_")
    return os.path.join(os.environ["E2E_SCENARIO_DIR"], name)


def _first_call(context) -> float:
    """When this address was first called (time.monotonic(), the same in every process)."""
    path = _scenario_file(context, "first")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        with open(path) as file:
            return float(file.read())
    with os.fdopen(fd, "w") as file:
        now = time.monotonic()
        file.write(repr(now))
    return now


def _take_call(context, name: str, calls: int) -> bool:
    """True for this address's first ``calls`` calls (counted in a file per ``name``)."""
    path = _scenario_file(context, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as file:
            file.write(f"{calls}\n")
    except FileExistsError:
        pass
    return take_failure(path)


def scenario(context, message: StringValue) -> None:
    fd = os.open(_scenario_file(context, "calls"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:  # when each invocation started, one line each (scenarios.call_times)
        os.write(fd, f"{time.monotonic()!r}\n".encode())
    finally:
        os.close(fd)
    words = message.value.split()
    command = words[0] if words else "count"
    if command == "fanout":
        namespace, type_name, identity = words[2].rsplit("/", 2)
        for _ in range(int(words[1])):
            context.pack_and_send(f"{namespace}/{type_name}", identity, StringValue(value="count"))
        return
    if command == "unknown-mutation":
        return
    if command == "sleep" or (command == "empty" and len(words) > 1):
        time.sleep(float(words[1]))
    elif command == "fail-until":
        if time.monotonic() - _first_call(context) < float(words[1]):
            raise FlakyFailure(f"{message.value}: not yet")
    elif command == "slow-first":
        if _take_call(context, "slow", int(words[1])):
            time.sleep(float(words[2]))
    elif command == "kafka-string-once":
        if _take_call(context, "kafka", 1):
            context.pack_and_send_egress(KAFKA_EGRESS, StringValue(value="not a KafkaProducerRecord"))
    _increment(context, "count")


for _type in SCENARIO_TYPES:
    functions.register(_type, scenario, ["count"])


class ScenarioReplies:
    """A ``bytes -> bytes`` batch handler that edits the replies of ``empty`` and
    ``unknown-mutation`` batches (see the module docstring)."""

    def __init__(self, handler: Callable[[bytes], bytes]) -> None:
        self.handler = handler

    def __call__(self, body: bytes) -> bytes:
        reply = self.handler(body)
        commands = [
            StringValue.FromString(invocation.argument.value).value.split()[:1]
            for invocation in ToFunction.FromString(bytes(body)).invocation.invocations
            if invocation.argument.type_url.endswith("/google.protobuf.StringValue")
        ]
        if ["empty"] in commands:
            return b""
        if ["unknown-mutation"] in commands:
            response = FromFunction.FromString(reply)
            response.invocation_result.state_mutations.add(
                state_name="count", mutation_type=UNKNOWN_MUTATION_TYPE,
                state_value=pack_any(Int64Value(value=99)).SerializeToString(),
            )
            return response.SerializeToString()
        return reply


#: When the current thread's request reached the app (time.monotonic()).
_arrival = threading.local()


class ArrivalTimer:
    """WSGI wrapper: notes when each request reaches the app, for the batch log's body wait."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        _arrival.at = time.monotonic()
        return self.app(environ, start_response)


class RecordingHandler:
    """A ``bytes -> bytes`` batch handler that logs each batch's target, size, outcome, bytes,
    and how long its body took to arrive (it is called, in the request's thread, once the
    middleware has read the body)."""

    def __init__(self, handler: Callable[[bytes], bytes], log_path: str) -> None:
        self.handler = handler
        self.log_path = log_path

    def __call__(self, body: bytes) -> bytes:
        body_wait = time.monotonic() - getattr(_arrival, "at", time.monotonic())
        outcome = "error"
        try:
            reply = self.handler(body)
            outcome = "ok"
            return reply
        finally:
            self._record(body, outcome, body_wait)

    def _record(self, body: bytes, outcome: str, body_wait: float) -> None:
        timing = f"{len(body)} {body_wait * 1000:.1f}"
        try:
            batch = ToFunction.FromString(bytes(body)).invocation
            target = batch.target
            line = f"{target.namespace}/{target.type}/{target.id} {len(batch.invocations)} {outcome} {timing}\n"
        except Exception:  # a body that is not a batch: the handler answers 400 anyway
            line = f"? 0 {outcome} {timing}\n"
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


_handler = ScenarioReplies(RequestReplyHandler(functions))
_batch_log = os.environ.get("E2E_BATCH_LOG")
wsgi = StatefunMiddleware(None, RecordingHandler(_handler, _batch_log) if _batch_log else _handler)
if _batch_log:
    wsgi = ArrivalTimer(wsgi)


# -- StateFun 3.x e2e (tests/e2e/test_flink3_ours.py) -----------------------------------------------
#
# Functions of the namespace ``e2e3``, each egressing ``StringValue("<ns>/<type>/<id> <text>")``
# to ``e2e/out``; served by :data:`wsgi3` (the same registry).
#
# ``e2e3/remember``  untyped state ``last`` (an Any): egresses ``prev <type_url> <hex value>``
#                    (or ``prev none``), then stores the message itself, whatever its type.
# ``e2e3/typed``     typed state ``n`` (``ValueSpec("n", IntWrapper)``, registered as
#                    ``io.statefun.types/int``): first tries to write a ``StringValue`` there,
#                    egressing ``refused <exception class>`` when the endpoint refuses it, then
#                    counts: ``n <count>``.
# ``e2e3/delayer``   ``schedule N S``: N messages ``fire i`` to itself after S seconds, with the
#                    tokens ``<id>-i``, after trying an empty token (``refused-empty ValueError``);
#                    ``cancel i``: cancels ``<id>-i``; ``fire i``: egresses ``fired i``.
# ``e2e3/records``   each message ``T``: a Kafka record (topic ``t3``, key the id, value T) to
#                    ``e2e/kafka`` and a Kinesis record (stream ``s3``, partition key the id) to
#                    ``e2e/kinesis``.
# ``e2e3/evolving``  state ``n``, counted: an Any (``Int64Value``), or, when the file
#                    ``$E2E_STATE_TYPE_FILE`` reads ``int`` as the app is imported (a new version
#                    of the app), ``ValueSpec("n", IntWrapper)``.
# ``e2e3/ping``      ``ping T``: sends ``StringWrapper("T")`` (``io.statefun.types/string``) to
#                    ``sdk33/echo`` (the official SDK's, tests/e2e/official33_app.py) with the
#                    same id; a ``StringWrapper`` from there egresses ``got <text> from <caller>``.
#
# With ``$E2E_REQUEST_LOG3`` set, :data:`wsgi3` appends one line per request:
# ``<2.x|3.x> <ns>/<type>/<id> <invocations> <states> <reply>``, where ``<states>`` is
# ``name=<typename or ->`` comma-separated (3.x; ``-`` for none) and ``<reply>`` ``result``,
# ``missing:<names>`` or ``failed``. With ``$E2E_FAIL_FILE`` set, a request holding a message
# ``StringValue("fail-once")`` while that file exists deletes it and is answered 400 (a
# :class:`~statefun_wsgi.errors.RequestError`), which the okhttp transport does not retry.

KINESIS_EGRESS = "e2e/kinesis"
STRING_TYPENAME = "io.statefun.types/string"


def _say(context, text: str) -> None:
    address = context.address
    context.pack_and_send_egress(
        OUT_EGRESS, StringValue(value=f"{address.namespace}/{address.type}/{address.identity} {text}"))


def _text_of(message: Any) -> str:
    if message.type_url == STRING_TYPENAME:
        return StringWrapper.FromString(message.value).value
    return StringValue.FromString(message.value).value


@functions.bind("e2e3/remember", states=["last"])
def remember(context, message: Any) -> None:
    last = context["last"]
    _say(context, "prev none" if last is None else f"prev {last.type_url} {last.value.hex()}")
    context["last"] = message


@functions.bind("e2e3/typed", states=[ValueSpec("n", IntWrapper)])
def typed(context, message: Any) -> None:
    try:
        context.state("n").pack(StringValue(value="not an int"))
    except UnexpectedMessageTypeError as exc:
        _say(context, f"refused {type(exc).__name__}")
    count = context.state("n").unpack(IntWrapper) or IntWrapper()
    count.value += 1
    context.state("n").pack(count)
    _say(context, f"n {count.value}")


@functions.bind("e2e3/delayer")
def delayer(context, message: Any) -> None:
    words = _text_of(message).split()
    identity = context.address.identity
    if words[0] == "schedule":
        try:
            context.pack_and_send_after(timedelta(seconds=1), "e2e3/delayer", identity, StringValue(value="never"),
                                        cancellation_token="")
        except ValueError as exc:
            _say(context, f"refused-empty {type(exc).__name__}")
        for index in range(int(words[1])):
            context.pack_and_send_after(timedelta(seconds=float(words[2])), "e2e3/delayer", identity,
                                        StringValue(value=f"fire {index}"), cancellation_token=f"{identity}-{index}")
        _say(context, f"scheduled {words[1]}")
    elif words[0] == "cancel":
        context.cancel_delayed_message(f"{identity}-{words[1]}")
        _say(context, f"cancelled {words[1]}")
    else:
        _say(context, f"fired {words[1]}")


@functions.bind("e2e3/records")
def records(context, message: Any) -> None:
    text, identity = _text_of(message), context.address.identity
    context.pack_and_send_egress(KAFKA_EGRESS, kafka_egress_record(topic="t3", value=text, key=identity))
    context.pack_and_send_egress(KINESIS_EGRESS, kinesis_egress_record(stream="s3", value=text,
                                                                       partition_key=identity))


@functions.bind("e2e3/ping")
def ping(context, message: Any) -> None:
    text = _text_of(message)
    caller = context.caller
    if caller is not None and caller.namespace == "sdk33":
        _say(context, f"got {text} from {caller.namespace}/{caller.type}/{caller.identity}")
        return
    payload = text.split(" ", 1)[1]
    context.pack_and_send("sdk33/echo", context.address.identity, StringWrapper(value=payload))
    _say(context, f"sent {payload}")


def _evolved() -> bool:
    """True when ``$E2E_STATE_TYPE_FILE`` reads ``int``: the app's "second version" (read at import)."""
    path = os.environ.get("E2E_STATE_TYPE_FILE")
    if not path or not os.path.exists(path):
        return False
    with open(path) as file:
        return file.read().strip() == "int"


_EVOLVED = _evolved()


@functions.bind("e2e3/evolving", states=[ValueSpec("n", IntWrapper) if _EVOLVED else "n"])
def evolving(context, message: Any) -> None:
    if _EVOLVED:
        count = context.state("n").unpack(IntWrapper) or IntWrapper()
    else:
        count = context.state("n").unpack(Int64Value) or Int64Value()
    count.value += 1
    context.state("n").pack(count)
    _say(context, f"n {count.value}")


class FailingOnce(RequestError):
    """Answered 400 to a request holding ``fail-once`` while ``$E2E_FAIL_FILE`` exists."""


_FAIL_ONCE = StringValue(value="fail-once").SerializeToString()


class StateLog:
    """A ``bytes -> bytes`` batch handler that logs what each request carried and how it was
    answered (see above), and fails once on ``fail-once``."""

    def __init__(self, handler: Callable[[bytes], bytes], log_path: str, fail_file: str) -> None:
        self.handler = handler
        self.log_path = log_path
        self.fail_file = fail_file

    def __call__(self, body: bytes) -> bytes:
        body = bytes(body)
        protocol = detect_protocol(body) or "2.x"
        if protocol == "3.x":
            batch = v3.ToFunction.FromString(body).invocation
            states = ",".join(f"{s.state_name}={s.state_value.typename if s.state_value.has_value else '-'}"
                              for s in batch.state) or "-"
            failing = self.fail_file and any(i.argument.value == _FAIL_ONCE for i in batch.invocations)
        else:
            batch = ToFunction.FromString(body).invocation
            states = ",".join(s.state_name for s in batch.state) or "-"
            failing = self.fail_file and any(i.argument.value == _FAIL_ONCE for i in batch.invocations)
        target = f"{batch.target.namespace}/{batch.target.type}/{batch.target.id}"
        head = f"{protocol} {target} {len(batch.invocations)} {states}"
        if failing and os.path.exists(self.fail_file):
            try:
                os.unlink(self.fail_file)  # atomic: one request wins
            except FileNotFoundError:
                pass
            else:
                self._write(f"{head} failed\n")
                raise FailingOnce("failing once, as asked")
        reply = self.handler(body)
        outcome = "result"
        if protocol == "3.x":
            answer = v3.FromFunction.FromString(reply)
            if answer.HasField("incomplete_invocation_context"):
                outcome = "missing:" + ",".join(
                    spec.state_name for spec in answer.incomplete_invocation_context.missing_values)
        self._write(f"{head} {outcome}\n")
        return reply

    def _write(self, line: str) -> None:
        if not self.log_path:
            return
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


#: Our app for the 3.x e2e tests: the same functions, with the request log and fail-once above.
wsgi3 = StatefunMiddleware(None, StateLog(_handler, os.environ.get("E2E_REQUEST_LOG3", ""),
                                          os.environ.get("E2E_FAIL_FILE", "")))
