"""Large states over HTTP: the 1 MiB-state batch through gunicorn, glibc's malloc thresholds
fixed in each worker (gunicorn.conf.py's post_fork, the default) or left adaptive
(``STATEFUN_TUNE_MALLOC=0``).

    python bench/bench_large_state.py             # ~4 minutes; writes bench/results/large-state.{md,json}
    python bench/bench_large_state.py --quick     # ~40 s, prints only

Real gunicorns, the same command (``gunicorn -c gunicorn.conf.py bench._serving_apps:ours``, one
gthread worker each), the same app and the same request: ``bench/blob`` with a 1 MiB
``BytesValue`` state, which it reads, rotates by one byte and writes back (so the reply carries
1 MiB too). They differ only in the environment: ``STATEFUN_TUNE_MALLOC=0`` (off), nothing (on),
``MALLOC_ARENA_MAX`` at glibc's own cap (on, heaps uncapped); a fourth serves a floor, an app that
reads the body and answers the same reply bytes. One keep-alive client per server sends the
request back to back; the servers take turns, round after round (the order alternating), so
machine noise hits all alike. Reported: the median over rounds of each round's median latency
at the client, the worker's CPU time and minor page faults per request (from ``/proc``), the
ratios off / on of each round's pair, and resident memory at the end. A second phase sends from
4 clients at once, with the cap on heaps at 1, 2 (the hook's) and glibc's. Inherited
``MALLOC_*`` and ``STATEFUN_*`` variables are cleared.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from google.protobuf.any_pb2 import Any  # noqa: E402
from google.protobuf.wrappers_pb2 import BytesValue, StringValue  # noqa: E402

from statefun_wsgi._proto.request_reply_pb2 import FromFunction, ToFunction  # noqa: E402
from statefun_wsgi.malloc import glibc_version, tune_malloc  # noqa: E402

MIB = 1024 * 1024
BLOB = bytes(range(256)) * (MIB // 256)
#: glibc's own cap on heaps (arenas) here: 8 per core on 64-bit.
GLIBC_ARENAS = str(8 * (os.cpu_count() or 1))

#: name -> (app, environment): the two workers compared; the same as "on" with glibc's own
#: cap on heaps (the hook caps them at 2); and the HTTP floor (an app that reads the body and
#: answers the same reply bytes, fixed: what moving 2 MiB through gunicorn costs).
SIDES = {
    "off": ("bench._serving_apps:ours", {"STATEFUN_TUNE_MALLOC": "0"}),
    "on": ("bench._serving_apps:ours", {}),
    "on, heaps uncapped": ("bench._serving_apps:ours", {"MALLOC_ARENA_MAX": GLIBC_ARENAS}),
    "floor": ("bench._serving_apps:ceiling", {}),
}
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_ARENA_MAX")


def blob_request() -> bytes:
    request = ToFunction()
    batch = request.invocation
    batch.target.namespace, batch.target.type, batch.target.id = "bench", "blob", "blob-1"
    state = Any()
    state.Pack(BytesValue(value=BLOB))
    batch.state.add(state_name="blob", state_value=state.SerializeToString())
    argument = Any()
    argument.Pack(StringValue(value="rotate"))
    batch.invocations.add(argument=argument)
    return request.SerializeToString()


def check_reply(body: bytes) -> None:
    [mutation] = FromFunction.FromString(body).invocation_result.state_mutations
    value = Any.FromString(mutation.state_value)
    rotated = BytesValue()
    if mutation.state_name != "blob" or not value.Unpack(rotated) or rotated.value != BLOB[1:] + BLOB[:1]:
        raise SystemExit("the server's reply is not the rotated state")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, name: str, app: str, env: Dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        environment = {k: v for k, v in os.environ.items() if k not in MALLOC_VARIABLES and not k.startswith("STATEFUN_")}
        environment.update(env, STATEFUN_ACCESS_LOG="off", STATEFUN_LOG_LEVEL="warning", WEB_CONCURRENCY="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
             app],
            cwd=ROOT, env=environment, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"{name}: gunicorn did not start")
                time.sleep(0.1)
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def worker(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        if len(children) != 1:
            raise SystemExit(f"{self.name}: expected one worker, found {children}")
        return int(children[0])

    def faults(self) -> int:
        # /proc/<pid>/stat: the 10th field is minflt; the command (2nd) is in parentheses.
        fields = Path(f"/proc/{self.worker()}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[7])

    def cpu_ns(self) -> int:
        """CPU time the worker's threads have run, in nanoseconds (schedstat: exact, unlike ticks)."""
        total = 0
        for task in Path(f"/proc/{self.worker()}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (FileNotFoundError, ProcessLookupError):  # a thread that just ended
                pass
        return total

    def rss_mib(self) -> Tuple[float, float]:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.worker()}/status").read_text().splitlines())
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024

    def post(self, body: bytes) -> bytes:
        self.connection.request("POST", "/statefun", body=body, headers={"Content-Type": "application/octet-stream"})
        response = self.connection.getresponse()
        reply = response.read()
        if response.status != 200:
            raise SystemExit(f"{self.name}: {response.status} {reply[:200]!r}")
        return reply

    def stop(self) -> None:
        self._close_connection()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)

    def _close_connection(self) -> None:
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()


