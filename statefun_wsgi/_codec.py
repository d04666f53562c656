"""What a protocol version (2.x, 3.x) supplies to the shared handler and context.

The handler and :class:`~statefun_wsgi.context.BatchContext` are written once; what
differs between the protocols (how a request is parsed, how a message, a state value,
a delayed message and the reply are written) is looked up on the request's
:class:`Codec`, which :mod:`statefun_wsgi.protocols` chooses per request. The codecs
are :data:`statefun_wsgi._protocol2.CODEC` and :data:`statefun_wsgi._protocol3.CODEC`.

The context arguments are a :class:`~statefun_wsgi.context.BatchContext` (2.x) or a
:class:`~statefun_wsgi.context.CodecContext` (a codec that reads states itself). Every
attribute is a plain function (read from the slot, not bound: no method call
overhead on the hot path); ``None`` marks what a protocol does inline in the context.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Union

if TYPE_CHECKING:
    from google.protobuf.any_pb2 import Any as AnyMessage
    from google.protobuf.message import Message

    from .errors import MissingStateError
    from .functions import StatefulFunction, ValueSpec

__all__ = ["Codec", "parse_error_detail"]


class Codec:
    """One protocol version's parse-and-write. See the module docstring.

    :param version: ``"2.x"`` or ``"3.x"``.
    :param parse: request bytes -> the parsed ``ToFunction`` view (raises MalformedRequestError).
    :param from_string: the usual parse, without its error handling (a C function: the hot
        path calls it, and calls ``parse`` when it raises).
    :param proves: the first invocation's argument -> true when its bytes show this version
        (a C ``attrgetter``: the field only that version fills).
    :param states: ``(request bytes, batch, function)`` -> ``(batch, {name: sent state},
        {name: registered type other than Any} or None)`` (``None``: collected inline, 2.x).
    :param to_any: an argument -> the ``google.protobuf.Any`` a function without an
        annotation receives (``None``: the argument is one already).
    :param packed: a protobuf message -> its encoded message value (Any or TypedValue).
    :param boxed: a ``google.protobuf.Any`` -> the same, encoded.
    :param value_heads: message class -> the bytes ``packed`` writes before the varint length
        of a message of that class with a non-empty serialization (its type name field, and
        the value's tag); filled by ``packed`` on a class's first use. The context's
        frequent sends read it to write ``packed``'s output straight into the reply.
    :param state_value: a sent state -> its ``Any`` or ``None`` (``None``: read inline, 2.x).
    :param check_write: ``(context, name, value)``: raises when the write would change the
        state's registered type (called only for states in ``context._types``).
    :param append_mutations: ``(context, pieces)`` appends the state mutations (``None``:
        written inline, 2.x).
    :param delayed: ``(ms, target, argument, token)`` -> an encoded delayed message.
    :param cancellation: a token -> an encoded cancellation of the delayed message.
    :param missing_state: ``(context, name)`` -> the error for a state the runtime did not send.
    :param missing_declared: ``(function, context, names)``: declared states the runtime did not send.
    :param incomplete_reply: ``{name: ValueSpec}`` -> the reply that declares them (3.x).
    """

    __slots__ = (
        "version",
        "parse",
        "from_string",
        "proves",
        "states",
        "to_any",
        "packed",
        "boxed",
        "value_heads",
        "state_value",
        "check_write",
        "append_mutations",
        "delayed",
        "cancellation",
        "missing_state",
        "missing_declared",
        "incomplete_reply",
    )

    def __init__(
        self,
        *,
        version: str,
        parse: Callable[[bytes], Any],
        from_string: Callable[[bytes], Any],
        proves: Callable[[Any], Any],
        states: Optional[Callable[[bytes, Any, StatefulFunction], Tuple[Any, Dict[str, Any], Optional[Dict[str, str]]]]],
        to_any: Optional[Callable[[Any], AnyMessage]],
        packed: Callable[[Message], bytes],
        boxed: Callable[[AnyMessage], bytes],
        value_heads: Dict[type, bytes],
        state_value: Optional[Callable[[Any], Optional[AnyMessage]]],
        check_write: Callable[[Any, str, Optional[AnyMessage]], None],
        append_mutations: Optional[Callable[[Any, List[Union[bytes, bytearray]]], None]],
        delayed: Callable[[int, bytes, bytes, Optional[str]], bytes],
        cancellation: Callable[[str], bytes],
        missing_state: Callable[[Any, object], MissingStateError],
        missing_declared: Callable[[StatefulFunction, Any, List[str]], None],
        incomplete_reply: Callable[[Dict[str, ValueSpec]], bytes],
    ) -> None:
        self.version = version
        self.parse = parse
        self.from_string = from_string
        self.proves = proves
        self.states = states
        self.to_any = to_any
        self.packed = packed
        self.boxed = boxed
        self.value_heads = value_heads
        self.state_value = state_value
        self.check_write = check_write
        self.append_mutations = append_mutations
        self.delayed = delayed
        self.cancellation = cancellation
        self.missing_state = missing_state
        self.missing_declared = missing_declared
        self.incomplete_reply = incomplete_reply

    def __repr__(self) -> str:
        return f"<Codec StateFun {self.version}>"


def parse_error_detail(exc: Exception, view_package: str, runtime_package: str) -> str:
    """protobuf's reason, as ``": reason"`` (or ``""``), without the name of our view of the
    message (an internal type, ``statefun_wsgi.view.ToFunction``): the runtime's type instead."""
    detail = _PARSING_TYPE.sub("", str(exc)).strip().replace(view_package, runtime_package)
    return f": {detail}" if detail else ""


_PARSING_TYPE = re.compile(r"Error parsing message with type '[^']*'[:.]?")
