"""Read, write and check the ``module.yaml`` that configures remote functions on
the StateFun runtime: formats "1.0" and "2.0", as StateFun 2.2 reads them, and the
StateFun 3.x formats as 3.3 reads them (``kind:`` documents, ``version: "3.0"``).

Usage::

    spec = load_module_yaml("deploy/module.yaml")
    spec.functions["example/greeter"].states        # (StateSpec('seen_count', ...),)
    print(generate_module_yaml(functions, endpoint="http://app:9000/statefun"))
    for problem in check_module_yaml(spec, functions):
        print(problem)

The loader accepts what StateFun 2.2.2 accepts and refuses what it refuses, both when
it loads the file and as a job starts: its YAML typing (Jackson over SnakeYAML, where a
quoted ``"2.0"`` is a string and an unquoted ``2.0`` is not), durations as strings in
Flink 1.11's units (``500ms``, ``2min``, ``µs``: not ``us``, not a bare YAML ``500``),
``kind: http`` on every function, a ``timeout`` no shorter than the connect, read and
write timeouts (10 s each by default), a state TTL of 1 ms or more. A file it refuses
raises :class:`ModuleYamlError`, whose one-line message names the file, the entry (with
the function type) and the key. tests/module_yaml_cases.py lists the cases, each checked
on the real 2.2.2 loader by tests/e2e/test_module_yaml_flink.py.

A 3.x file (``ModuleSpec.protocol == "3.x"``) routes function types, or whole namespaces
(``example/*``, resolved per type with :meth:`ModuleSpec.function`), to an endpoint with a
transport (``io.statefun.transports.v1/async``, the default, or ``.../okhttp``) and its
timeouts; it names no states::

    spec = load_module_yaml("deploy/module-3x.yaml")
    spec.function("example/greeter").transport      # 'io.statefun.transports.v1/async'
    print(generate_module_yaml(functions, endpoint="http://app:8000/statefun", protocol="3.x"))

A 3.x file is read as StateFun 3.3.0 reads it when a job starts: its component binders (type
names split at every '/'), its Jackson 2.12 (``1_000`` and ``0x10`` are integers, a quoted or
float ``maxNumBatchRequests`` is one), each transport's client for the URL (the async transport
needs a host name and has no unix sockets), each Kafka source and sink (an address and a group,
maybe in ``properties``). tests/module_yaml3_cases.py lists the cases, each checked on the real
3.3.0 loader by tests/e2e/test_flink3_module_yaml.py.
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Pattern, Tuple, Union

import yaml

from .errors import ConfigurationError
from .functions import StatefulFunctions

__all__ = [
    "EgressSpec",
    "FunctionSpec",
    "IngressSpec",
    "ModuleSpec",
    "ModuleYamlError",
    "ModuleYamlProblem",
    "StateSpec",
    "check_module_yaml",
    "default_protocol",
    "generate_module_yaml",
    "load_module_yaml",
    "parse_duration",
]

DEFAULT_MAX_BATCH = 1000
DEFAULT_TIMEOUT = timedelta(minutes=1)
DEFAULT_IO_TIMEOUT = timedelta(seconds=10)
EXPIRE_MODES = ("after-invoke", "after-write")

_NANOS = {"d": 86_400 * 10**9, "h": 3_600 * 10**9, "min": 60 * 10**9, "s": 10**9, "ms": 10**6, "µs": 10**3, "ns": 1}
# Flink 1.11's TimeUtils labels for each unit, compared after lower-casing (Locale.US).
_UNIT_LABELS = {
    "d": ("d", "day", "days"),
    "h": ("h", "hour", "hours"),
    "min": ("min", "minute", "minutes"),
    "s": ("s", "sec", "secs", "second", "seconds"),
    "ms": ("ms", "milli", "millis", "millisecond", "milliseconds"),
    "µs": ("µs", "micro", "micros", "microsecond", "microseconds"),
    "ns": ("ns", "nano", "nanos", "nanosecond", "nanoseconds"),
}
_LABEL_NANOS = {label: _NANOS[unit] for unit, labels in _UNIT_LABELS.items() for label in labels}
_LONG_MAX = 2**63 - 1
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
# What the runtime's OkHttp client takes as a timeout: whole milliseconds up to an int.
_OKHTTP_MAX_MILLIS = _INT_MAX


class ModuleYamlError(ConfigurationError):
    """A ``module.yaml`` that the runtime would reject."""


def _java_trim(text: str) -> str:
    """``String.trim()``: strips every character up to U+0020, nothing else."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _parse_nanos(text: object) -> int:
    """Flink 1.11's ``TimeUtils.parseDuration`` (the runtime reads every duration with it), in
    nanoseconds; raises ValueError with what is wrong."""
    if isinstance(text, int) and not isinstance(text, bool):
        hint = f": write it with a unit, like '{text}ms'" if text >= 0 else ""
        raise ValueError(f"{text!r} is a YAML integer, and the runtime reads durations as strings "
                         f"(\"not a string\"){hint}")
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is {_yaml_kind(text)}, not a duration like '2min', '10s' or '500ms'")
    trimmed = _java_trim(text)
    if not trimmed:
        raise ValueError(f"{text!r} is empty, not a duration like '2min', '10s' or '500ms'")
    digits = 0
    while digits < len(trimmed) and "0" <= trimmed[digits] <= "9":
        digits += 1
    if not digits:
        raise ValueError(f"{text!r} does not start with a number (a duration is like '2min', '10s' or '500ms')")
    value = int(trimmed[:digits])
    if value > _LONG_MAX:
        raise ValueError(f"{text!r}: {trimmed[:digits]} does not fit in 64 bits")
    label = _java_trim(trimmed[digits:]).lower()
    if not label:
        return value * 10**6  # no unit: milliseconds
    if label not in _LABEL_NANOS:
        known = "; ".join(", ".join(labels) for labels in _UNIT_LABELS.values())
        hint = " (Flink 1.11 spells microseconds 'µs' or 'micros', not 'us')" if label == "us" else ""
        raise ValueError(f"{text!r} has an unknown time unit {label!r}{hint}; the units are: {known}")
    nanos = value * _LABEL_NANOS[label]
    if nanos // 10**9 > _LONG_MAX:  # java.time.Duration holds its seconds in a long
        raise ValueError(f"{text!r} is too long for a java.time.Duration (long overflow)")
    return nanos


def _to_timedelta(nanos: int) -> timedelta:
    """``nanos`` floored to whole microseconds; what is past ``timedelta.max`` reads as it."""
    micros = nanos // 1000
    return timedelta.max if micros >= timedelta.max // timedelta(microseconds=1) else timedelta(microseconds=micros)


