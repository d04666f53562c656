"""Tests for statefun_wsgi._protocol3: StateFun 3.x requests answered by functions
written in the 2.x API.

The golden vectors in tests/data/v3 (see its README) are real 3.3.0 traffic; most
other tests build a 2.x request, turn it into the equivalent 3.x one (builders.to_v3)
and check the 3.x reply against the 2.x one (builders.from_v3).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import pytest
from builders import (
    ANY_TYPENAME,
    Egress,
    Mutation,
    Sent,
    decode_reply,
    from_v3,
    missing_values,
    pack,
    request,
    to_v3,
    v3,
)
from google.protobuf.any_pb2 import Any
from google.protobuf.empty_pb2 import Empty
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue

from statefun_wsgi import (
    AsyncRequestReplyHandler,
    FunctionInvocationError,
    IntWrapper,
    MissingStateError,
    RequestReplyHandler,
    StatefulFunctions,
    StringWrapper,
    UnexpectedMessageTypeError,
    ValueSpec,
    kafka_egress_record,
    kinesis_egress_record,
)
from statefun_wsgi._protocol3 import KAFKA_PRODUCER_RECORD_TYPENAME, KINESIS_EGRESS_RECORD_TYPENAME

DATA = Path(__file__).resolve().parent / "data" / "v3"
NONE, AFTER_WRITE, AFTER_INVOKE = 0, 1, 2
FromFunction = v3.FromFunction


def vector(kind: str, n: int) -> bytes:
    return (DATA / f"{kind}-{n}.bin").read_bytes()


def handle(functions: StatefulFunctions, data: bytes, protocols: str = "2.x,3.x") -> bytes:
    return RequestReplyHandler(functions, protocols=protocols)(data)


def bind(fn, states=None, typename: str = "example/fn") -> StatefulFunctions:
    functions = StatefulFunctions()
    functions.register(typename, fn, states)
    return functions


def v3_reply(data: bytes) -> FromFunction.InvocationResponse:
    reply = FromFunction.FromString(data)
    assert reply.HasField("invocation_result"), reply
    return reply.invocation_result


# -- the golden vectors -------------------------------------------------------------------


def greeter_functions(states) -> StatefulFunctions:
    """The vectors' greeter (see tests/data/v3/README.md), in this package's API."""
    functions = StatefulFunctions()

    @functions.bind("example/greeter", states=states)
    def greeter(context, message):
        seen = context.state("seen").unpack(IntWrapper) or IntWrapper()
        seen.value += 1
        context.state("seen").pack(seen)
        previous = context.state("anystate").value
        context.state("anystate").pack(StringValue(value=f"n{seen.value}"))
        text = message.value.decode()  # raw UTF-8, as the test ingress wrote it
        prev = previous.type_url if previous else None
        context.pack_and_send_egress(
            "e2e/out", StringWrapper(value=f"{context.address.identity}:{text}:{seen.value}:prev={prev}")
        )

    return functions


TYPED_STATES = [ValueSpec("seen", IntWrapper), ValueSpec("anystate", expire_after_write=timedelta(hours=1))]


@pytest.mark.parametrize("n", [1, 2])
def test_the_vectors_replies_byte_for_byte(n):
    assert handle(greeter_functions(TYPED_STATES), vector("request", n)) == vector("reply", n)


@pytest.mark.parametrize("n", [1, 2])
def test_the_vectors_with_the_async_handler(n):
    handler = AsyncRequestReplyHandler(greeter_functions(TYPED_STATES))
    assert asyncio.run(handler(vector("request", n))) == vector("reply", n)


def test_vector_1_declares_the_states_in_the_order_declared():
    assert missing_values(handle(greeter_functions(TYPED_STATES), vector("request", 1))) == [
        ("seen", "io.statefun.types/int", NONE, 0),
        ("anystate", ANY_TYPENAME, AFTER_WRITE, 3_600_000),
    ]


def test_the_vectors_with_states_declared_by_name_only_declare_them_as_any():
    functions = greeter_functions(["seen", "anystate"])
    assert missing_values(handle(functions, vector("request", 1))) == [
        ("seen", ANY_TYPENAME, NONE, 0),
        ("anystate", ANY_TYPENAME, NONE, 0),
    ]
    result = v3_reply(handle(functions, vector("request", 2)))
    seen, anystate = result.state_mutations
    assert (seen.state_name, seen.state_value.typename) == ("seen", ANY_TYPENAME)
    assert Any.FromString(seen.state_value.value) == pack(IntWrapper(value=1))
    assert pack(IntWrapper(value=1)).type_url == "io.statefun.types/int"
    # what the official SDK stored under make_protobuf_type(Any): the serialized Any
    official = FromFunction.FromString(vector("reply", 2)).invocation_result.state_mutations[1]
    assert anystate.state_value == official.state_value


# -- a runtime in miniature: state registration and re-sending, as the 3.3 runtime does --


class Registered:
    def __init__(self, typename: str, mode: int, millis: int) -> None:
        self.typename, self.mode, self.millis = typename, mode, millis
        self.value: Optional[bytes] = None


class MiniRuntime:
    """Sends a batch, registers what the reply declares and sends the batch again, then
    applies the mutations with the 3.3 runtime's checks (a registered type never changes)."""

    def __init__(self, functions: StatefulFunctions) -> None:
        self.handler = RequestReplyHandler(functions)
        self.states: Dict[str, Registered] = {}
        self.round_trips = 0

    def request(self, arguments: List[v3.TypedValue]) -> bytes:
        message = v3.ToFunction()
        batch = message.invocation
        batch.target.CopyFrom(v3.Address(namespace="example", type="fn", id="id-1"))
        for name, state in self.states.items():
            persisted = batch.state.add(state_name=name)
            if state.value is not None:
                persisted.state_value.CopyFrom(v3.TypedValue(typename=state.typename, has_value=True, value=state.value))
        for argument in arguments:
            batch.invocations.add().argument.CopyFrom(argument)
        return message.SerializeToString()

    def run(self, *messages) -> FromFunction.InvocationResponse:
        arguments = [v3.TypedValue(typename=pack(m).type_url, has_value=True, value=m.SerializeToString()) for m in messages]
        while True:
            self.round_trips += 1
            assert self.round_trips < 20, "the function keeps declaring states"
            reply = FromFunction.FromString(self.handler(self.request(arguments)))
            if not reply.HasField("incomplete_invocation_context"):
                break
            for spec in reply.incomplete_invocation_context.missing_values:
                known = self.states.get(spec.state_name)
                if known is None:
                    self.states[spec.state_name] = Registered(
                        spec.type_typename, spec.expiration_spec.mode, spec.expiration_spec.expire_after_millis
                    )
                else:
                    assert known.typename == spec.type_typename, f"state {spec.state_name} re-declared with another type"
        result = reply.invocation_result
        for mutation in result.state_mutations:
            state = self.states[mutation.state_name]  # KeyError: a mutation of an unregistered state
            if mutation.mutation_type == FromFunction.PersistedValueMutation.MODIFY:
                assert mutation.state_value.typename == state.typename, "the job fails: a state's type changed"
                state.value = mutation.state_value.value
            else:
                state.value = None
        return result


