"""Which StateFun protocol a request speaks (2.x or 3.x), told from its bytes.

The 2.x and 3.x request-reply protocols share every message and field number; they
differ in how a value is encoded: a 2.x message is a ``google.protobuf.Any{type_url=1,
value=2}``, a 3.x one a ``TypedValue{typename=1, has_value=2 (bool), value=3}``. The
headers are the same. So the endpoint looks at the top-level fields of the messages
(invocation arguments) and state values of the request:

- a field 2 that is a varint (``has_value``), or any field 3: **3.x**;
- a field 2 that is length-delimited (``Any.value``): **2.x**;
- every argument holding field 1 only and no state holding a value: **undecidable**
  (in 2.x, an ``Any`` packing a message whose fields are all defaults; in 3.x only
  ``has_value=false``, which no runtime sends). Such a request is answered in the
  protocol the endpoint prefers: the first of its ``protocols`` setting. Never a guess.

The setting (``protocols=`` of :class:`~statefun_wsgi.RequestReplyHandler`,
:class:`~statefun_wsgi.StatefunMiddleware` and :class:`~statefun_wsgi.Endpoint`;
``STATEFUN_PROTOCOLS`` in Django):

==============  ================================================================
``"2.x,3.x"``   both; an undecidable request is answered in 2.x (the default)
``"3.x,2.x"``   both; an undecidable request is answered in 3.x
``"2.x"``       2.x only: a 3.x request gets 415 (which fails the job at once)
``"3.x"``       3.x only: a 2.x request gets 415
==============  ================================================================

Usage::

    protocols = Protocols("3.x,2.x")
    codec, request = protocols.open(request_bytes)   # the parsed ToFunction and how to answer it
    detect_protocol(request_bytes)                   # "2.x", "3.x" or None (undecidable)

How it is fast: a request is parsed first in the protocol of the last request that
showed its protocol (the preferred one to begin with), and a cheap look at its first
argument confirms that protocol in the usual case; otherwise the other protocol is tried
the same way, and only when neither confirms itself are the bytes walked. That memory is
a hint for speed (one runtime per endpoint parses each request once); it never decides
how a request is answered: the bytes do, or, undecidable, the setting.
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, NamedTuple, Optional, Tuple, Union

from . import _protocol2, _protocol3
from ._codec import Codec
from .errors import ConfigurationError, MalformedRequestError, ProtocolMismatchError

__all__ = [
    "DEFAULT_PROTOCOLS",
    "PROTOCOL_2X",
    "PROTOCOL_3X",
    "BatchTarget",
    "Protocols",
    "batch_target",
    "detect_protocol",
    "parse_protocols",
]

PROTOCOL_2X = "2.x"
PROTOCOL_3X = "3.x"
#: Both protocols; an undecidable request is answered in 2.x.
DEFAULT_PROTOCOLS = "2.x,3.x"

_CODECS: Dict[str, Codec] = {PROTOCOL_2X: _protocol2.CODEC, PROTOCOL_3X: _protocol3.CODEC}

ProtocolsSetting = Union[str, Iterable[str]]


def parse_protocols(setting: ProtocolsSetting) -> Tuple[str, ...]:
    """``"2.x,3.x"`` (or ``["2.x", "3.x"]``) -> ``("2.x", "3.x")``; ConfigurationError otherwise."""
    if isinstance(setting, str):
        versions = tuple(part.strip() for part in setting.split(","))
    else:
        try:
            versions = tuple(setting)
        except TypeError:
            versions = ()
    if not (1 <= len(versions) <= 2 and len(set(versions)) == len(versions) and set(versions) <= set(_CODECS)):
        raise ConfigurationError(
            f"protocols must be '2.x', '3.x', '2.x,3.x' or '3.x,2.x' (both: the first answers a request "
            f"whose bytes cannot tell), got {setting!r}",
            setting="protocols",
        )
    return versions


class Protocols:
    """The protocols an endpoint serves, in order of preference. See the module docstring."""

    __slots__ = ("versions", "first", "hint", "_codecs")

    def __init__(self, setting: ProtocolsSetting = DEFAULT_PROTOCOLS) -> None:
        self.versions = parse_protocols(setting)
        self._codecs = {version: _CODECS[version] for version in self.versions}
        #: The codec of the preferred protocol: it answers an undecidable request.
        self.first = _CODECS[self.versions[0]]
        #: The codec a request is parsed with first: the last one a request proved (a hint
        #: for speed; a plain attribute, so threads may overwrite it freely).
        self.hint = self.first

    @property
    def setting(self) -> str:
        """The setting, written out (``"2.x,3.x"``)."""
        return ",".join(self.versions)

    def open(self, request_bytes: bytes) -> Tuple[Codec, object]:
        """The codec that answers ``request_bytes``, and the request parsed by it.

        Raises MalformedRequestError for a body that is no request, and
        ProtocolMismatchError for a request of a protocol not served. (The handler does
        the same with :attr:`hint` and :meth:`resolve`, reusing what it reads anyway.)"""
        codec = self.hint
        try:
            request = codec.from_string(request_bytes)
        except Exception:
            return self.resolve(request_bytes, codec, None)
        invocations = request.invocation.invocations  # type: ignore[attr-defined]
        if invocations and codec.proves(invocations[0].argument):
            return codec, request
        return self.resolve(request_bytes, codec, request)

    def resolve(self, request_bytes: bytes, tried: Codec, parsed: Optional[object]) -> Tuple[Codec, object]:
        """The codec and parsed request for a request that ``tried`` did not prove its own;
        ``parsed`` is what ``tried`` parsed (``None``: it could not).

        The other protocol served is tried next (its parse and its cheap proof); only when
        neither proves itself are the bytes walked (:func:`detect_protocol`). An undecidable
        request goes to the preferred protocol (:attr:`first`)."""
        for codec in self._codecs.values() if _may_prove(parsed) else ():
            if codec is tried:
                continue
            try:
                request = codec.parse(request_bytes)
            except MalformedRequestError:
                continue
            invocations = request.invocation.invocations  # type: ignore[attr-defined]
            if invocations and codec.proves(invocations[0].argument):
                self.hint = codec
                return codec, request
        version = detect_protocol(request_bytes)
        if version is not None and version == tried.version and parsed is None:
            parsed = tried.parse(request_bytes)  # the usual view failed: the codec's own fallback
        if version is None:  # undecidable: the setting says
            if tried is self.first and parsed is not None:
                return tried, parsed
            return self.first, self.first.parse(request_bytes)  # (raises its MalformedRequestError)
        found = self._codecs.get(version)
        if found is None:
            raise ProtocolMismatchError(
                f"the request is a StateFun {version} one, but this endpoint serves {self.setting} only "
                f"(the protocols setting; STATEFUN_PROTOCOLS in Django): add {version} to it, or point "
                f"the {version} runtime at an endpoint that serves {version}"
            )
        self.hint = found
        if found is tried and parsed is not None:
            return found, parsed
        return found, found.parse(request_bytes)

    def __repr__(self) -> str:
        return f"Protocols({self.setting!r})"


# -- the bytes walk ------------------------------------------------------------------


class _Truncated(Exception):
    pass


def _may_prove(parsed: Optional[object]) -> bool:
    """Whether another codec's parse could prove what ``parsed`` (the tried codec's parse,
    ``None`` if it failed) did not. Its first argument is empty, or there is none: then it
    proves nothing in either protocol, and parsing a large batch a second time would hold
    it twice in memory (a 2 MiB batch of empty invocations took twice the peak RSS), so
    the bytes are walked instead."""
    if parsed is None:
        return True
    invocations = parsed.invocation.invocations  # type: ignore[attr-defined]
    return bool(invocations) and invocations[0].argument.ByteSize() > 0


def _varint(data: bytes, position: int, end: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        if position >= end or shift > 63:
            raise _Truncated
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def _fields(data: bytes, start: int, end: int) -> Iterator[Tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field in ``data[start:end]``; for a
    length-delimited field, start and end bound its payload."""
    position = start
    while position < end:
        key, position = _varint(data, position, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, after = _varint(data, position, end)
        elif wire_type == 1:
            after = position + 8
        elif wire_type == 2:
            size, position = _varint(data, position, end)
            after = position + size
        elif wire_type == 5:
            after = position + 4
        else:  # groups: in neither protocol
            raise _Truncated
        if after > end:
            raise _Truncated
        yield number, wire_type, position, after
        position = after


def _value_verdict(data: bytes, start: int, end: int) -> Optional[str]:
    """The protocol a message argument or state value (an Any or a TypedValue) shows, if any."""
    for number, wire_type, _, _ in _fields(data, start, end):
        if number == 3 or (number == 2 and wire_type == 0):
            return PROTOCOL_3X
        if number == 2 and wire_type == 2:
            return PROTOCOL_2X
    return None


def detect_protocol(request_bytes: Union[bytes, bytearray, memoryview]) -> Optional[str]:
    """``"2.x"`` or ``"3.x"`` as the request's bytes show it, ``None`` when they cannot tell
    (or are no request). Every argument and state value is looked at until one tells."""
    data = bytes(request_bytes)
    try:
        for number, wire_type, start, end in _fields(data, 0, len(data)):
            if number != 100 or wire_type != 2:
                continue
            for field, kind, begin, finish in _fields(data, start, end):  # the InvocationBatchRequest
                if kind != 2 or field not in (2, 3):
                    continue
                # a state (value: field 2) or an invocation (argument: field 2)
                for inner, inner_kind, value_start, value_end in _fields(data, begin, finish):
                    if inner == 2 and inner_kind == 2:
                        verdict = _value_verdict(data, value_start, value_end)
                        if verdict is not None:
                            return verdict
    except _Truncated:
        return None
    return None


class BatchTarget(NamedTuple):
    """What :func:`batch_target` reads off a request: the address and the batch's size."""

    namespace: str
    type: str
    id: str
    invocations: int

    @property
    def typename(self) -> str:
        """``"namespace/type"``, the function type."""
        return f"{self.namespace}/{self.type}"


def batch_target(request_bytes: Union[bytes, bytearray, memoryview]) -> Optional[BatchTarget]:
    """The address a request's batch is for and how many invocations it holds, read from
    its bytes in either protocol (the two share these fields), or ``None`` when they hold
    no batch. For log lines and metrics about a failed request, where the handler's own
    parse did not get that far or did not say::

        batch_target(body)   # BatchTarget(namespace='example', type='greeter', id='alice', invocations=3)
    """
    data = bytes(request_bytes)
    batch: Optional[Tuple[int, int]] = None
    try:
        for number, wire_type, start, end in _fields(data, 0, len(data)):
            if number == 100 and wire_type == 2:
                batch = (start, end)
        if batch is None:
            return None
        address = ["", "", ""]
        invocations = 0
        for field, kind, begin, finish in _fields(data, *batch):
            if kind != 2:
                continue
            if field == 3:
                invocations += 1
            elif field == 1:  # the target Address: namespace (1), type (2), id (3)
                for inner, inner_kind, value_start, value_end in _fields(data, begin, finish):
                    if inner_kind == 2 and 1 <= inner <= 3:
                        address[inner - 1] = data[value_start:value_end].decode("utf-8", "replace")
    except _Truncated:
        return None
    return BatchTarget(address[0], address[1], address[2], invocations)
