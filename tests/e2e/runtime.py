"""Driving the e2e harness JVMs (the real StateFun 2.2.2 and 3.3.0 runtimes), shared by
``tests/e2e/test_flink.py``, ``tests/e2e/test_flink3.py`` and ``bench/runtime_connections.py``.

2.2.2, by hand::

    argv = [a.replace("{conf_dir}", str(conf_dir)) for a in json.loads(JAVA_CMD.read_text())]
    (conf_dir / "module.yaml").write_text(module_yaml(endpoint, {"e2e/counter": ([{"name": "count"}], 50)}))
    jvm = subprocess.Popen(argv, stdin=subprocess.PIPE, start_new_session=True)
    ...
    stop_jvm(jvm)

3.3.0, with :class:`HarnessJvm` and any app under gunicorn in any interpreter::

    build_harness("3.3.0")
    server = start_app(sys.executable, "tests.e2e.e2e_app:wsgi", "--workers", "2")  # or the SDK's venv
    server.wait_ready("/")
    yaml = module_yaml3([Endpoint3("e2e/*", f"{server.base_url}/statefun", transport="async")],
                        kafka_egresses=["e2e/kafka"])
    with HarnessJvm.start(JAVA_CMD3, work_dir, yaml, egresses=["e2e/out", "e2e/kafka"],
                          kafka_egresses=["e2e/kafka"]) as jvm:
        jvm.send("e2e/counter/a", "io.statefun.types/string", b"...")
        jvm.wait_for(lambda: len(jvm.records("e2e/out")) == 1)
        assert jvm.starts() == 1
    server.stop()

``tests/e2e/harness_setup.sh [2.2.2|3.3.0]`` builds a harness and writes ``JAVA_CMD`` /
``JAVA_CMD3``; ``tests/e2e/statefun_sdk_setup.sh`` builds the official 3.3 Python SDK's
virtualenv (:func:`official_sdk_python`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar

import yaml

import servers  # tests/servers.py

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
HARNESS_SETUP = REPO / "tests" / "e2e" / "harness_setup.sh"
HARNESS_TARGET = REPO / "tests" / "e2e" / "harness" / "target"
JAVA_CMD = HARNESS_TARGET / "java-cmd.json"
HARNESS3_TARGET = REPO / "tests" / "e2e" / "harness3" / "target"
JAVA_CMD3 = HARNESS3_TARGET / "java-cmd.json"
SDK_SETUP = REPO / "tests" / "e2e" / "statefun_sdk_setup.sh"

#: Bounds on the set-up scripts, in seconds: a cold ~/.m2 downloads ~300 MB for 3.3.0.
SETUP_TIMEOUT = 900.0

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


# -- set-up ------------------------------------------------------------------------------------


class SetupError(RuntimeError):
    """A set-up script failed or is missing a tool; ``missing`` names the tool (a reason to skip)."""

    def __init__(self, message: str, missing: str = "") -> None:
        super().__init__(message)
        self.missing = missing


def _run_setup(command: List[str], what: str) -> str:
    try:
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=SETUP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{what} did not finish within {SETUP_TIMEOUT} s: {exc.stderr!r}") from exc
    if result.returncode != 0:
        raise SetupError(f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def build_harness(version: str = "3.3.0") -> Path:
    """Run ``harness_setup.sh version`` (idempotent); return the ``java-cmd.json`` it wrote.

    Raises :class:`SetupError` (``missing="mvn"`` when Maven is needed and absent).
    """
    target = JAVA_CMD3.parent if version == "3.3.0" else JAVA_CMD.parent
    jar = next(target.glob("statefun-wsgi-e2e-harness*.jar"), None)
    if shutil.which("mvn") is None and jar is None:
        raise SetupError("Maven (mvn) is not installed: the e2e harness cannot be built (apt-get install -y maven)",
                         missing="mvn")
    _run_setup(["bash", str(HARNESS_SETUP), version], f"harness_setup.sh {version}")
    return target / "java-cmd.json"


def harness_for_test(version: str = "3.3.0") -> Path:
    """:func:`build_harness` for a test: skipped where a tool it needs is missing (Maven),
    failed for any other setup error."""
    import pytest

    try:
        return build_harness(version)
    except SetupError as exc:
        if exc.missing:
            pytest.skip(str(exc))
        pytest.fail(str(exc))


def module_yaml_verdicts(
    version: str, probe: Path, cases: Iterable[Tuple[str, str]], folder: Path, timeout: float
) -> Dict[str, str]:
    """Run a module.yaml probe (a Java source file) on the ``version`` harness's classpath over
    every ``(case id, text)``, each written to ``folder``: case id -> the probe's line for it,
    "ACCEPTED" or "REFUSED\t<exception chain>". Skipped without Maven, as harness_for_test."""
    java_cmd = harness_for_test(version)
    java = json.loads(java_cmd.read_text())[0]
    classpath = (HARNESS_TARGET if version == "2.2.2" else HARNESS3_TARGET) / "classpath.txt"
    paths = {}
    for number, (case_id, text) in enumerate(cases):
        path = folder / f"case{number:03d}.yaml"
        path.write_text(text, encoding="utf-8")
        paths[str(path)] = case_id
    run = subprocess.run(
        [java, "-cp", classpath.read_text().strip(), str(probe), *paths],
        cwd=folder, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = dict(line.split("\t", 1) for line in run.stdout.splitlines() if "\t" in line)
    assert set(lines) == set(paths), run.stdout[-4000:] + run.stderr[-4000:]
    return {paths[path]: verdict for path, verdict in lines.items()}


def official_sdk_python() -> str:
    """Run ``statefun_sdk_setup.sh`` (idempotent); return the python of the official 3.3 SDK's venv.

    Raises :class:`SetupError` (``missing="python3.11"`` when no interpreter for it is found).
    """
    try:
        return _run_setup(["bash", str(SDK_SETUP)], "statefun_sdk_setup.sh")
    except SetupError as exc:
        if "no python3.11 found" in str(exc):
            raise SetupError(str(exc), missing="python3.11") from exc
        raise


# -- the served app ----------------------------------------------------------------------------


def start_app(python: str, app: str, *args: str, env: Optional[Mapping[str, str]] = None) -> servers.Server:
    """Start ``python -m gunicorn [args] app`` from the repository root on a free port of
    127.0.0.1 and return at once (then :meth:`servers.Server.wait_ready`, and always
    :meth:`servers.Server.stop`). ``python`` is any interpreter with gunicorn: the project's
    (``sys.executable``) or another virtualenv's (:func:`official_sdk_python`). Without a ``-c``
    in ``args`` gunicorn gets ``--config /dev/null``: not the repository's ``gunicorn.conf.py``
    (which imports statefun_wsgi, absent from the SDK's virtualenv, and binds listeners of its own)."""
    environment = dict(os.environ)
    environment.update(env or {})
    port = servers.free_port()
    probe = ("from gunicorn.config import KNOWN_SETTINGS as k; "
             "print(any(s.name == 'control_socket_disable' for s in k))")
    quiet = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=30, cwd=REPO)
    if quiet.returncode != 0:
        raise SetupError(f"{python} cannot import gunicorn: {quiet.stderr.strip()}")
    # gunicorn 25+ opens a control socket at one fixed path in $HOME by default: servers would fight.
    flags = ["--no-control-socket"] if quiet.stdout.strip() == "True" else []
    if not any(arg in ("-c", "--config") or arg.startswith("--config=") for arg in args):
        # gunicorn reads ./gunicorn.conf.py (ours, which imports statefun_wsgi) unless told a file.
        flags.extend(["--config", os.devnull])
    command = [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "3", *flags, *args, app]
    return servers.Server(command, environment, "127.0.0.1", port)