def run(rounds: int, per_round: int, warm_up: int, reply_file: Path) -> dict:
    body = blob_request()
    servers: Dict[str, Server] = {}
    try:
        servers["on"] = Server("on", *SIDES["on"])
        reply = servers["on"].post(body)
        check_reply(reply)
        reply_file.write_bytes(reply)
        for name, (app, env) in SIDES.items():
            if name == "floor":
                env = {**env, "BENCH_CEILING_REPLY": str(reply_file)}
            if name not in servers:
                servers[name] = Server(name, app, env)
        for server in servers.values():
            check_reply(server.post(body))
            for _ in range(warm_up):
                server.post(body)
        medians: Dict[str, List[float]] = {name: [] for name in servers}
        faults: Dict[str, List[float]] = {name: [] for name in servers}
        cpu: Dict[str, List[float]] = {name: [] for name in servers}
        ratios: List[float] = []
        cpu_ratios: List[float] = []
        for number in range(rounds):
            order = list(SIDES) if number % 2 == 0 else list(reversed(SIDES))
            for name in order:
                server = servers[name]
                before, cpu_before = server.faults(), server.cpu_ns()
                times = []
                for _ in range(per_round):
                    start = time.perf_counter()
                    server.post(body)
                    times.append(time.perf_counter() - start)
                faults[name].append((server.faults() - before) / per_round)
                cpu[name].append((server.cpu_ns() - cpu_before) / per_round / 1000)
                medians[name].append(statistics.median(times) * 1e6)
            ratios.append(medians["off"][-1] / medians["on"][-1])
            cpu_ratios.append(cpu["off"][-1] / cpu["on"][-1])
        memory = {name: server.rss_mib() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "glibc": glibc_version(),
        "rounds": rounds,
        "requests_per_round": per_round,
        "request_bytes": len(body),
        "sides": {
            name: {
                "median_us": statistics.median(medians[name]),
                "rounds_us": medians[name],
                "faults_per_request": statistics.median(faults[name]),
                "worker_cpu_us": statistics.median(cpu[name]),
                "rounds_worker_cpu_us": cpu[name],
                "rss_mib": memory[name][0],
                "peak_rss_mib": memory[name][1],
            }
            for name in SIDES
        },
        "ratio_off_over_on": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
        "cpu_ratio_off_over_on": statistics.median(cpu_ratios),
        "cpu_ratio_range": [min(cpu_ratios), max(cpu_ratios)],
    }


#: The concurrent phase: with several batches at once a gthread worker's threads may each get a
#: heap (arena) of its own, each keeping what it freed. How much does the cap matter?
CONCURRENT_SIDES = {
    "off": {"STATEFUN_TUNE_MALLOC": "0"},
    "on (heaps capped at 2)": {},
    "on, heaps capped at 1": {"MALLOC_ARENA_MAX": "1"},
    f"on, heaps uncapped (glibc's {GLIBC_ARENAS})": {"MALLOC_ARENA_MAX": GLIBC_ARENAS},
}