def test_a_state_used_but_not_declared_is_declared_and_the_batch_runs_again():
    runs = []

    def fn(context, message: StringValue):
        runs.append(message.value)
        context.pack_and_send("example/other", "x", StringValue(value="sent before the state was known"))
        count = context.state("count").unpack(Int64Value) or Int64Value()
        context.state("count").pack(Int64Value(value=count.value + 1))
        context.pack_and_send_egress("example/out", count)

    runtime = MiniRuntime(bind(fn))
    result = runtime.run(StringValue(value="a"))
    assert runs == ["a", "a"]  # once to find the state, once with it
    assert runtime.round_trips == 2
    assert runtime.states["count"].typename == ANY_TYPENAME
    assert (runtime.states["count"].mode, runtime.states["count"].millis) == (NONE, 0)
    # only the second run's effects reach the runtime
    assert len(result.outgoing_messages) == 1 and len(result.outgoing_egresses) == 1
    assert Any.FromString(runtime.states["count"].value) == pack(Int64Value(value=1))
    runtime.run(StringValue(value="b"))
    assert runtime.round_trips == 3
    assert Any.FromString(runtime.states["count"].value) == pack(Int64Value(value=2))


def test_states_found_one_by_one_take_one_round_trip_each():
    def fn(context, message):
        for name in ("a", "b", "c"):
            context[name] = pack(StringValue(value=name))

    runtime = MiniRuntime(bind(fn))
    runtime.run(Empty())
    assert runtime.round_trips == 4
    assert sorted(runtime.states) == ["a", "b", "c"]


