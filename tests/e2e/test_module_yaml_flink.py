"""The real StateFun 2.2.2 loader on every module.yaml of ``tests/module_yaml_cases.py``.

    bash tests/e2e/harness_setup.sh && python -m pytest -m flink tests/e2e/test_module_yaml_flink.py -q

One JVM (a few seconds; Java 11 or later, which runs a source file) runs
``tests/e2e/ModuleYamlProbe.java`` on the harness's classpath:
it loads each file as the runtime does when a job starts (the JSON module loader, the
function providers, the state TTLs) and prints whether the runtime accepts it. Each verdict
must be the table's; ``tests/test_module_yaml.py`` holds our loader to the same table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import module_yaml_cases  # noqa: E402  (tests/module_yaml_cases.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

PROBE = Path(__file__).resolve().parent / "ModuleYamlProbe.java"
CLASSPATH = runtime.HARNESS_TARGET / "classpath.txt"
PROBE_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Case id -> the probe's line for it: "ACCEPTED", or "REFUSED\\t<exception chain>"."""
    setup = subprocess.run(["bash", str(runtime.HARNESS_SETUP)], capture_output=True, text=True, timeout=900)
    if setup.returncode != 0:
        pytest.fail(f"harness_setup.sh failed: {setup.stderr[-2000:]}")
    java = json.loads(runtime.JAVA_CMD.read_text())[0]
    folder = tmp_path_factory.mktemp("module_yaml_cases")
    (folder / module_yaml_cases.DESCRIPTOR_SET).write_bytes(module_yaml_cases.descriptor_set())
    paths = {}
    for number, case in enumerate(module_yaml_cases.CASES):
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


@pytest.mark.parametrize("case", module_yaml_cases.params())
def test_the_runtime_does_what_the_table_says(verdicts: Dict[str, str], case: module_yaml_cases.Case) -> None:
    verdict = verdicts[case.id]
    assert verdict.startswith("ACCEPTED" if case.runtime else "REFUSED"), verdict


def test_the_duration_units_are_flinks(verdicts: Dict[str, str]) -> None:
    """Flink lists its units when it refuses one ("DAYS: (d | day | days), HOURS: ..."): ours are those."""
    from statefun_wsgi.module_yaml import _UNIT_LABELS

    message = verdicts["expireAfter 500us"]
    listed = re.findall(r"[A-Z]+: \(([^)]*)\)", message.split("recognized units: ", 1)[1])
    assert [tuple(labels.split(" | ")) for labels in listed] == list(_UNIT_LABELS.values()), message
