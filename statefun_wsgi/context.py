"""The context a function receives: its address, its caller, its state, and the
ways to send messages.

Usage, inside a bound function::

    @functions.bind("example/greeter", states=["seen_count"])
    def greet(context, message: GreetRequest):
        seen = context.state("seen_count").unpack(Int64Value) or Int64Value()
        seen.value += 1
        context.state("seen_count").pack(seen)
        context.pack_and_send("example/formatter", message.name, seen)
        context.pack_and_send_after(timedelta(minutes=5), context.address.typename(),
                                    context.address.identity, Reminder(name=message.name))
        context.pack_and_send_egress("example/greets", kafka_egress_record("greets", text, key=message.name))

        # StateFun 3.1+ only: a delayed message that can be cancelled
        context.pack_and_send_after(timedelta(hours=1), "example/greeter", "alice", Reminder(), cancellation_token="r-1")
        context.cancel_delayed_message("r-1")

One :class:`BatchContext` serves one batch (one request), shared by its invocations
in order, so each invocation sees the state the ones before it left. Nothing in it
is shared with another request. A batch of a 3.x runtime gets a :class:`CodecContext`:
the same API, with its states read and written by the 3.x codec.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any as TypingAny
from typing import Dict, List, NamedTuple, Optional, Set, Type, TypeVar, Union

from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from ._proto.request_reply_view_pb2 import Address as AddressMessage
from ._protocol2 import CODEC as _PROTOCOL_2
from ._wire import (
    ADDRESS_ID,
    DELAYED_ARGUMENT,
    DELAYED_DELAY,
    DELAYED_INVOCATIONS,
    DELAYED_TARGET,
    EGRESS_ARGUMENT,
    INVOCATION_RESULT,
    OUTGOING_ARGUMENT,
    OUTGOING_EGRESSES,
    OUTGOING_MESSAGES,
    OUTGOING_TARGET,
    SMALL_VARINTS,
    append_state_mutation,
    delayed_invocation,
    egress_message,
    from_function,
    outgoing_message,
    typename_fields,
    utf8,
    varint,
)
from .builtin_types import BUILTIN_TYPENAMES
from .errors import MissingStateError, UnexpectedMessageTypeError
from .functions import type_name_of_url, type_url_of

if TYPE_CHECKING:
    from ._codec import Codec
    from .functions import ValueSpec

__all__ = ["Address", "BatchContext", "CodecContext", "State", "pack_any", "type_url_of"]

M = TypeVar("M", bound=Message)


class Address(NamedTuple):
    """A function address. ``identity`` is the id (``id`` is a Python builtin)."""

    namespace: str
    type: str
    identity: str

    def typename(self) -> str:
        """``"namespace/type"``."""
        return f"{self.namespace}/{self.type}"

    def text(self) -> str:
        """``"namespace/type/id"``, the address as logs and the CLI print it::

            Address("example", "greeter", "alice").text()   # 'example/greeter/alice'
        """
        return f"{self.namespace}/{self.type}/{self.identity}"


_new_tuple = tuple.__new__


def pack_any(message: Message) -> Any:
    """Pack a message into an ``Any`` (the same as ``Any().Pack(message)``, faster)."""
    return Any(type_url=type_url_of(message), value=message.SerializeToString())


_UNREAD: Any = object()  # a state not read yet (None means read, and absent)


def encode_address(typename: str, id: str) -> bytes:
    """A serialized ``Address`` (``typename`` and ``id`` validated; an empty id is refused),
    shared by the 2.x and 3.x contexts::

        encode_address("example/greeter", "alice")   # the bytes of Address{namespace, type, id}
    """
    prefix = typename_fields(typename)
    if type(id) is not str:
        raise TypeError(f"an id is a str, got {type(id).__name__}")
    if not id:  # as the official SDK: "missing id"
        raise ValueError(f"missing id: a message to {typename} needs a non-empty id")
    try:  # string_field and utf8, inline (once per message sent)
        raw = id.encode()
    except UnicodeEncodeError:
        raw = utf8(id, "the id")  # raises, naming the id
    size = len(raw)
    return prefix + ADDRESS_ID + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + raw


def _check_any(message: object, method: str) -> None:
    if type(message) is not Any and not isinstance(message, Any):
        raise TypeError(
            f"{method}() takes a google.protobuf.Any, got {type(message).__name__}: "
            f"use pack_and_{method}() to pack a message first"
        )


_NO_DELAY = timedelta(0)


def delay_in_ms(delay: timedelta) -> int:
    """A ``timedelta`` as whole milliseconds (rounded down); negative is an error."""
    if not isinstance(delay, timedelta):
        raise TypeError(f"a delay is a datetime.timedelta, got {type(delay).__name__}")
    if delay < _NO_DELAY:
        raise ValueError(f"a delay cannot be negative, got {delay!r}")
    return (delay.days * 86_400 + delay.seconds) * 1000 + delay.microseconds // 1000


class State:
    """A handle on one state of the current function, from ``context.state(name)``.

    ``value`` is the stored ``google.protobuf.Any`` (``None`` when absent); assign to
    it or ``del`` it to change the state. :meth:`unpack` and :meth:`pack` convert
    between the stored ``Any`` and a message class.
    """

    __slots__ = ("_context", "name")

    def __init__(self, context: BatchContext, name: str) -> None:
        self._context = context
        self.name = name

    @property
    def value(self) -> Optional[Any]:
        return self._context[self.name]

    @value.setter
    def value(self, value: Optional[Any]) -> None:
        self._context[self.name] = value

    @value.deleter
    def value(self) -> None:
        del self._context[self.name]

    def unpack(self, message_type: Type[M]) -> Optional[M]:
        """The value as a ``message_type``, or ``None`` when the state is absent.

        Raises :class:`~statefun_wsgi.errors.UnexpectedMessageTypeError` when the
        stored value is of another type.
        """
        stored = self._context[self.name]
        if stored is None:
            return None
        expected = message_type.DESCRIPTOR.full_name
        builtin = BUILTIN_TYPENAMES.get(message_type)
        if (stored.type_url != builtin) if builtin else (type_name_of_url(stored.type_url) != expected):
            raise UnexpectedMessageTypeError(
                f"state {self.name!r} holds a {stored.type_url!r}, not a {builtin or expected}"
            )
        try:
            return message_type.FromString(stored.value)
        except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf raises the latter
            raise UnexpectedMessageTypeError(f"state {self.name!r} does not parse as {expected}: {exc}") from exc

    def pack(self, message: Message) -> None:
        """Store ``message`` (packed into an ``Any``) as the new value."""
        self._context[self.name] = pack_any(message)

    def __repr__(self) -> str:
        return f"<State {self.name!r}>"



def _not_an_any(name: str, value: object) -> TypeError:
    """The error for a state set to something other than an ``Any`` (or ``None``)."""
    return TypeError(
        f"state values are google.protobuf.Any (or None to delete), got {type(value).__name__}: "
        f"use context.state({name!r}).pack(message)"
    )

class BatchContext:
    """What a function sees of the runtime during one batch. See the module docstring.

    The underscored members that other modules of the package use (``_target``,
    ``_states``, ``_codec``, ``_incomplete``, ``_types``, ``_enter``, ``_finish``) are the
    protocol's side of the context, for the handlers (:mod:`statefun_wsgi.handler`), the
    codecs and :mod:`statefun_wsgi.v3`; they keep their underscore so that the object a
    function receives shows only the SDK's names.
    """

    __slots__ = (
        "_target",
        "_address",
        "_caller",
        "_caller_address",
        "_states",
        "_state_values",
        "_changed",
        "_outgoing",
        "_delayed",
        "_egresses",
    )

    # How the batch's protocol reads and writes values (see _codec), and what only some
    # protocols use: class defaults for a 2.x batch, read through the class and never written
    # per request; a CodecContext (3.x) holds its own.
    _codec: Codec = _PROTOCOL_2
    #: States to declare to the runtime (3.x); the batch then answers only that.
    _incomplete: Optional[Dict[str, ValueSpec]] = None
    #: The cancellation tokens of the delayed messages sent (3.1+).
    _tokens: Optional[Set[str]] = None
    #: The states registered with a type other than Any: name -> type name (3.x); None: none.
    _types: Optional[Dict[str, str]] = None

    def __init__(self, target: AddressMessage, states: Dict[str, object]) -> None:
        self._target = target
        self._address: Optional[Address] = None
        self._caller: Optional[AddressMessage] = None
        self._caller_address: Optional[Address] = None
        self._states = states  # as sent: parsed lazily, on first use
        self._state_values: dict[str, Optional[Any]] = {}
        self._changed: dict[str, None] = {}  # an ordered set of changed state names
        # What was sent, as encoded reply fields one after another (no object per message);
        # made on first use.
        self._outgoing: Optional[bytearray] = None
        self._delayed: Optional[bytearray] = None
        self._egresses: Optional[bytearray] = None

    # -- addresses ---------------------------------------------------------------

    @property
    def address(self) -> Address:
        """This function's own address."""
        if self._address is None:
            target = self._target
            # Address(...) without its Python-level __new__ (a NamedTuple's): once per batch that asks.
            self._address = _new_tuple(Address, (target.namespace, target.type, target.id))
        return self._address

    @property
    def caller(self) -> Optional[Address]:
        """The address that sent the current message, or ``None`` for an ingress."""
        caller = self._caller
        if caller is None:
            return None
        if self._caller_address is None:
            self._caller_address = Address(caller.namespace, caller.type, caller.id)
        return self._caller_address

    def _enter(self, invocation: TypingAny) -> Any:
        """Make ``invocation`` the current one (its caller); return its argument."""
        if invocation.HasField("caller"):
            self._caller = invocation.caller
            self._caller_address = None
        elif self._caller is not None:
            self._caller = self._caller_address = None
        return invocation.argument

    # -- state -------------------------------------------------------------------

    def __getitem__(self, name: str) -> Optional[Any]:
        value = self._state_values.get(name, _UNREAD)  # not try/except: a first read is the usual case
        if value is not _UNREAD:
            return value
        sent: TypingAny = self._states.get(name)
        if sent is None:
            raise self._missing_state(name)
        state_value = sent.state_value  # 2.x: the Any, parsed with the request
        # Absent states are sent empty. ByteSize() alone would say so too, but upb serializes
        # to count (50 us a MiB): it is asked only when the usual fields are both empty.
        value = state_value if state_value.type_url or state_value.value or state_value.ByteSize() else None
        self._state_values[name] = value
        return value

    def __setitem__(self, name: str, value: Optional[Any]) -> None:
        if value is not None and type(value) is not Any and not isinstance(value, Any):
            raise _not_an_any(name, value)
        if name not in self._states:
            raise self._missing_state(name)
        self._state_values[name] = value
        self._changed[name] = None

    def __delitem__(self, name: str) -> None:
        self[name] = None

    def state(self, name: str) -> State:
        """A handle on state ``name`` with ``value``, ``unpack()`` and ``pack()``."""
        if name not in self._states:
            raise self._missing_state(name)
        return State(self, name)

    def _missing_state(self, name: object) -> MissingStateError:
        # 2.x: register it in module.yaml. 3.x: declared to the runtime, and the batch runs again.
        return self._codec.missing_state(self, name)

    # -- messages ----------------------------------------------------------------
    # Each message is written in wire format as it is sent (see _wire): a failed call
    # raises before anything is added, and the reply is one join at the end.

    def send(self, typename: str, id: str, message: Any) -> None:
        """Send ``message`` (an ``Any``) to the function ``typename`` with this ``id``.

        An empty ``id`` raises ``ValueError`` ("missing id"), as the official SDK does.
        """
        _check_any(message, "send")
        target = encode_address(typename, id)
        self._outgoing_buffer().extend(outgoing_message(target, self._codec.boxed(message)))

    def pack_and_send(self, typename: str, id: str, message: Message) -> None:
        """Pack ``message`` into an ``Any`` and :meth:`send` it."""
        codec = self._codec
        head = codec.value_heads.get(type(message))
        if head is not None and type(id) is str and id and id.isascii():
            # The most frequent send, in one join (packed, encode_address and outgoing_message,
            # inline) when every length fits a one-byte varint.
            prefix = typename_fields(typename)
            value = message.SerializeToString()
            value_size = len(value)
            id_size = len(id)
            target_size = len(prefix) + 2 + id_size
            argument_size = len(head) + 1 + value_size
            size = target_size + argument_size + 4
            if value_size and size < 0x80:
                entry = b"".join((
                    OUTGOING_MESSAGES, SMALL_VARINTS[size],
                    OUTGOING_TARGET, SMALL_VARINTS[target_size],
                    prefix, ADDRESS_ID, SMALL_VARINTS[id_size], id.encode(),
                    OUTGOING_ARGUMENT, SMALL_VARINTS[argument_size], head, SMALL_VARINTS[value_size], value,
                ))  # fmt: skip
            else:
                entry = outgoing_message(encode_address(typename, id), codec.packed(message))
        else:  # a class not packed yet, an id to check or to encode: the general path
            argument = codec.packed(message)
            entry = outgoing_message(encode_address(typename, id), argument)
        if self._outgoing is None:
            self._outgoing = bytearray(entry)
        else:
            self._outgoing += entry

    def reply(self, message: Any) -> None:
        """Send ``message`` (an ``Any``) back to the caller of the current message.

        ``ValueError`` when there is no caller (an ingress message) or its id is empty.
        """
        _check_any(message, "reply")
        target = self._reply_target()
        self._outgoing_buffer().extend(outgoing_message(target, self._codec.boxed(message)))

    def pack_and_reply(self, message: Message) -> None:
        """Pack ``message`` into an ``Any`` and :meth:`reply` with it."""
        target = self._reply_target()
        self._outgoing_buffer().extend(outgoing_message(target, self._codec.packed(message)))

    def _outgoing_buffer(self) -> bytearray:
        if self._outgoing is None:
            self._outgoing = bytearray()
        return self._outgoing

    def _reply_target(self) -> bytes:
        if self._caller is None:
            raise ValueError(
                "cannot reply: the current message came from an ingress and has no caller; "
                "use send() with an explicit address"
            )
        caller = self._caller
        if not caller.id:  # as send(): the official SDK's reply() raises "missing id" too
            typename = f"{caller.namespace}/{caller.type}"
            raise ValueError(f"missing id: cannot reply to the caller {typename}, whose id is empty")
        return caller.SerializeToString()

    def send_after(
        self, delay: timedelta, typename: str, id: str, message: Any, cancellation_token: Optional[str] = None
    ) -> None:
        """Send ``message`` (an ``Any``) after ``delay`` (whole milliseconds; not negative).

        ``cancellation_token`` (StateFun 3.1+) names the message for
        :meth:`cancel_delayed_message`: a non-empty string, not the token of another message
        of this batch still pending. On a 2.x request a token raises ``ValueError``.
        """
        _check_any(message, "send_after")
        self._add_delayed(delay, typename, id, self._codec.boxed(message), cancellation_token)

    def pack_and_send_after(
        self, delay: timedelta, typename: str, id: str, message: Message, cancellation_token: Optional[str] = None
    ) -> None:
        """Pack ``message`` into an ``Any`` and :meth:`send_after` it."""
        codec = self._codec
        head = codec.value_heads.get(type(message))
        if (
            head is not None
            and cancellation_token is None
            and type(delay) is timedelta
            and delay.days >= 0  # (a timedelta is negative exactly when its days are)
            and type(id) is str
            and id
            and id.isascii()
        ):
            # The usual delayed message, in one join when every length fits a one-byte varint
            # (packed, delay_in_ms, encode_address and delayed_invocation, inline).
            milliseconds = (delay.days * 86_400 + delay.seconds) * 1000 + delay.microseconds // 1000
            delay_field = (DELAYED_DELAY + varint(milliseconds)) if milliseconds else b""
            prefix = typename_fields(typename)
            value = message.SerializeToString()
            value_size = len(value)
            id_size = len(id)
            target_size = len(prefix) + 2 + id_size
            argument_size = len(head) + 1 + value_size
            size = len(delay_field) + target_size + argument_size + 4
            if value_size and size < 0x80:
                invocation = b"".join((
                    DELAYED_INVOCATIONS, SMALL_VARINTS[size], delay_field,
                    DELAYED_TARGET, SMALL_VARINTS[target_size],
                    prefix, ADDRESS_ID, SMALL_VARINTS[id_size], id.encode(),
                    DELAYED_ARGUMENT, SMALL_VARINTS[argument_size], head, SMALL_VARINTS[value_size], value,
                ))  # fmt: skip
                if self._delayed is None:
                    self._delayed = bytearray(invocation)
                else:
                    self._delayed += invocation
                return
        self._add_delayed(delay, typename, id, codec.packed(message), cancellation_token)

    def cancel_delayed_message(self, cancellation_token: str) -> None:
        """Cancel the delayed message sent with ``cancellation_token`` (StateFun 3.1+; a no-op
        if it was delivered already). An empty token, or a 2.x request, raises ``ValueError``."""
        cancellation = self._codec.cancellation(cancellation_token)
        if self._tokens is not None:
            self._tokens.discard(cancellation_token)
        if self._delayed is None:
            self._delayed = bytearray()
        self._delayed += cancellation

    def _add_delayed(
        self, delay: timedelta, typename: str, id: str, argument: bytes, cancellation_token: Optional[str]
    ) -> None:
        milliseconds = delay_in_ms(delay)
        if cancellation_token is None:  # the same fields in every protocol
            invocation = delayed_invocation(milliseconds, encode_address(typename, id), argument)
        else:
            invocation = self._codec.delayed(milliseconds, encode_address(typename, id), argument, cancellation_token)
            # The runtime fails the job when a token is reused while its message is pending.
            if self._tokens is None:
                self._tokens = set()  # type: ignore[misc]  # (a CodecContext's: 2.x refused the token)
            elif cancellation_token in self._tokens:
                raise ValueError(
                    f"cancellation token {cancellation_token!r} already names a delayed message of this batch "
                    "(a pending token reused fails the job): use a token per message"
                )
            self._tokens.add(cancellation_token)
        if self._delayed is None:
            self._delayed = bytearray()
        self._delayed += invocation

    def send_egress(self, typename: str, message: Any) -> None:
        """Send ``message`` (an ``Any``) to the egress ``typename`` (``"namespace/name"``)."""
        _check_any(message, "send_egress")
        self._add_egress(typename, self._codec.boxed(message))

    def pack_and_send_egress(self, typename: str, message: Message) -> None:
        """Pack ``message`` into an ``Any`` and :meth:`send_egress` it."""
        codec = self._codec
        head = codec.value_heads.get(type(message))
        if head is not None:
            # packed, _add_egress and egress_message, inline: one join when the lengths fit one-byte varints.
            prefix = typename_fields(typename)
            value = message.SerializeToString()
            value_size = len(value)
            argument_size = len(head) + 1 + value_size
            size = len(prefix) + 2 + argument_size
            if value_size and size < 0x80:
                egress = b"".join((
                    OUTGOING_EGRESSES, SMALL_VARINTS[size], prefix,
                    EGRESS_ARGUMENT, SMALL_VARINTS[argument_size], head, SMALL_VARINTS[value_size], value,
                ))  # fmt: skip
            else:
                egress = egress_message(prefix, codec.packed(message))
        else:
            argument = codec.packed(message)
            egress = egress_message(typename_fields(typename), argument)
        if self._egresses is None:
            self._egresses = bytearray(egress)
        else:
            self._egresses += egress

    def _add_egress(self, typename: str, argument: bytes) -> None:
        egress = egress_message(typename_fields(typename), argument)
        if self._egresses is None:
            self._egresses = bytearray()
        self._egresses += egress

    # -- the reply -----------------------------------------------------------------

    def _finish(self) -> bytes:
        """The serialized reply: one mutation per changed state (a serialized Any, 2.x), then
        everything sent."""
        pieces: List[Union[bytes, bytearray]] = []
        values = self._state_values
        for name in self._changed:
            value = values[name]
            append_state_mutation(pieces, name, None if value is None else value.SerializeToString())
        if self._outgoing is not None:
            pieces.append(self._outgoing)
        if self._delayed is not None:
            pieces.append(self._delayed)
        if self._egresses is not None:
            pieces.append(self._egresses)
        return from_function(pieces)

    def __repr__(self) -> str:
        return f"<BatchContext {self.address.text()}>"


