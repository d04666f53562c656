"""Tests for statefun_wsgi.handler: RequestReplyHandler and AsyncRequestReplyHandler."""

from __future__ import annotations

import asyncio
import sys
import functools
import gc
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from builders import (
    Call,
    Delayed,
    Egress,
    Mutation,
    Sent,
    bind,
    decode_reply,
    invoke,
    pack,
    request,
    to_function,
)
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi import (
    AsyncRequestReplyHandler,
    ConfigurationError,
    FunctionInvocationError,
    MissingStateError,
    RequestReplyHandler,
    StatefulFunctions,
    StatefunError,
)
from statefun_wsgi.errors import MalformedRequestError, RequestError, UnknownFunctionError
from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction

HELLO = StringValue(value="hello")

HANDLERS = ["sync", "async"]


def call(kind: str, functions: StatefulFunctions, data) -> bytes:
    """Run one request through the sync or the async handler."""
    if kind == "sync":
        return RequestReplyHandler(functions)(data)
    return asyncio.run(AsyncRequestReplyHandler(functions)(data))


def registry() -> StatefulFunctions:
    functions = StatefulFunctions()
    functions.register("example/counter", lambda context, message: None)
    functions.register("com.example/greeter", lambda context, message: None)
    return functions


def _empty_batch() -> bytes:
    data = to_function("example/counter", "id", messages=[])
    assert data.HasField("invocation") and not data.invocation.invocations
    return data.SerializeToString()


def _target_only() -> bytes:
    data = ToFunction()
    data.invocation.target.namespace = "example"
    return data.SerializeToString()


def _invalid_utf8_in_target() -> bytes:
    # target.namespace = b"\xff" (proto3 strings must be UTF-8)
    address = b"\x0a\x01\xff"
    batch = b"\x0a" + bytes([len(address)]) + address
    return b"\xa2\x06" + bytes([len(batch)]) + batch


def _from_function_instead() -> bytes:
    return FromFunction(invocation_result=FromFunction.InvocationResponse()).SerializeToString()


REQUEST_ERRORS = [
    ("corrupt-byte", b"\xff", MalformedRequestError, 400, r"the body is not a serialized ToFunction"),
    ("truncated-varint", b"\x80", MalformedRequestError, 400, r"the body is not a serialized ToFunction"),
    ("truncated-batch", b"\xa2\x06\x05ab", MalformedRequestError, 400, r"the body is not a serialized ToFunction"),
    ("text", b"GET / HTTP/1.1\r\n", MalformedRequestError, 400, r"the body is not a serialized ToFunction"),
    ("invalid-utf8", _invalid_utf8_in_target(), MalformedRequestError, 400, r"the body is not a serialized ToFunction"),
    ("empty-body", b"", MalformedRequestError, 400, r"the ToFunction carries no invocation batch \(field 100\)"),
    ("wrong-wire-type", b"\xa0\x06\x01", MalformedRequestError, 400, r"carries no invocation batch"),
    ("no-invocation", ToFunction().SerializeToString(), MalformedRequestError, 400, r"carries no invocation batch"),
    ("empty-batch", _empty_batch(), MalformedRequestError, 400, r"the invocation batch holds no invocations"),
    ("target-only", _target_only(), MalformedRequestError, 400, r"holds no invocations"),
    ("from-function", _from_function_instead(), MalformedRequestError, 400, r"holds no invocations"),
    (
        "unknown-type",
        request("example/nobody", "id", messages=[HELLO]),
        UnknownFunctionError,
        404,
        r"^no function is bound to example/nobody \(bound: com.example/greeter, example/counter\)$",
    ),
    (
        "unknown-namespace",
        request("other/counter", "id", messages=[HELLO]),
        UnknownFunctionError,
        404,
        r"^no function is bound to other/counter \(bound: com.example/greeter, example/counter\)$",
    ),
    (
        "namespace-split-differently",
        request("com/example/greeter", "id", messages=[HELLO]),
        UnknownFunctionError,
        404,
        r"no function is bound to com/example/greeter",
    ),
]


