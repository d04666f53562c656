"""Tests for statefun_wsgi.module_yaml: reading, writing and checking module.yaml."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from statefun_wsgi import ConfigurationError, StatefulFunctions
from statefun_wsgi.module_yaml import (
    DEFAULT_IO_TIMEOUT,
    DEFAULT_MAX_BATCH,
    DEFAULT_TIMEOUT,
    EgressSpec,
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
            readTimeout: 500
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
        parse_module_yaml('version: "9"\n', source="deploy/module.yaml")


# -- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2min", timedelta(minutes=2)),
        ("10s", timedelta(seconds=10)),
        ("60000millisecond", timedelta(seconds=60)),
        ("1h", timedelta(hours=1)),
        (500, timedelta(milliseconds=500)),
        ("500", timedelta(milliseconds=500)),
        ("10 s", timedelta(seconds=10)),
        ("250ms", timedelta(milliseconds=250)),
        ("3 minutes", timedelta(minutes=3)),
        ("2d", timedelta(days=2)),
        ("1500us", timedelta(microseconds=1500)),
        ("2SECONDS", timedelta(seconds=2)),
    ],
    ids=lambda value: None if isinstance(value, timedelta) else repr(value),
)
def test_parse_duration(text, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "s", "ten seconds", "1.5s", "-1s", "10 fortnights", True])
def test_parse_duration_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2min", timedelta(minutes=2)),
        ("10s", timedelta(seconds=10)),
        ("60000millisecond", timedelta(minutes=1)),
        ("1h", timedelta(hours=1)),
        ("500", timedelta(milliseconds=500)),
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
                    type: example/fn
                  spec:
                    endpoint: http://localhost:8000/statefun
                    states:
                      - name: s
                        expireAfter: {written}
                    timeout: {written}
        """,
    )
    function = load_module_yaml(path).functions["example/fn"]
    assert function.timeout == expected
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
        'version: "3.0"\nmodule:\n  meta:\n    type: remote\n',
        "version",
        "expected \"1.0\" or \"2.0\", found '3.0'",
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
        "'ftp://localhost/statefun' is not an http(s) or http(s)+unix URL",
        id="bad endpoint scheme",
    ),
    pytest.param(
        function_entry(f"{ENDPOINT}\nstates:\n  - name: seen_count").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec.states[0]",
        "format 1.0 lists state names as strings",
        id="state mapping in 1.0",
    ),
    pytest.param(
        function_entry(
            f"{ENDPOINT}\nstates:\n  - name: seen_count\n    expireAfter: 1h\n    expireMode: after-read"
        ).format(version="2.0"),
        "module.spec.functions[0] (example/greeter).spec.states[0]",
        "expireMode 'after-read' is not one of after-invoke, after-write",
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
        + "      - function:\n          meta:\n            type: example/greeter\n"
        + "          spec:\n            endpoint: http://other:8000/statefun\n",
        "module.spec.functions[1]",
        "function type example/greeter appears twice",
        id="duplicate function",
    ),
    pytest.param(
        function_entry(f"{ENDPOINT}\ntimeout: 10 fortnights").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec",
        "'timeout': '10 fortnights' has an unknown time unit 'fortnights'",
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
        "the document",
        "expected a mapping, found list",
        id="not a mapping",
    ),
    pytest.param(
        function_entry(f"{ENDPOINT}\nmaxNumBatchRequests: 0").format(version="1.0"),
        "module.spec.functions[0] (example/greeter).spec.maxNumBatchRequests",
        "expected a positive integer, found 0",
        id="maxNumBatchRequests 0",
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
    where = "module.spec.functions[0] (example/greeter).spec.states[0]"
    assert str(info.value).startswith(f"{path}: {where}: 'expireAfter': 'soon' is not a duration")


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
    text = generate_module_yaml(functions, f"http://app:8000/{name}")
    spec = parse_module_yaml(text)
    assert list(spec.functions) == [f"example/{name}"]
    function = spec.functions[f"example/{name}"]
    assert function.state_names == (name,)
    assert function.endpoint == f"http://app:8000/{name}"
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
            type: example/greeter
          spec:
            endpoint: http://app:8000/statefun
            states:
              - name: seen_count
              - name: stale
      - function:
          meta:
            type: example/formatter
          spec:
            endpoint: http://app:8000/statefun
            states:
              - name: anything
      - function:
          meta:
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
