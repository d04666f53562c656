"""Tests for statefun_wsgi.v3.handler: the official 3.3 API's RequestReplyHandler.

The golden vectors in tests/data/v3 (real 3.3.0 traffic: the official SDK answering the
runtime, see its README) are answered byte for byte by the same greeter written against
statefun_wsgi.v3, through handle_sync and handle_async, plain and async def.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import List

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import StringValue

from statefun_wsgi import FunctionInvocationError
from statefun_wsgi.errors import ProtocolMismatchError, UnknownFunctionError
from statefun_wsgi import RequestReplyHandler as CoreHandler
from statefun_wsgi.v3 import (
    Context,
    IntType,
    Message,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    make_protobuf_type,
)
from statefun_wsgi.v3.functions import thread_loop

DATA = Path(__file__).resolve().parent / "data" / "v3"
AnyType = make_protobuf_type(Any)
SPECS = [ValueSpec("seen", IntType), ValueSpec("anystate", AnyType, expire_after_write=timedelta(hours=1))]


def vector(kind: str, n: int) -> bytes:
    return (DATA / f"{kind}-{n}.bin").read_bytes()


def greet(ctx: Context, msg: Message) -> None:
    """The greeter of tests/data/v3/README.md, word for word."""
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


def greeter_functions(asynchronous: bool = False) -> StatefulFunctions:
    functions = StatefulFunctions()
    if asynchronous:

        @functions.bind("example/greeter", specs=SPECS)
        async def greeter(ctx: Context, msg: Message) -> None:
            await asyncio.sleep(0)
            greet(ctx, msg)

    else:
        functions.register("example/greeter", greet, SPECS)
    return functions


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("n", [1, 2])
def test_golden_vectors_byte_for_byte_sync(n: int, asynchronous: bool) -> None:
    handler = RequestReplyHandler(greeter_functions(asynchronous))
    assert handler.handle_sync(vector("request", n)) == vector("reply", n)


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("n", [1, 2])
def test_golden_vectors_byte_for_byte_async(n: int, asynchronous: bool) -> None:
    handler = RequestReplyHandler(greeter_functions(asynchronous))
    assert asyncio.run(handler.handle_async(vector("request", n))) == vector("reply", n)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_handle_sync_works_where_an_event_loop_runs(asynchronous: bool) -> None:
    # The official handle_sync calls asyncio.run, which refuses to run inside a running loop.
    handler = RequestReplyHandler(greeter_functions(asynchronous))

    async def host() -> bytes:
        return handler.handle_sync(vector("request", 2))

    assert asyncio.run(host()) == vector("reply", 2)


def test_async_functions_reuse_one_loop_per_thread() -> None:
    loops: List[asyncio.AbstractEventLoop] = []
    functions = StatefulFunctions()

    @functions.bind("example/greeter", specs=SPECS)
    async def greeter(ctx: Context, msg: Message) -> None:
        loops.append(asyncio.get_running_loop())
        greet(ctx, msg)

    handler = RequestReplyHandler(functions)
    for _ in range(3):
        assert handler.handle_sync(vector("request", 2)) == vector("reply", 2)
    assert len(loops) == 3 and loops[0] is loops[1] is loops[2] is thread_loop()
    assert not loops[0].is_running() and not loops[0].is_closed()

    other: List[asyncio.AbstractEventLoop] = []

    def in_thread() -> None:
        handler.handle_sync(vector("request", 2))
        other.append(loops[-1])

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other[0] is not loops[0]


def test_plain_functions_run_with_no_event_loop() -> None:
    running: List[object] = []
    functions = StatefulFunctions()

    @functions.bind("example/greeter", specs=SPECS)
    def greeter(ctx: Context, msg: Message) -> None:
        try:
            running.append(asyncio.get_running_loop())
        except RuntimeError:
            running.append(None)
        greet(ctx, msg)

    assert RequestReplyHandler(functions).handle_sync(vector("request", 2)) == vector("reply", 2)
    assert running == [None]


def test_the_core_handler_serves_a_v3_registry() -> None:
    functions = greeter_functions(asynchronous=True)
    assert CoreHandler(functions)(vector("request", 2)) == vector("reply", 2)


def test_a_function_that_raises_fails_the_batch() -> None:
    functions = StatefulFunctions()

    @functions.bind("example/greeter", specs=SPECS)
    def greeter(ctx: Context, msg: Message) -> None:
        raise KeyError("boom")

    with pytest.raises(FunctionInvocationError, match="example/greeter .*KeyError") as info:
        RequestReplyHandler(functions).handle_sync(vector("request", 2))
    assert isinstance(info.value.__cause__, KeyError)


def test_unknown_function_and_2x_requests_are_refused() -> None:
    handler = RequestReplyHandler(StatefulFunctions())
    with pytest.raises(UnknownFunctionError, match="example/greeter"):
        handler.handle_sync(vector("request", 2))
    two = (Path(__file__).resolve().parent / "data" / "request-1.bin").read_bytes()
    with pytest.raises(ProtocolMismatchError):
        RequestReplyHandler(greeter_functions()).handle_sync(two)


def test_a_str_request_is_refused() -> None:
    with pytest.raises(TypeError, match="a request is bytes"):
        RequestReplyHandler(greeter_functions()).handle_sync("hello")


def test_the_readme_example_runs() -> None:
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "from statefun_wsgi.v3 import *" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    handler = namespace["handler"]
    request = vector("request", 2)
    from statefun_wsgi._proto import request_reply_v3_pb2 as pb

    parsed = pb.ToFunction.FromString(request)
    del parsed.invocation.state[:]
    parsed.invocation.state.add(state_name="seen")
    parsed.invocation.invocations[0].argument.value = StringType.serializer().serialize("zed")
    reply = pb.FromFunction.FromString(handler.handle_sync(parsed.SerializeToString()))
    record = reply.invocation_result.outgoing_egresses[0]
    assert StringType.serializer().deserialize(record.argument.value) == "hi zed #1"
