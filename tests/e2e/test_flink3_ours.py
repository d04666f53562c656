"""Our app against the real Apache Flink StateFun 3.3.0 runtime (issue #14's proof, and #17's mTLS).

    bash tests/e2e/harness_setup.sh 3.3.0 && bash tests/e2e/harness_setup.sh 2.2.2
    bash tests/e2e/statefun_sdk_setup.sh
    python -m pytest -m flink tests/e2e/test_flink3_ours.py -q -s

One gunicorn serves ``tests.e2e.e2e_app:wsgi3`` (our app: the ``e2e`` and ``e2e3`` functions of
tests/e2e/e2e_app.py, with a request log) with the recommended settings (``-c gunicorn.conf.py``,
two listeners: the runtime calls its own, the only one where the functions answer), and another
serves ``tests.e2e.official33_app:app`` (the official 3.3 Python SDK, in its own virtualenv), both
for the whole module; each test starts its own harness JVM (the real runtime,
tests/e2e/harness3/README.md). The scenarios (what is sent, what must come of it) are the table
of tests/e2e/scenarios3.py, which tests/e2e/test_scenarios3.py runs on LocalRuntime 3.x with the
same expected outcomes. What is asserted:

- ``test_our_functions_on_the_3_3_runtime`` (okhttp and async with ``kind:`` documents; okhttp
  with the legacy ``version: "3.0"``): state discovery (the first request carries no state and
  our reply declares it; every later one carries it, under ``google.protobuf.Any`` or the typed
  state's ``io.statefun.types/int``); an Any state's round trip (messages of two types stored
  and read back byte for byte); a typed state written with another type is refused in the
  function (``UnexpectedMessageTypeError``, which it catches), so the job does NOT fail and the
  count goes on; delayed messages with one cancelled (and an empty token refused in the
  function); Kafka and Kinesis records under the 3.x type names, checked by the runtime's own
  generic egresses; messages both ways with the official SDK's ``sdk33/echo``; one job start.
- ``test_restart_from_a_checkpoint_declares_states_again``: a 400 (not retried by okhttp) fails
  the job, which restores its last checkpoint; the first request after the restore carries no
  state, our reply declares it again, and the counts go on from the checkpoint exactly once.
- ``test_one_app_serves_2_2_2_and_3_3_0_at_once``: one gunicorn, a 2.2.2 and a 3.3.0 runtime
  running at the same time (fed in turns, so the app's log alternates 2.x, 3.x, 2.x, 3.x, then
  both together), each counting exactly once.
- ``test_a_new_app_version_that_changes_a_states_type_fails_the_job``: what the endpoint
  cannot refuse in the function: a new version of the app (gunicorn reloaded) declares a state
  ``ValueSpec("n", IntWrapper)`` that the old one stored as an Any; after a restore from a
  checkpoint the runtime rejects the declaration (``RemoteValueTypeMismatchException``) and the
  job fails for good.
- ``test_mutual_tls_on_the_runtimes_listener``: a gunicorn serving only the runtime's listener
  with TLS that requires a client certificate (``STATEFUN_SERVE=runtime``,
  ``STATEFUN_RUNTIME_CERTFILE/_KEYFILE/_CA_CERTS``); the async transport with ``trust_cacerts``,
  ``client_cert`` and ``client_key`` reaches the functions over https; without the client
  certificate no call is answered and the job fails.
"""

from __future__ import annotations

import http.client
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional

import pytest
from google.protobuf.wrappers_pb2 import StringValue

for _path in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):  # the repo; tests/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)
from e2e.scenarios3 import (  # noqa: E402  (the scenarios, shared with LocalRuntime's test_scenarios3.py)
    ANY, DELAY_S, EVOLVING, KAFKA, KINESIS, OUT, RESTART, SCENARIOS3, STRING_VALUE, by_address, kafka_record,
    kinesis_record, outcome3, outcome_runs, text,
)

pytestmark = pytest.mark.flink

RUNNING_TIMEOUT = 90.0
WAIT_TIMEOUT = 60.0


