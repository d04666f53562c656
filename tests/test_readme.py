"""The README's testing example runs as written (documentation that cannot rot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_testing_example_passes() -> None:
    block = next(b for b in _python_blocks() if "def test_greeter_counts_and_reminds" in b)
    namespace: dict[str, object] = {}
    exec(compile(block, str(README), "exec"), namespace)
    namespace["test_greeter_counts_and_reminds"]()  # type: ignore[operator]


def test_the_readme_opens_with_the_two_commands() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    commands = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert "statefun-wsgi dev app:wsgi" in commands[0]
    assert commands[1].endswith("-m pytest")
    # .ci/run runs this block's lines in a fresh clone, and wants exactly these two.
    assert lines[lines.index("```sh") + 3] == "```"


ROOT = README.parent
_LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")  # [text](target)
_MD_PATH = re.compile(r"`([^`\s]+\.md)`")  # `some/file.md`, globs allowed


def _documents() -> list[Path]:
    """The repository's Markdown files, leaving out hidden folders (virtualenvs) and build output."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in ("target", "node_modules")]
        found += [Path(folder) / f for f in files if f.endswith(".md")]
    return sorted(found)


def _inside_the_repository(base: Path, target: str) -> bool:
    matches = list(base.glob(target)) if "*" in target else [base / target]
    return bool(matches) and all(m.exists() and m.resolve().is_relative_to(ROOT) for m in matches)


def test_the_docs_point_only_at_files_in_the_repository() -> None:
    """A fresh clone has nothing beside it: every link and named .md file must be in the repository."""
    missing = []
    for document in _documents():
        text = document.read_text(encoding="utf-8")
        for target in _LINK.findall(text):
            if "://" not in target and not target.startswith("mailto:"):
                if not _inside_the_repository(document.parent, target):
                    missing.append(f"{document.relative_to(ROOT)}: {target}")
        for target in _MD_PATH.findall(text):
            if not (_inside_the_repository(ROOT, target) or _inside_the_repository(document.parent, target)):
                missing.append(f"{document.relative_to(ROOT)}: {target}")
    assert missing == []


def _plain_pytest() -> str:
    """The ``pytest`` script installed beside this Python (what a user types as ``pytest``)."""
    script = Path(sysconfig.get_path("scripts")) / "pytest"
    if not script.exists():
        pytest.skip(f"no pytest script at {script}")
    return str(script)


@pytest.mark.parametrize("how", ["pytest", "python -m pytest"])
def test_the_readme_testing_example_passes_as_a_test_file(tmp_path: Path, how: str) -> None:
    """Saved as a file and run by pytest from the repository root, both ways: plain ``pytest``
    does not put the current folder on ``sys.path`` (``python -m`` does), so ``examples``
    imports only through pyproject.toml's ``pythonpath``. The file sits outside the repository
    (so that the test writes nothing into it); ``-c`` reads the repository's pyproject.toml as
    a file under tests/ would."""
    block = next(b for b in _python_blocks() if "def test_greeter_counts_and_reminds" in b)
    (tmp_path / "test_greeter.py").write_text(block, encoding="utf-8")
    command = [_plain_pytest()] if how == "pytest" else [sys.executable, "-m", "pytest"]
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [*command, "-q", "-p", "no:cacheprovider", "-c", str(README.parent / "pyproject.toml"),
         "--rootdir", str(README.parent), str(tmp_path / "test_greeter.py")],
        cwd=README.parent, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_readme_http_example_passes_against_gunicorn() -> None:
    """``from_module_yaml`` with ``clock=VirtualClock()``, as the README shows it, against
    ``app:wsgi`` under gunicorn: ``advance()`` fires the delayed reminder."""
    from servers import free_port, gunicorn

    block = next(b for b in _python_blocks() if "def test_greeter_over_http" in b)
    assert "clock=VirtualClock()" in block
    # As the README's comment says: the recommended settings, the functions on the runtime's listener.
    env = {"STATEFUN_ACCESS_LOG": "off", "STATEFUN_BIND": f"127.0.0.1:{free_port()}"}
    with gunicorn("app:wsgi", "-c", "gunicorn.conf.py", "--workers", "1", env=env, bind=False) as server:
        namespace: dict[str, object] = {}
        exec(compile(block.replace("http://127.0.0.1:9000", server.base_url), str(README), "exec"), namespace)
        namespace["test_greeter_over_http"]()  # type: ignore[operator]


def test_the_readme_says_what_send_egress_needs_for_kafka() -> None:
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert ("`send_egress` sends the `Any` as it is: the runtime's Kafka egress takes only an `Any` that packs a "
            "`KafkaProducerRecord`") in text


def test_deploy_readme_creates_the_namespace_before_applying_to_it() -> None:
    """``kubectl apply -n greeter`` fails on a cluster without that namespace."""
    text = (README.parent / "deploy" / "README.md").read_text(encoding="utf-8")
    create = text.find("kubectl create namespace greeter")
    assert create != -1, "deploy/README.md never creates the namespace"
    for use in ("kubectl apply -n greeter", "kubectl -n greeter"):
        assert create < text.find(use), f"{use!r} comes before the namespace is created"
