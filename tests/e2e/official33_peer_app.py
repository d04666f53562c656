"""A peer written in the official Apache Flink StateFun 3.3 Python SDK's API, as a WSGI app, for
tests/e2e/test_flink3_v3exchange.py: it answers a statefun_wsgi.v3 function
(tests/e2e/v3api_peer_app.py) on the real 3.3.0 runtime.

    bash tests/e2e/statefun_sdk_setup.sh      # the SDK's own virtualenv (protobuf 3.20)
    tests/e2e/.venv-statefun33/bin/python -m gunicorn --worker-class gthread --threads 4 \\
        tests.e2e.official33_peer_app:app

It runs only in that virtualenv, never in the project's; nothing here imports the project.
Every POST is answered by the SDK's own ``RequestReplyHandler.handle_sync``; a GET answers 200.

``sdk33peer/peer``  takes a message of one of four types from a caller: ``IntType``,
                    ``StringType``, ``make_protobuf_type(Duration)`` or ``make_json_type("e2e/point")``.
                    It keeps the value in that type's state (``got_int``, ``got_str``, ``got_pb``,
                    ``got_json``, each of that type) and counts messages in ``seen`` (``IntType``);
                    egresses to ``e2e/out`` (``StringType``) the JSON text
                    ``{"side": "official", "id", "kind", "value", "prev", "seen"}`` (``prev``: the
                    state's value before; a Duration as ``[seconds, nanos]``); and answers the caller
                    with a value of the same type: the int + 1, ``"official saw " + text``, the
                    Duration + 1 s, the JSON object with ``"seen_by": "official"`` added.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, List, Tuple

from google.protobuf.duration_pb2 import Duration
from statefun import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    make_json_type,
    make_protobuf_type,
    message_builder,
)

DurationType = make_protobuf_type(Duration)
PointType = make_json_type("e2e/point")
KINDS = {"int": IntType, "str": StringType, "pb": DurationType, "json": PointType}

functions = StatefulFunctions()


def shown(value: Any) -> Any:
    """A value as JSON: a Duration as [seconds, nanos]."""
    return [value.seconds, value.nanos] if isinstance(value, Duration) else value


def answer(kind: str, value: Any) -> Any:
    if kind == "int":
        return value + 1
    if kind == "str":
        return f"official saw {value}"
    if kind == "pb":
        return Duration(seconds=value.seconds + 1, nanos=value.nanos)
    return {**value, "seen_by": "official"}


@functions.bind(typename="sdk33peer/peer",
                specs=[ValueSpec(name=f"got_{kind}", type=tpe) for kind, tpe in KINDS.items()]
                + [ValueSpec(name="seen", type=IntType)])
def peer(context: Context, message: Message) -> None:
    kind = next(kind for kind, tpe in KINDS.items() if message.is_type(tpe))
    value = message.as_type(KINDS[kind])
    storage = context.storage
    previous = getattr(storage, f"got_{kind}")
    setattr(storage, f"got_{kind}", value)
    storage.seen = (storage.seen or 0) + 1
    report = {"side": "official", "id": context.address.id, "kind": kind, "value": shown(value),
              "prev": shown(previous), "seen": storage.seen}
    context.send_egress(egress_message_builder(target_typename="e2e/out", value=json.dumps(report),
                                               value_type=StringType))
    caller = context.caller
    context.send(message_builder(target_typename=f"{caller.namespace}/{caller.name}", target_id=caller.id,
                                 value=answer(kind, value), value_type=KINDS[kind]))


handler = RequestReplyHandler(functions)


def app(environ: dict, start_response: Callable[[str, List[Tuple[str, str]]], object]) -> Iterable[bytes]:
    """The WSGI app: POST (any path) -> the SDK's handle_sync; anything else -> 200 (readiness)."""
    if environ["REQUEST_METHOD"] != "POST":
        body = b"official StateFun 3.3 Python SDK\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    reply = handler.handle_sync(environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(reply)))])
    return [reply]