class Ours(NamedTuple):
    server: servers.Server
    request_log: Path
    fail_file: Path

    def requests(self, start: int = 0) -> List[List[str]]:
        """Request log lines from ``start`` on: ``[protocol, address, invocations, states, reply]``."""
        try:
            return [line.split(" ") for line in self.request_log.read_text().splitlines()[start:]]
        except FileNotFoundError:
            return []

    def diagnostics(self) -> str:
        return (f"--- our request log (tail) ---\n{runtime.tail(self.request_log, 40)}\n"
                f"--- our gunicorn log (tail) ---\n{chr(10).join(self.server.log().splitlines()[-40:])}")


@pytest.fixture(scope="module")
def java_cmd3() -> Path:
    return runtime.harness_for_test("3.3.0")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ours]:
    work = tmp_path_factory.mktemp("ours3")
    request_log, fail_file = work / "requests.txt", work / "fail-once"
    server = servers.start(
        "tests.e2e.e2e_app:wsgi3", "-c", "gunicorn.conf.py", "--workers", "2",
        env={"STATEFUN_BIND": f"127.0.0.1:{servers.free_port()}", "STATEFUN_ACCESS_LOG": "off",
             "E2E_REQUEST_LOG3": str(request_log), "E2E_FAIL_FILE": str(fail_file)},
        bind=False,
    )
    try:
        server.wait_ready("/")
        # The public listener: /statefun is the app's (None: a 404), no function runs.
        public = http.client.HTTPConnection("127.0.0.1", server.public_port, timeout=10)
        public.request("POST", "/statefun", body=b"", headers={"Content-Type": "application/octet-stream"})
        assert public.getresponse().status == 404, "functions answered on the public listener"
        public.close()
        yield Ours(server, request_log, fail_file)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    try:
        python = runtime.official_sdk_python()
    except runtime.SetupError as exc:
        if exc.missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))
    server = runtime.start_app(python, "tests.e2e.official33_app:app",
                               "--worker-class", "gthread", "--workers", "1", "--threads", "4")
    try:
        server.wait_ready("/")
        yield server
    finally:
        server.stop()


def said(jvm: runtime.HarnessJvm, address: str) -> List[str]:
    """What ``address`` egressed to e2e/out (``"<address> <text>"``), the texts in order."""
    prefix = address + " "
    found = []
    for record in jvm.records(OUT):
        assert record.typename == STRING_VALUE and record.has_value, record
        value = StringValue.FromString(record.value).value
        if value.startswith(prefix):
            found.append(value[len(prefix):])
    return found


def counts(jvm: runtime.HarnessJvm, address: str) -> List[int]:
    return [int(t) for t in said(jvm, address)]


