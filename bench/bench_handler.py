"""Benchmark of the request-reply handler: statefun_wsgi vs the official StateFun 2.2.2 and 3.3 SDKs.

Usage (from the repository root)::

    python3.11 bench/bench_handler.py            # ~3 min; writes bench/results/handler.{md,json}
    python3.11 bench/bench_handler.py --quick    # ~20 s smoke run; writes nothing unless --write
    python3.11 bench/bench_handler.py --tuned-malloc   # glibc's heap kept; writes handler-tuned-malloc.*
    python3.11 bench/bench_handler.py --profile  # cProfile of our side, scenario by scenario
    python3.11 bench/bench_handler.py --protocol 3   # the 3.x sides only (handler-v3.{md,json})

Three sides run the same function logic (``bench/scenarios.py``) on the same request
bytes, each in a persistent worker process (``bench/_worker.py``):

- ``ours``: this interpreter and its protobuf (upb expected), with statefun_wsgi from
  this repository;
- ``official-default``: ``python3.11 -m venv`` + ``pip install apache-flink-statefun==2.2.2``,
  which pins protobuf<4 and so gets 3.20.x in its pure-Python implementation;
- ``official-fastest``: Python 3.10 + apache-flink-statefun==2.2.2 + protobuf==3.20.3
  with its C++ implementation (``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=cpp``).

and, for StateFun 3.x (the same scenarios as 3.x request bytes, with states registered
as ``type.googleapis.com/google.protobuf.Any``, as statefun_wsgi declares them):

- ``ours-3x``: statefun_wsgi answering the 3.x requests (the same functions, same handler);
- ``official3-default``: ``python3.11 -m venv`` + ``pip install apache-flink-statefun==3.3.0``
  (protobuf 3.20.x, pure Python), its ``RequestReplyHandler.handle_sync``, with the same
  logic written in its API (``bench/scenarios_v3.py``);
- ``official3-fastest``: Python 3.10 + apache-flink-statefun==3.3.0 + protobuf==3.20.3 (C++).

The official environments are created under ``bench/.venvs/`` on first use
(needs PyPI) and reused afterwards. Before any timing, every side's reply to every
request is decoded and compared with the expected content (messages in order,
mutations by state name); any difference stops the run.

Timing interleaves the sides: for each round, for each scenario, for each side (in
an order rotated every round), one block of back-to-back requests. Each block is
sized by a calibration run to take about the same wall time. Reported: the median
over rounds (and the minimum) of microseconds per request, and per invocation for
the 100-invocation batch; ratio = official / ours (how many times faster ours is).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any as TypingAny
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "_worker.py"
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"

sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import google.protobuf  # noqa: E402
from google.protobuf.any_pb2 import Any  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue  # noqa: E402

from statefun_wsgi._proto import request_reply_v3_pb2 as v3  # noqa: E402
from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction  # noqa: E402

TARGET_VS_DEFAULT = 5.0
TARGET_VS_FASTEST = 2.0
OFFICIAL_SDK = "apache-flink-statefun==2.2.2"
OFFICIAL_SDK_3 = "apache-flink-statefun==3.3.0"
#: The 3.x path may cost at most this much more than the 2.x path (ours-3x / ours).
TARGET_V3_OVER_V2 = 1.10
#: Goal: ours-3x at least this many times faster than official 3.3 fastest (not for state-1mib).
GOAL_VS_OFFICIAL3 = 10.0
ANY_TYPENAME = "type.googleapis.com/google.protobuf.Any"
MODIFY = FromFunction.PersistedValueMutation.MODIFY
DELETE = FromFunction.PersistedValueMutation.DELETE
BLOB = bytes(range(256)) * 4096  # 1 MiB
assert len(BLOB) == 1 << 20


# -- requests and the replies they must produce --------------------------------------


def pack(message: Message) -> Any:
    box = Any()
    box.Pack(message)
    return box


def build_request(
    target: Tuple[str, str, str],
    states: Dict[str, Optional[Message]],
    invocations: List[Tuple[Optional[Tuple[str, str, str]], Message]],
) -> bytes:
    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = target
    for name, value in states.items():
        state = batch.state.add(state_name=name)
        if value is not None:
            state.state_value = pack(value).SerializeToString()
    for caller, argument in invocations:
        invocation = batch.invocations.add()
        if caller is not None:
            invocation.caller.namespace, invocation.caller.type, invocation.caller.id = caller
        invocation.argument.CopyFrom(pack(argument))
    return request.SerializeToString()


def to_v3(data: bytes) -> bytes:
    """The 3.x request equivalent to a 2.x one: arguments as ``TypedValue{type_url, true, value}``,
    a state of value ``v`` as ``TypedValue{type.googleapis.com/google.protobuf.Any, true, v}``."""
    old = ToFunction.FromString(data)
    new = v3.ToFunction()
    batch, out = old.invocation, new.invocation
    out.target.namespace, out.target.type, out.target.id = batch.target.namespace, batch.target.type, batch.target.id
    for state in batch.state:
        persisted = out.state.add(state_name=state.state_name)
        if state.state_value:
            persisted.state_value.CopyFrom(v3.TypedValue(typename=ANY_TYPENAME, has_value=True, value=state.state_value))
    for invocation in batch.invocations:
        call = out.invocations.add()
        if invocation.HasField("caller"):
            c = invocation.caller
            call.caller.namespace, call.caller.type, call.caller.id = c.namespace, c.type, c.id
        call.argument.CopyFrom(
            v3.TypedValue(typename=invocation.argument.type_url, has_value=True, value=invocation.argument.value)
        )
    return new.SerializeToString()


Content = Dict[str, TypingAny]


def any_key(message: Message) -> Tuple[str, bytes]:
    """How an ``Any`` holding ``message`` compares: (type URL, payload bytes)."""
    return ("type.googleapis.com/" + message.DESCRIPTOR.full_name, message.SerializeToString())


def expected(
    outgoing: Optional[list] = None,
    delayed: Optional[list] = None,
    egress: Optional[list] = None,
    mutations: Optional[Dict[str, Optional[Message]]] = None,
) -> Content:
    return {
        "outgoing": [(target, any_key(message)) for target, message in outgoing or []],
        "delayed": [(ms, target, any_key(message)) for ms, target, message in delayed or []],
        "egress": [(target, any_key(message)) for target, message in egress or []],
        "mutations": {
            name: (DELETE, None) if value is None else (MODIFY, any_key(value))
            for name, value in (mutations or {}).items()
        },
    }


def decode_reply(reply: bytes) -> Content:
    """A reply's content: messages in order, mutations keyed by state name."""
    message = FromFunction.FromString(reply)
    if not message.HasField("invocation_result"):
        raise AssertionError("the reply has no invocation_result")
    result = message.invocation_result

    def address(a) -> Tuple[str, str, str]:
        return (a.namespace, a.type, a.id)

    def boxed(a) -> Tuple[str, bytes]:
        return (a.type_url, bytes(a.value))

    mutations: Dict[str, tuple] = {}
    for mutation in result.state_mutations:
        if mutation.state_name in mutations:
            raise AssertionError(f"two mutations of state {mutation.state_name!r}")
        value = boxed(Any.FromString(mutation.state_value)) if mutation.mutation_type == MODIFY else None
        mutations[mutation.state_name] = (mutation.mutation_type, value)
    return {
        "outgoing": [(address(m.target), boxed(m.argument)) for m in result.outgoing_messages],
        "delayed": [(d.delay_in_ms, address(d.target), boxed(d.argument)) for d in result.delayed_invocations],
        "egress": [((e.egress_namespace, e.egress_type), boxed(e.argument)) for e in result.outgoing_egresses],
        "mutations": mutations,
    }


