"""Tests for statefun_wsgi.local.records: the JSON forms of messages that the CLI prints and
takes (``--send``, the ingress), for the StateFun 3.x built-in types and types unknown here."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf.any_pb2 import Any
from google.protobuf.wrappers_pb2 import StringValue

from statefun_wsgi.local.records import any_to_json, json_to_any
from statefun_wsgi.v3 import BoolType, DoubleType, IntType, LongType, StringType, make_json_type


@pytest.mark.parametrize("tpe, value", [
    (StringType, "alice"), (StringType, ""), (IntType, -7), (IntType, 0), (LongType, 2**40), (BoolType, True),
    (DoubleType, 1.5),
], ids=lambda x: getattr(x, "typename", repr(x)))
def test_builtin_types_take_and_give_their_value(tpe, value) -> None:  # type: ignore[no-untyped-def]
    document = {"@type": tpe.typename, "value": value}
    argument = json_to_any(json.loads(json.dumps(document)))
    assert argument.type_url == tpe.typename
    assert argument.value == tpe.serializer().serialize(value)  # the official SDK's bytes
    assert any_to_json(argument) == document


def test_a_builtin_type_name_over_other_bytes_shows_the_bytes() -> None:
    argument = Any(type_url="io.statefun.types/string", value=b"hello")  # not a StringWrapper's encoding
    assert any_to_json(argument) == {"@type": "io.statefun.types/string", "value_base64": "aGVsbG8="}


def test_a_type_unknown_here_round_trips_as_base64() -> None:
    point = make_json_type("example/point")
    body = point.serializer().serialize({"x": 1})
    document = {"@type": "example/point", "value_base64": base64.b64encode(body).decode()}
    argument = json_to_any(document)
    assert (argument.type_url, argument.value) == ("example/point", body)
    assert any_to_json(argument) == document


def test_protobuf_messages_keep_their_json_form() -> None:
    argument = json_to_any({"@type": "google.protobuf.StringValue", "value": "x"})
    assert argument.type_url == "type.googleapis.com/google.protobuf.StringValue"
    assert StringValue.FromString(argument.value).value == "x"


@pytest.mark.parametrize("document, fragment", [
    ({"@type": "io.statefun.types/int", "value": "z"}, "the JSON does not fit io.statefun.types/int"),
    ({"@type": "io.statefun.types/int", "valu": 1}, 'one field, "value"'),
    ({"@type": "example/point", "value_base64": "!!"}, "value_base64 of a 'example/point' message is not base64"),
    ({"@type": "example/point", "x": 1}, "message type 'point' is not known here"),
])
def test_what_does_not_fit_is_one_line(document: dict, fragment: str) -> None:
    with pytest.raises(ValueError) as raised:
        json_to_any(document)
    assert fragment in str(raised.value) and "\n" not in str(raised.value)
