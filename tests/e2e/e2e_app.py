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

With ``$E2E_BATCH_LOG`` set, every request to ``/statefun`` appends one line
``<namespace>/<type>/<id> <number of invocations> ok|error <body bytes> <body wait ms>``
to that file (one ``write`` on an ``O_APPEND`` descriptor, so lines from both workers
never mix): the test reads from it how the runtime batched and retried, and how long
each request's body took to arrive after the request reached the app.

The example's registry is not modified: its functions are registered again on a
registry of our own.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import Union

from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from examples.greeter.functions import functions as greeter_functions
from statefun_wsgi import RequestReplyHandler, StatefulFunctions, StatefunMiddleware
from statefun_wsgi._proto.request_reply_pb2 import ToFunction

__all__ = ["OUT_EGRESS", "functions", "wsgi"]

#: The egress every e2e-only function writes to.
OUT_EGRESS = "e2e/out"

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

    def __init__(self, handler: RequestReplyHandler, log_path: str) -> None:
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


_handler = RequestReplyHandler(functions)
_batch_log = os.environ.get("E2E_BATCH_LOG")
wsgi = StatefunMiddleware(None, RecordingHandler(_handler, _batch_log) if _batch_log else _handler)
if _batch_log:
    wsgi = ArrivalTimer(wsgi)
