"""The README's testing example runs as written (documentation that cannot rot)."""

from __future__ import annotations

import os
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
