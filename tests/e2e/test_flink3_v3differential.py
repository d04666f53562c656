"""The differential tests of statefun_wsgi.v3 against the official StateFun 3.3 Python SDK, live:
the official package runs in its own virtualenv (Python 3.11, protobuf 3.20,
``bash tests/e2e/statefun_sdk_setup.sh``), not from the recordings.

    bash tests/e2e/statefun_sdk_setup.sh
    python -m pytest -m flink tests/e2e/test_flink3_v3differential.py -q

tests/test_v3_functions.py and tests/test_v3_api.py compare ours with the official SDK's
replies and signatures as recorded in tests/data/v3 (differential.json, official_api.json), so
that the default suite needs no second virtualenv. Here the official SDK runs the same
scenarios (tests/data/v3/scenarios.py) and describes its API again: the output must be the
recordings byte for byte (they are the official SDK's, and current), and every reply ours gives
to the same request bytes must have the same content as the official one given now. No
runtime is involved; the file is named and marked as the 3.3 e2e tests are because those are
the ones that run where the official SDK's virtualenv is set up (.ci/run).
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

from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)
from test_v3_functions import SCENARIOS, content  # noqa: E402  (the same scenarios, through statefun_wsgi.v3)

import statefun_wsgi.v3 as sf  # noqa: E402

pytestmark = pytest.mark.flink

DATA = Path(__file__).resolve().parents[1] / "data" / "v3"


@pytest.fixture(scope="module")
def official_python() -> str:
    try:
        return runtime.official_sdk_python()
    except runtime.SetupError as exc:
        if exc.missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))


def _official(python: str, script: str) -> str:
    result = subprocess.run([python, str(DATA / script)], cwd=runtime.REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def official_replies(official_python: str) -> Dict[str, Dict[str, str]]:
    output = _official(official_python, "scenarios.py")
    assert output == (DATA / "differential.json").read_text(), "differential.json is not what the official SDK gives now"
    return json.loads(output)  # type: ignore[no-any-return]


def test_the_official_sdk_describes_the_recorded_api(official_python: str) -> None:
    output = _official(official_python, "record_official_api.py")
    assert output == (DATA / "official_api.json").read_text(), "official_api.json is not the official SDK's API now"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_ours_answers_as_the_official_sdk_does_now(official_replies: Dict[str, Dict[str, str]], name: str) -> None:
    functions, request = SCENARIOS[name]
    assert official_replies[name]["request"] == request.hex()  # the same bytes in
    official = bytes.fromhex(official_replies[name]["reply"])
    assert content(sf.RequestReplyHandler(functions).handle_sync(request)) == content(official)
