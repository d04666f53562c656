"""Serving benchmark for the StateFun 3.3 API: ``statefun_wsgi.v3`` under gunicorn against the
official ``apache-flink-statefun==3.3.0`` SDK under gunicorn, over HTTP, one-invocation batches.

The same function code on every side (``bench/scenarios_v3.py``, written for the official SDK;
ours runs it with only its import changed) answers the same 3.x counter batch
(``bench/counter``, state ``count`` = 41, one invocation):

* ours                    -- ``statefun_wsgi.v3`` behind ``StatefunMiddleware``, with the settings we
                             recommend (``gunicorn -c python:statefun_wsgi.gunicorn_conf``: gthread x 4
                             threads, keep-alive 75 s, a listening socket per worker), access log off
* official <install>, Flask sync     -- Flask calling ``handle_sync`` (an event loop per request),
                                        gunicorn's default sync workers (no keep-alive)
* official <install>, Flask gthread  -- the same Flask app on ours' worker settings (gthread x 4)
* official <install>, aiohttp        -- an aiohttp app calling ``handle_async``, as the official
                                        docs show, on aiohttp's ``GunicornWebWorker`` (keep-alive 75 s)
* ours, aiohttp           -- the official aiohttp app above with ``statefun_wsgi.v3``'s ``handle_async``:
                             the same server, the SDK alone differs (when aiohttp imports here)
* ceiling                 -- a bare WSGI app on ours' settings that reads the body and answers fixed
                             bytes: gunicorn's own share of ours

for the official SDK's fastest install (Python 3.10, C++ protobuf 3.20.3) and its default one
(Python 3.11, pure-Python protobuf 3.20), in ``bench/.venvs/official3-{fastest,default}``
(created with ``bench_handler.ensure_venv`` on first use, Flask, aiohttp and this gunicorn's
version added). Every server has the same number of worker processes and its own listening
socket per worker (``--reuse-port``; gunicorn 24+). Before any timing each server's reply is
decoded and compared with the expected content (count 42 stored, one egress record of 42).
The load is wrk (Debian's ``wrk``, one thread), at fixed connection counts, the servers
interleaved round by round in a rotating order. Reported per server: req/s, latency
percentiles, and the CPU time per request of its processes (from /proc) and of wrk; the
1-minute load average before each run says how busy the rest of the machine was.

    python bench/bench_serving_v3.py              # ~14 minutes: -c16 and -c64, 7 rounds x 6 s
    python bench/bench_serving_v3.py --quick      # ~3 minutes
    python bench/bench_serving_v3.py --profile    # where ours' time goes: CPU inside the app call and around it
    python bench/bench_serving_v3.py --installs fastest --connections 64

Goal (issue 15): ours >= 3 x the better of official Flask and official aiohttp (req/s).
Writes bench/results/serving-v3.md and .json.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import importlib.util
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any as TypingAny

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import bench_handler
import gunicorn
from bench_serving import connection_split, free_port, post_script, raise_open_files_limit

GOAL = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: What each official install is: (venv name under bench/.venvs, base python candidates, extra
#: packages, protobuf version prefix, implementation, environment).
INSTALLS = {
    "fastest": ("official3-fastest", ["/root/.pyenv/versions/3.10.13/bin/python3.10", "python3.10"], "3.10",
                ["protobuf==3.20.3"], "3.20.3", "cpp", {"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "cpp"}),
    "default": ("official3-default", ["python3.11"], "3.11", [], "3.", "python", {}),
}
#: What an official venv runs, in one line.
VERSIONS = (
    "import sys; from importlib.metadata import version as v; "
    "from google.protobuf.internal import api_implementation as a; "
    "print(f'Python {sys.version.split()[0]}, protobuf {v(\"protobuf\")} ({a.Type()}), "
    "apache-flink-statefun {v(\"apache-flink-statefun\")}, Flask {v(\"flask\")}, aiohttp {v(\"aiohttp\")}, "
    "gunicorn {v(\"gunicorn\")}')"
)
WEB_PACKAGES = ["flask", "aiohttp", f"gunicorn=={gunicorn.__version__}"]
#: Settings every official server and the ceiling share (not the repository's gunicorn.conf.py).
COMMON = ["-c", "/dev/null", "--log-level", "warning", "--no-control-socket", "--reuse-port"]
#: ours' worker settings, as statefun_wsgi.gunicorn_conf sets them (for the sides that copy them).
GTHREAD = ["--worker-class", "gthread", "--threads", "4", "--keep-alive", "75"]
AIOHTTP = [*COMMON, "--worker-class", "aiohttp.GunicornWebWorker", "--keep-alive", "75"]


def official_servers(install: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (app, gunicorn options) of the official SDK's servers on ``install``."""
    return {
        f"official {install}, Flask sync": ("bench._serving_apps:official3_flask", [*COMMON, "--worker-class", "sync"]),
        f"official {install}, Flask gthread": ("bench._serving_apps:official3_flask", [*COMMON, *GTHREAD]),
        f"official {install}, aiohttp": (
            "bench._serving_apps:official3_aiohttp",
            AIOHTTP,
        ),
    }


