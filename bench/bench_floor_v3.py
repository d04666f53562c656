"""The floor of the 3.x handler benchmark: how fast any SDK could answer its scenarios.

Usage (from the repository root)::

    python3.11 bench/bench_floor_v3.py            # ~2 min; writes bench/results/floor-v3api.{md,json}
    python3.11 bench/bench_floor_v3.py --quick    # ~20 s; writes nothing unless --write
    python3.11 bench/bench_floor_v3.py --no-official   # the in-process sides only

The *floor* of a scenario is its own serialisation work done by hand with protobuf (upb),
no SDK at all: parse the request, run the scenario's statements with every SDK call
replaced by the protobuf call it stands for (``message.as_type(STRING)`` is
``StringValue.FromString``, ``egress_message_builder(..., count, INT64)`` is
``count.SerializeToString()``, the state is the ``Any`` the request holds, not a copy), the
scenario's own ``Any.Pack``/``Unpack`` and message constructors as written, and the reply
written as bytes with every constant part precomputed. No SDK can do less per request, so
``official / floor`` is the most any SDK on this interpreter can be faster than the
official one: when it is under 10, the issue's 10× goal is out of reach for every SDK.

Sides, interleaved round by round (``bench/bench_handler.py``'s scenarios, requests and checks):

- ``floor``: the hand-written answer (this file), in this process;
- ``ours-v3api``: ``statefun_wsgi.v3``'s ``handle_sync`` running ``bench/scenarios_v3.py``, in this process;
- ``ours-3x``: statefun_wsgi's own API (``bench/scenarios.py``) on the same 3.x bytes, in this process;
- ``official3-fastest``: the official 3.3 SDK's ``handle_sync`` on Python 3.10 + C++ protobuf 3.20
  (a ``bench/_worker.py`` process, as in ``bench_handler.py``; ``--no-official`` leaves it out).

Every side's reply is decoded and compared with the expected content before any timing.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any as TypingAny
from typing import Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_handler as bh  # noqa: E402
import google.protobuf  # noqa: E402
from google.protobuf.any_pb2 import Any  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402
from google.protobuf.wrappers_pb2 import Int64Value, StringValue  # noqa: E402

# The request parsed with the 3.x view whose state values are Anys (the runtime's own bytes,
# one parse, the cheapest a Python SDK can read them with; the fields of request-reply.proto).
from statefun_wsgi._proto.request_reply_v3_view_pb2 import ToFunction  # noqa: E402
from statefun_wsgi._wire import varint  # noqa: E402

RESULTS = HERE / "results"
GOAL = bh.GOAL_VS_OFFICIAL3
EDGE = 0.15  # how near the goal a ratio is too close to call
SMALL = [bytes((n,)) for n in range(128)]


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    size = len(payload)
    return tag + (SMALL[size] if size < 0x80 else varint(size)) + payload


# -- the floors: each scenario answered by hand ------------------------------------------------
# Reply fields (request-reply.proto, FromFunction.InvocationResponse): state_mutations 1,
# outgoing_messages 2, delayed_invocations 3, outgoing_egresses 4; TypedValue: typename 1,
# has_value 2, value 3; Address: namespace 1, type 2, id 3.

ANY_HEAD = field(b"\x0a", b"type.googleapis.com/google.protobuf.Any") + b"\x10\x01\x1a"  # ... value tag
INT64_HEAD = field(b"\x0a", b"type.googleapis.com/google.protobuf.Int64Value") + b"\x10\x01\x1a"
EGRESS_OUT = b"\x0a\x05bench\x12\x03out\x1a"  # egress_namespace, egress_type, the argument's tag
COUNTER = b"\x0a\x05bench\x12\x07counter\x1a"  # Address namespace, type, the id's tag
FANOUT = b"\x0a\x05bench\x12\x06fanout\x1a"
DELAY_5S = b"\x08" + varint(5000) + b"\x12"  # delay_in_ms, the target's tag
MODIFY = {name: b"\x08\x01" + field(b"\x12", name) + b"\x1a" for name in (b"count", b"s1", b"s2", b"s3", b"blob")}
PEERS = ["peer-%d" % i for i in range(10)]


def mutation(pieces: List[bytes], name: bytes, box: Any) -> None:
    """Append a state_mutations entry to ``pieces``: MODIFY ``name`` to TypedValue{Any, serialized
    box} (the large value appended as it is, not copied)."""
    value = box.SerializeToString()
    size = len(value)
    head = ANY_HEAD + (SMALL[size] if size < 0x80 else varint(size))
    size += len(head)
    entry = MODIFY[name] + (SMALL[size] if size < 0x80 else varint(size))
    size += len(entry)
    pieces += (b"\x0a", SMALL[size] if size < 0x80 else varint(size), entry, head, value)


def reply(pieces: List[bytes]) -> bytes:
    size = sum(map(len, pieces))
    return b"".join([b"\xa2\x06", varint(size), *pieces])  # FromFunction.invocation_result (100)


# The small fields below are known to be under 128 bytes (SMALL[n] raises otherwise).


def floor_counter(request: bytes) -> bytes:
    """``counter``: per invocation the message read as a StringValue, count unpacked, += 1, packed,
    one egress; one mutation at the end."""
    batch = ToFunction.FromString(request).invocation
    box = batch.state[0].state_value.value  # count, as the request holds it
    invocations = batch.invocations
    egresses = []
    for index in range(len(invocations)):
        StringValue.FromString(invocations[index].argument.value)  # message.as_type(STRING)
        count = Int64Value()  # _get
        box.Unpack(count)
        count.value += 1
        box = Any()  # _pack
        box.Pack(count)
        value = count.SerializeToString()  # egress_message_builder, send_egress
        typed = INT64_HEAD + SMALL[len(value)] + value
        entry = EGRESS_OUT + SMALL[len(typed)] + typed
        egresses.append(b"\x22" + SMALL[len(entry)] + entry)
    pieces: List[bytes] = []
    mutation(pieces, b"count", box)
    pieces += egresses
    return reply(pieces)


def floor_fanout(request: bytes) -> bytes:
    """``fanout``: 10 sends, a delayed send to itself, s1 unpacked, += 1, packed, s2 and s3 packed."""
    batch = ToFunction.FromString(request).invocation
    s1_box = batch.state[0].state_value  # s1 (the request lists s1, s2, s3)
    self_id = batch.target.id
    invocations = batch.invocations
    sends = []
    for index in range(len(invocations)):
        base = Int64Value.FromString(invocations[index].argument.value).value  # message.as_type(INT64)
        for i in range(10):
            value = Int64Value(value=base + i).SerializeToString()
            typed = INT64_HEAD + SMALL[len(value)] + value
            peer = PEERS[i].encode()
            body = b"\x0a" + SMALL[len(COUNTER) + 1 + len(peer)] + COUNTER + SMALL[len(peer)] + peer
            body += b"\x12" + SMALL[len(typed)] + typed
            sends.append(b"\x12" + SMALL[len(body)] + body)
        value = Int64Value(value=1).SerializeToString()
        typed = INT64_HEAD + SMALL[len(value)] + value
        me = self_id.encode()
        body = DELAY_5S + SMALL[len(FANOUT) + 1 + len(me)] + FANOUT + SMALL[len(me)] + me
        body += b"\x1a" + SMALL[len(typed)] + typed
        sends.append(b"\x1a" + SMALL[len(body)] + body)
        s1 = Int64Value()
        if s1_box.has_value:
            s1_box.value.Unpack(s1)
        s1.value += 1
        s1_box = Any()
        s1_box.Pack(s1)
        s2_box = Any()
        s2_box.Pack(StringValue(value="fanout-done"))
        s3_box = Any()
        s3_box.Pack(Int64Value(value=base))
    pieces: List[bytes] = []
    mutation(pieces, b"s1", s1_box)
    mutation(pieces, b"s2", s2_box)
    mutation(pieces, b"s3", s3_box)
    pieces += sends
    return reply(pieces)


#: The scenarios of the 10× goal. (``state-1mib`` is not one: its time is copying a MiB and
#: glibc's page faults, which depend on the allocation history more than on the work.)
FLOORS: Dict[str, Callable[[bytes], bytes]] = {
    "counter": floor_counter,
    "counter-100": floor_counter,
    "fanout": floor_fanout,
}


# -- the sides ---------------------------------------------------------------------------------


class InProcess:
    """A side run in this process, timed as ``bench/_worker.py`` times its handler."""

    def __init__(self, name: str, label: str, handler_for: Callable[[bh.Scenario], Callable[[bytes], bytes]]) -> None:
        self.name, self.label, self.handler_for = name, label, handler_for
        self.requests: Dict[str, bytes] = {}

    def load(self, scenario: bh.Scenario) -> None:
        self.requests[scenario.name] = scenario.request_v3

    def reply(self, scenario: bh.Scenario) -> bytes:
        return self.handler_for(scenario)(self.requests[scenario.name])

    def run(self, scenario: bh.Scenario, iterations: int) -> Tuple[float, int]:
        call, request = self.handler_for(scenario), self.requests[scenario.name]
        gc.collect()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter_ns()
        for _ in range(iterations):
            call(request)
        elapsed = time.perf_counter_ns() - start
        return elapsed / 1e9, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults

    def close(self) -> None:
        pass


def in_process_sides() -> List[InProcess]:
    import scenarios as logic

    import statefun_wsgi.v3
    from statefun_wsgi import RequestReplyHandler, StatefulFunctions

    seed = RequestReplyHandler(logic.register(StatefulFunctions()), protocols="3.x")
    official_name = sys.modules.get("statefun")
    sys.modules["statefun"] = statefun_wsgi.v3  # scenarios_v3 as written for the official SDK
    try:
        import scenarios_v3
    finally:
        if official_name is None:
            del sys.modules["statefun"]
    v3 = statefun_wsgi.v3.RequestReplyHandler(scenarios_v3.register(statefun_wsgi.v3.StatefulFunctions())).handle_sync
    return [
        InProcess("floor", "floor (by hand, upb)", lambda scenario: FLOORS[scenario.name]),
        InProcess("ours-v3api", "ours, 3.3 API", lambda scenario: v3),
        InProcess("ours-3x", "ours 3.x", lambda scenario: seed),
    ]


def official_side(args: argparse.Namespace) -> bh.Worker:
    bh.TUNE_MALLOC = False
    namespace = argparse.Namespace(
        sides=["official3-fastest"], python_fastest=args.python_fastest, python_default="python3.11"
    )
    (side,) = bh.make_sides(namespace)
    worker = bh.Worker(side)
    side.info = worker.info()
    if side.info["implementation"] != "cpp":
        raise SystemExit(f"official3-fastest runs protobuf's {side.info['implementation']!r}, expected 'cpp'")
    worker.name, worker.label = side.name, side.label  # type: ignore[attr-defined]
    return worker


# -- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Dict[str, TypingAny]:
    cases = [case for case in bh.scenarios() if case.name in args.scenarios]
    sides: List[TypingAny] = in_process_sides()
    if args.official:
        sides.append(official_side(args))
    info = {
        side.name: getattr(side, "side", None)
        and side.side.info
        or {
            "python": platform.python_version(),
            "protobuf": google.protobuf.__version__,
            "implementation": api_implementation.Type(),
        }
        for side in sides
    }
    block_seconds = args.seconds / (args.rounds * len(cases) * len(sides))
    bh.log(
        f"{len(sides)} sides x {len(cases)} scenarios x {args.rounds} rounds, blocks of ~{block_seconds * 1000:.0f} ms"
    )
    try:
        for case in cases:
            for side in sides:
                side.load(case)
                got = bh.decode_reply_v3(side.reply(case))
                if got != case.reply:
                    raise SystemExit(
                        f"MISMATCH: {side.name} answered {case.name} with other content than expected:\n"
                        + bh.describe_difference(got, case.reply)
                    )
        bh.log(f"  replies checked: all {len(sides)} sides answer all {len(cases)} scenarios with the expected content")
        iterations = {}
        for case in cases:
            for side in sides:
                n, per_request = bh.calibrate(side, case, block_seconds)
                iterations[(side.name, case.name)] = n
                bh.log(f"  calibrated {case.name:11} {side.name:17} {per_request * 1e6:10.2f} µs/req, {n}/block")
        samples: Dict[Tuple[str, str], List[float]] = {key: [] for key in iterations}
        started = time.perf_counter()
        for round_index in range(args.rounds):
            for case in cases:
                shift = round_index % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    key = (side.name, case.name)
                    elapsed, _ = side.run(case, iterations[key])
                    samples[key].append(elapsed / iterations[key] * 1e6)
            bh.log(f"  round {round_index + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)")
    finally:
        for side in sides:
            side.close()

    results: Dict[str, TypingAny] = {}
    for case in cases:
        entry: Dict[str, TypingAny] = {"invocations_per_request": case.invocations, "description": case.description}
        for side in sides:
            values = samples[(side.name, case.name)]
            entry[side.name] = {
                "median_us_per_request": statistics.median(values),
                "min_us_per_request": min(values),
                "us_per_request_by_round": values,
            }
        # Per round (same conditions), then the median over rounds.
        floor = samples[("floor", case.name)]
        entry["ratios"] = {
            f"{side.name} / floor": statistics.median([a / b for a, b in zip(samples[(side.name, case.name)], floor)])
            for side in sides
            if side.name != "floor"
        }
        if args.official:
            official = samples[("official3-fastest", case.name)]
            entry["ratios"]["official3-fastest / ours-v3api"] = statistics.median(
                [a / b for a, b in zip(official, samples[("ours-v3api", case.name)])]
            )
        results[case.name] = entry
    return {
        "benchmark": "the floor of the 3.x handler scenarios (by hand, upb) vs statefun_wsgi.v3, statefun_wsgi, "
        "and the official 3.3 SDK",
        "date": bh.datetime.datetime.now(bh.datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3.11 bench/bench_floor_v3.py" + (" --quick" if args.quick else ""),
        "machine": {"cpu": bh.cpu_model(), "cores": bh.os.cpu_count(), "platform": platform.platform()},
        "rounds": args.rounds,
        "block_seconds": block_seconds,
        "goal_vs_official3_fastest": GOAL,
        "sides": {side.name: {"label": side.label, **(info[side.name] or {})} for side in sides},
        "scenarios": results,
    }


def render(data: Dict[str, TypingAny]) -> str:
    sides = data["sides"]
    official = "official3-fastest" in sides
    out = [
        "# The floor of the 3.x handler scenarios: how fast could any SDK be?",
        "",
        f"`{data['command']}` on {data['date']}; {data['machine']['cpu']}, {data['machine']['cores']} cores. "
        f"Microseconds per request, median over {data['rounds']} interleaved rounds of "
        f"~{data['block_seconds'] * 1000:.0f} ms blocks per side; ratios are per round, then the median.",
        "",
        "**floor**: the scenario's own serialisation work done by hand with protobuf "
        f"({sides['floor']['protobuf']}, `{sides['floor']['implementation']}`), no SDK: the request parsed once, "
        "the scenario's statements with each SDK call replaced by the protobuf call it stands for, its own "
        "`Any.Pack`/`Unpack` as written, the reply written as bytes with its constant parts precomputed "
        "(bench/bench_floor_v3.py). No SDK on this interpreter can answer in less.",
        "",
    ]
    cells = ["scenario", "inv./req", "floor µs"]
    cells += [
        f"{sides[name]['label']} µs"
        for name in ("ours-v3api", "ours-3x") + (("official3-fastest",) if official else ())
    ]
    cells += ["3.3 API / floor", "ours 3.x / floor"]
    if official:
        cells += ["**official / floor** (the most any SDK can gain)", "official / 3.3 API"]
    out += ["| " + " | ".join(cells) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cells) - 1)) + "|"]
    verdicts = []
    for name, entry in data["scenarios"].items():
        ratios = entry["ratios"]
        row = [name, str(entry["invocations_per_request"]), bh.fmt_us(entry["floor"]["median_us_per_request"])]
        row += [
            bh.fmt_us(entry[side]["median_us_per_request"])
            for side in ("ours-v3api", "ours-3x") + (("official3-fastest",) if official else ())
        ]
        row += [f"{ratios['ours-v3api / floor']:.2f}×", f"{ratios['ours-3x / floor']:.2f}×"]
        if official:
            most = ratios["official3-fastest / floor"]
            row += [f"**{most:.1f}×**", f"{ratios['official3-fastest / ours-v3api']:.1f}×"]
            if name != "state-1mib":
                verdicts.append((name, most))
        out.append("| " + " | ".join(row) + " |")
    if official:
        out.append("")
        # Within EDGE of the goal, one run on a shared machine does not settle it either way.
        impossible = [f"{name} ({most:.1f}×)" for name, most in verdicts if most < GOAL * (1 - EDGE)]
        edge = [f"{name} ({most:.1f}×)" for name, most in verdicts if GOAL * (1 - EDGE) <= most < GOAL * (1 + EDGE)]
        reachable = [f"{name} ({most:.1f}×)" for name, most in verdicts if most >= GOAL * (1 + EDGE)]
        if impossible:
            out.append(
                f"**{GOAL:g}× is out of reach for any SDK** on {', '.join(impossible)}: there the floor alone takes "
                f"more than a tenth of the official SDK's time (official / floor < {GOAL:g}), so even an SDK that "
                f"added nothing to the scenario's own protobuf work would be less than {GOAL:g} times faster."
            )
        if edge:
            out.append(
                f"At the edge (official / floor within {EDGE:.0%} of {GOAL:g}): {', '.join(edge)}: only an SDK that "
                "adds next to nothing to the scenario's own protobuf work could reach it."
            )
        if reachable:
            out.append(f"Within reach in principle (official / floor ≥ {GOAL * (1 + EDGE):g}): {', '.join(reachable)}.")
    out += ["", "## Sides", ""]
    for name, side in sides.items():
        out.append(
            f"- **{side['label']}** (`{name}`): Python {side.get('python')}, protobuf {side.get('protobuf')} "
            f"(`{side.get('implementation')}`)"
        )
    return "\n".join(out) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~20 s run (5 rounds, 12 s of timed blocks)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 15; 5 with --quick)")
    parser.add_argument("--seconds", type=float, help="wall time of all timed blocks (default 90; 12 with --quick)")
    parser.add_argument("--scenarios", nargs="+", default=list(FLOORS), choices=list(FLOORS))
    parser.add_argument(
        "--official", action=argparse.BooleanOptionalAction, default=True, help="time official3-fastest too"
    )
    parser.add_argument("--python-fastest", default="python3.10", help="base Python 3.10 of official3-fastest")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write bench/results/floor-v3api.{md,json} (default: yes, except with --quick)",
    )
    parser.add_argument("--render", metavar="JSON", help="only render the markdown of an earlier run's JSON")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())), end="")
        return 0
    if args.rounds is None:
        args.rounds = 5 if args.quick else 15
    if args.seconds is None:
        args.seconds = 12.0 if args.quick else 90.0
    if args.write is None:
        args.write = not args.quick
    data = run(args)
    markdown = render(data)
    print(markdown)
    if args.write:
        (RESULTS / "floor-v3api.json").write_text(json.dumps(data, indent=2) + "\n")
        (RESULTS / "floor-v3api.md").write_text(markdown)
        bh.log("wrote bench/results/floor-v3api.{md,json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
