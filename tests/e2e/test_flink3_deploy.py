"""deploy/statefun-3.3/module.yaml in front of the real Apache Flink StateFun 3.3.0 runtime,
with the app as the deploy's image runs it.

    bash tests/e2e/harness_setup.sh 3.3.0
    python -m pytest -m flink tests/e2e/test_flink3_deploy.py -q -s

The app runs with the Dockerfile's own command (``gunicorn -c gunicorn.conf.py app:wsgi``,
two listeners) from the repository root; the harness JVM (tests/e2e/harness3/README.md) loads
the deploy's module.yaml with only what cannot exist here rewritten:

- the endpoint's host and port (``greeter-app-runtime:9000``) become the app's runtime
  listener on 127.0.0.1; the path stays;
- the Kafka addresses become one where nothing listens (``runtime.NO_BROKER``). The egress
  ``example/greets`` is replaced by the harness's file egress, which checks every record as
  the runtime's generic Kafka egress does. The ingress stays: the runtime builds its Kafka
  consumer from the spec (the test sees it use the module's consumer group) and retries the
  absent broker; its ``default.api.timeout.ms`` is raised so that the consumer does not give up
  (and restart the job) while the test runs. Its source task stays initializing, so Flink 1.16
  triggers no checkpoint (none completes in this test) and nothing holds back the other input.
  Records come in through the harness's stdin instead, as the Kafka ingress would route them:
  to ``example/greeter``, keyed by the name, typed with the module's ``valueType``.

A second test runs the 2.2 set's deploy/module.yaml on the real 2.2.2 runtime beside it,
against the same app process (without that file's Kafka ingress: see
:func:`for_the_harness_22`).

Asserted: the job starts once; GreetRequests for alice and bob, then alice again, give the
greetings (visit 1, 1, then 2: the state the endpoint declared lives in the runtime) and one
reminder per first visit, each a ``KafkaProducerRecord`` for topic ``greetings`` or
``reminders`` keyed by the name, under the 3.x type name the Kafka egress accepts.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from examples.greeter.messages_pb2 import GreetRequest  # noqa: E402
from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord  # noqa: E402
import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)

pytestmark = pytest.mark.flink

REPO = Path(__file__).resolve().parents[2]
MODULE_YAML = REPO / "deploy" / "statefun-3.3" / "module.yaml"
MODULE_YAML_22 = REPO / "deploy" / "module.yaml"
DOCKERFILE_APP = REPO / "deploy" / "Dockerfile.app"

#: Bounds on every wait, in seconds.
RUNNING_TIMEOUT = 120.0  # JVM spawn -> job RUNNING (~3 s here, far more under load)
RECORDS_TIMEOUT = 60.0  # messages sent -> their egress records
#: The ingress's Kafka consumer waits this long for the absent broker before failing its task.
CONSUMER_API_TIMEOUT_MS = 600_000

KAFKA_RECORD_TYPE = "type.googleapis.com/io.statefun.sdk.egress.KafkaProducerRecord"
KAFKA_RECORD_TYPE_22 = "type.googleapis.com/org.apache.flink.statefun.flink.io.KafkaProducerRecord"


def app_command() -> List[str]:
    """The app image's CMD (exec form), as deploy/Dockerfile.app declares it."""
    cmd = [line.split(None, 1)[1] for line in DOCKERFILE_APP.read_text().splitlines() if line.startswith("CMD ")]
    command = json.loads(cmd[-1])
    assert command[0] == "gunicorn", command
    return command


