"""The real StateFun 3.3.0 loader on every module.yaml of ``tests/module_yaml3_cases.py``.

    bash tests/e2e/harness_setup.sh 3.3.0
    python -m pytest -m flink tests/e2e/test_flink3_module_yaml.py -q

One JVM (a few seconds; Java 11 or later, which runs a source file) runs
``tests/e2e/ModuleYaml3Probe.java`` on the 3.3.0 harness's classpath: it loads each file as the
runtime does when a job starts (the extension modules with the component binders and
transports, the JSON module loader, each function's transport client, each ingress's source
and egress's sink) and prints whether the runtime accepts it. Each verdict must be the table's;
``tests/test_module_yaml.py`` holds our loader to the same table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import module_yaml3_cases  # noqa: E402  (tests/module_yaml3_cases.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

PROBE = Path(__file__).resolve().parent / "ModuleYaml3Probe.java"
CLASSPATH = runtime.HARNESS3_TARGET / "classpath.txt"
PROBE_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Case id -> the probe's line for it: "ACCEPTED", or "REFUSED\\t<exception chain>"."""
    java_cmd = runtime.harness_for_test("3.3.0")
    java = json.loads(java_cmd.read_text())[0]
    folder = tmp_path_factory.mktemp("module_yaml3_cases")
    paths = {}
    for number, case in enumerate(module_yaml3_cases.CASES):
        path = folder / f"case{number:03d}.yaml"
        path.write_text(case.text, encoding="utf-8")
        paths[str(path)] = case.id
    probe = subprocess.run(
        [java, "-cp", CLASSPATH.read_text().strip(), str(PROBE), *paths],
        cwd=folder, capture_output=True, text=True, encoding="utf-8", timeout=PROBE_TIMEOUT,
    )
    assert probe.returncode == 0, probe.stderr[-4000:]
    lines = dict(line.split("\t", 1) for line in probe.stdout.splitlines() if "\t" in line)
    assert set(lines) == set(paths), probe.stdout[-4000:] + probe.stderr[-4000:]
    return {paths[path]: verdict for path, verdict in lines.items()}


@pytest.mark.parametrize("case", module_yaml3_cases.params())
def test_the_3_3_runtime_does_what_the_table_says(verdicts: Dict[str, str], case: module_yaml3_cases.Case) -> None:
    verdict = verdicts[case.id]
    assert verdict.startswith("ACCEPTED" if case.runtime else "REFUSED"), verdict
