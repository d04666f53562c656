"""Tests for the ``statefun-wsgi`` command (run as ``python -m statefun_wsgi``, as a user
would, from the repository root): help, module-yaml generate/check, one-line errors,
and dev / run / send driving the greeter example under real gunicorn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import pytest
from servers import REPO, Server, free_port, gunicorn

from examples.greeter.functions import functions as greeter_functions
from statefun_wsgi.module_yaml import check_module_yaml, parse_module_yaml

GREET = "example.greeter.GreetRequest"
FAST_REMINDERS = {"STATEFUN_REMINDER_DELAY_MS": "300"}


def cli(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 30) -> subprocess.CompletedProcess:
    environment = dict(os.environ)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "statefun_wsgi", *args],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout,
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
            type: example/greeter
          spec:
            endpoint: http://app:8000/statefun
            states:
              - visits
      - function:
          meta:
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
        pytest.param(["module-yaml", "check", "no/such/module.yaml", "app:wsgi"],
                     ["no/such/module.yaml: cannot read"], id="check missing file"),
        pytest.param(["run", "--module", "no/such/module.yaml", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["no/such/module.yaml: cannot read"], id="run missing file"),
        pytest.param(["dev", "no_such_module:wsgi", "--until-idle", "--ingress", "127.0.0.1:0"],
                     ["cannot import 'no_such_module'"], id="dev bad app"),
        pytest.param(["send", "example/greeter", f'{{"@type": "{GREET}"}}'],
                     ["is not an address like 'namespace/type/id'"], id="send bad address"),
        pytest.param(["send", "example/greeter/x", "{not json", "--ingress", "http://127.0.0.1:1"],
                     ["Expecting property name"], id="send bad JSON"),
        pytest.param(["send", "example/greeter/x", f'{{"@type": "{GREET}"}}', "--ingress", f"127.0.0.1:{free_port()}"],
                     ["cannot reach the ingress at http://127.0.0.1:"], id="send no ingress"),
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
        "--until-idle", "--ingress", "127.0.0.1:0",
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
