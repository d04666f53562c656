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
import operator
import struct
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

    # How the package encodes and decodes a value of this type (not official API): through
    # serializer() here, as a subclass defines it; the package's own types replace the two
    # with the functions themselves (instance slots), one call instead of three.

    def _encode(self, value: TypingAny) -> bytes:
        return self.serializer().serialize(value)

    def _decode(self, data: bytes) -> TypingAny:
        return self.serializer().deserialize(data)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.typename}>"


def encoder(tpe: Type) -> Callable[[TypingAny], bytes]:
    """The function that encodes a value of ``tpe`` (its serializer's ``serialize``, or the same
    function directly)."""
    try:
        return tpe._encode
    except AttributeError:  # (a Type-like object, not a Type)
        return tpe.serializer().serialize


def decoder(tpe: Type) -> Callable[[bytes], TypingAny]:
    """The function that decodes a value of ``tpe`` (see :func:`encoder`)."""
    try:
        return tpe._decode
    except AttributeError:
        return tpe.serializer().deserialize


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
    __slots__ = ("_serializer", "_encode", "_decode")

    def __init__(
        self, typename: str, serialize_fn: Callable[[TypingAny], bytes], deserialize_fn: Callable[[bytes], TypingAny]
    ) -> None:
        super().__init__(typename)
        if serialize_fn is None:
            raise ValueError("serialize_fn is missing")
        if deserialize_fn is None:
            raise ValueError("deserialize_fn is missing")
        self._serializer = _FunctionSerializer(serialize_fn, deserialize_fn)
        self._encode = serialize_fn  # type: ignore[method-assign,assignment]  # (see Type._encode)
        self._decode = deserialize_fn  # type: ignore[method-assign,assignment]

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
    __slots__ = ("wrapper", "encode", "decode")

    def __init__(
        self,
        wrapper: type[ProtobufMessage],
        encode: Optional[Callable[[TypingAny], bytes]] = None,
        decode: Optional[Callable[[bytes], TypingAny]] = None,
    ) -> None:
        self.wrapper = wrapper
        self.encode = encode or self._protobuf_encode
        self.decode = decode or self._protobuf_decode

    def _protobuf_encode(self, value: TypingAny) -> bytes:
        return self.wrapper(value=value).SerializeToString()

    def _protobuf_decode(self, byte: bytes) -> TypingAny:
        return self.wrapper.FromString(byte).value  # type: ignore[attr-defined]

    def serialize(self, value: TypingAny) -> bytes:
        return self.encode(value)

    def deserialize(self, byte: bytes) -> TypingAny:
        return self.decode(byte)


class _WrapperType(Type):
    """A built-in type: a value in a one-field wrapper message."""

    __slots__ = ("wrapper", "_serializer", "_encode", "_decode")

    def __init__(self, typename: str, wrapper_message_type: type[ProtobufMessage]) -> None:
        super().__init__(typename)
        self.wrapper = wrapper_message_type
        self._codecs(_WrapperSerializer(wrapper_message_type))

    def _codecs(self, serializer: _WrapperSerializer) -> None:
        self._serializer = serializer
        self._encode = serializer.encode  # type: ignore[method-assign,assignment]  # (see Type._encode)
        self._decode = serializer.decode  # type: ignore[method-assign,assignment]

    def serializer(self) -> TypeSerializer:
        return self._serializer


# The built-in types' usual values written and read directly, the same bytes as their
# wrapper message (tests/test_v3_types.py compares them); anything else (another type, a
# value out of range, bytes not in the usual form) goes through the message, and so gets
# protobuf's own result or error.

_INT32, _INT64, _DOUBLE = struct.Struct("<i"), struct.Struct("<q"), struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_SMALL = [bytes((n,)) for n in range(0x80)]


_BY_MESSAGE = {
    cls: _WrapperSerializer(cls)
    for cls in (BooleanWrapper, IntWrapper, FloatWrapper, LongWrapper, DoubleWrapper, StringWrapper)
}


def _encode_bool(value: TypingAny, _slow: Callable[[TypingAny], bytes] = _BY_MESSAGE[BooleanWrapper].encode) -> bytes:
    if value is True:
        return b"\x08\x01"
    if value is False:
        return b""
    return _slow(value)


def _decode_bool(data: bytes, _slow: Callable[[bytes], TypingAny] = _BY_MESSAGE[BooleanWrapper].decode) -> TypingAny:
    if not data:
        return False
    if data == b"\x08\x01":
        return True
    return _slow(data)


