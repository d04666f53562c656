"""Tests for statefun_wsgi.module_yaml: reading, writing and checking module.yaml."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional, Union

import module_yaml3_cases
import module_yaml_cases
import pytest

from statefun_wsgi import ConfigurationError, StatefulFunctions
from statefun_wsgi.module_yaml import (
    DEFAULT_IO_TIMEOUT,
    DEFAULT_MAX_BATCH,
    DEFAULT_TIMEOUT,
    EgressSpec,
    FunctionSpec,
    IngressSpec,
    ModuleYamlError,
    StateSpec,
    check_module_yaml,
    generate_module_yaml,
    load_module_yaml,
    parse_duration,
    parse_module_yaml,
)


def write(tmp_path: Path, text: str, name: str = "module.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def noop(context, message) -> None:
    pass


# -- format 1.0 -----------------------------------------------------------------------

FORMAT_1 = """
version: "1.0"
module:
  meta:
    type: remote
  spec:
    functions:
      - function:
          meta:
            kind: http
            type: example/greeter
          spec:
            endpoint: http://python-worker:8000/statefun
            states:
              - seen_count
              - last_seen
            maxNumBatchRequests: 500
            timeout: 2min
      - function:
          meta:
            kind: http
            type: com.example.fns/formatter
          spec:
            endpoint: http+unix:///run/app.sock/statefun
    ingresses:
      - ingress:
          meta:
            type: statefun.kafka.io/routable-protobuf-ingress
            id: example/names
          spec:
            address: kafka-broker:9092
            consumerGroupId: my-group-id
            topics:
              - topic: names
                typeUrl: com.googleapis/example.GreetRequest
                targets:
                  - example/greeter
    egresses:
      - egress:
          meta:
            type: statefun.kafka.io/generic-egress
            id: example/greets
          spec:
            address: kafka-broker:9092
            deliverySemantic:
              type: exactly-once
              transactionTimeoutMillis: 100000
"""


def test_format_1_0_functions_states_and_limits(tmp_path: Path) -> None:
    path = write(tmp_path, FORMAT_1)
    spec = load_module_yaml(path)
    assert spec.version == "1.0"
    assert spec.source == str(path)
    assert sorted(spec.functions) == ["com.example.fns/formatter", "example/greeter"]

    greeter = spec.functions["example/greeter"]
    assert greeter.typename == "example/greeter"
    assert greeter.endpoint == "http://python-worker:8000/statefun"
    assert greeter.states == (StateSpec("seen_count"), StateSpec("last_seen"))
    assert greeter.state_names == ("seen_count", "last_seen")
    assert all(state.expire_after is None and state.expire_mode == "after-invoke" for state in greeter.states)
    assert greeter.max_batch_size == 500
    assert greeter.timeout == timedelta(minutes=2)
    assert greeter.connect_timeout == greeter.read_timeout == greeter.write_timeout == timedelta(seconds=10)

    formatter = spec.functions["com.example.fns/formatter"]
    assert formatter.endpoint == "http+unix:///run/app.sock/statefun"
    assert formatter.states == ()
    assert formatter.max_batch_size == DEFAULT_MAX_BATCH == 1000
    assert formatter.timeout == DEFAULT_TIMEOUT == timedelta(minutes=1)
    assert formatter.connect_timeout == DEFAULT_IO_TIMEOUT == timedelta(seconds=10)


def test_ingresses_and_egresses_are_read(tmp_path: Path) -> None:
    spec = load_module_yaml(write(tmp_path, FORMAT_1))
    assert spec.ingresses == (
        IngressSpec(
            "example/names",
            "statefun.kafka.io/routable-protobuf-ingress",
            {
                "address": "kafka-broker:9092",
                "consumerGroupId": "my-group-id",
                "topics": [
                    {
                        "topic": "names",
                        "typeUrl": "com.googleapis/example.GreetRequest",
                        "targets": ["example/greeter"],
                    }
                ],
            },
        ),
    )
    assert len(spec.egresses) == 1
    egress = spec.egresses[0]
    assert isinstance(egress, EgressSpec)
    assert (egress.id, egress.type) == ("example/greets", "statefun.kafka.io/generic-egress")
    assert egress.spec["deliverySemantic"] == {"type": "exactly-once", "transactionTimeoutMillis": 100000}


# -- format 2.0 -----------------------------------------------------------------------

FORMAT_2 = """
version: "2.0"
module:
  meta:
    type: remote
  spec:
    functions:
      - function:
          meta:
            kind: http
            type: example/greeter
          spec:
            endpoint: https://functions.example.com/statefun
            states:
              - name: seen_count
                expireAfter: 1h
                expireMode: after-write
              - name: session
                expireAfter: 10s
              - name: forever
              - name: plain_name
            maxNumBatchRequests: 7
            timeout: 60000millisecond
            connectTimeout: 2s
            readTimeout: "500"
            writeTimeout: "10 s"
"""


def test_format_2_0_state_mappings_with_expiry_and_timeouts(tmp_path: Path) -> None:
    spec = load_module_yaml(write(tmp_path, FORMAT_2))
    assert spec.version == "2.0"
    greeter = spec.functions["example/greeter"]
    assert greeter.endpoint == "https://functions.example.com/statefun"
    assert greeter.states == (
        StateSpec("seen_count", timedelta(hours=1), "after-write"),
        StateSpec("session", timedelta(seconds=10), "after-invoke"),
        StateSpec("forever", None, "after-invoke"),
        StateSpec("plain_name", None, "after-invoke"),
    )
    assert greeter.max_batch_size == 7
    assert greeter.timeout == timedelta(seconds=60)
    assert greeter.connect_timeout == timedelta(seconds=2)
    assert greeter.read_timeout == timedelta(milliseconds=500)
    assert greeter.write_timeout == timedelta(seconds=10)


def test_format_2_0_refuses_a_bare_state_name_as_the_runtime_does(tmp_path: Path) -> None:
    """StateFun 2.2 reads each 2.0 state's /name: a bare name would fail the job at start."""
    text = FORMAT_2.replace("- name: plain_name", "- plain_name")
    with pytest.raises(ModuleYamlError, match=(
        r"module\.spec\.functions\[0\] \(example/greeter\)\.spec\.states\[3\]: "
        r"format 2\.0 lists states as mappings: write '- name: plain_name'$"
    )):
        load_module_yaml(write(tmp_path, text))


