"""Serving benchmark: requests/s and p50/p99 latency for a one-invocation counter batch
through gunicorn, side by side in one run:

* ceiling   -- the same gunicorn serving a bare WSGI app that reads the body and returns fixed bytes
* ours      -- statefun-wsgi's StatefunMiddleware
* ours, metrics on -- the same, recording Prometheus metrics (multiprocess mode, as gunicorn_conf
                      wires it with STATEFUN_METRICS=1)
* ours, before     -- ``ours`` from another commit's package (``--before REV``): what a change costs
* ours, two writes -- the same, with gunicorn's own writer: headers and body in two system calls
                      (ours sends a reply in one, so a killed worker never cuts it: single_write.py)
* ours, empty function -- the same, with a function that does nothing (the SDK's own cost)
* no SDK, by hand     -- the counter's own protobuf work and the reply, written out with nothing
                         around them: the bound for any SDK running this function
* no SDK, least work  -- the least any counter can do (no Any round trips either)
* official  -- the official apache-flink-statefun 2.2.2 SDK behind Flask, as its docs show

Every server gets the same gunicorn settings; the load generator is wrk (Debian's ``wrk``).

    python bench/bench_serving.py            # ~15 minutes: wrk -c16, then -c1024
    python bench/bench_serving.py --quick    # ~2 minutes
    python bench/bench_serving.py --servers ceiling ours "ours, two writes" --output serving-single-write
    python bench/bench_serving.py --servers ours "ours, metrics on" "ours, before" --before d8d9e7d \
        --output serving-metrics

Targets: ours >= 0.85 x ceiling and >= 2 x official (requests/s); metrics on >= 0.95 x off. Writes
bench/results/serving.md and .json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from google.protobuf.any_pb2 import Any  # noqa: E402
from google.protobuf.wrappers_pb2 import Int64Value, StringValue  # noqa: E402

from statefun_wsgi import RequestReplyHandler, StatefulFunctions  # noqa: E402
from statefun_wsgi._proto.request_reply_pb2 import ToFunction  # noqa: E402

OFFICIAL_PYTHON = HERE / ".venvs" / "official-default" / "bin" / "python"
# "-c /dev/null": identical explicit settings for all three, not the repository's gunicorn.conf.py
# (gunicorn reads ./gunicorn.conf.py by default), so no access log either.
GUNICORN_SETTINGS = ["-c", "/dev/null", "--workers", "2", "--worker-class", "gthread", "--threads", "4",
                     "--keep-alive", "75", "--log-level", "warning", "--no-control-socket", "--reuse-port"]


def counter_request() -> bytes:
    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "bench", "counter", "user-1"
    state = Any()
    state.Pack(Int64Value(value=41))
    batch.state.add(state_name="count", state_value=state.SerializeToString())
    argument = Any()
    argument.Pack(StringValue(value="hello"))
    batch.invocations.add(argument=argument)
    return request.SerializeToString()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(name: str, python: Path, app: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [str(python), "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", *GUNICORN_SETTINGS]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{name}: gunicorn exited with {process.returncode}")
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name}: gunicorn did not start")


def wrk(port: int, script: Path, seconds: int, connections: int) -> dict:
    process = subprocess.Popen(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/statefun"],
        stdout=subprocess.PIPE, text=True,
    )
    time.sleep(min(1.0, seconds / 2))
    split = connection_split(port)
    output, _ = process.communicate(timeout=seconds + 30)
    if process.returncode:
        raise SystemExit(f"wrk failed on port {port}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": rps, "requests": requests, "p50_ms": percentile("50"), "p99_ms": percentile("99"),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None,
            "connections_per_worker": split}


def workers_cpu_seconds(master: int) -> float:
    """User and system CPU time of the gunicorn master's children (its workers), from /proc."""
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def connection_split(port: int) -> list:
    """How many of the established connections to ``port`` each server process holds (from
    ``ss``), largest first: with SO_REUSEPORT the kernel's hash decides, and an uneven split
    moves gthread's throughput by about 10% either way, hence many interleaved rounds."""
    try:
        listing = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                                 capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    counts: dict = {}
    for pid in re.findall(r"pid=(\d+)", listing):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