class Server:
    """One gunicorn, started on a free port of 127.0.0.1."""

    def __init__(self, name: str, python: str, app: str, options: list[str], env: dict[str, str],
                 workers: int, recommended: bool = False) -> None:
        self.name = name
        self.port = free_port()
        bind = f"127.0.0.1:{self.port}"
        if recommended:  # statefun_wsgi.gunicorn_conf: the runtime's listener only, no access log
            env = {**env, "WEB_CONCURRENCY": str(workers), "STATEFUN_BIND": "", "STATEFUN_RUNTIME_BIND": bind,
                   "STATEFUN_ACCESS_LOG": "off", "STATEFUN_LOG_LEVEL": "warning"}
            command = [python, "-m", "gunicorn", "-c", "python:statefun_wsgi.gunicorn_conf", app]
        else:
            command = [python, "-m", "gunicorn", *options, "--workers", str(workers), "--bind", bind, app]
        self.command = command
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name}: gunicorn exited with {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    connection.request("GET", "/")
                    connection.getresponse().read()  # any answer will do
                finally:
                    connection.close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name}: gunicorn did not answer within 60 s")

    def post(self, body: bytes) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", "/statefun", body, {"Content-Type": "application/octet-stream"})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()

    def check(self, body: bytes, want: dict[str, TypingAny]) -> None:
        """Stop unless the server answers ``body`` with a 200 whose content is ``want``."""
        status, content_type, reply = self.post(body)
        if status != 200 or not content_type.startswith("application/octet-stream"):
            raise SystemExit(f"{self.name} answered {status} ({content_type}): {reply[:200]!r}")
        got = bench_handler.decode_reply_v3(reply)
        if got != want:
            raise SystemExit(f"{self.name}'s reply differs:\n{bench_handler.describe_difference(got, want)}")

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time (user, system) the master and its workers have used so far."""
        listing = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True,
                                 check=False).stdout
        user = system = 0
        for pid in [self.process.pid, *map(int, listing.split())]:
            try:
                with open(f"/proc/{pid}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (stat's 14th, 15th)
        return user / CLOCK_TICKS, system / CLOCK_TICKS

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wrk(server: Server, script: Path, seconds: int, connections: int) -> dict[str, TypingAny]:
    """One wrk run; req/s, p50/p90/p99 in ms, errors, the connection split, the load average, and
    the CPU time per request of the server (its processes) and of wrk."""
    port = server.port
    load_before = os.getloadavg()[0]
    user, system = server.cpu_seconds()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(
        ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}/statefun"],
        stdout=subprocess.PIPE, text=True,
    )
    time.sleep(min(1.0, seconds / 2))
    split = connection_split(port)
    output, _ = process.communicate(timeout=seconds + 60)
    user_after, system_after = server.cpu_seconds()
    user, system = user_after - user, system_after - system
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    if process.returncode:
        raise SystemExit(f"wrk failed on port {port}:\n{output}")
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {"rps": rps, "p50_ms": percentile("50"), "p90_ms": percentile("90"), "p99_ms": percentile("99"),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else None,
            "connections_per_worker": split, "load_before": load_before, "load_after": os.getloadavg()[0],
            "requests": requests, "server_cpu_us": (user + system) / max(requests, 1) * 1e6,
            "server_system_us": system / max(requests, 1) * 1e6,
            "wrk_cpu_us": wrk_cpu / max(requests, 1) * 1e6}


def run_series(servers: list[Server], script: Path, rounds: int, seconds: int, connections: int) -> dict[str, list]:
    """Warm each server up, then ``rounds`` rounds of one wrk run each, the order rotated every round."""
    results: dict[str, list] = {server.name: [] for server in servers}
    for server in servers:
        wrk(server, script, 2, connections)
    for number in range(rounds):
        shift = number % len(servers)
        for server in servers[shift:] + servers[:shift]:
            run = wrk(server, script, seconds, connections)
            results[server.name].append(run)
            print(f"-c{connections} round {number + 1} {server.name:34} {run['rps']:8.0f} req/s  "
                  f"p50 {run['p50_ms']:6.2f}  p99 {run['p99_ms']:6.2f} ms  non-2xx {run['non_2xx']}  "
                  f"cpu {run['server_cpu_us']:4.0f}+{run['wrk_cpu_us']:3.0f} us/req  "
                  f"split {run['connections_per_worker']}  load {run['load_before']:.1f}", flush=True)
    return results


def summarize(results: dict[str, list]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "rps": statistics.median(r["rps"] for r in runs),
            **{key: statistics.median(r[key] for r in runs)
               for key in ("p50_ms", "p90_ms", "p99_ms", "server_cpu_us", "server_system_us", "wrk_cpu_us")},
            "non_2xx": sum(r["non_2xx"] for r in runs),
        }
        for name, runs in results.items()
    }


def ratios(results: dict[str, list], name: str, reference: str) -> list[float]:
    """``name``'s req/s over ``reference``'s, round by round."""
    return [mine["rps"] / theirs["rps"] for mine, theirs in zip(results[name], results[reference])]


def cpu_ratios(results: dict[str, list], name: str, reference: str) -> list[float]:
    """``name``'s server CPU time per request over ``reference``'s, round by round."""
    return [mine["server_cpu_us"] / theirs["server_cpu_us"] for mine, theirs in zip(results[name], results[reference])]


def best_official(results: dict[str, list], install: str) -> str:
    """The official server of ``install`` with the highest median req/s."""
    names = [name for name in results if name.startswith(f"official {install},")]
    return max(names, key=lambda name: statistics.median(r["rps"] for r in results[name]))


def describe(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (rounds {min(values):.2f}-{max(values):.2f})"


def section(connections: int, results: dict[str, list], installs: list[str], rounds: int, seconds: int) -> list[str]:
    summary = summarize(results)
    loads = [r["load_before"] for runs in results.values() for r in runs]
    lines = [
        f"## wrk -c{connections}",
        "",
        f"{rounds} rounds x {seconds} s, median; 1-minute load average before the runs "
        f"{min(loads):.1f}-{max(loads):.1f} (median {statistics.median(loads):.1f})",
        "",
        "| server | req/s | p50 ms | p90 ms | p99 ms | non-2xx | server CPU µs/req | wrk CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {name} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | {s['non_2xx']} "
          f"| {s['server_cpu_us']:.0f} | {s['wrk_cpu_us']:.0f} |"
          for name, s in summary.items()),
        "",
        "Ratios of req/s, median over the rounds of each round's pair:",
        "",
    ]
    for install in installs:
        best = best_official(results, install)
        verdict = "met" if statistics.median(ratios(results, "ours", best)) >= GOAL else "NOT met"
        lines.append(f"- **ours / {best}** (the better official server of the {install} install) = "
                     f"{describe(ratios(results, 'ours', best))}; goal >= {GOAL:g}: {verdict}")
        lines.append(f"  - its server CPU per request / ours' = "
                     f"{describe(cpu_ratios(results, best, 'ours'))} (less sensitive to what else runs)")
        for name in results:
            if name.startswith(f"official {install},") and name != best:
                lines.append(f"- ours / {name} = {describe(ratios(results, 'ours', name))}")
    if "ours, aiohttp" in results:
        for install in installs:
            name = f"official {install}, aiohttp"
            lines.append(f"- ours, aiohttp / {name} = {describe(ratios(results, 'ours, aiohttp', name))}: "
                         "the same aiohttp app and server, the SDK alone differs")
    if "ceiling" in results:
        lines.append(f"- ours / ceiling = {describe(ratios(results, 'ours', 'ceiling'))}: how close ours comes to "
                     "a bare app on the same gunicorn settings; the ceiling / the best official server = "
                     + ", ".join(f"{describe(ratios(results, 'ceiling', best_official(results, install)))} "
                                 f"({install})" for install in installs))
    lines += [
        "",
        "wrk's socket errors (connect, read, write, timeout): " + (", ".join(
            f"{name} round {number}: {run['socket_errors']}"
            for name, runs in results.items() for number, run in enumerate(runs, 1) if run.get("socket_errors"))
            or "none"),
        "",
    ]
    return lines


def read_app_times(directory: Path) -> tuple[int, int]:
    """(calls, CPU ns inside them) summed over the workers' files (``_serving_apps._timed``)."""
    calls = nanoseconds = 0
    for path in directory.iterdir():
        _, worker_calls, worker_ns = map(int, path.read_text().split())
        calls, nanoseconds = calls + worker_calls, nanoseconds + worker_ns
    if not calls:
        raise SystemExit(f"no app times in {directory}: did the workers exit cleanly?")
    return calls, nanoseconds


