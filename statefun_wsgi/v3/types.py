"""Value types of the official StateFun 3.3 Python API: how a value becomes bytes and back.

Usage::

    from statefun_wsgi.v3 import IntType, make_json_type, make_protobuf_type, simple_type

    UserType = make_json_type("com.example/User")             # a dict as UTF-8 JSON
    OrderType = make_protobuf_type(Order)                      # type.googleapis.com/<full name>
    PointType = simple_type("com.example/Point", serialize_fn=encode, deserialize_fn=decode)
    IntType.serializer().serialize(7)                          # b"\\r\\x07\\x00\\x00\\x00"

A :class:`Type` is a type name (``namespace/name``) and a :class:`TypeSerializer`. The
built-in types (``BoolType`` ... ``StringType``) encode as the official SDKs do, byte for
byte: a one-field wrapper message (:mod:`statefun_wsgi.builtin_types`) under
``io.statefun.types/<kind>``.
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from datetime import timedelta
from keyword import iskeyword
from typing import Any as TypingAny
from typing import Callable, Optional

from google.protobuf.message import Message as ProtobufMessage

from ..builtin_types import BooleanWrapper, DoubleWrapper, FloatWrapper, IntWrapper, LongWrapper, StringWrapper
from ..functions import TYPE_URL_PREFIX

__all__ = [
    "BoolType",
    "DoubleType",
    "FloatType",
    "IntType",
    "LongType",
    "SdkAddress",
    "StringType",
    "Type",
    "TypeSerializer",
    "ValueSpec",
    "make_json_type",
    "make_protobuf_type",
    "simple_type",
]


@dataclass(repr=True, eq=True, order=False, frozen=True)
class SdkAddress:
    """A function's address: ``typename`` is ``f"{namespace}/{name}"``."""

    namespace: str
    name: str
    id: str
    typename: str


class TypeSerializer(metaclass=abc.ABCMeta):
    """Turns values of one type into bytes (:meth:`serialize`) and back (:meth:`deserialize`)."""

    __slots__ = ()

    @abc.abstractmethod
    def serialize(self, value: TypingAny) -> bytes:
        """The bytes of ``value``."""

    @abc.abstractmethod
    def deserialize(self, byte: bytes) -> TypingAny:
        """The value ``byte`` holds."""


class Type(metaclass=abc.ABCMeta):
    """A value type: its type name (``namespace/name``) and its :meth:`serializer`."""

    __slots__ = ("typename",)

    def __init__(self, typename: str) -> None:
        if not typename:
            raise ValueError("typename can not be missing")
        self.typename = typename

    @abc.abstractmethod
    def serializer(self) -> TypeSerializer:
        """The serializer of this type."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.typename}>"


class _FunctionSerializer(TypeSerializer):
    __slots__ = ("serialize_fn", "deserialize_fn")

    def __init__(
        self, serialize_fn: Callable[[TypingAny], bytes], deserialize_fn: Callable[[bytes], TypingAny]
    ) -> None:
        self.serialize_fn = serialize_fn
        self.deserialize_fn = deserialize_fn

    def serialize(self, value: TypingAny) -> bytes:
        return self.serialize_fn(value)

    def deserialize(self, byte: bytes) -> TypingAny:
        return self.deserialize_fn(byte)


class _SimpleType(Type):
    __slots__ = ("_serializer",)

    def __init__(
        self, typename: str, serialize_fn: Callable[[TypingAny], bytes], deserialize_fn: Callable[[bytes], TypingAny]
    ) -> None:
        super().__init__(typename)
        if serialize_fn is None:
            raise ValueError("serialize_fn is missing")
        if deserialize_fn is None:
            raise ValueError("deserialize_fn is missing")
        self._serializer = _FunctionSerializer(serialize_fn, deserialize_fn)

    def serializer(self) -> TypeSerializer:
        return self._serializer


def simple_type(
    typename: Optional[str] = None,
    serialize_fn: Optional[Callable[[TypingAny], bytes]] = None,
    deserialize_fn: Optional[Callable[[bytes], TypingAny]] = None,
) -> Type:
    """A :class:`Type` named ``typename`` made of two functions (value -> bytes, bytes -> value)::

    UserType = simple_type("com.example/User", serialize_fn=encode, deserialize_fn=decode)
    """
    return _SimpleType(typename, serialize_fn, deserialize_fn)  # type: ignore[arg-type]  # checked in there


class _WrapperSerializer(TypeSerializer):
    __slots__ = ("wrapper",)

    def __init__(self, wrapper: type[ProtobufMessage]) -> None:
        self.wrapper = wrapper

    def serialize(self, value: TypingAny) -> bytes:
        return self.wrapper(value=value).SerializeToString()

    def deserialize(self, byte: bytes) -> TypingAny:
        return self.wrapper.FromString(byte).value  # type: ignore[attr-defined]


class _WrapperType(Type):
    """A built-in type: a value in a one-field wrapper message."""

    __slots__ = ("wrapper", "_serializer")

    def __init__(self, typename: str, wrapper_message_type: type[ProtobufMessage]) -> None:
        super().__init__(typename)
        self.wrapper = wrapper_message_type
        self._serializer = _WrapperSerializer(wrapper_message_type)

    def serializer(self) -> TypeSerializer:
        return self._serializer


BoolType: Type = _WrapperType("io.statefun.types/bool", BooleanWrapper)
IntType: Type = _WrapperType("io.statefun.types/int", IntWrapper)
FloatType: Type = _WrapperType("io.statefun.types/float", FloatWrapper)
LongType: Type = _WrapperType("io.statefun.types/long", LongWrapper)
DoubleType: Type = _WrapperType("io.statefun.types/double", DoubleWrapper)
StringType: Type = _WrapperType("io.statefun.types/string", StringWrapper)


def make_protobuf_type(cls: type[ProtobufMessage], namespace: Optional[str] = None) -> Type:
    """The :class:`Type` of protobuf message class ``cls``, named ``<namespace>/<full name>``
    (``type.googleapis.com`` by default, which makes it a type URL)::

        OrderType = make_protobuf_type(Order)      # type.googleapis.com/com.example.Order
    """
    if not cls:
        raise ValueError("The Protobuf generated class is missing.")
    name = cls.DESCRIPTOR.full_name
    if not name:
        raise TypeError("Unable to deduce the Protobuf Message full name.")
    return _ProtobufType(f"{namespace}/{name}" if namespace else TYPE_URL_PREFIX + name, cls)


class _ProtobufType(_SimpleType):
    """A protobuf message class's type (:func:`make_protobuf_type`)."""

    __slots__ = ("message_class",)

    def __init__(self, typename: str, cls: type[ProtobufMessage]) -> None:
        super().__init__(typename, _serialize_message, cls.FromString)
        self.message_class = cls


