"""How fast can any SDK run the benchmark's functions? Floors beside our 3.x handler.

Usage (from the repository root)::

    python3.11 bench/bench_floor.py                  # ~1 min; writes bench/results/floor-3x.{md,json}
    python3.11 bench/bench_floor.py --quick          # ~10 s, writes nothing
    python3.11 bench/bench_floor.py --no-official    # without the official 3.3 SDK worker

On the 3.x request bytes of ``bench_handler.py`` (counter, counter-100, fanout; the
1 MiB state is not part of the goal), in this one process, interleaved round by round:

- ``function only``: the function's own protobuf work and nothing else: the function of
  ``bench/scenarios.py`` called as many times as the batch has invocations, on arguments
  parsed beforehand, with a dict as its state and sends that only serialize the message
  (the least a send costs: the message must become bytes);
- ``wire only``: the request's wire work done by hand with upb, no SDK: parse, read the
  target, the states and each invocation (its argument parsed into the hinted class),
  and write the reply of the function's effects (handed over as serialized messages and
  state ``Any`` objects) from precomputed heads in one join (see :func:`wire_only`);
- ``ours 3.x``: ``statefun_wsgi.RequestReplyHandler`` running the same function;

and, in its own process (a ``bench_handler`` worker), the official 3.3 SDK's fastest
install (Python 3.10, C++ protobuf 3.20, ``handle_sync``) on the same bytes.

``floor = function only + wire only`` is what any Python SDK running this function in
this interpreter must spend (it still leaves out the calls that join the two). So
``official / floor`` is the most any SDK can reach against the official SDK, and
``official / function only`` the most even with free wire work; ``ours / floor`` is
what our SDK adds. Every reply is checked against the expected content first.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from typing import Any as TypingAny
from typing import Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_handler as bh  # noqa: E402
import google.protobuf  # noqa: E402
import scenarios as logic  # noqa: E402
from google.protobuf.any_pb2 import Any  # noqa: E402
from google.protobuf.internal import api_implementation  # noqa: E402

from statefun_wsgi import RequestReplyHandler, StatefulFunctions  # noqa: E402
from statefun_wsgi._proto.request_reply_v3_view_pb2 import ToFunction  # noqa: E402
from statefun_wsgi._wire import varint as _varint  # noqa: E402  (the varint table only)

SCENARIOS = ("counter", "counter-100", "fanout")
ANY_TYPENAME = b"type.googleapis.com/google.protobuf.Any"


# -- the wire work alone ------------------------------------------------------------------


V = [_varint(n) for n in range(1 << 14)]  # every length here is below 16 KiB


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + V[len(payload)] + payload if payload else b""


def _address(namespace: str, name: str, id: str = "") -> bytes:
    return _field(b"\x0a", namespace.encode()) + _field(b"\x12", name.encode()) + _field(b"\x1a", id.encode())


def wire_only(case: bh.Scenario) -> Callable[[], bytes]:
    """One request's wire work and nothing else: parse it with upb (the view whose states are
    Anys), read the target, each state and each invocation (its caller, its argument parsed
    into the hinted class), then write the reply of the function's effects, handed over as
    the function leaves them: the state ``Any`` objects (serialized here) and each sent
    message already serialized (the function's side pays for that). Each reply field is
    framed at run time from precomputed heads (type names, addresses), in one join."""
    request = case.request_v3
    batch = ToFunction.FromString(request).invocation
    function = logic.FUNCTIONS[batch.target.namespace + "/" + batch.target.type]
    hint = function.__annotations__["message"]
    heads: Dict[str, bytes] = {}

    def head(type_url: str) -> bytes:  # TypedValue{typename, has_value=true, then the value's tag}
        if type_url not in heads:
            heads[type_url] = _field(b"\x0a", type_url.encode()) + b"\x10\x01\x1a"
        return heads[type_url]

    reply = case.reply
    # (field tag, constant bytes before the argument, argument tag, TypedValue head, value)
    sends = [(b"\x12", _field(b"\x0a", _address(*t)), b"\x12", head(u), v) for t, (u, v) in reply["outgoing"]]
    sends += [
        (b"\x1a", b"\x08" + _varint(ms) + _field(b"\x12", _address(*t)), b"\x1a", head(u), v)
        for ms, t, (u, v) in reply["delayed"]
    ]
    sends += [(b"\x22", _address(*t), b"\x1a", head(u), v) for t, (u, v) in reply["egress"]]
    mutations = [
        (b"\x08\x01" + _field(b"\x12", name.encode()) + b"\x1a", Any(type_url=u, value=v))
        for name, (_, (u, v)) in reply["mutations"].items()
    ]
    any_head = head("type.googleapis.com/google.protobuf.Any")

    def handle() -> bytes:
        batch = ToFunction.FromString(request).invocation
        target = batch.target
        (target.namespace, target.type, target.id)
        states = {}
        sent = batch.state
        for i in range(len(sent)):
            state = sent[i]
            value = state.state_value
            states[state.state_name] = value.value if value.has_value else None
        invocations = batch.invocations
        for i in range(len(invocations)):
            invocation = invocations[i]
            if invocation.HasField("caller"):
                invocation.caller
            hint.FromString(invocation.argument.value)
        pieces = [b"\xa2\x06", b""]  # the result's tag, then its length
        size = 0
        join = b"".join
        append = pieces.append
        for prefix, box in mutations:
            value = box.SerializeToString()
            n = len(value)
            typed = len(any_head) + len(V[n]) + n
            n = len(prefix) + len(V[typed]) + typed
            field = join((b"\x0a", V[n], prefix, V[typed], any_head, V[len(value)], value))
            size += len(field)
            append(field)
        for tag, prefix, argument_tag, typed_head, value in sends:
            n = len(value)
            typed = len(typed_head) + len(V[n]) + n
            n = len(prefix) + 1 + len(V[typed]) + typed
            field = join((tag, V[n], prefix, argument_tag, V[typed], typed_head, V[len(value)], value))
            size += len(field)
            append(field)
        pieces[1] = V[size]
        return join(pieces)

    got = bh.decode_reply_v3(handle())
    if got != case.reply:
        raise SystemExit(f"MISMATCH: wire only on {case.name}:\n" + bh.describe_difference(got, case.reply))
    return handle


# -- the function alone -------------------------------------------------------------------


class Address:
    """``context.address`` (the functions read its ``identity``)."""

    __slots__ = ("identity",)

    def __init__(self, identity: str) -> None:
        self.identity = identity


class FunctionOnlyContext(dict):
    """A dict of state Anys whose sends only serialize the message."""

    __slots__ = ("address",)

    def pack_and_send(self, typename: str, id: str, message: TypingAny) -> None:
        message.SerializeToString()

    def pack_and_send_after(self, delay: TypingAny, typename: str, id: str, message: TypingAny) -> None:
        message.SerializeToString()

    def pack_and_send_egress(self, typename: str, message: TypingAny) -> None:
        message.SerializeToString()


def function_only(case: bh.Scenario) -> Callable[[], None]:
    """One request's worth of calls of the function, with nothing around them."""
    batch = ToFunction.FromString(case.request_v3).invocation
    typename = batch.target.namespace + "/" + batch.target.type
    function = logic.FUNCTIONS[typename]
    hint = function.__annotations__["message"]
    arguments = [hint.FromString(invocation.argument.value) for invocation in batch.invocations]
    initial = {}
    for state in batch.state:
        initial[state.state_name] = Any.FromString(state.state_value.value.SerializeToString()) if (
            state.state_value.has_value) else None
    address = Address(batch.target.id)

    def run() -> None:
        context = FunctionOnlyContext(initial)
        context.address = address
        for argument in arguments:
            function(context, argument)

    return run


# -- the run ----------------------------------------------------------------------------------

SIDES = ("function only", "wire only", "ours 3.x")
OFFICIAL = "official 3.3 fastest"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds of short blocks; writes nothing")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 25; 5 with --quick)")
    parser.add_argument("--block-ms", type=float, default=None, help="wall time of one timed block (default 100)")
    parser.add_argument("--no-official", action="store_true", help="without the official 3.3 fastest worker")
    parser.add_argument("--python-fastest", default="python3.10", help="base Python 3.10 of the official side")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 25)
    block = (args.block_ms or (40 if args.quick else 100)) / 1000

    cases = [case for case in bh.scenarios() if case.name in SCENARIOS]
    ours = RequestReplyHandler(logic.register(StatefulFunctions()))
    for case in cases:
        got = bh.decode_reply_v3(ours(case.request_v3))
        if got != case.reply:
            raise SystemExit(f"MISMATCH: ours 3.x on {case.name}:\n" + bh.describe_difference(got, case.reply))
    runners: Dict[tuple, Callable[[], TypingAny]] = {}
    for case in cases:
        runners[("function only", case.name)] = function_only(case)
        runners[("wire only", case.name)] = wire_only(case)  # checks its reply
        runners[("ours 3.x", case.name)] = lambda request=case.request_v3: ours(request)
    bh.log("replies checked: ours 3.x and wire only answer every scenario with the expected content")

    worker = None
    official_info: Dict[str, TypingAny] = {}
    sides = list(SIDES)
    if not args.no_official:
        namespace = argparse.Namespace(sides=["official3-fastest"], python_fastest=args.python_fastest)
        side = bh.make_sides(namespace)[0]
        worker = bh.Worker(side)
        official_info = worker.info()
        for case in cases:
            worker.load(case)
            if side.decode(worker.reply(case)) != case.reply:
                raise SystemExit(f"MISMATCH: {OFFICIAL} on {case.name}")
        sides.append(OFFICIAL)

    def timed(side: str, case: bh.Scenario, n: int) -> float:
        if side == OFFICIAL:
            assert worker is not None
            return worker.run(case, n)[0]
        run = runners[(side, case.name)]
        gc.disable()
        start = time.perf_counter_ns()
        for _ in range(n):
            run()
        elapsed = time.perf_counter_ns() - start
        gc.enable()
        return elapsed / 1e9

    try:
        sizes: Dict[tuple, int] = {}
        for case in cases:
            for side in sides:
                n = 1
                while (elapsed := timed(side, case, n)) < block / 4:
                    n *= 2
                sizes[(side, case.name)] = max(1, int(n * block / elapsed))
        samples: Dict[tuple, List[float]] = {key: [] for key in sizes}
        started = time.perf_counter()
        for index in range(rounds):
            for case in cases:
                shift = index % len(sides)
                for side in sides[shift:] + sides[:shift]:
                    n = sizes[(side, case.name)]
                    samples[(side, case.name)].append(timed(side, case, n) / n * 1e6)
            bh.log(f"round {index + 1}/{rounds} ({time.perf_counter() - started:.0f} s)")
    finally:
        if worker:
            worker.close()

    rows = []
    for case in cases:
        row: Dict[str, TypingAny] = {"scenario": case.name, "invocations": case.invocations}
        for side in sides:
            row[side] = statistics.median(samples[(side, case.name)])
        row["floor"] = row["function only"] + row["wire only"]
        rows.append(row)
    data = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "protobuf": f"{google.protobuf.__version__} ({api_implementation.Type()})",
        "official": official_info,
        "rounds": rounds,
        "block_ms": block * 1000,
        "rows": rows,
        "samples": {f"{side}|{case}": values for (side, case), values in samples.items()},
    }
    text = render(data, sides)
    print(text)
    if not args.quick:
        (bh.RESULTS / "floor-3x.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        (bh.RESULTS / "floor-3x.md").write_text(text, encoding="utf-8")
        bh.log("wrote bench/results/floor-3x.md and floor-3x.json")
    return 0


def render(data: Dict[str, TypingAny], sides: List[str]) -> str:
    official = OFFICIAL in sides
    header = "| scenario | inv./req | function only | wire only | floor | ours 3.x | ours / floor |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if official:
        header += " official 3.3 fastest | 10× needs ≤ | official / ours | official / floor |"
        header += " official / function only |"
        rule += "---:|---:|---:|---:|---:|"
    lines = [
        "# The floor: what any SDK spends running the benchmark's functions (StateFun 3.x), beside ours",
        "",
        f"`python3.11 bench/bench_floor.py` on {data['date']}; Python {data['python']}, protobuf {data['protobuf']}"
        + (
            f" (official: Python {data['official']['python']}, protobuf {data['official']['protobuf']} "
            f"({data['official']['implementation']}))"
            if official
            else ""
        )
        + f"; {bh.cpu_model()}. µs per request, median over {data['rounds']} interleaved rounds. "
        "floor = function only + wire only (see the script's docstring).",
        "",
        header,
        rule,
    ]
    for row in data["rows"]:
        f, w, floor, o = row["function only"], row["wire only"], row["floor"], row["ours 3.x"]
        cells = [row["scenario"], str(row["invocations"])] + [bh.fmt_us(x) for x in (f, w, floor, o)]
        cells.append(f"{o / floor:.2f}")
        if official:
            off = row[OFFICIAL]
            cells += [bh.fmt_us(off), bh.fmt_us(off / 10)]
            cells += [f"{off / o:.1f}×", f"{off / floor:.1f}×", f"{off / f:.1f}×"]
        lines.append("| " + " | ".join(cells) + " |")
    if official:
        lines += [
            "",
            "10× the official SDK needs ours ≤ official / 10. *function only* is a hard floor (no SDK runs "
            "this function for less in this interpreter): where official / function only is below 10, 10× is "
            "impossible for any SDK. *wire only* is the least we could write by hand for the request's parse "
            "and reply, so official / floor below 10 puts 10× out of practical reach too.",
        ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
