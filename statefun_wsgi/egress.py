"""Records for the runtime's generic Kafka and Kinesis egresses.

Usage::

    record = kafka_egress_record(topic="greetings", key="alice", value=GreetResponse(...))
    context.pack_and_send_egress("example/greets", record)

    record = kinesis_egress_record(stream="greetings", partition_key="alice", value=b"...")
    context.pack_and_send_egress("example/kinesis-greets", record)

``value`` is a protobuf message (serialized), or ``bytes`` / ``str`` (UTF-8) sent as
they are. Packed, their type URLs end in the full names a 2.x runtime checks:
``org.apache.flink.statefun.flink.io.KafkaProducerRecord`` and
``org.apache.flink.statefun.flink.io.KinesisEgressRecord``. On a request from a 3.x
runtime the same records go out as
``type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord`` and
``...KinesisEgressRecord`` (the same fields), the names its generic egresses check.
"""

from __future__ import annotations

from typing import Optional, Union

from google.protobuf.message import Message

from ._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord

__all__ = ["KafkaProducerRecord", "KinesisEgressRecord", "kafka_egress_record", "kinesis_egress_record"]

RecordValue = Union[Message, bytes, bytearray, memoryview, str]


def _value_bytes(value: RecordValue, kind: str) -> bytes:
    if value is None:
        raise ValueError(f"a {kind} record requires a value")
    if isinstance(value, Message):
        return value.SerializeToString()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"a {kind} record value is a protobuf message, bytes or str, got {type(value).__name__}")


def _text(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    return value


def _require_text(value: Optional[str], what: str) -> str:
    if not value:
        raise ValueError(f"{what} is required")
    return _text(value, what)


def kafka_egress_record(topic: str, value: RecordValue, key: Optional[str] = None) -> KafkaProducerRecord:
    """A record for a ``statefun.kafka.io/generic-egress``; no ``key`` means a keyless record."""
    record = KafkaProducerRecord(
        topic=_require_text(topic, "a Kafka record's topic"), value_bytes=_value_bytes(value, "Kafka")
    )
    if key is not None:
        record.key = _text(key, "a Kafka record's key")
    return record


def kinesis_egress_record(
    stream: str, value: RecordValue, partition_key: str, explicit_hash_key: Optional[str] = None
) -> KinesisEgressRecord:
    """A record for a ``statefun.kinesis.io/generic-egress``; an empty or no ``explicit_hash_key``
    lets Kinesis hash ``partition_key``."""
    record = KinesisEgressRecord(
        stream=_require_text(stream, "a Kinesis record's stream"),
        partition_key=_require_text(partition_key, "a Kinesis record's partition key"),
        value_bytes=_value_bytes(value, "Kinesis"),
    )
    if explicit_hash_key is not None:  # "" is allowed, as in 2.x: the same as none on the wire
        record.explicit_hash_key = _text(explicit_hash_key, "a Kinesis record's explicit hash key")
    return record
