"""Builders for ``ToFunction`` requests and decoders for ``FromFunction`` replies.

The unit tests speak the wire protocol through these, so that every assertion is
about what the runtime would actually receive::

    from builders import Delayed, Egress, Mutation, Sent, decode_reply, invoke, request

    data = request("example/counter", "user-1", state={"count": Int64Value(value=41)},
                   messages=[StringValue(value="hello")])
    reply = decode_reply(RequestReplyHandler(functions)(data))
    assert reply.egresses == [Egress("example", "out", Int64Value(value=42))]
    assert reply.mutations == {"count": Mutation.modify(Int64Value(value=42))}

``invoke(fn, ...)`` binds one function, sends it one batch and decodes the reply;
``invoke_failure(fn, ...)`` expects the batch to fail and returns the exception the
function raised (the ``__cause__`` of the :class:`FunctionInvocationError`).

Payloads are decoded from their type URL through the default descriptor pool, so
any generated message class that has been imported can be compared with ``==``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any as TypingAny
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message

from statefun_wsgi import (
    AsyncRequestReplyHandler,
    FunctionInvocationError,
    RequestReplyHandler,
    StatefulFunctions,
)
from statefun_wsgi._proto import egress_records_pb2  # noqa: F401  (registers the records in the pool)
from statefun_wsgi.builtin_types import BUILTIN_TYPENAMES
from statefun_wsgi._proto.request_reply_pb2 import Address as AddressMessage
from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction

TYPE_URL_PREFIX = "type.googleapis.com/"
FUNCTION = "example/fn"
ID = "id-1"


class _EmptyCaller:
    """Sentinel: a caller sub-message that is present but has every field empty."""

    def __repr__(self) -> str:
        return "EMPTY_CALLER"


#: Use as ``caller=EMPTY_CALLER``: ``HasField("caller")`` is true, all its strings are "".
EMPTY_CALLER = _EmptyCaller()

CallerSpec = Union[None, _EmptyCaller, Tuple[str, str, str], Tuple[str, str]]
StateSpec = Union[None, bytes, Message]


# -- building requests ----------------------------------------------------------------


def pack(message: Message) -> Any:
    """``message`` as an ``Any`` (an ``Any`` is returned unchanged); a built-in type of
    the 3.x SDKs (``IntWrapper``, ...) under its own type name."""
    if isinstance(message, Any):
        return message
    builtin = BUILTIN_TYPENAMES.get(type(message))
    if builtin is not None:
        return Any(type_url=builtin, value=message.SerializeToString())
    packed = Any()
    packed.Pack(message)
    return packed


def split(typename: str) -> Tuple[str, str]:
    namespace, _, name = typename.rpartition("/")
    return namespace, name


def address(typename: str, id: str) -> AddressMessage:
    namespace, name = split(typename)
    return AddressMessage(namespace=namespace, type=name, id=id)


@dataclass
class Call:
    """One invocation of a batch: its argument and who sent it."""

    message: Message
    caller: CallerSpec = None

    def fill(self, invocation: ToFunction.Invocation) -> None:
        invocation.argument.CopyFrom(pack(self.message))
        caller = self.caller
        if caller is EMPTY_CALLER:
            invocation.caller.SetInParent()
        elif caller is not None:
            if len(caller) == 2:  # (typename, id)
                invocation.caller.CopyFrom(address(*caller))
            else:  # (namespace, type, id)
                namespace, name, id = caller
                invocation.caller.CopyFrom(AddressMessage(namespace=namespace, type=name, id=id))


def to_function(
    typename: str = FUNCTION,
    id: str = ID,
    *,
    state: Optional[Mapping[str, StateSpec]] = None,
    messages: Iterable[Union[Message, Call]] = (),
    caller: CallerSpec = None,
) -> ToFunction:
    """A ``ToFunction`` for ``typename``/``id``.

    ``state`` maps each state name the runtime sends to its value: a message (packed
    into an ``Any``, or an ``Any`` as it is), raw ``bytes`` for ``state_value``, or
    ``None`` for a state sent with only its name (absent). ``messages`` are the
    invocations, in order: messages sent by ``caller`` (``None`` = from an ingress,
    ``(typename, id)``, ``(namespace, type, id)`` or :data:`EMPTY_CALLER`), or
    :class:`Call` objects to give each its own caller. With no messages the batch is
    empty (the runtime never sends that).
    """
    request = ToFunction()
    batch = request.invocation
    batch.target.CopyFrom(address(typename, id))
    for name, value in (state or {}).items():
        persisted = batch.state.add(state_name=name)
        if value is None:
            continue
        if isinstance(value, (bytes, bytearray)):
            persisted.state_value = bytes(value)
        else:
            persisted.state_value = pack(value).SerializeToString()
    for item in messages:
        call = item if isinstance(item, Call) else Call(item, caller)
        call.fill(batch.invocations.add())
    return request


def request(typename: str = FUNCTION, id: str = ID, **kwargs: TypingAny) -> bytes:
    """:func:`to_function`, serialized: the body the runtime POSTs."""
    return to_function(typename, id, **kwargs).SerializeToString()


# -- decoding replies -----------------------------------------------------------------


def decode_any(packed: Any) -> Message:
    """The message inside ``packed``; the type URL must use the standard prefix (or be
    a built-in type's name)."""
    for cls, typename in BUILTIN_TYPENAMES.items():
        if packed.type_url == typename:
            return cls.FromString(packed.value)
    assert packed.type_url.startswith(TYPE_URL_PREFIX), f"unexpected type URL {packed.type_url!r}"
    full_name = packed.type_url[len(TYPE_URL_PREFIX) :]
    descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    cls = message_factory.GetMessageClass(descriptor)
    message = cls()
    assert packed.Unpack(message), f"cannot unpack {packed.type_url!r}"
    return message


class Sent(NamedTuple):
    """One outgoing message: its target and its decoded payload."""

    namespace: str
    type: str
    id: str
    message: Message

    @classmethod
    def to(cls, typename: str, id: str, message: Message) -> Sent:
        return cls(*split(typename), id, message)


class Delayed(NamedTuple):
    """One delayed message: its delay, its target and its decoded payload."""

    delay_ms: int
    namespace: str
    type: str
    id: str
    message: Message

    @classmethod
    def to(cls, delay_ms: int, typename: str, id: str, message: Message) -> Delayed:
        return cls(delay_ms, *split(typename), id, message)


class Egress(NamedTuple):
    """One egress message: the egress and the decoded payload."""

    namespace: str
    type: str
    message: Message

    @classmethod
    def to(cls, typename: str, message: Message) -> Egress:
        return cls(*split(typename), message)


class Mutation(NamedTuple):
    """One state mutation: ``"MODIFY"`` with the decoded value, or ``"DELETE"``."""

    kind: str
    message: Optional[Message] = None

    @classmethod
    def modify(cls, message: Message) -> Mutation:
        return cls("MODIFY", message)

    @classmethod
    def delete(cls) -> Mutation:
        return cls("DELETE", None)


_KINDS = {
    FromFunction.PersistedValueMutation.MODIFY: "MODIFY",
    FromFunction.PersistedValueMutation.DELETE: "DELETE",
}


@dataclass
class Reply:
    """A decoded ``FromFunction``: every effect, in wire order."""

    sent: list = field(default_factory=list)
    delayed: list = field(default_factory=list)
    egresses: list = field(default_factory=list)
    mutations: dict = field(default_factory=dict)
    mutation_order: list = field(default_factory=list)
    raw: Optional[FromFunction] = None

    @property
    def empty(self) -> bool:
        return not (self.sent or self.delayed or self.egresses or self.mutations)


def _target(message: Message) -> Tuple[str, str, str]:
    assert message.HasField("target"), f"no target in {message}"
    target = message.target
    return target.namespace, target.type, target.id


def decode_reply(data: bytes) -> Reply:
    """Decode reply bytes, checking the invariants the runtime relies on.

    Every message must carry a target (or egress) and an argument; there is at most
    one mutation per state name; a DELETE carries no value and a MODIFY carries a
    serialized ``Any``.
    """
    assert isinstance(data, bytes), f"a reply is bytes, got {type(data).__name__}"
    response = FromFunction.FromString(data)
    reply = Reply(raw=response)
    if not response.HasField("invocation_result"):
        return reply
    result = response.invocation_result
    for message in result.outgoing_messages:
        assert message.HasField("argument"), "an outgoing message without an argument"
        reply.sent.append(Sent(*_target(message), decode_any(message.argument)))
    for message in result.delayed_invocations:
        assert message.HasField("argument"), "a delayed message without an argument"
        reply.delayed.append(Delayed(message.delay_in_ms, *_target(message), decode_any(message.argument)))
    for message in result.outgoing_egresses:
        assert message.HasField("argument"), "an egress message without an argument"
        reply.egresses.append(Egress(message.egress_namespace, message.egress_type, decode_any(message.argument)))
    for mutation in result.state_mutations:
        name = mutation.state_name
        assert name not in reply.mutations, f"two mutations for state {name!r}"
        kind = _KINDS[mutation.mutation_type]
        if kind == "DELETE":
            assert mutation.state_value == b"", f"a DELETE of {name!r} carries a value"
            reply.mutations[name] = Mutation.delete()
        else:
            reply.mutations[name] = Mutation.modify(decode_any(Any.FromString(mutation.state_value)))
        reply.mutation_order.append(name)
    return reply


# -- running one function -------------------------------------------------------------


def bind(fn: Callable[..., TypingAny], typename: str = FUNCTION, states: Optional[Sequence[str]] = None) -> StatefulFunctions:
    functions = StatefulFunctions()
    functions.register(typename, fn, states)
    return functions


def invoke(
    fn: Callable[..., TypingAny],
    *,
    typename: str = FUNCTION,
    id: str = ID,
    states: Optional[Sequence[str]] = None,
    run_async: bool = False,
    **kwargs: TypingAny,
) -> Reply:
    """Bind ``fn`` to ``typename``, send it one batch (see :func:`to_function`), decode the reply."""
    functions = bind(fn, typename, states)
    data = request(typename, id, **kwargs)
    if run_async:
        return decode_reply(asyncio.run(AsyncRequestReplyHandler(functions)(data)))
    return decode_reply(RequestReplyHandler(functions)(data))


def invoke_failure(
    fn: Callable[..., TypingAny], expected: type[BaseException], match: Optional[str] = None, **kwargs: TypingAny
) -> BaseException:
    """Like :func:`invoke`, but the batch must fail; returns the function's own exception.

    Checks that it is wrapped in a :class:`FunctionInvocationError` (status 500)
    whose ``__cause__`` is an ``expected`` matching ``match``.
    """
    with pytest.raises(FunctionInvocationError) as info:
        invoke(fn, **kwargs)
    assert info.value.status == 500
    cause = info.value.__cause__
    assert isinstance(cause, expected), f"cause is {cause!r}, expected a {expected.__name__}"
    if match is not None:
        assert re.search(match, str(cause)), f"{str(cause)!r} does not match {match!r}"
        # The wrapping error repeats the cause, so the one-line HTTP body says what went wrong.
        assert str(cause) in str(info.value)
    return cause


# -- StateFun 3.x -----------------------------------------------------------------------
# A 3.x request is built from the equivalent 2.x one, and a 3.x reply turned back into
# the equivalent 2.x one, so that every 2.x assertion above checks 3.x too:
#
#     reply = decode_reply(from_v3(handler(to_v3(request(...)))))

from statefun_wsgi._proto import request_reply_v3_pb2 as v3  # noqa: E402

ANY_TYPENAME = "type.googleapis.com/google.protobuf.Any"


def to_v3(data: bytes, *, declared: Optional[Mapping[str, str]] = None) -> bytes:
    """The 3.x request equivalent to the 2.x request ``data``: each argument a
    ``TypedValue{type_url, has_value=true, value}``, each state of value ``v`` a
    ``TypedValue{type.googleapis.com/google.protobuf.Any, true, v}`` (``declared`` maps
    a state name to another registered type: its value is then the Any's value)."""
    old = ToFunction.FromString(data)
    new = v3.ToFunction()
    if not old.HasField("invocation"):
        return new.SerializeToString()
    batch, out = old.invocation, new.invocation
    out.target.CopyFrom(v3.Address(namespace=batch.target.namespace, type=batch.target.type, id=batch.target.id))
    for state in batch.state:
        persisted = out.state.add(state_name=state.state_name)
        if state.state_value:
            typename = (declared or {}).get(state.state_name, ANY_TYPENAME)
            if typename == ANY_TYPENAME:
                value = state.state_value
            else:
                packed = Any.FromString(state.state_value)
                assert packed.type_url == typename, f"{packed.type_url} is not {typename}"
                value = packed.value
            persisted.state_value.CopyFrom(v3.TypedValue(typename=typename, has_value=True, value=value))
    for invocation in batch.invocations:
        call = out.invocations.add()
        if invocation.HasField("caller"):
            c = invocation.caller
            call.caller.CopyFrom(v3.Address(namespace=c.namespace, type=c.type, id=c.id))
        call.argument.CopyFrom(
            v3.TypedValue(typename=invocation.argument.type_url, has_value=True, value=invocation.argument.value)
        )
    return new.SerializeToString()


def _typed_to_any(typed: v3.TypedValue, what: str) -> Any:
    assert typed.has_value, f"{what}: has_value is not set"
    return Any(type_url=typed.typename, value=typed.value)


def from_v3(data: bytes) -> bytes:
    """The 2.x reply equivalent to the 3.x reply ``data`` (which must be an
    ``invocation_result``, every value with ``has_value=true``, no cancellation)."""
    assert isinstance(data, bytes), f"a reply is bytes, got {type(data).__name__}"
    reply = v3.FromFunction.FromString(data)
    assert not reply.HasField("incomplete_invocation_context"), f"states to declare: {reply}"
    old = FromFunction()
    if not reply.HasField("invocation_result"):
        return old.SerializeToString()
    result, out = reply.invocation_result, old.invocation_result
    for mutation in result.state_mutations:
        converted = out.state_mutations.add(mutation_type=mutation.mutation_type, state_name=mutation.state_name)
        if mutation.mutation_type == v3.FromFunction.PersistedValueMutation.MODIFY:
            typed = mutation.state_value
            assert typed.has_value, f"state {mutation.state_name!r}: has_value is not set"
            converted.state_value = (
                typed.value
                if typed.typename == ANY_TYPENAME
                else Any(type_url=typed.typename, value=typed.value).SerializeToString()
            )
        else:
            assert not mutation.HasField("state_value"), f"a DELETE of {mutation.state_name!r} carries a value"
    for message in result.outgoing_messages:
        sent = out.outgoing_messages.add()
        sent.target.CopyFrom(AddressMessage(**{f: getattr(message.target, f) for f in ("namespace", "type", "id")}))
        sent.argument.CopyFrom(_typed_to_any(message.argument, "a message"))
    for message in result.delayed_invocations:
        assert not message.is_cancellation_request and not message.cancellation_token, f"a cancellation: {message}"
        delayed = out.delayed_invocations.add(delay_in_ms=message.delay_in_ms)
        delayed.target.CopyFrom(AddressMessage(**{f: getattr(message.target, f) for f in ("namespace", "type", "id")}))
        delayed.argument.CopyFrom(_typed_to_any(message.argument, "a delayed message"))
    for message in result.outgoing_egresses:
        egress = out.outgoing_egresses.add(egress_namespace=message.egress_namespace, egress_type=message.egress_type)
        egress.argument.CopyFrom(_typed_to_any(message.argument, "an egress message"))
    return old.SerializeToString()


def missing_values(data: bytes) -> list:
    """The states a 3.x reply declares: ``[(name, typename, mode, millis)]``."""
    reply = v3.FromFunction.FromString(data)
    assert reply.HasField("incomplete_invocation_context"), f"no states declared: {reply}"
    return [
        (spec.state_name, spec.type_typename, spec.expiration_spec.mode, spec.expiration_spec.expire_after_millis)
        for spec in reply.incomplete_invocation_context.missing_values
    ]