@pytest.mark.parametrize(
    "data, error, status, match", [row[1:] for row in REQUEST_ERRORS], ids=[row[0] for row in REQUEST_ERRORS]
)
@pytest.mark.parametrize("kind", HANDLERS)
def test_request_errors_and_their_status(kind, data, error, status, match):
    with pytest.raises(error, match=match) as info:
        call(kind, registry(), data)
    assert info.value.status == status
    assert isinstance(info.value, RequestError)
    assert isinstance(info.value, StatefunError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", HANDLERS)
def test_unknown_function_with_nothing_bound_says_none(kind):
    with pytest.raises(UnknownFunctionError, match=r"\(bound: none\)$"):
        call(kind, StatefulFunctions(), request("example/fn", "id", messages=[HELLO]))


@pytest.mark.parametrize(
    "error, status",
    [
        (StatefunError, 500),
        (RequestError, 400),
        (MalformedRequestError, 400),
        (UnknownFunctionError, 404),
        (FunctionInvocationError, 500),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
)
def test_error_classes_carry_their_status(error, status):
    assert error.status == status
    assert error("x").status == status
    assert issubclass(error, StatefunError)


def test_the_top_level_exports_what_user_code_touches_and_the_request_errors_stay_in_errors():
    import statefun_wsgi
    import statefun_wsgi.errors

    assert sorted(statefun_wsgi.__all__) == sorted(set(statefun_wsgi.__all__))
    assert all(hasattr(statefun_wsgi, name) for name in statefun_wsgi.__all__)
    request_errors = {
        name
        for name in statefun_wsgi.errors.__all__
        if issubclass(getattr(statefun_wsgi.errors, name), statefun_wsgi.errors.RequestError)
    }
    assert "ProtocolMismatchError" in request_errors and len(request_errors) == 8
    assert not request_errors & set(statefun_wsgi.__all__)
    assert not any(hasattr(statefun_wsgi, name) for name in request_errors)
    assert {"StatefunError", "ConfigurationError", "FunctionInvocationError", "OverloadedError"} <= set(
        statefun_wsgi.__all__
    )


@pytest.mark.parametrize("handler_class", [RequestReplyHandler, AsyncRequestReplyHandler])
def test_handler_requires_a_registry(handler_class):
    with pytest.raises(TypeError, match=rf"{handler_class.__name__} takes a StatefulFunctions, got dict"):
        handler_class({})


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=["bytes", "bytearray", "memoryview"])
@pytest.mark.parametrize("kind", HANDLERS)
def test_handler_accepts_any_bytes_like_body(kind, wrap):
    def fn(context, message: StringValue):
        context.pack_and_reply(StringValue(value=message.value.upper()))

    data = request(messages=[Call(HELLO, ("example/caller", "c"))])
    reply = call(kind, bind(fn), wrap(data))
    assert type(reply) is bytes
    assert decode_reply(reply).sent == [Sent.to("example/caller", "c", StringValue(value="HELLO"))]


# -- user code raising -------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("kind", HANDLERS)
def test_user_exception_fails_the_whole_batch(kind):
    calls = []

    def fn(context, message: Int64Value):
        calls.append(message.value)
        context.pack_and_send("example/other", "x", message)
        context.state("count").pack(message)
        if message.value == 2:
            raise Boom("boom at two")

    data = request(id="user-1", messages=[Int64Value(value=n) for n in (1, 2, 3)], state={"count": None})
    with pytest.raises(FunctionInvocationError) as info:
        call(kind, bind(fn), data)
    error = info.value
    assert error.status == 500
    assert isinstance(error.__cause__, Boom)
    assert str(error.__cause__) == "boom at two"
    assert str(error) == "example/fn (id 'user-1') raised Boom in invocation 2 of 3: boom at two"
    assert calls == [1, 2]  # invocation 3 never ran


@pytest.mark.parametrize("kind", HANDLERS)
def test_a_failed_batch_leaves_nothing_behind(kind):
    fail = [True]

    def fn(context, message):
        context.state("count").pack(Int64Value(value=99))
        context.pack_and_send("example/other", "x", HELLO)
        if fail[0]:
            raise Boom("first try")

    functions = bind(fn)
    data = request(messages=[HELLO], state={"count": Int64Value(value=1)})
    if kind == "sync":
        handler = RequestReplyHandler(functions)
        with pytest.raises(FunctionInvocationError):
            handler(data)
        fail[0] = False
        reply = decode_reply(handler(data))
    else:
        handler = AsyncRequestReplyHandler(functions)
        with pytest.raises(FunctionInvocationError):
            asyncio.run(handler(data))
        fail[0] = False
        reply = decode_reply(asyncio.run(handler(data)))
    # The retry produces exactly one message and one mutation: nothing leaked from the failed try.
    assert reply.sent == [Sent.to("example/other", "x", HELLO)]
    assert reply.mutations == {"count": Mutation.modify(Int64Value(value=99))}


@pytest.mark.parametrize("kind", HANDLERS)
def test_first_invocation_failing_is_reported_as_invocation_1(kind):
    def fn(context, message):
        raise ZeroDivisionError("division by zero")

    with pytest.raises(FunctionInvocationError, match=r"raised ZeroDivisionError in invocation 1 of 1: division by zero"):
        call(kind, bind(fn), request(messages=[HELLO]))


# -- declared states ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", HANDLERS)
def test_declared_state_missing_from_the_request_names_the_state_and_the_module_yaml_line(kind):
    calls = []

    def fn(context, message):
        calls.append(message)

    functions = bind(fn, "example/greeter", states=["seen_count", "last_seen"])
    data = request("example/greeter", "u", messages=[HELLO], state={"seen_count": None})
    with pytest.raises(FunctionInvocationError) as info:
        call(kind, functions, data)
    assert info.value.status == 500
    assert str(info.value) == (
        "example/greeter declares state 'last_seen' but the runtime did not send it; "
        "add '- name: last_seen' under 'states:' of example/greeter in module.yaml"
    )
    assert isinstance(info.value.__cause__, MissingStateError)
    assert calls == []  # the function never ran


def test_declared_states_present_run_normally():
    def fn(context, message):
        context.state("a").pack(HELLO)

    reply = invoke(fn, states=["a", "b"], messages=[HELLO], state={"b": None, "a": None, "extra": None})
    assert reply.mutations == {"a": Mutation.modify(HELLO)}


# -- coroutine functions -----------------------------------------------------------------


async def _coroutine(context, message):
    raise AssertionError("must never run in the sync handler")


class _AsyncCallable:
    async def __call__(self, context, message):
        raise AssertionError("must never run in the sync handler")


@pytest.mark.parametrize("fn", [_coroutine, _AsyncCallable()], ids=["async-def", "async-callable-object"])
def test_coroutine_function_in_the_sync_handler_says_to_use_the_async_handler(fn):
    functions = bind(fn)
    assert functions.for_type("example", "fn").is_coroutine
    with pytest.raises(
        FunctionInvocationError, match=r"^example/fn is a coroutine function: serve it with AsyncRequestReplyHandler$"
    ):
        RequestReplyHandler(functions)(request(messages=[HELLO]))


def _decorated(fn):
    """A plain decorator: the wrapper is an ordinary function even when ``fn`` is ``async def``."""

    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)

    return wrapper