def profile_section(connections: int, results: dict[str, list], times: dict[str, tuple[int, int]], rounds: int,
                    seconds: int) -> list[str]:
    """``--profile``: per request, the workers' CPU time, the part inside the app call, the rest (gunicorn)."""
    summary = summarize(results)
    loads = [r["load_before"] for runs in results.values() for r in runs]
    rows = {}
    for name in ("ours", "ceiling"):
        calls, nanoseconds = times[name]
        server = summary[name]["server_cpu_us"]
        app = nanoseconds / calls / 1000
        rows[name] = (summary[name]["rps"], server, summary[name]["server_system_us"], app, server - app)
    lines = [
        f"## wrk -c{connections}",
        "",
        f"{rounds} rounds x {seconds} s, median; 1-minute load average before the runs "
        f"{min(loads):.1f}-{max(loads):.1f}",
        "",
        "| server | req/s | server CPU µs/req | of which in the kernel | in the app call | around it (gunicorn) |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {name} | {rps:.0f} | {server:.0f} | {system:.0f} | {app:.1f} | {rest:.0f} |"
          for name, (rps, server, system, app, rest) in rows.items()),
        "",
        f"- ours / ceiling, req/s = {describe(ratios(results, 'ours', 'ceiling'))}",
        f"- ours' app call (middleware, handler, function; gunicorn's body reader) {rows['ours'][3]:.1f} µs of "
        f"{rows['ours'][1]:.0f} µs per request ({rows['ours'][3] / rows['ours'][1]:.0%}); ours' own code "
        f"(less the bare app's call) {rows['ours'][3] - rows['ceiling'][3]:.1f} µs; gunicorn around the call "
        f"{rows['ours'][4]:.0f} µs, around the bare app's {rows['ceiling'][4]:.0f} µs",
        "",
    ]
    return lines