def parse_duration(text: str) -> timedelta:
    """Parse a duration as the runtime does (Flink 1.11's ``TimeUtils``): a whole number and an
    optional unit, ``"2min"``, ``"10 s"``, ``"60000millisecond"``, ``"500"`` (milliseconds).

    The units are ``d``, ``h``, ``min``, ``s``, ``ms``, ``µs`` and ``ns``, with their
    long forms (``day``/``days``, ``hour``, ``minute``, ``sec``/``second``, ``milli``,
    ``micro``, ``nano``, each with a plural), in any case. ``us`` is not one; nor is a number
    that is not a string (a YAML ``500``): the runtime refuses both. Nanoseconds are floored to
    microseconds, and lengths past ``timedelta.max`` read as it.
    """
    return _to_timedelta(_parse_nanos(text))


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of ``value`` the runtime reads."""
    micros = value // timedelta(microseconds=1)
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000),
                       ("ms", 1000)):
        if micros and micros % size == 0:
            return f"{micros // size}{unit}"
    return f"{micros}µs"


@dataclass(frozen=True)
class StateSpec:
    """A registered state. ``expire_after`` ``None`` means it never expires."""

    name: str
    expire_after: Optional[timedelta] = None
    expire_mode: str = "after-invoke"


@dataclass(frozen=True)
class FunctionSpec:
    """One ``function`` entry: where it is served and what the runtime keeps for it.

    ``max_batch_size`` is ``maxNumBatchRequests`` as written (default 1000): any integer
    the runtime takes, where 0 or a negative number means no limit.

    ``timeout`` bounds each attempt's call and the retries of a batch; the
    connect, read and write timeouts bound each I/O step, and none of them may be longer
    than ``timeout`` (the runtime refuses the file). The runtime's HTTP client (OkHttp)
    counts timeouts in whole milliseconds, where a timeout under 1 ms is none at all.
    """

    typename: str
    endpoint: str
    states: Tuple[StateSpec, ...] = ()
    max_batch_size: int = DEFAULT_MAX_BATCH
    timeout: timedelta = DEFAULT_TIMEOUT
    connect_timeout: timedelta = DEFAULT_IO_TIMEOUT
    read_timeout: timedelta = DEFAULT_IO_TIMEOUT
    write_timeout: timedelta = DEFAULT_IO_TIMEOUT
    #: "2.x" (format 1.0/2.0) or "3.x" (``kind:`` documents, ``version: "3.0"``)
    protocol: str = "2.x"
    #: 3.x only: ``io.statefun.transports.v1/okhttp`` or ``io.statefun.transports.v1/async``
    transport: str = ""
    #: the async transport's ``pool_ttl``, ``pool_size`` and ``payload_max_bytes``
    pool_ttl: Optional[timedelta] = None
    pool_size: Optional[int] = None
    payload_max_bytes: Optional[int] = None

    def for_type(self, typename: str) -> FunctionSpec:
        """The spec of ``typename`` when this one is a 3.x ``ns/*`` endpoint (the URL is its
        ``urlPathTemplate`` with ``{function.name}`` replaced); itself otherwise."""
        if not self.typename.endswith("/*"):
            return self
        name = typename.rpartition("/")[2]
        return replace(self, typename=typename, endpoint=self.endpoint.replace("{function.name}", name))

    @property
    def state_names(self) -> Tuple[str, ...]:
        return tuple(state.name for state in self.states)


@dataclass(frozen=True)
class IngressSpec:
    id: str
    type: str
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EgressSpec:
    id: str
    type: str
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModuleSpec:
    """A parsed ``module.yaml``.

    ``notes`` lists what the runtime accepts but ignores (a format 1.0 state that is not a
    string, an ``expireMode`` without ``expireAfter``), one line each, naming the file and entry.
    """

    version: str
    functions: Dict[str, FunctionSpec]
    ingresses: Tuple[IngressSpec, ...] = ()
    egresses: Tuple[EgressSpec, ...] = ()
    source: str = "<module.yaml>"
    notes: Tuple[str, ...] = ()

    @property
    def protocol(self) -> str:
        """``"3.x"`` for the formats of StateFun 3.x (``kind:`` documents, ``version: "3.0"``)."""
        return "3.x" if self.version not in ("1.0", "2.0") else "2.x"

    def function(self, typename: str) -> Optional[FunctionSpec]:
        """The spec that routes ``typename``: its own entry, else its namespace's ``ns/*``
        endpoint (3.x), resolved for it; None when nothing routes it."""
        spec = self.functions.get(typename)
        if spec is None:
            spec = self.functions.get(f"{typename.rpartition('/')[0]}/*")
        return None if spec is None else spec.for_type(typename)


# -- YAML as the runtime reads it ---------------------------------------------------------
#
# The runtime parses module.yaml with Jackson's YAML parser over SnakeYAML 1.24 (shaded in
# flink-shaded-jackson 2.10.1), which types plain scalars differently from PyYAML: '1e5' and
# '.5' are numbers, '0x1F', '0b1', '1:30' and timestamps are strings, an integer with '_'
# fails the whole file, '.inf' and '.nan' too, an alias reads as its anchor's name, and
# mapping keys are their text. _RuntimeYamlLoader reads YAML into the same values.

_MISSING: Any = object()


class _RuntimeYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader typed as the runtime's parser types scalars (see above)."""

    yaml_implicit_resolvers: Dict[Any, List[Tuple[str, Pattern[str]]]] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):  # Jackson 2.10 reads an alias as its anchor's name
            event = self.get_event()
            return yaml.ScalarNode("tag:yaml.org,2002:str", event.anchor, event.start_mark, event.end_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(None, None, "expected a mapping", node.start_mark)
        mapping: Dict[Any, Any] = {}
        for key_node, value_node in node.value:  # no '<<' merging; a key is its text
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key is not a scalar (the runtime expects a field name)", key_node.start_mark
                )
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


_SNAKEYAML_RESOLVERS = (  # SnakeYAML 1.24's Resolver: tag, pattern, first characters, in its order
    ("bool", r"yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF", "yYnNtTfFoO"),
    ("int", (r"[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+"
             r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+"), "-+0123456789"),
    ("float", (r"[-+]?(?:\.[0-9]+|[0-9_]+(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"),
     "-+0123456789."),
    ("merge", r"<<", "<"),
    ("null", r"~|null|Null|NULL| |", ["~", "n", "N", "\0", ""]),
    ("timestamp", (r"[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
                   r"(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?"
                   r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?"), "0123456789"),
    ("value", r"=", "="),
)
for _tag, _pattern, _first in _SNAKEYAML_RESOLVERS:
    _RuntimeYamlLoader.add_implicit_resolver(
        f"tag:yaml.org,2002:{_tag}", re.compile(rf"(?:{_pattern})\Z"), list(_first)
    )

_JACKSON_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*)?\.[0-9]*(?:[eE][-+][0-9]+)?\Z")
_YAML_FALSE = {"n", "no", "off", "false"}
_YAML_TRUE = {"y", "yes", "on", "true"}


def _scalar_or_collection(loader: Any, node: Any) -> Any:
    """A node whose tag the runtime ignores: a scalar is its text."""
    if isinstance(node, yaml.ScalarNode):
        return node.value
    if isinstance(node, yaml.SequenceNode):
        return [loader.construct_object(child) for child in node.value]
    return loader.construct_mapping(node)


def _construct_float(loader: Any, node: Any) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return _scalar_or_collection(loader, node)
    text = node.value.replace("_", "")
    if ":" in text or "inf" in text.lower() or "nan" in text.lower():
        raise yaml.constructor.ConstructorError(None, None, f"malformed numeric value {node.value!r}", node.start_mark)
    try:
        return float(text)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"malformed numeric value {node.value!r}", node.start_mark
        ) from None


def _construct_int(loader: Any, node: Any) -> Any:
    """Jackson's ``_decodeNumberScalar``: optional sign and decimal digits (a leading 0 is
    not octal) make an integer; '_' in them fails; anything else is a string."""
    if not isinstance(node, yaml.ScalarNode):
        return _scalar_or_collection(loader, node)
    text = node.value
    body = text[1:] if text[:1] in ("-", "+") else text
    if body and all(ch in "0123456789_" for ch in body):
        if "_" in body:
            raise yaml.constructor.ConstructorError(
                None, None, f"the runtime cannot read the integer {text!r} (it has a '_')", node.start_mark
            )
        return int(text)
    if _JACKSON_FLOAT.match(text):
        return _construct_float(loader, node)
    return text


def _construct_bool(loader: Any, node: Any) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return _scalar_or_collection(loader, node)
    lowered = node.value.lower()
    return True if lowered in _YAML_TRUE else False if lowered in _YAML_FALSE else node.value


def _construct_null(loader: Any, node: Any) -> Any:
    return None if isinstance(node, yaml.ScalarNode) else _scalar_or_collection(loader, node)


_RuntimeYamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_RuntimeYamlLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_RuntimeYamlLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_RuntimeYamlLoader.add_constructor("tag:yaml.org,2002:null", _construct_null)
for _tag in ("map", "seq", "str", "timestamp", "merge", "value", "set", "omap", "pairs"):
    _RuntimeYamlLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _scalar_or_collection)
_RuntimeYamlLoader.add_constructor(None, _scalar_or_collection)  # any other tag: ignored, as Jackson does


def _load_yaml(text: str) -> Any:
    """The first YAML document in ``text`` as the runtime reads it (it ignores the rest)."""
    loader = _RuntimeYamlLoader(text)
    try:
        return loader.construct_document(loader.get_node()) if loader.check_node() else None
    finally:
        loader.dispose()


class _Runtime3YamlLoader(_RuntimeYamlLoader):
    """The YAML typing of StateFun 3.3 (Jackson 2.12 over SnakeYAML 1.27): as 2.2's, except that
    integers may hold '_' (``1_000``) and read ``0x``/``0b``/leading-``0`` (octal) forms."""

    yaml_constructors = dict(_RuntimeYamlLoader.yaml_constructors)


def _construct_int3(loader: Any, node: Any) -> Any:
    """Jackson 2.12's ``_decodeNumberScalar`` on what SnakeYAML resolves as an integer."""
    if not isinstance(node, yaml.ScalarNode):
        return _scalar_or_collection(loader, node)
    text = node.value
    sign = -1 if text[:1] == "-" else 1
    body = text[1:] if text[:1] in ("-", "+") else text
    digits = body.replace("_", "")
    try:
        if body[:1] == "0" and len(body) > 1:
            base = {"b": 2, "B": 2, "x": 16, "X": 16}.get(body[1], 8)
            return sign * int(digits[2:] if base != 8 else digits, base)
        if body and all(ch in "0123456789_" for ch in body):
            return sign * int(digits or "0")
    except ValueError:
        raise yaml.constructor.ConstructorError(None, None, f"malformed number {text!r}", node.start_mark) from None
    return text  # 60-based ('1:30') and the like: a string


_Runtime3YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int3)


def _load_yaml_all(text: str) -> List[Any]:
    """Every YAML document in ``text`` as the 3.x runtime reads them (``readValues``)."""
    loader = _Runtime3YamlLoader(text)
    try:
        documents = []
        while loader.check_node():
            documents.append(loader.construct_document(loader.get_node()))
        return documents
    finally:
        loader.dispose()


def _yaml_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a YAML boolean"
    if isinstance(value, int):
        return "a YAML integer"
    if isinstance(value, float):
        return "a YAML number"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, bytes):
        return "binary"
    return "a string"


def _equals_ignore_case(text: str, expected: str) -> bool:
    """Java's ``String.equalsIgnoreCase``."""
    return len(text) == len(expected) and all(
        a == b or a.upper() == b.upper() or a.lower() == b.lower() for a, b in zip(text, expected)
    )


class _Reader:
    """Walks the parsed YAML as the runtime's JSON pointers do, naming the file and entry in
    every error."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.notes: List[str] = []

    def fail(self, where: str, problem: str) -> ModuleYamlError:
        return ModuleYamlError(f"{self.source}: {where}: {problem}")

    def note(self, where: str, problem: str) -> None:
        self.notes.append(f"{self.source}: {where}: {problem}")

    @staticmethod
    def at(node: Any, *keys: str) -> Any:
        """``node.at("/a/b")``: the value, or _MISSING when a step is not a mapping holding the key."""
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return _MISSING
            node = node[key]
        return node

    def text(self, node: Any, keys: Tuple[str, ...], where: str) -> str:
        """``Selectors.textAt``: required, and a string."""
        value = self.at(node, *keys)
        if value is _MISSING:
            raise self.fail(where, f"'{keys[-1]}' is required")
        if not isinstance(value, str):
            raise self.fail(f"{where}.{keys[-1]}", f"{value!r} is {_yaml_kind(value)}, not a string")
        return value

    def optional_text(self, node: Any, key: str, where: str) -> Optional[str]:
        value = self.at(node, key)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", f"{value!r} is {_yaml_kind(value)}, not a string")
        return value

    def sequence(self, node: Any, key: str, where: str) -> List[Any]:
        """``Selectors.listAt``: absent is empty; present, it must be a list (null is not)."""
        value = self.at(node, key)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            raise self.fail(f"{where}.{key}", f"expected a list, found {_yaml_kind(value)}")
        return value

    def duration(self, node: Any, key: str, where: str) -> Optional[int]:
        """An optional duration in nanoseconds."""
        if self.at(node, key) is _MISSING:
            return None
        try:
            return _parse_nanos(self.at(node, key))
        except ValueError as exc:
            raise self.fail(f"{where}.{key}", str(exc)) from None

    def namespace_name(self, value: str, what: str, where: str) -> None:
        """``NamespaceNamePair.from``: a non-empty namespace and name around the last '/'."""
        position = value.rfind("/")
        if position <= 0 or position == len(value) - 1:
            raise self.fail(where, f"{what} {value!r} is not 'namespace/name'")


def load_module_yaml(path: Union[str, Path]) -> ModuleSpec:
    """Parse the ``module.yaml`` at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModuleYamlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ModuleYamlError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    return parse_module_yaml(text, source=str(path))


def _remote_module_spec(reader: _Reader, document: object) -> object:
    """``module.spec`` of a remote module (formats 1.0, 2.0 and 3.0), refusing what the
    runtime refuses: no ``module.meta.type``, a type other than ``remote`` (in any case),
    no ``module.spec``."""
    module_type = reader.at(document, "module", "meta", "type")
    if module_type is _MISSING:
        raise reader.fail("module.meta", "'type' is required (type: remote)")
    if not (isinstance(module_type, str) and _equals_ignore_case(module_type, "remote")):
        raise reader.fail("module.meta.type", f"expected 'remote', found {module_type!r}")
    spec = reader.at(document, "module", "spec")
    if spec is _MISSING:
        raise reader.fail("module", "'spec' is required (the runtime refuses a module without a spec)")
    return spec


def _is_v3(reader: _Reader, first: object) -> bool:
    """Whether the first document is of a StateFun 3.x file: a ``kind:`` component, or the
    legacy ``version: "3.0"`` (or "3.1", which 3.3 refuses)."""
    version = reader.at(first, "version")
    return version in ("3.0", "3.1") or (version is _MISSING and reader.at(first, "kind") is not _MISSING)


def parse_module_yaml(text: str, source: str = "<module.yaml>") -> ModuleSpec:
    """Parse ``module.yaml`` text (see :func:`load_module_yaml`), accepting what StateFun
    2.2.2 accepts and refusing, with a :class:`ModuleYamlError`, what it refuses: its
    loader's checks, and those it makes when a job starts (state TTLs, state names given
    twice, the HTTP client's timeouts). A 3.x file (a first document with ``kind:``, or
    ``version: "3.0"``) is held to StateFun 3.3.0 the same way."""
    reader = _Reader(source)
    try:
        try:
            documents, error = _load_yaml_all(text), None
        except yaml.YAMLError as exc:  # reported below if the file is a 3.x one
            documents, error = [], exc
        if _is_v3(reader, next((document for document in documents if document is not None), None)):
            return _parse_v3(reader, documents)
        document = _load_yaml(text)
        if error is not None and _is_v3(reader, document):
            raise error
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        context = getattr(exc, "context", None)
        problem += f" ({' '.join(context.split())})" if context else ""
        raise ModuleYamlError(f"{source}: not valid YAML{where}: {problem}") from None

    spec = _remote_module_spec(reader, document)
    version = reader.text(document, ("version",), "the document")
    if version not in ("1.0", "2.0"):
        raise reader.fail("version", f"expected \"1.0\" or \"2.0\", found {version!r} (StateFun 3.x: \"3.0\", "
                                     "or kind: documents)")

    functions: Dict[str, FunctionSpec] = {}
    for index, entry in enumerate(reader.sequence(spec, "functions", "module.spec")):
        function = _read_function(reader, version, entry, f"module.spec.functions[{index}]")
        if function.typename in functions:
            raise reader.fail(f"module.spec.functions[{index}]", f"function type {function.typename} appears twice")
        functions[function.typename] = function

    ingresses: List[IngressSpec] = []
    for index, entry in enumerate(reader.sequence(spec, "ingresses", "module.spec")):
        ingress = IngressSpec(*_read_io(reader, entry, "ingress", f"module.spec.ingresses[{index}]"))
        if any(ingress.id == seen.id for seen in ingresses):
            raise reader.fail(f"module.spec.ingresses[{index}]", f"ingress id {ingress.id} appears twice")
        ingresses.append(ingress)
    for index, entry in enumerate(reader.sequence(spec, "routers", "module.spec")):
        _read_router(reader, entry, f"module.spec.routers[{index}]")
    egresses: List[EgressSpec] = []
    for index, entry in enumerate(reader.sequence(spec, "egresses", "module.spec")):
        egress = EgressSpec(*_read_io(reader, entry, "egress", f"module.spec.egresses[{index}]"))
        if any(egress.id == seen.id for seen in egresses):
            raise reader.fail(f"module.spec.egresses[{index}]", f"egress id {egress.id} appears twice")
        egresses.append(egress)
    return ModuleSpec(version, functions, tuple(ingresses), tuple(egresses), source, tuple(reader.notes))


def _read_function(reader: _Reader, version: str, entry: Any, where: str) -> FunctionSpec:
    kind = reader.text(entry, ("function", "meta", "kind"), f"{where}.function.meta")
    typename = reader.text(entry, ("function", "meta", "type"), f"{where}.function.meta")
    reader.namespace_name(typename, "function type", f"{where}.function.meta.type")
    where = f"{where} ({typename})"
    if kind.upper() == "GRPC":
        raise reader.fail(f"{where}.meta.kind", "StateFun 2.2 loads 'grpc' functions but fails on their first "
                                                "message ('not yet supported'): use kind: http")
    if kind.upper() != "HTTP":
        raise reader.fail(f"{where}.meta.kind", f"expected 'http', found {kind!r}")
    spec = reader.at(entry, "function", "spec")
    where = f"{where}.spec"
    endpoint = reader.text(entry, ("function", "spec", "endpoint"), where)
    problem = _endpoint_problem(endpoint)
    if problem:
        raise reader.fail(f"{where}.endpoint", problem)

    states: List[StateSpec] = []
    for position, state in enumerate(reader.sequence(spec, "states", where)):
        state_where = f"{where}.states[{position}]"
        if version == "1.0":
            if isinstance(state, str):
                states.append(StateSpec(state))
            else:  # Selectors.textListAt keeps the strings and drops the rest
                reader.note(state_where, f"format 1.0 lists state names as strings: the runtime ignores {state!r}")
            continue
        if isinstance(state, str):
            raise reader.fail(state_where, f"format {version} lists states as mappings: write '- name: {state}'")
        name = reader.text(state, ("name",), state_where)
        expire_nanos = reader.duration(state, "expireAfter", state_where)
        if expire_nanos is None:
            if reader.at(state, "expireMode") is not _MISSING:
                reader.note(f"{state_where}.expireMode", "ignored without expireAfter (the state never expires)")
            states.append(StateSpec(name))
            continue
        mode = reader.optional_text(state, "expireMode", state_where) or "after-invoke"
        if mode not in EXPIRE_MODES:
            raise reader.fail(f"{state_where}.expireMode", f"{mode!r} is not one of {', '.join(EXPIRE_MODES)}")
        # The job gives Flink's StateTtlConfig the TTL in whole milliseconds (Duration.toMillis).
        written = reader.at(state, "expireAfter")
        if expire_nanos < 10**6:
            raise reader.fail(f"{state_where}.expireAfter",
                              f"{written!r} is under 1 ms: Flink refuses it (\"TTL is expected to be positive\")")
        if expire_nanos // 10**6 > _LONG_MAX:
            raise reader.fail(f"{state_where}.expireAfter", f"{written!r} is more milliseconds than a long holds")
        states.append(StateSpec(name, _to_timedelta(expire_nanos), mode))
    names = [state.name for state in states]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # the job fails when the function starts: "State name '...' was registered twice"
        raise reader.fail(f"{where}.states", f"state names repeated: {', '.join(repeated)}")

    max_batch = _strict_max_batch(reader, spec, where)
    return FunctionSpec(typename, endpoint, tuple(states), max_batch, *_read_timeouts(reader, spec, where))


_TIMEOUT_KEYS = ("timeout", "connectTimeout", "readTimeout", "writeTimeout")
_TIMEOUT_DEFAULTS = {"timeout": "1min", "connectTimeout": "10s", "readTimeout": "10s", "writeTimeout": "10s"}


def _strict_max_batch(reader: _Reader, spec: Any, where: str) -> int:
    """``maxNumBatchRequests`` as the 2.x formats and 3.x's v1 endpoint read it: a 32-bit
    integer (0 or negative: no limit), the default when absent."""
    max_batch = reader.at(spec, "maxNumBatchRequests")
    if max_batch is _MISSING:
        return DEFAULT_MAX_BATCH
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not _INT_MIN <= max_batch <= _INT_MAX:
        raise reader.fail(f"{where}.maxNumBatchRequests",
                          f"expected an integer (32-bit; 0 or negative for no limit), found {max_batch!r}")
    return max_batch


def _read_timeouts(reader: _Reader, spec: Any, where: str) -> Tuple[timedelta, timedelta, timedelta, timedelta]:
    """HttpFunctionSpec's checks (each > 0, none of the I/O ones longer than ``timeout``), then
    OkHttp's (whole milliseconds, at most an int of them)."""

    def shown(key: str) -> str:
        written = reader.at(spec, key)
        return f"{written!r}" if written is not _MISSING else f"({_TIMEOUT_DEFAULTS[key]} when not set)"

    nanos: Dict[str, int] = {}
    for key in _TIMEOUT_KEYS:
        value = reader.duration(spec, key, where)
        if value == 0:
            raise reader.fail(f"{where}.{key}", f"{shown(key)} is zero: the runtime refuses it "
                                                "(\"Timeout durations must be larger than 0\")")
        nanos[key] = _parse_nanos(_TIMEOUT_DEFAULTS[key]) if value is None else value
    for key in _TIMEOUT_KEYS[1:]:
        if nanos[key] > nanos["timeout"]:
            refusal = f"{key[0].upper()}{key[1:].replace('Timeout', ' timeout')} cannot be larger than request timeout"
            if reader.at(spec, "timeout") is _MISSING:
                raise reader.fail(f"{where}.{key}", f"{shown(key)} is longer than timeout {shown('timeout')}, "
                                                    f"which the runtime refuses (\"{refusal}\")")
            raise reader.fail(
                f"{where}.timeout",
                f"{shown('timeout')} is shorter than {key} {shown(key)}, which the runtime refuses (\"{refusal}\"): "
                "set connectTimeout, readTimeout and writeTimeout to at most the timeout",
            )
    for key in _TIMEOUT_KEYS:
        if nanos[key] // 10**6 > _OKHTTP_MAX_MILLIS:
            raise reader.fail(f"{where}.{key}", f"{shown(key)} is longer than the runtime's HTTP client takes "
                                                f"({_OKHTTP_MAX_MILLIS} ms, about 24.8 days: \"timeout too large\")")
    return tuple(_to_timedelta(nanos[key]) for key in _TIMEOUT_KEYS)  # type: ignore[return-value]


# java.net.URI: the ASCII characters a URI may hold as they are ('%' only before two hex digits).
_URI_ASCII = frozenset(string.ascii_letters + string.digits + "-_.!~*'();/?:@&=+$,#%[]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_ENDPOINT_SCHEMES = ("http", "https", "http+unix", "https+unix")


def _endpoint_problem(endpoint: str) -> Optional[str]:
    """Why the runtime refuses ``endpoint``, or None. Its loader takes what java.net.URI
    parses with an http, https, http+unix or https+unix scheme (in any case); as the job
    starts, its HTTP client (OkHttp's HttpUrl) must read an http(s) one, and a unix socket
    one needs a path segment ending in '.sock'."""
    scheme, colon, rest = endpoint.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        return f"{endpoint!r} has no scheme: write http://, https://, http+unix:// or https+unix://"
    if scheme.lower() not in _ENDPOINT_SCHEMES:
        return f"{endpoint!r}: the scheme {scheme!r} is not http, https, http+unix or https+unix"
    for index, char in enumerate(endpoint):
        if char in _URI_ASCII:
            if char == "%" and not re.match(r"[0-9A-Fa-f]{2}", endpoint[index + 1 : index + 3]):
                return f"{endpoint!r} is not a URI: the '%' at index {index} is not followed by two hex digits"
        elif ord(char) < 0x80 or unicodedata.category(char) in ("Cc", "Zs", "Zl", "Zp"):
            return f"{endpoint!r} is not a URI: {char!r} at index {index} must be percent-encoded"
    rest, _, fragment = rest.partition("#")
    if "#" in fragment:
        return f"{endpoint!r} is not a URI: it has two '#'"
    authority, path = "", rest
    if rest.startswith("//"):
        ends = [position for position in (rest.find("/", 2), rest.find("?", 2)) if position >= 0]
        authority, path = rest[2 : min(ends, default=len(rest))], rest[min(ends, default=len(rest)) :]
    path = path.partition("?")[0]
    if "[" in path or "]" in path:
        return f"{endpoint!r} is not a URI: '[' and ']' belong only around an IPv6 host"
    host_and_port = authority.rpartition("@")[2]
    if host_and_port.startswith("["):
        literal, bracket, after = host_and_port[1:].partition("]")
        if not bracket or not re.fullmatch(r"[0-9A-Fa-f:.]+", literal) or literal.count(":") < 2 or (
            after and not after.startswith(":")
        ):
            return f"{endpoint!r} is not a URI: {host_and_port!r} is not an IPv6 address in brackets"
        port = after[1:]
    elif "[" in authority or "]" in authority:
        return f"{endpoint!r} is not a URI: '[' and ']' belong only around an IPv6 host"
    else:
        port = host_and_port.rpartition(":")[2] if ":" in host_and_port else ""
    if scheme.lower().endswith("+unix"):
        if not rest.startswith("/") or not any(segment.endswith(".sock") for segment in path.split("/")):
            return f"{endpoint!r}: a unix socket endpoint needs a path segment ending in '.sock'"
        return None
    # OkHttp reads the authority after any number of slashes: it needs a host, and a port in 1..65535.
    okhttp_authority = re.split(r"[/\\?#]", rest.lstrip("/\\"), maxsplit=1)[0].rpartition("@")[2]
    if not okhttp_authority or okhttp_authority.startswith(":"):
        return f"{endpoint!r} has no host"
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return f"{endpoint!r}: the port {port!r} is not a number from 1 to 65535"
    return None


def _read_io(reader: _Reader, entry: Any, kind: str, where: str) -> Tuple[str, str, Mapping[str, Any]]:
    # IngressJsonEntity reads the id first, EgressJsonEntity the type.
    order = ("id", "type") if kind == "ingress" else ("type", "id")
    values = {}
    for key in order:
        values[key] = reader.text(entry, (kind, "meta", key), f"{where}.{kind}.meta")
        reader.namespace_name(values[key], f"{kind} {key}", f"{where}.{kind}.meta.{key}")
    body = reader.at(entry, kind, "spec")
    return values["id"], values["type"], dict(body) if isinstance(body, Mapping) else {}


_PROTOBUF_ROUTER = "org.apache.flink.statefun.sdk/protobuf-router"


def _read_router(reader: _Reader, entry: Any, where: str) -> None:
    """A router's fields, as RouterJsonEntity reads them (the descriptor set it names is a file
    on the runtime's classpath, which is not checked here)."""
    router_type = reader.text(entry, ("router", "meta", "type"), f"{where}.router.meta")
    if not _equals_ignore_case(router_type, _PROTOBUF_ROUTER):
        raise reader.fail(f"{where}.router.meta.type", f"expected {_PROTOBUF_ROUTER!r}, found {router_type!r}")
    for key in ("target", "descriptorSet", "messageType", "ingress"):
        reader.text(entry, ("router", "spec", key), f"{where}.router.spec")
    ingress = reader.text(entry, ("router", "spec", "ingress"), f"{where}.router.spec")
    reader.namespace_name(ingress, "ingress id", f"{where}.router.spec.ingress")


# -- StateFun 3.x formats -----------------------------------------------------------------
#
# StateFun 3.3 (JsonServiceLoader) reads every YAML document of the file. One document with a
# 'version' is the legacy single-root format, of which it takes only "3.0"; otherwise each
# document is a component {kind, spec}, bound by the extension its kind names.

ENDPOINT_KIND = "io.statefun.endpoints.v2/http"
ENDPOINT_KIND_V1 = "io.statefun.endpoints.v1/http"
OKHTTP_TRANSPORT = "io.statefun.transports.v1/okhttp"
ASYNC_TRANSPORT = "io.statefun.transports.v1/async"
KAFKA_INGRESS_KIND = "io.statefun.kafka.v1/ingress"
KAFKA_EGRESS_KIND = "io.statefun.kafka.v1/egress"
KINESIS_INGRESS_KIND = "io.statefun.kinesis.v1/ingress"
KINESIS_EGRESS_KIND = "io.statefun.kinesis.v1/egress"
#: NettyRequestReplySpec's defaults (the async transport, the default since 3.2)
ASYNC_DEFAULT_TIMEOUT = timedelta(minutes=2)
ASYNC_DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=20)
ASYNC_DEFAULT_POOL_TTL = timedelta(seconds=15)
ASYNC_DEFAULT_POOL_SIZE = 1024
ASYNC_DEFAULT_PAYLOAD_MAX_BYTES = 32 * 1048576
_LEGACY_KINDS = {  # LegacyRemoteModuleV30.LEGACY_KIND_CONVERSIONS
    "http": ENDPOINT_KIND_V1,
    "io.statefun.kafka/ingress": KAFKA_INGRESS_KIND,
    "io.statefun.kafka/egress": KAFKA_EGRESS_KIND,
    "io.statefun.kinesis/ingress": KINESIS_INGRESS_KIND,
    "io.statefun.kinesis/egress": KINESIS_EGRESS_KIND,
}
_V3_KINDS = (ENDPOINT_KIND, ENDPOINT_KIND_V1, KAFKA_INGRESS_KIND, KAFKA_EGRESS_KIND, KINESIS_INGRESS_KIND,
             KINESIS_EGRESS_KIND)


def _type_name(reader: _Reader, value: Any, what: str, where: str) -> str:
    """``TypeName.parseFrom``: the text split at '/' (Java's ``split``, which drops trailing empty
    parts) must give exactly two parts; returns them joined, as the runtime names the type
    (``example/greeter/`` is ``example/greeter``; ``/greeter`` has an empty namespace)."""
    if not isinstance(value, str):
        raise reader.fail(where, f"{value!r} is {_yaml_kind(value)}, not a string")
    parts = value.split("/")
    while len(parts) > 1 and not parts[-1]:
        parts.pop()
    if len(parts) != 2:
        raise reader.fail(where, f"{what} {value!r} is not 'namespace/name' (exactly one '/')")
    return "/".join(parts)


def _v3_duration(reader: _Reader, node: Any, key: str, where: str, *, nullable: bool = True) -> Optional[int]:
    """A 3.x duration (StateFunObjectMapper: the value's text through Flink's TimeUtils, so a
    YAML integer is milliseconds), in nanoseconds; None when absent, or null where ``nullable``
    (a constructor argument the runtime defaults; a setter, where it is not, fails on null)."""
    value = reader.at(node, key)
    if value is _MISSING:
        return None
    if value is None:
        if nullable:
            return None
        raise reader.fail(f"{where}.{key}", "null is not a duration (the runtime fails on it: leave the key out "
                                            "for the default)")
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        return _parse_nanos(text)
    except ValueError as exc:
        raise reader.fail(f"{where}.{key}", str(exc)) from None


_JAVA_INT = re.compile(r"[+-]?[0-9]+")


def _jackson_int(reader: _Reader, node: Any, key: str, where: str, *, boxed: bool, what: str = "a 32-bit integer"
                 ) -> Optional[int]:
    """An ``int`` (``boxed``: an ``Integer``) as the runtime's Jackson reads one into a spec: a YAML
    integer in range, a number truncated toward zero, a string holding an integer (trimmed; empty or
    ``"null"`` is null), null (0 for an ``int``). None when absent or null for an ``Integer``."""
    value = reader.at(node, key)
    if value is _MISSING:
        return None
    if isinstance(value, str):
        text = _java_trim(value)
        value = None if text in ("", "null") else int(text) if _JAVA_INT.fullmatch(text) else value
    if value is None:
        return None if boxed else 0
    number = value
    if isinstance(value, float) and math.isfinite(value):
        number = int(value) if _INT_MIN <= value <= _INT_MAX else value
    if isinstance(number, bool) or not isinstance(number, int) or not _INT_MIN <= number <= _INT_MAX:
        raise reader.fail(f"{where}.{key}", f"expected {what}, found {value!r}")
    return number


def _jackson_text(reader: _Reader, node: Any, key: str, where: str) -> Optional[str]:
    """A ``String`` as the runtime's Jackson reads one: any scalar's text (a YAML ``9092`` is
    ``"9092"``); None when absent. Null is refused: the runtime's setters require a value."""
    value = reader.at(node, key)
    if value is _MISSING:
        return None
    if value is None or isinstance(value, (list, Mapping, bytes)):
        raise reader.fail(f"{where}.{key}", f"expected a string, found {_yaml_kind(value)}")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_v3(reader: _Reader, documents: List[Any]) -> ModuleSpec:
    components: List[Tuple[str, Any, str]] = []  # kind, spec, where
    documents = [document for document in documents if document is not None]
    version = "kind"
    if len(documents) == 1 and reader.at(documents[0], "version") is not _MISSING:
        root = documents[0]
        version = reader.text(root, ("version",), "the document")
        if version != "3.0":
            known = "StateFun 3.3 reads version \"3.0\" or kind: documents; 2.2 reads \"1.0\" and \"2.0\""
            raise reader.fail("version", f"{version!r} is not a format StateFun 3.3 loads ({known})")
        spec = _remote_module_spec(reader, root)
        for list_key, entry_key, kind_key in (("endpoints", "endpoint", "kind"), ("ingresses", "ingress", "type"),
                                              ("egresses", "egress", "type")):
            for index, entry in enumerate(reader.sequence(spec, list_key, "module.spec")):
                where = f"module.spec.{list_key}[{index}]"
                kind = reader.text(entry, (entry_key, "meta", kind_key), f"{where}.{entry_key}.meta")
                body = reader.at(entry, entry_key, "spec")
                if entry_key != "endpoint":
                    identifier = reader.text(entry, (entry_key, "meta", "id"), f"{where}.{entry_key}.meta")
                    body = dict(body) if isinstance(body, Mapping) else {}
                    body["id"] = identifier
                kind = _LEGACY_KINDS.get(kind) or _type_name(reader, kind, "kind",
                                                             f"{where}.{entry_key}.meta.{kind_key}")
                components.append((kind, body, f"{where}.{entry_key}"))
    else:
        for index, document in enumerate(documents):
            where = f"document {index + 1}"
            if not isinstance(document, Mapping) or "kind" not in document or "spec" not in document:
                raise reader.fail(where, "a component is a mapping with 'kind' and 'spec' (the runtime refuses "
                                         "others: \"components should be a JSON object with the required fields "
                                         "[kind] and [spec]\")")
            kind = _type_name(reader, document["kind"], "kind", f"{where}.kind")
            components.append((kind, document["spec"], where))

    functions: Dict[str, FunctionSpec] = {}
    ingresses: List[IngressSpec] = []
    egresses: List[EgressSpec] = []
    for kind, spec, where in components:
        if kind not in _V3_KINDS:
            raise reader.fail(f"{where}.kind", f"StateFun 3.3 has no binder for {kind!r} (known: "
                                               f"{', '.join(_V3_KINDS)})")
        if kind in (ENDPOINT_KIND, ENDPOINT_KIND_V1):
            function = _read_endpoint_v3(reader, kind, spec, f"{where} ({kind})")
            if function.typename in functions:
                raise reader.fail(where, f"functions {function.typename} are bound twice")
            functions[function.typename] = function
            continue
        where = f"{where} ({kind})"
        if not isinstance(spec, Mapping):
            raise reader.fail(f"{where}.spec", f"expected a mapping, found {_yaml_kind(spec)}")
        if reader.at(spec, "id") in (_MISSING, None):
            raise reader.fail(f"{where}.spec", "'id' is required")
        identifier = _type_name(reader, spec["id"], "id", f"{where}.spec.id")
        where = f"{where} ({identifier}).spec"
        if kind in (KAFKA_INGRESS_KIND, KINESIS_INGRESS_KIND):
            _read_ingress_v3(reader, kind, spec, where)
            if any(identifier == seen.id for seen in ingresses):
                raise reader.fail(where, f"ingress id {identifier} appears twice")
            ingresses.append(IngressSpec(identifier, kind, dict(spec)))
        else:
            _read_egress_v3(reader, kind, spec, where)
            if any(identifier == seen.id for seen in egresses):
                raise reader.fail(where, f"egress id {identifier} appears twice")
            egresses.append(EgressSpec(identifier, kind, dict(spec)))
    return ModuleSpec(version, functions, tuple(ingresses), tuple(egresses), reader.source, tuple(reader.notes))


def _properties(reader: _Reader, spec: Mapping[str, Any], key: str, where: str) -> Dict[str, str]:
    """PropertiesJsonDeserializer: a list of one-key mappings (the first key of each is taken)."""
    value = reader.at(spec, key)
    if value is _MISSING:
        return {}
    if not isinstance(value, list):
        raise reader.fail(f"{where}.{key}", f"expected a list of 'name: value' mappings, found {_yaml_kind(value)}")
    properties = {}
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping) or not entry:
            raise reader.fail(f"{where}.{key}[{index}]", f"expected a 'name: value' mapping, found {entry!r}")
        name, item = next(iter(entry.items()))
        properties[name] = item if isinstance(item, str) else json.dumps(item)
    return properties


_STARTUP_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\.\d{3} [+-](\d{2})(\d{2})")


def _startup_position(reader: _Reader, spec: Mapping[str, Any], where: str, types: Tuple[str, ...]) -> None:
    """``startupPosition``: a mapping whose ``type`` is one of ``types``; ``date`` needs a ``date``
    in ``yyyy-MM-dd HH:mm:ss.SSS Z``, ``specific-offsets`` its ``offsets``."""
    position = reader.at(spec, "startupPosition")
    if position is _MISSING:
        return
    where = f"{where}.startupPosition"
    if not isinstance(position, Mapping):
        raise reader.fail(where, f"expected a mapping with a 'type', found {_yaml_kind(position)}")
    kind = reader.at(position, "type")
    if kind is _MISSING:
        raise reader.fail(where, "'type' is required")
    if str(kind) not in types:
        raise reader.fail(f"{where}.type", f"expected one of {', '.join(types)}, found {kind!r}")
    if kind == "date":
        date = reader.at(position, "date")
        match = _STARTUP_DATE.fullmatch(str(date)) if date is not _MISSING else None
        if not match or not (1 <= int(match[2]) <= 12 and 1 <= int(match[3]) <= 31 and int(match[4]) <= 23
                             and int(match[5]) <= 59 and int(match[6]) <= 59 and int(match[8]) <= 59):
            raise reader.fail(f"{where}.date", f"{date if date is not _MISSING else None!r} is not a date like "
                                               "'2020-02-01 04:15:00.000 +0000' (yyyy-MM-dd HH:mm:ss.SSS Z)")
    elif kind == "specific-offsets":
        offsets = reader.at(position, "offsets")
        if not isinstance(offsets, list):
            raise reader.fail(where, "'offsets' is required: a list of '<topic>/<partition>: <offset>'")
        for index, entry in enumerate(offsets):
            if not isinstance(entry, Mapping) or not entry:
                raise reader.fail(f"{where}.offsets[{index}]", f"expected '<topic>/<partition>: <offset>', found "
                                                               f"{entry!r}")
            partition = str(next(iter(entry)))
            topic, slash, number = partition.rpartition("/")
            if not topic or not slash or not re.fullmatch(r"\+?[0-9]+", number) or int(number) > _INT_MAX:
                raise reader.fail(f"{where}.offsets[{index}]", f"{partition!r} is not '<topic>/<partition>' with "
                                                               f"a partition from 0 to {_INT_MAX}")


def _read_ingress_v3(reader: _Reader, kind: str, spec: Mapping[str, Any], where: str) -> None:
    """RoutableKafkaIngressSpec / RoutableKinesisIngressSpec, and what the Kafka consumer needs:
    an address and a consumer group (their keys, or ``bootstrap.servers`` and ``group.id`` in
    ``properties``), at least one route, each with a topic (stream), a string ``valueType`` and
    ``targets``, function types."""
    key = "topics" if kind == KAFKA_INGRESS_KIND else "streams"
    if kind == KAFKA_INGRESS_KIND:
        properties = _properties(reader, spec, "properties", where)
        if _jackson_text(reader, spec, "address", where) is None and "bootstrap.servers" not in properties:
            raise reader.fail(where, "'address' is required (or bootstrap.servers in properties): \"Missing "
                                     "setting for Kafka address\"")
        if _jackson_text(reader, spec, "consumerGroupId", where) is None and "group.id" not in properties:
            raise reader.fail(where, "'consumerGroupId' is required (or group.id in properties): \"Missing "
                                     "setting for consumer group id\"")
        reset = reader.at(spec, "autoOffsetResetPosition")
        if reset is not _MISSING and str(reset).upper() not in ("LATEST", "EARLIEST"):
            raise reader.fail(f"{where}.autoOffsetResetPosition", f"expected one of earliest, latest, found "
                                                                  f"{reset!r}")
        _startup_position(reader, spec, where, ("group-offsets", "earliest", "latest", "specific-offsets", "date"))
    else:
        _properties(reader, spec, "clientConfigProperties", where)
        _startup_position(reader, spec, where, ("earliest", "latest", "date"))
    routes = reader.at(spec, key)
    if routes is _MISSING or routes == []:
        raise reader.fail(where, f"'{key}' is required: a list of at least one route (\"Routing config for "
                                 "routable ... ingress cannot be empty\")")
    if not isinstance(routes, list):
        raise reader.fail(f"{where}.{key}", f"expected a list of routes, found {_yaml_kind(routes)}")
    for index, route in enumerate(routes):
        route_where = f"{where}.{key}[{index}]"
        if not isinstance(route, Mapping):
            raise reader.fail(route_where, f"expected a mapping, found {_yaml_kind(route)}")
        if key[:-1] not in route:
            raise reader.fail(route_where, f"'{key[:-1]}' is required")
        reader.text(route, ("valueType",), route_where)
        targets = reader.at(route, "targets")
        if targets is _MISSING:
            raise reader.fail(route_where, "'targets' is required: a list of function types")
        if not isinstance(targets, list):
            raise reader.fail(f"{route_where}.targets", f"expected a list of function types, found {targets!r}")
        for position, target in enumerate(targets):
            _type_name(reader, target, "target", f"{route_where}.targets[{position}]")


def _read_egress_v3(reader: _Reader, kind: str, spec: Mapping[str, Any], where: str) -> None:
    """GenericKafkaEgressSpec (an ``address``, which ``properties`` cannot stand for; a
    ``deliverySemantic``) or GenericKinesisEgressSpec (``maxOutstandingRecords``)."""
    if kind == KINESIS_EGRESS_KIND:
        _properties(reader, spec, "clientConfigProperties", where)
        _jackson_int(reader, spec, "maxOutstandingRecords", where, boxed=False)
        return
    _properties(reader, spec, "properties", where)
    if _jackson_text(reader, spec, "address", where) is None:
        raise reader.fail(where, "'address' is required (the Kafka egress does not read bootstrap.servers from "
                                 "properties)")
    semantic = reader.at(spec, "deliverySemantic")
    if semantic is _MISSING:
        return
    where = f"{where}.deliverySemantic"
    if not isinstance(semantic, Mapping) or "type" not in semantic:
        raise reader.fail(where, f"expected a mapping with a 'type', found {semantic!r}")
    kind = str(semantic["type"])
    if kind not in ("at-least-once", "exactly-once", "none"):
        raise reader.fail(f"{where}.type", f"expected one of at-least-once, exactly-once, none, found {kind!r}")
    if kind == "exactly-once" and "transactionTimeoutMillis" not in semantic:
        if "transactionTimeout" not in semantic:
            raise reader.fail(where, "exactly-once needs a 'transactionTimeout' (like 15min)")
        try:
            _parse_nanos(str(semantic["transactionTimeout"]))
        except ValueError as exc:
            raise reader.fail(f"{where}.transactionTimeout", str(exc)) from None


def _read_endpoint_v3(reader: _Reader, kind: str, spec: Any, where: str) -> FunctionSpec:
    """An HTTP endpoint component (HttpFunctionEndpointSpec, TargetFunctions, UrlPathTemplate),
    and the transport client the runtime builds for it as the job starts."""
    target = _type_name(reader, reader.text(spec, ("functions",), f"{where}.spec"), "functions",
                        f"{where}.spec.functions")
    namespace, _, name = target.partition("/")
    if "*" in namespace or (name != "*" and "*" in name):
        raise reader.fail(f"{where}.spec.functions", f"{target!r}: only <namespace>/<name> or <namespace>/* are "
                                                      "supported")
    where = f"{where} ({target}).spec"
    template = reader.text(spec, ("urlPathTemplate",), where)
    sample = template.replace("{function.name}", "fn" if name == "*" else name)
    if kind == ENDPOINT_KIND_V1:  # the legacy 3.0 endpoint: OkHttp, its timeouts in the spec itself
        max_batch = _strict_max_batch(reader, spec, where)
        transport, props, props_where = OKHTTP_TRANSPORT, spec, where
    else:
        read = _jackson_int(reader, spec, "maxNumBatchRequests", where, boxed=False,
                            what="an integer (32-bit; 0 or negative for no limit)")
        max_batch = DEFAULT_MAX_BATCH if read is None else read
        props = reader.at(spec, "transport")
        props_where = f"{where}.transport"
        if props is _MISSING:
            props = {}
        if not isinstance(props, Mapping):
            raise reader.fail(props_where, f"expected a mapping, found {_yaml_kind(props)}")
        written = reader.optional_text(props, "type", props_where)
        transport = ASYNC_TRANSPORT if written is None else _type_name(reader, written, "transport type",
                                                                          f"{props_where}.type")
    if transport not in (OKHTTP_TRANSPORT, ASYNC_TRANSPORT):
        raise reader.fail(f"{props_where}.type", f"StateFun 3.3 has no transport {transport!r} (known: "
                                                 f"{OKHTTP_TRANSPORT}, {ASYNC_TRANSPORT})")
    problem = _endpoint_problem(sample) if transport == OKHTTP_TRANSPORT else _async_endpoint_problem(sample)
    if problem:
        raise reader.fail(f"{where}.urlPathTemplate", problem)
    # A specific type's URL is known now; a namespace's per type (FunctionSpec.for_type).
    base = FunctionSpec(target, template if name == "*" else sample, (), max_batch, protocol="3.x",
                        transport=transport)
    if transport == OKHTTP_TRANSPORT:
        return _okhttp_v3(reader, base, props, props_where)
    return _async_v3(reader, base, props, props_where)


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
_IPV4_PART = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_IPV4_PART}(?:\.{_IPV4_PART}){{3}}")


def _async_endpoint_problem(endpoint: str) -> Optional[str]:
    """Why the async transport (Netty) cannot use ``endpoint``, or None: a java.net.URI with a
    server authority (``URI.parseServerAuthority``: a host name of letters, digits, '-' and '.',
    an IPv4 or a bracketed IPv6 address, a port up to 65535). It has no unix sockets. (It
    ignores the scheme, speaking TLS for https and plain HTTP for any other: ours takes only
    http and https.)"""
    scheme = endpoint.partition(":")[0].lower()
    if scheme.endswith("+unix"):
        return (f"{endpoint!r}: the async transport has no unix sockets (use transport type "
                f"{OKHTTP_TRANSPORT})")
    problem = _endpoint_problem(endpoint)
    if problem:
        return problem
    rest = endpoint.partition(":")[2].partition("#")[0]
    if not rest.startswith("//"):
        return f"{endpoint!r} has no host (write {scheme}://host/path)"
    authority = re.split(r"[/?]", rest[2:], maxsplit=1)[0]
    host_and_port = authority.rpartition("@")[2]
    if host_and_port.startswith("["):
        return None  # an IPv6 literal, checked by _endpoint_problem
    host = host_and_port.rpartition(":")[0] if ":" in host_and_port else host_and_port
    if not host:
        return f"{endpoint!r} has no host"
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not _IPV4.fullmatch(host) and (
        not all(_HOST_LABEL.fullmatch(label) for label in labels) or (len(labels) > 1 and not labels[-1][0].isalpha())
    ):
        return (f"{endpoint!r}: {host!r} is not a host name (letters, digits, '-' and '.'), which the async "
                "transport needs (java.net.URI.parseServerAuthority)")
    return None


def _okhttp_v3(reader: _Reader, base: FunctionSpec, props: Any, where: str) -> FunctionSpec:
    """DefaultHttpRequestReplyClientSpec: ``timeouts`` call (1 min), connect, read, write (10 s
    each); given, ``timeouts`` is a mapping and none of its values is null (its setters refuse)."""
    timeouts = reader.at(props, "timeouts")
    where = f"{where}.timeouts"
    if timeouts is not _MISSING and not isinstance(timeouts, Mapping):
        raise reader.fail(where, f"expected a mapping, found {_yaml_kind(timeouts)}")
    nanos = {}
    for key, default in (("call", DEFAULT_TIMEOUT), ("connect", DEFAULT_IO_TIMEOUT), ("read", DEFAULT_IO_TIMEOUT),
                         ("write", DEFAULT_IO_TIMEOUT)):
        value = _nonzero(reader, timeouts, key, where) if timeouts is not _MISSING else None
        nanos[key] = default // timedelta(microseconds=1) * 1000 if value is None else value
    for key in ("connect", "read", "write"):
        if nanos[key] > nanos["call"]:
            raise reader.fail(f"{where}.{key}", f"is longer than the call timeout, which the runtime refuses "
                                                f"(\"{key.title()} timeout cannot be larger than request timeout\")")
    for key, value in nanos.items():
        if value // 10**6 > _OKHTTP_MAX_MILLIS:
            raise reader.fail(f"{where}.{key}", f"is longer than OkHttp takes ({_OKHTTP_MAX_MILLIS} ms)")
    return replace(base, timeout=_to_timedelta(nanos["call"]), connect_timeout=_to_timedelta(nanos["connect"]),
                   read_timeout=_to_timedelta(nanos["read"]), write_timeout=_to_timedelta(nanos["write"]))


def _nonzero(reader: _Reader, node: Any, key: str, where: str) -> Optional[int]:
    """A timeout set through a setter that refuses null and zero."""
    nanos = _v3_duration(reader, node, key, where, nullable=False)
    if nanos == 0:
        raise reader.fail(f"{where}.{key}", "is zero: the runtime refuses it (\"Timeout durations must be larger "
                                            "than 0\")")
    return nanos


def _async_v3(reader: _Reader, base: FunctionSpec, props: Any, where: str) -> FunctionSpec:
    """NettyRequestReplySpec: ``call`` (2 min) and ``connect`` (20 s), or the same in ``timeouts``
    (which win, with 1 min and 10 s for what they leave out), ``pool_ttl`` (15 s), ``pool_size``
    (1024, at least 1: the connection pool's size), ``payload_max_bytes`` (32 MiB). Null is the
    default for each top-level key. The async transport has no read or write timeout: the call
    timeout bounds both."""
    timeouts = reader.at(props, "timeouts")
    call = _v3_duration(reader, props, "call", where)
    connect = _v3_duration(reader, props, "connect", where)
    if timeouts is not _MISSING and timeouts is not None:
        if not isinstance(timeouts, Mapping):
            raise reader.fail(f"{where}.timeouts", f"expected a mapping, found {_yaml_kind(timeouts)}")
        call = _nonzero(reader, timeouts, "call", f"{where}.timeouts")
        call = DEFAULT_TIMEOUT // timedelta(microseconds=1) * 1000 if call is None else call
        connect = _nonzero(reader, timeouts, "connect", f"{where}.timeouts")
        connect = DEFAULT_IO_TIMEOUT // timedelta(microseconds=1) * 1000 if connect is None else connect
    call_timeout = ASYNC_DEFAULT_TIMEOUT if call is None else _to_timedelta(call)
    connect_timeout = ASYNC_DEFAULT_CONNECT_TIMEOUT if connect is None else _to_timedelta(connect)
    pool_ttl = _v3_duration(reader, props, "pool_ttl", where)
    pool_size = _jackson_int(reader, props, "pool_size", where, boxed=True)
    if pool_size is not None and pool_size < 1:
        raise reader.fail(f"{where}.pool_size", f"{pool_size} is not 1 or more (the size of the connection pool: "
                                                "\"maxConnections ... (expected: > 0)\")")
    payload_max_bytes = _jackson_int(reader, props, "payload_max_bytes", where, boxed=True)
    return replace(
        base, timeout=call_timeout, connect_timeout=connect_timeout, read_timeout=call_timeout,
        write_timeout=call_timeout,
        pool_ttl=ASYNC_DEFAULT_POOL_TTL if pool_ttl is None else _to_timedelta(pool_ttl),
        pool_size=ASYNC_DEFAULT_POOL_SIZE if pool_size is None else pool_size,
        payload_max_bytes=ASYNC_DEFAULT_PAYLOAD_MAX_BYTES if payload_max_bytes is None else payload_max_bytes,
    )


# Text YAML reads back as the same string when written plain: starts with a letter, no spaces,
# no '#', and a ':' only inside (never before a space or at the end, where it starts a mapping).
_PLAIN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9_./+-]*(?::[A-Za-z0-9_./+-]+)*")
# ...unless YAML 1.1 (PyYAML's and the runtime's SnakeYAML's) reads it as a boolean or null.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})


# What a YAML stream may not hold raw (outside its printable set), or holds as a line break
# or a byte-order mark, all of which a double-quoted scalar writes as an escape instead.
_YAML_UNPRINTABLE = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029\ufeff]"
)


def _yaml_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _yaml_text(text: str) -> str:
    """``text`` as a YAML scalar that reads back as that string: plain where that is safe,
    double-quoted otherwise (a JSON string is a valid YAML double-quoted scalar; what JSON
    leaves raw but YAML may not hold is escaped too)."""
    if _PLAIN_TEXT.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return _YAML_UNPRINTABLE.sub(_yaml_escape, json.dumps(text, ensure_ascii=False))


def default_protocol(functions: StatefulFunctions) -> str:
    """``"3.x"`` for a :mod:`statefun_wsgi.v3` registry (functions of the official 3.3 API,
    which only a 3.x runtime calls), else ``"2.x"``."""
    from .v3.functions import StatefulFunctions as OfficialApiFunctions

    return "3.x" if isinstance(functions, OfficialApiFunctions) else "2.x"


def generate_module_yaml(
    functions: StatefulFunctions,
    endpoint: str,
    *,
    max_batch_size: Optional[int] = None,
    timeout: Optional[timedelta] = None,
    protocol: Optional[str] = None,
    transport: str = ASYNC_TRANSPORT,
) -> str:
    """A ``module.yaml`` for every function in ``functions``: format "2.0" (``protocol="2.x"``)
    with the states they declare with ``bind(..., states=[...])`` and their expiry; for StateFun 3.1+
    (``protocol="3.x"``) one ``kind: io.statefun.endpoints.v2/http`` document per function,
    with ``transport`` (``io.statefun.transports.v1/async``, the default, or ``.../okhttp``);
    for StateFun 3.0 (``protocol="3.0"``) the legacy ``version: "3.0"`` document. A 3.x file
    names no states: the functions declare them to the runtime, with their types and expiry
    (a :mod:`statefun_wsgi.v3` function from its ``ValueSpec`` entries). ``protocol`` defaults to
    ``"3.x"`` for a :mod:`statefun_wsgi.v3` registry (the official 3.3 API), else ``"2.x"``.

    ``max_batch_size`` is written as ``maxNumBatchRequests`` (0 or negative: no limit), and
    ``timeout`` as ``timeout``, in whole milliseconds; a ``timeout`` under 10 s writes the
    connect, read and write timeouts too (the runtime's default for each is 10 s, and it
    refuses one longer than ``timeout``). Raises ValueError for what the runtime would refuse.
    """
    if protocol is None:
        protocol = default_protocol(functions)
    checked = endpoint.replace("{function.name}", "fn") if isinstance(endpoint, str) and protocol != "2.x" else endpoint
    problem = _endpoint_problem(checked) if isinstance(checked, str) else f"{endpoint!r} is not a string"
    if problem:
        raise ValueError(f"endpoint: {problem}")
    if max_batch_size is not None and (
        isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int)
        or not _INT_MIN <= max_batch_size <= _INT_MAX
    ):
        raise ValueError(
            f"max_batch_size must be a 32-bit integer (0 or negative for no limit), not {max_batch_size!r}"
        )
    limits: List[str] = []
    if max_batch_size is not None:
        limits.append(f"maxNumBatchRequests: {max_batch_size}")
    if timeout is not None:
        if timeout % timedelta(milliseconds=1) or not 0 < timeout // timedelta(milliseconds=1) <= _OKHTTP_MAX_MILLIS:
            raise ValueError(f"timeout must be a whole number of milliseconds from 1 ms to {_OKHTTP_MAX_MILLIS} ms "
                             f"(what the runtime's HTTP client takes), not {timeout}")
        written = format_duration(timeout)
        limits.append(f"timeout: {written}")
        if timeout < DEFAULT_IO_TIMEOUT:
            limits += [f"{key}: {written}" for key in _TIMEOUT_KEYS[1:]]
    if protocol not in ("2.x", "3.x", "3.0"):
        raise ValueError(f"protocol must be '2.x', '3.x' or '3.0', not {protocol!r}")
    if protocol != "2.x":
        return _generate_v3(functions, endpoint, protocol, transport, max_batch_size, timeout)
    lines = ['version: "2.0"', "module:", "  meta:", "    type: remote", "  spec:", "    functions:"]
    for function in sorted(functions, key=lambda f: f.typename):
        lines += [
            "      - function:",
            "          meta:",
            "            kind: http",
            f"            type: {_yaml_text(function.typename)}",
            "          spec:",
            f"            endpoint: {_yaml_text(endpoint)}",
        ]
        if function.states:
            lines.append("            states:")
            for name in function.states:
                lines.append(f"              - name: {_yaml_text(name)}")
                lines += _expiry_lines((function.value_specs or {}).get(name))
        lines += [f"            {limit}" for limit in limits]
    return "\n".join(lines) + "\n"


def _expiry_lines(spec: Any) -> List[str]:
    """A 2.0 state entry's ``expireAfter`` and ``expireMode``, for a ValueSpec that expires
    (the 2.x runtime takes expiry from module.yaml alone)."""
    if spec is None or (spec.expire_after_write is None and spec.expire_after_call is None):
        return []
    after, mode = ((spec.expire_after_write, "after-write") if spec.expire_after_write is not None
                   else (spec.expire_after_call, "after-invoke"))
    return [f"                expireAfter: {format_duration(after)}", f"                expireMode: {mode}"]


def _generate_v3(functions: StatefulFunctions, endpoint: str, protocol: str, transport: str,
                 max_batch_size: Optional[int], timeout: Optional[timedelta]) -> str:
    if transport not in (ASYNC_TRANSPORT, OKHTTP_TRANSPORT):
        raise ValueError(f"transport must be {ASYNC_TRANSPORT!r} or {OKHTTP_TRANSPORT!r}, not {transport!r}")
    if protocol == "3.0" and transport != OKHTTP_TRANSPORT:
        transport = OKHTTP_TRANSPORT  # a 3.0 endpoint always uses OkHttp
    documents: List[List[str]] = []
    for function in sorted(functions, key=lambda f: f.typename):
        body = [f"functions: {_yaml_text(function.typename)}", f"urlPathTemplate: {_yaml_text(endpoint)}"]
        if max_batch_size is not None:
            body.append(f"maxNumBatchRequests: {max_batch_size}")
        props: List[str] = []
        if timeout is not None:
            written = format_duration(timeout)
            if transport == OKHTTP_TRANSPORT:
                props += ["timeouts:", f"  call: {written}"]
                if timeout < DEFAULT_IO_TIMEOUT:
                    props += [f"  {key}: {written}" for key in ("connect", "read", "write")]
            else:
                props.append(f"call: {written}")
                if timeout < ASYNC_DEFAULT_CONNECT_TIMEOUT:
                    props.append(f"connect: {written}")
        if protocol == "3.0":
            body += props
        else:
            body += ["transport:", f"  type: {transport}"] + [f"  {line}" for line in props]
        documents.append(body)
    if protocol == "3.0":
        lines = ['version: "3.0"', "module:", "  meta:", "    type: remote", "  spec:", "    endpoints:"]
        for body in documents:
            lines += ["      - endpoint:", "          meta:", "            kind: http", "          spec:"]
            lines += [f"            {line}" for line in body]
        return "\n".join(lines) + "\n"
    return "---\n".join(
        "\n".join([f"kind: {ENDPOINT_KIND}", "spec:"] + [f"  {line}" for line in body]) + "\n" for body in documents
    )


class ModuleYamlProblem(str):
    """One line of :func:`check_module_yaml`'s report; ``kind`` says what it is about:
    ``"unbound"`` (the file routes a type nobody bound), ``"missing-function"``,
    ``"missing-state"``, ``"extra-state"``, ``"expiry"`` (a 2.0 file does not give a state the
    expiry its ValueSpec declares), ``"endpoint"`` (a path the app does not serve),
    ``"ignored"`` (something the runtime accepts and ignores), or ``"unchecked"`` (a note:
    states registered for a function that declares none)."""

    kind: str

    def __new__(cls, text: str, kind: str) -> ModuleYamlProblem:
        problem = super().__new__(cls, text)
        problem.kind = kind
        return problem


def _endpoint_path(endpoint: str) -> str:
    """The path the runtime POSTs to (for ``http+unix``, what follows the ``.sock`` file)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(endpoint)
    if parts.scheme.endswith("+unix"):
        full = unquote(parts.netloc + parts.path) if parts.netloc else parts.path
        return full.partition(".sock")[2] or "/"
    return parts.path or "/"


def check_module_yaml(
    spec: ModuleSpec, functions: StatefulFunctions, *, path: Optional[str] = None, notes: bool = False
) -> List[ModuleYamlProblem]:
    """What does not agree between ``module.yaml`` and the registry; empty when all is well.

    Reports what the runtime accepts but ignores (``spec.notes``, kind ``"ignored"``),
    function types the file routes to but nobody bound, bound functions the file does not
    mention, states missing from the file (the runtime would never send them) or extra in
    it, states whose declared expiry the file does not give them (the 2.x runtime applies
    the file's), and, given the ``path`` the app serves the functions on, endpoints pointing
    elsewhere (the app answers them 404, which fails the job). With ``notes``, also states
    registered for a function that declares none with ``bind(..., states=[...])``: those
    cannot be checked (kind ``"unchecked"``). What the runtime refuses never gets this far:
    loading the file raises :class:`ModuleYamlError`.
    """
    problems: List[ModuleYamlProblem] = [ModuleYamlProblem(note, "ignored") for note in spec.notes]
    source = spec.source
    bound = {function.typename: function for function in functions}
    if spec.protocol == "3.x":
        return problems + _check_v3(spec, bound, path)
    for typename in sorted(set(spec.functions) - set(bound)):
        problems.append(ModuleYamlProblem(f"{source}: function {typename} is not bound in the registry", "unbound"))
    for typename in sorted(set(bound) - set(spec.functions)):
        problems.append(ModuleYamlProblem(
            f"{source}: bound function {typename} is missing (the runtime cannot call it)", "missing-function"))
    for typename in sorted(set(bound) & set(spec.functions)):
        declared = bound[typename].states
        registered = spec.functions[typename].state_names
        if declared is None:
            if registered and notes:
                names = ", ".join(repr(name) for name in registered)
                problems.append(ModuleYamlProblem(
                    f"{source}: note: {typename} registers states {names}, not checked: the function declares "
                    f"none (declare them with bind(..., states=[...]) to have them checked)", "unchecked"))
            continue
        for name in declared:
            if name not in registered:
                problems.append(ModuleYamlProblem(
                    f"{source}: {typename} uses state {name!r} but module.yaml does not register it: "
                    f"add '- name: {name}' under its states", "missing-state"))
        for name in registered:
            if name not in declared:
                problems.append(ModuleYamlProblem(
                    f"{source}: {typename} registers state {name!r} that the function does not declare",
                    "extra-state"))
        problems += _expiry_problems(source, typename, bound[typename], spec.functions[typename])
    if path is not None:
        for typename in sorted(spec.functions):
            endpoint = spec.functions[typename].endpoint
            if _endpoint_path(endpoint) != path:
                problems.append(ModuleYamlProblem(
                    f"{source}: {typename}'s endpoint {endpoint} has the path {_endpoint_path(endpoint)}, "
                    f"but the app serves its functions on {path} (other paths answer 404, which fails the job)",
                    "endpoint"))
    return problems


def _expiry_problems(source: str, typename: str, function: Any, spec: FunctionSpec) -> List[ModuleYamlProblem]:
    """States whose ValueSpec declares an expiry that the 2.0 file does not give them (the 2.x
    runtime takes expiry from module.yaml alone, so the declared one would not apply)."""
    problems: List[ModuleYamlProblem] = []
    registered = {state.name: state for state in spec.states}
    for name, value_spec in (function.value_specs or {}).items():
        state = registered.get(name)
        wanted = _expiry_lines(value_spec)
        if state is None or not wanted:
            continue
        after, mode = ((value_spec.expire_after_write, "after-write") if value_spec.expire_after_write is not None
                       else (value_spec.expire_after_call, "after-invoke"))
        if (state.expire_after, state.expire_mode) != (after, mode):
            found = ("never expires" if state.expire_after is None
                     else f"expires {format_duration(state.expire_after)} {state.expire_mode}")
            problems.append(ModuleYamlProblem(
                f"{source}: {typename} declares state {name!r} expiring {format_duration(after)} {mode}, but in "
                f"module.yaml it {found} (the 2.x runtime applies the file's): write "
                f"'expireAfter: {format_duration(after)}' and 'expireMode: {mode}' under it", "expiry"))
    return problems


def _check_v3(spec: ModuleSpec, bound: Mapping[str, Any], path: Optional[str]) -> List[ModuleYamlProblem]:
    """check_module_yaml for a 3.x file: routes against bound functions, endpoint paths (a 3.x
    file has no states: the functions declare them at run time)."""
    problems: List[ModuleYamlProblem] = []
    source = spec.source
    for typename in sorted(spec.functions):
        if typename.endswith("/*"):
            namespace = typename[:-1]
            if not any(name.startswith(namespace) and "/" not in name[len(namespace):] for name in bound):
                problems.append(ModuleYamlProblem(
                    f"{source}: functions {typename}: no function of namespace {namespace[:-1]} is bound in the "
                    "registry", "unbound"))
        elif typename not in bound:
            problems.append(ModuleYamlProblem(f"{source}: function {typename} is not bound in the registry",
                                              "unbound"))
    for typename in sorted(bound):
        resolved = spec.function(typename)
        if resolved is None:
            problems.append(ModuleYamlProblem(
                f"{source}: bound function {typename} is missing (the runtime cannot call it)", "missing-function"))
        elif path is not None and _endpoint_path(resolved.endpoint) != path:
            problems.append(ModuleYamlProblem(
                f"{source}: {typename}'s endpoint {resolved.endpoint} has the path "
                f"{_endpoint_path(resolved.endpoint)}, but the app serves its functions on {path} (other paths "
                "answer 404, which fails the job)", "endpoint"))
    return problems
