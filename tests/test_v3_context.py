"""Tests for statefun_wsgi.v3.context: storage, address and caller, and the sends, on
3.x requests built with the generated request-reply classes."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Callable, List, Optional, Tuple

import pytest

from statefun_wsgi import FunctionInvocationError, UnexpectedMessageTypeError
from statefun_wsgi._proto import request_reply_v3_pb2 as pb
from statefun_wsgi.v3 import (
    Context,
    IntType,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    make_json_type,
    message_builder,
)

State = Tuple[str, Optional[Tuple[str, bytes]]]


def batch(states: List[State], callers: List[Optional[Tuple[str, str, str]]]) -> bytes:
    to = pb.ToFunction()
    to.invocation.target.namespace, to.invocation.target.type, to.invocation.target.id = "example", "fn", "me"
    for name, value in states:
        state = to.invocation.state.add(state_name=name)
        if value is not None:
            state.state_value.typename, state.state_value.value = value
            state.state_value.has_value = True
    for caller in callers:
        invocation = to.invocation.invocations.add()
        if caller is not None:
            invocation.caller.namespace, invocation.caller.type, invocation.caller.id = caller
        invocation.argument.typename = "io.statefun.types/string"
        invocation.argument.has_value = True
    return to.SerializeToString()


def run(fn: Callable[[Context, Any], None], specs: List[ValueSpec], request: bytes) -> pb.FromFunction:
    functions = StatefulFunctions()
    functions.register("example/fn", fn, specs)
    return pb.FromFunction.FromString(RequestReplyHandler(functions).handle_sync(request))


INT = lambda n: ("io.statefun.types/int", IntType.serializer().serialize(n))  # noqa: E731


def test_storage_reads_writes_and_deletes() -> None:
    seen: List[object] = []

    def fn(context: Context, message: Any) -> None:
        seen.append(context.storage.count)
        context.storage.count = 5
        seen.append(context.storage.count)
        del context.storage.other
        seen.append(context.storage.other)

    reply = run(
        fn,
        [ValueSpec("count", IntType), ValueSpec("other", IntType)],
        batch([("count", INT(2)), ("other", INT(1))], [None]),
    )
    assert seen == [2, 5, None]
    mutations = {m.state_name: m for m in reply.invocation_result.state_mutations}
    assert mutations["count"].state_value == pb.TypedValue(
        typename="io.statefun.types/int", has_value=True, value=INT(5)[1]
    )
    assert mutations["other"].mutation_type == pb.FromFunction.PersistedValueMutation.DELETE


def test_storage_refuses_none_and_unknown_names() -> None:
    errors: List[str] = []

    def fn(context: Context, message: Any) -> None:
        try:
            context.storage.count = None
        except ValueError as exc:
            errors.append(str(exc))
        try:
            context.storage.nope
        except AttributeError as exc:
            errors.append(str(exc))

    run(fn, [ValueSpec("count", IntType)], batch([("count", None)], [None]))
    assert "use del context.storage.count" in errors[0]
    assert errors[1] == "'nope' is not a registered ValueSpec for the function 'example/fn'"


def test_missing_states_are_declared_with_their_types_and_expiry() -> None:
    user = make_json_type("com.example/User")
    specs = [
        ValueSpec("a", IntType, expire_after_call=timedelta(seconds=3)),
        ValueSpec("b", user, expire_after_write=timedelta(minutes=1)),
    ]
    reply = run(lambda context, message: None, specs, batch([], [None]))
    missing = reply.incomplete_invocation_context.missing_values
    assert [
        (m.state_name, m.type_typename, m.expiration_spec.mode, m.expiration_spec.expire_after_millis) for m in missing
    ] == [
        ("a", "io.statefun.types/int", pb.FromFunction.ExpirationSpec.AFTER_INVOKE, 3000),
        ("b", "com.example/User", pb.FromFunction.ExpirationSpec.AFTER_WRITE, 60000),
    ]


def test_a_state_registered_under_another_type() -> None:
    def read(context: Context, message: Any) -> None:
        context.storage.count

    with pytest.raises(FunctionInvocationError) as info:
        run(read, [ValueSpec("count", StringType)], batch([("count", INT(1))], [None]))
    assert isinstance(info.value.__cause__, TypeError) and "io.statefun.types/int" in str(info.value.__cause__)

    def write(context: Context, message: Any) -> None:
        context.storage.count = "x"

    with pytest.raises(FunctionInvocationError) as info:
        run(write, [ValueSpec("count", StringType)], batch([("count", INT(1))], [None]))
    assert isinstance(info.value.__cause__, UnexpectedMessageTypeError)


def test_address_and_caller_per_invocation() -> None:
    seen: List[object] = []

    def fn(context: Context, message: Any) -> None:
        seen.append((context.address.typename, context.address.id, context.caller))

    run(fn, [], batch([], [("example", "other", "x"), None]))
    assert seen[0][:2] == ("example/fn", "me")
    caller = seen[0][2]
    assert (caller.namespace, caller.name, caller.id, caller.typename) == ("example", "other", "x", "example/other")
    assert seen[1][2] is None


def test_delayed_messages_and_cancellation() -> None:
    def fn(context: Context, message: Any) -> None:
        context.send_after(timedelta(seconds=2), message_builder("example/b", "1", int_value=1))
        context.send_after(timedelta(seconds=3), message_builder("example/b", "2", int_value=2), cancellation_token="t")
        context.cancel_delayed_message("t")

    delayed = run(fn, [], batch([], [None])).invocation_result.delayed_invocations
    assert [(d.delay_in_ms, d.target.id, d.cancellation_token, d.is_cancellation_request) for d in delayed] == [
        (2000, "1", "", False),
        (3000, "2", "t", False),
        (0, "", "t", True),
    ]


def test_cancellation_mistakes_raise_in_the_function() -> None:
    # The official SDK sends them, and the runtime fails the job.
    def empty(context: Context, message: Any) -> None:
        context.cancel_delayed_message("")

    with pytest.raises(FunctionInvocationError, match="cannot be empty"):
        run(empty, [], batch([], [None]))

    def reused(context: Context, message: Any) -> None:
        context.send_after(timedelta(seconds=1), message_builder("example/b", "1", int_value=1), "t")
        context.send_after(timedelta(seconds=1), message_builder("example/b", "2", int_value=1), "t")

    with pytest.raises(FunctionInvocationError, match="already names a delayed message"):
        run(reused, [], batch([], [None]))


def test_a_received_message_reads_the_request_as_is() -> None:
    seen: List[object] = []

    def fn(context: Context, message: Any) -> None:
        seen.append((message.value_typename(), message.is_string(), message.raw_value(), message.as_string()))
        seen.append(message.typed_value)
        context.send(message)  # forwarded as it came (its target is this function)

    request = pb.ToFunction.FromString(batch([], [None]))
    argument = request.invocation.invocations[0].argument
    argument.has_value = False  # a message without a value
    reply = run(fn, [], request.SerializeToString())
    assert seen[0] == ("io.statefun.types/string", True, None, None)
    assert seen[1] == pb.TypedValue(typename="io.statefun.types/string", has_value=False)
    sent = reply.invocation_result.outgoing_messages[0]
    assert (sent.target.type, sent.target.id, sent.argument) == ("fn", "me", seen[1])


@pytest.mark.parametrize(
    "typename, id, argument",
    [
        ("example/fn", "a", b"\x0a\x01t\x10\x01"),
        ("example/fn", "é-ü", b"x" * 60),
        ("example/fn", "x" * 100, b"\x0a\x01t"),  # over 127 bytes: the general path
        ("a.b.c/some-function", "id", b"y" * 300),
    ],
)
def test_outgoing_fast_path_writes_what_the_core_writes(typename: str, id: str, argument: bytes) -> None:
    from statefun_wsgi._wire import outgoing_message
    from statefun_wsgi.context import encode_address
    from statefun_wsgi.v3.context import _outgoing

    assert _outgoing(typename, id, argument) == outgoing_message(encode_address(typename, id), argument)


@pytest.mark.parametrize("id", ["", "\ud800", 5, None])
def test_outgoing_fast_path_refuses_as_the_core(id: Any) -> None:
    from statefun_wsgi.context import encode_address
    from statefun_wsgi.v3.context import _outgoing

    with pytest.raises(Exception) as core:
        encode_address("example/fn", id)
    with pytest.raises(type(core.value), match=re.escape(str(core.value))):
        _outgoing("example/fn", id, b"\x0a\x01t")


def test_sdk_addresses_are_the_official_dataclass_values() -> None:
    from statefun_wsgi.v3 import SdkAddress
    from statefun_wsgi.v3.context import _sdk_address

    made, official = _sdk_address("example", "fn", "x"), SdkAddress("example", "fn", "x", "example/fn")
    assert made == official and hash(made) == hash(official) and repr(made) == repr(official)
    assert vars(made) == vars(official)
    with pytest.raises(AttributeError):
        made.id = "y"  # type: ignore[misc]
