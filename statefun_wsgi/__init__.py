"""statefun-wsgi: Apache Flink Stateful Functions (2.x and 3.x) in any WSGI app.

Usage::

    from google.protobuf.wrappers_pb2 import Int64Value, StringValue
    from statefun_wsgi import StatefulFunctions, StatefunMiddleware

    functions = StatefulFunctions()

    @functions.bind("example/counter")
    def count(context, message: StringValue):
        seen = context.state("count").unpack(Int64Value) or Int64Value()
        seen.value += 1
        context.state("count").pack(seen)
        context.pack_and_send_egress("example/out", seen)

    wsgi = StatefunMiddleware(None, functions)   # gunicorn app:wsgi

The names follow the StateFun 2.x Python SDK (``statefun``), so its functions run
here unchanged, served to StateFun 2.x and 3.x runtimes alike (see
:mod:`statefun_wsgi.protocols`).
"""

from __future__ import annotations

from .builtin_types import BooleanWrapper, DoubleWrapper, FloatWrapper, IntWrapper, LongWrapper, StringWrapper
from .context import Address, BatchContext, State
from .egress import kafka_egress_record, kinesis_egress_record
# The errors user code raises, catches or sees in its logs. The request errors
# (RequestError and its subclasses: 400, 404, 405, 411, 413, 415) are answered by the
# endpoint and never reach user code; they stay importable from statefun_wsgi.errors.
from .errors import (
    ConfigurationError,
    FunctionInvocationError,
    MissingStateError,
    OverloadedError,
    StatefunError,
    UnexpectedMessageTypeError,
)
from .functions import StatefulFunction, StatefulFunctions, ValueSpec
from .endpoint import Endpoint, Reply
from .handler import AsyncRequestReplyHandler, RequestReplyHandler
from .middleware import StatefunMiddleware
from .protocols import DEFAULT_PROTOCOLS, detect_protocol

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PROTOCOLS",
    "Address",
    "AsyncRequestReplyHandler",
    "BatchContext",
    "BooleanWrapper",
    "DoubleWrapper",
    "FloatWrapper",
    "IntWrapper",
    "LongWrapper",
    "StringWrapper",
    "ValueSpec",
    "detect_protocol",
    "Endpoint",
    "ConfigurationError",
    "FunctionInvocationError",
    "MissingStateError",
    "OverloadedError",
    "Reply",
    "RequestReplyHandler",
    "State",
    "StatefulFunction",
    "StatefulFunctions",
    "StatefunError",
    "StatefunMiddleware",
    "UnexpectedMessageTypeError",
    "kafka_egress_record",
    "kinesis_egress_record",
]