def _serialize_message(message: ProtobufMessage) -> bytes:
    return message.SerializeToString()


def _serialize_json_utf8(value: TypingAny) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def make_json_type(typename: str) -> Type:
    """A :class:`Type` named ``typename`` whose values are JSON (UTF-8, as ``json.dumps`` writes it)."""
    return _SimpleType(typename, _serialize_json_utf8, json.loads)


class ValueSpec:
    """A state of a function: ``bind(typename, specs=[ValueSpec("seen", IntType)])``.

    :param name: a lower-case Python identifier (it becomes an attribute of ``context.storage``).
    :param type: the :class:`Type` of its value.
    :param expire_after_call: the value expires when the function was not called for its
        address this long.
    :param expire_after_write: the value expires when it was not written this long. At most one.

    The attributes are the official ones: ``name``, ``type``, ``duration`` (milliseconds),
    ``after_call``, ``after_write``.
    """

    __slots__ = ("name", "type", "duration", "after_call", "after_write")

    def __init__(
        self,
        name: str,
        type: Type,
        expire_after_call: Optional[timedelta] = None,
        expire_after_write: Optional[timedelta] = None,
    ) -> None:
        if not name:
            raise ValueError("name can not be missing.")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"invalid state name {name!r}: a name is letters, digits and underscores, and does not start with a digit"
            )
        if iskeyword(name):
            raise ValueError(f"invalid state name {name!r}: a Python keyword cannot be an attribute of context.storage")
        if not name.islower():
            raise ValueError(f"invalid state name {name!r}: only lower case names are allowed")
        if not type:
            raise ValueError("type can not be missing.")
        if not isinstance(type, Type):
            raise TypeError(f"state {name!r}: type is not a StateFun type (a statefun_wsgi.v3.Type), got {type!r}")
        if expire_after_call and expire_after_write:
            raise ValueError("Either expire_after_call or expire_after_write can be set, but not both.")
        self.name = name
        self.type = type
        expiry = expire_after_call or expire_after_write
        self.duration = int(expiry.total_seconds() * 1000.0) if expiry else 0
        self.after_call = bool(expire_after_call)
        self.after_write = not self.after_call and bool(expire_after_write)

    def __repr__(self) -> str:
        expiry = ""
        if self.after_call:
            expiry = f", expire_after_call={timedelta(milliseconds=self.duration)!r}"
        elif self.after_write:
            expiry = f", expire_after_write={timedelta(milliseconds=self.duration)!r}"
        return f"ValueSpec({self.name!r}, {self.type.typename}{expiry})"
