"""Tests for statefun_wsgi.v3.messages: Message reading, the builders, and the Kafka and
Kinesis egress records (the official kafka-egress.proto / kinesis-egress.proto bytes)."""

from __future__ import annotations

import struct

import pytest

from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord
from statefun_wsgi._proto.request_reply_v3_pb2 import TypedValue
from statefun_wsgi.v3 import (
    EgressMessage,
    IntType,
    LongType,
    Message,
    StringType,
    egress_message_builder,
    kafka_egress_message,
    kinesis_egress_message,
    make_json_type,
    message_builder,
)

UserType = make_json_type("com.example/User")


@pytest.mark.parametrize(
    "keyword, value, kind",
    [
        ("int_value", 3, "int"),
        ("long_value", 2**40, "long"),
        ("float_value", 0.5, "float"),
        ("double_value", 0.1, "double"),
        ("str_value", "s", "string"),
        ("bool_value", True, "bool"),
    ],
)
def test_builders_and_readers_round_trip(keyword: str, value: object, kind: str) -> None:
    message = message_builder("example/fn", "id", **{keyword: value})
    assert (message.target_typename, message.target_id) == ("example/fn", "id")
    assert message.value_typename() == f"io.statefun.types/{kind}"
    assert getattr(message, f"is_{kind}")()
    assert getattr(message, f"as_{kind}")() == value
    others = {"int", "long", "float", "double", "string", "bool"} - {kind}
    assert not any(getattr(message, f"is_{other}")() for other in others)


def test_value_and_value_type() -> None:
    message = message_builder("example/fn", "id", value={"a": 1}, value_type=UserType)
    assert message.is_type(UserType) and message.as_type(UserType) == {"a": 1}
    assert message.raw_value() == b'{"a": 1}'
    assert message.typed_value == TypedValue(typename="com.example/User", has_value=True, value=b'{"a": 1}')


def test_as_type_checks_the_type_name() -> None:
    # The official SDK decodes the string's bytes as an int here (and returns garbage).
    message = message_builder("example/fn", "id", str_value="hello")
    with pytest.raises(TypeError, match="io.statefun.types/string.*not 'io.statefun.types/int'"):
        message.as_int()
    with pytest.raises(TypeError, match="check is_type"):
        message.as_type(UserType)


def test_a_message_without_a_value() -> None:
    message = Message("example/fn", "id", TypedValue(typename="io.statefun.types/int", has_value=False))
    assert message.raw_value() is None and message.as_int() is None and message.is_int()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({}, TypeError, "exactly one of"),
        ({"int_value": 1, "str_value": "a"}, TypeError, "exactly one of"),
        ({"int_value": None}, ValueError, "value can not be missing"),
        ({"value": 1}, ValueError, "deduce"),
        ({"value": 1, "value_type": None}, ValueError, "deduce"),
    ],
)
def test_message_builder_refusals(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        message_builder("example/fn", "id", **kwargs)


def test_message_needs_target_and_id() -> None:
    with pytest.raises(ValueError, match="target_id"):
        message_builder("example/fn", "", int_value=1)
    with pytest.raises(ValueError, match="target_typename"):
        message_builder("", "id", int_value=1)


def test_egress_message_builder() -> None:
    message = egress_message_builder("example/out", "hi", StringType)
    assert isinstance(message, EgressMessage) and message.typename == "example/out"
    assert message.value_typename() == "io.statefun.types/string"
    assert message.raw_value() == StringType.serializer().serialize("hi")
    with pytest.raises(ValueError, match="value can not be missing"):
        egress_message_builder("example/out", None, StringType)
    with pytest.raises(ValueError, match="target typename is missing"):
        egress_message_builder("", "x", StringType)


@pytest.mark.parametrize(
    "value, value_type, expected",
    [
        ("text", None, b"text"),
        (b"\x00", None, b"\x00"),
        (bytearray(b"ab"), None, b"ab"),
        (258, None, struct.pack(">i", 258)),
        (0.5, None, struct.pack(">d", 0.5)),
        (7, LongType, LongType.serializer().serialize(7)),
    ],
)
def test_kafka_records(value: object, value_type: object, expected: bytes) -> None:
    message = kafka_egress_message("example/kafka", "topic", value, value_type=value_type, key="k")  # type: ignore[arg-type]
    assert message.typename == "example/kafka"
    assert message.value_typename() == "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
    record = KafkaProducerRecord.FromString(message.raw_value() or b"")
    assert (record.topic, record.key, record.value_bytes) == ("topic", "k", expected)
    # field numbers as kafka-egress.proto: key 1, value_bytes 2, topic 3
    assert message.raw_value() == b"\x0a\x01k" + b"\x12" + bytes([len(expected)]) + expected + b"\x1a\x05topic"


def test_kafka_and_kinesis_refusals() -> None:
    with pytest.raises(ValueError, match="topic is missing"):
        kafka_egress_message("example/kafka", "", "v")
    with pytest.raises(TypeError, match="Unable to convert value to bytes"):
        kafka_egress_message("example/kafka", "t", object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Unable to convert value to bytes"):
        kinesis_egress_message("example/kinesis", "s", 5, "pk")  # type: ignore[arg-type]  # no int encoding there
    with pytest.raises(ValueError, match="Missing partition key"):
        kinesis_egress_message("example/kinesis", "s", "v", None)  # type: ignore[arg-type]


def test_kinesis_records() -> None:
    message = kinesis_egress_message("example/kinesis", "stream", "v", "pk", explicit_hash_key="h")
    assert message.value_typename() == "type.googleapis.com/io.statefun.sdk.egress.KinesisEgressRecord"
    record = KinesisEgressRecord.FromString(message.raw_value() or b"")
    assert (record.stream, record.value_bytes, record.partition_key, record.explicit_hash_key) == (
        "stream",
        b"v",
        "pk",
        "h",
    )
    assert message.raw_value() == b"\x0a\x02pk\x12\x01v\x1a\x06stream\x22\x01h"
    typed = kinesis_egress_message("example/kinesis", "stream", 5, "pk", value_type=IntType)
    assert KinesisEgressRecord.FromString(typed.raw_value() or b"").value_bytes == IntType.serializer().serialize(5)