@pytest.mark.parametrize("wrap", [_decorated, lambda fn: lambda context, message: fn(context, message)],
                         ids=["functools.wraps", "lambda"])
def test_an_async_function_behind_a_plain_callable_fails_the_batch_instead_of_losing_it(wrap):
    ran = []

    async def body(context, message):
        ran.append(message)
        context.pack_and_send_egress("example/out", message)

    functions = bind(wrap(body))
    assert not functions.for_type("example", "fn").is_coroutine  # nothing at bind time says async
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(FunctionInvocationError, match=(
            r"^example/fn \(id 'id-1'\) raised TypeError in invocation 1 of 1: it returned an awaitable \(coroutine\) "
            r"instead of running: an async function, decorated or not, needs AsyncRequestReplyHandler"
        )) as info:
            RequestReplyHandler(functions)(request(messages=[HELLO]))
        gc.collect()
    assert isinstance(info.value.__cause__, TypeError)
    assert ran == []
    assert [w for w in caught if "never awaited" in str(w.message)] == []  # closed, not left to warn


def test_the_async_handler_awaits_an_async_function_behind_a_plain_callable():
    async def body(context, message: StringValue):
        await asyncio.sleep(0)
        context.pack_and_send_egress("example/out", message)

    reply = invoke(_decorated(body), run_async=True, messages=[HELLO])
    assert reply.egresses == [Egress.to("example/out", HELLO)]


