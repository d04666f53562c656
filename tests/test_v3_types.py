"""Tests for statefun_wsgi.v3.types: built-in encodings (the official types.proto bytes),
custom types and ValueSpec validation."""

from __future__ import annotations

import json
import math
import struct
from datetime import timedelta
from typing import Any, List, Tuple

import pytest
from google.protobuf.wrappers_pb2 import StringValue

from statefun_wsgi.v3 import (
    BoolType,
    DoubleType,
    FloatType,
    IntType,
    LongType,
    SdkAddress,
    StringType,
    Type,
    TypeSerializer,
    ValueSpec,
    make_json_type,
    make_protobuf_type,
    simple_type,
)


@pytest.mark.parametrize(
    "tpe, value, encoded",
    [
        (BoolType, True, b"\x08\x01"),
        (BoolType, False, b""),
        (IntType, 1, b"\x0d" + struct.pack("<i", 1)),
        (IntType, -2, b"\x0d" + struct.pack("<i", -2)),
        (IntType, 0, b""),
        (LongType, 2**40, b"\x09" + struct.pack("<q", 2**40)),
        (FloatType, 1.5, b"\x0d" + struct.pack("<f", 1.5)),
        (DoubleType, 0.1, b"\x09" + struct.pack("<d", 0.1)),
        (StringType, "hé", b"\x0a\x03h\xc3\xa9"),
        (StringType, "", b""),
    ],
)
def test_builtin_types_encode_as_the_official_types_proto(tpe: Type, value: object, encoded: bytes) -> None:
    serializer = tpe.serializer()
    assert serializer.serialize(value) == encoded
    assert serializer.deserialize(encoded) == value


def test_builtin_type_names() -> None:
    names = [t.typename for t in (BoolType, IntType, FloatType, LongType, DoubleType, StringType)]
    assert names == [f"io.statefun.types/{kind}" for kind in ("bool", "int", "float", "long", "double", "string")]


def test_json_protobuf_and_simple_types() -> None:
    user = make_json_type("com.example/User")
    assert user.typename == "com.example/User"
    assert user.serializer().serialize({"a": "ü"}) == json.dumps({"a": "ü"}, ensure_ascii=False).encode()
    assert user.serializer().deserialize(b'{"a": 1}') == {"a": 1}
    proto = make_protobuf_type(StringValue)
    assert proto.typename == "type.googleapis.com/google.protobuf.StringValue"
    assert (
        make_protobuf_type(StringValue, namespace="com.example").typename == "com.example/google.protobuf.StringValue"
    )
    assert proto.serializer().deserialize(proto.serializer().serialize(StringValue(value="x"))) == StringValue(
        value="x"
    )
    pair = simple_type("com.example/Pair", serialize_fn=lambda v: bytes(v), deserialize_fn=lambda b: list(b))
    assert pair.serializer().serialize([1, 2]) == b"\x01\x02" and pair.serializer().deserialize(b"\x03") == [3]
    with pytest.raises(ValueError, match="serialize_fn is missing"):
        simple_type("com.example/X", deserialize_fn=bytes)
    with pytest.raises(ValueError, match="typename can not be missing"):
        simple_type("", bytes, bytes)


def test_user_defined_type_classes() -> None:
    class Upper(TypeSerializer):
        def serialize(self, value: object) -> bytes:
            return str(value).upper().encode()

        def deserialize(self, byte: bytes) -> object:
            return byte.decode()

    class UpperType(Type):
        def __init__(self) -> None:
            super().__init__("com.example/Upper")

        def serializer(self) -> TypeSerializer:
            return Upper()

    assert UpperType().serializer().serialize("a") == b"A"
    with pytest.raises(TypeError):
        Type("com.example/abstract")  # type: ignore[abstract]


