"""Read, write and check the ``module.yaml`` that configures remote functions on
the StateFun runtime (formats "1.0" and "2.0", as StateFun 2.2 reads them).

Usage::

    spec = load_module_yaml("deploy/module.yaml")
    spec.functions["example/greeter"].states        # (StateSpec('seen_count', ...),)
    print(generate_module_yaml(functions, endpoint="http://app:9000/statefun"))
    for problem in check_module_yaml(spec, functions):
        print(problem)

A malformed file raises :class:`ModuleYamlError`, whose message names the file,
the entry and what is wrong.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import ConfigurationError
from .functions import StatefulFunctions, split_typename

__all__ = [
    "EgressSpec",
    "FunctionSpec",
    "IngressSpec",
    "ModuleSpec",
    "ModuleYamlError",
    "StateSpec",
    "check_module_yaml",
    "generate_module_yaml",
    "load_module_yaml",
    "parse_duration",
]

DEFAULT_MAX_BATCH = 1000
DEFAULT_TIMEOUT = timedelta(minutes=1)
DEFAULT_IO_TIMEOUT = timedelta(seconds=10)
EXPIRE_MODES = ("after-invoke", "after-write")

# Flink's TimeUtils units (singular, plural and short forms), case-insensitive.
_UNITS = {
    "d": timedelta(days=1), "day": timedelta(days=1), "days": timedelta(days=1),
    "h": timedelta(hours=1), "hour": timedelta(hours=1), "hours": timedelta(hours=1),
    "min": timedelta(minutes=1), "minute": timedelta(minutes=1), "minutes": timedelta(minutes=1),
    "s": timedelta(seconds=1), "sec": timedelta(seconds=1), "secs": timedelta(seconds=1),
    "second": timedelta(seconds=1), "seconds": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1), "milli": timedelta(milliseconds=1), "millis": timedelta(milliseconds=1),
    "millisecond": timedelta(milliseconds=1), "milliseconds": timedelta(milliseconds=1),
    "µs": timedelta(microseconds=1), "us": timedelta(microseconds=1), "micro": timedelta(microseconds=1),
    "micros": timedelta(microseconds=1), "microsecond": timedelta(microseconds=1),
    "microseconds": timedelta(microseconds=1),
    "ns": timedelta(0), "nano": timedelta(0), "nanos": timedelta(0),
    "nanosecond": timedelta(0), "nanoseconds": timedelta(0),
}
_DURATION = re.compile(r"^\s*(\d+)\s*([a-zµ]*)\s*$", re.IGNORECASE)


class ModuleYamlError(ConfigurationError):
    """A ``module.yaml`` that the runtime would reject."""


def parse_duration(text: Union[str, int]) -> timedelta:
    """Parse a duration as the runtime does: ``"2min"``, ``"10 s"``, ``"60000millisecond"``, ``500`` (ms)."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int):
        return timedelta(milliseconds=text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration like '2min', '10s' or '500ms'")
    amount, unit = int(match.group(1)), match.group(2).lower()
    if not unit:
        return timedelta(milliseconds=amount)
    if unit not in _UNITS:
        raise ValueError(f"{text!r} has an unknown time unit {unit!r} (use d, h, min, s, ms)")
    if unit.startswith("n"):
        return timedelta(microseconds=amount // 1000)
    return amount * _UNITS[unit]


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of ``value`` the runtime reads."""
    milliseconds = value // timedelta(milliseconds=1)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if milliseconds and milliseconds % size == 0:
            return f"{milliseconds // size}{unit}"
    return f"{milliseconds}ms"


@dataclass(frozen=True)
class StateSpec:
    """A registered state. ``expire_after`` ``None`` means it never expires."""

    name: str
    expire_after: Optional[timedelta] = None
    expire_mode: str = "after-invoke"


@dataclass(frozen=True)
class FunctionSpec:
    """One ``function`` entry: where it is served and what the runtime keeps for it."""

    typename: str
    endpoint: str
    states: Tuple[StateSpec, ...] = ()
    max_batch_size: int = DEFAULT_MAX_BATCH
    timeout: timedelta = DEFAULT_TIMEOUT
    connect_timeout: timedelta = DEFAULT_IO_TIMEOUT
    read_timeout: timedelta = DEFAULT_IO_TIMEOUT
    write_timeout: timedelta = DEFAULT_IO_TIMEOUT

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
    """A parsed ``module.yaml``."""

    version: str
    functions: Dict[str, FunctionSpec]
    ingresses: Tuple[IngressSpec, ...] = ()
    egresses: Tuple[EgressSpec, ...] = ()
    source: str = "<module.yaml>"


class _Reader:
    """Walks the parsed YAML, naming the file and entry in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ModuleYamlError:
        return ModuleYamlError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"expected a mapping, found {type(value).__name__}")
        return value

    def sequence(self, value: Any, where: str) -> List[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, found {type(value).__name__}")
        return value

    def text(self, mapping: Mapping[str, Any], key: str, where: str) -> str:
        value = mapping.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"'{key}' is required (a non-empty string)")
        return value

    def duration(self, mapping: Mapping[str, Any], key: str, where: str, default: timedelta) -> timedelta:
        if key not in mapping:
            return default
        try:
            return parse_duration(mapping[key])
        except ValueError as exc:
            raise self.fail(where, f"'{key}': {exc}") from None


def load_module_yaml(path: Union[str, Path]) -> ModuleSpec:
    """Parse the ``module.yaml`` at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModuleYamlError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_module_yaml(text, source=str(path))


def parse_module_yaml(text: str, source: str = "<module.yaml>") -> ModuleSpec:
    """Parse ``module.yaml`` text (see :func:`load_module_yaml`)."""
    import yaml

    reader = _Reader(source)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModuleYamlError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    document = reader.mapping(document, "the document")
    version = str(document.get("version", ""))
    if version not in ("1.0", "2.0"):
        raise reader.fail("version", f"expected \"1.0\" or \"2.0\", found {document.get('version')!r}")
    module = reader.mapping(document.get("module"), "module")
    meta = reader.mapping(module.get("meta", {}), "module.meta")
    if meta.get("type") != "remote":
        raise reader.fail("module.meta.type", f"expected 'remote', found {meta.get('type')!r}")
    spec = reader.mapping(module.get("spec", {}), "module.spec")

    functions: Dict[str, FunctionSpec] = {}
    for index, entry in enumerate(reader.sequence(spec.get("functions"), "module.spec.functions")):
        function = _read_function(reader, version, entry, f"module.spec.functions[{index}]")
        if function.typename in functions:
            raise reader.fail(f"module.spec.functions[{index}]", f"function type {function.typename} appears twice")
        functions[function.typename] = function

    ingresses = tuple(
        IngressSpec(*_read_io(reader, entry, "ingress", f"module.spec.ingresses[{index}]"))
        for index, entry in enumerate(reader.sequence(spec.get("ingresses"), "module.spec.ingresses"))
    )
    egresses = tuple(
        EgressSpec(*_read_io(reader, entry, "egress", f"module.spec.egresses[{index}]"))
        for index, entry in enumerate(reader.sequence(spec.get("egresses"), "module.spec.egresses"))
    )
    return ModuleSpec(version, functions, ingresses, egresses, source)


def _read_function(reader: _Reader, version: str, entry: Any, where: str) -> FunctionSpec:
    function = reader.mapping(reader.mapping(entry, where).get("function"), f"{where}.function")
    meta = reader.mapping(function.get("meta"), f"{where}.function.meta")
    typename = reader.text(meta, "type", f"{where}.function.meta")
    where = f"{where} ({typename})"
    try:
        split_typename(typename)
    except ValueError as exc:
        raise reader.fail(where, str(exc)) from None
    kind = meta.get("kind", "http")
    if kind != "http":
        raise reader.fail(where, f"function kind {kind!r} is not supported (only 'http')")
    spec = reader.mapping(function.get("spec"), f"{where}.spec")
    endpoint = reader.text(spec, "endpoint", f"{where}.spec")
    if not re.match(r"^(http|https|http\+unix|https\+unix)://", endpoint):
        raise reader.fail(f"{where}.spec.endpoint", f"{endpoint!r} is not an http(s) or http(s)+unix URL")

    states: List[StateSpec] = []
    for position, state in enumerate(reader.sequence(spec.get("states"), f"{where}.spec.states")):
        state_where = f"{where}.spec.states[{position}]"
        if version == "1.0":
            if not isinstance(state, str):
                raise reader.fail(state_where, f"format 1.0 lists state names as strings, found {state!r}")
            states.append(StateSpec(state))
            continue
        if isinstance(state, str):  # StateFun 2.2 reads /name of each entry: a bare name fails the job
            raise reader.fail(state_where, f"format {version} lists states as mappings: write '- name: {state}'")
        state = reader.mapping(state, state_where)
        name = reader.text(state, "name", state_where)
        expire_after = reader.duration(state, "expireAfter", state_where, timedelta(0)) or None
        mode = state.get("expireMode", "after-invoke")
        if mode not in EXPIRE_MODES:
            raise reader.fail(state_where, f"expireMode {mode!r} is not one of {', '.join(EXPIRE_MODES)}")
        states.append(StateSpec(name, expire_after, mode))
    names = [state.name for state in states]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise reader.fail(f"{where}.spec.states", f"state names repeated: {', '.join(repeated)}")

    max_batch = spec.get("maxNumBatchRequests", DEFAULT_MAX_BATCH)
    if not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1:
        raise reader.fail(f"{where}.spec.maxNumBatchRequests", f"expected a positive integer, found {max_batch!r}")
    return FunctionSpec(
        typename=typename,
        endpoint=endpoint,
        states=tuple(states),
        max_batch_size=max_batch,
        timeout=reader.duration(spec, "timeout", f"{where}.spec", DEFAULT_TIMEOUT),
        connect_timeout=reader.duration(spec, "connectTimeout", f"{where}.spec", DEFAULT_IO_TIMEOUT),
        read_timeout=reader.duration(spec, "readTimeout", f"{where}.spec", DEFAULT_IO_TIMEOUT),
        write_timeout=reader.duration(spec, "writeTimeout", f"{where}.spec", DEFAULT_IO_TIMEOUT),
    )


def _read_io(reader: _Reader, entry: Any, kind: str, where: str) -> Tuple[str, str, Mapping[str, Any]]:
    body = reader.mapping(reader.mapping(entry, where).get(kind), f"{where}.{kind}")
    meta = reader.mapping(body.get("meta"), f"{where}.{kind}.meta")
    identifier = reader.text(meta, "id", f"{where}.{kind}.meta")
    try:
        split_typename(identifier)
    except ValueError as exc:
        raise reader.fail(f"{where}.{kind}.meta.id", str(exc)) from None
    return identifier, reader.text(meta, "type", f"{where}.{kind}.meta"), dict(body.get("spec") or {})


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


def generate_module_yaml(
    functions: StatefulFunctions,
    endpoint: str,
    *,
    max_batch_size: Optional[int] = None,
    timeout: Optional[timedelta] = None,
) -> str:
    """A ``module.yaml`` (format "2.0") for every function in ``functions``, from the
    states they declare with ``bind(..., states=[...])``."""
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
            lines += [f"              - name: {_yaml_text(name)}" for name in function.states]
        if max_batch_size is not None:
            lines.append(f"            maxNumBatchRequests: {max_batch_size}")
        if timeout is not None:
            lines.append(f"            timeout: {format_duration(timeout)}")
    return "\n".join(lines) + "\n"


def check_module_yaml(spec: ModuleSpec, functions: StatefulFunctions) -> List[str]:
    """What does not agree between ``module.yaml`` and the registry; empty when all is well.

    Reports function types the file routes to but nobody bound, bound functions the
    file does not mention, and for functions that declare their states, states
    missing from the file (the runtime would never send them) or extra in it.
    """
    problems: List[str] = []
    bound = {function.typename: function for function in functions}
    for typename in sorted(set(spec.functions) - set(bound)):
        problems.append(f"{spec.source}: function {typename} is not bound in the registry")
    for typename in sorted(set(bound) - set(spec.functions)):
        problems.append(f"{spec.source}: bound function {typename} is missing (the runtime cannot call it)")
    for typename in sorted(set(bound) & set(spec.functions)):
        declared = bound[typename].states
        if declared is None:
            continue
        registered = spec.functions[typename].state_names
        for name in declared:
            if name not in registered:
                problems.append(
                    f"{spec.source}: {typename} uses state {name!r} but module.yaml does not register it: "
                    f"add '- name: {name}' under its states"
                )
        for name in registered:
            if name not in declared:
                problems.append(f"{spec.source}: {typename} registers state {name!r} that the function does not declare")
    return problems