@pytest.mark.parametrize("transport,version", [("okhttp", "kind"), ("async", "kind"), ("okhttp", "3.0")])
def test_our_functions_on_the_3_3_runtime(
    java_cmd3: Path, ours: Ours, official: servers.Server, tmp_path: Path, transport: str, version: str
) -> None:
    """The table of tests/e2e/scenarios3.py (SCENARIOS3), all in one job; LocalRuntime runs the
    same in tests/e2e/test_scenarios3.py."""
    tag = f"{transport}-{version.replace('.', '')}"
    endpoints = [runtime.Endpoint3("e2e3/*", f"{ours.server.base_url}/statefun", transport=transport),
                 runtime.Endpoint3("sdk33/*", f"{official.base_url}/statefun/{{function.name}}", transport=transport)]
    yaml = runtime.module_yaml3(endpoints, kafka_egresses=[KAFKA], kinesis_egresses=[KINESIS], version=version)
    log_start = len(ours.requests())
    # The scenario with a later step (the cancellation) last, so that its clock starts late.
    table = sorted(SCENARIOS3, key=lambda scenario: scenario.then is not None)

    with runtime.HarnessJvm.start(java_cmd3, tmp_path, yaml, egresses=[OUT, KAFKA, KINESIS],
                                  kafka_egresses=[KAFKA], kinesis_egresses=[KINESIS]) as jvm:
        jvm.extra_diagnostics = ours.diagnostics
        jvm.send_many([sent for scenario in table for sent in scenario.sends(tag, scenario.messages)])
        running = jvm.wait_running(RUNNING_TIMEOUT)
        timings = []
        for scenario in table:
            if scenario.then is None:
                continue
            address, (trigger, messages) = scenario.address(tag), scenario.then
            jvm.wait_for(lambda: trigger in said(jvm, address), WAIT_TIMEOUT, f"{scenario.id}: {trigger!r}")
            scheduled = time.monotonic()
            then_sent = jvm.send_many(scenario.sends(tag, messages))
            jvm.wait_for(lambda: len(said(jvm, address)) >= len(scenario.said), WAIT_TIMEOUT,
                         f"{scenario.id}: the answer to {messages}")
            answered = time.monotonic()
            # (Had the cancellation come after the delay, "fired 2" would show: a failure, never a false pass.)
            assert answered - scheduled < DELAY_S - 1, f"{scenario.id}: answered {answered - scheduled:.2f} s late"
            timings.append((then_sent, scheduled, answered))
        jvm.wait_for(lambda: all(len(said(jvm, s.address(tag))) >= len(s.said) + len(s.said_in_any_order)
                                 for s in table)
                     and len(jvm.records(KAFKA)) >= sum(len(s.kafka) for s in table)
                     and len(jvm.records(KINESIS)) >= sum(len(s.kinesis) for s in table), WAIT_TIMEOUT,
                     "every scenario's egress")
        time.sleep(1.5)  # the cancelled message's time, and anything extra (a repeat), would show now
        done = time.monotonic()

        assert jvm.starts() == 1, f"the job restarted\n{jvm.diagnostics()}"
        kafka = [kafka_record(r.typename, r.value) for r in jvm.records(KAFKA)]
        kinesis = [kinesis_record(r.typename, r.value) for r in jvm.records(KINESIS)]
        rows = by_address(ours.requests(log_start))
        found = {s.id: outcome3(s, tag, said(jvm, s.address(tag)), kafka if s.kafka else [],
                                kinesis if s.kinesis else [], rows.get(s.address(tag), [])) for s in table}
        for scenario_id, outcome in found.items():
            print(f"\n[flink3 ours] {transport}/{version} {scenario_id}: said {outcome.said} kafka {len(outcome.kafka)} "
                  f"kinesis {len(outcome.kinesis)} requests {outcome.requests}")
        assert found == {s.id: s.expected(tag) for s in table}, ({k: v.detail for k, v in found.items()},
                                                                 jvm.diagnostics())

    requests = [r for r in ours.requests(log_start) if r[0] == "3.x"]
    for then_sent, scheduled, answered in timings:
        print(f"\n[flink3 ours] {transport}/{version}: JVM start -> RUNNING {running:.2f} s; cancellation answered "
              f"{answered - then_sent:.2f} s after sending, {answered - scheduled:.2f} s after the schedule showed "
              f"(delay {DELAY_S} s); {len(requests)} requests to ours; "
              f"{len(jvm.records())} egress records; done {done - jvm.started_at:.1f} s after the JVM started")