# -- module.yaml for 3.x -----------------------------------------------------------------------

OKHTTP = "io.statefun.transports.v1/okhttp"
ASYNC = "io.statefun.transports.v1/async"

#: The e2e tests' transport settings (the runtime's defaults wait minutes on a dead endpoint).
TEST_TRANSPORT: Mapping[str, Mapping[str, Any]] = {
    "okhttp": {"timeouts": {"call": "20s", "connect": "5s", "read": "10s", "write": "10s"}},
    "async": {"call": "20s", "connect": "5s"},
}


class Endpoint3(NamedTuple):
    """One HTTP endpoint of a 3.x module.yaml.

    ``functions``: ``"ns/*"`` or ``"ns/name"``. ``url_path_template``: the URL, where
    ``{function.name}`` stands for the function type's name. ``transport``: ``"okhttp"``,
    ``"async"``, or ``""`` for no ``transport`` key (the runtime's default, async).
    ``transport_spec``: the transport's other keys (okhttp: ``timeouts: {call, connect, read,
    write}``; async: ``call``, ``connect``, ``pool_ttl``, ``pool_size``, ``payload_max_bytes``);
    ``None`` for :data:`TEST_TRANSPORT`, ``{}`` for the runtime's defaults.
    """

    functions: str
    url_path_template: str
    transport: str = "okhttp"
    transport_spec: Optional[Mapping[str, Any]] = None
    max_batch: Optional[int] = None

    def spec(self) -> Dict[str, Any]:
        """The transport's keys (without ``type``)."""
        if self.transport not in ("okhttp", "async", ""):
            raise ValueError(f"transport must be 'okhttp', 'async' or '', got {self.transport!r}")
        if self.transport_spec is not None:
            return dict(self.transport_spec)
        return dict(TEST_TRANSPORT.get(self.transport, {}))


