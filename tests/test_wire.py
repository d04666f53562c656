"""Tests for statefun_wsgi._wire: the reply written by hand must be the reply the
generated protobuf code writes, byte for byte.

The reference builds the same ``FromFunction`` with ``request_reply_pb2`` (the
protocol's own definitions) and serializes it; hypothesis drives the context through
random sequences of sends, replies, delays, egress and state changes. The same runs on
a 3.x batch's context, against the equivalent reply of ``request_reply_v3_pb2``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import List, Optional, Tuple

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue
from hypothesis import given, settings
from hypothesis import strategies as st

from statefun_wsgi import _wire
from statefun_wsgi._proto import request_reply_v3_pb2 as v3
from statefun_wsgi._proto import request_reply_v3_view_pb2 as view3
from statefun_wsgi._proto import request_reply_view_pb2 as view
from statefun_wsgi._proto.request_reply_pb2 import Address, FromFunction
from statefun_wsgi._protocol3 import ANY_TYPENAME, NO_VALUE
from statefun_wsgi._protocol3 import CODEC as CODEC3
from statefun_wsgi.context import BatchContext, CodecContext

MODIFY = FromFunction.PersistedValueMutation.MODIFY
DELETE = FromFunction.PersistedValueMutation.DELETE


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**35 + 5, 2**63 - 1])
def test_varint_matches_protobuf(value: int) -> None:
    reference = FromFunction.DelayedInvocation(delay_in_ms=value).SerializeToString()
    expected = reference[1:] if value else b""  # after the tag byte
    assert (_wire.varint(value) if value else b"") == expected


def test_an_empty_result_is_present_and_empty() -> None:
    reference = FromFunction()
    reference.invocation_result.SetInParent()
    assert _wire.from_function([]) == reference.SerializeToString() == b"\xa2\x06\x00"


def test_typename_fields_are_an_address_and_an_egress_head_and_validate() -> None:
    assert _wire.typename_fields("a.b/c") == Address(namespace="a.b", type="c").SerializeToString()
    egress = FromFunction.EgressMessage(egress_namespace="a.b", egress_type="c")
    assert _wire.typename_fields("a.b/c") == egress.SerializeToString()
    with pytest.raises(ValueError, match="has no '/'"):
        _wire.typename_fields("nonamespace")
    with pytest.raises(ValueError, match="empty name"):
        _wire.typename_fields("ns/")


def test_a_lone_surrogate_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match="the id '\\\\ud800' is not valid Unicode"):
        _wire.string_field(_wire.ADDRESS_ID, _wire.utf8("\ud800", "the id"))


# -- the context's replies against the generated code -------------------------------------

TEXT = st.text(max_size=12)
IDS = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from([" ", "héllo", "日本", "a" * 200]))  # not "": refused
TYPENAMES = st.sampled_from(["ns/fn", "com.example/greeter", "n/t", "ünï/cödé"])
MESSAGES = st.one_of(
    st.builds(StringValue, value=TEXT),
    st.builds(Int64Value, value=st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.builds(BytesValue, value=st.one_of(st.binary(max_size=64), st.binary(min_size=16384, max_size=20000))),
)
DELAYS = st.one_of(
    st.just(timedelta(0)),
    st.builds(timedelta, milliseconds=st.integers(min_value=0, max_value=10**9)),
    st.just(timedelta(days=10_000)),
)
STATE_NAMES = ["a", "count", "ü"]

Operation = Tuple[str, tuple]

OPERATIONS = st.one_of(
    st.tuples(st.just("pack_and_send"), st.tuples(TYPENAMES, IDS, MESSAGES)),
    st.tuples(st.just("send"), st.tuples(TYPENAMES, IDS, MESSAGES)),
    st.tuples(st.just("pack_and_reply"), st.tuples(MESSAGES)),
    st.tuples(st.just("reply"), st.tuples(MESSAGES)),
    st.tuples(st.just("pack_and_send_after"), st.tuples(DELAYS, TYPENAMES, IDS, MESSAGES)),
    st.tuples(st.just("send_after"), st.tuples(DELAYS, TYPENAMES, IDS, MESSAGES)),
    st.tuples(st.just("pack_and_send_egress"), st.tuples(TYPENAMES, MESSAGES)),
    st.tuples(st.just("send_egress"), st.tuples(TYPENAMES, MESSAGES)),
    st.tuples(st.just("set"), st.tuples(st.sampled_from(STATE_NAMES), MESSAGES)),
    st.tuples(st.just("set_empty_any"), st.tuples(st.sampled_from(STATE_NAMES))),
    st.tuples(st.just("delete"), st.tuples(st.sampled_from(STATE_NAMES))),
)


def packed(message) -> Any:
    box = Any()
    box.Pack(message)
    return box


def new_context(caller: Optional[Tuple[str, str, str]]) -> BatchContext:
    request = view.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "ns", "fn", "me"
    for name in STATE_NAMES:
        batch.state.add(state_name=name)
    invocation = batch.invocations.add()
    if caller is not None:
        invocation.caller.namespace, invocation.caller.type, invocation.caller.id = caller
    context = BatchContext(batch.target, {state.state_name: state for state in batch.state})
    context._enter(invocation)
    return context


def reference_reply(operations: List[Operation], caller: Optional[Tuple[str, str, str]]) -> bytes:
    """The same reply built with the generated code, in the order the context promises:
    state mutations (in first-change order), then messages, delayed messages, egress."""
    reply = FromFunction()
    result = reply.invocation_result
    result.SetInParent()
    states: dict = {}
    for name, arguments in operations:
        if name in ("pack_and_send", "send"):
            typename, id, message = arguments
            namespace, type = typename.rsplit("/", 1)
            target = Address(namespace=namespace, type=type, id=id)
            result.outgoing_messages.add(target=target, argument=packed(message))
        elif name in ("pack_and_reply", "reply"):
            namespace, type, id = caller  # type: ignore[misc]
            result.outgoing_messages.add(target=Address(namespace=namespace, type=type, id=id),
                                         argument=packed(arguments[0]))
        elif name in ("pack_and_send_after", "send_after"):
            delay, typename, id, message = arguments
            namespace, type = typename.rsplit("/", 1)
            result.delayed_invocations.add(delay_in_ms=delay // timedelta(milliseconds=1),
                                           target=Address(namespace=namespace, type=type, id=id),
                                           argument=packed(message))
        elif name in ("pack_and_send_egress", "send_egress"):
            typename, message = arguments
            namespace, type = typename.rsplit("/", 1)
            result.outgoing_egresses.add(egress_namespace=namespace, egress_type=type, argument=packed(message))
        elif name == "set":
            states[arguments[0]] = packed(arguments[1]).SerializeToString()
        elif name == "set_empty_any":
            states[arguments[0]] = b""
        elif name == "delete":
            states[arguments[0]] = None
    mutations = FromFunction.InvocationResponse()
    for state_name, value in states.items():
        if value is None:
            mutations.state_mutations.add(mutation_type=DELETE, state_name=state_name)
        else:
            mutations.state_mutations.add(mutation_type=MODIFY, state_name=state_name, state_value=value)
    mutations.MergeFrom(result)  # mutations first: field 1 precedes the others
    reply.invocation_result.CopyFrom(mutations)
    return reply.SerializeToString()


def run(context: BatchContext, operations: List[Operation]) -> None:
    for name, arguments in operations:
        if name in ("send", "reply", "send_after", "send_egress"):
            arguments = (*arguments[:-1], packed(arguments[-1]))
        if name == "set":
            context[arguments[0]] = packed(arguments[1])
        elif name == "set_empty_any":
            context[arguments[0]] = Any()
        elif name == "delete":
            del context[arguments[0]]
        else:
            getattr(context, name)(*arguments)


CALLERS = st.one_of(st.none(), st.tuples(st.sampled_from(["ns", "x.y"]), st.sampled_from(["fn", "t"]), IDS))


@settings(max_examples=300, deadline=None)
@given(CALLERS, st.lists(OPERATIONS, max_size=12))
def test_the_reply_is_byte_for_byte_what_the_generated_code_writes(
    caller: Optional[Tuple[str, str, str]], operations: List[Operation]
) -> None:
    if caller is None:
        operations = [op for op in operations if op[0] not in ("reply", "pack_and_reply")]
    context = new_context(caller)
    run(context, operations)
    assert context._finish() == reference_reply(operations, caller)


# -- the same for a 3.x batch (TypedValue for every Any) ----------------------------------


def to_v3_reply(reply_bytes: bytes) -> bytes:
    """The 3.x reply equivalent to a 2.x one, written with the generated 3.x code: each Any
    becomes ``TypedValue{type_url, true, value}``, each state value (a serialized Any)
    ``TypedValue{type.googleapis.com/google.protobuf.Any, true, the bytes}``."""
    old = FromFunction.FromString(reply_bytes).invocation_result
    reply = v3.FromFunction()
    result = reply.invocation_result
    result.SetInParent()

    def typed(box: Any) -> v3.TypedValue:
        return v3.TypedValue(typename=box.type_url, has_value=True, value=box.value)

    def address(a: Address) -> v3.Address:
        return v3.Address(namespace=a.namespace, type=a.type, id=a.id)

    for mutation in old.state_mutations:
        new = result.state_mutations.add(mutation_type=mutation.mutation_type, state_name=mutation.state_name)
        if mutation.mutation_type == MODIFY:
            new.state_value.CopyFrom(v3.TypedValue(typename=ANY_TYPENAME, has_value=True, value=mutation.state_value))
    for message in old.outgoing_messages:
        result.outgoing_messages.add(target=address(message.target), argument=typed(message.argument))
    for delayed in old.delayed_invocations:
        result.delayed_invocations.add(
            delay_in_ms=delayed.delay_in_ms, target=address(delayed.target), argument=typed(delayed.argument)
        )
    for egress in old.outgoing_egresses:
        result.outgoing_egresses.add(
            egress_namespace=egress.egress_namespace, egress_type=egress.egress_type, argument=typed(egress.argument)
        )
    return reply.SerializeToString()


def new_context_v3(caller: Optional[Tuple[str, str, str]]) -> CodecContext:
    request = view3.ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "ns", "fn", "me"
    invocation = batch.invocations.add()
    if caller is not None:
        invocation.caller.namespace, invocation.caller.type, invocation.caller.id = caller
    context = CodecContext(batch.target, {name: NO_VALUE for name in STATE_NAMES}, CODEC3, None)
    context._enter(invocation)
    return context


@settings(max_examples=300, deadline=None)
@given(CALLERS, st.lists(OPERATIONS, max_size=12))
def test_the_3x_reply_is_byte_for_byte_what_the_generated_code_writes(
    caller: Optional[Tuple[str, str, str]], operations: List[Operation]
) -> None:
    if caller is None:
        operations = [op for op in operations if op[0] not in ("reply", "pack_and_reply")]
    context = new_context_v3(caller)
    run(context, operations)
    assert context._finish() == to_v3_reply(reference_reply(operations, caller))