def test_restart_from_a_checkpoint_declares_states_again(java_cmd3: Path, ours: Ours, tmp_path: Path) -> None:
    """RESTART of tests/e2e/scenarios3.py (LocalRuntime: tests/e2e/test_scenarios3.py)."""
    endpoint = runtime.Endpoint3("e2e/*", f"{ours.server.base_url}/statefun", transport="okhttp")
    address = RESTART.address
    log_start = len(ours.requests())
    with runtime.HarnessJvm.start(java_cmd3, tmp_path, runtime.module_yaml3([endpoint]), egresses=[OUT]) as jvm:
        jvm.extra_diagnostics = ours.diagnostics
        jvm.send_many([(address, STRING_VALUE, text(str(n))) for n in range(RESTART.before)])
        jvm.wait_running(RUNNING_TIMEOUT)
        jvm.wait_for(lambda: counts(jvm, address) == list(range(1, RESTART.before + 1)), WAIT_TIMEOUT,
                     f"counts 1..{RESTART.before}")
        done = len(jvm.checkpoints())
        jvm.wait_for(lambda: len(jvm.checkpoints()) >= done + 2, WAIT_TIMEOUT, "two more checkpoints")
        ours.fail_file.write_text("")
        jvm.send(address, STRING_VALUE, text("fail-once"))  # a 400, not retried by okhttp: the job fails
        jvm.wait_for(lambda: jvm.starts() == 2, WAIT_TIMEOUT, "the job's restart")
        restored = jvm.checkpoints()[-1]
        jvm.send_many([(address, STRING_VALUE, text(str(n))) for n in range(RESTART.after)])
        jvm.wait_for(lambda: len(said(jvm, address)) >= len(RESTART.said), WAIT_TIMEOUT,
                     f"{len(RESTART.said)} counts")
        time.sleep(0.5)  # anything extra (a repeat) would show now

        assert not ours.fail_file.exists()
        assert jvm.starts() == 2, jvm.diagnostics()
        assert restored[1] in (RESTART.before, RESTART.before + 1), f"restored from {restored}"
        assert said(jvm, address) == list(RESTART.said), jvm.diagnostics()

    outcomes = [r[3:] for r in ours.requests(log_start) if r[1] == address]
    assert outcome_runs([r[2:] for r in ours.requests(log_start) if r[1] == address], RESTART.state) \
        == list(RESTART.outcomes), outcomes
    failed = outcomes.index([f"count={ANY}", "failed"])
    assert all(o in (["count=-", "result"], [f"count={ANY}", "result"]) for o in outcomes[1:failed]), outcomes
    # After the restore the runtime knew no state again: our reply declared `count` once more.
    assert outcomes[failed + 1] == ["-", "missing:count"], outcomes
    assert all(o == [f"count={ANY}", "result"] for o in outcomes[failed + 2:]), outcomes
    print(f"\n[flink3 ours] restart: restored checkpoint {restored[0]} (stdin offset {restored[1]}); "
          f"{len(outcomes)} requests, outcomes {[o[1] for o in outcomes]}")


