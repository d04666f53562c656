"""Tests for statefun_wsgi.egress: records for the runtime's generic Kafka and Kinesis egresses."""

from __future__ import annotations

import pytest
from builders import Egress, invoke
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import Int64Value, StringValue

from statefun_wsgi import kafka_egress_record, kinesis_egress_record
from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord, KinesisEgressRecord

KAFKA_NAME = "org.apache.flink.statefun.flink.io.KafkaProducerRecord"
KINESIS_NAME = "org.apache.flink.statefun.flink.io.KinesisEgressRecord"


# -- Kafka -------------------------------------------------------------------------------


def test_kafka_record_with_topic_value_and_key():
    record = kafka_egress_record(topic="greetings", value=StringValue(value="hi alice"), key="alice")
    assert type(record) is KafkaProducerRecord
    assert record.topic == "greetings"
    assert record.key == "alice"
    assert record.value_bytes == StringValue(value="hi alice").SerializeToString()
    assert StringValue.FromString(record.value_bytes) == StringValue(value="hi alice")


def test_kafka_record_positional_arguments_follow_the_2x_sdk():
    record = kafka_egress_record("t", b"v", "k")
    assert (record.topic, record.value_bytes, record.key) == ("t", b"v", "k")


def test_kafka_record_without_key_is_keyless():
    record = kafka_egress_record(topic="greetings", value=b"payload")
    assert record.key == ""
    # On the wire: only value_bytes (2) and topic (3); no key field at all.
    parsed = KafkaProducerRecord.FromString(record.SerializeToString())
    assert [field.name for field, _ in parsed.ListFields()] == ["value_bytes", "topic"]


@pytest.mark.parametrize(
    "value, expected",
    [
        (Int64Value(value=42), Int64Value(value=42).SerializeToString()),
        (b"\x00\x01raw", b"\x00\x01raw"),
        (bytearray(b"array"), b"array"),
        (memoryview(b"view"), b"view"),
        ("héllo ✓", "héllo ✓".encode()),
        ("", b""),
        (b"", b""),
    ],
    ids=["message", "bytes", "bytearray", "memoryview", "str-utf8", "empty-str", "empty-bytes"],
)
@pytest.mark.parametrize("kind", ["kafka", "kinesis"])
def test_record_value_kinds(kind, value, expected):
    if kind == "kafka":
        record = kafka_egress_record(topic="t", value=value)
    else:
        record = kinesis_egress_record(stream="s", value=value, partition_key="p")
    assert type(record.value_bytes) is bytes
    assert record.value_bytes == expected


KAFKA_ERRORS = [
    ("topic-empty", dict(topic="", value=b"v"), ValueError, r"a Kafka record's topic is required"),
    ("topic-none", dict(topic=None, value=b"v"), ValueError, r"a Kafka record's topic is required"),
    ("topic-not-str", dict(topic=5, value=b"v"), TypeError, r"a Kafka record's topic must be a str, got int"),
    ("value-none", dict(topic="t", value=None), ValueError, r"a Kafka record requires a value"),
    ("value-int", dict(topic="t", value=5), TypeError, r"a Kafka record value is a protobuf message, bytes or str, got int"),
    ("key-not-str", dict(topic="t", value=b"v", key=b"k"), TypeError, r"a Kafka record's key must be a str, got bytes"),
]


@pytest.mark.parametrize("kwargs, error, match", [row[1:] for row in KAFKA_ERRORS], ids=[row[0] for row in KAFKA_ERRORS])
def test_kafka_record_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        kafka_egress_record(**kwargs)


def test_kafka_record_missing_arguments_are_errors():
    with pytest.raises(TypeError):
        kafka_egress_record(topic="t")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        kafka_egress_record(value=b"v")  # type: ignore[call-arg]


# -- Kinesis -----------------------------------------------------------------------------


def test_kinesis_record_with_stream_partition_key_and_value():
    record = kinesis_egress_record(stream="greetings", value=StringValue(value="hi"), partition_key="alice")
    assert type(record) is KinesisEgressRecord
    assert record.stream == "greetings"
    assert record.partition_key == "alice"
    assert record.explicit_hash_key == ""
    assert record.value_bytes == StringValue(value="hi").SerializeToString()
    parsed = KinesisEgressRecord.FromString(record.SerializeToString())
    assert [field.name for field, _ in parsed.ListFields()] == ["partition_key", "value_bytes", "stream"]


