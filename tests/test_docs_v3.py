"""The docs of statefun_wsgi.v3 run as written: docs/migrating-from-statefun-3.3.md (its
gunicorn app, saved as ``app.py``, passes its test, answers its ``statefun-wsgi dev`` command,
and agrees with the module.yaml its ``module-yaml generate`` command writes) and the README's
example of the official 3.3 API."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from servers import REPO

DOC = REPO / "docs" / "migrating-from-statefun-3.3.md"


def blocks(language: str) -> List[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder holding the doc's gunicorn app as ``app.py``, first on ``sys.path`` (the
    repository's own ``app`` module, if imported, is put back afterwards)."""
    app = next(block for block in blocks("python") if "StatefunMiddleware(None, functions)" in block)
    (tmp_path / "app.py").write_text(app, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = sys.modules.pop("app", None)
    try:
        yield tmp_path
    finally:
        sys.modules.pop("app", None)
        if saved is not None:
            sys.modules["app"] = saved


def cli(project: Path, command: str) -> subprocess.CompletedProcess:
    environment: Dict[str, str] = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), str(REPO), environment.get("PYTHONPATH")]))
    arguments = shlex.split(command)
    assert arguments[0] == "statefun-wsgi", command
    return subprocess.run([sys.executable, "-m", "statefun_wsgi", *arguments[1:]], cwd=project, env=environment,
                          capture_output=True, text=True, timeout=90)


def test_the_docs_test_passes_on_the_docs_app(project: Path) -> None:
    test = next(block for block in blocks("python") if "def test_the_greeter_counts" in block)
    namespace: dict = {}
    exec(compile(test, str(DOC), "exec"), namespace)
    namespace["test_the_greeter_counts"]()


def test_the_aiohttp_app_differs_from_the_gunicorn_one_only_in_hosting() -> None:
    official, ours = [block for block in blocks("python") if "@functions.bind" in block][:2]
    function = re.compile(r"@functions\.bind.*?\n\n\n", flags=re.S)
    assert "from statefun import *" in official and "from statefun_wsgi.v3 import *" in ours
    assert function.search(official).group(0).replace("async def", "def") == re.sub(  # type: ignore[union-attr]
        r"  +# async def works too", "", function.search(ours).group(0))  # type: ignore[union-attr]


def test_the_docs_dev_command_runs_the_docs_app(project: Path) -> None:
    command = next(line for block in blocks("sh") for line in block.splitlines() if line.startswith("statefun-wsgi dev"))
    result = cli(project, command + " --ingress 127.0.0.1:0")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"event": "egress", "egress": "example/out",
            "message": {"@type": "io.statefun.types/string", "value": "hi alice #1"}} in lines
    assert {"event": "register", "address": "example/greeter/alice", "state": "seen",
            "type": "io.statefun.types/int", "expire": None} in lines


def test_the_docs_module_yaml_commands_agree(project: Path) -> None:
    generate, check = [line.split("#")[0].strip() for block in blocks("sh") for line in block.splitlines()
                       if line.startswith("statefun-wsgi module-yaml")]
    generated = cli(project, generate)
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.startswith("kind: io.statefun.endpoints.v2/http\n")
    (project / "module.yaml").write_text(generated.stdout, encoding="utf-8")
    checked = cli(project, check)
    assert checked.returncode == 0 and checked.stdout == "module.yaml: agrees with app:wsgi\n", checked


def test_the_readmes_official_api_example_does_what_its_comments_say() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "statefun_wsgi.v3 import (" in b)
    block = block.replace("myapp.messages_pb2", "examples.greeter.messages_pb2")
    block = block.replace('functions.register("example/other", other_function, specs=[...])',
                          'functions.register("example/other", lambda context, message: None, specs=[])')
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)

    from examples.greeter.messages_pb2 import GreetRequest
    from statefun_wsgi.local import LocalRuntime
    from statefun_wsgi.v3 import IntType, StringType

    functions = namespace["functions"]
    for other in ("example/formatter", "example/counter"):
        functions.register(other, lambda context, message: None)
    runtime = LocalRuntime.for_functions(functions)
    runtime.send("example/greeter", "alice", "alice", value_type=StringType)
    runtime.send("example/greeter", "bob", GreetRequest(name="bob"))
    runtime.send("example/greeter", "bob", GreetRequest(name="bob"))
    runtime.run_until_idle()
    assert [(r.kafka.key, r.kafka.value_bytes) for r in runtime.egress("example/greets")] == [  # type: ignore[union-attr]
        ("alice", b"Hello alice!"), ("bob", b"Hello bob!"), ("bob", b"Hello bob!")]
    profile = namespace["ProfileType"]
    assert [r.unpack(profile) for r in runtime.egress("example/log")] == [{"who": "alice"}, {"who": "bob"}, {"who": "bob"}]
    assert runtime.state("example/greeter", "bob", "seen", IntType) == 2
    assert runtime.state("example/greeter", "bob", "profile", profile) == {"name": "bob"}
    assert runtime.pending_delayed == 0  # each reminder was cancelled


def test_the_official_aiohttp_app_runs_with_the_import_changed(tmp_path: Path) -> None:
    """The doc's first example, the official docs' aiohttp app, with ``from statefun import *``
    changed: aiohttp serves it with ``handle_async`` (its ``async def`` awaited on aiohttp's
    loop), driven over HTTP by the local runtime as the 3.3 runtime would."""
    import asyncio
    import threading

    web = pytest.importorskip("aiohttp.web")
    from servers import free_port

    from statefun_wsgi.local import LocalRuntime
    from statefun_wsgi.module_yaml import generate_module_yaml, parse_module_yaml
    from statefun_wsgi.v3 import IntType, StringType

    official = next(block for block in blocks("python") if "from aiohttp import web" in block)
    assert "from statefun import *" in official
    namespace: dict = {"__name__": "official_app"}
    exec(compile(official.replace("from statefun import *", "from statefun_wsgi.v3 import *"), str(DOC), "exec"),
         namespace)

    loop = asyncio.new_event_loop()
    runner = web.AppRunner(namespace["app"])
    loop.run_until_complete(runner.setup())
    port = free_port()
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        module = parse_module_yaml(generate_module_yaml(namespace["functions"], f"http://127.0.0.1:{port}/statefun"))
        with LocalRuntime.from_module_yaml(module) as runtime:
            for _ in range(2):
                runtime.send("example/greeter", "alice", "alice", value_type=StringType)
            runtime.run_until_idle(timeout=30)
            assert [record.unpack(StringType) for record in runtime.egress("example/out")] == [
                "hi alice #1", "hi alice #2"]
            assert runtime.state("example/greeter", "alice", "seen", IntType) == 2
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.run_until_complete(runner.cleanup())
        loop.close()