def test_declared_states_are_declared_at_once_with_their_expiry_before_the_function_runs():
    runs = []

    def fn(context, message):
        runs.append(1)

    states = [
        "plain",
        ValueSpec("written", expire_after_write=timedelta(minutes=5)),
        ValueSpec("called", expire_after_call=timedelta(seconds=1, microseconds=1500)),
        ValueSpec("typed", Int64Value),
    ]
    reply = handle(bind(fn, states), to_v3(request(messages=[Empty()])))
    assert runs == []
    assert missing_values(reply) == [
        ("plain", ANY_TYPENAME, NONE, 0),
        ("written", ANY_TYPENAME, AFTER_WRITE, 300_000),
        ("called", ANY_TYPENAME, AFTER_INVOKE, 1001),
        ("typed", "type.googleapis.com/google.protobuf.Int64Value", NONE, 0),
    ]
    # only the ones not sent
    reply = handle(bind(fn, states), to_v3(request(state={"plain": None, "called": None}, messages=[Empty()])))
    assert [name for name, *_ in missing_values(reply)] == ["written", "typed"]
    assert runs == []


def test_the_incomplete_reply_matches_the_reference_encoding():
    reply = handle(bind(lambda c, m: None, [ValueSpec("s", expire_after_write=timedelta(hours=1))]), to_v3(request(messages=[Empty()])))
    expected = FromFunction()
    spec = expected.incomplete_invocation_context.missing_values.add(state_name="s", type_typename=ANY_TYPENAME)
    spec.expiration_spec.mode = AFTER_WRITE
    spec.expiration_spec.expire_after_millis = 3_600_000
    assert reply == expected.SerializeToString()


def test_a_function_that_catches_the_missing_state_error_still_declares_it():
    seen = []

    def fn(context, message):
        try:
            context["later"]
        except MissingStateError as exc:
            seen.append(str(exc))
            context.pack_and_send("example/other", "x", Empty())

    reply = handle(bind(fn), to_v3(request(messages=[Empty()])))
    assert missing_values(reply) == [("later", ANY_TYPENAME, NONE, 0)]
    assert seen == [
        "state 'later' of example/fn is not registered in the runtime yet: the endpoint declares it (type "
        "google.protobuf.Any, no expiry) and the runtime sends the batch again with it, discarding everything "
        "this run did; declare it in bind(..., states=[...]) to save the round trip"
    ]


@pytest.mark.parametrize("use", ["get", "set", "delete", "state"])
def test_every_way_of_using_a_state_declares_it(use):
    def fn(context, message):
        if use == "get":
            context["s"]
        elif use == "set":
            context["s"] = pack(Empty())
        elif use == "delete":
            del context["s"]
        else:
            context.state("s")

    assert missing_values(handle(bind(fn), to_v3(request(messages=[Empty()])))) == [("s", ANY_TYPENAME, NONE, 0)]


def test_a_state_name_that_is_no_string_is_not_declared_and_fails_the_batch():
    with pytest.raises(FunctionInvocationError, match=r"state 3 of example/fn: a state name is a non-empty string"):
        handle(bind(lambda context, message: context[3]), to_v3(request(messages=[Empty()])))


def test_on_2x_a_missing_state_still_names_module_yaml():
    with pytest.raises(FunctionInvocationError, match=r"register it in module.yaml"):
        handle(bind(lambda context, message: context["s"]), request(messages=[Empty()]))
    with pytest.raises(FunctionInvocationError, match=r"add '- name: s' under 'states:'"):
        handle(bind(lambda context, message: None, ["s"]), request(messages=[Empty()]))


# -- 2.x and 3.x give the same replies ------------------------------------------------------


def counter(context, message: StringValue):
    count = context.state("count").unpack(Int64Value) or Int64Value()
    count.value += 1
    context.state("count").pack(count)
    context.pack_and_send_egress("example/out", count)