#: Where the generic egresses would send: nothing listens there, and nothing is sent, since
#: the harness replaces every egress it writes to its file (``-De2e.egresses``).
NO_BROKER = "127.0.0.1:9"


def module_yaml3(
    endpoints: Sequence[Endpoint3],
    kafka_egresses: Iterable[str] = (),
    kinesis_egresses: Iterable[str] = (),
    version: str = "kind",
) -> str:
    """A 3.x module.yaml: ``version="kind"`` writes the ``kind:`` documents of 3.1+
    (``io.statefun.endpoints.v2/http``, ``io.statefun.kafka.v1/egress``,
    ``io.statefun.kinesis.v1/egress``), ``version="3.0"`` the single legacy document 3.0
    requires (okhttp only: its ``http`` endpoints have no ``transport``; the timeouts go to
    the endpoint's ``timeouts``). Egress ids are ``ns/name``."""
    kafka, kinesis = list(kafka_egresses), list(kinesis_egresses)
    if version == "kind":
        documents: List[Dict[str, Any]] = []
        for endpoint in endpoints:
            spec: Dict[str, Any] = {"functions": endpoint.functions, "urlPathTemplate": endpoint.url_path_template}
            if endpoint.max_batch is not None:
                spec["maxNumBatchRequests"] = endpoint.max_batch
            if endpoint.transport:
                transport = {"type": OKHTTP if endpoint.transport == "okhttp" else ASYNC}
                transport.update(endpoint.spec())
                spec["transport"] = transport
            elif endpoint.transport_spec:
                raise ValueError("transport_spec needs a transport")
            documents.append({"kind": "io.statefun.endpoints.v2/http", "spec": spec})
        for egress in kafka:
            documents.append({"kind": "io.statefun.kafka.v1/egress",
                              "spec": {"id": egress, "address": NO_BROKER,
                                       "deliverySemantic": {"type": "at-least-once"}}})
        for egress in kinesis:
            documents.append({"kind": "io.statefun.kinesis.v1/egress",
                              "spec": {"id": egress, "awsRegion": {"type": "specific", "id": "us-west-2"}}})
        return yaml.safe_dump_all(documents, sort_keys=False)
    if version == "3.0":
        entries = []
        for endpoint in endpoints:
            if endpoint.transport != "okhttp":
                raise ValueError(f'module.yaml version "3.0" has the okhttp transport only, not {endpoint.transport!r}')
            spec = {"functions": endpoint.functions, "urlPathTemplate": endpoint.url_path_template}
            timeouts = endpoint.spec().pop("timeouts", None)
            if timeouts:
                spec["timeouts"] = dict(timeouts)
            if endpoint.max_batch is not None:
                spec["maxNumBatchRequests"] = endpoint.max_batch
            entries.append({"endpoint": {"meta": {"kind": "http"}, "spec": spec}})
        egresses = [{"egress": {"meta": {"type": "io.statefun.kafka/egress", "id": egress},
                                "spec": {"address": NO_BROKER, "deliverySemantic": {"type": "at-least-once"}}}}
                    for egress in kafka]
        egresses += [{"egress": {"meta": {"type": "io.statefun.kinesis/egress", "id": egress},
                                 "spec": {"awsRegion": {"type": "specific", "id": "us-west-2"}}}}
                     for egress in kinesis]
        module_spec: Dict[str, Any] = {"endpoints": entries}
        if egresses:
            module_spec["egresses"] = egresses
        return yaml.safe_dump({"version": "3.0", "module": {"meta": {"type": "remote"}, "spec": module_spec}},
                              sort_keys=False)
    raise ValueError(f'version must be "kind" or "3.0", got {version!r}')