def decode_reply_v3(reply: bytes) -> Content:
    """A 3.x reply's content, in the terms of :func:`decode_reply` (a TypedValue as the Any it
    is equivalent to; a state's value, of type Any, as the Any it holds)."""
    message = v3.FromFunction.FromString(reply)
    if not message.HasField("invocation_result"):
        raise AssertionError(f"the reply has no invocation_result: {str(message)[:300]}")
    result = message.invocation_result

    def address(a) -> Tuple[str, str, str]:
        return (a.namespace, a.type, a.id)

    def typed(t) -> Tuple[str, bytes]:
        if not t.has_value:
            raise AssertionError(f"a TypedValue without has_value: {t}")
        return (t.typename, bytes(t.value))

    mutations: Dict[str, tuple] = {}
    for mutation in result.state_mutations:
        if mutation.state_name in mutations:
            raise AssertionError(f"two mutations of state {mutation.state_name!r}")
        value = None
        if mutation.mutation_type == MODIFY:
            typename, data = typed(mutation.state_value)
            if typename != ANY_TYPENAME:
                raise AssertionError(f"state {mutation.state_name!r} written as {typename}")
            box = Any.FromString(data)
            value = (box.type_url, bytes(box.value))
        mutations[mutation.state_name] = (mutation.mutation_type, value)
    for d in result.delayed_invocations:
        if d.is_cancellation_request or d.cancellation_token:
            raise AssertionError(f"an unexpected cancellation: {d}")
    return {
        "outgoing": [(address(m.target), typed(m.argument)) for m in result.outgoing_messages],
        "delayed": [(d.delay_in_ms, address(d.target), typed(d.argument)) for d in result.delayed_invocations],
        "egress": [((e.egress_namespace, e.egress_type), typed(e.argument)) for e in result.outgoing_egresses],
        "mutations": mutations,
    }


def describe_difference(got: Content, want: Content) -> str:
    lines = []
    for key in ("outgoing", "delayed", "egress"):
        if got[key] != want[key]:
            lines.append(f"  {key}: got {len(got[key])} messages, expected {len(want[key])}")
            for i, (g, w) in enumerate(zip(got[key], want[key], strict=False)):
                if g != w:
                    lines.append(f"    first difference at #{i}: got {str(g)[:200]} expected {str(w)[:200]}")
                    break
    if got["mutations"] != want["mutations"]:
        lines.append(f"  mutations: got {sorted(got['mutations'])}, expected {sorted(want['mutations'])}")
        for name in sorted(set(got["mutations"]) | set(want["mutations"])):
            g, w = got["mutations"].get(name), want["mutations"].get(name)
            if g != w:
                lines.append(f"    {name}: got {str(g)[:200]} expected {str(w)[:200]}")
    return "\n".join(lines)