#: The servers that must answer the benchmark's batch with exactly the SDK's reply bytes (the
#: empty function changes no state; the official SDK's reply means the same, in other bytes).
SAME_REPLY = {"ceiling", "ours", "ours, metrics on", "ours, before", "ours, two writes", "no SDK, by hand",
              "no SDK, least work"}


def check_reply(name: str, port: int, body: bytes, expected: bytes) -> None:
    """Stop unless ``name`` answers ``body`` with ``expected``: a bound that did less would not bound."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/statefun", body, {"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200 or answer != expected:
        raise SystemExit(f"{name} answered {response.status} with other bytes than the SDK's reply")


def post_script(work: Path, body: bytes) -> Path:
    """A wrk Lua script that POSTs ``body`` (written beside it) as a StateFun batch."""
    (work / "request.bin").write_bytes(body)
    script = work / "post.lua"
    script.write_text(
        'local f = io.open("%s", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\n' % (work / "request.bin")
    )
    return script


def run_rounds(running: dict, script: Path, rounds: int, seconds: int, connections: int) -> dict[str, list[dict]]:
    """Warm up each server, then interleave ``rounds`` wrk runs over them; stops them all at the end."""
    results: dict[str, list[dict]] = {name: [] for name in running}
    try:
        for _, port in running.values():  # warm up (wrk fails loudly on a broken server)
            wrk(port, script, 1, connections)
        for round_number in range(rounds):
            for name, (process, port) in running.items():
                cpu_before = workers_cpu_seconds(process.pid)
                result = wrk(port, script, seconds, connections)
                # The workers' CPU time per request: what a server costs, less moved by other load on
                # the machine than req/s (which is also the load generator's and the kernel's share).
                result["cpu_us"] = (workers_cpu_seconds(process.pid) - cpu_before) / max(result["requests"], 1) * 1e6
                results[name].append(result)
                print(f"round {round_number + 1} {name:22} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
                      f"p99 {result['p99_ms']:.2f} ms  worker CPU {result['cpu_us']:.1f} us/request  "
                      f"non-2xx {result['non_2xx']}  connections per worker {result['connections_per_worker']}",
                      flush=True)
    finally:
        stop(running)
    return results


def stop(running: dict) -> None:
    for process, _ in running.values():
        process.terminate()
    for process, _ in running.values():
        process.wait(timeout=30)


def split_matched(results: dict, name: str, reference: str) -> List[str]:
    """``name``/``reference`` per connection split both drew (e.g. "8/8": ...), as markdown list items."""
    by_split: dict = {}
    for server in (name, reference):
        for run in results[server]:
            split = "/".join(map(str, run.get("connections_per_worker") or [])) or "unknown"
            by_split.setdefault(split, {}).setdefault(server, []).append(run["rps"])
    lines = []
    for split, rates in sorted(by_split.items()):
        if name in rates and reference in rates:
            ratio = statistics.median(rates[name]) / statistics.median(rates[reference])
            lines.append(f"- split {split}: {name} / {reference} = {ratio:.2f} "
                         f"({len(rates[name])} and {len(rates[reference])} runs)")
    return lines or ["- no split was drawn by both"]


#: What each concurrency stands for (bench/results/runtime-connections.md: the real runtime keeps
#: one connection per function address with a batch in flight, up to 1,024 per parallel task).
CONCURRENCY_NOTES = {
    16: "16 busy function addresses: a light load, where the servers also wait on each other",
    1024: ("the runtime's cap per parallel task, and what it opens when its batches are one invocation "
           "(thousands of busy addresses): every side saturates the 2 cores"),
}


#: Every server the benchmark can run: name -> (python, gunicorn app).
SERVERS = {
    "ceiling": (Path(sys.executable), "bench._serving_apps:ceiling"),
    "ours": (Path(sys.executable), "bench._serving_apps:ours"),
    "ours, metrics on": (Path(sys.executable), "bench._serving_apps:ours_metrics"),
    "ours, before": (Path(sys.executable), "bench._serving_apps:ours"),
    "ours, two writes": (Path(sys.executable), "bench._serving_apps:ours_two_writes"),
    "ours, empty function": (Path(sys.executable), "bench._serving_apps:ours_empty"),
    "no SDK, by hand": (Path(sys.executable), "bench._serving_apps:by_hand"),
    "no SDK, least work": (Path(sys.executable), "bench._serving_apps:least_work"),
    "official": (OFFICIAL_PYTHON, "bench._serving_apps:official"),
}


def summarize(results: dict) -> dict:
    return {
        name: {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "cpu_us": statistics.median(r.get("cpu_us", float("nan")) for r in runs),
            "non_2xx": sum(r["non_2xx"] for r in runs),
        }
        for name, runs in results.items()
    }


#: The ratios reported: (key in the JSON, server, reference server, what it means).
RATIOS = (
    ("ours/ceiling", "ours", "ceiling", "; target >= 0.85"),
    ("ours/official", "ours", "official", "; target >= 2"),
    ("ours-metrics/ours", "ours, metrics on", "ours", ": what recording Prometheus metrics costs; target >= 0.95"),
    ("ours/ours-before", "ours", "ours, before", ": this tree against --before's, metrics off in both"),
    ("ours/ours-two-writes", "ours", "ours, two writes",
     ": what sending a reply in one write (so a killed worker never cuts it) gains or costs"),
    ("ours-empty/ceiling", "ours, empty function", "ceiling",
     ": the SDK's own cost, without the function's protobuf work"),
    ("by-hand/ceiling", "no SDK, by hand", "ceiling", ": the most any SDK can reach with this function"),
    ("ours/by-hand", "ours", "no SDK, by hand", ": what the SDK's dispatch, context and checks cost around the same work"),
    ("least-work/ceiling", "no SDK, least work", "ceiling", ": the most any counter can reach"),
)


def ratios(results: dict, name: str, reference: str) -> List[float]:
    """``name``'s req/s over ``reference``'s, round by round (each pair ran seconds apart)."""
    return [mine["rps"] / theirs["rps"] for mine, theirs in zip(results[name], results[reference])]


def cpu_ratios(results: dict, name: str, reference: str) -> List[float]:
    """``name``'s worker CPU time per request over ``reference``'s, round by round."""
    return [mine["cpu_us"] / theirs["cpu_us"] for mine, theirs in zip(results[name], results[reference])]


def describe(values: List[float]) -> str:
    return f"{statistics.median(values):.2f} (rounds {min(values):.2f}-{max(values):.2f})"


def section(connections: int, results: dict, rounds: int, seconds: int) -> List[str]:
    """One concurrency's table and ratios, as markdown lines."""
    summary = summarize(results)
    note = CONCURRENCY_NOTES.get(connections)
    lines = [
        f"## wrk -c{connections}" + (f": {note}" if note else ""),
        "",
        f"{rounds} rounds x {seconds} s, median",
        "",
        "| server | req/s | p50 ms | p99 ms | worker CPU µs/request | non-2xx |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {name} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['cpu_us']:.1f} | {s['non_2xx']} |"
          for name, s in summary.items()),
        "",
        "Ratios of req/s, median over the rounds of each round's pair:",
        "",
        *(f"- {name} / {reference} = {describe(ratios(results, name, reference))}{meaning}"
          for _, name, reference, meaning in RATIOS if name in results and reference in results),
        "",
        "Ratios of worker CPU time per request (the inverse sense: above 1 costs more), median over the rounds:",
        "",
        *(f"- {name} / {reference} = {describe(cpu_ratios(results, name, reference))}"
          for _, name, reference, _ in RATIOS if name in results and reference in results),
        "",
        "wrk's socket errors (connect, read, write, timeout): " + (", ".join(
            f"{name} round {number}: {run['socket_errors']}"
            for name, runs in results.items() for number, run in enumerate(runs, 1) if run.get("socket_errors"))
            or "none"),
    ]
    pairs = [(name, reference) for name, reference in (("ours", "ceiling"), ("ours, metrics on", "ours"))
             if name in results and reference in results]
    if connections <= 64 and pairs:
        lines += [
            "",
            "The kernel's split of the connections between the workers moves gthread's rate (the ceiling's most), "
            "so the same ratios at matching splits, from the medians of the runs that drew each split:",
            "",
            *(line for name, reference in pairs for line in split_matched(results, name, reference)),
        ]
    return lines + [""]