def test_kinesis_record_with_explicit_hash_key():
    record = kinesis_egress_record("greetings", b"v", "alice", explicit_hash_key="1234567890")
    assert (record.stream, record.value_bytes, record.partition_key, record.explicit_hash_key) == (
        "greetings",
        b"v",
        "alice",
        "1234567890",
    )


def test_kinesis_record_with_an_empty_explicit_hash_key_is_one_without():
    """2.x documents the argument as "can be empty": proto3 writes "" and nothing alike."""
    record = kinesis_egress_record("greetings", b"v", "alice", explicit_hash_key="")
    assert record.SerializeToString() == kinesis_egress_record("greetings", b"v", "alice").SerializeToString()


KINESIS_ERRORS = [
    ("stream-empty", dict(stream="", value=b"v", partition_key="p"), ValueError, r"a Kinesis record's stream is required"),
    ("stream-none", dict(stream=None, value=b"v", partition_key="p"), ValueError, r"stream is required"),
    ("partition-key-empty", dict(stream="s", value=b"v", partition_key=""), ValueError, r"partition key is required"),
    ("partition-key-none", dict(stream="s", value=b"v", partition_key=None), ValueError, r"partition key is required"),
    ("value-none", dict(stream="s", value=None, partition_key="p"), ValueError, r"a Kinesis record requires a value"),
    ("value-float", dict(stream="s", value=1.5, partition_key="p"), TypeError, r"got float"),
    ("stream-not-str", dict(stream=b"s", value=b"v", partition_key="p"), TypeError, r"stream must be a str, got bytes"),
    (
        "hash-key-not-str",
        dict(stream="s", value=b"v", partition_key="p", explicit_hash_key=7),
        TypeError,
        r"explicit hash key must be a str, got int",
    ),
]


@pytest.mark.parametrize(
    "kwargs, error, match", [row[1:] for row in KINESIS_ERRORS], ids=[row[0] for row in KINESIS_ERRORS]
)
def test_kinesis_record_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        kinesis_egress_record(**kwargs)


# -- packed: the type URLs the runtime checks --------------------------------------------


@pytest.mark.parametrize(
    "record, name",
    [
        (kafka_egress_record("t", b"v", "k"), KAFKA_NAME),
        (kinesis_egress_record("s", b"v", "p"), KINESIS_NAME),
    ],
    ids=["kafka", "kinesis"],
)
def test_packed_type_url_ends_in_the_runtime_message_name(record, name):
    assert record.DESCRIPTOR.full_name == name
    packed = Any()
    packed.Pack(record)
    assert packed.type_url == f"type.googleapis.com/{name}"
    assert packed.type_url.rsplit("/", 1)[1] == name


def test_records_sent_to_an_egress_reach_the_reply():
    def fn(context, message: StringValue):
        context.pack_and_send_egress(
            "example/kafka-out", kafka_egress_record(topic="greets", value=f"hi {message.value}", key=message.value)
        )
        context.pack_and_send_egress(
            "example/kinesis-out",
            kinesis_egress_record(stream="greets", value=message, partition_key=message.value, explicit_hash_key="42"),
        )

    reply = invoke(fn, messages=[StringValue(value="bob")])
    assert reply.egresses == [
        Egress("example", "kafka-out", KafkaProducerRecord(topic="greets", key="bob", value_bytes=b"hi bob")),
        Egress(
            "example",
            "kinesis-out",
            KinesisEgressRecord(
                stream="greets",
                partition_key="bob",
                explicit_hash_key="42",
                value_bytes=StringValue(value="bob").SerializeToString(),
            ),
        ),
    ]
    urls = [egress.argument.type_url for egress in reply.raw.invocation_result.outgoing_egresses]
    assert urls == [f"type.googleapis.com/{KAFKA_NAME}", f"type.googleapis.com/{KINESIS_NAME}"]
