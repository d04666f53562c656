"""The StateFun 3.x protocol's parse-and-write (see :mod:`statefun_wsgi._codec`).

What differs from 2.x (same messages, same field numbers otherwise):

- a message is a ``TypedValue{typename, has_value, value}``: it reaches a function as
  the ``Any(type_url=typename, value=value)`` it is equivalent to, and what a function
  sends goes out as ``TypedValue{type URL, has_value=true, value}``;
- a state is declared by the function (``incomplete_invocation_context``) with a fixed
  type. The endpoint declares a state as ``type.googleapis.com/google.protobuf.Any``
  holding the serialized ``Any`` (byte for byte what 2.x stores), or, for a
  ``ValueSpec(name, SomeMessage)``, under that message's type name holding the message;
  a state the runtime sends under another type (registered by another SDK) reaches the
  function as an ``Any`` of that type name, and can only be written with that type again;
- a delayed message can carry a cancellation token, and be cancelled (3.1+);
- the generic egress records go by their 3.x names
  (``type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord``, ...).

Requests are parsed with ``request_reply_v3_view.proto``; replies are written here and
in :mod:`statefun_wsgi._wire` (the fields they share with 2.x).
"""

from __future__ import annotations

import functools
import operator

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, Union
from typing import Any as TypingAny

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from ._codec import Codec, parse_error_detail
from ._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord
from ._proto.request_reply_v3_view_pb2 import ToFunction, ToFunctionRaw
from ._wire import (
    DELAYED_ARGUMENT,
    DELAYED_DELAY,
    DELAYED_INVOCATIONS,
    DELAYED_TARGET,
    MUTATION_MODIFY,
    MUTATION_VALUE,
    SMALL_VARINTS,
    STATE_MUTATIONS,
    _mutation_name,
    append_state_mutation,
    delayed_invocation,
    string_field,
    utf8,
    varint,
)
from .errors import MalformedRequestError, MissingStateError, UnexpectedMessageTypeError
from .functions import ANY_TYPE_URL, TYPE_URL_PREFIX, ValueSpec, type_url_of

if TYPE_CHECKING:
    from .context import CodecContext
    from .functions import StatefulFunction

__all__ = [
    "ANY_TYPENAME",
    "CODEC",
    "KAFKA_PRODUCER_RECORD_TYPENAME",
    "KINESIS_EGRESS_RECORD_TYPENAME",
]

VERSION = "3.x"

#: The type every state of this endpoint is declared with: its value is a serialized Any.
ANY_TYPENAME = ANY_TYPE_URL
KAFKA_PRODUCER_RECORD_TYPENAME = TYPE_URL_PREFIX + "io.statefun.sdk.egress.KafkaProducerRecord"
KINESIS_EGRESS_RECORD_TYPENAME = TYPE_URL_PREFIX + "io.statefun.sdk.egress.KinesisEgressRecord"

#: The egress records' 2.x type URLs, and their 3.x names (the same fields).
_RECORD_TYPENAMES = {
    TYPE_URL_PREFIX + KafkaProducerRecord.DESCRIPTOR.full_name: KAFKA_PRODUCER_RECORD_TYPENAME,
    TYPE_URL_PREFIX + KinesisEgressRecord.DESCRIPTOR.full_name: KINESIS_EGRESS_RECORD_TYPENAME,
}

# TypedValue fields: typename (1), has_value (2, varint) = true, value (3).
TYPENAME, HAS_VALUE, VALUE = b"\x0a", b"\x10\x01", b"\x1a"
# DelayedInvocation: is_cancellation_request (10, varint) = true, cancellation_token (11).
IS_CANCELLATION, CANCELLATION_TOKEN = b"\x50\x01", b"\x5a"
INCOMPLETE_INVOCATION_CONTEXT = b"\xaa\x06"  # FromFunction field 101
MISSING_VALUES = b"\x0a"  # IncompleteInvocationContext field 1
SPEC_NAME, SPEC_EXPIRATION, SPEC_TYPENAME = b"\x0a", b"\x12", b"\x1a"
EXPIRE_MODE, EXPIRE_AFTER_MILLIS = b"\x08", b"\x10"
EXPIRE_AFTER_WRITE, EXPIRE_AFTER_INVOKE = 1, 2