def test_parse_module_yaml_names_its_source_in_errors() -> None:
    with pytest.raises(ModuleYamlError, match=r"^deploy/module\.yaml: version: "):
        parse_module_yaml('version: "9"\nmodule:\n  meta:\n    type: remote\n  spec: {}\n', source="deploy/module.yaml")


# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2min", timedelta(minutes=2)),
        ("10s", timedelta(seconds=10)),
        ("60000millisecond", timedelta(seconds=60)),
        ("1h", timedelta(hours=1)),
        ("500", timedelta(milliseconds=500)),
        ("10 s", timedelta(seconds=10)),
        (" 10\ts\n", timedelta(seconds=10)),
        ("250ms", timedelta(milliseconds=250)),
        ("3 minutes", timedelta(minutes=3)),
        ("2d", timedelta(days=2)),
        ("1 day", timedelta(days=1)),
        ("1500µs", timedelta(microseconds=1500)),
        ("1500µS", timedelta(microseconds=1500)),
        ("1500 micros", timedelta(microseconds=1500)),
        ("2500ns", timedelta(microseconds=2)),
        ("3 nanoseconds", timedelta(0)),
        ("2SECONDS", timedelta(seconds=2)),
        ("5 secs", timedelta(seconds=5)),
        ("9223372036854775807ms", timedelta.max),
    ],
    ids=lambda value: None if isinstance(value, timedelta) else repr(value),
)
def test_parse_duration(text, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is empty"),
        (" \t", "is empty"),
        ("s", "does not start with a number"),
        ("ten seconds", "does not start with a number"),
        ("1.5s", "unknown time unit '.5s'"),
        ("-1s", "does not start with a number"),
        ("+1s", "does not start with a number"),
        ("٣s", "does not start with a number"),
        ("10 fortnights", "unknown time unit 'fortnights'"),
        ("500us", "not 'us'"),
        ("5mins", "unknown time unit 'mins'"),
        ("5\u00a0s", "unknown time unit '\\xa0s'"),
        ("9223372036854775808ns", "does not fit in 64 bits"),
        ("2562047788015216h", "long overflow"),
        (500, "500 is a YAML integer, and the runtime reads durations as strings"),
        (1.5, "1.5 is a YAML number"),
        (True, "True is a YAML boolean"),
        (None, "None is null"),
    ],
    ids=repr,
)
def test_parse_duration_rejects(text, problem: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2min", timedelta(minutes=2)),
        ("10s", timedelta(seconds=10)),
        ("60000millisecond", timedelta(minutes=1)),
        ("1h", timedelta(hours=1)),
        ('"500"', timedelta(milliseconds=500)),
        ('"10 s"', timedelta(seconds=10)),
    ],
)
def test_durations_in_the_file(tmp_path: Path, written: str, expected: timedelta) -> None:
    path = write(
        tmp_path,
        f"""
        version: "2.0"
        module:
          meta:
            type: remote
          spec:
            functions:
              - function:
                  meta:
                    kind: http
                    type: example/fn
                  spec:
                    endpoint: http://localhost:8000/statefun
                    states:
                      - name: s
                        expireAfter: {written}
                    timeout: {written}
                    connectTimeout: {written}
                    readTimeout: {written}
                    writeTimeout: {written}
        """,
    )
    function = load_module_yaml(path).functions["example/fn"]
    assert function.timeout == function.connect_timeout == function.read_timeout == function.write_timeout == expected
    assert function.states[0].expire_after == expected


# -- errors ----------------------------------------------------------------------------


def function_entry(spec_lines: str, typename: str = "example/greeter") -> str:
    """A module.yaml with one function whose spec holds ``spec_lines`` (indented 12)."""
    body = textwrap.indent(textwrap.dedent(spec_lines).strip("\n"), " " * 12)
    return f"""version: "{{version}}"
module:
  meta:
    type: remote
  spec:
    functions:
      - function:
          meta:
            kind: http
            type: {typename}
          spec:
{body}
"""


ENDPOINT = "endpoint: http://localhost:8000/statefun"