def hot_loop(functions: TypingAny, body: bytes, seconds: float = 2.0) -> float:
    """Microseconds per ``handle_sync(body)`` back to back in this process (the best of 5 blocks)."""
    import statefun_wsgi.v3

    handle = statefun_wsgi.v3.RequestReplyHandler(functions).handle_sync
    best = float("inf")
    for _ in range(5):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            for _ in range(100):
                handle(body)
            count += 100
        best = min(best, (time.perf_counter() - start) / count * 1e6)
    return best


def cpu_model() -> str:
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (~4 minutes in all)")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64],
                        help="wrk's connections, one series of rounds each (default: 16 64)")
    parser.add_argument("--installs", nargs="+", choices=INSTALLS, default=list(INSTALLS),
                        help="the official SDK's installs to run (default: fastest default)")
    parser.add_argument("--no-ceiling", action="store_true", help="leave out the bare WSGI app")
    parser.add_argument("--no-ours-aiohttp", action="store_true",
                        help="leave out ours behind the official aiohttp app (run only when aiohttp imports here)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="worker processes of every server (default: the cores, as gunicorn_conf sets them)")
    parser.add_argument("--rounds", type=int, help="rounds per series (default 7, --quick 2)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 6, --quick 4)")
    parser.add_argument("--profile", action="store_true",
                        help="where ours' time goes: ours and the ceiling only, the CPU time of each app call "
                             "counted in the workers (results: <output>-profile.md)")
    parser.add_argument("--output", default="serving-v3",
                        help="results file name under bench/results/, without .md/.json (default: serving-v3)")
    args = parser.parse_args()
    if args.profile:
        args.installs, args.no_ours_aiohttp, args.no_ceiling = [], True, False
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")
    rounds = args.rounds or (2 if args.quick else 7)
    seconds = args.seconds or (4 if args.quick else 6)
    raise_open_files_limit(max(args.connections) + 256)

    scenario = next(s for s in bench_handler.scenarios() if s.name == "counter")
    body, want = scenario.request_v3, scenario.reply
    work = Path(tempfile.mkdtemp(prefix="bench-serving-v3-"))
    script = post_script(work, body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)

    pythons: dict[str, str] = {}
    venv_info: dict[str, str] = {}
    for install in args.installs:
        venv, candidates, version, protobuf, want_protobuf, implementation, extra = INSTALLS[install]
        base = bench_handler.find_python(version, candidates)
        pythons[install] = bench_handler.ensure_venv(
            venv, base, [bench_handler.OFFICIAL_SDK_3, *protobuf, *WEB_PACKAGES], {**env, **extra},
            want_protobuf, implementation, ("flask", "aiohttp", "gunicorn"),
        )
        venv_info[install] = subprocess.run([pythons[install], "-c", VERSIONS], capture_output=True, text=True,
                                            check=True, env={**env, **extra}).stdout.strip()

    # The ceiling answers ours' reply bytes (checked like the others).
    import statefun_wsgi.v3

    sys.modules["statefun"] = statefun_wsgi.v3
    import scenarios_v3

    functions = statefun_wsgi.v3.StatefulFunctions()
    scenarios_v3.register(functions)
    (work / "reply.bin").write_bytes(statefun_wsgi.v3.RequestReplyHandler(functions).handle_sync(body))
    env["BENCH_CEILING_REPLY"] = str(work / "reply.bin")

    ours_aiohttp = not args.no_ours_aiohttp and importlib.util.find_spec("aiohttp") is not None
    by_connections: dict[int, dict[str, list]] = {}
    commands: dict[str, str] = {}
    app_times: dict[int, dict[str, tuple[int, int]]] = {}
    started = datetime.datetime.now(datetime.UTC)
    for connections in args.connections:
        print(f"\n-- wrk -c{connections}", flush=True)
        servers: list[Server] = []
        timed: dict[str, Path] = {}
        if args.profile:
            for name in ("ours", "ceiling"):
                timed[name] = work / f"times-{connections}-{name}"
                timed[name].mkdir()

        def env_of(name: str, timed: dict[str, Path] = timed) -> dict[str, str]:
            return {**env, "BENCH_APP_TIMES": str(timed[name])} if name in timed else env

        try:
            servers.append(Server("ours", sys.executable, "bench._serving_apps:ours_v3", [], env_of("ours"),
                                  args.workers, recommended=True))
            for install in args.installs:
                install_env = {**env, **INSTALLS[install][6]}
                for name, (app, options) in official_servers(install).items():
                    servers.append(Server(name, pythons[install], app, options, install_env, args.workers))
            if ours_aiohttp:
                servers.append(Server("ours, aiohttp", sys.executable, "bench._serving_apps:ours_v3_aiohttp",
                                      AIOHTTP, env, args.workers))
            if not args.no_ceiling:
                servers.append(Server("ceiling", sys.executable, "bench._serving_apps:ceiling_app",
                                      [*COMMON, *GTHREAD], env_of("ceiling"), args.workers))
            for server in servers:
                server.check(body, want)
                commands[server.name] = " ".join(server.command)
            by_connections[connections] = run_series(servers, script, rounds, seconds, connections)
        finally:
            for server in servers:
                server.stop()
        app_times[connections] = {name: read_app_times(directory) for name, directory in timed.items()}

    import google.protobuf
    from google.protobuf.internal import api_implementation

    lines = [
        "# Serving the StateFun 3.3 API over HTTP: statefun_wsgi.v3 against the official SDK",
        "",
        f"`python bench/bench_serving_v3.py {' '.join(sys.argv[1:])}`".replace(" `", "`") + " from "
        f"{started:%Y-%m-%d %H:%M} UTC; {cpu_model()}, {os.cpu_count()} cores shared by the servers, wrk and "
        "whatever else ran on the machine (see the load averages).",
        "",
        f"One-invocation 3.x counter batch ({len(body)} bytes: `bench/counter`, state count=41; the function stores "
        "42 and sends it to an egress), the same function code on every side (`bench/scenarios_v3.py`); every "
        "server's reply checked before timing. "
        f"{args.workers} worker processes per server, each with its own listening socket (`--reuse-port`). "
        "wrk -t1, keep-alive connections (the sync workers close each after one request).",
        "",
        f"- ours: Python {platform.python_version()}, protobuf {google.protobuf.__version__} "
        f"({api_implementation.Type()}), gunicorn {gunicorn.__version__}: "
        "`gunicorn -c python:statefun_wsgi.gunicorn_conf bench._serving_apps:ours_v3` "
        "(gthread x 4 threads, keep-alive 75 s), access log off (`STATEFUN_ACCESS_LOG=off`)",
        *(f"- official {install}: {venv_info[install]}" for install in args.installs),
        *([
            "- official, Flask: `gunicorn -c /dev/null --worker-class sync` (gunicorn's default) or "
            "`--worker-class gthread --threads 4 --keep-alive 75` (ours' settings), "
            "`bench._serving_apps:official3_flask` (`handler.handle_sync(request.data)`)",
            "- official, aiohttp: `gunicorn -c /dev/null --worker-class aiohttp.GunicornWebWorker --keep-alive 75 "
            "bench._serving_apps:official3_aiohttp` (`await handler.handle_async(await request.read())`)",
        ] if args.installs else []),
        *([
            "- ours, aiohttp: the official aiohttp app and server above with `statefun_wsgi.v3`'s `handle_async` "
            "(`bench._serving_apps:ours_v3_aiohttp`): the same server, the SDK alone differs",
        ] if ours_aiohttp else []),
        "- ceiling: a WSGI app that reads the body and answers ours' reply bytes, on ours' worker settings",
        "- CPU µs/req: the server's processes' user + system time (from /proc) and wrk's, over each run, per "
        "request answered",
        "",
    ]
    if args.profile:
        lines[0] = "# Where a request's time goes: statefun_wsgi.v3 under gunicorn against a bare WSGI app"
        hot = hot_loop(functions, body)
        lines += [
            "The app call's CPU time is counted in each worker (`time.thread_time_ns()` around it, so waits for the "
            "GIL are left out; `bench/_serving_apps.py`'s `_timed`); \"around it\" is the rest of the workers' CPU "
            "time: gunicorn's parsing, socket calls, its threads' hand-offs. The bare app's call is gunicorn's "
            "body reader and nothing else, so ours' own code is ours' app call less the bare app's. "
            f"In a hot loop in one process, ours' handler (`handle_sync`) takes {hot:.1f} µs for this batch.",
            "",
        ]
        for connections, results in by_connections.items():
            lines += profile_section(connections, results, app_times[connections], rounds, seconds)
        args.output += "-profile"
    else:
        for connections, results in by_connections.items():
            lines += section(connections, results, args.installs, rounds, seconds)
    text = "\n".join(lines)
    print("\n" + text)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / f"{args.output}.md").write_text(text)
    data = {
        "started": started.isoformat(),
        "request_bytes": len(body),
        "workers": args.workers,
        "installs": venv_info,
        "commands": commands,
        "app_cpu_ns_per_call": {
            str(connections): {name: ns / calls for name, (calls, ns) in times.items() if calls}
            for connections, times in app_times.items()
        },
        "series": {
            str(connections): {
                "summary": summarize(results),
                "ratios_by_round": {
                    f"ours/{name}": ratios(results, "ours", name) for name in results if name != "ours"
                },
                "runs": results,
            }
            for connections, results in by_connections.items()
        },
    }
    (HERE / "results" / f"{args.output}.json").write_text(json.dumps(data, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
