"""Messages of the official StateFun 3.3 Python API: what a function receives and sends.

Usage::

    from statefun_wsgi.v3 import egress_message_builder, kafka_egress_message, message_builder

    @functions.bind("example/greeter")
    def greet(context, message):
        if message.is_string():
            name = message.as_string()
        context.send(message_builder("example/counter", name, int_value=1))
        context.send_egress(kafka_egress_message("example/out", topic="greetings", key=name, value=f"hi {name}"))
        context.send_egress(egress_message_builder("example/log", {"who": name}, LogType))

A value travels as a ``TypedValue`` (type name, ``has_value``, bytes): ``message.typed_value``
is one (this package's generated class, the same fields as the official one).

One difference from the official SDK, on purpose: ``as_type(tpe)`` (and so ``as_int()`` and
the others) raises ``TypeError`` when the message is of another type, where the official
one decodes the bytes as ``tpe`` whatever they are (an int read from a string's bytes).
"""

from __future__ import annotations

import struct
from typing import Any as TypingAny
from typing import Callable, Optional, Union

from .._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord
from .._proto.request_reply_v3_pb2 import TypedValue
from .._proto.request_reply_v3_view_pb2 import TypedValue as _ViewTypedValue
from .._protocol3 import KAFKA_PRODUCER_RECORD_TYPENAME, KINESIS_EGRESS_RECORD_TYPENAME
from .types import BoolType, DoubleType, FloatType, IntType, LongType, StringType, Type, decoder, encoder

__all__ = [
    "EgressMessage",
    "Message",
    "egress_message_builder",
    "kafka_egress_message",
    "kinesis_egress_message",
    "message_builder",
]


class Message:
    """A message to a function: its target (``target_typename``, ``target_id``) and its
    ``typed_value``. Read it with ``is_*()`` / ``as_*()`` or :meth:`as_type`."""

    __slots__ = ("target_typename", "target_id", "typed_value")

    def __init__(self, target_typename: str, target_id: str, typed_value: TypedValue) -> None:
        if not target_typename:
            raise ValueError("target_typename can not be missing")
        if not target_id:
            raise ValueError("target_id can not be missing")
        if typed_value is None:
            raise ValueError("typed_value can not be missing")
        self.target_typename = target_typename
        self.target_id = target_id
        self.typed_value = typed_value

    def is_int(self) -> bool:
        return self.is_type(IntType)

    def as_int(self) -> Optional[int]:
        return self.as_type(IntType)  # type: ignore[no-any-return]

    def is_bool(self) -> bool:
        return self.is_type(BoolType)

    def as_bool(self) -> Optional[bool]:
        return self.as_type(BoolType)  # type: ignore[no-any-return]

    def is_long(self) -> bool:
        return self.is_type(LongType)

    def as_long(self) -> Optional[int]:
        return self.as_type(LongType)  # type: ignore[no-any-return]

    def is_string(self) -> bool:
        return self.is_type(StringType)

    def as_string(self) -> Optional[str]:
        return self.as_type(StringType)  # type: ignore[no-any-return]

    def is_float(self) -> bool:
        return self.is_type(FloatType)

    def as_float(self) -> Optional[float]:
        return self.as_type(FloatType)  # type: ignore[no-any-return]

    def is_double(self) -> bool:
        return self.is_type(DoubleType)

    def as_double(self) -> Optional[float]:
        return self.as_type(DoubleType)  # type: ignore[no-any-return]

    def is_type(self, tpe: Type) -> bool:
        """True when the message's type name is ``tpe``'s."""
        return self.typed_value.typename == tpe.typename

    def value_typename(self) -> str:
        return self.typed_value.typename

    def raw_value(self) -> Optional[bytes]:
        """The value's bytes, ``None`` when the message carries no value."""
        typed_value = self.typed_value
        return typed_value.value if typed_value.has_value else None

    def as_type(self, tpe: Type) -> TypingAny:
        """The value, decoded by ``tpe``'s serializer (``None`` when there is none).

        Raises ``TypeError`` when the message is of another type (the official SDK decodes
        it anyway)."""
        typed_value = self.typed_value
        if typed_value.typename != tpe.typename:
            raise TypeError(
                f"the message is of type {typed_value.typename!r}, not {tpe.typename!r}: check is_type() first"
            )
        if not typed_value.has_value:
            return None
        return decoder(tpe)(typed_value.value)

    def __repr__(self) -> str:
        return f"<Message to {self.target_typename}/{self.target_id} of type {self.typed_value.typename}>"