ERROR_CASES = [
    pytest.param(
        'version: "2.5"\nmodule:\n  meta:\n    type: remote\n  spec:\n',
        "version",
        "expected \"1.0\" or \"2.0\", found '2.5'",
        id="bad version",
    ),
    pytest.param(
        function_entry("states:\n  - seen_count").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec",
        "'endpoint' is required",
        id="missing endpoint",
    ),
    pytest.param(
        function_entry("endpoint: ftp://localhost/statefun").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec.endpoint",
        "'ftp://localhost/statefun': the scheme 'ftp' is not http, https, http+unix or https+unix",
        id="bad endpoint scheme",
    ),
    pytest.param(
        function_entry(
            f"{ENDPOINT}\nstates:\n  - name: seen_count\n    expireAfter: 1h\n    expireMode: after-read"
        ).format(version="2.0"),
        "module.spec.functions[0] (example/greeter).spec.states[0].expireMode",
        "'after-read' is not one of after-invoke, after-write",
        id="bad expireMode",
    ),
    pytest.param(
        function_entry(f"{ENDPOINT}\nstates:\n  - seen_count\n  - other\n  - seen_count").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec.states",
        "state names repeated: seen_count",
        id="duplicate state",
    ),
    pytest.param(
        function_entry(ENDPOINT).format(version="1.0")
        + "      - function:\n          meta:\n            kind: http\n            type: example/greeter\n"
        + "          spec:\n            endpoint: http://other:8000/statefun\n",
        "module.spec.functions[1]",
        "function type example/greeter appears twice",
        id="duplicate function",
    ),
    pytest.param(
        function_entry(f"{ENDPOINT}\ntimeout: 10 fortnights").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec.timeout",
        "'10 fortnights' has an unknown time unit 'fortnights'",
        id="bad duration unit",
    ),
    pytest.param(
        'version: "1.0"\nmodule: [unclosed\n',
        None,
        "not valid YAML",
        id="not YAML",
    ),
    pytest.param(
        "- version: 1.0\n- module: {}\n",
        "module.meta",
        "'type' is required (type: remote)",
        id="not a mapping",
    ),
    pytest.param(
        function_entry(f"{ENDPOINT}\nmaxNumBatchRequests: lots").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec.maxNumBatchRequests",
        "expected an integer (32-bit; 0 or negative for no limit), found 'lots'",
        id="maxNumBatchRequests lots",
    ),
]


