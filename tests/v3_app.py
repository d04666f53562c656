"""A WSGI app serving functions written against statefun_wsgi.v3 (the official 3.3 API),
for tests/test_v3_serving.py: ``gunicorn tests.v3_app:wsgi``.

``example/greeter`` is the greeter of tests/data/v3/README.md (plain ``def``);
``example/agreeter`` is the same as ``async def``; ``example/loops`` answers with the
thread and the event loop it ran on (which a test reads back from the egress record);
``example/noloop`` (plain ``def``) answers ``"running loop: <True|False>"`` the same way.

``example/counter`` (plain ``def``, for tests/test_cli.py's dev and run): counts the strings
it gets in ``count`` (``IntType``, expiring a day after the last call) and keeps the last in
``last`` (``StringType``); egresses ``"<text> <count>"`` to the Kafka egress ``example/out``
(topic ``counts``, key the id) and sends the count to ``example/doubler`` (``async def``),
which egresses twice it (topic ``doubled``); the first message also sends itself ``"later"``
after 50 ms.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import StringValue

from statefun_wsgi import StatefunMiddleware
from statefun_wsgi.v3 import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    kafka_egress_message,
    make_protobuf_type,
    message_builder,
)

functions = StatefulFunctions()
AnyType = make_protobuf_type(Any)
SPECS = [ValueSpec("seen", IntType), ValueSpec("anystate", AnyType, expire_after_write=timedelta(hours=1))]


@functions.bind("example/greeter", specs=SPECS)
def greeter(ctx: Context, msg: Message) -> None:
    seen = (ctx.storage.seen or 0) + 1
    ctx.storage.seen = seen
    prev = ctx.storage.anystate
    a = Any()
    a.Pack(StringValue(value=f"n{seen}"))
    ctx.storage.anystate = a
    text = msg.raw_value().decode()
    ctx.send_egress(
        egress_message_builder(
            "e2e/out", f"{ctx.address.id}:{text}:{seen}:prev={prev.type_url if prev else None}", StringType
        )
    )


@functions.bind("example/agreeter", specs=SPECS)
async def agreeter(ctx: Context, msg: Message) -> None:
    await asyncio.sleep(0)
    greeter(ctx, msg)


@functions.bind("example/loops")
async def loops(ctx: Context, msg: Message) -> None:
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    ctx.send_egress(egress_message_builder("e2e/out", f"{threading.get_ident()}:{id(loop)}", StringType))


@functions.bind("example/noloop")
def noloop(ctx: Context, msg: Message) -> None:
    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    ctx.send_egress(egress_message_builder("e2e/out", f"running loop: {running}", StringType))


COUNTER_SPECS = [ValueSpec("count", IntType, expire_after_call=timedelta(days=1)), ValueSpec("last", StringType)]


@functions.bind("example/counter", specs=COUNTER_SPECS)
def counter(ctx: Context, msg: Message) -> None:
    text = msg.as_string()
    count = (ctx.storage.count or 0) + 1
    ctx.storage.count = count
    ctx.storage.last = text
    ctx.send_egress(kafka_egress_message("example/out", topic="counts", key=ctx.address.id, value=f"{text} {count}"))
    ctx.send(message_builder("example/doubler", ctx.address.id, int_value=count))
    if count == 1:
        ctx.send_after(timedelta(milliseconds=50), message_builder("example/counter", ctx.address.id, str_value="later"))


@functions.bind("example/doubler")
async def doubler(ctx: Context, msg: Message) -> None:
    await asyncio.sleep(0)
    ctx.send_egress(kafka_egress_message("example/out", topic="doubled", key=ctx.address.id, value=str(2 * msg.as_int())))


wsgi = StatefunMiddleware(None, functions)
handler = RequestReplyHandler(functions)  # the official way; the Django test names it in STATEFUN_FUNCTIONS
