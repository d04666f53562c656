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
PROBE_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """Case id -> the probe's line for it: "ACCEPTED", or "REFUSED\\t<exception chain>"."""
    cases = [(case.id, case.text) for case in module_yaml3_cases.CASES]
    folder = tmp_path_factory.mktemp("module_yaml3_cases")
    return runtime.module_yaml_verdicts("3.3.0", PROBE, cases, folder, PROBE_TIMEOUT)


@pytest.mark.parametrize("case", module_yaml3_cases.params())
def test_the_3_3_runtime_does_what_the_table_says(verdicts: Dict[str, str], case: module_yaml3_cases.Case) -> None:
    verdict = verdicts[case.id]
    assert verdict.startswith("ACCEPTED" if case.runtime else "REFUSED"), verdict