def fanout(context, message: Int64Value):
    for i in range(10):
        context.pack_and_send("example/counter", f"peer-{i}", Int64Value(value=message.value + i))
    context.pack_and_send_after(timedelta(seconds=5), "example/fanout", context.address.identity, Int64Value(value=1))
    context.send_after(timedelta(0), "example/fanout", "me", pack(StringValue(value="now")))
    context.pack_and_reply(StringValue(value=f"done for {context.caller.identity}"))
    context.reply(pack(Empty()))
    del context["s1"]
    context["s2"] = pack(BytesValue(value=b"\x00" * 300))


def untyped(context, message):
    context.send("example/echo", context.address.identity, message)
    context.send_egress("example/out", message)


def dispatch(context, message: Union[StringValue, Int64Value, IntWrapper]):
    context.pack_and_send_egress("example/out", StringValue(value=f"{type(message).__name__}:{message.value}"))


def empty_messages(context, message: Empty):
    context.pack_and_send("example/other", "e", Empty())
    context.state("s").pack(Empty())


SAME_REPLY = [
    ("counter", counter, {"count": Int64Value(value=41)}, [StringValue(value="hi")], None),
    ("counter-absent-state", counter, {"count": None}, [StringValue(value="hi")], None),
    ("counter-100", counter, {"count": Int64Value(value=1)}, [StringValue(value=f"{i}") for i in range(100)], None),
    ("fanout", fanout, {"s1": Int64Value(value=1), "s2": None}, [Int64Value(value=10)], ("example/caller", "c-1")),
    ("untyped", untyped, {}, [StringValue(value="x"), Any(type_url="type.googleapis.com/google.protobuf.BytesValue", value=b"\x0a\x01\xff")], None),
    ("dispatch", dispatch, {}, [StringValue(value="x"), Int64Value(value=3), IntWrapper(value=-7)], None),
    ("empty-messages", empty_messages, {"s": None}, [Empty()], None),
    ("large-state", counter, {"count": Int64Value(value=1), "big": BytesValue(value=b"x" * 300_000)}, [StringValue()], None),
]


@pytest.mark.parametrize("fn, state, messages, caller", [c[1:] for c in SAME_REPLY], ids=[c[0] for c in SAME_REPLY])
def test_a_3x_request_gets_the_reply_of_the_equivalent_2x_request(fn, state, messages, caller):
    data = request(state=state, messages=messages, caller=caller)
    functions = bind(fn)
    expected = decode_reply(handle(functions, data))
    assert not expected.empty
    got = decode_reply(from_v3(handle(functions, to_v3(data))))
    assert (got.sent, got.delayed, got.egresses, got.mutations, got.mutation_order) == (
        expected.sent,
        expected.delayed,
        expected.egresses,
        expected.mutations,
        expected.mutation_order,
    )


def test_every_value_sent_is_a_typed_value_with_has_value_set():
    data = to_v3(request(state={"s1": Int64Value(value=1), "s2": None}, messages=[Int64Value(value=1)], caller=("a/b", "c")))
    result = v3_reply(handle(bind(fanout), data))
    values = [m.argument for m in result.outgoing_messages] + [d.argument for d in result.delayed_invocations]
    values += [m.state_value for m in result.state_mutations if m.mutation_type]
    assert len(values) == 15  # 12 messages, 2 delayed, 1 state written
    assert all(value.has_value for value in values)
    assert result.outgoing_messages[0].argument == v3.TypedValue(
        typename="type.googleapis.com/google.protobuf.Int64Value", has_value=True, value=Int64Value(value=1).SerializeToString()
    )
    assert result.outgoing_messages[-1].argument == v3.TypedValue(
        typename="type.googleapis.com/google.protobuf.Empty", has_value=True
    )


def test_a_message_reaches_an_unannotated_function_as_the_equivalent_any():
    got = []
    data = to_v3(request(messages=[Any(type_url="io.statefun.types/string", value=b"hello")]))
    handle(bind(lambda context, message: got.append(message)), data)
    assert got == [Any(type_url="io.statefun.types/string", value=b"hello")]
    assert type(got[0]) is Any