@pytest.mark.parametrize(("text", "entry", "problem"), ERROR_CASES)
def test_errors_name_the_file_the_entry_and_the_problem(tmp_path: Path, text: str, entry, problem: str) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ModuleYamlError) as info:
        load_module_yaml(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    if entry is not None:
        assert message.startswith(f"{path}: {entry}: "), message
    assert problem in message
    assert "\n" not in message  # one line, fit for the CLI
    assert isinstance(info.value, ConfigurationError)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "module.yaml"
    with pytest.raises(ModuleYamlError, match=rf"^{missing}: cannot read: "):
        load_module_yaml(missing)


def test_bad_expire_after_duration(tmp_path: Path) -> None:
    text = function_entry(f"{ENDPOINT}\nstates:\n  - name: s\n    expireAfter: soon").format(version="2.0")
    path = write(tmp_path, text)
    with pytest.raises(ModuleYamlError) as info:
        load_module_yaml(path)
    where = "module.spec.functions[0] (example/greeter).spec.states[0].expireAfter"
    assert str(info.value).startswith(f"{path}: {where}: 'soon' does not start with a number")


# -- generate and check -----------------------------------------------------------------


def registry() -> StatefulFunctions:
    functions = StatefulFunctions()
    functions.register("example/greeter", noop, states=["seen_count", "last_seen"])
    functions.register("example/formatter", noop)  # declares no states: never checked
    functions.register("com.example.fns/stateless", noop, states=[])
    return functions


def test_generate_round_trip() -> None:
    functions = registry()
    text = generate_module_yaml(functions, "http://app:8000/statefun")
    spec = parse_module_yaml(text)
    assert spec.version == "2.0"
    assert sorted(spec.functions) == sorted(functions.typenames)
    for function in functions:
        parsed = spec.functions[function.typename]
        assert parsed.endpoint == "http://app:8000/statefun"
        assert parsed.state_names == tuple(function.states or ())
        assert parsed.max_batch_size == DEFAULT_MAX_BATCH
        assert parsed.timeout == DEFAULT_TIMEOUT
    assert check_module_yaml(spec, functions) == []


@pytest.mark.parametrize(
    ("timeout", "written"),
    [
        (timedelta(minutes=2), "2min"),
        (timedelta(seconds=90), "90s"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(hours=1), "1h"),
    ],
)
def test_generate_with_limits_round_trips(timeout: timedelta, written: str) -> None:
    text = generate_module_yaml(registry(), "http+unix:///run/app.sock/statefun", max_batch_size=50, timeout=timeout)
    assert f"timeout: {written}\n" in text
    spec = parse_module_yaml(text)
    for function in spec.functions.values():
        assert function.max_batch_size == 50
        assert function.timeout == timeout
        assert function.endpoint == "http+unix:///run/app.sock/statefun"


@pytest.mark.parametrize(
    "name",
    ["seen_count", "on", "No", "null", "~", "007", "1e3", "2001-12-14", "a: b", "x #y", "[a]", "{a}", "*a", "&a",
     "!a", "'a'", '"a"', "a:", " a", "a ", "-a", "?a", "%a", "@a", "`a", "|a", ">a", "tab\there", "line\nbreak",
     "back\\slash", "ü-naïve", "emoji-\U0001F600", "a:b", "del\x7f", "nel\x85", "c1\x9b", "ls\u2028",
     "bom\ufeff", "nul\x00", "nonchar\uffff", ".inf", "0x1F", "1_000", "=", "<<", "Y"],
)
def test_generated_names_read_back_as_written(name: str) -> None:
    """State names and types are free text to the runtime; YAML must not read them as anything else."""
    functions = StatefulFunctions()
    functions.register(f"example/{name}", noop, states=[name])
    text = generate_module_yaml(functions, "http://app:8000/statefun")
    spec = parse_module_yaml(text)
    assert list(spec.functions) == [f"example/{name}"]
    function = spec.functions[f"example/{name}"]
    assert function.state_names == (name,)
    assert check_module_yaml(spec, functions) == []


def test_generated_plain_names_stay_unquoted() -> None:
    text = generate_module_yaml(registry(), "http://app:8000/statefun")
    assert "type: example/greeter\n" in text
    assert "endpoint: http://app:8000/statefun\n" in text
    assert "- name: seen_count\n" in text
    assert '"' not in text.replace('version: "2.0"', "")


def test_generated_file_loads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(generate_module_yaml(registry(), "http://app:8000/statefun"), encoding="utf-8")
    assert check_module_yaml(load_module_yaml(path), registry()) == []


CHECKED = """
version: "2.0"
module:
  meta:
    type: remote
  spec:
    functions:
      - function:
          meta:
            kind: http
            type: example/greeter
          spec:
            endpoint: http://app:8000/statefun
            states:
              - name: seen_count
              - name: stale
      - function:
          meta:
            kind: http
            type: example/formatter
          spec:
            endpoint: http://app:8000/statefun
            states:
              - name: anything
      - function:
          meta:
            kind: http
            type: example/ghost
          spec:
            endpoint: http://app:8000/statefun
"""


def test_check_reports_every_disagreement(tmp_path: Path) -> None:
    path = write(tmp_path, CHECKED)
    problems = check_module_yaml(load_module_yaml(path), registry())
    assert all(problem.startswith(f"{path}: ") for problem in problems)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    # A type the file routes to that nobody bound.
    assert any("example/ghost is not bound" in problem for problem in problems), text
    # A bound function the file does not mention.
    assert any("com.example.fns/stateless is missing" in problem for problem in problems), text
    # A declared state the file does not register, with the line to add.
    assert any(
        "example/greeter uses state 'last_seen'" in problem and "'- name: last_seen'" in problem for problem in problems
    ), text
    # A registered state the function does not declare.
    assert any("example/greeter registers state 'stale'" in problem for problem in problems), text
    # example/formatter declares no states, so its registered 'anything' is not a problem.
    assert "anything" not in text


def test_check_accepts_states_in_any_order(tmp_path: Path) -> None:
    functions = StatefulFunctions()
    functions.register("example/greeter", noop, states=["a", "b"])
    text = function_entry(f"{ENDPOINT}\nstates:\n  - b\n  - a").format(version="1.0")
    assert check_module_yaml(parse_module_yaml(text), functions) == []


# -- as StateFun 2.2.2 reads it (the table is checked on the real runtime by tests/e2e) -----


@pytest.mark.parametrize("case", module_yaml_cases.params())
def test_accepts_what_the_runtime_accepts(case: module_yaml_cases.Case) -> None:
    """Each file of the table: ours accepts it, or refuses it with the table's error."""
    assert_as_the_table_says(case)


def test_the_table_agrees_with_the_runtime_but_where_it_says_why_not() -> None:
    assert_agrees_but_where_divergent(module_yaml_cases)


def assert_as_the_table_says(case: Union[module_yaml_cases.Case, module_yaml3_cases.Case]) -> None:
    """A case of either table: ours accepts it, or refuses it on one line with the table's error."""
    if case.error is None:
        parse_module_yaml(case.text, source="cases/module.yaml")
        return
    with pytest.raises(ModuleYamlError) as info:
        parse_module_yaml(case.text, source="cases/module.yaml")
    message = str(info.value)
    assert message.startswith("cases/module.yaml: "), message
    assert case.error in message, message
    assert "\n" not in message


def assert_agrees_but_where_divergent(table: Any) -> None:
    """A table's cases (unique ids) disagree with its runtime exactly where DIVERGENT says why."""
    disagree = {case.id for case in table.CASES if (case.error is None) != case.runtime}
    assert disagree == set(table.DIVERGENT)
    assert len({case.id for case in table.CASES}) == len(table.CASES)


def spec_of(**parts: str) -> FunctionSpec:
    return parse_module_yaml(module_yaml_cases.module(**parts)).functions["example/fn"]


@pytest.mark.parametrize(
    ("written", "expected"),
    [("0", 0), ("-1", -1), ("+10", 10), ("010", 10), ("2147483647", 2**31 - 1), ("-2147483648", -(2**31))],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_max_num_batch_requests_is_kept_as_written(written: str, expected: int) -> None:
    """0 or negative means no limit to the runtime; a leading 0 is decimal to its YAML parser."""
    assert spec_of(spec=f"maxNumBatchRequests: {written}").max_batch_size == expected


def test_timeouts_compare_to_the_nanosecond() -> None:
    function = spec_of(spec="timeout: 10000000001ns\nconnectTimeout: 10000000001ns")
    assert function.timeout == function.connect_timeout == timedelta(seconds=10, microseconds=0)
    with pytest.raises(ModuleYamlError, match=r"\.spec\.timeout: '10000000000ns' is shorter than connectTimeout "
                                              r"'10000000001ns', which the runtime refuses \(\"Connect timeout"):
        spec_of(spec="timeout: 10000000000ns\nconnectTimeout: 10000000001ns")


def test_timeout_under_10s_names_the_default_it_is_under() -> None:
    with pytest.raises(ModuleYamlError) as info:
        spec_of(spec="timeout: 5s\nconnectTimeout: 1s\nreadTimeout: 2s")
    assert str(info.value) == (
        "<module.yaml>: module.spec.functions[0] (example/fn).spec.timeout: '5s' is shorter than writeTimeout "
        "(10s when not set), which the runtime refuses (\"Write timeout cannot be larger than request timeout\"): "
        "set connectTimeout, readTimeout and writeTimeout to at most the timeout"
    )


def test_what_the_runtime_ignores_is_noted_and_checked() -> None:
    text = function_entry(f"{ENDPOINT}\nstates:\n  - seen_count\n  - name: last_seen\n  - 5").format(version="1.0")
    spec = parse_module_yaml(text, source="m.yaml")
    assert spec.functions["example/greeter"].state_names == ("seen_count",)
    where = "m.yaml: module.spec.functions[0] (example/greeter).spec.states"
    assert spec.notes == (
        f"{where}[1]: format 1.0 lists state names as strings: the runtime ignores {{'name': 'last_seen'}}",
        f"{where}[2]: format 1.0 lists state names as strings: the runtime ignores 5",
    )
    functions = StatefulFunctions()
    functions.register("example/greeter", noop, states=["seen_count", "last_seen"])
    problems = check_module_yaml(spec, functions)
    assert problems[:2] == list(spec.notes)
    assert "uses state 'last_seen' but module.yaml does not register it" in problems[2]

    ignored = parse_module_yaml(module_yaml_cases.module(state_extra="expireMode: after-write"), source="m.yaml")
    assert ignored.functions["example/fn"].states == (StateSpec("seen"),)
    note = "ignored without expireAfter (the state never expires)"
    assert ignored.notes == (f"m.yaml: module.spec.functions[0] (example/fn).spec.states[0].expireMode: {note}",)


def test_durations_past_timedelta_read_as_its_max() -> None:
    function = spec_of(state_extra="expireAfter: 9223372036854775807ms")
    assert function.states[0].expire_after == timedelta.max


@pytest.mark.parametrize(
    ("timeout", "io_written"),
    [(timedelta(seconds=5), "5s"), (timedelta(milliseconds=1), "1ms"), (timedelta(seconds=10), None),
     (timedelta(minutes=5), None)],
    ids=str,
)
def test_generate_writes_io_timeouts_under_10s(timeout: timedelta, io_written) -> None:
    text = generate_module_yaml(registry(), "http://app:8000/statefun", timeout=timeout)
    for key in ("connectTimeout", "readTimeout", "writeTimeout"):
        assert (f"{key}: {io_written}\n" in text) if io_written else (key not in text)
    for function in parse_module_yaml(text).functions.values():
        assert function.timeout == timeout
        assert function.connect_timeout == function.read_timeout == function.write_timeout == min(
            timeout, DEFAULT_IO_TIMEOUT
        )


@pytest.mark.parametrize("max_batch_size", [0, -1, 1, 2**31 - 1])
def test_generate_writes_any_max_batch_size(max_batch_size: int) -> None:
    text = generate_module_yaml(registry(), "http://app:8000/statefun", max_batch_size=max_batch_size)
    assert {f.max_batch_size for f in parse_module_yaml(text).functions.values()} == {max_batch_size}


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"timeout": timedelta(0)}, "timeout must be a whole number of milliseconds from 1 ms"),
        ({"timeout": timedelta(seconds=-1)}, "timeout must be"),
        ({"timeout": timedelta(microseconds=1500)}, "timeout must be"),
        ({"timeout": timedelta(days=30)}, "timeout must be"),
        ({"max_batch_size": 2**31}, "max_batch_size must be a 32-bit integer"),
        ({"max_batch_size": True}, "max_batch_size must be a 32-bit integer"),
        ({"endpoint": "ftp://app/statefun"}, "endpoint: 'ftp://app/statefun': the scheme 'ftp' is not"),
        ({"endpoint": "http://app/a b"}, "' ' at index 12 must be percent-encoded"),
    ],
    ids=lambda value: None if isinstance(value, str) else repr(value),
)
def test_generate_refuses_what_the_runtime_would(options, problem: str) -> None:
    endpoint = options.pop("endpoint", "http://app:8000/statefun")
    with pytest.raises(ValueError) as info:
        generate_module_yaml(registry(), endpoint, **options)
    assert problem in str(info.value)


