"""Tests for the ``statefun-wsgi`` command (run as ``python -m statefun_wsgi``, as a user
would, from the repository root): help, module-yaml generate/check, one-line errors,
and dev / run / send driving the greeter example under real gunicorn."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest
from servers import REPO, Server, free_port, gunicorn

from examples.greeter.functions import functions as greeter_functions
from statefun_wsgi.module_yaml import check_module_yaml, parse_module_yaml

GREET = "example.greeter.GreetRequest"
FAST_REMINDERS = {"STATEFUN_REMINDER_DELAY_MS": "300"}


def cli(
    *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 30, cwd: Optional[Path] = None
) -> subprocess.CompletedProcess:
    """``python -m statefun_wsgi ARGS`` from the repository root, or from ``cwd`` (with the
    repository on PYTHONPATH, as for a project of one's own that imports the examples)."""
    environment = dict(os.environ)
    if cwd is not None:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "statefun_wsgi", *args],
        cwd=cwd or REPO, env=environment, capture_output=True, text=True, timeout=timeout,
    )


def json_lines(stdout: str) -> List[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def egress_values(lines: Sequence[dict], topic: str) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {}
    for line in lines:
        if line["event"] == "egress" and line["kafka"]["topic"] == topic:
            found.setdefault(line["kafka"]["key"], []).append(line["kafka"]["value"])
    return found


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit 1 and one error line on stderr (after the CLI's "# ..." progress notes, if any)."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("# ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("statefun-wsgi: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a run whose stderr also carries gunicorn's log: the last line."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("statefun-wsgi: error: "), result.stderr
    assert sum(line.startswith("statefun-wsgi: error: ") for line in lines) == 1, result.stderr
    return lines[-1]


# -- help -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [[], ["dev"], ["run"], ["send"], ["module-yaml"], ["module-yaml", "generate"], ["module-yaml", "check"]],
    ids=lambda command: " ".join(command) or "top",
)
def test_help(command: List[str]) -> None:
    result = cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: statefun-wsgi")
    assert result.stderr == ""


def test_no_command_is_a_usage_error() -> None:
    result = cli()
    assert result.returncode == 2
    assert "usage: statefun-wsgi" in result.stderr


# -- module-yaml ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``module-yaml generate app:wsgi``, written to a file."""
    result = cli("module-yaml", "generate", "app:wsgi", "--endpoint", "http://app:8000/statefun")
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("cli") / "module.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    return path


def test_generate_prints_a_module_yaml_that_checks_clean(generated: Path) -> None:
    spec = parse_module_yaml(generated.read_text(encoding="utf-8"))
    assert sorted(spec.functions) == ["example/formatter", "example/greeter"]
    assert spec.functions["example/greeter"].state_names == ("seen_count",)
    assert spec.functions["example/greeter"].endpoint == "http://app:8000/statefun"
    assert check_module_yaml(spec, greeter_functions) == []

    result = cli("module-yaml", "check", str(generated), "app:wsgi")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{generated}: agrees with app:wsgi\n"


def test_check_finds_the_registry_behind_other_references(generated: Path) -> None:
    for reference in ("examples.greeter.functions:functions", "examples.greeter.functions",
                      "examples.django_project.wsgi:application",  # Django, wrapped in wsgi.py
                      "examples.django_project.wsgi:django_application"):  # Django, STATEFUN_FUNCTIONS
        result = cli("module-yaml", "check", str(generated), reference)
        assert result.returncode == 0, (reference, result.stdout, result.stderr)


MISMATCHING = """\
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
            endpoint: http://app:8000/statefun
            states:
              - visits
      - function:
          meta:
            kind: http
            type: example/ghost
          spec:
            endpoint: http://app:8000/statefun
"""


def test_check_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(MISMATCHING, encoding="utf-8")
    result = cli("module-yaml", "check", str(path), "app:wsgi")
    assert result.returncode == 1
    problems = result.stdout.splitlines()
    assert len(problems) == 4, result.stdout
    assert all(problem.startswith(f"{path}: ") for problem in problems)
    text = result.stdout
    assert "example/ghost is not bound" in text
    assert "example/formatter is missing" in text
    assert "example/greeter uses state 'seen_count'" in text and "'- name: seen_count'" in text
    assert "example/greeter registers state 'visits'" in text


def test_check_reports_what_the_runtime_refuses(tmp_path: Path, generated: Path) -> None:
    """A timeout under the 10 s default I/O timeouts: the runtime refuses the file, so does check."""
    path = tmp_path / "module.yaml"
    text = generated.read_text(encoding="utf-8")
    path.write_text(text.replace("endpoint: http://app:8000/statefun\n",
                                 "endpoint: http://app:8000/statefun\n            timeout: 5s\n", 1), encoding="utf-8")
    result = cli("module-yaml", "check", str(path), "app:wsgi")
    assert_one_line_error(result, f"{path}: module.spec.functions[0] (example/formatter).spec.timeout: '5s' is "
                                  "shorter than connectTimeout (10s when not set), which the runtime refuses")


# -- one-line errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        pytest.param(["module-yaml", "generate", "no_such_module:wsgi", "--endpoint", "http://x/statefun"],
                     ["cannot import 'no_such_module'"], id="app module missing"),
        pytest.param(["module-yaml", "generate", "app:nothing", "--endpoint", "http://x/statefun"],
                     ["'app' has no attribute 'nothing'"], id="app attribute missing"),
        pytest.param(["module-yaml", "generate", "examples.greeter.messages_pb2", "--endpoint", "http://x/statefun"],
                     ["found no StatefulFunctions behind 'examples.greeter.messages_pb2'"], id="no registry"),
        pytest.param(["module-yaml", "generate", "app:wsgi", "--endpoint", "ftp://x/statefun"],
                     ["endpoint: 'ftp://x/statefun': the scheme 'ftp' is not http"], id="generate bad endpoint"),
        pytest.param(["module-yaml", "check", "no/such/module.yaml", "app:wsgi"],
                     ["no/such/module.yaml: cannot read"], id="check missing file"),
        pytest.param(["run", "--module", "no/such/module.yaml", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["no/such/module.yaml: cannot read"], id="run missing file"),
        pytest.param(["dev", "no_such_module:wsgi", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["cannot import 'no_such_module'"], id="dev bad app"),
        pytest.param(["send", "example/greeter", f'{{"@type": "{GREET}"}}'],
                     ["is not an address like 'namespace/type/id'"], id="send bad address"),
        pytest.param(["send", "example/greeter/x", "{not json", "--ingress", "http://127.0.0.1:1"],
                     ["the JSON argument '{not json' is not JSON (Expecting property name"], id="send bad JSON"),
        pytest.param(["send", "example/greeter/alice", "name=alice"],
                     ["the JSON argument 'name=alice' is not JSON", '\'{"@type": "pkg.Message"'], id="send key=value"),
        pytest.param(["send", "example/greeter/alice", '{"name": "alice"}'],
                     ["the JSON argument", "is not a message", '"@type"'], id="send no @type"),
        pytest.param(["send", "example/greeter/x", f'{{"@type": "{GREET}"}}', "--ingress", f"127.0.0.1:{free_port()}"],
                     ["cannot reach the ingress at http://127.0.0.1:",
                      "is statefun-wsgi dev APP or statefun-wsgi run --module MODULE_YAML running"],
                     id="send no ingress"),
        pytest.param(["run", "--module", "deploy/module.yaml", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["deploy/module.yaml: endpoint http://greeter-app-runtime:9000/statefun: cannot resolve 'greeter-app-runtime'",
                      "pass --endpoint http://127.0.0.1:9000/statefun"], id="run without --endpoint"),
        pytest.param(["dev", "examples.greeter.functions:functions", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["examples.greeter.functions:functions is a StatefulFunctions registry, not a WSGI app",
                      "wsgi = StatefunMiddleware(None, functions)"], id="dev a registry"),
        pytest.param(["dev", "app", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["'app' is a module", "gunicorn serves its 'application'", "pass one of: app:wsgi"],
                     id="dev a module"),
        pytest.param(["dev", "examples.flask_app", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["pass one of: examples.flask_app:app"], id="dev the Flask module"),
        pytest.param(["dev", "app:wsgi", "--path", "sf", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["--path 'sf': a path starts with '/'"], id="dev path without slash"),
        pytest.param(["dev", "examples.flask_app:app", "--path", "/sf", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["examples.flask_app:app serves its functions on /statefun, not /sf"], id="dev other path"),
        pytest.param(["module-yaml", "check", "app:wsgi", "deploy/module.yaml"],
                     ["'app:wsgi' is not a file and 'deploy/module.yaml' is: the module.yaml comes first",
                      "module-yaml check deploy/module.yaml app:wsgi"], id="check arguments swapped"),
    ],
)
def test_errors_are_one_line_with_exit_1(args: List[str], fragments: List[str]) -> None:
    result = cli(*args)
    assert_one_line_error(result, *fragments)
    assert len(result.stderr.splitlines()) == 1  # found before anything started: nothing else printed
    assert result.stdout == ""


def test_malformed_module_yaml_is_one_line_naming_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(MISMATCHING.replace("http://app:8000", "ftp://app"), encoding="utf-8")
    result = cli("run", "--module", str(path), "--until-idle", "--ingress", "127.0.0.1:0")
    assert_one_line_error(result, f"{path}: module.spec.functions[0] (example/greeter).spec.endpoint", "ftp://app")


def test_send_file_errors_name_the_line(tmp_path: Path, generated: Path) -> None:
    path = tmp_path / "visits.jsonl"
    path.write_text('# a comment\n{"to": "example/greeter/alice", "message": {"@type": "x"}}\n{"to": 1}\n')
    result = cli("run", "--module", str(generated), "--endpoint", f"http://127.0.0.1:{free_port()}/statefun",
                 "--send-file", str(path), "--until-idle", "--ingress", "127.0.0.1:0")
    assert_one_line_error(result, f"{path}:3: expected")


# -- dev ---------------------------------------------------------------------------------------------


def test_dev_runs_the_greeter_and_prints_what_flows() -> None:
    started = time.monotonic()
    result = cli("dev", "app:wsgi", "--send-file", "examples/greeter/visits.jsonl", "--until-idle",
                 "--ingress", "127.0.0.1:0", env=FAST_REMINDERS, timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    lines = json_lines(result.stdout)
    assert egress_values(lines, "greetings") == {
        "alice": ["Hello alice! Nice to meet you.", "Hello alice! This is visit number 2.",
                  "Hello alice! This is visit number 3."],
        "bob": ["Hello bob! Nice to meet you."],
    }
    assert egress_values(lines, "reminders") == {
        "alice": ["Hi alice, still there? Come back soon!"],
        "bob": ["Hi bob, still there? Come back soon!"],
    }
    assert {"event": "delayed", "to": "example/greeter/bob", "caller": "example/greeter/bob", "delay_ms": 300,
            "message": {"@type": "type.googleapis.com/example.greeter.Reminder", "name": "bob"}} in lines
    states = [line for line in lines if line["event"] == "state" and line["address"] == "example/greeter/alice"]
    assert states[-1]["value"] == {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "3"}
    assert "# ingress on http://127.0.0.1:" in result.stderr
    # When it stops, what the functions answered (batches: as many as the messages' timing made).
    summary = result.stderr[result.stderr.index("# what the functions answered (2 gunicorn workers"):]
    for function, invocations in (("example/formatter", 4), ("example/greeter", 10)):
        line = re.search(rf"^#   {function}: (\d+) batch(es)? \(200: (\d+)\), {invocations} invocations, "
                         r"p50 [\d.]+ ms, p99 [\d.]+ ms$", summary, re.M)
        assert line and line.group(1) == line.group(3), summary


def test_dev_quiet_prints_nothing() -> None:
    result = cli("dev", "app:wsgi", "--send", "example/greeter/zoe", f'{{"@type": "{GREET}", "name": "zoe"}}',
                 "--until-idle", "--quiet", "--ingress", "127.0.0.1:0", env=FAST_REMINDERS, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_dev_answers_the_functions_on_the_runtimes_listener_only() -> None:
    """The local runtime calls --runtime-port; on --port, /statefun is the app's own 404."""
    import http.client
    import signal

    from builders import request
    from examples.greeter.messages_pb2 import GreetRequest

    public, runtime = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "statefun_wsgi", "dev", "app:wsgi", "--port", str(public), "--runtime-port",
         str(runtime), "--ingress", "127.0.0.1:0", "--quiet"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    batch = request("example/greeter", "alice", state={"seen_count": None}, messages=[GreetRequest(name="alice")])

    def post(port: int) -> tuple:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", "/statefun", body=batch, headers={
                "Content-Type": "application/octet-stream", "Host": f"127.0.0.1:{runtime}"})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answers = {"public": post(public), "runtime": post(runtime)}
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "dev did not serve both ports"
                time.sleep(0.1)
        assert answers["public"] == (404, b"Not Found\n")  # app.py's own page for an unknown path
        assert answers["runtime"][0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    assert (f"# serving app:wsgi with gunicorn: the app on http://127.0.0.1:{public}/, the functions on "
            f"http://127.0.0.1:{runtime}/statefun (the runtime's listener)") in stderr


# -- run and send, against gunicorn ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with gunicorn("app:wsgi", "--workers", "1", "--worker-class", "gthread", "--threads", "4",
                  env={**FAST_REMINDERS, "STATEFUN_ACCESS_LOG": "off"}) as running:
        yield running


def test_run_against_gunicorn(server: Server, generated: Path) -> None:
    result = cli(
        "run", "--module", str(generated), "--endpoint", f"{server.base_url}/statefun",
        "--import", "examples.greeter.messages_pb2",
        "--send", "example/greeter/erin", f'{{"@type": "{GREET}", "name": "erin"}}',
        "--send", "example/greeter/erin", f'{{"@type": "{GREET}", "name": "erin"}}',
        "--until-idle", "--ingress", "http://127.0.0.1:0/",  # the URL form, as send takes it
    )
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert egress_values(lines, "greetings") == {
        "erin": ["Hello erin! Nice to meet you.", "Hello erin! This is visit number 2."]
    }
    assert egress_values(lines, "reminders") == {"erin": ["Hi erin, still there? Come back soon!"]}


def test_run_without_import_cannot_build_json_messages(server: Server, generated: Path) -> None:
    result = cli(
        "run", "--module", str(generated), "--endpoint", f"{server.base_url}/statefun",
        "--send", "example/greeter/erin", f'{{"@type": "{GREET}", "name": "erin"}}',
        "--until-idle", "--ingress", "127.0.0.1:0",
    )
    assert_one_line_error(result, "cannot send to example/greeter/erin",
                          "import the module that defines it (statefun-wsgi run: --import MODULE)")


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_send_to_a_running_runtime(server: Server, generated: Path) -> None:
    port = free_port()
    ingress = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "statefun_wsgi", "run", "--module", str(generated),
         "--endpoint", f"{server.base_url}/statefun", "--import", "examples.greeter.messages_pb2",
         "--ingress", f"127.0.0.1:{port}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"{ingress}/health", timeout=1) as response:
                    assert response.read() == b"ok\n"
                break
            except OSError:
                assert time.monotonic() < deadline, "the ingress never answered /health"
                time.sleep(0.05)

        sent = cli("send", "example/greeter/finn", f'{{"@type": "{GREET}", "name": "finn"}}', "--ingress", ingress)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) == {"accepted": "example/greeter/finn", "type": f"type.googleapis.com/{GREET}"}

        # Bare HOST:PORT works too; a bad message is the ingress's 400, in one line.
        rejected = cli("send", "example/nobody/finn", f'{{"@type": "{GREET}", "name": "finn"}}',
                       "--ingress", f"127.0.0.1:{port}")
        assert_one_line_error(rejected, "the ingress answered 400", "no function type example/nobody")

        deadline = time.monotonic() + 20
        while True:
            records = get_json(f"{ingress}/egress/example/greets")
            topics = [record["kafka"]["topic"] for record in records]
            if topics == ["greetings", "reminders"]:
                break
            assert time.monotonic() < deadline, records
            time.sleep(0.05)
        assert records[0]["kafka"] == {"topic": "greetings", "key": "finn", "value": "Hello finn! Nice to meet you."}
        assert get_json(f"{ingress}/state/example/greeter/finn/seen_count") == {
            "@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "1"
        }
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert egress_values(json_lines(stdout), "reminders") == {"finn": ["Hi finn, still there? Come back soon!"]}


# -- help, the README's table -------------------------------------------------------------------------


def test_version() -> None:
    from statefun_wsgi import __version__

    result = cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"statefun-wsgi {__version__} (StateFun 2.x)\n"


@pytest.mark.parametrize("command", [["module-yaml", "generate"], ["module-yaml", "check"]], ids=" ".join)
def test_module_yaml_help_describes_the_command_and_its_arguments(command: List[str]) -> None:
    text = cli(*command, "--help").stdout
    usage, description, *sections = text.split("\n\n")
    assert len(description.split()) > 8, text  # a sentence, not the usage line again
    positionals = text.split("positional arguments:\n", 1)[1].split("\n\n", 1)[0]
    for name in ("MODULE_YAML", "APP") if command[1] == "check" else ("APP",):
        line = next(line for line in positionals.splitlines() if line.strip().startswith(name))
        assert len(line.split()) > 3, positionals  # the name and what to pass


@pytest.mark.parametrize(
    ("command", "defaults"),
    [(["send"], ["(default 127.0.0.1:8090)", "(default 10)"]),
     (["run"], ["(default 127.0.0.1:8090", "(default 120)"]),
     (["dev"], ["(default 127.0.0.1:8090", "(default 120)", "(default 2)"])],
    ids=lambda value: " ".join(value) if isinstance(value[0], str) and not value[0].startswith("(") else None,
)
def test_help_shows_defaults_and_one_ingress_form(command: List[str], defaults: List[str]) -> None:
    text = " ".join(cli(*command, "--help").stdout.split())
    for default in defaults:
        assert default in text, text
    assert "--ingress HOST:PORT" in text and "HOST:PORT or http://HOST:PORT" in text, text


def readme_commands() -> Dict[str, str]:
    """The README's CLI table: the command's name ("run", "module-yaml check") -> the row's command."""
    rows = {}
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("| `statefun-wsgi "):
            command = line.split("`")[1]
            words = command.split()
            name = " ".join(words[1:3]) if words[1] == "module-yaml" else words[1]
            rows[name] = command
    return rows


def test_the_readme_run_row_shows_what_a_json_message_needs() -> None:
    run = readme_commands()["run"]
    for option in ("--module", "--endpoint", "--import", "--send", "--until-idle"):
        assert option in run, run


@pytest.mark.parametrize("name", ["dev", "run", "send", "module-yaml generate", "module-yaml check"])
def test_every_option_in_the_readme_table_exists(name: str) -> None:
    command = readme_commands()[name]
    text = cli(*name.split(), "--help").stdout
    for option in re.findall(r"(--[a-z-]+)", command):
        assert re.search(rf"{option}\b", text), (option, text)


# -- dev: what it refuses, and what it tells ----------------------------------------------------------------

BUGGY = '''
from google.protobuf.wrappers_pb2 import Int64Value, StringValue
from statefun_wsgi import StatefulFunctions, StatefunMiddleware

functions = StatefulFunctions()

@functions.bind("demo/counter", states=["seen"])
def counter(context, message: StringValue):
    count = context.state(STATE).unpack(Int64Value) or Int64Value()
    count.value += 1
    context.state(STATE).pack(count)

wsgi = StatefunMiddleware(None, functions)
'''


def write_module(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.py").write_text(text, encoding="utf-8")


def test_dev_names_a_state_the_function_does_not_declare_and_stops_at_once(tmp_path: Path) -> None:
    write_module(tmp_path, "buggy", 'STATE = "count"\n' + BUGGY)
    result = cli("dev", "buggy:wsgi", "--workers", "1", "--send", "demo/counter/a",
                 '{"@type": "google.protobuf.StringValue", "value": "x"}', "--until-idle", "--ingress", "127.0.0.1:0",
                 cwd=tmp_path)
    line = error_line(result)
    assert "demo/counter/a: demo/counter (id 'a') raised MissingStateError" in line
    assert "state 'count' was not sent by the runtime for demo/counter (states sent: seen)" in line
    assert 'declare it, @functions.bind("demo/counter", states=["seen", "count"])' in line
    assert "register it in module.yaml" not in line  # dev generated it: the fix is in the code
    assert "every retry fails the same way, so dev stops here" in line
    # One attempt: the worker's traceback once, no retries.
    assert result.stderr.count("Traceback (most recent call last)") == 1, result.stderr
    assert "retrying" not in result.stderr


def test_dev_names_a_message_type_the_function_does_not_take_and_stops_at_once(tmp_path: Path) -> None:
    write_module(tmp_path, "buggy", 'STATE = "seen"\n' + BUGGY)
    result = cli("dev", "buggy:wsgi", "--workers", "1", "--send", "demo/counter/a",
                 '{"@type": "google.protobuf.Int64Value", "value": "3"}', "--until-idle", "--ingress", "127.0.0.1:0",
                 cwd=tmp_path)
    line = error_line(result)
    assert "received a message of type 'type.googleapis.com/google.protobuf.Int64Value', but accepts only: " \
           "google.protobuf.StringValue" in line
    assert "add google.protobuf.Int64Value to the message annotation of demo/counter's function" in line
    assert result.stderr.count("Traceback (most recent call last)") == 1, result.stderr


def test_dev_shows_a_long_error_whole(tmp_path: Path) -> None:
    name = "visits_" + "n" * 320 + "_end"
    write_module(tmp_path, "buggy", f'STATE = "{name}"\n' + BUGGY)
    result = cli("dev", "buggy:wsgi", "--workers", "1", "--send", "demo/counter/a",
                 '{"@type": "google.protobuf.StringValue", "value": "x"}', "--until-idle", "--ingress", "127.0.0.1:0",
                 cwd=tmp_path)
    assert f'states=["seen", "{name}"])' in error_line(result)


FLAKY = '''
import os
from google.protobuf.wrappers_pb2 import StringValue
from statefun_wsgi import StatefulFunctions, StatefunMiddleware, kafka_egress_record

functions = StatefulFunctions()
ATTEMPTS = os.path.join(os.path.dirname(__file__), "attempts")

@functions.bind("demo/flaky")
def flaky(context, message: StringValue):
    with open(ATTEMPTS, "a") as attempts:
        attempts.write("x")
    if os.path.getsize(ATTEMPTS) <= 3:
        raise ConnectionError("the database is not up yet")
    context.pack_and_send_egress("demo/out", kafka_egress_record(topic="out", value="done"))

wsgi = StatefunMiddleware(None, functions)
'''


def test_dev_shows_a_passing_failure_once_and_retries_as_the_runtime_does(tmp_path: Path) -> None:
    write_module(tmp_path, "flaky", FLAKY)
    result = cli("dev", "flaky:wsgi", "--workers", "1", "--send", "demo/flaky/a",
                 '{"@type": "google.protobuf.StringValue", "value": "x"}', "--until-idle", "--ingress", "127.0.0.1:0",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "attempts").read_text() == "xxxx"
    notes = [line for line in result.stderr.splitlines() if line.startswith("# demo/flaky/a failed:")]
    assert len(notes) == 1, result.stderr
    assert "raised ConnectionError in invocation 1 of 1: the database is not up yet" in notes[0]
    assert "retrying as the runtime does" in notes[0]
    assert result.stderr.count("Traceback (most recent call last)") == 1, result.stderr  # the worker's, once
    assert egress_values(json_lines(result.stdout), "out") == {None: ["done"]}


def test_dev_tells_why_gunicorn_could_not_serve_the_app(tmp_path: Path) -> None:
    write_module(tmp_path, "inworker", 'import sys\nfrom app import wsgi\n'
                                       'if "gunicorn.arbiter" in sys.modules:\n'
                                       '    raise RuntimeError("boom in the worker")\n')
    result = cli("dev", "inworker:wsgi", "--until-idle", "--ingress", "127.0.0.1:0", cwd=tmp_path)
    # Status 3 (gunicorn's "worker failed to boot"), or 1 when both workers fail at once and
    # gunicorn halts while halting; the reason and its cause are the same.
    assert re.fullmatch(r"statefun-wsgi: error: gunicorn exited with status [13] before serving: "
                        r"Worker failed to boot: RuntimeError: boom in the worker", error_line(result))


NO_STATES = MISMATCHING.replace("""            states:
              - visits
""", "").replace("example/ghost", "example/formatter")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [pytest.param(NO_STATES, ["example/greeter uses state 'seen_count' but module.yaml does not register it"],
                  id="a state missing"),
     pytest.param(NO_STATES.replace("type: example/greeter", "type: example/greeterr"),
                  ["function example/greeterr is not bound", "bound function example/greeter is missing"],
                  id="a type typo")],
)
def test_dev_checks_module_yaml_before_starting(tmp_path: Path, text: str, fragments: List[str]) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(text, encoding="utf-8")
    result = cli("dev", "app:wsgi", "--module", str(path), "--until-idle", "--ingress", "127.0.0.1:0")
    assert_one_line_error(result, f"{path} does not agree with app:wsgi: ", *fragments)
    assert len(result.stderr.splitlines()) == 1  # gunicorn was not started


def test_dev_warns_of_extra_states_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(NO_STATES.replace("endpoint: http://app:8000/statefun\n",
                                      "endpoint: http://app:8000/statefun\n            states:\n"
                                      "              - visits\n              - seen_count\n", 1), encoding="utf-8")
    result = cli("dev", "app:wsgi", "--module", str(path), "--send", "example/greeter/ann",
                 f'{{"@type": "{GREET}", "name": "ann"}}', "--until-idle", "--ingress", "127.0.0.1:0",
                 env=FAST_REMINDERS, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"# warning: {path}: example/greeter registers state 'visits' that the function does not declare" \
           in result.stderr.splitlines()
    assert egress_values(json_lines(result.stdout), "greetings") == {"ann": ["Hello ann! Nice to meet you."]}


FACTORY = '''
from examples.greeter.functions import functions
from statefun_wsgi import StatefunMiddleware

def create_app(path="/statefun"):
    return StatefunMiddleware(None, functions, path=path)
'''


def test_dev_serves_an_app_factory_on_the_path_its_middleware_serves(tmp_path: Path) -> None:
    write_module(tmp_path, "factory", FACTORY)
    result = cli("dev", 'factory:create_app("/sf")', "--send", "example/greeter/ivy",
                 f'{{"@type": "{GREET}", "name": "ivy"}}', "--until-idle", "--ingress", "127.0.0.1:0",
                 cwd=tmp_path, env=FAST_REMINDERS, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.search(r"# serving factory:create_app\(\"/sf\"\) with gunicorn: the app on http://127\.0\.0\.1:\d+/, "
                     r"the functions on http://127\.0\.0\.1:\d+/sf \(the runtime's listener\)\n",
                     result.stderr), result.stderr
    assert egress_values(json_lines(result.stdout), "greetings") == {"ivy": ["Hello ivy! Nice to meet you."]}


@pytest.mark.parametrize(
    ("reference", "fragment"),
    [("factory:create_app", "factory:create_app is a function that takes no arguments, an app factory? "
                            "gunicorn calls it when written 'factory:create_app()'"),
     ("factory:create_app(path)", "a factory's arguments must be literals"),
     ("factory:create_app(", "is not an attribute name or a call like create_app()"),
     ("factory:create_app(1, 2)", "factory:create_app(1, 2): the factory raised TypeError")],
)
def test_dev_names_what_is_wrong_with_a_factory(tmp_path: Path, reference: str, fragment: str) -> None:
    write_module(tmp_path, "factory", FACTORY)
    result = cli("dev", reference, "--until-idle", "--ingress", "127.0.0.1:0", cwd=tmp_path)
    assert_one_line_error(result, fragment)


def test_dev_uses_its_own_gunicorn_settings_not_a_gunicorn_conf_py_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text('raise SystemExit("a stray gunicorn.conf.py was loaded")\n')
    write_module(tmp_path, "factory", FACTORY)
    result = cli("dev", "factory:create_app()", "--send", "example/greeter/kim",
                 f'{{"@type": "{GREET}", "name": "kim"}}', "--until-idle", "--ingress", "127.0.0.1:0",
                 cwd=tmp_path, env=FAST_REMINDERS, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stray" not in result.stderr
    assert egress_values(json_lines(result.stdout), "greetings") == {"kim": ["Hello kim! Nice to meet you."]}


@pytest.mark.parametrize("command", [["dev", "app:wsgi"], ["run", "--module", "deploy/module.yaml",
                                                           "--endpoint", "http://127.0.0.1:1/statefun"]],
                         ids=["dev", "run"])
def test_a_taken_ingress_port_is_one_line_naming_the_option(command: List[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli(*command, "--until-idle", "--ingress", f"127.0.0.1:{port}")
    assert_one_line_error(result, f"cannot serve the ingress on 127.0.0.1:{port}: Address already in use",
                          "is another statefun-wsgi dev or run up? pass --ingress 127.0.0.1:0")
    assert len(result.stderr.splitlines()) == 1  # nothing was started


def test_run_says_when_nothing_serves_the_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(NO_STATES.replace("endpoint: http://app:8000/statefun\n",
                                      "endpoint: http://app:8000/statefun\n            timeout: 300ms\n"
                                      "            connectTimeout: 300ms\n            readTimeout: 300ms\n"
                                      "            writeTimeout: 300ms\n"),
                    encoding="utf-8")
    result = cli("run", "--module", str(path), "--endpoint", f"http://127.0.0.1:{free_port()}/statefun",
                 "--send", "example/formatter/x", '{"@type": "google.protobuf.StringValue", "value": "x"}',
                 "--until-idle", "--ingress", "127.0.0.1:0")
    line = error_line(result)
    assert "maximal request time has elapsed" in line and "ConnectionRefusedError" in line
    assert line.endswith("is the app serving there? start it (gunicorn -c python:statefun_wsgi.gunicorn_conf app:wsgi), "
                         "or let statefun-wsgi dev serve it")
    assert all(line.startswith("# retrying") for line in result.stderr.splitlines()[1:-1]), result.stderr


# -- module-yaml check: what the README says it finds ---------------------------------------------------------


def test_check_finds_an_endpoint_the_app_does_not_serve(generated: Path, tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(generated.read_text().replace("/statefun", "/statefun/"), encoding="utf-8")
    result = cli("module-yaml", "check", str(path), "app:wsgi")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}: {typename}'s endpoint http://app:8000/statefun/ has the path /statefun/, but the app serves "
        "its functions on /statefun (other paths answer 404, which fails the job)"
        for typename in ("example/formatter", "example/greeter")
    ]


def test_check_notes_states_it_cannot_check(generated: Path, tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text(generated.read_text().replace(
        "type: example/formatter\n          spec:\n            endpoint: http://app:8000/statefun\n",
        "type: example/formatter\n          spec:\n            endpoint: http://app:8000/statefun\n"
        "            states:\n              - name: cache\n"), encoding="utf-8")
    result = cli("module-yaml", "check", str(path), "app:wsgi")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{path}: note: example/formatter registers states 'cache', not checked: the function declares none "
        "(declare them with bind(..., states=[...]) to have them checked)",
        f"{path}: agrees with app:wsgi",
    ]


def test_check_names_the_file_and_line_of_a_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text('version: "2.0"\nmodule:\n  meta: [remote\n', encoding="utf-8")
    result = cli("module-yaml", "check", str(path), "app:wsgi")
    assert_one_line_error(result, f"{path}: not valid YAML at line 4, column 1: ")
    assert "<unicode string>" not in result.stderr


def test_dev_stops_and_says_so_when_gunicorn_goes() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "statefun_wsgi", "dev", "app:wsgi", "--ingress", f"127.0.0.1:{port}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # the ingress answers once gunicorn serves
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the ingress never answered /health"
                time.sleep(0.05)
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 1, children  # gunicorn's master
        os.kill(int(children[0]), signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, stderr
    assert stderr.splitlines()[-1] == "statefun-wsgi: error: gunicorn was killed by signal 9"


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_gunicorn_stops_when_dev_is_killed() -> None:
    """However dev goes (here SIGKILL, which it cannot handle), its gunicorn does not outlive it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "statefun_wsgi", "dev", "app:wsgi", "--ingress", f"127.0.0.1:{port}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    master = None
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the ingress never answered /health"
                time.sleep(0.05)
        (master,) = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        process.kill()
        process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while running(int(master)):
            assert time.monotonic() < deadline, "gunicorn outlived dev"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if master is not None and running(int(master)):
            os.kill(int(master), signal.SIGTERM)  # the test failed: leave nothing behind


# -- StateFun 3.x module.yaml and the local runtime's 3.x protocol -----------------------------------


@pytest.fixture(scope="module")
def generated_v3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``module-yaml generate app:wsgi --format kind``, written to a file."""
    result = cli("module-yaml", "generate", "app:wsgi", "--endpoint", "http://app:8000/statefun", "--format", "kind")
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("cli3") / "module.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    return path


def test_generate_kind_format_checks_clean_and_has_no_states(generated_v3: Path) -> None:
    text = generated_v3.read_text(encoding="utf-8")
    assert text.startswith("kind: io.statefun.endpoints.v2/http\n") and "states" not in text
    assert "type: io.statefun.transports.v1/async" in text
    spec = parse_module_yaml(text)
    assert spec.protocol == "3.x" and sorted(spec.functions) == ["example/formatter", "example/greeter"]
    result = cli("module-yaml", "check", str(generated_v3), "app:wsgi")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{generated_v3}: agrees with app:wsgi\n"


@pytest.mark.parametrize("form, transport, head", [
    ("3.0", "okhttp", 'version: "3.0"\n'),
    ("kind", "okhttp", "kind: io.statefun.endpoints.v2/http\n"),
])
def test_generate_other_3x_forms(form: str, transport: str, head: str) -> None:
    result = cli("module-yaml", "generate", "app:wsgi", "--endpoint", "http://app:8000/statefun", "--format", form,
                 "--transport", transport)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(head)
    spec = parse_module_yaml(result.stdout)
    assert spec.function("example/greeter").transport == "io.statefun.transports.v1/okhttp"  # type: ignore


def test_check_a_3x_file_names_routes_and_paths(tmp_path: Path) -> None:
    path = tmp_path / "module.yaml"
    path.write_text("kind: io.statefun.endpoints.v2/http\nspec:\n  functions: example/*\n"
                    "  urlPathTemplate: http://app:8000/fn/{function.name}\n", encoding="utf-8")
    result = cli("module-yaml", "check", str(path), "app:wsgi")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{path}: example/greeter's endpoint http://app:8000/fn/greeter has the path /fn/greeter" in result.stdout
    path.write_text("kind: io.statefun.endpoints.v2/http\nspec:\n  functions: example/gr*\n"
                    "  urlPathTemplate: http://app:8000/statefun\n", encoding="utf-8")
    assert_one_line_error(cli("module-yaml", "check", str(path), "app:wsgi"),
                          "only <namespace>/<name> or <namespace>/* are supported")


def test_dev_speaks_3x_and_prints_the_states_the_functions_declare() -> None:
    result = cli("dev", "app:wsgi", "--protocol", "3.x", "--send-file", "examples/greeter/visits.jsonl",
                 "--until-idle", "--ingress", "127.0.0.1:0", env=FAST_REMINDERS, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert egress_values(lines, "greetings") == {
        "alice": ["Hello alice! Nice to meet you.", "Hello alice! This is visit number 2.",
                  "Hello alice! This is visit number 3."],
        "bob": ["Hello bob! Nice to meet you."],
    }
    registered = [line for line in lines if line["event"] == "register"]
    # The greeter declares seen_count with ValueSpec(..., expire_after_call=timedelta(days=1)).
    assert {"event": "register", "address": registered[0]["address"], "state": "seen_count",
            "type": "type.googleapis.com/google.protobuf.Any", "expire": "1d"} in registered
    states = [line for line in lines if line["event"] == "state" and line["address"] == "example/greeter/alice"]
    assert states[-1]["value"] == {"@type": "type.googleapis.com/google.protobuf.Int64Value", "value": "3"}


def test_dev_protocol_must_agree_with_the_module_file(generated_v3: Path) -> None:
    result = cli("dev", "app:wsgi", "--module", str(generated_v3), "--protocol", "2.x", "--until-idle",
                 "--ingress", "127.0.0.1:0", timeout=60)
    assert_one_line_error(result, "--protocol 2.x, but", "is a StateFun 3.x module.yaml")


def test_run_a_3x_module_against_gunicorn(server: Server, generated_v3: Path) -> None:
    result = cli(
        "run", "--module", str(generated_v3), "--endpoint", f"{server.base_url}/statefun",
        "--import", "examples.greeter.messages_pb2",
        "--send", "example/greeter/erin", f'{{"@type": "{GREET}", "name": "erin"}}',
        "--send", "example/greeter/erin", f'{{"@type": "{GREET}", "name": "erin"}}',
        "--until-idle", "--ingress", "127.0.0.1:0",
    )
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    assert egress_values(lines, "greetings") == {
        "erin": ["Hello erin! Nice to meet you.", "Hello erin! This is visit number 2."]
    }
    assert [line["state"] for line in lines if line["event"] == "register"] == ["seen_count"]


# -- a statefun_wsgi.v3 registry (the official 3.3 API): 3.x files, the 3.x protocol ---------------------

V3_APP = "tests.v3_app:wsgi"


def v3_text(text: str) -> str:
    return json.dumps({"@type": "io.statefun.types/string", "value": text})


def assert_v3_counter_flow(lines: List[dict]) -> None:
    """What tests/v3_app.py's example/counter and example/doubler do for "hi", "ho" to ann."""
    assert egress_values(lines, "counts") == {"ann": ["hi 1", "ho 2", "later 3"]}
    assert sorted(egress_values(lines, "doubled")["ann"]) == ["2", "4", "6"]
    registered = {line["state"]: line for line in lines if line["event"] == "register"}
    assert registered == {  # the ValueSpecs, as the 3.x runtime registers them
        "count": {"event": "register", "address": "example/counter/ann", "state": "count",
                  "type": "io.statefun.types/int", "expire": "1d"},
        "last": {"event": "register", "address": "example/counter/ann", "state": "last",
                 "type": "io.statefun.types/string", "expire": None},
    }
    assert {"event": "message", "to": "example/doubler/ann", "caller": "example/counter/ann",
            "message": {"@type": "io.statefun.types/int", "value": 2}} in lines
    assert {"event": "delayed", "to": "example/counter/ann", "caller": "example/counter/ann", "delay_ms": 50,
            "message": {"@type": "io.statefun.types/string", "value": "later"}} in lines
    states = {line["state"]: line["value"] for line in lines if line["event"] == "state"}
    assert states == {"count": {"@type": "io.statefun.types/int", "value": 3},
                      "last": {"@type": "io.statefun.types/string", "value": "later"}}


@pytest.fixture(scope="module")
def generated_official_api(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``module-yaml generate tests.v3_app:wsgi`` (no --format), written to a file."""
    result = cli("module-yaml", "generate", V3_APP, "--endpoint", "http://app:8000/statefun")
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("cli-v3api") / "module.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    return path


def test_generate_for_an_official_api_registry_is_a_3x_file_that_checks_clean(generated_official_api: Path) -> None:
    text = generated_official_api.read_text(encoding="utf-8")
    assert text.startswith("kind: io.statefun.endpoints.v2/http\n") and "states" not in text
    spec = parse_module_yaml(text)
    assert spec.protocol == "3.x" and "example/counter" in spec.functions and "example/doubler" in spec.functions
    result = cli("module-yaml", "check", str(generated_official_api), V3_APP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"{generated_official_api}: agrees with {V3_APP}\n"
    missing = generated_official_api.parent / "missing.yaml"
    missing.write_text("---\n".join(d for d in text.split("---\n") if "example/counter\n" not in d), encoding="utf-8")
    result = cli("module-yaml", "check", str(missing), "tests.v3_app:functions")
    assert result.returncode == 1 and f"{missing}: bound function example/counter is missing" in result.stdout


def test_generate_2_0_for_an_official_api_registry_writes_the_valuespecs() -> None:
    result = cli("module-yaml", "generate", V3_APP, "--endpoint", "http://app:8000/statefun", "--format", "2.0")
    assert result.returncode == 0, result.stderr
    counter = parse_module_yaml(result.stdout).functions["example/counter"]
    assert [(s.name, s.expire_after, s.expire_mode) for s in counter.states] == [
        ("count", timedelta(days=1), "after-invoke"), ("last", None, "after-invoke")]


def test_dev_serves_an_official_api_app_over_3x() -> None:
    result = cli("dev", V3_APP, "--send", "example/counter/ann", v3_text("hi"), "--send", "example/counter/ann",
                 v3_text("ho"), "--until-idle", "--ingress", "127.0.0.1:0", timeout=60)
    assert result.returncode == 0, result.stderr
    assert_v3_counter_flow(json_lines(result.stdout))


@pytest.fixture(scope="module")
def v3_server() -> Iterator[Server]:
    with gunicorn(V3_APP, "--workers", "1", "--worker-class", "gthread", "--threads", "4",
                  env={"STATEFUN_ACCESS_LOG": "off"}) as running:
        yield running


def test_run_drives_an_official_api_app_under_gunicorn(v3_server: Server, generated_official_api: Path) -> None:
    result = cli("run", "--module", str(generated_official_api), "--endpoint", f"{v3_server.base_url}/statefun",
                 "--send", "example/counter/ann", v3_text("hi"), "--send", "example/counter/ann", v3_text("ho"),
                 "--until-idle", "--ingress", "127.0.0.1:0")
    assert result.returncode == 0, result.stderr
    assert_v3_counter_flow(json_lines(result.stdout))