def test_one_app_serves_2_2_2_and_3_3_0_at_once(java_cmd3: Path, ours: Ours, tmp_path: Path) -> None:
    try:
        java_cmd2 = runtime.build_harness("2.2.2")
    except runtime.SetupError as exc:
        if exc.missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))
    url = f"{ours.server.base_url}/statefun"
    yaml2 = runtime.module_yaml(url, {"e2e/counter": ([{"name": "count"}], 50)})
    yaml3 = runtime.module_yaml3([runtime.Endpoint3("e2e/*", url, transport="async")])
    v2 = [f"e2e/counter/both-2x-{n}" for n in range(3)]
    v3 = [f"e2e/counter/both-3x-{n}" for n in range(3)]
    messages = 30
    log_start = len(ours.requests())
    (tmp_path / "v2").mkdir()
    (tmp_path / "v3").mkdir()
    with runtime.HarnessJvm.start(java_cmd2, tmp_path / "v2", yaml2) as jvm2, \
            runtime.HarnessJvm.start(java_cmd3, tmp_path / "v3", yaml3) as jvm3:
        jvm2.extra_diagnostics = jvm3.extra_diagnostics = ours.diagnostics
        jvm2.wait_running(RUNNING_TIMEOUT)
        jvm3.wait_running(RUNNING_TIMEOUT)
        started = time.monotonic()
        # Both runtimes stay up throughout. First in turns (2.2.2, 3.3.0, 2.2.2, 3.3.0: each turn
        # counted before the next, so the app's log must alternate), then both at once.
        sent = 0
        for turn in range(2):
            for jvm, addresses in ((jvm2, v2), (jvm3, v3)):
                jvm.send_many([(a, STRING_VALUE, text(str(n))) for n in range(sent, sent + 10) for a in addresses])
                jvm.wait_for(lambda: all(sent + 10 in counts(jvm, a) for a in addresses), WAIT_TIMEOUT,
                             f"turn {turn}'s counts")
            sent += 10
        turns_end = len(ours.requests(log_start))
        for n in range(sent, messages):
            jvm2.send_many([(a, STRING_VALUE, text(str(n))) for a in v2])
            jvm3.send_many([(a, STRING_VALUE, text(str(n))) for a in v3])
            time.sleep(0.01)
        jvm2.wait_for(lambda: all(messages in counts(jvm2, a) for a in v2), WAIT_TIMEOUT, "the 2.2.2 counts")
        jvm3.wait_for(lambda: all(messages in counts(jvm3, a) for a in v3), WAIT_TIMEOUT, "the 3.3.0 counts")
        elapsed = time.monotonic() - started
        time.sleep(0.5)
        for jvm, addresses in ((jvm2, v2), (jvm3, v3)):
            assert jvm.starts() == 1, jvm.diagnostics()
            for address in addresses:
                assert counts(jvm, address) == list(range(1, messages + 1)), address
    requests = ours.requests(log_start)
    protocols: Dict[str, set] = {}
    for r in requests:
        protocols.setdefault(r[0], set()).add(r[1])
    assert protocols == {"2.x": set(v2), "3.x": set(v3)}, protocols
    # The turns: the app answered 2.2.2, then 3.3.0, then 2.2.2 again, then 3.3.0, each in its protocol.
    order = [r[0] for r in requests]
    runs = [p for i, p in enumerate(order[:turns_end]) if i == 0 or order[i - 1] != p]
    assert runs == ["2.x", "3.x", "2.x", "3.x"], order
    concurrent = order[turns_end:]
    print(f"\n[flink3 ours] one app, 2.2.2 and 3.3.0 up at once: {2 * 3 * messages} messages counted in "
          f"{elapsed:.2f} s; {order.count('2.x')} 2.x and {order.count('3.x')} 3.x requests "
          f"({turns_end} in turns, then {concurrent.count('2.x')} 2.x and {concurrent.count('3.x')} 3.x sent "
          f"together)")


