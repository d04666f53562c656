"""A counter written in the official Apache Flink StateFun 3.3 Python SDK's API, as a WSGI app.

    bash tests/e2e/statefun_sdk_setup.sh      # the SDK's own virtualenv (protobuf 3.20)
    tests/e2e/.venv-statefun33/bin/python -m gunicorn --worker-class gthread --threads 4 \\
        tests.e2e.official33_app:app

It runs only in that virtualenv (``apache-flink-statefun==3.3.0`` needs ``protobuf<4``), never in
the project's; nothing here imports the project. Every POST is answered by the SDK's own
``RequestReplyHandler.handle_sync``; a GET answers 200 (readiness).

``sdk33/counter``  state ``count`` (``IntType``, declared in code: the runtime learns it from the
                   first reply, ``incomplete_invocation_context``): +1 per message; each message
                   egresses ``"<namespace>/<type>/<id> <count>"`` (``StringType``) to ``e2e/out``
                   and a Kafka record (topic ``counts``, key the id, value the count as text) to
                   ``e2e/kafka``.

``sdk33/echo``     a message ``T`` (``StringType``) from a caller: sends ``"pong T"`` (``StringType``)
                   back to the caller (our app's ``e2e3/ping``, tests/e2e/test_flink3_ours.py).

``sdk33/bad-kafka`` sends a ``StringType`` record to ``e2e/kafka``; the generic Kafka egress
                   takes only ``KafkaProducerRecord``s, so this fails the job (a test of the
                   harness's egress check).

With ``$E2E_FAIL_FILE`` set, a request holding a message ``"fail-once"`` (``StringType``) while
that file exists deletes it and is answered 400, which the okhttp transport does not retry: the
job fails and restarts from its last checkpoint, and the replayed message goes through.

With ``$E2E_REQUEST_LOG`` set, every POST appends one line
``<namespace>/<type>/<id> <invocations> <state names, comma-separated, or -> <reply>``, where
``<reply>`` is ``result``, ``missing:<state names>`` or ``failed`` (the 400 above); one ``write``
on an ``O_APPEND`` descriptor, so lines from several threads or workers never mix.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, List, Tuple

from statefun import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    kafka_egress_message,
    message_builder,
)
from statefun.request_reply_pb2 import FromFunction, ToFunction
from statefun.types_pb2 import StringWrapper

OUT_EGRESS = "e2e/out"
KAFKA_EGRESS = "e2e/kafka"

functions = StatefulFunctions()


@functions.bind(typename="sdk33/counter", specs=[ValueSpec(name="count", type=IntType)])
def counter(context: Context, message: Message) -> None:
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    address = context.address
    context.send_egress(egress_message_builder(
        target_typename=OUT_EGRESS, value=f"{address.namespace}/{address.name}/{address.id} {count}",
        value_type=StringType))
    context.send_egress(kafka_egress_message(
        typename=KAFKA_EGRESS, topic="counts", key=address.id, value=str(count)))


@functions.bind(typename="sdk33/echo")
def echo(context: Context, message: Message) -> None:
    caller = context.caller
    if caller is None:
        return
    context.send(message_builder(target_typename=f"{caller.namespace}/{caller.name}", target_id=caller.id,
                                 str_value=f"pong {message.as_string()}"))


@functions.bind(typename="sdk33/bad-kafka")
def bad_kafka(context: Context, message: Message) -> None:
    context.send_egress(egress_message_builder(target_typename=KAFKA_EGRESS, value="not a record",
                                               value_type=StringType))


handler = RequestReplyHandler(functions)

_FAIL_FILE = os.environ.get("E2E_FAIL_FILE")
_FAIL_ONCE = StringWrapper(value="fail-once").SerializeToString()

_LOG = os.environ.get("E2E_REQUEST_LOG")
_LOG_FD = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if _LOG else None


def _log(request: bytes, reply: bytes = b"", outcome: str = "") -> None:
    """One request log line; the outcome is read from ``reply`` unless given."""
    batch = ToFunction.FromString(request).invocation
    target = f"{batch.target.namespace}/{batch.target.type}/{batch.target.id}"
    states = ",".join(state.state_name for state in batch.state) or "-"
    if not outcome:
        answer = FromFunction.FromString(reply)
        if answer.HasField("incomplete_invocation_context"):
            outcome = "missing:" + ",".join(
                spec.state_name for spec in answer.incomplete_invocation_context.missing_values)
        else:
            outcome = "result"
    assert _LOG_FD is not None
    os.write(_LOG_FD, f"{target} {len(batch.invocations)} {states} {outcome}\n".encode())


def _fail_once(request: bytes) -> bool:
    """True for a request with a "fail-once" message while $E2E_FAIL_FILE exists (deleting it)."""
    if not _FAIL_FILE or not os.path.exists(_FAIL_FILE):
        return False
    if not any(i.argument.value == _FAIL_ONCE for i in ToFunction.FromString(request).invocation.invocations):
        return False
    try:
        os.unlink(_FAIL_FILE)  # atomic: one request wins
    except FileNotFoundError:
        return False
    return True


def app(environ: dict, start_response: Callable[[str, List[Tuple[str, str]]], object]) -> Iterable[bytes]:
    """The WSGI app: POST (any path) -> the SDK's handle_sync; anything else -> 200 (readiness)."""
    if environ["REQUEST_METHOD"] != "POST":
        body = b"official StateFun 3.3 Python SDK\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    request = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    if _fail_once(request):
        body = b"failing once, as asked\n"
        start_response("400 Bad Request", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        if _LOG_FD is not None:
            _log(request, outcome="failed")
        return [body]
    reply = handler.handle_sync(request)
    if _LOG_FD is not None:
        _log(request, reply)
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(reply)))])
    return [reply]
