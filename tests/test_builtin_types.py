"""Tests for statefun_wsgi.builtin_types: the official 3.x SDKs' built-in types, byte for
byte as their types.proto encodes them, known by their type names."""

from __future__ import annotations

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.descriptor import FieldDescriptor

from statefun_wsgi import (
    BooleanWrapper,
    DoubleWrapper,
    FloatWrapper,
    IntWrapper,
    LongWrapper,
    StringWrapper,
)
from statefun_wsgi.builtin_types import BUILTIN_TYPENAMES
from statefun_wsgi.context import pack_any, type_url_of

# (class, type name, the field type of its one field (number 1), a value, its encoding)
TYPES = [
    (BooleanWrapper, "io.statefun.types/bool", FieldDescriptor.TYPE_BOOL, True, b"\x08\x01"),
    (IntWrapper, "io.statefun.types/int", FieldDescriptor.TYPE_SFIXED32, -2, b"\x0d\xfe\xff\xff\xff"),
    (LongWrapper, "io.statefun.types/long", FieldDescriptor.TYPE_SFIXED64, 1, b"\x09\x01" + b"\x00" * 7),
    (FloatWrapper, "io.statefun.types/float", FieldDescriptor.TYPE_FLOAT, 1.5, b"\x0d\x00\x00\xc0\x3f"),
    (DoubleWrapper, "io.statefun.types/double", FieldDescriptor.TYPE_DOUBLE, 1.5, b"\x09" + b"\x00" * 6 + b"\xf8\x3f"),
    (StringWrapper, "io.statefun.types/string", FieldDescriptor.TYPE_STRING, "hé", b"\x0a\x03h\xc3\xa9"),
]


@pytest.mark.parametrize("cls, typename, field_type, value, encoded", TYPES, ids=[t[1] for t in TYPES])
def test_encoding_and_type_name(cls, typename, field_type, value, encoded):
    (field,) = cls.DESCRIPTOR.fields
    assert (field.number, field.name, field.type) == (1, "value", field_type)
    assert cls(value=value).SerializeToString() == encoded
    assert cls.FromString(encoded).value == value
    assert BUILTIN_TYPENAMES[cls] == typename
    assert type_url_of(cls(value=value)) == typename
    assert pack_any(cls(value=value)) == Any(type_url=typename, value=encoded)


def test_the_table_holds_the_six_types_of_the_official_sdks():
    assert sorted(BUILTIN_TYPENAMES.values()) == [
        f"io.statefun.types/{name}" for name in ("bool", "double", "float", "int", "long", "string")
    ]


def test_default_values_encode_to_nothing():
    assert all(cls().SerializeToString() == b"" for cls in BUILTIN_TYPENAMES)