def test_check_names_the_kind_of_each_problem(tmp_path: Path) -> None:
    problems = check_module_yaml(load_module_yaml(write(tmp_path, CHECKED)), registry(), notes=True)
    assert sorted(problem.kind for problem in problems) == [
        "extra-state", "missing-function", "missing-state", "unbound", "unchecked"]
    (note,) = [problem for problem in problems if problem.kind == "unchecked"]
    assert "example/formatter registers states 'anything', not checked: the function declares none" in note


@pytest.mark.parametrize(
    ("endpoint", "wrong"),
    [("http://app:8000/statefun", False), ("http://app:8000/statefun/", True), ("http://app:8000/", True),
     ("http://app:8000", True), ("http+unix:///run/app.sock/statefun", False), ("http+unix:///run/app.sock", True),
     ("http://app:8000/statefun?x=1", False)],
)
def test_check_finds_endpoints_off_the_served_path(endpoint: str, wrong: bool) -> None:
    functions = StatefulFunctions()
    functions.register("example/f", noop, states=[])
    spec = parse_module_yaml(generate_module_yaml(functions, endpoint))
    problems = check_module_yaml(spec, functions, path="/statefun")
    assert [problem.kind for problem in problems] == (["endpoint"] if wrong else [])
    assert check_module_yaml(spec, functions) == []  # no path given: not checked


# -- StateFun 3.x formats -------------------------------------------------------------------------

from statefun_wsgi.module_yaml import (  # noqa: E402
    ASYNC_TRANSPORT,
    KAFKA_EGRESS_KIND,
    KAFKA_INGRESS_KIND,
    OKHTTP_TRANSPORT,
)

V3_ENDPOINT = """\
kind: io.statefun.endpoints.v2/http
spec:
  functions: {functions}
  urlPathTemplate: {template}
{extra}"""

V3_KAFKA = """\
---
kind: io.statefun.kafka.v1/ingress
spec:
  id: example/names
  address: kafka:9092
  consumerGroupId: greeter
  topics:
    - topic: names
      valueType: type.googleapis.com/example.GreetRequest
      targets: [example/greeter]
---
kind: io.statefun.kafka.v1/egress
spec:
  id: example/greets
  address: kafka:9092
  deliverySemantic:
    type: at-least-once
"""


def v3(functions: str = "example/greeter", template: str = "http://app:8000/statefun", extra: str = "") -> str:
    return V3_ENDPOINT.format(functions=functions, template=template, extra=textwrap.indent(extra, "  "))


