"""The benchmark's function logic in the official StateFun 3.3 Python SDK's API.

The same logic as ``bench/scenarios.py`` (which statefun_wsgi runs, for both
protocols), written for ``apache-flink-statefun==3.3.0`` so that it answers the same
3.x request bytes with the same content: its states are declared as
``make_protobuf_type(Any)`` (what statefun_wsgi declares: a state holding a serialized
``google.protobuf.Any``), its messages are protobuf types (``type.googleapis.com/...``).
Usage, in a worker with the official 3.3 SDK installed::

    import scenarios_v3
    scenarios_v3.register(functions)   # a statefun.StatefulFunctions (3.3)
"""

from datetime import timedelta

from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue
from statefun import ValueSpec, egress_message_builder, make_protobuf_type, message_builder

__all__ = ["register"]

FIVE_SECONDS = timedelta(seconds=5)
ANY = make_protobuf_type(Any)
INT64 = make_protobuf_type(Int64Value)
STRING = make_protobuf_type(StringValue)


def _get(box, cls):
    """A state's Any unpacked into a new ``cls`` (its default when absent)."""
    message = cls()
    if box is not None and not box.Unpack(message):
        raise TypeError("the state holds a %s, not a %s" % (box.type_url, cls.DESCRIPTOR.full_name))
    return message


def _pack(message):
    box = Any()
    box.Pack(message)
    return box


def counter(context, message):
    """``bench/counter``: count += 1, store it, and send it to the egress ``bench/out``."""
    message.as_type(STRING)  # read as the 2.x function's annotation does
    count = _get(context.storage.count, Int64Value)
    count.value += 1
    context.storage.count = _pack(count)
    context.send_egress(egress_message_builder("bench/out", count, INT64))


def fanout(context, message):
    """``bench/fanout``: 10 messages to peers, one delayed message to itself, three states written."""
    base = message.as_type(INT64).value
    for i in range(10):
        context.send(message_builder("bench/counter", "peer-%d" % i, value=Int64Value(value=base + i), value_type=INT64))
    context.send_after(
        FIVE_SECONDS, message_builder("bench/fanout", context.address.id, value=Int64Value(value=1), value_type=INT64)
    )
    s1 = _get(context.storage.s1, Int64Value)
    s1.value += 1
    context.storage.s1 = _pack(s1)
    context.storage.s2 = _pack(StringValue(value="fanout-done"))
    context.storage.s3 = _pack(Int64Value(value=base))


def blob(context, message):
    """``bench/blob``: read a large BytesValue state, rotate it left by one byte, store it."""
    message.as_type(STRING)
    data = _get(context.storage.blob, BytesValue).value
    context.storage.blob = _pack(BytesValue(value=data[1:] + data[:1]))


def register(functions):
    """Bind every benchmark function into ``functions`` (a 3.3 ``StatefulFunctions``)."""
    functions.bind("bench/counter", specs=[ValueSpec("count", ANY)])(counter)
    functions.bind("bench/fanout", specs=[ValueSpec(name, ANY) for name in ("s1", "s2", "s3")])(fanout)
    functions.bind("bench/blob", specs=[ValueSpec("blob", ANY)])(blob)
    return functions