@dataclass
class Scenario:
    name: str
    invocations: int
    request: bytes
    reply: Content
    description: str
    request_v3: bytes = b""

    def __post_init__(self) -> None:
        if not self.request_v3:
            self.request_v3 = to_v3(self.request)


def scenarios() -> List[Scenario]:
    counter_target = ("bench", "counter", "user-1")
    counter = Scenario(
        "counter",
        1,
        build_request(counter_target, {"count": Int64Value(value=41)}, [(None, StringValue(value="hello"))]),
        expected(egress=[(("bench", "out"), Int64Value(value=42))], mutations={"count": Int64Value(value=42)}),
        "bench/counter, state count=41, 1 invocation: count += 1, store, 1 egress",
    )
    counter_100 = Scenario(
        "counter-100",
        100,
        build_request(
            counter_target,
            {"count": Int64Value(value=41)},
            [(None, StringValue(value=f"hello-{i}")) for i in range(100)],
        ),
        expected(
            egress=[(("bench", "out"), Int64Value(value=42 + i)) for i in range(100)],
            mutations={"count": Int64Value(value=141)},
        ),
        "the same with 100 invocations in the batch",
    )
    fanout = Scenario(
        "fanout",
        1,
        build_request(
            ("bench", "fanout", "hub-1"),
            {"s1": Int64Value(value=7), "s2": None, "s3": None},
            [(("bench", "counter", "user-1"), Int64Value(value=10))],
        ),
        expected(
            outgoing=[(("bench", "counter", f"peer-{i}"), Int64Value(value=10 + i)) for i in range(10)],
            delayed=[(5000, ("bench", "fanout", "hub-1"), Int64Value(value=1))],
            mutations={
                "s1": Int64Value(value=8),
                "s2": StringValue(value="fanout-done"),
                "s3": Int64Value(value=10),
            },
        ),
        "bench/fanout with a caller: 10 sends, 1 delayed send, 3 states written (2 were absent)",
    )
    blob = Scenario(
        "state-1mib",
        1,
        build_request(
            ("bench", "blob", "blob-1"), {"blob": BytesValue(value=BLOB)}, [(None, StringValue(value="rotate"))]
        ),
        expected(mutations={"blob": BytesValue(value=BLOB[1:] + BLOB[:1])}),
        "bench/blob, a 1 MiB BytesValue state read, rotated by one byte and written back",
    )
    return [counter, counter_100, fanout, blob]


# -- the sides ---------------------------------------------------------------------------


@dataclass
class Side:
    name: str
    label: str
    sdk: str
    implementation: Optional[str]  # the protobuf implementation it must run on (None: report only)
    env: Dict[str, str]
    python: str = ""
    info: Dict[str, TypingAny] = field(default_factory=dict)
    protocol: int = 2  # the request bytes it answers: 2.x or 3.x

    def request(self, scenario: Scenario) -> bytes:
        return scenario.request_v3 if self.protocol == 3 else scenario.request

    def decode(self, reply: bytes) -> Content:
        return decode_reply_v3(reply) if self.protocol == 3 else decode_reply(reply)


#: side -> the side its ratio is taken against.
BASELINES = {
    "official-default": "ours",
    "official-fastest": "ours",
    "ours-3x": "ours",
    "official3-default": "ours-3x",
    "official3-fastest": "ours-3x",
}
ALL_SIDES = [
    "ours", "official-default", "official-fastest", "ours-3x", "official3-default", "official3-fastest", "ours-v3api"
]
V2_SIDES = ALL_SIDES[:3]
V3_SIDES = ALL_SIDES[3:6]
#: ``--protocol 3 --sides ours-3x ours-v3api official3-default official3-fastest``: the official 3.3 API
#: on statefun_wsgi (statefun_wsgi.v3, handle_sync, bench/scenarios_v3.py as written for the official SDK).
V3API_SIDES = ["ours-3x", "ours-v3api", "official3-default", "official3-fastest"]


#: ``--tuned-malloc``: keep freed memory in glibc's heap instead of handing large blocks back to
#: the kernel, which otherwise page-faults every fresh 1 MiB buffer in again (256 faults each).
#: glibc honours these only when both are set (either one alone switches off its dynamic threshold).
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")
TUNE_MALLOC = False


def clean_env(**extra: str) -> Dict[str, str]:
    dropped = ("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION",) + MALLOC_VARIABLES
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    if TUNE_MALLOC:
        env.update(TUNED_MALLOC)
    env.update(extra)
    return env


def find_python(version: str, candidates: List[str]) -> str:
    for candidate in candidates:
        path = (
            shutil.which(candidate) if os.sep not in candidate else (candidate if os.path.exists(candidate) else None)
        )
        if not path:
            continue
        probe = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return path
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    raise SystemExit(
        f"no Python {version} found (tried {', '.join(candidates)}): pass it with the matching --python option"
    )


PROBE = (
    "import json, google.protobuf, statefun; from google.protobuf.internal import api_implementation as a; "
    "print(json.dumps([google.protobuf.__version__, a.Type()]))"
)