def _yields(context, message):
    yield


async def _async_yields(context, message):
    yield


class _YieldingCallable:
    def __call__(self, context, message):
        yield


@pytest.mark.parametrize("fn", [_yields, _async_yields, _YieldingCallable()],
                         ids=["generator", "async-generator", "generator-callable-object"])
def test_a_generator_function_cannot_be_bound(fn):
    with pytest.raises(ConfigurationError, match=r"^cannot bind example/fn: .* is a generator function \(it yields\), "
                                                 r"so calling it would not run its body$"):
        bind(fn)


class _Visit:
    """A class bound as a function: calling it runs __init__, whatever its __call__ does."""

    def __init__(self, context, message: StringValue):
        context.pack_and_send_egress("example/out", message)

    def __call__(self):
        yield


def test_a_class_is_bound_by_what_calling_it_runs() -> None:
    functions = bind(_Visit)
    assert not functions.for_type("example", "fn").is_coroutine
    reply = invoke(_Visit, messages=[HELLO])
    assert reply.egresses == [Egress.to("example/out", HELLO)]


@pytest.mark.parametrize("kind", HANDLERS)
@pytest.mark.parametrize("generator", [_yields, _async_yields], ids=["generator", "async-generator"])
def test_a_generator_returned_at_run_time_fails_the_batch(kind, generator):
    functions = bind(lambda context, message: generator(context, message))
    with pytest.raises(FunctionInvocationError, match=(
        r"raised TypeError in invocation 1 of 1: it returned a (async_)?generator whose body never ran: "
        r"a function must not yield$"
    )):
        call(kind, functions, request(messages=[HELLO]))


def test_async_handler_runs_coroutine_functions_in_order():
    events = []

    async def fn(context, message: Int64Value):
        events.append(("start", message.value))
        count = context.state("count").unpack(Int64Value) or Int64Value()
        await asyncio.sleep(0)
        count.value += message.value
        context.state("count").pack(count)
        context.pack_and_send_egress("example/out", Int64Value(value=count.value))
        await asyncio.sleep(0)
        context.pack_and_send_after(timedelta(milliseconds=message.value), "example/later", "x", count)
        events.append(("end", message.value))

    reply = invoke(fn, run_async=True, messages=[Int64Value(value=n) for n in (1, 2, 3)], state={"count": None})
    assert events == [("start", 1), ("end", 1), ("start", 2), ("end", 2), ("start", 3), ("end", 3)]
    assert reply.egresses == [Egress.to("example/out", Int64Value(value=v)) for v in (1, 3, 6)]
    assert reply.delayed == [Delayed.to(n, "example/later", "x", Int64Value(value=v)) for n, v in ((1, 1), (2, 3), (3, 6))]
    assert reply.mutations == {"count": Mutation.modify(Int64Value(value=6))}


def test_async_handler_runs_plain_functions():
    def fn(context, message: StringValue):
        context.pack_and_reply(StringValue(value=message.value[::-1]))

    reply = invoke(fn, run_async=True, messages=[Call(HELLO, ("example/c", "1"))])
    assert reply.sent == [Sent.to("example/c", "1", StringValue(value="olleh"))]


def test_async_handler_wraps_an_exception_raised_after_an_await():
    async def fn(context, message):
        await asyncio.sleep(0)
        raise Boom("late")

    with pytest.raises(FunctionInvocationError, match=r"raised Boom in invocation 1 of 1: late") as info:
        invoke(fn, run_async=True, messages=[HELLO])
    assert isinstance(info.value.__cause__, Boom)


