"""The context of the official StateFun 3.3 Python API: a function's address, its
storage, and what it sends.

Usage::

    @functions.bind("example/greeter", specs=[ValueSpec("seen", IntType)])
    def greet(context: Context, message: Message):
        context.storage.seen = (context.storage.seen or 0) + 1     # del context.storage.seen clears it
        context.send(message_builder("example/other", context.address.id, int_value=context.storage.seen))
        context.send_after(timedelta(minutes=1), reminder, cancellation_token="remind-alice")
        context.cancel_delayed_message("remind-alice")
        context.send_egress(egress_message_builder("example/out", "hi", StringType))

:class:`Context` is the abstract class a function's first parameter is annotated with, as
in the official SDK; the endpoint passes a context that forwards everything to the batch's
:class:`~statefun_wsgi.context.BatchContext`, which writes the reply (one per batch, as
the official SDK: a failed invocation fails the whole batch, and nothing it did is sent).

Differences from the official SDK, on purpose (each an error here where the official SDK
sends something the runtime fails the job on, or silently loses data):

- ``cancel_delayed_message("")`` and a ``cancellation_token`` reused by two pending delayed
  messages of a batch raise ``ValueError``;
- writing a state the runtime registered under another type raises
  :class:`~statefun_wsgi.errors.UnexpectedMessageTypeError` in the function.
"""

from __future__ import annotations

import abc
import functools
from datetime import timedelta
from typing import TYPE_CHECKING, Dict, List, Optional, Union

from google.protobuf.any_pb2 import Any

from .._protocol3 import CODEC as _PROTOCOL_3
from .._wire import SMALL_VARINTS, outgoing_message, string_field, typename_fields, varint
from ..context import encode_address
from ..functions import ANY_TYPE_URL
from .messages import EgressMessage, Message, _Built, _BuiltEgress
from .types import SdkAddress, ValueSpec, _ProtobufType

if TYPE_CHECKING:
    from ..context import BatchContext

__all__ = ["Context"]


class Context(abc.ABC):
    """What a function gets besides its message: :attr:`address`, :attr:`caller`,
    :attr:`storage` (one attribute per ValueSpec), and the ways to send."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def address(self) -> SdkAddress:
        """The address of this function (its typename and id)."""

    @property
    @abc.abstractmethod
    def storage(self):  # type: ignore[no-untyped-def]  # a class made per function: one attribute per ValueSpec
        """The states of this address, one attribute per ValueSpec: ``context.storage.seen``."""

    @property
    @abc.abstractmethod
    def caller(self) -> Optional[SdkAddress]:
        """The function that sent the current message, ``None`` for an ingress."""

    def send(self, message: Message) -> None:
        """Send ``message`` to its target function."""

    def send_after(self, duration: timedelta, message: Message, cancellation_token: str = "") -> None:
        """Send ``message`` after ``duration``; a non-empty ``cancellation_token`` names it for
        :meth:`cancel_delayed_message`."""

    def cancel_delayed_message(self, cancellation_token: str) -> None:
        """Cancel the delayed message named ``cancellation_token`` (nothing happens if it was delivered)."""

    def send_egress(self, message: EgressMessage) -> None:
        """Send ``message`` to its egress."""


class _Context(Context):
    """The context of one invocation: everything goes to the batch's context."""

    __slots__ = ("_batch", "_storage_class", "_storage", "_address")

    def __init__(self, batch: BatchContext, storage_class: type) -> None:
        self._batch = batch
        self._storage_class = storage_class
        self._storage: object = None
        self._address: Optional[SdkAddress] = None

    @property
    def address(self) -> SdkAddress:
        if self._address is None:
            target = self._batch._target
            self._address = _sdk_address(target.namespace, target.type, target.id)
        return self._address

    @property
    def storage(self):  # type: ignore[no-untyped-def]
        if self._storage is None:
            self._storage = self._storage_class(self._batch)
        return self._storage

    @property
    def caller(self) -> Optional[SdkAddress]:
        caller = self._batch._caller
        if caller is None:
            return None
        return _sdk_address(caller.namespace, caller.type, caller.id)

    def _argument(self, message: Union[Message, EgressMessage]) -> bytes:
        """The encoded message value: the TypedValue itself on 3.x (as the official SDK copies
        it), the equivalent Any on 2.x. (send and send_egress inline the usual case.)"""
        codec = self._batch._codec
        if codec is _PROTOCOL_3:
            if type(message) is _Built or type(message) is _BuiltEgress:  # (a builder's: no TypedValue made)
                return _typed_value(message._typename, message._value)
            return message.typed_value.SerializeToString()  # type: ignore[no-any-return]
        typed_value = message.typed_value
        return codec.boxed(Any(type_url=typed_value.typename, value=typed_value.value))

    def send(self, message: Message) -> None:
        batch = self._batch
        if type(message) is _Built and batch._codec is _PROTOCOL_3:  # (_argument, its usual case first)
            argument = _typed_value(message._typename, message._value)
        else:
            argument = self._argument(message)
        batch._outgoing_buffer().extend(_outgoing(message.target_typename, message.target_id, argument))

    def send_after(self, duration: timedelta, message: Message, cancellation_token: str = "") -> None:
        argument = self._argument(message)
        # "" is no token, as in the official SDK
        self._batch._add_delayed(
            duration, message.target_typename, message.target_id, argument, cancellation_token or None
        )

    def cancel_delayed_message(self, cancellation_token: str) -> None:
        self._batch.cancel_delayed_message(cancellation_token)

    def send_egress(self, message: EgressMessage) -> None:
        batch = self._batch
        if type(message) is _BuiltEgress and batch._codec is _PROTOCOL_3:  # (_argument, its usual case first)
            argument = _typed_value(message._typename, message._value)
        else:
            argument = self._argument(message)
        batch._add_egress(message.typename, argument)

    def __repr__(self) -> str:
        return f"<Context {self.address.typename}/{self.address.id}>"