def test_a_typed_value_without_value_reaches_the_function_as_an_any_without_value():
    got = []
    message = v3.ToFunction()
    message.invocation.target.CopyFrom(v3.Address(namespace="example", type="fn", id="i"))
    message.invocation.invocations.add().argument.CopyFrom(v3.TypedValue(typename="example/t", has_value=True))
    handle(bind(lambda context, message: got.append(message)), message.SerializeToString())
    assert got == [Any(type_url="example/t")]


def test_a_message_of_a_type_the_annotation_does_not_accept_fails_the_batch():
    data = to_v3(request(messages=[Int64Value(value=1)]))
    with pytest.raises(FunctionInvocationError) as info:
        handle(bind(counter), data)
    assert isinstance(info.value.__cause__, UnexpectedMessageTypeError)
    assert "received a message of type 'type.googleapis.com/google.protobuf.Int64Value'" in str(info.value)


# -- built-in types ---------------------------------------------------------------------------


def test_built_in_types_reach_a_function_and_go_out_under_their_type_names():
    got = []

    def fn(context, message: Union[IntWrapper, StringWrapper]):
        got.append(message)
        context.pack_and_send("example/python", "p", IntWrapper(value=message.value * 2 if isinstance(message, IntWrapper) else 0))

    data = to_v3(request(messages=[IntWrapper(value=21), StringWrapper(value="s")]))
    assert to_v3(request(messages=[IntWrapper(value=21)])).count(b"io.statefun.types/int") == 1
    result = v3_reply(handle(bind(fn), data))
    assert got == [IntWrapper(value=21), StringWrapper(value="s")]
    assert [m.argument for m in result.outgoing_messages] == [
        v3.TypedValue(typename="io.statefun.types/int", has_value=True, value=b"\x0d\x2a\x00\x00\x00"),
        v3.TypedValue(typename="io.statefun.types/int", has_value=True),
    ]


# -- states ---------------------------------------------------------------------------------


def test_an_any_state_round_trips_byte_for_byte_as_2x_stored_it():
    stored = pack(StringValue(value="kept")).SerializeToString()

    def fn(context, message):
        context["s"] = context["s"]

    data = request(state={"s": stored}, messages=[Empty()])
    two = FromFunction.FromString(handle(bind(fn), data))  # the 2.x reply read with the 3.x reference: same fields
    three = v3_reply(handle(bind(fn), to_v3(data)))
    assert three.state_mutations[0].state_value == v3.TypedValue(typename=ANY_TYPENAME, has_value=True, value=stored)
    assert two.invocation_result.state_mutations[0].state_value.typename == "type.googleapis.com/google.protobuf.StringValue"


def test_a_state_without_value_and_an_empty_any_read_as_none():
    got = []

    def fn(context, message):
        got.append((context["absent"], context["empty"]))

    data = request(state={"absent": None, "empty": None}, messages=[Empty()])
    message = v3.ToFunction.FromString(to_v3(data))
    message.invocation.state[1].state_value.CopyFrom(v3.TypedValue(typename=ANY_TYPENAME, has_value=True))
    handle(bind(fn), message.SerializeToString())
    assert got == [(None, None)]


def test_a_deleted_state_is_a_delete_without_value():
    def fn(context, message):
        del context["s"]

    result = v3_reply(handle(bind(fn), to_v3(request(state={"s": Int64Value(value=1)}, messages=[Empty()]))))
    assert result.state_mutations[0] == FromFunction.PersistedValueMutation(state_name="s")


def typed_state_request(typename: str, value: bytes, argument: Optional[Any] = None) -> bytes:
    message = v3.ToFunction.FromString(to_v3(request(state={"s": None}, messages=[argument or Empty()])))
    message.invocation.state[0].state_value.CopyFrom(v3.TypedValue(typename=typename, has_value=True, value=value))
    return message.SerializeToString()


@pytest.mark.parametrize("raw", [b"\x0d\x05\x00\x00\x00", b'{"json": "not a protobuf"}'], ids=["int", "json"])
def test_a_state_of_another_type_reads_as_an_any_of_that_type(raw):
    got = []
    handle(bind(lambda context, message: got.append(context["s"])), typed_state_request("example.org/t", raw))
    assert got == [Any(type_url="example.org/t", value=raw)]


