"""Functions written against statefun_wsgi.v3 (the official 3.3 API on statefun-wsgi) that
exchange messages with a function of the official SDK (tests/e2e/official33_peer_app.py) on the
real 3.3.0 runtime, for tests/e2e/test_flink3_v3exchange.py::

    python -m gunicorn --worker-class gthread --threads 4 tests.e2e.v3api_peer_app:wsgi    # /statefun

``ours33/driver`` (plain ``def``) and ``ours33/adriver`` (``async def``, the same otherwise):

- a ``StringType`` message from the ingress starts a round: ``rounds`` (``IntType``) + 1 = r,
  and four messages to ``sdk33peer/peer/<same id>``: the int 10·r (``IntType``), ``"hello r"``
  (``StringType``), ``Duration(seconds=r, nanos=7)`` (``make_protobuf_type(Duration)``) and
  ``{"round": r, "tags": ["a", "ü"]}`` (``make_json_type("e2e/point")``);
- a message from the peer (its answer) is kept in that type's state (``got_int``, ``got_str``,
  ``got_pb``, ``got_json``, each of that type) and egressed to ``e2e/out`` (``StringType``) as the
  JSON text ``{"side": "ours", "id", "kind", "value", "prev"}``, as the peer reports its side.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from google.protobuf.duration_pb2 import Duration

from statefun_wsgi import StatefunMiddleware
from statefun_wsgi.v3 import (
    Context,
    IntType,
    Message,
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
PEER = "sdk33peer/peer"
SPECS = [ValueSpec("rounds", IntType)] + [ValueSpec(f"got_{kind}", tpe) for kind, tpe in KINDS.items()]

functions = StatefulFunctions()


def shown(value: Any) -> Any:
    """A value as JSON: a Duration as [seconds, nanos]."""
    return [value.seconds, value.nanos] if isinstance(value, Duration) else value


def drive(context: Context, message: Message) -> None:
    caller = context.caller
    storage = context.storage
    if caller is None:  # the ingress: a round
        assert message.is_string(), message.value_typename()
        r = storage.rounds = (storage.rounds or 0) + 1
        identity = context.address.id
        context.send(message_builder(PEER, identity, int_value=10 * r))
        context.send(message_builder(PEER, identity, str_value=f"hello {r}"))
        context.send(message_builder(PEER, identity, value=Duration(seconds=r, nanos=7), value_type=DurationType))
        context.send(message_builder(PEER, identity, value={"round": r, "tags": ["a", "ü"]}, value_type=PointType))
        return
    assert f"{caller.namespace}/{caller.name}" == PEER, caller
    kind = next(kind for kind, tpe in KINDS.items() if message.is_type(tpe))
    value = message.as_type(KINDS[kind])
    previous = getattr(storage, f"got_{kind}")
    setattr(storage, f"got_{kind}", value)
    report = {"side": "ours", "id": context.address.id, "kind": kind, "value": shown(value), "prev": shown(previous)}
    context.send_egress(egress_message_builder("e2e/out", json.dumps(report), StringType))


@functions.bind("ours33/driver", specs=SPECS)
def driver(context: Context, message: Message) -> None:
    drive(context, message)


@functions.bind("ours33/adriver", specs=SPECS)
async def adriver(context: Context, message: Message) -> None:
    await asyncio.sleep(0)
    drive(context, message)


wsgi = StatefunMiddleware(None, functions, runtime_listeners=None)