def test_v3_kind_documents_default_to_the_async_transport_and_its_defaults() -> None:
    module = parse_module_yaml(v3() + V3_KAFKA)
    assert module.version == "kind" and module.protocol == "3.x"
    greeter = module.functions["example/greeter"]
    assert greeter.protocol == "3.x" and greeter.transport == ASYNC_TRANSPORT
    assert greeter.states == ()
    assert greeter.max_batch_size == 1000
    assert (greeter.timeout, greeter.connect_timeout) == (timedelta(minutes=2), timedelta(seconds=20))
    assert (greeter.pool_ttl, greeter.pool_size, greeter.payload_max_bytes) == (timedelta(seconds=15), 1024,
                                                                                32 * 1048576)
    assert [(i.id, i.type) for i in module.ingresses] == [("example/names", KAFKA_INGRESS_KIND)]
    assert [(e.id, e.type) for e in module.egresses] == [("example/greets", KAFKA_EGRESS_KIND)]


def test_v3_okhttp_transport_reads_its_timeouts() -> None:
    extra = ("maxNumBatchRequests: 7\ntransport:\n  type: io.statefun.transports.v1/okhttp\n  timeouts:\n"
             "    call: 3s\n    connect: 1s\n    read: 2s\n    write: 500\n")
    greeter = parse_module_yaml(v3(extra=extra)).functions["example/greeter"]
    assert greeter.transport == OKHTTP_TRANSPORT and greeter.max_batch_size == 7
    assert (greeter.timeout, greeter.connect_timeout, greeter.read_timeout, greeter.write_timeout) == (
        timedelta(seconds=3), timedelta(seconds=1), timedelta(seconds=2), timedelta(milliseconds=500))


def test_v3_okhttp_defaults_are_1_min_and_10_s() -> None:
    greeter = parse_module_yaml(v3(extra="transport:\n  type: io.statefun.transports.v1/okhttp\n")).functions[
        "example/greeter"]
    assert (greeter.timeout, greeter.connect_timeout, greeter.read_timeout) == (
        timedelta(minutes=1), timedelta(seconds=10), timedelta(seconds=10))


def test_v3_async_transport_reads_its_keys_and_timeouts_win() -> None:
    extra = ("transport:\n  type: io.statefun.transports.v1/async\n  call: 5s\n  connect: 2s\n  pool_ttl: 1min\n"
             "  pool_size: 8\n  payload_max_bytes: 1024\n")
    greeter = parse_module_yaml(v3(extra=extra)).functions["example/greeter"]
    assert (greeter.timeout, greeter.connect_timeout, greeter.pool_ttl, greeter.pool_size,
            greeter.payload_max_bytes) == (timedelta(seconds=5), timedelta(seconds=2), timedelta(minutes=1), 8, 1024)
    extra = "transport:\n  call: 5s\n  timeouts:\n    call: 7s\n"
    greeter = parse_module_yaml(v3(extra=extra)).functions["example/greeter"]
    assert (greeter.timeout, greeter.connect_timeout) == (timedelta(seconds=7), timedelta(seconds=10))


def test_v3_namespace_functions_resolve_per_type_with_the_url_template() -> None:
    module = parse_module_yaml(v3("example/*", "http://app:8000/fn/{function.name}"))
    assert module.function("example/greeter").endpoint == "http://app:8000/fn/greeter"  # type: ignore[union-attr]
    assert module.function("example/greeter").typename == "example/greeter"  # type: ignore[union-attr]
    assert module.function("other/greeter") is None


def test_v3_legacy_version_3_0_format() -> None:
    text = textwrap.dedent("""\
        version: "3.0"
        module:
          meta:
            type: remote
          spec:
            endpoints:
              - endpoint:
                  meta:
                    kind: http
                  spec:
                    functions: example/*
                    urlPathTemplate: http://app:8000/statefun
                    maxNumBatchRequests: 10
                    timeouts:
                      call: 2s
                      connect: 2s
                      read: 1s
                      write: 1s
            ingresses:
              - ingress:
                  meta:
                    type: io.statefun.kafka/ingress
                    id: example/names
                  spec:
                    address: kafka:9092
                    consumerGroupId: greeter
                    topics:
                      - topic: names
                        valueType: type.googleapis.com/example.GreetRequest
                        targets: [example/greeter]
            egresses:
              - egress:
                  meta:
                    type: io.statefun.kafka/egress
                    id: example/greets
                  spec:
                    address: kafka:9092
        """)
    module = parse_module_yaml(text)
    assert module.version == "3.0" and module.protocol == "3.x"
    greeter = module.function("example/greeter")
    assert greeter is not None and greeter.transport == OKHTTP_TRANSPORT and greeter.max_batch_size == 10
    assert (greeter.timeout, greeter.read_timeout, greeter.connect_timeout) == (
        timedelta(seconds=2), timedelta(seconds=1), timedelta(seconds=2))
    assert module.ingresses[0].type == KAFKA_INGRESS_KIND and module.egresses[0].type == KAFKA_EGRESS_KIND


