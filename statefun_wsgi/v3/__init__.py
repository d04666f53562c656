"""The official StateFun 3.3 Python API (``apache-flink-statefun`` 3.3.0), name for name,
served the way statefun-wsgi serves: change ``from statefun import ...`` to
``from statefun_wsgi.v3 import ...``.

Usage::

    from statefun_wsgi import StatefunMiddleware
    from statefun_wsgi.v3 import (Context, IntType, Message, StatefulFunctions, StringType, ValueSpec,
                                  egress_message_builder)

    functions = StatefulFunctions()

    @functions.bind("example/greeter", specs=[ValueSpec("seen", IntType)])
    def greet(context: Context, message: Message):
        seen = (context.storage.seen or 0) + 1
        context.storage.seen = seen
        context.send_egress(egress_message_builder("example/out", f"{message.as_string()} #{seen}", StringType))

    wsgi = StatefunMiddleware(None, functions)        # gunicorn app:wsgi

    handler = RequestReplyHandler(functions)          # or the official way:
    reply = handler.handle_sync(request_bytes)        # await handler.handle_async(request_bytes)

Runs on protobuf 4 and later (the official package needs protobuf 3). The wire bytes of the
built-in types and the egress records are the official ones. Where this differs from the
official SDK on purpose, the module says so: :mod:`~statefun_wsgi.v3.messages` (``as_type``
checks the type name), :mod:`~statefun_wsgi.v3.context`, :mod:`~statefun_wsgi.v3.functions`
and :mod:`~statefun_wsgi.v3.handler` (``handle_sync`` keeps one event loop per thread and
works where a loop runs).
"""

from __future__ import annotations

from .context import Context
from .functions import StatefulFunctions
from .handler import RequestReplyHandler
from .messages import (
    EgressMessage,
    Message,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
    message_builder,
)
from .types import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    SdkAddress,
    StringType,
    Type,
    TypeSerializer,
    ValueSpec,
    make_json_type,
    make_protobuf_type,
    simple_type,
)

__all__ = [
    "BoolType",
    "Context",
    "DoubleType",
    "EgressMessage",
    "FloatType",
    "IntType",
    "LongType",
    "Message",
    "RequestReplyHandler",
    "SdkAddress",
    "StatefulFunctions",
    "StringType",
    "Type",
    "TypeSerializer",
    "ValueSpec",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "make_json_type",
    "make_protobuf_type",
    "message_builder",
    "simple_type",
]
