"""Functions and a WSGI app for the fuzz and robustness tests and the load benchmark.

    gunicorn -c gunicorn.conf.py --pythonpath tests robust_app:wsgi

Used by ``tests/test_fuzz.py`` (in process and over HTTP), ``tests/test_robustness.py``
(gunicorn under worker kills and SIGTERM) and ``bench/load_test.py``.

Every function here is total: for any batch the runtime could send, it either
answers or fails only with an error the SDK documents (a state or message of an
unexpected type, a state the runtime did not send), except ``robust/flaky``, which
raises on purpose. Their replies depend on the request alone, so a reply can be
checked byte for byte against the in-process handler.

Environment (read at import, so a gunicorn started with it passes it to its workers):

``ROBUST_FLAKY_RATE``      how often a ``robust/flaky`` invocation raises (default 0.05)
``ROBUST_FLAKY_SEED``      seed of the per-process pseudo-random sequence (default 6)
``ROBUST_SLOW_MS``         how long ``robust/slow`` sleeps per invocation (default 0)
``ROBUST_STARTED_LOG``     a file ``robust/slow`` appends ``start <id>`` / ``done <id>`` to
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Iterable, Union

from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi import StatefulFunctions, StatefunMiddleware, kafka_egress_record

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["FLAKY_RATE", "OUT_EGRESS", "FlakyFailure", "functions", "wsgi"]

#: The egress every robust/* function writes to, one record per message.
OUT_EGRESS = "robust/out"
FUZZ_EGRESS = "fuzz/out"

FLAKY_RATE = float(os.environ.get("ROBUST_FLAKY_RATE", "0.05"))
_FLAKY_SEED = int(os.environ.get("ROBUST_FLAKY_SEED", "6"))
_SLOW_SECONDS = int(os.environ.get("ROBUST_SLOW_MS", "0")) / 1000
_STARTED_LOG = os.environ.get("ROBUST_STARTED_LOG")

functions = StatefulFunctions()


# -- for the fuzzer: total functions over whatever a valid batch may carry --------------


@functions.bind("fuzz/noop")
def noop(context, message) -> None:
    """Does nothing: what a batch costs the SDK alone."""


@functions.bind("fuzz/echo")
def echo(context, message) -> None:
    """Sends each message (the ``Any`` as it came) to an egress, and back to its caller
    (unless the caller's id is empty: the context refuses to send to an empty id)."""
    context.send_egress(FUZZ_EGRESS, message)
    if context.caller is not None and context.caller.identity:
        context.reply(message)


@functions.bind("fuzz/counter", states=["count"])
def fuzz_counter(context, message: Union[Int64Value, StringValue]) -> None:
    """Counts messages; an ``Int64Value`` adds its value (wrapping, never overflowing)."""
    state = context.state("count")
    count = state.unpack(Int64Value) or Int64Value()
    step = message.value % 1000 if isinstance(message, Int64Value) else 1
    count.value = (count.value + step) % (1 << 62)
    state.pack(count)
    if count.value % 3 == 0:
        del state.value


@functions.bind("fuzz/names", states=["last"])
def fuzz_names(context, message: StringValue) -> None:
    """Keeps the last name it was sent (a state read as a StringValue)."""
    state = context.state("last")
    last = state.unpack(StringValue)
    state.pack(message)
    if last is not None and last.value == message.value:
        context.pack_and_send_egress(FUZZ_EGRESS, last)


@functions.bind("fuzz/typed")
def fuzz_typed(context, message: StringValue) -> None:
    """Sends the text to ``fuzz/echo`` after a delay; ids are whatever the text is ("-" for
    an empty one: the context refuses an empty id)."""
    delay = timedelta(milliseconds=len(message.value))
    context.pack_and_send_after(delay, "fuzz/echo", message.value or "-", message)
    context.pack_and_send("fuzz/echo", context.address.identity or "-", message)


# -- for the robustness tests: counters whose every effect can be checked ---------------


def _count(context, message: StringValue) -> int:
    """count += 1; one egress record keyed by the message's unique id, valued "<id>:<count>"."""
    state = context.state("count")
    count = state.unpack(Int64Value) or Int64Value()
    count.value += 1
    state.pack(count)
    record = kafka_egress_record(topic="counted", key=message.value, value=f"{context.address.identity}:{count.value}")
    context.pack_and_send_egress(OUT_EGRESS, record)
    return count.value


@functions.bind("robust/counter", states=["count"])
def counter(context, message: StringValue) -> None:
    _count(context, message)


class FlakyFailure(RuntimeError):
    """What ``robust/flaky`` raises on purpose."""


_flaky_random = random.Random(_FLAKY_SEED)
_flaky_lock = threading.Lock()


@functions.bind("robust/flaky", states=["count"])
def flaky(context, message: StringValue) -> None:
    """Like ``robust/counter``, but each invocation raises with probability
    ``ROBUST_FLAKY_RATE``, drawn from a seeded pseudo-random sequence.

    The failure comes after the invocation has changed state and written its egress
    record, and after the invocations before it in the batch did the same, so a batch
    that fails half way must leave no trace. A retried batch draws again, so it passes
    eventually.
    """
    _count(context, message)
    with _flaky_lock:
        fail = _flaky_random.random() < FLAKY_RATE
    if fail:
        raise FlakyFailure("an intermittent failure, on purpose")


def _log_started(line: str) -> None:
    if _STARTED_LOG:
        fd = os.open(_STARTED_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)


@functions.bind("robust/slow", states=["count"])
def slow(context, message: StringValue) -> None:
    """Like ``robust/counter``, after sleeping ``ROBUST_SLOW_MS``; logs start and end."""
    _log_started(f"start {message.value}")
    time.sleep(_SLOW_SECONDS)
    _count(context, message)
    _log_started(f"done {message.value}")


def site(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    body = b"robust_app\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


wsgi = StatefunMiddleware(site, functions)