def raise_open_files_limit(needed: int) -> None:
    """Let this process and its children (wrk) open ``needed`` files, or say why they cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"wrk needs {needed} open files but the hard limit is {hard}: raise it (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (~2 minutes in all)")
    parser.add_argument("--connections", type=int, nargs="+", default=sorted(CONCURRENCY_NOTES),
                        help="wrk's connections, one series of rounds each (default: 16 1024)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, metavar="NAME",
                        default=[name for name in SERVERS if name != "ours, before"],
                        help=f"the servers to run (default: all of {', '.join(SERVERS)} but 'ours, before')")
    parser.add_argument("--before", metavar="REV",
                        help="the git commit whose statefun_wsgi 'ours, before' serves (it needs this option)")
    parser.add_argument("--output", default="serving",
                        help="results file name under bench/results/, without .md/.json (default: serving)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    if "official" in args.servers and not OFFICIAL_PYTHON.exists():
        raise SystemExit("run bench/bench_handler.py first: it creates the official SDK's virtualenv")
    if "official" in args.servers:
        subprocess.run([str(OFFICIAL_PYTHON), "-m", "pip", "install", "-q", "flask", "gunicorn>=23"], check=True)
    if ("ours, before" in args.servers) != (args.before is not None):
        raise SystemExit("'ours, before' and --before REV go together")
    seconds, rounds = (4, 2) if args.quick else (8, 9)
    raise_open_files_limit(max(args.connections) + 256)  # wrk holds a descriptor per connection

    body = counter_request()
    functions = StatefulFunctions()
    sys.path.insert(0, str(HERE))
    import scenarios

    scenarios.register(functions)
    reply = RequestReplyHandler(functions)(body)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    (work / "reply.bin").write_bytes(reply)
    script = post_script(work, body)
    env = {"BENCH_CEILING_REPLY": str(work / "reply.bin"), "PYTHONPATH": str(ROOT)}
    server_env = {name: {} for name in SERVERS}
    if args.before:
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "statefun_wsgi"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        server_env["ours, before"] = {"BENCH_STATEFUN_SOURCE": str(before)}
    servers = {name: (python, app) for name, (python, app) in SERVERS.items() if name in args.servers}
    by_connections = {}
    for connections in args.connections:
        print(f"\n-- wrk -c{connections}", flush=True)
        # Each metrics server counts in a directory of its own, empty at start (as gunicorn_conf does).
        server_env["ours, metrics on"] = {"PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-", dir=work)}
        running = {name: start(name, python, app, {**env, **server_env[name]})
                   for name, (python, app) in servers.items()}
        try:
            for name in SAME_REPLY & running.keys():
                check_reply(name, running[name][1], body, reply)
        except BaseException:
            stop(running)
            raise
        by_connections[connections] = run_rounds(running, script, rounds, seconds, connections)

    lines = [
        f"gunicorn {' '.join(GUNICORN_SETTINGS)}; wrk -t1, one-invocation counter batch; servers, load "
        "generator and all on the same 2 cores" + (f"; 'ours, before' is commit {args.before}" if args.before else ""),
        "",
    ]
    for connections, results in by_connections.items():
        lines += section(connections, results, rounds, seconds)
    text = "\n".join(lines)
    print("\n" + text)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.output}.md").write_text(text)
    data = {
        str(connections): {
            "summary": summarize(results),
            "ratios_by_round": {key: ratios(results, name, reference) for key, name, reference, _ in RATIOS
                                if name in results and reference in results},
            "cpu_ratios_by_round": {key: cpu_ratios(results, name, reference) for key, name, reference, _ in RATIOS
                                    if name in results and reference in results},
            "runs": results,
        }
        for connections, results in by_connections.items()
    }
    (HERE / "results" / f"{args.output}.json").write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