def test_value_spec_official_attributes() -> None:
    spec = ValueSpec("seen", IntType, expire_after_call=timedelta(seconds=2))
    assert (spec.name, spec.type, spec.duration, spec.after_call, spec.after_write) == (
        "seen",
        IntType,
        2000,
        True,
        False,
    )
    spec = ValueSpec("seen", IntType, expire_after_write=timedelta(hours=1))
    assert (spec.duration, spec.after_call, spec.after_write) == (3_600_000, False, True)
    spec = ValueSpec("seen", IntType)
    assert (spec.duration, spec.after_call, spec.after_write) == (0, False, False)


@pytest.mark.parametrize(
    "name, tpe, kwargs, error, match",
    [
        ("", IntType, {}, ValueError, "name can not be missing"),
        ("9lives", IntType, {}, ValueError, "invalid state name"),
        ("has space", IntType, {}, ValueError, "invalid state name"),
        ("class", IntType, {}, ValueError, "keyword"),
        ("Seen", IntType, {}, ValueError, "lower case"),
        ("seen", None, {}, ValueError, "type can not be missing"),
        ("seen", int, {}, TypeError, "not a StateFun type"),
        (
            "seen",
            IntType,
            {"expire_after_call": timedelta(1), "expire_after_write": timedelta(1)},
            ValueError,
            "not both",
        ),
    ],
)
def test_value_spec_validation(name: str, tpe: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        ValueSpec(name, tpe, **kwargs)  # type: ignore[arg-type]


def test_sdk_address_is_a_frozen_value() -> None:
    address = SdkAddress("example", "fn", "1", "example/fn")
    assert address == SdkAddress("example", "fn", "1", "example/fn")
    with pytest.raises(AttributeError):
        address.id = "2"  # type: ignore[misc]


_WRAPPED = [
    (BoolType, [True, False, 1, 0, None, "x"]),
    (IntType, [0, 1, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, True, 1.0, "1", None]),
    (LongType, [0, 1, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, False, 2.5, None]),
    (FloatType, [0.0, -0.0, 1.5, 0.1, 1e39, float("inf"), float("nan"), 3, "x"]),
    (DoubleType, [0.0, -0.0, 0.1, -1e308, float("inf"), float("-inf"), 7, True, "x"]),
    (StringType, ["", "a", "hé", "x" * 127, "x" * 128, "x" * 5000, "\ud800", b"bytes", 3, None]),
]


def _outcome(function: Any, value: object) -> Tuple[str, object]:
    try:
        result = function(value)
    except Exception as exc:  # the kind of error is what must agree
        return ("error", type(exc))
    if isinstance(result, float) and math.isnan(result):
        return ("nan", None)
    return ("ok", (type(result), result))


@pytest.mark.parametrize("tpe, values", _WRAPPED, ids=lambda x: getattr(x, "typename", ""))
def test_builtin_encoding_is_the_wrapper_message_s(tpe: Any, values: List[object]) -> None:
    """The built-in types write their usual values directly: the same bytes (or the same kind of
    error) as the wrapper message itself."""
    wrapper = tpe.wrapper
    for value in values:
        expected = _outcome(lambda v: wrapper(value=v).SerializeToString(), value)
        assert _outcome(tpe.serializer().serialize, value) == expected, value


@pytest.mark.parametrize("tpe, values", _WRAPPED, ids=lambda x: getattr(x, "typename", ""))
def test_builtin_decoding_is_the_wrapper_message_s(tpe: Any, values: List[object]) -> None:
    wrapper = tpe.wrapper
    encoded = [b"", b"\x00", b"\x0a", b"\x0a\x01", b"\x0a\x02\xc3\x28", b"\x08\x02", b"\x08\x01\x08\x00"]
    for value in values:
        try:
            encoded.append(wrapper(value=value).SerializeToString())
        except Exception:
            pass
    encoded += [data + data for data in encoded if data] + [data + b"\x10\x01" for data in encoded]
    for data in encoded:
        expected = _outcome(lambda d: wrapper.FromString(d).value, data)
        assert _outcome(tpe.serializer().deserialize, data) == expected, data