class _Received(Message):
    """A message of the batch: read from the request's argument as it is; its ``typed_value``
    (a new TypedValue) is made only when asked for."""

    __slots__ = ("_argument",)

    def __init__(self, target_typename: str, target_id: str, argument: TypingAny) -> None:
        self.target_typename = target_typename
        self.target_id = target_id
        self._argument = argument  # the 3.x view's TypedValue (type_url = typename), or a 2.x Any

    @property  # type: ignore[override]
    def typed_value(self) -> TypedValue:
        argument = self._argument
        if type(argument) is TypedValue:
            return argument
        has_value = getattr(argument, "has_value", True)  # (a 2.x Any has no such field)
        return TypedValue(typename=argument.type_url, has_value=has_value, value=argument.value)

    @typed_value.setter
    def typed_value(self, typed_value: TypedValue) -> None:
        self._argument = typed_value

    def is_type(self, tpe: Type) -> bool:
        argument = self._argument
        return (argument.typename if type(argument) is TypedValue else argument.type_url) == tpe.typename

    def value_typename(self) -> str:
        argument = self._argument
        return argument.typename if type(argument) is TypedValue else argument.type_url  # type: ignore[no-any-return]

    def raw_value(self) -> Optional[bytes]:
        argument = self._argument
        return argument.value if getattr(argument, "has_value", True) else None

    def as_type(self, tpe: Type) -> TypingAny:
        argument = self._argument
        if type(argument) is _ViewTypedValue:  # (a 3.x request's argument, the usual case)
            if argument.type_url != tpe.typename:
                raise TypeError(
                    f"the message is of type {argument.type_url!r}, not {tpe.typename!r}: check is_type() first"
                )
            if not argument.has_value:
                return None
        else:
            typename = argument.typename if type(argument) is TypedValue else argument.type_url
            if typename != tpe.typename:
                raise TypeError(f"the message is of type {typename!r}, not {tpe.typename!r}: check is_type() first")
            if not getattr(argument, "has_value", True):
                return None
        try:
            decode: Callable[[bytes], TypingAny] = tpe._decode
        except AttributeError:  # (a Type-like object, not a Type: see types.decoder)
            decode = tpe.serializer().deserialize
        return decode(argument.value)


class EgressMessage:
    """A record for the egress ``typename`` (``namespace/name``)."""

    __slots__ = ("typename", "typed_value")

    def __init__(self, typename: str, typed_value: TypedValue) -> None:
        if not typename:
            raise ValueError("typename is missing")
        if typed_value is None:
            raise ValueError("value is missing")
        self.typename = typename
        self.typed_value = typed_value

    def value_typename(self) -> str:
        return self.typed_value.typename

    def raw_value(self) -> Optional[bytes]:
        typed_value = self.typed_value
        return typed_value.value if typed_value.has_value else None

    def __repr__(self) -> str:
        return f"<EgressMessage to {self.typename} of type {self.typed_value.typename}>"


def _typed_value(tpe: Type, value: TypingAny) -> TypedValue:
    return TypedValue(typename=tpe.typename, has_value=True, value=encoder(tpe)(value))


class _Built(Message):
    """A message made by :func:`message_builder`: its type name and bytes; ``typed_value``
    (a new TypedValue) is made only when asked for (the context encodes the two directly)."""

    __slots__ = ("_typename", "_value")

    def __init__(self, target_typename: str, target_id: str, typename: str, value: bytes) -> None:
        if not target_typename:
            raise ValueError("target_typename can not be missing")
        if not target_id:
            raise ValueError("target_id can not be missing")
        self.target_typename = target_typename
        self.target_id = target_id
        self._typename = typename
        self._value = value

    @property  # type: ignore[override]
    def typed_value(self) -> TypedValue:
        return TypedValue(typename=self._typename, has_value=True, value=self._value)

    @typed_value.setter
    def typed_value(self, typed_value: TypedValue) -> None:
        self._typename, self._value = typed_value.typename, typed_value.value  # (has_value: see raw_value)

    def is_type(self, tpe: Type) -> bool:
        return self._typename == tpe.typename

    def value_typename(self) -> str:
        return self._typename

    def raw_value(self) -> Optional[bytes]:
        return self._value

    def as_type(self, tpe: Type) -> TypingAny:
        if self._typename != tpe.typename:
            raise TypeError(f"the message is of type {self._typename!r}, not {tpe.typename!r}: check is_type() first")
        return decoder(tpe)(self._value)


class _BuiltEgress(EgressMessage):
    """A record made by a builder: its type name and bytes (``typed_value`` made when asked for)."""

    __slots__ = ("_typename", "_value")

    def __init__(self, typename: str, value_typename: str, value: bytes) -> None:
        if not typename:
            raise ValueError("typename is missing")
        self.typename = typename
        self._typename = value_typename
        self._value = value

    @property  # type: ignore[override]
    def typed_value(self) -> TypedValue:
        return TypedValue(typename=self._typename, has_value=True, value=self._value)

    @typed_value.setter
    def typed_value(self, typed_value: TypedValue) -> None:
        self._typename, self._value = typed_value.typename, typed_value.value

    def value_typename(self) -> str:
        return self._typename

    def raw_value(self) -> Optional[bytes]:
        return self._value