_ANY_HEAD = string_field(TYPENAME, ANY_TYPENAME.encode()) + HAS_VALUE
_ANY_HEAD_VALUE = _ANY_HEAD + VALUE
_ANY_HEAD_VALUE_SIZE = len(_ANY_HEAD_VALUE)
#: Below this size, a serialized Any's mutation has one-byte lengths (if its name is short).
_SMALL_ANY = 0x80 - 1 - _ANY_HEAD_VALUE_SIZE


@functools.lru_cache(maxsize=4096)
def _modify(name: str) -> bytes:
    """A MODIFY mutation's fields up to its value's length: mutation_type, state_name, the tag."""
    return MUTATION_MODIFY + _mutation_name(name) + MUTATION_VALUE


# -- the request ---------------------------------------------------------------------


def parse(request_bytes: bytes) -> Union[ToFunction, ToFunctionRaw]:
    """The request parsed with the 3.x view whose states are Anys (see :func:`states` for a
    state of another type), or with the view whose state values are bytes when that fails."""
    try:
        return ToFunction.FromString(request_bytes)
    except (DecodeError, ValueError, TypeError, RuntimeError):
        pass  # a state of another type whose value does not parse as an Any: read them raw
    try:
        return ToFunctionRaw.FromString(request_bytes)
    except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
        # protobuf names the type it parsed with, our view of the message: name the runtime's instead
        detail = parse_error_detail(exc, "statefun_wsgi.view3.", "io.statefun.sdk.reqreply.")
        raise MalformedRequestError(
            "the body is not a serialized StateFun 3.x ToFunction (io.statefun.sdk.reqreply.ToFunction, what the "
            f"runtime sends){detail.replace('ToFunctionRaw', 'ToFunction')}"
        ) from None


#: True when the first argument has ``has_value`` set (field 2 as a varint): a 2.x ``Any``
#: never does, and every 3.x runtime and SDK sets it.
proves = operator.attrgetter("has_value")


#: What :func:`states` records for a state sent without a value (only its name).
NO_VALUE: TypingAny = object()


def states(
    request_bytes: bytes, batch: TypingAny, function: StatefulFunction
) -> Tuple[TypingAny, Dict[str, TypingAny], Optional[Dict[str, str]]]:
    """The batch (read again with the raw view if a state has a type other than Any), its
    states by name, and the registered types other than Any (``None``: all are Any), from
    the request and the function's typed ValueSpecs.

    A state maps to its ``TypedValue`` (what :func:`state_value` reads), or to
    :data:`NO_VALUE` when it was sent without one."""
    sent = batch.state
    collected = {}
    types = None
    any_typename = ANY_TYPENAME
    no_value = NO_VALUE
    for index in range(len(sent)):  # by index: see handler._NO_ITERATION
        state = sent[index]
        value = state.state_value
        typename = value.typename  # '' for a state sent without a value (the runtime sends its name only)
        if typename is any_typename or typename == any_typename:
            collected[state.state_name] = value
        elif typename and value.has_value:
            collected[state.state_name] = value
            if types is None:
                types = {}
            types[state.state_name] = typename
        else:
            collected[state.state_name] = no_value
    if types is not None and type(batch) is ToFunction.InvocationBatchRequest:  # Any views of other types
        batch = ToFunctionRaw.FromString(request_bytes).invocation
        sent = batch.state
        for index in range(len(sent)):
            state = sent[index]
            value = state.state_value
            collected[state.state_name] = value if value.has_value else no_value
    declared = function.state_types
    if declared is not None:
        types = {**declared, **types} if types is not None else dict(declared)
    return batch, collected, types


def to_any(argument: ToFunction.Invocation) -> Any:
    """The ``Any`` equivalent to a ``TypedValue`` argument."""
    return Any(type_url=argument.type_url, value=argument.value)


# -- messages ------------------------------------------------------------------------

_HEADS: Dict[type, bytes] = {}
#: message class -> its TypedValue fields up to the value's length (see Codec.value_heads).
_VALUE_HEADS: Dict[type, bytes] = {}