class CodecContext(BatchContext):
    """The :class:`BatchContext` of a protocol whose codec reads and writes state values and
    can ask for states (3.x): the same API and effects; states go through the codec.

    Built by the handler for such a request; a 2.x batch gets a plain BatchContext, whose
    inline state code this class replaces (keeping the 2.x path free of the checks).
    """

    __slots__ = ("_codec", "_incomplete", "_tokens", "_types")

    def __init__(
        self, target: AddressMessage, states: Dict[str, object], codec: Codec, types: Optional[Dict[str, str]]
    ) -> None:
        # BatchContext.__init__, written out (a call less per request):
        self._target = target
        self._address = None
        self._caller = None
        self._caller_address = None
        self._states = states
        self._state_values = {}
        self._changed = {}
        self._outgoing = None
        self._delayed = None
        self._egresses = None
        self._codec = codec
        self._incomplete = None
        self._tokens = None
        self._types = types

    def __getitem__(self, name: str) -> Optional[Any]:
        value = self._state_values.get(name, _UNREAD)
        if value is not _UNREAD:
            return value
        sent = self._states.get(name)
        if sent is None:
            raise self._missing_state(name)
        read = self._codec.state_value
        assert read is not None  # a codec that reads states inline is served by BatchContext
        try:
            value = read(sent)
        except UnexpectedMessageTypeError as exc:
            raise UnexpectedMessageTypeError(f"state {name!r}: {exc}") from None
        self._state_values[name] = value
        return value

    def __setitem__(self, name: str, value: Optional[Any]) -> None:
        if value is not None and type(value) is not Any and not isinstance(value, Any):
            raise _not_an_any(name, value)
        if name not in self._states:
            raise self._missing_state(name)
        if self._types is not None:  # some states have a fixed type
            self._codec.check_write(self, name, value)
        self._state_values[name] = value
        self._changed[name] = None

    def _finish(self) -> bytes:
        """The reply: what the batch did, or, when states must be declared first, only that."""
        if self._incomplete is not None:
            return self._codec.incomplete_reply(self._incomplete)
        # from_function, inline: the result's tag and length (set last), then its fields.
        pieces: List[Union[bytes, bytearray]] = [INVOCATION_RESULT, b""]
        if self._changed:
            append_mutations = self._codec.append_mutations
            assert append_mutations is not None
            append_mutations(self, pieces)
        if self._outgoing is not None:  # then everything sent, as BatchContext._finish
            pieces.append(self._outgoing)
        if self._delayed is not None:
            pieces.append(self._delayed)
        if self._egresses is not None:
            pieces.append(self._egresses)
        size = sum(map(len, pieces)) - len(INVOCATION_RESULT)
        pieces[1] = SMALL_VARINTS[size] if size < 0x80 else varint(size)
        return b"".join(pieces)
