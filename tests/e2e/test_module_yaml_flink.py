"""The real StateFun 2.2.2 loader on every module.yaml of ``tests/module_yaml_cases.py``.

    bash tests/e2e/harness_setup.sh && python -m pytest -m flink tests/e2e/test_module_yaml_flink.py -q

One JVM (a few seconds; Java 11 or later, which runs a source file) runs
``tests/e2e/ModuleYamlProbe.java`` on the harness's classpath:
it loads each file as the runtime does when a job starts (the JSON module loader, the
function providers, the state TTLs) and prints whether the runtime accepts it. Each verdict
must be the table's; ``tests/test_module_yaml.py`` holds our loader to the same table.
"""

from __future__ import annotations

import re
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
PROBE_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Case id -> the probe's line for it: "ACCEPTED", or "REFUSED\\t<exception chain>"."""
    folder = tmp_path_factory.mktemp("module_yaml_cases")
    (folder / module_yaml_cases.DESCRIPTOR_SET).write_bytes(module_yaml_cases.descriptor_set())
    cases = [(case.id, case.text) for case in module_yaml_cases.CASES]
    return runtime.module_yaml_verdicts("2.2.2", PROBE, cases, folder, PROBE_TIMEOUT)


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