# -- mutual TLS (issue #17) --------------------------------------------------------------------


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed (EC P-256,
    keys in unencrypted PKCS#8, what the runtime's ``client_key`` reads)."""
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
                                          "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\n"
                                          "authorityKeyIdentifier=keyid\n")
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=statefun-wsgi e2e ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    for name in ("server", "client"):
        openssl("req", *key, "-keyout", f"{name}.key.tmp", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
        openssl("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.key.tmp", "-out", f"{name}.key", cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)
    # The client key once more, encrypted, for client_key_password: a file holding the password
    # alone (the runtime reads it whole: no newline). PKCS#8 with PBE-SHA1-3DES: the runtime's
    # Netty on Java 17 cannot read PBES2 keys (openssl's default, AES: "PBES2 SecretKeyFactory
    # not available", every call fails).
    (directory / "client.password").write_text("e2e-secret")
    openssl("pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES", "-in", "client.key", "-out", "client.encrypted.key",
            "-passout", "file:client.password", cwd=directory)


def wait_tls_ready(server: servers.Server, context: ssl.SSLContext, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.process.returncode}:\n{server.log()}")
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=2, context=context)
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
            return
        except OSError as exc:
            last = exc
        finally:
            connection.close()
        time.sleep(0.05)
    raise TimeoutError(f"no TLS answer within {timeout} s ({last!r}):\n{server.log()}")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_mutual_tls_on_the_runtimes_listener(java_cmd3: Path, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(certs)
    request_log = tmp_path / "requests.txt"
    server = servers.start(
        "tests.e2e.e2e_app:wsgi3", "-c", "gunicorn.conf.py", "--workers", "2",
        env={"STATEFUN_SERVE": "runtime", "STATEFUN_ACCESS_LOG": "off", "E2E_REQUEST_LOG3": str(request_log),
             "STATEFUN_RUNTIME_CERTFILE": str(certs / "server.pem"),
             "STATEFUN_RUNTIME_KEYFILE": str(certs / "server.key"),
             "STATEFUN_RUNTIME_CA_CERTS": str(certs / "ca.pem")},
        bind=False,
    )
    try:
        client = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        client.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
        wait_tls_ready(server, client)
        url = f"https://127.0.0.1:{server.port}/statefun"
        trust = {"call": "20s", "connect": "5s", "trust_cacerts": str(certs / "ca.pem")}

        # With the client certificate (its key plain, then encrypted with client_key_password):
        # every call answered, over https.
        with_key = dict(trust, client_cert=str(certs / "client.pem"), client_key=str(certs / "client.key"))
        with_encrypted_key = dict(trust, client_cert=str(certs / "client.pem"),
                                  client_key=str(certs / "client.encrypted.key"),
                                  client_key_password=str(certs / "client.password"))
        served: List[str] = []
        for name, spec in (("plain-key", with_key), ("encrypted-key", with_encrypted_key)):
            address = f"e2e/counter/mtls-{name}"
            yaml = runtime.module_yaml3([runtime.Endpoint3("e2e/*", url, transport="async", transport_spec=spec)])
            (tmp_path / name).mkdir()
            with runtime.HarnessJvm.start(java_cmd3, tmp_path / name, yaml) as jvm:
                jvm.send_many([(address, STRING_VALUE, text(str(n))) for n in range(10)])
                running = jvm.wait_running(RUNNING_TIMEOUT)
                jvm.wait_for(lambda: 10 in counts(jvm, address), WAIT_TIMEOUT, f"counts 1..10 over mTLS ({name})")
                answered = time.monotonic() - jvm.started_at
                time.sleep(0.3)
                assert counts(jvm, address) == list(range(1, 11))
                assert jvm.starts() == 1, jvm.diagnostics()
            lines = request_log.read_text().splitlines()[len(served):]
            assert lines and all(line.split(" ")[:2] == ["3.x", address] for line in lines), lines
            served += lines
            print(f"\n[flink3 ours] mTLS ({name}): RUNNING {running:.2f} s after the JVM started, 10 counts by "
                  f"{answered:.2f} s, in {len(lines)} requests")

        # Without it (the CA trusted, no client certificate): the handshake is refused, no call is
        # answered, and the job fails once its call timeout runs out (no restart allowed).
        quiet = {"e2e.restart.attempts": "0", "e2e.restart.delay": "100ms"}
        yaml = runtime.module_yaml3([runtime.Endpoint3("e2e/*", url, transport="async",
                                                       transport_spec=dict(trust, call="5s"))])
        (tmp_path / "without").mkdir()
        with runtime.HarnessJvm.start(java_cmd3, tmp_path / "without", yaml, properties=quiet) as jvm:
            jvm.send(address + "-none", STRING_VALUE, text("0"))
            jvm.wait_running(RUNNING_TIMEOUT)
            try:
                returncode = jvm.process.wait(timeout=WAIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the job did not fail within {WAIT_TIMEOUT} s\n{jvm.diagnostics()}")
            failed_after = time.monotonic() - jvm.started_at
            assert returncode == 1, jvm.diagnostics()
            assert "E2E-HARNESS job failed for good" in jvm.stderr(), jvm.diagnostics()
            assert jvm.records() == []
            refused = jvm.stderr().count("SSLHandshakeException: Received fatal alert: certificate_required")
            assert refused >= 1, jvm.diagnostics()
        assert request_log.read_text().splitlines() == served, "a call without the client certificate ran"
        print(f"\n[flink3 ours] mTLS without the client certificate: no call answered, {refused} handshakes "
              f"refused (certificate_required), the job failed {failed_after:.2f} s after the JVM started")
    finally:
        server.stop()


def test_a_new_app_version_that_changes_a_states_type_fails_the_job(java_cmd3: Path, tmp_path: Path) -> None:
    """EVOLVING of tests/e2e/scenarios3.py. What our endpoint cannot refuse in the function: a
    new version of the app declaring an existing state with another type (``"n"``, an Any, becomes ``ValueSpec("n", IntWrapper)``).
    The runtime rejects the declaration once it restores the state from a checkpoint."""
    type_file, fail_file, request_log = tmp_path / "state-type", tmp_path / "fail-once", tmp_path / "requests.txt"
    server = servers.start(
        "tests.e2e.e2e_app:wsgi3", "-c", "gunicorn.conf.py", "--workers", "1",
        env={"STATEFUN_BIND": f"127.0.0.1:{servers.free_port()}", "STATEFUN_ACCESS_LOG": "off",
             "E2E_REQUEST_LOG3": str(request_log), "E2E_FAIL_FILE": str(fail_file),
             "E2E_STATE_TYPE_FILE": str(type_file)},
        bind=False,
    )
    address = EVOLVING.address
    try:
        server.wait_ready("/")
        endpoint = runtime.Endpoint3("e2e3/*", f"{server.base_url}/statefun", transport="okhttp")
        properties = {"e2e.restart.attempts": "1", "e2e.restart.delay": "200ms"}
        with runtime.HarnessJvm.start(java_cmd3, tmp_path / "jvm", runtime.module_yaml3([endpoint]),
                                      properties=properties) as jvm:
            jvm.send_many([(address, STRING_VALUE, text(str(n))) for n in range(EVOLVING.before)])
            jvm.wait_running(RUNNING_TIMEOUT)
            jvm.wait_for(lambda: said(jvm, address) == list(EVOLVING.said), WAIT_TIMEOUT, "n 1..5")
            done = len(jvm.checkpoints())
            jvm.wait_for(lambda: len(jvm.checkpoints()) >= done + 2, WAIT_TIMEOUT, "two more checkpoints")
            # The new version: gunicorn reloads its workers (SIGHUP), which import the app again.
            type_file.write_text("int\n")
            server.process.send_signal(signal.SIGHUP)
            server.wait_for_log("Worker exiting", 1, WAIT_TIMEOUT)
            server.wait_for_log("Booting worker", 2, WAIT_TIMEOUT)
            # A restart from the checkpoint (a 400 okhttp does not retry): the runtime then knows
            # no state, the new version declares `n` as io.statefun.types/int, and the restored
            # state is google.protobuf.Any: the job fails, and again after its one restart.
            fail_file.write_text("")
            jvm.send(address, STRING_VALUE, text("fail-once"))
            try:
                returncode = jvm.process.wait(timeout=WAIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the job did not fail within {WAIT_TIMEOUT} s\n{jvm.diagnostics()}")
            stderr = jvm.stderr()
            assert returncode == 1, jvm.diagnostics()
            assert "E2E-HARNESS job failed for good" in stderr
            assert EVOLVING.runtime_log in stderr, jvm.diagnostics()
            assert said(jvm, address) == list(EVOLVING.said)
            starts = jvm.starts()
        outcomes = [line.split(" ")[3:] for line in request_log.read_text().splitlines()]
        failed = outcomes.index([f"n={ANY}", "failed"])
        assert outcomes[0] == ["-", "missing:n"] and outcomes[failed + 1] == ["-", "missing:n"], outcomes
        # The same as LocalRuntime's (tests/e2e/test_scenarios3.py), up to its failure; the job's one
        # restart allowed here declares (and fails) once more.
        runs = outcome_runs([line.split(" ")[2:] for line in request_log.read_text().splitlines()], EVOLVING.state)
        assert runs[:len(EVOLVING.outcomes)] == list(EVOLVING.outcomes), runs
        print(f"\n[flink3 ours] a state's type changed by a new app version: RemoteValueTypeMismatchException "
              f"after the restore, job starts {starts}, JVM exit {returncode}; requests {outcomes}")
    finally:
        server.stop()
