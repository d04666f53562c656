"""The benchmark's function logic, written once for both SDKs.

The functions below run unchanged under ``statefun_wsgi`` and under the official
``statefun`` 2.2.2 SDK: they use only the API the two share (``context[name]`` to
get and set a state as a ``google.protobuf.Any``, ``context.address``,
``pack_and_send``, ``pack_and_send_after``, ``pack_and_send_egress``, and a message
type hint on the second parameter). Usage::

    import scenarios
    scenarios.register(functions)   # a StatefulFunctions of either SDK

This module must not use ``from __future__ import annotations``: the official SDK
reads the hints with ``inspect.getfullargspec`` and needs the classes themselves.
It imports nothing from either SDK, so it loads under any of the benchmark's
interpreters (protobuf 3.20 to 7.x).
"""

from datetime import timedelta

from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue

__all__ = ["FUNCTIONS", "register"]

FIVE_SECONDS = timedelta(seconds=5)


def _get(context, name, cls):
    """State ``name`` unpacked into a new ``cls`` (its default when absent)."""
    message = cls()
    box = context[name]
    if box is not None and not box.Unpack(message):
        raise TypeError("state %r holds a %s, not a %s" % (name, box.type_url, cls.DESCRIPTOR.full_name))
    return message


def _set(context, name, message):
    box = Any()
    box.Pack(message)
    context[name] = box


def counter(context, message: StringValue):
    """``bench/counter``: count += 1, store it, and send it to the egress ``bench/out``."""
    count = _get(context, "count", Int64Value)
    count.value += 1
    _set(context, "count", count)
    context.pack_and_send_egress("bench/out", count)


def fanout(context, message: Int64Value):
    """``bench/fanout``: 10 messages to peers, one delayed message to itself, three states written."""
    base = message.value
    for i in range(10):
        context.pack_and_send("bench/counter", "peer-%d" % i, Int64Value(value=base + i))
    me = context.address
    context.pack_and_send_after(FIVE_SECONDS, "bench/fanout", me.identity, Int64Value(value=1))
    s1 = _get(context, "s1", Int64Value)
    s1.value += 1
    _set(context, "s1", s1)
    _set(context, "s2", StringValue(value="fanout-done"))
    _set(context, "s3", Int64Value(value=base))


def blob(context, message: StringValue):
    """``bench/blob``: read a large BytesValue state, rotate it left by one byte, store it."""
    data = _get(context, "blob", BytesValue).value
    _set(context, "blob", BytesValue(value=data[1:] + data[:1]))


#: function type -> function
FUNCTIONS = {
    "bench/counter": counter,
    "bench/fanout": fanout,
    "bench/blob": blob,
}


def register(functions):
    """Bind every benchmark function into ``functions`` (a ``StatefulFunctions`` of either SDK)."""
    for typename, function in FUNCTIONS.items():
        functions.bind(typename)(function)
    return functions
