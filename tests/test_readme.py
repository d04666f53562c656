"""The README's testing example runs as written (documentation that cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert commands[1] in (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