def typename_of(message: Message) -> str:
    """The type name a message goes out with: its type URL, the 3.x name of an egress record."""
    type_url = type_url_of(message)
    return _RECORD_TYPENAMES.get(type_url, type_url)


def packed(message: Message) -> bytes:
    """``TypedValue{type name of message, has_value=true, serialized message}``, encoded."""
    try:
        head = _HEADS[type(message)]
    except KeyError:
        head = _HEADS[type(message)] = string_field(TYPENAME, typename_of(message).encode()) + HAS_VALUE
        _VALUE_HEADS[type(message)] = head + VALUE
    value = message.SerializeToString()
    if not value:
        return head
    size = len(value)
    return head + VALUE + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + value


def boxed(message: Any) -> bytes:
    """``TypedValue{type_url, has_value=true, value}`` of an ``Any`` (an egress record's 2.x
    type URL becomes its 3.x name)."""
    type_url = message.type_url
    type_url = _RECORD_TYPENAMES.get(type_url, type_url)
    value = message.value
    head = string_field(TYPENAME, type_url.encode()) + HAS_VALUE
    if not value:
        return head
    size = len(value)
    return head + VALUE + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + value


# -- states --------------------------------------------------------------------------


def state_value(typed: TypingAny) -> Optional[Any]:
    """The ``Any`` a state holds (``typed`` as :func:`states` recorded it), or ``None``."""
    if typed is NO_VALUE:
        return None
    value = typed.value
    if type(value) is bytes:  # read with the raw view: the type name says what the bytes are
        typename = typed.typename
        if typename != ANY_TYPENAME:
            return Any(type_url=typename, value=value)  # a state of another type
        try:
            value = Any.FromString(value)
        except (DecodeError, UnicodeDecodeError) as exc:
            raise UnexpectedMessageTypeError(
                f"a state of type {ANY_TYPENAME} holds a value that does not parse as one: {exc}"
            ) from None
    # As in 2.x, an empty Any is no value (ByteSize() last: upb serializes to count).
    return value if value.type_url or value.value or value.ByteSize() else None


def _registered_type(context: CodecContext, name: str) -> str:
    types = context._types
    return ANY_TYPENAME if types is None else types.get(name, ANY_TYPENAME)


def check_write(context: CodecContext, name: str, value: Optional[Any]) -> None:
    """Refuse, in the function, a write that would change the state's registered type."""
    typename = _registered_type(context, name)
    if value is not None and typename != ANY_TYPENAME and value.type_url != typename:
        raise UnexpectedMessageTypeError(
            f"state {name!r} is registered in the runtime with type {typename!r}, and a value of type "
            f"{value.type_url!r} would change that type, which fails the job: write an Any whose type_url "
            f"is {typename!r}"
        )


def append_mutations(context: CodecContext, pieces: List[Union[bytes, bytearray]]) -> None:
    """Append a ``state_mutations`` entry per changed state: MODIFY to ``TypedValue{Any,
    serialized value}`` (or to the state's own type and ``value.value``), or DELETE for
    ``None``. Nothing large is copied."""
    values = context._state_values
    types = context._types
    for name in context._changed:
        value = values[name]
        if value is None:
            append_state_mutation(pieces, name, None)
            continue
        typename = ANY_TYPENAME if types is None else types.get(name, ANY_TYPENAME)
        if typename is ANY_TYPENAME or typename == ANY_TYPENAME:
            data = value.SerializeToString()
            size = len(data)
            if size and size < _SMALL_ANY:  # a small Any: the whole mutation in one join
                modify = _modify(name)
                typed = _ANY_HEAD_VALUE_SIZE + 1 + size
                mutation_size = len(modify) + 1 + typed
                if mutation_size < 0x80:
                    pieces.append(b"".join((
                        STATE_MUTATIONS, SMALL_VARINTS[mutation_size],
                        modify, SMALL_VARINTS[typed], _ANY_HEAD_VALUE, SMALL_VARINTS[size], data,
                    )))  # fmt: skip
                    continue
            head = _ANY_HEAD_VALUE + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) if size else _ANY_HEAD
        else:
            data = value.value
            size = len(data)
            head = string_field(TYPENAME, typename.encode()) + HAS_VALUE
            if size:
                head += VALUE + (SMALL_VARINTS[size] if size < 0x80 else varint(size))
        size += len(head)
        mutation = _modify(name) + (SMALL_VARINTS[size] if size < 0x80 else varint(size))
        size += len(mutation)
        pieces += (STATE_MUTATIONS, SMALL_VARINTS[size] if size < 0x80 else varint(size), mutation, head, data)