def run_concurrent(rounds: int, seconds: float, clients: int) -> dict:
    """``clients`` keep-alive clients at once against one gthread worker (4 threads) per side."""
    body = blob_request()
    servers: Dict[str, Server] = {}
    results: Dict[str, Dict[str, List[float]]] = {name: {"cpu": [], "faults": [], "rate": []} for name in CONCURRENT_SIDES}
    try:
        for name, env in CONCURRENT_SIDES.items():
            servers[name] = Server(name, "bench._serving_apps:ours", env)
            check_reply(servers[name].post(body))
        for number in range(rounds):
            order = list(CONCURRENT_SIDES) if number % 2 == 0 else list(reversed(CONCURRENT_SIDES))
            for name in order:
                server = servers[name]
                before, cpu_before = server.faults(), server.cpu_ns()
                done = _load(server.port, body, seconds, clients)
                results[name]["cpu"].append((server.cpu_ns() - cpu_before) / done / 1000)
                results[name]["faults"].append((server.faults() - before) / done)
                results[name]["rate"].append(done / seconds)
        memory = {name: server.rss_mib() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
    return {
        "clients": clients,
        "rounds": rounds,
        "seconds_per_round": seconds,
        "sides": {
            name: {
                "worker_cpu_us": statistics.median(results[name]["cpu"]),
                "faults_per_request": statistics.median(results[name]["faults"]),
                "requests_per_s": statistics.median(results[name]["rate"]),
                "rss_mib": memory[name][0],
                "peak_rss_mib": memory[name][1],
            }
            for name in CONCURRENT_SIDES
        },
    }


def _load(port: int, body: bytes, seconds: float, clients: int) -> int:
    """Requests completed by ``clients`` threads, each on its own keep-alive connection."""
    deadline = time.monotonic() + seconds
    counts: List[int] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        done = 0
        try:
            while time.monotonic() < deadline:
                connection.request("POST", "/statefun", body=body, headers={"Content-Type": "application/octet-stream"})
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"{response.status} under load")
                done += 1
        finally:
            connection.close()
            counts.append(done)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def markdown(data: dict) -> str:
    sides = data["sides"]
    off, on, uncapped, floor = sides["off"], sides["on"], sides["on, heaps uncapped"], sides["floor"]
    labels = {
        "off": "`STATEFUN_TUNE_MALLOC=0`: glibc's adaptive thresholds",
        "on": "default: `post_fork` fixes them (mmap 32 MiB, trim 64 MiB, 2 heaps at most)",
        "on, heaps uncapped": f"the same with glibc's cap on heaps (`MALLOC_ARENA_MAX={GLIBC_ARENAS}`)",
        "floor": "floor: an app that reads the body and answers the same reply bytes (tuned)",
    }
    rows = "\n".join(
        f"| {labels[name]} | {side['median_us']:,.0f} | {side['worker_cpu_us']:,.0f} | {side['faults_per_request']:,.0f} "
        f"| {side['rss_mib']:.0f} MiB | {side['peak_rss_mib']:.0f} MiB |"
        for name, side in sides.items()
    )
    low, high = data["ratio_range"]
    cpu_low, cpu_high = data["cpu_ratio_range"]
    return f"""# Large states over HTTP: glibc's malloc thresholds fixed in each worker, or not

`python bench/bench_large_state.py` on {data['date']}; {data['machine']}; Python {data['python']}, glibc {data['glibc']}.
`gunicorn -c gunicorn.conf.py bench._serving_apps:ours`, one gthread worker, on 127.0.0.1; one keep-alive
client sending `bench/blob` batches back to back ({data['request_bytes']:,} bytes: a 1 MiB `BytesValue` state,
read, rotated by one byte and written back, so the reply is as large). {data['rounds']} interleaved rounds of
{data['requests_per_round']} requests per server; client and servers share the machine's cores (with whatever else runs).

| worker | µs per request, at the client | worker CPU µs per request | minor faults per request | RSS at the end | peak RSS |
|---|---:|---:|---:|---:|---:|
{rows}

Medians over rounds. Ratio off / on, median of each round's pair: **{data['ratio_off_over_on']:.2f}×** at the client
(rounds {low:.2f}–{high:.2f}), **{data['cpu_ratio_off_over_on']:.2f}×** in the worker's CPU time (rounds {cpu_low:.2f}–{cpu_high:.2f}).
Above the floor (what the SDK and the function add to moving the bytes through gunicorn), worker CPU per request:
{off['worker_cpu_us'] - floor['worker_cpu_us']:,.0f} µs off, {on['worker_cpu_us'] - floor['worker_cpu_us']:,.0f} µs on.
The cap on heaps: with one connection, gthread's 4 threads take turns, and with glibc's own cap each
keeps a heap of its own: {uncapped['rss_mib']:.0f} MiB resident against {on['rss_mib']:.0f} MiB capped at 2, worker CPU
{uncapped['worker_cpu_us']:,.0f} µs against {on['worker_cpu_us']:,.0f} µs per request.
The client's time includes sending and reading 1 MiB over loopback in every row (its own heap's thresholds are
fixed too, so its share stays the same). Worker CPU time is read from /proc/<pid>/task/*/schedstat.
Load average while it ran: {data['load_average'][0]} at the start, {data['load_average'][1]} at the end.
""" + concurrent_markdown(data["concurrent"])


def concurrent_markdown(data: dict) -> str:
    rows = "\n".join(
        f"| {name} | {side['requests_per_s']:,.0f} | {side['worker_cpu_us']:,.0f} | {side['faults_per_request']:,.1f} "
        f"| {side['rss_mib']:.0f} MiB | {side['peak_rss_mib']:.0f} MiB |"
        for name, side in data["sides"].items()
    )
    return f"""
## {data['clients']} batches at once: the heaps (arenas) of a worker's threads

The same batch from {data['clients']} keep-alive clients at once, one gthread worker (4 threads) per side,
{data['rounds']} interleaved rounds of {data['seconds_per_round']:g} s. `MALLOC_ARENA_MAX` (which wins over the hook)
sets the cap on the heaps glibc gives the threads (each keeps what it freed, up to the trim threshold).

| worker | batches/s | worker CPU µs per batch | minor faults per batch | RSS at the end | peak RSS |
|---|---:|---:|---:|---:|---:|
{rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds of 100, print only")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=300)
    args = parser.parse_args()
    if glibc_version() is None:
        raise SystemExit("not glibc: nothing to compare")
    rounds, per_round = (5, 100) if args.quick else (args.rounds, args.per_round)
    # The client's own heap too, so that its share of every request stays the same throughout.
    tune_malloc()
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-large-state-") as directory:
        data = run(rounds, per_round, 50, Path(directory) / "reply.bin")
    data["concurrent"] = run_concurrent(2 if args.quick else 6, 2.0 if args.quick else 4.0, 4)
    data["load_average"] = [round(load_start, 1), round(os.getloadavg()[0], 1)]
    text = markdown(data)
    print(text)
    if not args.quick:
        results = HERE / "results"
        (results / "large-state.md").write_text(text)
        (results / "large-state.json").write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