def for_the_harness(text: str, runtime_listener: str) -> Tuple[str, Dict[str, Any]]:
    """The deploy's module.yaml with the endpoint's host:port and the Kafka addresses
    rewritten (see the module docstring), and the ingress's spec as deployed."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    original = copy.deepcopy(documents)
    kinds = [d["kind"] for d in documents]
    assert kinds == ["io.statefun.endpoints.v2/http", "io.statefun.kafka.v1/ingress", "io.statefun.kafka.v1/egress"]
    endpoint, ingress, egress = (d["spec"] for d in documents)
    url = urlsplit(endpoint["urlPathTemplate"])
    endpoint["urlPathTemplate"] = urlunsplit(("http", runtime_listener, url.path, url.query, url.fragment))
    ingress["address"] = egress["address"] = runtime.NO_BROKER
    ingress.setdefault("properties", []).append({"default.api.timeout.ms": str(CONSUMER_API_TIMEOUT_MS)})
    # Nothing else changed: the transport, batch size, routing, ids and semantics are the deploy's.
    for before, after in zip(original, documents):
        changed = {key for key in set(before["spec"]) | set(after["spec"])
                   if before["spec"].get(key) != after["spec"].get(key)}
        assert changed <= {"urlPathTemplate", "address", "properties"}, changed
    return yaml.safe_dump_all(documents, sort_keys=False), original[1]["spec"]


def for_the_harness_22(text: str, runtime_listener: str) -> str:
    """deploy/module.yaml (format "2.0") with the endpoints and the egress's address rewritten
    as :func:`for_the_harness` does, and **without its Kafka ingress**: on 2.2.2 (Flink 1.11) a
    Kafka source whose broker is absent stays in its ``open()``, so the first checkpoint's
    barrier never comes from it, and barrier alignment then holds back the harness's stdin
    records for good (observed: a record sent 10 s after the job started never reached the
    app). The 3.3.0 runtime runs the same ingress beside stdin without harm."""
    module = yaml.safe_load(text)
    spec = module["module"]["spec"]
    for entry in spec["functions"]:
        url = urlsplit(entry["function"]["spec"]["endpoint"])
        entry["function"]["spec"]["endpoint"] = urlunsplit(("http", runtime_listener, url.path, url.query, url.fragment))
    (egress,) = spec["egresses"]
    egress["egress"]["spec"]["address"] = runtime.NO_BROKER
    assert [i["ingress"]["meta"]["id"] for i in spec.pop("ingresses")] == ["example/names"]
    return yaml.safe_dump(module, sort_keys=False)


@pytest.fixture(scope="module")
def java_cmd() -> Path:
    return runtime.harness_for_test("3.3.0")


@pytest.fixture(scope="module")
def java_cmd_22() -> Path:
    return runtime.harness_for_test("2.2.2")


@pytest.fixture()
def app() -> Iterator[servers.Server]:
    """The image's command, its two listeners on 127.0.0.1: ``port`` is the runtime's."""
    command = app_command()
    server = servers.start(
        command[-1], *command[1:-1],
        env={"STATEFUN_BIND": f"127.0.0.1:{servers.free_port()}", "WEB_CONCURRENCY": "2",
             "STATEFUN_REMINDER_DELAY_MS": "500"},
        bind=False,
    )
    try:
        server.wait_ready("/")
        yield server
    finally:
        server.stop()


def greets(jvm: runtime.HarnessJvm, typename: str = KAFKA_RECORD_TYPE) -> List[Tuple[str, str, str]]:
    """(topic, key, value) of every record on example/greets, in order; each of ``typename``."""
    found = []
    for record in jvm.records("example/greets"):
        assert record.typename == typename and record.has_value, record
        kafka = KafkaProducerRecord.FromString(record.value)
        found.append((kafka.topic, kafka.key, kafka.value_bytes.decode()))
    return found


def test_the_deploys_module_yaml_drives_the_app_on_the_real_33_runtime(java_cmd: Path, app: servers.Server) -> None:
    assert app.public_port != app.port, "the app must listen twice, as deployed"
    module_yaml, ingress = for_the_harness(MODULE_YAML.read_text(encoding="utf-8"), f"127.0.0.1:{app.port}")
    (topic,) = ingress["topics"]
    (target,) = topic["targets"]

    def record(name: str) -> Tuple[str, str, bytes]:  # as the Kafka ingress routes a record keyed by name
        return f"{target}/{name}", topic["valueType"], GreetRequest(name=name).SerializeToString()

    with tempfile.TemporaryDirectory(prefix="statefun-deploy3-") as work:
        with runtime.HarnessJvm.start(java_cmd, Path(work), module_yaml, egresses=["example/greets"],
                                      kafka_egresses=["example/greets"]) as jvm:
            jvm.extra_diagnostics = lambda: f"--- app log (tail) ---\n{chr(10).join(app.log().splitlines()[-40:])}"
            jvm.wait_running(RUNNING_TIMEOUT)
            jvm.send_many([record("alice"), record("bob")])
            first = [("greetings", "alice", "Hello alice! Nice to meet you."),
                     ("greetings", "bob", "Hello bob! Nice to meet you."),
                     ("reminders", "alice", "Hi alice, still there? Come back soon!"),
                     ("reminders", "bob", "Hi bob, still there? Come back soon!")]
            jvm.wait_for(lambda: len(greets(jvm)) >= len(first), RECORDS_TIMEOUT, "two greetings and two reminders")
            jvm.send(*record("alice"))
            second = ("greetings", "alice", "Hello alice! This is visit number 2.")
            jvm.wait_for(lambda: second in greets(jvm), RECORDS_TIMEOUT, "alice's second greeting")
            records = greets(jvm)
            assert sorted(records) == sorted([*first, second]), records
            # Per address, in order: the greeting, its reminder (500 ms later), the next greeting.
            assert [r for r in records if r[1] == "alice"] == [first[0], first[2], second]
            assert [r for r in records if r[1] == "bob"] == [first[1], first[3]]
            assert jvm.starts() == 1, jvm.diagnostics()
            # The runtime built the ingress's Kafka consumer from the module's spec.
            assert f"groupId={ingress['consumerGroupId']}" in jvm.stderr()


def test_one_app_serves_the_22_and_the_33_cluster_at_once(
    java_cmd: Path, java_cmd_22: Path, app: servers.Server
) -> None:
    """deploy/module.yaml on the real 2.2.2 runtime and deploy/statefun-3.3/module.yaml on the
    real 3.3.0 runtime, both calling the same app process at the same URL: each cluster gets its
    greetings, with its own counts (the state lives in each runtime), and its own egress type."""
    listener = f"127.0.0.1:{app.port}"
    module33, ingress = for_the_harness(MODULE_YAML.read_text(encoding="utf-8"), listener)
    module22 = for_the_harness_22(MODULE_YAML_22.read_text(encoding="utf-8"), listener)
    value_type = ingress["topics"][0]["valueType"]

    def record(name: str) -> Tuple[str, str, bytes]:
        return f"example/greeter/{name}", value_type, GreetRequest(name=name).SerializeToString()

    with tempfile.TemporaryDirectory(prefix="statefun-deploy-both-") as work:
        work22, work33 = Path(work) / "22", Path(work) / "33"
        with runtime.HarnessJvm.start(java_cmd_22, work22, module22, egresses=["example/greets"]) as jvm22, \
                runtime.HarnessJvm.start(java_cmd, work33, module33, egresses=["example/greets"],
                                         kafka_egresses=["example/greets"]) as jvm33:
            for jvm in (jvm22, jvm33):
                jvm.extra_diagnostics = lambda: f"--- app log (tail) ---\n{chr(10).join(app.log().splitlines()[-40:])}"
                jvm.wait_running(RUNNING_TIMEOUT)
            # alice visits twice through 2.2, once through 3.3, interleaved.
            jvm22.send(*record("alice"))
            jvm33.send(*record("alice"))
            greeting1 = ("greetings", "alice", "Hello alice! Nice to meet you.")
            reminder = ("reminders", "alice", "Hi alice, still there? Come back soon!")
            jvm22.wait_for(lambda: greeting1 in greets(jvm22, KAFKA_RECORD_TYPE_22), RECORDS_TIMEOUT, "2.2's greeting")
            jvm22.send(*record("alice"))
            greeting2 = ("greetings", "alice", "Hello alice! This is visit number 2.")
            jvm22.wait_for(lambda: len(greets(jvm22, KAFKA_RECORD_TYPE_22)) >= 3, RECORDS_TIMEOUT, "2.2's records")
            jvm33.wait_for(lambda: len(greets(jvm33)) >= 2, RECORDS_TIMEOUT, "3.3's records")
            assert sorted(greets(jvm22, KAFKA_RECORD_TYPE_22)) == sorted([greeting1, greeting2, reminder])
            assert greets(jvm33) == [greeting1, reminder]
            assert (jvm22.starts(), jvm33.starts()) == (1, 1)