def test_a_state_of_another_type_is_written_with_that_type():
    def fn(context, message):
        seen = context.state("s").unpack(IntWrapper)
        context.state("s").pack(IntWrapper(value=seen.value + 1))

    result = v3_reply(handle(bind(fn), typed_state_request("io.statefun.types/int", b"\x0d\x05\x00\x00\x00")))
    assert result.state_mutations[0].state_value == v3.TypedValue(
        typename="io.statefun.types/int", has_value=True, value=b"\x0d\x06\x00\x00\x00"
    )


def test_a_write_that_would_change_a_registered_type_is_refused_in_the_function():
    caught = []

    def fn(context, message):
        try:
            context.state("s").pack(StringValue(value="other"))
        except UnexpectedMessageTypeError as exc:
            caught.append(str(exc))

    reply = handle(bind(fn), typed_state_request("io.statefun.types/int", b"\x0d\x05\x00\x00\x00"))
    assert v3_reply(reply).state_mutations == []
    assert caught == [
        "state 's' is registered in the runtime with type 'io.statefun.types/int', and a value of type "
        "'type.googleapis.com/google.protobuf.StringValue' would change that type, which fails the job: write an "
        "Any whose type_url is 'io.statefun.types/int'"
    ]


def test_a_typed_value_spec_writes_its_type_and_refuses_another_even_before_it_has_a_value():
    caught = []

    def fn(context, message):
        try:
            context["n"] = pack(StringValue(value="x"))
        except UnexpectedMessageTypeError as exc:
            caught.append(exc)
        context.state("n").pack(Int64Value(value=7))

    runtime = MiniRuntime(bind(fn, [ValueSpec("n", Int64Value)]))
    runtime.run(Empty())
    assert len(caught) == 1
    assert runtime.states["n"].typename == "type.googleapis.com/google.protobuf.Int64Value"
    assert runtime.states["n"].value == Int64Value(value=7).SerializeToString()  # the message itself, no Any


def test_an_any_state_whose_value_does_not_parse_fails_only_when_read():
    raw = b"\x0a\xff"  # a type URL whose length runs past the end

    with pytest.raises(FunctionInvocationError, match=r"state 's': a state of type type.googleapis.com/google.protobuf.Any holds a value that does not parse"):
        handle(bind(lambda context, message: context["s"]), typed_state_request(ANY_TYPENAME, raw))
    handle(bind(lambda context, message: None), typed_state_request(ANY_TYPENAME, raw))


# -- delayed messages and their cancellation ---------------------------------------------------


def delayed(data: bytes) -> list:
    return list(v3_reply(data).delayed_invocations)


def test_a_delayed_message_with_a_token_and_a_cancellation():
    def fn(context, message):
        context.pack_and_send_after(timedelta(seconds=2), "example/fn", "me", StringValue(value="a"), cancellation_token="t-1")
        context.send_after(timedelta(0), "example/fn", "me", pack(Empty()), "t-2")
        context.cancel_delayed_message("t-0")

    got = delayed(handle(bind(fn), to_v3(request(messages=[Empty()]))))
    expected = FromFunction.DelayedInvocation(
        delay_in_ms=2000,
        target=v3.Address(namespace="example", type="fn", id="me"),
        argument=v3.TypedValue(
            typename="type.googleapis.com/google.protobuf.StringValue", has_value=True, value=StringValue(value="a").SerializeToString()
        ),
        cancellation_token="t-1",
    )
    assert got[0] == expected
    assert got[1].cancellation_token == "t-2" and got[1].delay_in_ms == 0 and got[1].argument.has_value
    assert got[2] == FromFunction.DelayedInvocation(is_cancellation_request=True, cancellation_token="t-0")
    assert got[2].SerializeToString() == b"\x50\x01\x5a\x03t-0"


def test_a_delayed_message_without_a_token_has_none():
    def fn(context, message):
        context.pack_and_send_after(timedelta(milliseconds=1), "example/fn", "me", Empty())

    (got,) = delayed(handle(bind(fn), to_v3(request(messages=[Empty()]))))
    assert not got.cancellation_token and not got.is_cancellation_request


