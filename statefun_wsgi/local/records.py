"""What flows through the local runtime: messages (:class:`Envelope`) and egress
records (:class:`EgressRecord`), with JSON views for printing."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any as TypingAny
from typing import TYPE_CHECKING, Dict, Optional, Type, TypeVar, Union, overload

from google.protobuf import descriptor_pool, json_format
# The well-known types, so that JSON works for them in any process (``run`` imports no app).
from google.protobuf import duration_pb2, empty_pb2, struct_pb2, timestamp_pb2, wrappers_pb2  # noqa: F401
from google.protobuf.any_pb2 import Any
from google.protobuf.message import DecodeError, Message

from .._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord
from ..builtin_types import BUILTIN_TYPENAMES
from ..context import Address
from ..errors import UnexpectedMessageTypeError
from ..functions import TYPE_URL_PREFIX, type_name_of_url

if TYPE_CHECKING:
    from ..v3.types import Type as OfficialType

__all__ = ["EgressRecord", "Envelope", "any_to_json", "json_to_any"]

M = TypeVar("M", bound=Message)

_KAFKA = KafkaProducerRecord.DESCRIPTOR.full_name
_KINESIS = KinesisEgressRecord.DESCRIPTOR.full_name
# The same records under their StateFun 3.x names.
_KAFKA_3 = "io.statefun.sdk.egress.KafkaProducerRecord"
_KINESIS_3 = "io.statefun.sdk.egress.KinesisEgressRecord"
# The official 3.x SDKs' built-in types (io.statefun.types/int, ...): type name -> wrapper class.
_BUILTINS = {typename: wrapper for wrapper, typename in BUILTIN_TYPENAMES.items()}


@dataclass(frozen=True)
class Envelope:
    """A message on its way to a function."""

    target: Address
    argument: Any
    caller: Optional[Address] = None


def _unpack(argument: Any, message_type: Type[M]) -> M:
    expected = message_type.DESCRIPTOR.full_name
    if type_name_of_url(argument.type_url) != expected:
        raise UnexpectedMessageTypeError(f"the record holds a {argument.type_url!r}, not a {expected}")
    return message_type.FromString(argument.value)


@dataclass(frozen=True)
class EgressRecord:
    """One message a function sent to an egress (``"namespace/name"``)."""

    egress: str
    argument: Any

    @property
    def type_name(self) -> str:
        return type_name_of_url(self.argument.type_url)

    @property
    def kafka(self) -> Optional[KafkaProducerRecord]:
        """The Kafka producer record, if this is one."""
        return KafkaProducerRecord.FromString(self.argument.value) if self.type_name in (_KAFKA, _KAFKA_3) else None

    @property
    def kinesis(self) -> Optional[KinesisEgressRecord]:
        """The Kinesis record, if this is one."""
        return KinesisEgressRecord.FromString(self.argument.value) if self.type_name in (_KINESIS, _KINESIS_3) else None

    @overload
    def unpack(self, message_type: Type[M]) -> M: ...

    @overload
    def unpack(self, message_type: OfficialType) -> TypingAny: ...

    def unpack(self, message_type: Union[Type[M], OfficialType]) -> TypingAny:
        """The record as ``message_type`` (an error if it holds another type), or its value
        decoded by a :mod:`statefun_wsgi.v3` type (``record.unpack(StringType)``)."""
        if not isinstance(message_type, type):
            if self.argument.type_url != message_type.typename:
                raise UnexpectedMessageTypeError(f"the record holds a {self.argument.type_url!r}, "
                                                 f"not a {message_type.typename!r}")
            return message_type.serializer().deserialize(self.argument.value)
        return _unpack(self.argument, message_type)

    def to_json(self) -> Dict[str, TypingAny]:
        """A JSON-ready view: Kafka/Kinesis records decoded, other messages by their JSON form."""
        view: Dict[str, TypingAny] = {"egress": self.egress}
        kafka, kinesis = self.kafka, self.kinesis
        if kafka is not None:
            view["kafka"] = {"topic": kafka.topic, "key": kafka.key or None, **_bytes_view(kafka.value_bytes)}
        elif kinesis is not None:
            view["kinesis"] = {
                "stream": kinesis.stream,
                "partition_key": kinesis.partition_key,
                "explicit_hash_key": kinesis.explicit_hash_key or None,
                **_bytes_view(kinesis.value_bytes),
            }
        else:
            view["message"] = any_to_json(self.argument)
        return view


def _bytes_view(value: bytes) -> Dict[str, str]:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return {"value": text}
    return {"value_base64": base64.b64encode(value).decode("ascii")}


def any_to_json(argument: Any) -> Dict[str, TypingAny]:
    """An ``Any`` as protobuf's JSON (``{"@type": ..., fields}``) when its type is
    importable here, a 3.x built-in type as ``{"@type": "io.statefun.types/string", "value": ...}``,
    else its type URL and base64 bytes (``value_base64``)."""
    wrapper = _BUILTINS.get(argument.type_url)
    if wrapper is not None:
        try:
            built = wrapper.FromString(argument.value)
        except DecodeError:
            built = None
        if built is not None and built.SerializeToString() == argument.value:  # (else not the SDK's encoding)
            return {"@type": argument.type_url, "value": built.value}
    try:
        return json_format.MessageToDict(argument, preserving_proto_field_name=True)
    except (TypeError, KeyError, json_format.Error):
        return {"@type": argument.type_url, "value_base64": base64.b64encode(argument.value).decode("ascii")}


def json_to_any(document: Dict[str, TypingAny]) -> Any:
    """Build an ``Any`` from ``{"@type": "pkg.Message", field: value, ...}``.

    ``@type`` may be a full type URL or just the message name; the message class
    must be imported (its module loaded) in this process. The StateFun 3.x built-in
    types take their value as ``{"@type": "io.statefun.types/string", "value": "alice"}``
    (also ``.../int``, ``long``, ``bool``, ``float``, ``double``), and any other type
    its bytes as ``{"@type": "example/point", "value_base64": "eyJ4IjogMX0="}`` (what
    :func:`any_to_json` writes for a type it does not know, such as a 3.x JSON type).
    """
    if not isinstance(document, dict) or not isinstance(document.get("@type"), str):
        raise ValueError('a JSON message is an object with "@type" naming the message type, e.g. '
                         '{"@type": "example.greeter.GreetRequest", "name": "alice"}')
    document = dict(document)
    type_url = document["@type"]
    if set(document) == {"@type", "value_base64"}:
        try:
            value = base64.b64decode(document["value_base64"], validate=True)
        except (TypeError, ValueError):
            raise ValueError(f"value_base64 of a {type_url!r} message is not base64") from None
        return Any(type_url=type_url, value=value)
    wrapper = _BUILTINS.get(type_url)
    if wrapper is not None:
        del document["@type"]
        try:
            built = json_format.ParseDict(document, wrapper())
        except json_format.ParseError as exc:
            reason = str(exc).splitlines()[0]
            raise ValueError(f'the JSON does not fit {type_url} (one field, "value"): {reason}') from None
        return Any(type_url=type_url, value=built.SerializeToString())
    if "/" not in type_url:
        document["@type"] = type_url = TYPE_URL_PREFIX + type_url
    try:
        descriptor_pool.Default().FindMessageTypeByName(type_name_of_url(type_url))
    except KeyError:
        raise ValueError(
            f"message type {type_name_of_url(type_url)!r} is not known here: import the module that defines it "
            "(statefun-wsgi run: --import MODULE)"
        ) from None
    argument = Any()
    try:
        json_format.ParseDict(document, argument)
    except json_format.ParseError as exc:
        raise ValueError(f"the JSON does not fit {type_name_of_url(type_url)}: {exc}") from None
    return argument