# -- the harness JVM ---------------------------------------------------------------------------


class EgressRecord(NamedTuple):
    """One line of the egress file: ``<egress> <typename (3.x) or type URL (2.x)> <base64>|-``."""

    egress: str
    typename: str
    value: bytes
    has_value: bool

    @classmethod
    def parse(cls, line: str) -> EgressRecord:
        parts = line.split(" ")
        encoded = parts[2] if len(parts) > 2 else ""
        if encoded == "-":  # a 3.x TypedValue with has_value=false
            return cls(parts[0], parts[1], b"", False)
        return cls(parts[0], parts[1], base64.b64decode(encoded), True)


def tail(path: Path, lines: int = 60) -> str:
    """The last ``lines`` lines of a file, or ``(missing)``."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(missing)"


class HarnessJvm:
    """A running harness JVM (either version: same stdin and egress lines): ``send`` writes stdin
    lines, ``records`` reads the egress file, ``starts`` counts job starts. Start it with
    :meth:`start`; use it as a context manager (or call :meth:`stop`)."""

    RUNNING_MARKER = "E2E-HARNESS RUNNING"
    CHECKPOINT_MARKER = "E2E-HARNESS CHECKPOINT"

    def __init__(self, process: subprocess.Popen, egress_path: Path, stderr_path: Path, stderr_file: IO[bytes]) -> None:
        self.process = process
        self.egress_path = egress_path
        self.stderr_path = stderr_path
        self._stderr_file = stderr_file
        self.started_at = time.monotonic()
        #: Extra text for :meth:`diagnostics` (e.g. the served app's log), called on failure.
        self.extra_diagnostics: Callable[[], str] = lambda: ""

    @classmethod
    def start(
        cls,
        java_cmd: Path,
        work_dir: Path,
        module_yaml: str,
        egresses: Iterable[str] = ("e2e/out",),
        kafka_egresses: Iterable[str] = (),
        kinesis_egresses: Iterable[str] = (),
        properties: Optional[Mapping[str, str]] = None,
    ) -> HarnessJvm:
        """Write ``module_yaml`` to ``work_dir/conf/module.yaml`` (on the JVM's classpath) and start
        the JVM with its egress file ``work_dir/egress.txt`` and its stderr in ``work_dir/jvm.stderr``.
        ``kafka_egresses`` / ``kinesis_egresses`` (3.x) are egresses whose records are checked as the
        generic Kafka / Kinesis egress does (a wrong type fails the job); ``properties`` are more
        ``-Dkey=value`` (e2e.checkpoint.interval, e2e.restart.delay, ...). Returns at once."""
        conf_dir = work_dir / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "module.yaml").write_text(module_yaml)
        egress_path = work_dir / "egress.txt"
        stderr_path = work_dir / "jvm.stderr"
        argv = [arg.replace("{conf_dir}", str(conf_dir)) for arg in json.loads(java_cmd.read_text())]
        options = {"e2e.egress.file": str(egress_path), "e2e.egresses": ",".join(egresses)}
        kafka, kinesis = ",".join(kafka_egresses), ",".join(kinesis_egresses)
        if kafka:
            options["e2e.kafka.egresses"] = kafka
        if kinesis:
            options["e2e.kinesis.egresses"] = kinesis
        options.update(properties or {})
        argv += [f"-D{key}={value}" for key, value in options.items()]
        stderr_file = open(stderr_path, "wb")
        try:
            process = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                       stderr=stderr_file, start_new_session=True)
        except BaseException:
            stderr_file.close()
            raise
        return cls(process, egress_path, stderr_path, stderr_file)

    def __enter__(self) -> HarnessJvm:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the JVM (:func:`stop_jvm`) and close its stderr file. Idempotent."""
        try:
            stop_jvm(self.process)
        finally:
            self._stderr_file.close()

    # -- in --------------------------------------------------------------------------------------

    def send(self, address: str, typename: str, value: Optional[bytes]) -> float:
        """Send one message to ``ns/type/id`` (``value=None``: a 3.x ``has_value=false``);
        returns when (monotonic)."""
        return self.send_many([(address, typename, value)])

    def send_many(self, messages: Iterable[Tuple[str, str, Optional[bytes]]]) -> float:
        """Send ``(address, typename, value)`` triples in one write, so they reach the runtime
        back to back; returns when (monotonic)."""
        lines = []
        for address, typename, value in messages:
            encoded = "-" if value is None else base64.b64encode(value).decode()
            lines.append(f"{address} {typename} {encoded}\n")
        self._check_alive()
        assert self.process.stdin is not None
        self.process.stdin.write("".join(lines).encode())
        self.process.stdin.flush()
        return time.monotonic()

    # -- out -------------------------------------------------------------------------------------

    def records(self, egress: Optional[str] = None) -> List[EgressRecord]:
        """Every complete egress line so far (of ``egress`` only, if given), in file order."""
        try:
            data = self.egress_path.read_text()
        except FileNotFoundError:
            return []
        records = [EgressRecord.parse(line) for line in data.split("\n")[:-1] if line]  # last: partial or ""
        return [r for r in records if egress is None or r.egress == egress]

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def starts(self) -> int:
        """How many times the job reached RUNNING (1 + restarts)."""
        return self.stderr().count(self.RUNNING_MARKER)

    def checkpoints(self) -> List[Tuple[int, int]]:
        """``(checkpoint id, stdin offset)`` per completed checkpoint, in order (3.x harness only):
        a restart restores the last one's state and replays stdin from its offset (the number of
        lines read before it)."""
        found = []
        for line in self.stderr().splitlines():
            if line.startswith(self.CHECKPOINT_MARKER):
                fields = dict(field.split("=", 1) for field in line[len(self.CHECKPOINT_MARKER):].split())
                found.append((int(fields["id"]), int(fields["stdin-offset"])))
        return found

    def wait_running(self, timeout: float = 90.0) -> float:
        """Wait for the first job start; return seconds from JVM spawn to RUNNING."""
        self.wait_for(lambda: self.starts() >= 1, timeout, "the job to be RUNNING")
        return time.monotonic() - self.started_at

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0, what: str = "", poll: float = 0.02) -> T:
        """Poll until ``predicate()`` is truthy (returns it); fail with diagnostics after
        ``timeout`` s or as soon as the JVM exits."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            self._check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}\n"
                                     f"{self.diagnostics()}")
            time.sleep(poll)

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"the harness JVM exited with {self.process.returncode}\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        return (f"--- JVM stderr (tail) ---\n{tail(self.stderr_path)}\n"
                f"--- egress file (tail) ---\n{tail(self.egress_path, 30)}\n{self.extra_diagnostics()}")