CANCELLATION_MISUSE = [
    ("empty-token-send", lambda c: c.pack_and_send_after(timedelta(milliseconds=1), "example/fn", "me", Empty(), cancellation_token=""), ValueError, r"a cancellation token cannot be empty"),
    ("empty-token-cancel", lambda c: c.cancel_delayed_message(""), ValueError, r"a cancellation token cannot be empty"),
    ("token-not-str", lambda c: c.send_after(timedelta(milliseconds=1), "example/fn", "me", pack(Empty()), cancellation_token=5), TypeError, r"a cancellation token is a str, got int"),
    ("cancel-not-str", lambda c: c.cancel_delayed_message(None), TypeError, r"a cancellation token is a str, got NoneType"),
]


@pytest.mark.parametrize("call, error, match", [c[1:] for c in CANCELLATION_MISUSE], ids=[c[0] for c in CANCELLATION_MISUSE])
def test_a_bad_token_is_an_error_the_function_sees_and_nothing_is_sent(call, error, match):
    caught = []

    def fn(context, message):
        try:
            call(context)
        except error as exc:
            caught.append(str(exc))

    assert delayed(handle(bind(fn), to_v3(request(messages=[Empty()])))) == []
    assert len(caught) == 1 and __import__("re").search(match, caught[0])


# -- egress ------------------------------------------------------------------------------------


def egress_fn(context, message):
    context.pack_and_send_egress("example/kafka", kafka_egress_record("topic", "v", key="k"))
    context.pack_and_send_egress("example/kinesis", kinesis_egress_record("stream", b"v", "pk"))
    context.send_egress("example/kafka", pack(kafka_egress_record("topic", "v2")))


def test_egress_records_go_out_under_their_3x_names_on_3x():
    result = v3_reply(handle(bind(egress_fn), to_v3(request(messages=[Empty()]))))
    assert [e.argument.typename for e in result.outgoing_egresses] == [
        "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord",
        "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord",
        "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord",
    ]
    assert (KAFKA_PRODUCER_RECORD_TYPENAME, KINESIS_EGRESS_RECORD_TYPENAME) == (
        result.outgoing_egresses[0].argument.typename,
        result.outgoing_egresses[1].argument.typename,
    )
    assert result.outgoing_egresses[0].argument.value == kafka_egress_record("topic", "v", key="k").SerializeToString()


def test_egress_records_keep_their_2x_names_on_2x():
    reply = FromFunction.FromString(handle(bind(egress_fn), request(messages=[Empty()])))  # same field numbers
    assert [e.argument.typename for e in reply.invocation_result.outgoing_egresses] == [
        "type.googleapis.com/org.apache.flink.statefun.flink.io.KafkaProducerRecord",
        "type.googleapis.com/org.apache.flink.statefun.flink.io.KinesisEgressRecord",
        "type.googleapis.com/org.apache.flink.statefun.flink.io.KafkaProducerRecord",
    ]


# -- requests that are not right -------------------------------------------------------------


def test_an_unknown_function_is_a_404_on_3x_too():
    from statefun_wsgi.errors import UnknownFunctionError

    with pytest.raises(UnknownFunctionError, match=r"no function is bound to example/nobody"):
        handle(bind(counter), to_v3(request("example/nobody", messages=[StringValue()])))


def test_an_empty_3x_batch_is_malformed():
    from statefun_wsgi.errors import MalformedRequestError

    message = v3.ToFunction()
    message.invocation.target.CopyFrom(v3.Address(namespace="example", type="fn", id="i"))
    message.invocation.state.add(state_name="s").state_value.CopyFrom(v3.TypedValue(typename=ANY_TYPENAME, has_value=True))
    with pytest.raises(MalformedRequestError, match="the invocation batch holds no invocations"):
        handle(bind(counter), message.SerializeToString())


def test_the_codec_is_named():
    from statefun_wsgi._protocol3 import CODEC

    assert repr(CODEC) == "<Codec StateFun 3.x>"


def test_mutations_reference_is_the_same_as_the_hand_written_reply():
    """The hand-written reply parses and re-serializes to itself with the reference proto."""
    data = to_v3(request(state={"s1": Int64Value(value=1), "s2": None}, messages=[Int64Value(value=1)], caller=("a/b", "c")))
    reply = handle(bind(fanout), data)
    assert FromFunction.FromString(reply).SerializeToString() == reply


Tuple, Sent, Egress, Mutation  # noqa: B018  (imported for readers of the 2.x builders)