V3_ERRORS = [
    pytest.param(v3("example/gr*"), "only <namespace>/<name> or <namespace>/* are supported", id="star in name"),
    pytest.param(v3('"*/greeter"'), "only <namespace>/<name> or <namespace>/* are supported", id="star in namespace"),
    pytest.param(v3("greeter"), "'greeter' is not 'namespace/name'", id="no namespace"),
    pytest.param("kind: io.statefun.endpoints.v2/http\nspec:\n  functions: example/greeter\n",
                 "'urlPathTemplate' is required", id="no url"),
    pytest.param(v3(template="ftp://app/statefun"), "is not http, https", id="bad scheme"),
    pytest.param(v3(extra="transport:\n  type: io.statefun.transports.v1/grpc\n"), "has no transport",
                 id="unknown transport"),
    pytest.param(v3(extra="transport:\n  type: io.statefun.transports.v1/okhttp\n  timeouts:\n    call: 0s\n"),
                 "Timeout durations must be larger than 0", id="zero call"),
    pytest.param(v3(extra="transport:\n  type: io.statefun.transports.v1/okhttp\n  timeouts:\n    call: 5s\n"
                          "    connect: 1s\n    read: 6s\n"),
                 "Read timeout cannot be larger than request timeout", id="read over call"),
    pytest.param(v3(extra="transport:\n  timeouts:\n    connect: 0ms\n"), "Timeout durations must be larger than 0",
                 id="async zero connect"),
    pytest.param(v3(extra="transport:\n  type: io.statefun.transports.v1/okhttp\n  timeouts:\n    call: 5s\n"),
                 "Connect timeout cannot be larger than request timeout", id="default connect over call"),
    pytest.param(v3(extra="maxNumBatchRequests: many\n"), "expected an integer", id="batch not a number"),
    pytest.param(v3() + "---\n" + v3(), "functions example/greeter are bound twice", id="bound twice"),
    pytest.param("kind: io.statefun.endpoints.v9/http\nspec: {}\n", "no binder", id="unknown kind"),
    pytest.param(v3() + "---\nspec:\n  functions: example/other\n", "document 2: a component is a mapping with",
                 id="no kind"),
    pytest.param('version: "3.1"\nmodule:\n  meta:\n    type: remote\n  spec: {}\n', "'3.1' is not a format",
                 id="version 3.1"),
    pytest.param(v3() + V3_KAFKA.replace("  consumerGroupId: greeter\n", ""), "'consumerGroupId' is required",
                 id="kafka without group"),
    pytest.param(v3() + V3_KAFKA.replace("      targets: [example/greeter]\n", ""), "'targets' is required",
                 id="kafka route without targets"),
]


@pytest.mark.parametrize("text, error", V3_ERRORS)
def test_v3_refuses_what_the_3_3_loader_refuses(text: str, error: str) -> None:
    with pytest.raises(ModuleYamlError) as info:
        parse_module_yaml(text, source="m.yaml")
    assert str(info.value).startswith("m.yaml: ")
    assert error in str(info.value)
    assert "\n" not in str(info.value)


def _registry(*typenames: str) -> StatefulFunctions:
    functions = StatefulFunctions()
    for typename in typenames:
        functions.bind(typename, states=["seen"])(lambda context, message: None)
    return functions


@pytest.mark.parametrize("protocol, transport", [("3.x", ASYNC_TRANSPORT), ("3.x", OKHTTP_TRANSPORT),
                                                 ("3.0", OKHTTP_TRANSPORT)])
def test_generated_v3_files_load_back_without_states(protocol: str, transport: str) -> None:
    functions = _registry("example/greeter", "example/formatter")
    text = generate_module_yaml(functions, "http://app:8000/statefun", protocol=protocol, transport=transport,
                                max_batch_size=5, timeout=timedelta(seconds=4))
    assert "states" not in text
    module = parse_module_yaml(text)
    assert module.protocol == "3.x" and module.version == ("3.0" if protocol == "3.0" else "kind")
    for typename in ("example/greeter", "example/formatter"):
        spec = module.function(typename)
        assert spec is not None and spec.endpoint == "http://app:8000/statefun"
        assert (spec.transport, spec.max_batch_size, spec.timeout) == (transport, 5, timedelta(seconds=4))
    assert check_module_yaml(module, functions, path="/statefun") == []


def test_check_v3_reports_routes_and_paths_not_states() -> None:
    functions = _registry("example/greeter", "other/fn")
    module = parse_module_yaml(v3("example/*", "http://app:8000/statefun/{function.name}") + "---\n"
                               + v3("example/ghost"))
    problems = check_module_yaml(module, functions, path="/statefun")
    kinds = sorted(problem.kind for problem in problems)
    assert kinds == ["endpoint", "missing-function", "unbound"]
    assert any("other/fn is missing" in problem for problem in problems)
    assert any("example/ghost is not bound" in problem for problem in problems)
    assert any("/statefun/greeter" in problem for problem in problems)


def test_generated_v3_endpoint_may_be_a_url_path_template() -> None:
    functions = _registry("example/greeter")
    text = generate_module_yaml(functions, "http://app:8000/fn/{function.name}", protocol="3.x")
    assert parse_module_yaml(text).function("example/greeter").endpoint == (  # type: ignore[union-attr]
        "http://app:8000/fn/greeter")
    with pytest.raises(ValueError, match="must be percent-encoded"):
        generate_module_yaml(functions, "http://app:8000/fn/{function.name}")  # 2.x has no template


# -- as StateFun 3.3.0 reads it (the table is checked on the real runtime by tests/e2e) -----


@pytest.mark.parametrize("case", module_yaml3_cases.params())
def test_accepts_what_the_3_3_runtime_accepts(case: module_yaml3_cases.Case) -> None:
    """Each file of the 3.x table: ours accepts it, or refuses it with the table's error, on one
    line naming the file and where in it (the document or entry, its kind, the function)."""
    assert_as_the_table_says(case)


def test_the_3x_table_agrees_with_the_runtime_but_where_it_says_why_not() -> None:
    assert_agrees_but_where_divergent(module_yaml3_cases)