def _encode_int(
    value: TypingAny,
    _pack: Callable[..., bytes] = _INT32.pack,
    _slow: Callable[[TypingAny], bytes] = _BY_MESSAGE[IntWrapper].encode,
) -> bytes:
    if type(value) is int and -0x8000_0000 <= value <= 0x7FFF_FFFF:
        return b"\x0d" + _pack(value) if value else b""
    return _slow(value)


def _decode_int(
    data: bytes,
    _unpack: Callable[..., tuple] = _INT32.unpack_from,
    _slow: Callable[[bytes], TypingAny] = _BY_MESSAGE[IntWrapper].decode,
) -> TypingAny:
    if not data:
        return 0
    if len(data) == 5 and data[0] == 0x0D:
        return _unpack(data, 1)[0]
    return _slow(data)


def _encode_long(
    value: TypingAny,
    _pack: Callable[..., bytes] = _INT64.pack,
    _slow: Callable[[TypingAny], bytes] = _BY_MESSAGE[LongWrapper].encode,
) -> bytes:
    if type(value) is int and -0x8000_0000_0000_0000 <= value <= 0x7FFF_FFFF_FFFF_FFFF:
        return b"\x09" + _pack(value) if value else b""
    return _slow(value)


def _decode_long(
    data: bytes,
    _unpack: Callable[..., tuple] = _INT64.unpack_from,
    _slow: Callable[[bytes], TypingAny] = _BY_MESSAGE[LongWrapper].decode,
) -> TypingAny:
    if not data:
        return 0
    if len(data) == 9 and data[0] == 0x09:
        return _unpack(data, 1)[0]
    return _slow(data)


def _encode_double(
    value: TypingAny,
    _pack: Callable[..., bytes] = _DOUBLE.pack,
    _slow: Callable[[TypingAny], bytes] = _BY_MESSAGE[DoubleWrapper].encode,
) -> bytes:
    if type(value) is float and value:  # (0.0 and -0.0: as protobuf decides)
        return b"\x09" + _pack(value)
    return _slow(value)


def _decode_double(
    data: bytes,
    _unpack: Callable[..., tuple] = _DOUBLE.unpack_from,
    _slow: Callable[[bytes], TypingAny] = _BY_MESSAGE[DoubleWrapper].decode,
) -> TypingAny:
    if len(data) == 9 and data[0] == 0x09:
        return _unpack(data, 1)[0]
    return _slow(data)


def _decode_float(
    data: bytes,
    _unpack: Callable[..., tuple] = _FLOAT.unpack_from,
    _slow: Callable[[bytes], TypingAny] = _BY_MESSAGE[FloatWrapper].decode,
) -> TypingAny:
    if len(data) == 5 and data[0] == 0x0D:
        return _unpack(data, 1)[0]
    return _slow(data)


def _encode_string(value: TypingAny, _slow: Callable[[TypingAny], bytes] = _BY_MESSAGE[StringWrapper].encode) -> bytes:
    if type(value) is str:
        try:
            data = value.encode()
        except UnicodeEncodeError:  # (a lone surrogate: protobuf's error)
            return _slow(value)
        size = len(data)
        if size < 0x80:
            return b"\x0a" + _SMALL[size] + data if size else b""
    return _slow(value)


def _decode_string(data: bytes, _slow: Callable[[bytes], TypingAny] = _BY_MESSAGE[StringWrapper].decode) -> TypingAny:
    if not data:
        return ""
    if 2 <= len(data) < 0x82 and data[0] == 0x0A and data[1] == len(data) - 2:
        try:
            return data[2:].decode()
        except UnicodeDecodeError:  # (protobuf's error)
            pass
    return _slow(data)


def _builtin(
    typename: str,
    wrapper: type[ProtobufMessage],
    encode: Optional[Callable[[TypingAny], bytes]],
    decode: Callable[[bytes], TypingAny],
) -> Type:
    tpe = _WrapperType(typename, wrapper)
    tpe._codecs(_WrapperSerializer(wrapper, encode, decode))
    return tpe


BoolType: Type = _builtin("io.statefun.types/bool", BooleanWrapper, _encode_bool, _decode_bool)
IntType: Type = _builtin("io.statefun.types/int", IntWrapper, _encode_int, _decode_int)
FloatType: Type = _builtin("io.statefun.types/float", FloatWrapper, None, _decode_float)
LongType: Type = _builtin("io.statefun.types/long", LongWrapper, _encode_long, _decode_long)
DoubleType: Type = _builtin("io.statefun.types/double", DoubleWrapper, _encode_double, _decode_double)
StringType: Type = _builtin("io.statefun.types/string", StringWrapper, _encode_string, _decode_string)


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


#: ``message.SerializeToString()``, called from C (no Python frame).
_serialize_message: Callable[[ProtobufMessage], bytes] = operator.methodcaller("SerializeToString")


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