def test_async_handler_serves_concurrent_requests_independently():
    async def fn(context, message: Int64Value):
        count = context.state("count").unpack(Int64Value)
        await asyncio.sleep(0.001 * (message.value % 3))
        context.state("count").pack(Int64Value(value=count.value + message.value))
        await asyncio.sleep(0)
        context.pack_and_reply(Int64Value(value=count.value))

    handler = AsyncRequestReplyHandler(bind(fn))

    async def main():
        requests = [
            request(id=f"u{n}", messages=[Call(Int64Value(value=n), ("example/c", f"c{n}"))], state={"count": Int64Value(value=1000 * n)})
            for n in range(50)
        ]
        return await asyncio.gather(*(handler(data) for data in requests))

    replies = [decode_reply(data) for data in asyncio.run(main())]
    for n, reply in enumerate(replies):
        assert reply.sent == [Sent.to("example/c", f"c{n}", Int64Value(value=1000 * n))]
        assert reply.mutations == {"count": Mutation.modify(Int64Value(value=1000 * n + n))}


# -- thread safety -----------------------------------------------------------------------


def test_one_handler_shared_by_many_threads():
    functions = StatefulFunctions()

    @functions.bind("example/counter")
    def counter(context, message: Int64Value):
        count = context.state("count").unpack(Int64Value) or Int64Value()
        time.sleep(0.0002)  # let other threads run in the middle of a batch
        count.value += message.value
        context.state("count").pack(count)
        context.pack_and_send("example/peer", context.address.identity, Int64Value(value=count.value))
        time.sleep(0)
        if context.caller is not None:
            context.pack_and_reply(StringValue(value=f"{context.address.identity}:{message.value}"))

    @functions.bind("example/other")
    def other(context, message: StringValue):
        time.sleep(0.0001)
        context.pack_and_send_egress("example/out", StringValue(value=context.address.identity + message.value))

    handler = RequestReplyHandler(functions)

    def job(n: int):
        if n % 5 == 0:
            data = request("example/other", f"o{n}", messages=[StringValue(value="!")])
            return n, decode_reply(handler(data))
        messages = [Call(Int64Value(value=k), ("example/caller", f"c{n}") if k % 2 else None) for k in range(1, 4)]
        data = request("example/counter", f"u{n}", messages=messages, state={"count": Int64Value(value=n)})
        return n, decode_reply(handler(data))

    threads_seen = set()

    def tracked(n: int):
        threads_seen.add(threading.get_ident())
        return job(n)

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(tracked, range(400)))

    assert len(threads_seen) > 1
    for n, reply in results:
        if n % 5 == 0:
            assert reply.egresses == [Egress.to("example/out", StringValue(value=f"o{n}!"))]
            assert reply.sent == [] and reply.mutations == {}
            continue
        assert reply.mutations == {"count": Mutation.modify(Int64Value(value=n + 6))}
        assert reply.sent == [
            Sent.to("example/peer", f"u{n}", Int64Value(value=n + 1)),
            Sent.to("example/caller", f"c{n}", StringValue(value=f"u{n}:1")),
            Sent.to("example/peer", f"u{n}", Int64Value(value=n + 3)),
            Sent.to("example/peer", f"u{n}", Int64Value(value=n + 6)),
            Sent.to("example/caller", f"c{n}", StringValue(value=f"u{n}:3")),
        ]
        assert reply.egresses == [] and reply.delayed == []


def test_a_registry_can_serve_two_handlers_at_once():
    def fn(context, message: Int64Value):
        context.pack_and_send_egress("example/out", message)

    functions = bind(fn)
    sync_handler = RequestReplyHandler(functions)
    async_handler = AsyncRequestReplyHandler(functions)
    data = request(messages=[Int64Value(value=4), pack(Int64Value(value=5))])
    assert decode_reply(sync_handler(data)).egresses == decode_reply(asyncio.run(async_handler(data))).egresses == [
        Egress.to("example/out", Int64Value(value=4)),
        Egress.to("example/out", Int64Value(value=5)),
    ]


# -- protocols: each request answered in its own ------------------------------------------------