def _outgoing(typename: str, id: str, argument: bytes) -> bytes:
    """``outgoing_message(encode_address(typename, id), argument)``, with the usual case (a
    non-empty str id, every field under 128 bytes) written here in one go."""
    prefix = typename_fields(typename)  # (validated, cached)
    if type(id) is str and id:
        try:
            id_bytes = id.encode()
        except UnicodeEncodeError:  # (encode_address says what is wrong)
            pass
        else:
            size = len(id_bytes)
            target_size = len(prefix) + 2 + size
            argument_size = len(argument)
            body_size = target_size + argument_size + 4
            if body_size < 0x80:
                return b"".join(
                    (
                        b"\x12",  # FromFunction.InvocationResponse.outgoing_messages
                        _SMALL[body_size],
                        b"\x0a",  # target: Address (its namespace and type, then id)
                        _SMALL[target_size],
                        prefix,
                        b"\x1a",
                        _SMALL[size],
                        id_bytes,
                        b"\x12",  # argument: TypedValue
                        _SMALL[argument_size],
                        argument,
                    )
                )
    return outgoing_message(encode_address(typename, id), argument)


_SMALL = SMALL_VARINTS
_new = object.__new__


def _sdk_address(namespace: str, name: str, id: str) -> SdkAddress:
    """``SdkAddress(namespace, name, id, "namespace/name")``, the same object without the frozen
    dataclass's ``__init__`` (four ``object.__setattr__`` calls, a third of a microsecond)."""
    address = _new(SdkAddress)
    address.__dict__.update(namespace=namespace, name=name, id=id, typename=f"{namespace}/{name}")
    return address  # type: ignore[no-any-return]


def _typed_value(typename: str, value: bytes) -> bytes:
    """A serialized TypedValue (typename, has_value = true, value) from its parts, as protobuf
    writes it: an empty value is no field at all."""
    size = len(value)
    if not size:
        return _typed_head(typename)
    return _typed_head(typename) + b"\x1a" + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + value


@functools.lru_cache(maxsize=1024)
def _typed_head(typename: str) -> bytes:
    """A TypedValue's fields before its value: typename, has_value = true."""
    return string_field(b"\x0a", typename.encode()) + b"\x10\x01"


def _state_property(function_typename: str, spec: ValueSpec) -> property:
    name = spec.name
    tpe = spec.type
    typename = tpe.typename

    def refuse_none() -> ValueError:
        return ValueError(f"state {name!r}: a value cannot be None; to delete it, use del context.storage.{name}")

    if typename == ANY_TYPE_URL and isinstance(tpe, _ProtobufType) and tpe.message_class is Any:
        # make_protobuf_type(Any): a copy of the Any the batch holds, without encoding it.

        def fget(self: _Storage) -> object:
            value = self._batch[name]
            if value is None:
                return None
            copy = Any()
            copy.CopyFrom(value)
            return copy

        def fset(self: _Storage, value: object) -> None:
            copy = Any()
            if type(value) is Any:
                copy.CopyFrom(value)  # a copy, as serializing makes one
            elif value is None:
                raise refuse_none()
            else:
                copy.ParseFromString(tpe._encode(value))
            self._batch[name] = copy

    elif typename == ANY_TYPE_URL:  # the batch holds the Any itself (the codec parsed it)

        def fget(self: _Storage) -> object:
            value = self._batch[name]
            return None if value is None else tpe._decode(value.SerializeToString())

        def fset(self: _Storage, value: object) -> None:
            if value is None:
                raise refuse_none()
            self._batch[name] = Any.FromString(tpe._encode(value))

    else:

        def fget(self: _Storage) -> object:
            value = self._batch[name]
            if value is None:
                return None
            if value.type_url != typename:
                raise TypeError(
                    f"state {name!r} of {function_typename} holds a value of type {value.type_url!r} "
                    f"(registered so in the runtime), but its ValueSpec says {typename!r}"
                )
            return tpe._decode(value.value)

        def fset(self: _Storage, value: object) -> None:
            if value is None:
                raise refuse_none()
            box = Any()  # (two assignments cost less than the keyword constructor)
            box.type_url = typename
            box.value = tpe._encode(value)
            self._batch[name] = box

    def fdel(self: _Storage) -> None:
        self._batch[name] = None

    return property(fget, fset, fdel, f"state {name!r} ({typename})")


class _Storage:
    __slots__ = ("_batch",)
    _typename = ""

    def __init__(self, batch: BatchContext) -> None:
        self._batch = batch

    def __getattr__(self, name: str) -> object:
        raise AttributeError(f"'{name}' is not a registered ValueSpec for the function '{self._typename}'")


def storage_class(function_typename: str, specs: List[ValueSpec]) -> type:
    """A storage class with one property per spec (read, write, ``del``)."""
    namespace: Dict[str, object] = {"__slots__": (), "_typename": function_typename}
    for spec in specs:
        if spec.name in namespace or hasattr(_Storage, spec.name):
            raise ValueError(f"cannot bind {function_typename}: state name {spec.name!r} is repeated or reserved")
        namespace[spec.name] = _state_property(function_typename, spec)
    return type("AddressScopedStorage", (_Storage,), namespace)