def probe_venv(python: Path, env: Dict[str, str], modules: Tuple[str, ...] = ()) -> Optional[Tuple[str, str]]:
    """(protobuf version, implementation) in the venv, or None when it or ``statefun`` (or one of
    ``modules``) does not import there."""
    if not python.exists():
        return None
    probe = "".join(f"import {module}; " for module in modules) + PROBE
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        return None
    version, implementation = json.loads(result.stdout)
    return version, implementation


def ensure_venv(
    name: str,
    base_python: str,
    packages: List[str],
    env: Dict[str, str],
    want_protobuf: str,
    want_impl: str,
    modules: Tuple[str, ...] = (),
) -> str:
    """The venv's python, creating or repairing ``bench/.venvs/<name>`` when needed (idempotent).
    ``modules`` must import there too (``bench_serving_v3.py`` adds its web servers to ``packages``)."""
    directory = VENVS / name
    python = directory / "bin" / "python"
    found = probe_venv(python, env, modules)
    if found and found[0].startswith(want_protobuf) and found[1] == want_impl:
        return str(python)
    log(f"setting up {directory.relative_to(REPO)} ({base_python} + {' '.join(packages)}) ...")
    if (
        not python.exists()
        or subprocess.run([str(python), "-c", "pass"], capture_output=True, check=False).returncode != 0
    ):
        subprocess.run([base_python, "-m", "venv", "--clear", str(directory)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages], check=True, env=env
    )
    found = probe_venv(python, env, modules)
    if not found:
        raise SystemExit(f"{name}: the official SDK (or {', '.join(modules) or 'statefun'}) does not import "
                         f"after installing {packages}")
    if not found[0].startswith(want_protobuf) or found[1] != want_impl:
        raise SystemExit(
            f"{name}: got protobuf {found[0]} ({found[1]}), expected {want_protobuf}x ({want_impl}); "
            f"delete {directory} and retry"
        )
    return str(python)


def make_sides(args: argparse.Namespace) -> List[Side]:
    cpp = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
    sides = [
        Side("ours", "ours", "ours", None, clean_env(), python=sys.executable),
        Side("official-default", "official default", "official", "python", clean_env()),
        Side("official-fastest", "official fastest", "official", "cpp", clean_env(**{cpp: "cpp"})),
        Side("ours-3x", "ours 3.x", "ours", None, clean_env(), python=sys.executable, protocol=3),
        Side("ours-v3api", "ours, 3.3 API", "oursv3", None, clean_env(), python=sys.executable, protocol=3),
        Side("official3-default", "official 3.3 default", "official3", "python", clean_env(), protocol=3),
        Side("official3-fastest", "official 3.3 fastest", "official3", "cpp", clean_env(**{cpp: "cpp"}), protocol=3),
    ]
    wanted = set(args.sides)
    sides = [side for side in sides if side.name in wanted]
    for side in sides:
        sdk = OFFICIAL_SDK_3 if side.sdk == "official3" else OFFICIAL_SDK
        if side.name.endswith("-default"):
            base = find_python("3.11", [args.python_default, "python3.11"])
            side.python = ensure_venv(side.name, base, [sdk], side.env, "3.", "python")
        elif side.name.endswith("-fastest"):
            base = find_python(
                "3.10", [args.python_fastest, "/root/.pyenv/versions/3.10.13/bin/python3.10", "python3.10"]
            )
            side.python = ensure_venv(side.name, base, [sdk, "protobuf==3.20.3"], side.env, "3.20.3", "cpp")
    return sides


def maybe_upgrade_protobuf() -> None:
    """``--upgrade-protobuf``: ``pip install -U protobuf`` here, only when it is older than 7.x."""
    major = int(google.protobuf.__version__.split(".")[0])
    if major >= 7:
        log(f"protobuf {google.protobuf.__version__} is already 7.x: not upgrading")
        return
    log(f"protobuf {google.protobuf.__version__} < 7: pip install -U 'protobuf>=4.25,<8' ...")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-U", "protobuf>=4.25,<8"], check=True)
    log("upgraded: re-run the benchmark so that this process loads the new protobuf")
    raise SystemExit(0)


# -- the workers -------------------------------------------------------------------------