_KEYWORD_TYPES = {
    "int_value": IntType,
    "float_value": FloatType,
    "long_value": LongType,
    "str_value": StringType,
    "double_value": DoubleType,
    "bool_value": BoolType,
}


def message_builder(target_typename: str, target_id: str, **kwargs: TypingAny) -> Message:
    """A :class:`Message` to the function ``target_typename`` with id ``target_id``; the value
    is one of ``int_value=``, ``long_value=``, ``float_value=``, ``double_value=``,
    ``str_value=``, ``bool_value=``, or ``value=`` with ``value_type=`` (a :class:`Type`)::

        message_builder("example/counter", "alice", int_value=1)
        message_builder("example/users", "alice", value={"age": 3}, value_type=UserType)
    """
    if len(kwargs) == 2 and "value" in kwargs and "value_type" in kwargs:
        value, value_type = kwargs["value"], kwargs["value_type"]
    elif len(kwargs) == 1:
        keyword, value = next(iter(kwargs.items()))
        value_type = _KEYWORD_TYPES.get(keyword)
    else:
        raise TypeError(
            f"message_builder takes exactly one of int_value=, long_value=, float_value=, double_value=, "
            f"str_value=, bool_value=, or value= with value_type=; got {sorted(kwargs)}"
        )
    if value is None:
        raise ValueError("value can not be missing")
    if not value_type:
        raise ValueError(
            "Could not deduce the value type, please specify the type explicitly: value=<the value>, value_type=<the type>"
        )
    try:
        encode: Callable[[TypingAny], bytes] = value_type._encode
    except AttributeError:  # (a Type-like object, not a Type: see types.encoder)
        encode = value_type.serializer().serialize
    return _Built(target_typename, target_id, value_type.typename, encode(value))


def egress_message_builder(target_typename: str, value: TypingAny, value_type: Type) -> EgressMessage:
    """A record of ``value`` (encoded by ``value_type``) for the egress ``target_typename``.

    For the generic Kafka and Kinesis egresses use :func:`kafka_egress_message` and
    :func:`kinesis_egress_message`."""
    if not target_typename:
        raise ValueError("target typename is missing")
    if value is None:
        raise ValueError("value can not be missing")
    try:
        encode: Callable[[TypingAny], bytes] = value_type._encode
    except AttributeError:  # (a Type-like object, not a Type: see types.encoder)
        encode = value_type.serializer().serialize
    return _BuiltEgress(target_typename, value_type.typename, encode(value))


def _record_bytes(value: TypingAny, value_type: Optional[Type], numbers: bool) -> bytes:
    if value_type:
        return encoder(value_type)(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if numbers and isinstance(value, int):
        return struct.pack(">i", value)  # Kafka's IntegerSerializer
    if numbers and isinstance(value, float):
        return struct.pack(">d", value)  # Kafka's DoubleSerializer
    raise TypeError(f"Unable to convert value to bytes: give a value_type for a {type(value).__name__}")


def kafka_egress_message(
    typename: str,
    topic: str,
    value: Union[str, bytes, bytearray, int, float],
    value_type: Optional[Type] = None,
    key: Optional[str] = None,
) -> EgressMessage:
    """A record for the generic Kafka egress ``typename``: ``value`` to ``topic`` under ``key``.

    ``value`` is encoded by ``value_type`` when given, else a str as UTF-8, bytes as they
    are, an int and a float as Kafka's Integer and Double serializers write them."""
    if not topic:
        raise ValueError("A destination Kafka topic is missing")
    if value is None:
        raise ValueError("Missing value")
    record = KafkaProducerRecord(topic=topic, value_bytes=_record_bytes(value, value_type, True))
    if key is not None:
        record.key = key
    return _BuiltEgress(typename, KAFKA_PRODUCER_RECORD_TYPENAME, record.SerializeToString())


def kinesis_egress_message(
    typename: str,
    stream: str,
    value: Union[str, bytes, bytearray],
    partition_key: str,
    value_type: Optional[Type] = None,
    explicit_hash_key: Optional[str] = None,
) -> EgressMessage:
    """A record for the generic Kinesis egress ``typename``: ``value`` to ``stream``."""
    if not stream:
        raise ValueError("Missing destination Kinesis stream")
    if value is None:
        raise ValueError("Missing value")
    if partition_key is None:
        raise ValueError("Missing partition key")
    record = KinesisEgressRecord(
        stream=stream, value_bytes=_record_bytes(value, value_type, False), partition_key=partition_key
    )
    if explicit_hash_key is not None:
        record.explicit_hash_key = explicit_hash_key
    return _BuiltEgress(typename, KINESIS_EGRESS_RECORD_TYPENAME, record.SerializeToString())
