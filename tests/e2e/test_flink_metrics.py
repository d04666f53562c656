"""Metrics under the real StateFun runtimes (2.2.2 and 3.3.0): what gunicorn's 4 workers
count is what the runtime sent.

    bash tests/e2e/harness_setup.sh 2.2.2 && bash tests/e2e/harness_setup.sh 3.3.0
    python -m pytest -m flink tests/e2e/test_flink_metrics.py -q -s

gunicorn -c gunicorn.conf.py with ``STATEFUN_METRICS=1`` and 4 workers serves
``tests/metrics_app.py``'s ``metrics/counter`` (one egress record per message). The runtime
gets a burst of messages for many addresses and batches them as it likes; once every record
is out, a scrape must show exactly one invocation per message, as many 200 batches as
gunicorn's access log shows requests, and the batches' invocations adding up to the messages.
"""

from __future__ import annotations

import http.client
import re
import sys
from pathlib import Path
from typing import Dict, Tuple

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from prometheus_client.parser import text_string_to_metric_families

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

WORKERS = 4
ADDRESSES = 25
MESSAGES = 400
OUT = "metrics/out"
FUNCTION = "metrics/counter"
RUNNING_TIMEOUT = 90.0
WAIT_TIMEOUT = 90.0


def scrape(server: servers.Server) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    connection = http.client.HTTPConnection("127.0.0.1", server.public_port, timeout=30)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    assert response.status == 200, text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


@pytest.mark.parametrize("version", ["2.2.2", "3.3.0"])
def test_the_workers_count_what_the_runtime_sent(version: str, tmp_path: Path) -> None:
    java_cmd = runtime.harness_for_test(version)
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = servers.start(
        "metrics_app:wsgi", "-c", "gunicorn.conf.py", "--pythonpath", "tests",
        env={"WEB_CONCURRENCY": str(WORKERS), "STATEFUN_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
             "STATEFUN_BIND": f"127.0.0.1:{servers.free_port()}", "STATEFUN_ACCESS_LOG": "-"},
        bind=False,
    )
    try:
        server.wait_ready("/")
        url = f"{server.base_url}/statefun"
        if version == "3.3.0":
            yaml = runtime.module_yaml3([runtime.Endpoint3("metrics/*", url, transport="async")])
            typename = "type.googleapis.com/google.protobuf.StringValue"
        else:
            yaml = runtime.module_yaml(url, {FUNCTION: ([], 100)})
            typename = "type.googleapis.com/google.protobuf.StringValue"
        messages = [(f"{FUNCTION}/id-{n % ADDRESSES}", typename, StringValue(value=f"m{n}").SerializeToString())
                    for n in range(MESSAGES)]
        with runtime.HarnessJvm.start(java_cmd, tmp_path / "jvm", yaml, egresses=[OUT]) as jvm:
            jvm.extra_diagnostics = lambda: "--- gunicorn (tail) ---\n" + "\n".join(server.log().splitlines()[-30:])
            jvm.wait_running(RUNNING_TIMEOUT)
            jvm.send_many(messages)
            jvm.wait_for(lambda: len(jvm.records(OUT)) >= MESSAGES, WAIT_TIMEOUT, f"{MESSAGES} records")
            samples = scrape(server)
            assert jvm.starts() == 1, jvm.diagnostics()
        requests = len(re.findall(r'"POST /statefun HTTP/1\.1" 200 ', server.log()))
    finally:
        server.stop()

    label = (("function_type", FUNCTION),)
    batches = samples[("statefun_batches_total", (("function_type", FUNCTION), ("status", "200")))]
    assert samples[("statefun_invocations_total", label)] == MESSAGES
    assert samples[("statefun_batch_invocations_sum", label)] == MESSAGES
    assert batches == requests  # one per request the runtime made (gunicorn's access log)
    assert samples[("statefun_batch_invocations_count", label)] == batches
    assert samples[("statefun_batch_duration_seconds_count", label)] == batches
    assert not [key for key, value in samples.items() if key[0] == "statefun_batches_total" and value
                and dict(key[1])["status"] != "200"]
    workers = {path.name for path in metrics_dir.glob("statefun_*.metrics")}
    print(f"\n[metrics {version}] {MESSAGES} messages to {ADDRESSES} addresses: {batches:.0f} batches "
          f"(as many requests in gunicorn's log), {MESSAGES / batches:.1f} invocations a batch, "
          f"counted by {len(workers)} workers' files")
