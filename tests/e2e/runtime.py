"""Driving the e2e harness JVM (the real StateFun 2.2.2 runtime), shared by
``tests/e2e/test_flink.py`` and ``bench/runtime_connections.py``.

    argv = [a.replace("{conf_dir}", str(conf_dir)) for a in json.loads(JAVA_CMD.read_text())]
    (conf_dir / "module.yaml").write_text(module_yaml(endpoint, {"e2e/counter": ([{"name": "count"}], 50)}))
    jvm = subprocess.Popen(argv, stdin=subprocess.PIPE, start_new_session=True)
    ...
    stop_jvm(jvm)

``tests/e2e/harness_setup.sh`` builds the harness and writes ``JAVA_CMD``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Tuple

REPO = Path(__file__).resolve().parents[2]
HARNESS_SETUP = REPO / "tests" / "e2e" / "harness_setup.sh"
HARNESS_TARGET = REPO / "tests" / "e2e" / "harness" / "target"
JAVA_CMD = HARNESS_TARGET / "java-cmd.json"

STOP_TIMEOUT = 10.0

#: function type -> (states as module.yaml "2.0" mappings, maxNumBatchRequests)
Functions = Mapping[str, Tuple[List[Dict[str, str]], int]]

#: The e2e tests' timeouts; pass ``timeouts=""`` for the runtime's defaults.
TEST_TIMEOUTS = "timeout: 20s\nconnectTimeout: 5s\nreadTimeout: 10s\nwriteTimeout: 10s\n"

_MODULE_YAML = """\
version: "2.0"
module:
  meta:
    type: remote
  spec:
    functions:
{functions}"""

_FUNCTION_YAML = """\
      - function:
          meta:
            kind: http
            type: {type}
          spec:
            endpoint: {endpoint}
            states:{states}
            maxNumBatchRequests: {max_batch}
"""


def module_yaml(endpoint: str, functions: Functions, timeouts: str = TEST_TIMEOUTS) -> str:
    """A remote module (format "2.0") with each of ``functions`` at ``endpoint``."""
    extra = "".join(f"            {line}\n" for line in timeouts.splitlines())
    entries = []
    for typename, (states, max_batch) in functions.items():
        if states:
            lines = []
            for state in states:
                items = list(state.items())
                lines.append(f"\n              - {items[0][0]}: {items[0][1]}")
                lines.extend(f"\n                {key}: {value}" for key, value in items[1:])
            states_yaml = "".join(lines)
        else:
            states_yaml = " []"
        entries.append(_FUNCTION_YAML.format(type=typename, endpoint=endpoint, states=states_yaml,
                                             max_batch=max_batch) + extra)
    return _MODULE_YAML.format(functions="".join(entries))


def stop_jvm(jvm: subprocess.Popen) -> None:
    """SIGTERM (the harness exits in ~0.4 s), then SIGKILL to its own process group
    (it was started with ``start_new_session``: nothing else is in it)."""
    if jvm.poll() is None:
        jvm.send_signal(signal.SIGTERM)
        try:
            jvm.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(jvm.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    jvm.wait(timeout=STOP_TIMEOUT)
    if jvm.stdin is not None:
        try:
            jvm.stdin.close()
        except OSError:
            pass
