"""The StateFun 2.x protocol's parse-and-write (see :mod:`statefun_wsgi._codec`).

A request is parsed with ``request_reply_view.proto`` (state values read as the
``google.protobuf.Any`` they hold); a message or state value is written as a
serialized ``Any``; the reply is written by :mod:`statefun_wsgi._wire`. A 2.x runtime
knows no delayed-message cancellation: a token, or a cancellation, is refused in the
function that asks for it.
"""

from __future__ import annotations

import operator

from typing import TYPE_CHECKING, Dict, List

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from ._codec import Codec, parse_error_detail
from ._proto.request_reply_view_pb2 import ToFunction
from ._wire import ANY_TYPE_URL, ANY_VALUE, SMALL_VARINTS, delayed_invocation, string_field, varint
from .errors import FunctionInvocationError, MalformedRequestError, MissingStateError
from .functions import type_url_of

if TYPE_CHECKING:
    from .context import BatchContext
    from .functions import StatefulFunction, ValueSpec

__all__ = ["CODEC"]

VERSION = "2.x"

#: The protobuf package of the runtime's messages (request-reply.proto), which our view parses.
RUNTIME_PACKAGE = "org.apache.flink.statefun.flink.core.polyglot"


def parse(request_bytes: bytes) -> ToFunction:
    """The request, parsed with the 2.x view; MalformedRequestError when it is not one."""
    try:
        return ToFunction.FromString(request_bytes)
    except (DecodeError, ValueError, TypeError, RuntimeError) as exc:
        # protobuf names the type it parsed with, our view of the message: name the runtime's instead
        raise MalformedRequestError(
            f"the body is not a serialized ToFunction ({RUNTIME_PACKAGE}.ToFunction, what the StateFun 2.x runtime "
            f"sends; or a state value is not a serialized google.protobuf.Any){parse_error_detail(exc, 'statefun_wsgi.view.', RUNTIME_PACKAGE + '.')}"
        ) from None


#: True when the first argument holds an ``Any.value`` (field 2, length-delimited): a 3.x
#: ``TypedValue`` never does. (An ``Any`` without a value is told by the bytes walk.)
proves = operator.attrgetter("value")


_TYPE_URL_FIELDS: Dict[type, bytes] = {}
#: message class -> its type URL field and the value's tag (see Codec.value_heads).
_VALUE_HEADS: Dict[type, bytes] = {}


def packed(message: Message) -> bytes:
    """``message`` packed into an ``Any``, serialized."""
    try:
        type_url_field = _TYPE_URL_FIELDS[type(message)]
    except KeyError:
        type_url = type_url_of(message)  # validates
        type_url_field = _TYPE_URL_FIELDS[type(message)] = string_field(ANY_TYPE_URL, type_url.encode())
        _VALUE_HEADS[type(message)] = type_url_field + ANY_VALUE
    value = message.SerializeToString()
    if not value:  # all fields default: an Any with its type URL only
        return type_url_field
    size = len(value)
    return type_url_field + ANY_VALUE + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + value


def boxed(message: Any) -> bytes:
    return message.SerializeToString()


def check_write(context: BatchContext, name: str, value: object) -> None:
    """Never called: no 2.x state has a fixed type (``context._types`` is None)."""


_NO_CANCELLATION = (
    "this request came from a StateFun 2.x runtime, which has no delayed-message cancellation "
    "(StateFun 3.1 and later have it)"
)


def delayed(delay_in_ms: int, target: bytes, argument: bytes, cancellation_token: object) -> bytes:
    if cancellation_token is not None:
        raise ValueError(f"cannot send a delayed message with a cancellation token: {_NO_CANCELLATION}")
    return delayed_invocation(delay_in_ms, target, argument)


def cancellation(token: str) -> bytes:
    raise ValueError(f"cannot cancel a delayed message: {_NO_CANCELLATION}")


def missing_state(context: BatchContext, name: object) -> MissingStateError:
    known = ", ".join(sorted(context._states)) or "none"
    target = context._target
    typename = f"{target.namespace}/{target.type}"
    return MissingStateError(
        f"state {name!r} was not sent by the runtime for {typename} (states sent: {known}); "
        f"register it in module.yaml: '- name: {name}' under 'states:' of {typename}"
    )


def missing_declared(function: StatefulFunction, context: BatchContext, missing: List[str]) -> None:
    raise FunctionInvocationError(
        f"{function.typename} declares state {missing[0]!r} but the runtime did not send it; "
        f"add '- name: {missing[0]}' under 'states:' of {function.typename} in module.yaml"
    ) from MissingStateError(missing[0])


def incomplete_reply(specs: Dict[str, ValueSpec]) -> bytes:
    raise RuntimeError("a 2.x reply cannot declare states")  # never called: 2.x never records any


CODEC = Codec(
    version=VERSION,
    parse=parse,
    from_string=ToFunction.FromString,
    proves=proves,
    states=None,
    to_any=None,
    packed=packed,
    boxed=boxed,
    value_heads=_VALUE_HEADS,
    state_value=None,
    check_write=check_write,
    append_mutations=None,
    delayed=delayed,
    cancellation=cancellation,
    missing_state=missing_state,
    missing_declared=missing_declared,
    incomplete_reply=incomplete_reply,
)