def test_the_handlers_take_a_protocols_setting():
    from statefun_wsgi import ConfigurationError

    functions = StatefulFunctions()
    assert RequestReplyHandler(functions).protocols.versions == ("2.x", "3.x")
    assert AsyncRequestReplyHandler(functions, protocols="3.x").protocols.versions == ("3.x",)
    with pytest.raises(ConfigurationError, match="protocols must be"):
        RequestReplyHandler(functions, protocols="2")


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_3x_batch_missing_declared_states_declares_them_without_running_the_function(run_async):
    from builders import missing_values, to_v3

    runs = []
    functions = StatefulFunctions()
    functions.register("example/fn", lambda context, message: runs.append(1), ["a", "b"])
    data = to_v3(request(state={"a": None}, messages=[StringValue(value="x")]))
    handler = (AsyncRequestReplyHandler if run_async else RequestReplyHandler)(functions)
    reply = asyncio.run(handler(data)) if run_async else handler(data)
    assert missing_values(reply) == [("b", "type.googleapis.com/google.protobuf.Any", 0, 0)]
    assert runs == []


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_a_3x_batch_whose_function_uses_an_unknown_state_declares_it_instead_of_failing(run_async):
    from builders import missing_values, to_v3

    async def coroutine(context, message):
        context["s"]

    def plain(context, message):
        context["s"]

    functions = StatefulFunctions()
    functions.register("example/fn", coroutine if run_async else plain)
    data = to_v3(request(messages=[StringValue(value="x"), StringValue(value="y")]))
    handler = (AsyncRequestReplyHandler if run_async else RequestReplyHandler)(functions)
    reply = asyncio.run(handler(data)) if run_async else handler(data)
    assert missing_values(reply) == [("s", "type.googleapis.com/google.protobuf.Any", 0, 0)]


def test_the_handler_refuses_a_request_of_a_protocol_it_does_not_serve():
    from builders import to_v3

    from statefun_wsgi.errors import ProtocolMismatchError

    functions = StatefulFunctions()
    functions.register("example/fn", lambda context, message: None)
    with pytest.raises(ProtocolMismatchError, match=r"the request is a StateFun 3.x one, but this endpoint serves 2.x only"):
        RequestReplyHandler(functions, protocols="2.x")(to_v3(request(messages=[StringValue(value="x")])))


# -- a message read without an annotation -------------------------------------------------


@pytest.mark.parametrize("kind", HANDLERS)
@pytest.mark.parametrize("version", ["2.x", "3.x"])
def test_reading_a_field_off_an_unannotated_message_says_it_is_an_any(kind, version):
    from builders import to_v3

    def greet(context, message):  # no annotation: the message comes as a google.protobuf.Any
        return message.name

    data = request(messages=[HELLO])
    with pytest.raises(FunctionInvocationError) as info:
        call(kind, bind(greet), to_v3(data) if version == "3.x" else data)
    text = str(info.value)
    assert text.startswith("example/fn (id 'id-1') raised AttributeError in invocation 1 of 1: name (")
    said = ("the message is a google.protobuf.Any (of type.googleapis.com/google.protobuf.StringValue)"
            if hasattr(info.value.__cause__, "obj") else "if it was read off the message: the message is a "
            "google.protobuf.Any")
    assert (f"{said}, because the function's message parameter has no annotation: annotate it with the message's "
            "class, def greet(context, message: MyMessage), to receive it unpacked, or call message.Unpack)") in text


@pytest.mark.parametrize("kind", HANDLERS)
def test_an_attribute_error_of_another_object_or_an_annotated_function_gets_no_any_hint(kind):
    def unannotated(context, message):
        return None.value  # type: ignore[attr-defined]

    def annotated(context, message: StringValue):
        return message.no_such_field  # type: ignore[attr-defined]

    for fn in (unannotated, annotated):
        with pytest.raises(FunctionInvocationError) as info:
            call(kind, bind(fn), request(messages=[HELLO]))
        if fn is unannotated and sys.version_info < (3, 10):
            # Python 3.9's AttributeError does not say which object lacked the attribute: the
            # hint for an unannotated function is given, as a condition ("if it was read off").
            assert "(if it was read off the message: the message is a google.protobuf.Any" in str(info.value)
            continue
        assert "google.protobuf.Any" not in str(info.value), str(info.value)