@pytest.mark.parametrize("text, where", [
    pytest.param(module_yaml3_cases.endpoint(extra=module_yaml3_cases.okhttp("call: 0s\n")),
                 "document 1 (io.statefun.endpoints.v2/http) (example/greeter).spec.transport.timeouts.call:",
                 id="endpoint"),
    pytest.param(module_yaml3_cases.with_egress("type: at-least-once", "type: sometimes"),
                 "document 2 (io.statefun.kafka.v1/egress) (example/greets).spec.deliverySemantic.type:",
                 id="egress"),
    pytest.param(module_yaml3_cases.legacy(module_yaml3_cases._LEGACY_ENDPOINT.replace("example/*", "example/gr*")),
                 "module.spec.endpoints[0].endpoint (io.statefun.endpoints.v1/http).spec.functions:", id="3.0"),
])
def test_3x_errors_name_the_document_kind_function_and_key(text: str, where: str) -> None:
    with pytest.raises(ModuleYamlError) as info:
        parse_module_yaml(text, source="m.yaml")
    assert str(info.value).startswith(f"m.yaml: {where} "), str(info.value)


def test_3x_reads_numbers_as_jackson_2_12_does() -> None:
    """maxNumBatchRequests (an int to the runtime's Jackson): '_', hex, octal, strings, floats."""
    def batch(value: str) -> int:
        text = module_yaml3_cases.endpoint(extra=f"maxNumBatchRequests: {value}\n")
        return parse_module_yaml(text).functions["example/greeter"].max_batch_size

    assert [batch(v) for v in ("1_000", "0x10", "010", "0b11", '"+5"', '" 7 "', "5.9", "-5.9", "", '""')] == [
        1000, 16, 8, 3, 5, 7, 5, -5, 0, 0]


def test_3x_type_names_are_as_the_runtime_names_them() -> None:
    module = parse_module_yaml(module_yaml3_cases.docs(module_yaml3_cases.endpoint("example/greeter/"),
                                                       module_yaml3_cases.endpoint("/other")))
    assert sorted(module.functions) == ["/other", "example/greeter"]


def test_generated_2_0_states_carry_their_valuespec_expiry() -> None:
    """The 2.x runtime takes state expiry from module.yaml alone: generate writes each ValueSpec's."""
    module = parse_module_yaml(module_yaml_cases.generated())
    assert module.functions["example/counter"].states == (
        StateSpec("count"),
        StateSpec("seen", timedelta(days=1), "after-invoke"),
        StateSpec("last", timedelta(milliseconds=1500), "after-write"),
    )


def _official_api_registry() -> StatefulFunctions:
    from statefun_wsgi.v3 import IntType, StatefulFunctions as OfficialApi, StringType, ValueSpec as OfficialSpec

    functions = OfficialApi()
    functions.register("example/greeter", lambda context, message: None, specs=[
        OfficialSpec("seen", IntType, expire_after_call=timedelta(minutes=5)),
        OfficialSpec("name", StringType, expire_after_write=timedelta(seconds=30)), OfficialSpec("plain", IntType)])
    functions.register("example/stateless", lambda context, message: None)
    return functions


def test_an_official_api_registry_gets_a_3x_file_by_default() -> None:
    functions = _official_api_registry()
    text = generate_module_yaml(functions, "http://app:8000/statefun")
    assert text.startswith("kind: io.statefun.endpoints.v2/http\n") and "states" not in text
    module = parse_module_yaml(text)
    assert module.protocol == "3.x" and module.function("example/greeter") is not None
    assert check_module_yaml(module, functions, path="/statefun") == []
    assert generate_module_yaml(_registry("example/greeter"), "http://app:8000/statefun").startswith('version: "2.0"')


def test_an_official_api_registry_in_a_2_0_file_has_its_valuespecs_states_and_expiry() -> None:
    functions = _official_api_registry()
    module = parse_module_yaml(generate_module_yaml(functions, "http://app:8000/statefun", protocol="2.x"))
    assert module.functions["example/greeter"].states == (
        StateSpec("seen", timedelta(minutes=5), "after-invoke"),
        StateSpec("name", timedelta(seconds=30), "after-write"),
        StateSpec("plain"),
    )
    assert check_module_yaml(module, functions) == []
    module = parse_module_yaml(generate_module_yaml(functions, "http://app:8000/statefun", protocol="2.x")
                               .replace("              - name: plain\n", ""))
    assert [problem.kind for problem in check_module_yaml(module, functions)] == ["missing-state"]


@pytest.mark.parametrize("state, found", [
    ("              - name: seen\n", "never expires"),
    ("              - name: seen\n                expireAfter: 5min\n", None),  # after-invoke is the default
    ("              - name: seen\n                expireAfter: 5min\n                expireMode: after-write\n",
     "expires 5min after-write"),
    ("              - name: seen\n                expireAfter: 1h\n                expireMode: after-invoke\n",
     "expires 1h after-invoke"),
])
def test_check_2_0_finds_a_declared_expiry_the_file_does_not_give(state: str, found: Optional[str]) -> None:
    functions = _official_api_registry()
    text = generate_module_yaml(functions, "http://app:8000/statefun", protocol="2.x")
    written = "              - name: seen\n                expireAfter: 5min\n                expireMode: after-invoke\n"
    assert written in text
    problems = check_module_yaml(parse_module_yaml(text.replace(written, state)), functions)
    if found is None:
        assert problems == []
        return
    assert [problem.kind for problem in problems] == ["expiry"]
    assert problems[0] == (
        f"<module.yaml>: example/greeter declares state 'seen' expiring 5min after-invoke, but in module.yaml it "
        f"{found} (the 2.x runtime applies the file's): write 'expireAfter: 5min' and 'expireMode: after-invoke' "
        "under it")


def test_check_2_0_leaves_an_expiry_only_the_file_gives_alone() -> None:
    functions = _registry("example/greeter")  # declares its states by name only: expiry is the file's business
    text = generate_module_yaml(functions, "http://app:8000/statefun")
    assert "- name: seen" in text
    text = text.replace("              - name: seen\n", "              - name: seen\n                expireAfter: 1h\n")
    assert check_module_yaml(parse_module_yaml(text), functions) == []