class Worker:
    """A persistent ``_worker.py`` process for one side; see its docstring for the protocol."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.proc = subprocess.Popen(
            [side.python, str(WORKER), "--sdk", side.sdk],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=side.env,
            cwd=str(HERE),
        )

    def command(self, line: str, payload: bytes = b"") -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode("utf-8") + b"\n" + payload)
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().decode("utf-8").rstrip("\n")
        if not answer:
            raise RuntimeError(f"the {self.side.name} worker died (exit code {self.proc.poll()}) on {line!r}")
        if not answer.startswith("ok"):
            raise RuntimeError(f"the {self.side.name} worker failed on {line!r}: {answer}")
        return answer[3:]

    def info(self) -> Dict[str, TypingAny]:
        return json.loads(self.command("info"))

    def load(self, scenario: Scenario) -> None:
        request = self.side.request(scenario)
        self.command(f"load {scenario.name} {len(request)}", request)

    def reply(self, scenario: Scenario) -> bytes:
        size = int(self.command(f"reply {scenario.name}"))
        assert self.proc.stdout is not None
        data = self.proc.stdout.read(size)
        if len(data) != size:
            raise RuntimeError(f"the {self.side.name} worker sent a short reply")
        return data

    def run(self, scenario: Scenario, iterations: int) -> Tuple[float, int]:
        """(seconds, minor page faults) for ``iterations`` back-to-back requests."""
        elapsed, faults = self.command(f"run {scenario.name} {iterations}").split()
        return int(elapsed) / 1e9, int(faults)

    def close(self) -> None:
        try:
            self.command("quit")
        except (RuntimeError, BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the run -------------------------------------------------------------------------------


def calibrate(worker: Worker, scenario: Scenario, block_seconds: float) -> Tuple[int, float]:
    """(iterations per block, seconds per request), after a warm-up of at least ``block_seconds / 4``."""
    n = 1
    while True:
        elapsed, _ = worker.run(scenario, n)
        if elapsed >= max(0.02, block_seconds / 4):
            per_request = elapsed / n
            return max(1, round(block_seconds / per_request)), per_request
        n = n * 4 if elapsed < 0.002 else max(n + 1, int(n * max(0.02, block_seconds / 4) / elapsed * 1.2))


def run(args: argparse.Namespace) -> Dict[str, TypingAny]:
    global TUNE_MALLOC
    TUNE_MALLOC = args.tuned_malloc
    if args.upgrade_protobuf:
        maybe_upgrade_protobuf()
    cases = scenarios()
    sides = make_sides(args)
    pairs = len(cases) * len(sides)
    block_seconds = args.seconds / (args.rounds * pairs)
    log(f"{len(sides)} sides x {len(cases)} scenarios x {args.rounds} rounds, blocks of ~{block_seconds * 1000:.0f} ms")

    workers = [Worker(side) for side in sides]
    try:
        for worker in workers:
            side = worker.side
            side.info = worker.info()
            log(
                f"  {side.name:17} Python {side.info['python']}, protobuf {side.info['protobuf']} "
                f"({side.info['implementation']}), {side.info['sdk_module']} from {side.info['sdk_file']}"
            )
            if side.implementation and side.info["implementation"] != side.implementation:
                raise SystemExit(
                    f"{side.name} runs protobuf's {side.info['implementation']!r} implementation, "
                    f"expected {side.implementation!r}"
                )
        for side in sides:
            if side.sdk == "ours" and side.info["implementation"] != "upb":
                log(f"  note: {side.name} runs on protobuf's {side.info['implementation']!r} implementation, not upb")

        # Same bytes in, same content out, on every side, before anything is timed.
        for case in cases:
            for worker in workers:
                worker.load(case)
                got = worker.side.decode(worker.reply(case))
                if got != case.reply:
                    raise SystemExit(
                        f"MISMATCH: {worker.side.name} answered {case.name} with other content than expected:\n"
                        + describe_difference(got, case.reply)
                    )
        log(f"  replies checked: all {len(sides)} sides answer all {len(cases)} scenarios with the expected content")

        iterations: Dict[Tuple[str, str], int] = {}
        for case in cases:
            for worker in workers:
                n, per_request = calibrate(worker, case, block_seconds)
                iterations[(worker.side.name, case.name)] = n
                log(f"  calibrated {case.name:11} {worker.side.name:17} {per_request * 1e6:10.1f} µs/req, {n}/block")

        samples: Dict[Tuple[str, str], List[float]] = {key: [] for key in iterations}
        faults: Dict[Tuple[str, str], List[float]] = {key: [] for key in iterations}
        started = time.perf_counter()
        for round_index in range(args.rounds):
            for case in cases:
                shift = round_index % len(workers)
                for worker in workers[shift:] + workers[:shift]:
                    key = (worker.side.name, case.name)
                    elapsed, minor_faults = worker.run(case, iterations[key])
                    samples[key].append(elapsed / iterations[key] * 1e6)
                    faults[key].append(minor_faults / iterations[key])
            log(f"  round {round_index + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)")
    finally:
        for worker in workers:
            worker.close()

    return summarize(args, cases, sides, iterations, samples, faults, block_seconds)


def summarize(
    args: argparse.Namespace,
    cases: List[Scenario],
    sides: List[Side],
    iterations: Dict[Tuple[str, str], int],
    samples: Dict[Tuple[str, str], List[float]],
    faults: Dict[Tuple[str, str], List[float]],
    block_seconds: float,
) -> Dict[str, TypingAny]:
    results: Dict[str, TypingAny] = {}
    for case in cases:
        entry: Dict[str, TypingAny] = {"invocations_per_request": case.invocations, "description": case.description}
        for side in sides:
            values = samples[(side.name, case.name)]
            entry[side.name] = {
                "median_us_per_request": statistics.median(values),
                "min_us_per_request": min(values),
                "median_us_per_invocation": statistics.median(values) / case.invocations,
                "median_page_faults_per_request": statistics.median(faults[(side.name, case.name)]),
                "iterations_per_block": iterations[(side.name, case.name)],
                "us_per_request_by_round": values,
            }
        for side in sides:  # official / ours, on the same protocol (and ours-3x / ours)
            baseline = BASELINES.get(side.name)
            if baseline in entry:
                entry.setdefault("ratios", {})[side.name] = {
                    stat: entry[side.name][f"{stat}_us_per_request"] / entry[baseline][f"{stat}_us_per_request"]
                    for stat in ("median", "min")
                }
        results[case.name] = entry
    return {
        "benchmark": "request-reply handler, statefun_wsgi vs apache-flink-statefun 2.2.2 and 3.3.0",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3.11 bench/bench_handler.py"
        + (" --protocol 3" if args.protocol == 3 else "")
        + (" --quick" if args.quick else "")
        + (" --tuned-malloc" if args.tuned_malloc else ""),
        "malloc": (
            "glibc, " + " ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items())
            if args.tuned_malloc
            else "glibc defaults (MALLOC_* variables cleared)"
        ),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform()},
        "rounds": args.rounds,
        "block_seconds": block_seconds,
        "targets": {
            "vs_official_default": TARGET_VS_DEFAULT,
            "vs_official_fastest": TARGET_VS_FASTEST,
            "v3_over_v2_at_most": TARGET_V3_OVER_V2,
            "goal_vs_official3_fastest": GOAL_VS_OFFICIAL3,
        },
        "sides": {side.name: {"label": side.label, **side.info} for side in sides},
        "scenarios": results,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- the report ---------------------------------------------------------------------------


def fmt_us(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def render(data: Dict[str, TypingAny]) -> str:
    sides = data["sides"]
    if any(name in sides for name in V3_SIDES):
        return render_v3(data)
    columns = [name for name in ("ours", "official-default", "official-fastest") if name in sides]
    have_ours = "ours" in columns

    def header(stat: str) -> List[str]:
        cells = ["scenario", "inv./req"]
        for name in columns:
            cells.append(f"{sides[name]['label']} µs/req")
            if name != "ours" and have_ours:
                cells.append("ratio")
        if have_ours and len(columns) > 1:
            cells.append("targets")
        return ["| " + " | ".join(cells) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cells) - 1)) + "|"]

    def rows(stat: str) -> List[str]:
        lines = []
        for name, entry in data["scenarios"].items():
            cells = [name, str(entry["invocations_per_request"])]
            verdicts = []
            for side in columns:
                cells.append(fmt_us(entry[side][f"{stat}_us_per_request"]))
                if side != "ours" and have_ours:
                    ratio = entry["ratios"][side][stat]
                    cells.append(f"{ratio:.2f}×")
                    target = TARGET_VS_DEFAULT if side == "official-default" else TARGET_VS_FASTEST
                    verdicts.append(ratio >= target)
            if verdicts:
                cells.append("met" if all(verdicts) else "**missed**")
            lines.append("| " + " | ".join(cells) + " |")
            if entry["invocations_per_request"] > 1:
                n = entry["invocations_per_request"]
                cells = [f"{name}, per invocation", "1"]
                for side in columns:
                    cells.append(fmt_us(entry[side][f"{stat}_us_per_request"] / n))
                    if side != "ours" and have_ours:
                        cells.append("")
                if verdicts:
                    cells.append("")
                lines.append("| " + " | ".join(cells) + " |")
        return lines

    out = [
        "# Request-reply handler: statefun_wsgi vs the official StateFun 2.2.2 SDK",
        "",
        (
            f"`{data['command']}` on {data['date']}; {data['machine']['cpu']}, {data['machine']['cores']} cores; "
            f"malloc: {data['malloc']}."
        ),
        (
            "Microseconds per request (one serialized `ToFunction` in, one serialized `FromFunction` out), "
            f"median over {data['rounds']} interleaved rounds of ~{data['block_seconds'] * 1000:.0f} ms blocks "
            "per side. ratio = official time / our time (how many times faster ours is)."
        ),
        "",
        (
            f"**Targets:** ours ≥ {TARGET_VS_DEFAULT:g}× faster than official default and "
            f"≥ {TARGET_VS_FASTEST:g}× faster than official fastest, on every scenario."
        ),
        "",
        *header("median"),
        *rows("median"),
        "",
    ]
    if have_ours and len(columns) > 1:
        missed = [
            f"{name} vs {side} ({entry['ratios'][side]['median']:.2f}×)"
            for name, entry in data["scenarios"].items()
            for side in entry["ratios"]
            if entry["ratios"][side]["median"]
            < (TARGET_VS_DEFAULT if side == "official-default" else TARGET_VS_FASTEST)
        ]
        out += ["Targets: " + ("**all met**." if not missed else "**missed** on " + ", ".join(missed) + "."), ""]
    out += ["Best round (minimum) per side:", "", *header("min"), *rows("min"), ""]
    out += [
        (
            "Minor page faults per request (median over rounds; each fresh 1 MiB allocation that glibc serves "
            "with mmap costs 256 of them):"
        ),
        "",
        "| scenario | " + " | ".join(sides[name]["label"] for name in columns) + " |",
        "|---|" + "|".join(["---:"] * len(columns)) + "|",
    ]
    for name, entry in data["scenarios"].items():
        cells = [f"{entry[side]['median_page_faults_per_request']:.0f}" for side in columns]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    if not data["malloc"].startswith("glibc, "):
        out += [
            "",
            (
                "Where a scenario page-faults, most of its time is the kernel handing fresh pages back "
                "(`--tuned-malloc` reruns every side with glibc's heap kept)."
            ),
        ]
    out += ["", "## Sides", ""]
    for name in columns:
        info = sides[name]
        out.append(
            f"- **{info['label']}**: Python {info['python']}, protobuf {info['protobuf']} "
            f"(`{info['implementation']}` implementation), `{info['sdk_module']}`"
        )
    out += [
        "",
        "## Scenarios",
        "",
        (
            "Same request bytes and the same function logic (`bench/scenarios.py`) on every side; each reply was "
            "decoded and checked against the expected content before timing."
        ),
        "",
    ]
    for name, entry in data["scenarios"].items():
        out.append(f"- **{name}**: {entry['description']}.")
    out.append("")
    return "\n".join(out)


def render_v3(data: Dict[str, TypingAny]) -> str:
    """The report of a ``--protocol 3`` run: the 3.x path against the 2.x path and the official 3.3 SDK."""
    sides = data["sides"]
    officials = [name for name in ("official3-default", "official3-fastest") if name in sides]
    have_2x = "ours" in sides

    def table(stat: str) -> List[str]:
        cells = ["scenario", "inv./req"]
        if have_2x:
            cells += ["ours 2.x µs/req", "ours 3.x µs/req", "3.x / 2.x"]
        else:
            cells += ["ours 3.x µs/req"]
        for name in officials:
            cells += [f"{sides[name]['label']} µs/req", "ratio"]
        lines = ["| " + " | ".join(cells) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cells) - 1)) + "|"]
        for name, entry in data["scenarios"].items():
            row = [name, str(entry["invocations_per_request"])]
            if have_2x:
                row += [
                    fmt_us(entry["ours"][f"{stat}_us_per_request"]),
                    fmt_us(entry["ours-3x"][f"{stat}_us_per_request"]),
                    f"{entry['ratios']['ours-3x'][stat]:.3f}",
                ]
            else:
                row += [fmt_us(entry["ours-3x"][f"{stat}_us_per_request"])]
            for official in officials:
                row += [fmt_us(entry[official][f"{stat}_us_per_request"]), f"{entry['ratios'][official][stat]:.1f}×"]
            lines.append("| " + " | ".join(row) + " |")
        return lines

    out = [
        "# Request-reply handler, StateFun 3.x: statefun_wsgi vs its 2.x path and the official 3.3 SDK",
        "",
        (
            f"`{data['command']}` on {data['date']}; {data['machine']['cpu']}, {data['machine']['cores']} cores; "
            f"malloc: {data['malloc']}."
        ),
        (
            "Microseconds per request, median over "
            f"{data['rounds']} interleaved rounds of ~{data['block_seconds'] * 1000:.0f} ms blocks per side. "
            "Every side answers the same scenarios (`bench/scenarios.py`; `bench/scenarios_v3.py` for the official "
            "3.3 SDK, the same logic in its API): ours 2.x the 2.x request bytes, the others the equivalent 3.x "
            "bytes (states registered as `type.googleapis.com/google.protobuf.Any`). 3.x / 2.x = our 3.x time / "
            "our 2.x time; ratio = official time / our 3.x time."
        ),
        "",
        (
            f"**Targets:** 3.x / 2.x ≤ {TARGET_V3_OVER_V2:.2f} on every scenario; goal: ≥ {GOAL_VS_OFFICIAL3:g}× "
            "faster than official 3.3 fastest on every scenario but state-1mib."
        ),
        "",
        *table("median"),
        "",
    ]
    verdicts = []
    for name, entry in data["scenarios"].items():
        ratios = entry.get("ratios", {})
        if have_2x and ratios["ours-3x"]["median"] > TARGET_V3_OVER_V2:
            verdicts.append(f"{name} 3.x / 2.x = {ratios['ours-3x']['median']:.3f}")
        if "official3-fastest" in ratios and name != "state-1mib" and ratios["official3-fastest"]["median"] < GOAL_VS_OFFICIAL3:
            verdicts.append(f"{name} vs official 3.3 fastest = {ratios['official3-fastest']['median']:.1f}×")
    out += ["Targets: " + ("**all met**." if not verdicts else "**missed** on " + ", ".join(verdicts) + "."), ""]
    if "ours-v3api" in sides:
        out += [
            "The official 3.3 API on statefun_wsgi: `statefun_wsgi.v3`'s `handle_sync` running "
            "`bench/scenarios_v3.py` as written for the official SDK (only its import changed); "
            "ratio = official time / this time (median); 3.3 API / ours 3.x = this time / statefun_wsgi's own "
            "API's on the same bytes (the cost of the official API's shape; per round, then the median):",
            "",
            "| scenario | ours, 3.3 API µs/req | "
            + " | ".join(f"{sides[o]['label']} ratio" for o in officials)
            + (" | 3.3 API / ours 3.x |" if "ours-3x" in sides else " |"),
            "|---|---:|" + "---:|" * (len(officials) + ("ours-3x" in sides)),
        ]
        for name, entry in data["scenarios"].items():
            ours_v3api = entry["ours-v3api"]["median_us_per_request"]
            cells = [f"{entry[o]['median_us_per_request'] / ours_v3api:.1f}×" for o in officials]
            if "ours-3x" in sides:
                by_round = zip(
                    entry["ours-v3api"]["us_per_request_by_round"], entry["ours-3x"]["us_per_request_by_round"]
                )
                cells.append(f"{statistics.median(a / b for a, b in by_round):.2f}")
            out.append(f"| {name} | {fmt_us(ours_v3api)} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["Best round (minimum) per side:", "", *table("min"), ""]
    out += [
        "Minor page faults per request (median over rounds):",
        "",
        "| scenario | " + " | ".join(sides[name]["label"] for name in sides) + " |",
        "|---|" + "|".join(["---:"] * len(sides)) + "|",
    ]
    for name, entry in data["scenarios"].items():
        out.append(f"| {name} | " + " | ".join(f"{entry[s]['median_page_faults_per_request']:.0f}" for s in sides) + " |")
    out += ["", "## Sides", ""]
    for name, info in sides.items():
        out.append(
            f"- **{info['label']}**: Python {info['python']}, protobuf {info['protobuf']} "
            f"(`{info['implementation']}` implementation), `{info['sdk_module']}`"
        )
    out += ["", "## Scenarios", ""]
    for name, entry in data["scenarios"].items():
        out.append(f"- **{name}**: {entry['description']}.")
    out.append("")
    return "\n".join(out)


def write_results(data: Dict[str, TypingAny], markdown: str, name: str = "handler") -> None:
    """``bench/results/<name>.md`` and ``.json`` (``handler-tuned-malloc`` for a ``--tuned-malloc`` run)."""
    RESULTS.mkdir(exist_ok=True)
    for path, text in (
        (RESULTS / f"{name}.md", markdown),
        (RESULTS / f"{name}.json", json.dumps(data, indent=1) + "\n"),
    ):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    log(f"wrote {(RESULTS / f'{name}.md').relative_to(REPO)} and {(RESULTS / f'{name}.json').relative_to(REPO)}")


# -- profiling our side ---------------------------------------------------------------------


def profile(args: argparse.Namespace) -> None:
    """cProfile of our handler on each scenario, in this process."""
    import scenarios as logic

    from statefun_wsgi import RequestReplyHandler, StatefulFunctions

    handler = RequestReplyHandler(logic.register(StatefulFunctions()))
    version = f"protobuf {google.protobuf.__version__} ({api_implementation.Type()})"
    print(f"ours: Python {platform.python_version()}, {version}")
    for case in scenarios():
        request = case.request_v3 if args.protocol == 3 else case.request
        got = (decode_reply_v3 if args.protocol == 3 else decode_reply)(handler(request))
        if got != case.reply:
            raise SystemExit(f"MISMATCH on {case.name}:\n" + describe_difference(got, case.reply))
        n, done, start = 1, 0, time.perf_counter()
        while time.perf_counter() - start < 0.2:  # warm up, and size the profiled run
            for _ in range(n):
                handler(request)
            done += n
            n *= 2
        per_request = (time.perf_counter() - start) / done
        count = max(1, int(args.profile_seconds / per_request))
        gc.collect()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            handler(request)
        profiler.disable()
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats(args.profile_sort)
        stats.print_stats(args.profile_lines)
        print(f"\n=== {case.name}: {count} requests, {per_request * 1e6:.1f} µs/req unprofiled ===")
        print(stream.getvalue().split("\n", 1)[1].strip("\n"))


# -- main ----------------------------------------------------------------------------------


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~20 s run (5 rounds, 12 s of timed blocks)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 20; 5 with --quick)")
    parser.add_argument("--seconds", type=float, help="wall time of all timed blocks (default 140; 12 with --quick)")
    parser.add_argument(
        "--sides",
        nargs="+",
        default=None,
        choices=ALL_SIDES,
        help="default: the 2.x sides (ours, official-default, official-fastest); with --protocol 3: "
        "ours, ours-3x, official3-default, official3-fastest",
    )
    parser.add_argument(
        "--protocol",
        type=int,
        choices=[2, 3],
        default=2,
        help="3: the StateFun 3.x sides (and ours on 2.x, for the 3.x / 2.x ratio); writes handler-v3.*",
    )
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write bench/results/handler.{md,json} (default: yes, except with --quick)",
    )
    parser.add_argument("--python-default", default="python3.11", help="base Python 3.11 of official-default")
    parser.add_argument("--python-fastest", default="python3.10", help="base Python 3.10 of official-fastest")
    parser.add_argument(
        "--upgrade-protobuf", action="store_true", help="pip install -U protobuf in this interpreter if older than 7.x"
    )
    parser.add_argument(
        "--tuned-malloc",
        action="store_true",
        help="run every side with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised (see TUNED_MALLOC)",
    )
    parser.add_argument("--profile", action="store_true", help="profile our side instead of benchmarking")
    parser.add_argument("--profile-seconds", type=float, default=2.0)
    parser.add_argument("--profile-sort", default="tottime")
    parser.add_argument("--profile-lines", type=int, default=15)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 5 if args.quick else 20
    if args.seconds is None:
        args.seconds = 12.0 if args.quick else 140.0
    if args.write is None:
        args.write = not args.quick
    if args.sides is None:
        args.sides = ["ours", *V3_SIDES] if args.protocol == 3 else V2_SIDES

    if args.profile:
        profile(args)
        return 0
    data = run(args)
    markdown = render(data)
    print(markdown)
    if args.write:
        name = "handler-v3" if args.protocol == 3 else "handler"
        if "ours-v3api" in args.sides:
            name = "handler-v3api"
        write_results(data, markdown, name + ("-tuned-malloc" if args.tuned_malloc else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
