"""The reply (``FromFunction``) written straight in protobuf's wire format.

A batch's reply is a handful of small messages nested three deep. Building it as
protobuf objects costs a Python-to-C call and a field lookup by name for every field;
writing the bytes as they are produced costs a few concatenations. The output is the
same, byte for byte, as ``FromFunction.SerializeToString()`` of the equivalent message
of ``request_reply.proto`` (fields in field-number order, proto3 defaults left out,
message fields written even when empty), which ``tests/test_wire.py`` checks against
the generated code.

Usage::

    target = typename_fields("example/greeter") + string_field(ADDRESS_ID, b"alice")
    argument = string_field(ANY_TYPE_URL, b"type.googleapis.com/example.Greeting") + string_field(ANY_VALUE, value)
    pieces = [outgoing_message(target, argument)]
    append_state_mutation(pieces, "seen_count", seen_count_any_bytes)   # None: delete it
    reply = from_function(pieces)

Field tags are pre-encoded ``bytes`` (field number << 3 | wire type 2); the numbers are
those of ``request_reply.proto``.
"""

from __future__ import annotations

import functools

from .functions import split_typename

# Tags (all length-delimited, wire type 2, except the two varints marked).
ADDRESS_NAMESPACE, ADDRESS_TYPE, ADDRESS_ID = b"\x0a", b"\x12", b"\x1a"
ANY_TYPE_URL, ANY_VALUE = b"\x0a", b"\x12"
MUTATION_MODIFY = b"\x08\x01"  # mutation_type (1, varint) = MODIFY; DELETE is 0, the default: left out
MUTATION_NAME, MUTATION_VALUE = b"\x12", b"\x1a"
OUTGOING_TARGET, OUTGOING_ARGUMENT = b"\x0a", b"\x12"
DELAYED_DELAY = b"\x08"  # delay_in_ms (1, varint)
DELAYED_TARGET, DELAYED_ARGUMENT = b"\x12", b"\x1a"
EGRESS_ARGUMENT = b"\x1a"  # after egress_namespace (1) and egress_type (2): see typename_fields
STATE_MUTATIONS, OUTGOING_MESSAGES, DELAYED_INVOCATIONS, OUTGOING_EGRESSES = b"\x0a", b"\x12", b"\x1a", b"\x22"
INVOCATION_RESULT = b"\xa2\x06"  # FromFunction field 100

#: SMALL_VARINTS[n] is varint(n) for n < 128: indexed inline where a call would cost more.
SMALL_VARINTS = [bytes((n,)) for n in range(128)]

def varint(value: int) -> bytes:
    """``value`` (not negative) as a base-128 varint."""
    if value < 0x80:
        return SMALL_VARINTS[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def string_field(tag: bytes, payload: bytes) -> bytes:
    """A proto3 string or bytes field: nothing when empty (the default)."""
    return tag + varint(len(payload)) + payload if payload else b""


def utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8; a ``ValueError`` naming ``what`` if it cannot be (a lone surrogate)."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} {text!r} is not valid Unicode: {exc.reason}") from None


@functools.lru_cache(maxsize=4096)
def typename_fields(typename: str) -> bytes:
    """Fields 1 and 2 for ``"namespace/name"`` (validated): the namespace and type of an
    ``Address``, and equally the egress namespace and type of an ``EgressMessage``."""
    namespace, name = split_typename(typename)
    return string_field(ADDRESS_NAMESPACE, utf8(namespace, "the namespace")) + string_field(
        ADDRESS_TYPE, utf8(name, "the type")
    )


def outgoing_message(target: bytes, argument: bytes) -> bytes:
    """An ``InvocationResponse.outgoing_messages`` entry (encoded ``Address`` and ``Any``)."""
    size = len(target)
    body = OUTGOING_TARGET + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + target
    size = len(argument)
    body += OUTGOING_ARGUMENT + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + argument
    size = len(body)
    return OUTGOING_MESSAGES + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + body


def delayed_invocation(delay_in_ms: int, target: bytes, argument: bytes) -> bytes:
    """An ``InvocationResponse.delayed_invocations`` entry (``delay_in_ms`` not negative)."""
    body = DELAYED_TARGET + varint(len(target)) + target + DELAYED_ARGUMENT + varint(len(argument)) + argument
    if delay_in_ms:
        body = DELAYED_DELAY + varint(delay_in_ms) + body
    return DELAYED_INVOCATIONS + varint(len(body)) + body


def egress_message(prefix: bytes, argument: bytes) -> bytes:
    """An ``InvocationResponse.outgoing_egresses`` entry (``prefix`` from :func:`typename_fields`)."""
    size = len(argument)
    body = prefix + EGRESS_ARGUMENT + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + argument
    size = len(body)
    return OUTGOING_EGRESSES + (SMALL_VARINTS[size] if size < 0x80 else varint(size)) + body


@functools.lru_cache(maxsize=4096)
def _mutation_name(name: str) -> bytes:
    return string_field(MUTATION_NAME, utf8(name, "the state name"))


def append_state_mutation(pieces: list[bytes | bytearray], name: str, value: bytes | None) -> None:
    """Append a ``state_mutations`` entry to ``pieces``: MODIFY to ``value`` (a serialized
    ``Any``), or DELETE for ``None``. The value is appended as it is, not copied."""
    name_field = _mutation_name(name)
    if value is None:
        size = len(name_field)
        pieces += (STATE_MUTATIONS, SMALL_VARINTS[size] if size < 0x80 else varint(size), name_field)
        return
    size = len(value)
    if not size:  # the protocol declares state_value as bytes: empty is left out
        head = MUTATION_MODIFY + name_field
    else:
        head = MUTATION_MODIFY + name_field + MUTATION_VALUE + (SMALL_VARINTS[size] if size < 0x80 else varint(size))
    size += len(head)
    pieces += (STATE_MUTATIONS, SMALL_VARINTS[size] if size < 0x80 else varint(size), head, value)


def from_function(pieces: list[bytes | bytearray]) -> bytes:
    """A ``FromFunction`` whose ``invocation_result`` holds ``pieces`` (encoded fields, in
    field-number order), joined in one copy."""
    size = sum(map(len, pieces))
    pieces[0:0] = (INVOCATION_RESULT, SMALL_VARINTS[size] if size < 0x80 else varint(size))
    return b"".join(pieces)