def missing_state(context: CodecContext, name: object) -> MissingStateError:
    """Record ``name`` to be declared to the runtime (the batch then ends with
    ``incomplete_invocation_context``), and the error the function sees meanwhile."""
    target = context._target
    typename = f"{target.namespace}/{target.type}"
    if not isinstance(name, str) or not name:
        return MissingStateError(f"state {name!r} of {typename}: a state name is a non-empty string")
    if context._incomplete is None:
        context._incomplete = {}
    context._incomplete.setdefault(name, ValueSpec(name))
    return MissingStateError(
        f"state {name!r} of {typename} is not registered in the runtime yet: the endpoint declares it "
        "(type google.protobuf.Any, no expiry) and the runtime sends the batch again with it, "
        "discarding everything this run did; declare it in bind(..., states=[...]) to save the round trip"
    )


def missing_declared(function: StatefulFunction, context: CodecContext, missing: List[str]) -> None:
    specs = function.value_specs
    assert specs is not None  # missing states are declared ones
    context._incomplete = {name: specs[name] for name in missing}


def _spec(spec: ValueSpec) -> bytes:
    expiration = b""
    millis = spec.expire_after_millis
    if millis:
        mode = EXPIRE_AFTER_WRITE if spec.expire_after_write is not None else EXPIRE_AFTER_INVOKE
        expiration = EXPIRE_MODE + SMALL_VARINTS[mode] + EXPIRE_AFTER_MILLIS + varint(millis)
    body = (
        string_field(SPEC_NAME, utf8(spec.name, "the state name"))
        + SPEC_EXPIRATION
        + SMALL_VARINTS[len(expiration)]
        + expiration
        + string_field(SPEC_TYPENAME, spec.typename.encode())
    )
    return MISSING_VALUES + varint(len(body)) + body


def incomplete_reply(specs: Dict[str, ValueSpec]) -> bytes:
    """``FromFunction{incomplete_invocation_context}`` declaring ``specs``."""
    body = b"".join(_spec(spec) for spec in specs.values())
    return INCOMPLETE_INVOCATION_CONTEXT + varint(len(body)) + body


# -- delayed messages ----------------------------------------------------------------


def _token_field(token: object) -> bytes:
    if not isinstance(token, str):
        raise TypeError(f"a cancellation token is a str, got {type(token).__name__}")
    if not token:
        raise ValueError("a cancellation token cannot be empty (the runtime fails the job on an empty one)")
    return string_field(CANCELLATION_TOKEN, utf8(token, "the cancellation token"))


def delayed(delay_in_ms: int, target: bytes, argument: bytes, cancellation_token: Optional[str]) -> bytes:
    if cancellation_token is None:
        return delayed_invocation(delay_in_ms, target, argument)
    token = _token_field(cancellation_token)
    body = DELAYED_TARGET + varint(len(target)) + target + DELAYED_ARGUMENT + varint(len(argument)) + argument + token
    if delay_in_ms:
        body = DELAYED_DELAY + varint(delay_in_ms) + body
    return DELAYED_INVOCATIONS + varint(len(body)) + body


def cancellation(token: str) -> bytes:
    body = IS_CANCELLATION + _token_field(token)
    return DELAYED_INVOCATIONS + varint(len(body)) + body


CODEC = Codec(
    version=VERSION,
    parse=parse,
    from_string=ToFunction.FromString,
    proves=proves,
    states=states,
    to_any=to_any,
    packed=packed,
    boxed=boxed,
    value_heads=_VALUE_HEADS,
    state_value=state_value,
    check_write=check_write,
    append_mutations=append_mutations,
    delayed=delayed,
    cancellation=cancellation,
    missing_state=missing_state,
    missing_declared=missing_declared,
    incomplete_reply=incomplete_reply,
)
