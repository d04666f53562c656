"""How many HTTP connections (and requests in flight) the real StateFun 2.2.2 runtime opens to
our gunicorn server under load, by number of function addresses with work pending.

    python bench/runtime_connections.py                    # keys 1 10 100 1000 3000, ~1.5 minutes
    python bench/runtime_connections.py --keys 10 1000 --seconds 20

The runtime is the e2e harness (tests/e2e/harness: StateFun 2.2.2 on a Flink MiniCluster, built
by tests/e2e/harness_setup.sh); the server is gunicorn with the repository's gunicorn.conf.py,
2 gthread workers x 4 threads, serving this module's ``wsgi``: the serving benchmark's
``bench/counter`` (state ``count``, one egress record per message) behind our middleware. For
each key count a fresh JVM gets messages round-robin over that many ids, fed through its stdin
in chunks so that the runtime always has a backlog (and so every address has work pending);
after a warm-up, every ``--interval`` the established connections to the server's port are
listed from /proc/net/tcp (total, per worker, and not yet accepted: as ``ss -tnp`` would, cheaper).

A request counts as in flight at the server when its connection has request bytes the server has
not read (Recv-Q > 0: sent by the runtime, waiting for a gunicorn thread) or a worker thread is
inside the app for it (from the request log every worker appends to: pid, client port, start,
end of the body read, end, status, Content-Length). The same listing has the runtime's side of
the connections: a Recv-Q there is a reply the JVM has not read yet. Messages/s come from the
runtime's egress file (one record per message), requests/s from the request log.

The access log is off (``STATEFUN_ACCESS_LOG=off``): the request log replaces it. Writes
bench/results/runtime-connections.md and .json. The JVM and gunicorn are always stopped,
also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (ROOT, ROOT / "tests"):  # the repository; tests/ (for servers.py)
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from google.protobuf.wrappers_pb2 import StringValue  # noqa: E402

import servers  # noqa: E402  (tests/servers.py)
from e2e import runtime  # noqa: E402  (tests/e2e/runtime.py)
from bench import scenarios  # noqa: E402
from statefun_wsgi import StatefulFunctions, StatefunMiddleware  # noqa: E402

# -- the served app -------------------------------------------------------------------------------

#: Where each worker appends one line per request (set by the driver for gunicorn).
REQUEST_LOG_ENV = "RUNTIME_CONNECTIONS_LOG"


class TimedInput:
    """A ``wsgi.input`` that remembers when its last ``read`` returned."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.read_at = 0.0

    def read(self, *size: int) -> bytes:
        data = self.stream.read(*size)
        self.read_at = time.monotonic()
        return data


class RequestLog:
    """WSGI wrapper: appends ``<pid> <client port> <start> <body read> <end> <status> <bytes>`` per
    request to a file (``time.monotonic()`` seconds; one ``write`` on an ``O_APPEND`` descriptor,
    so lines from the threads and workers never mix)."""

    def __init__(self, app: Callable, path: str) -> None:
        self.app = app
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # in each worker

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        start = time.monotonic()
        statuses: List[str] = []

        def recording_start_response(status: str, headers: list, exc_info: object = None) -> Callable:
            statuses.append(status[:3])
            return start_response(status, headers, exc_info)

        body = environ["wsgi.input"] = TimedInput(environ["wsgi.input"])
        reply = self.app(environ, recording_start_response)
        line = (f"{os.getpid()} {environ.get('REMOTE_PORT', 0)} {start:.6f} {body.read_at or start:.6f} "
                f"{time.monotonic():.6f} {statuses[0] if statuses else '-'} {environ.get('CONTENT_LENGTH') or 0}\n")
        os.write(self.fd, line.encode())
        return reply


functions = StatefulFunctions()
scenarios.register(functions)
wsgi: Callable = StatefunMiddleware(None, functions)
if os.environ.get(REQUEST_LOG_ENV):
    wsgi = RequestLog(wsgi, os.environ[REQUEST_LOG_ENV])

# -- the driver -----------------------------------------------------------------------------------


FUNCTION = "bench/counter"
EGRESS = "bench/out"
STRING_VALUE_URL = "type.googleapis.com/google.protobuf.StringValue"
WORKERS, THREADS = 2, 4
GUNICORN_ARGS = ("-c", "gunicorn.conf.py", "--worker-class", "gthread", "--workers", str(WORKERS),
                 "--threads", str(THREADS))

#: Bounds on every wait, in seconds.
SETUP_TIMEOUT = 600.0
FIRST_EGRESS_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
IDLE_TIMEOUT = 15.0  # the previous JVM's connections to close on the server side

class Socket(NamedTuple):
    """The server's side of a connection."""

    port: int  # the client's (the runtime's) port
    pid: Optional[int]  # the gunicorn worker holding it; None while in the accept queue
    recv_q: int  # request bytes the server has not read yet


class Sample(NamedTuple):
    t: float  # time.monotonic()
    sockets: List[Socket]
    replies_unread: int  # connections whose client side (the runtime's) has reply bytes it has not read


class Request(NamedTuple):
    pid: int
    port: int
    start: float
    body_read: float  # when the app's last read of the body returned
    end: float
    status: str
    size: int  # Content-Length


def build_harness() -> List[str]:
    """Run harness_setup.sh (a no-op when up to date); the JVM's argv, with ``{conf_dir}``."""
    result = subprocess.run(["bash", str(runtime.HARNESS_SETUP)], cwd=ROOT, capture_output=True, text=True,
                            timeout=SETUP_TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"harness_setup.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(runtime.JAVA_CMD.read_text())


class Sampler:
    """Lists both sides of every established TCP connection to ``port`` on this host from
    /proc/net/tcp{,6}, and which worker of gunicorn's ``master`` holds the server's side, by
    the workers' file descriptors: what ``ss -tnp`` does, without scanning every process, and
    reading the descriptors again only when a socket is new."""

    def __init__(self, port: int, master: int) -> None:
        self.port = port
        self.master = master
        self.owners: Dict[int, int] = {}  # socket inode -> worker pid

    def sample(self) -> Sample:
        t = time.monotonic()
        server_side: List[Tuple[int, int, int]] = []  # (client port, inode, Recv-Q)
        replies_unread = 0
        suffix = f":{self.port:04X}"
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as file:
                next(file)  # the header
                for line in file:
                    fields = line.split()  # sl local remote st tx_queue:rx_queue tr tm->when retrnsmt uid timeout inode
                    if fields[3] != "01":  # TCP_ESTABLISHED
                        continue
                    recv_q = int(fields[4].split(":")[1], 16)
                    if fields[1].endswith(suffix):
                        server_side.append((int(fields[2].rsplit(":", 1)[1], 16), int(fields[9]), recv_q))
                    elif fields[2].endswith(suffix) and recv_q > 0:
                        replies_unread += 1
        if any(inode not in self.owners for _, inode, _ in server_side):
            self._read_owners()
        return Sample(t, [Socket(client, self.owners.get(inode), recv_q) for client, inode, recv_q in server_side],
                      replies_unread)

    def _read_owners(self) -> None:
        self.owners.clear()
        try:
            workers = Path(f"/proc/{self.master}/task/{self.master}/children").read_text().split()
        except OSError:
            return
        for pid in workers:
            try:
                descriptors = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for descriptor in descriptors:
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{descriptor}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    self.owners[int(link[8:-1])] = int(pid)


def wait_idle(sampler: Sampler) -> None:
    """Return once no connection to the port is established (the previous JVM's are closed)."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    while sampler.sample().sockets:
        if time.monotonic() > deadline:
            raise TimeoutError(f"connections to port {sampler.port} still open after {IDLE_TIMEOUT} s")
        time.sleep(0.1)


class LineCounter:
    """Counts the complete lines appended to a file so far, reading only the new bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def update(self) -> int:
        try:
            with open(self.path, "rb") as file:
                file.seek(self.offset)
                data = file.read()
        except FileNotFoundError:
            return 0
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


class Feeder(threading.Thread):
    """Writes messages round-robin over ``keys`` ids to the JVM's stdin, ``chunk`` lines at a
    time, whenever fewer than ``chunk`` sent messages are still unprocessed."""

    def __init__(self, stdin: IO[bytes], keys: int, chunk: int) -> None:
        super().__init__(daemon=True)
        value = base64.b64encode(StringValue(value="hello").SerializeToString()).decode()
        self.lines = [f"{FUNCTION}/k{key} {STRING_VALUE_URL} {value}\n".encode() for key in range(keys)]
        self.stdin = stdin
        self.chunk = chunk
        self.sent = 0
        self.processed = 0  # set by the sampling loop
        self.error: Optional[BaseException] = None
        self.stopping = threading.Event()

    def run(self) -> None:
        keys = len(self.lines)
        try:
            while not self.stopping.is_set():
                if self.sent - self.processed < self.chunk:
                    self.stdin.write(b"".join(self.lines[(self.sent + n) % keys] for n in range(self.chunk)))
                    self.stdin.flush()
                    self.sent += self.chunk
                else:
                    time.sleep(0.01)
        except (OSError, ValueError) as exc:  # the JVM is gone, or stdin closed while stopping
            if not self.stopping.is_set():
                self.error = exc


def pin_process_tree(pid: int, cpu: int) -> None:
    """Every thread of ``pid`` and of its children on ``cpu`` (threads made later inherit it)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for process in [pid, *map(int, children)]:
        for task in os.listdir(f"/proc/{process}/task"):
            os.sched_setaffinity(int(task), {cpu})


def start_jvm(argv: List[str], egress: Path, stderr: IO[bytes]) -> subprocess.Popen:
    return subprocess.Popen(
        [*argv, f"-De2e.egress.file={egress}", f"-De2e.egresses={EGRESS}"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
    )


def read_requests(path: Path) -> List[Request]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    requests = []
    for line in lines:
        pid, port, start, body_read, end, status, size = line.split(" ")
        requests.append(Request(int(pid), int(port), float(start), float(body_read), float(end), status, int(size)))
    return requests


def in_app(t: float, requests: List[Request], starts: List[float], longest: float) -> set:
    """The client ports of the requests a worker thread was inside the app for at ``t``
    (``requests`` sorted by start, ``starts`` their starts, ``longest`` the longest one)."""
    ports = set()
    index = bisect.bisect_right(starts, t)  # requests[:index] started by then
    while index > 0 and requests[index - 1].start >= t - longest:
        index -= 1
        if requests[index].end >= t:
            ports.add(requests[index].port)
    return ports


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_phase(keys: int, server: servers.Server, argv: List[str], work: Path, request_log: Path,
              args: argparse.Namespace) -> dict:
    """One fresh JVM loaded with messages over ``keys`` ids; samples, then the summary."""
    sampler = Sampler(server.port, server.process.pid)
    wait_idle(sampler)
    egress = work / f"egress-{keys}.txt"
    egress_lines = LineCounter(egress)
    phase_start = time.monotonic()
    with open(work / f"jvm-{keys}.stderr", "wb") as stderr:
        jvm = start_jvm(argv, egress, stderr)
    assert jvm.stdin is not None
    feeder = Feeder(jvm.stdin, keys, args.chunk)
    feeder.start()
    samples: List[Sample] = []
    sample_cost: List[float] = []
    processed_at: List[int] = []  # messages processed by each sample, since the window began
    try:
        deadline = time.monotonic() + FIRST_EGRESS_TIMEOUT
        while egress_lines.update() == 0:
            if jvm.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no egress from the JVM (exit {jvm.poll()}); see {work}/jvm-{keys}.stderr")
            time.sleep(0.05)
        window_start = time.monotonic() + args.warmup
        window_end = window_start + args.seconds
        processed_at_start = 0
        tick = time.monotonic()
        while (now := time.monotonic()) < window_end:
            feeder.processed = egress_lines.update()
            if jvm.poll() is not None or feeder.error is not None:
                raise RuntimeError(f"the JVM exited ({jvm.poll()}) or stdin failed ({feeder.error!r})")
            if now >= window_start:
                if not samples:
                    processed_at_start, window_start = feeder.processed, now
                samples.append(sampler.sample())
                sample_cost.append(time.monotonic() - now)
                processed_at.append(feeder.processed - processed_at_start)
            tick += args.interval
            time.sleep(max(0.0, tick - time.monotonic()))
        window_end = time.monotonic()
        processed = egress_lines.update() - processed_at_start
        starts_of_jvm = (work / f"jvm-{keys}.stderr").read_text(errors="replace").count("E2E-HARNESS RUNNING")
    finally:
        feeder.stopping.set()
        runtime.stop_jvm(jvm)
        feeder.join(timeout=STOP_TIMEOUT)
        egress.unlink(missing_ok=True)  # one line per message: up to a few hundred MB
    phase_end = time.monotonic()

    requests = sorted((r for r in read_requests(request_log) if phase_start <= r.start <= phase_end),
                      key=lambda r: r.start)
    starts = [r.start for r in requests]
    longest = max((r.end - r.start for r in requests), default=0.0)
    window = [r for r in requests if window_start <= r.start <= window_end]
    seconds = window_end - window_start
    totals = [len(s.sockets) for s in samples]
    busy = [in_app(s.t, requests, starts, longest) for s in samples]
    # At the server: unread request bytes on the connection, or a thread in the app for it.
    at_server = [len({s.port for s in one.sockets if s.recv_q > 0} | ports) for one, ports in zip(samples, busy)]
    per_worker: Dict[int, List[int]] = {pid: [] for pid in sorted({r.pid for r in requests})}
    for one in samples:
        counts = Counter(s.pid for s in one.sockets)
        for pid, values in per_worker.items():
            values.append(counts.get(pid, 0))
    body_wait_ms = [1000 * (r.body_read - r.start) for r in window] or [0.0]
    app_ms = [1000 * (r.end - r.start) for r in window] or [0.0]
    result = {
        "keys": keys,
        "messages_per_s": processed / seconds,
        "requests_per_s": len(window) / seconds,
        "messages_per_request": processed / max(1, len(window)),
        "request_bytes_mean": statistics.mean(r.size for r in window) if window else 0.0,
        "connections": {"max": max(totals), "median": statistics.median(totals), "p90": percentile(totals, 0.9),
                        "min": min(totals)},
        "connections_per_worker_median": sorted((statistics.median(v) for v in per_worker.values()), reverse=True),
        "not_yet_accepted_max": max(sum(1 for s in one.sockets if s.pid is None) for one in samples),
        "at_server": {"max": max(at_server), "median": statistics.median(at_server),
                      "p90": percentile(at_server, 0.9)},
        "threads_in_app_median": statistics.median(len(ports) for ports in busy),
        "replies_unread_by_runtime": {"max": max(s.replies_unread for s in samples),
                                      "median": statistics.median(s.replies_unread for s in samples)},
        "body_wait_ms": {"p50": percentile(body_wait_ms, 0.5), "p90": percentile(body_wait_ms, 0.9)},
        "app_ms": {"p50": percentile(app_ms, 0.5), "p90": percentile(app_ms, 0.9)},
        "connections_used": len({(r.pid, r.port) for r in requests}),
        "requests": len(requests),
        "non_200": sum(1 for r in requests if r.status != "200"),
        "job_starts": starts_of_jvm,
        "window_s": seconds,
        "samples": len(samples),
        "sample_cost_ms": 1000 * statistics.mean(sample_cost),
        "timeline": [{"t": round(one.t - window_start, 3), "messages": messages, "connections": total,
                      "at_server": server_side, "replies_unread": one.replies_unread}
                     for one, messages, total, server_side in zip(samples, processed_at, totals, at_server)],
    }
    print(f"keys {keys:5}: {result['messages_per_s']:7.0f} msg/s {result['requests_per_s']:6.0f} req/s "
          f"{result['messages_per_request']:6.1f} msg/req | connections max {result['connections']['max']} "
          f"median {result['connections']['median']:g} p90 {result['connections']['p90']} "
          f"per worker {result['connections_per_worker_median']} | at server median "
          f"{result['at_server']['median']:g} max {result['at_server']['max']} | replies unread median "
          f"{result['replies_unread_by_runtime']['median']:g} | body wait p50 {result['body_wait_ms']['p50']:.1f} ms "
          f"| used {result['connections_used']} | non-200 {result['non_200']} | job starts {starts_of_jvm}",
          flush=True)
    return result


def report(results: List[dict], args: argparse.Namespace, elapsed: float) -> str:
    rows = [
        f"| {r['keys']} | {r['messages_per_s']:.0f} | {r['requests_per_s']:.0f} | {r['messages_per_request']:.1f} "
        f"| {r['request_bytes_mean'] / 1024:.1f} "
        f"| {r['connections']['max']} / {r['connections']['median']:g} / {r['connections']['p90']} "
        f"| {' / '.join(f'{v:g}' for v in r['connections_per_worker_median'])} | {r['connections_used']} "
        f"| {r['at_server']['median']:g} / {r['at_server']['p90']} / {r['at_server']['max']} "
        f"| {r['replies_unread_by_runtime']['median']:g} "
        f"| {r['body_wait_ms']['p50']:.1f} / {r['body_wait_ms']['p90']:.1f} | {r['non_200']} |"
        for r in results
    ]
    return "\n".join([
        "# Connections the StateFun 2.2.2 runtime opens to gunicorn under load",
        "",
        (f"`python bench/runtime_connections.py --keys {' '.join(map(str, args.keys))} --seconds {args.seconds:g} "
         f"--warmup {args.warmup:g} --interval {args.interval:g} --chunk {args.chunk} --max-batch {args.max_batch}"
         f"{' --pin' if args.pin else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
         + ("gunicorn alone on CPU 1; the JVM and this driver (the stdin feeder and the sampler) on CPU 0"
            if args.pin else f"{os.cpu_count()} cores shared by the JVM, gunicorn and this driver")
         + f"; {elapsed:.0f} s in all."),
        "",
        (f"Setup: runtime = tests/e2e/harness (StateFun 2.2.2 on a Flink 1.11.3 MiniCluster), **parallelism 1** "
         f"(1 slot; statefun.async.max-per-task 1024, the default), a fresh JVM per row; function `{FUNCTION}` "
         f"(state `count`, one egress record per message), **maxNumBatchRequests {args.max_batch}**, default "
         f"timeouts; server: `gunicorn {' '.join(GUNICORN_ARGS)}`, i.e. **{WORKERS} workers x {THREADS} threads** "
         "(reuse_port, keep-alive 75 s; access log off). Messages go round-robin over the ids, with a backlog of "
         f"{args.chunk:,} to {2 * args.chunk:,} unprocessed messages at all times; /proc/net/tcp every "
         f"{args.interval * 1000:.0f} ms for {args.seconds:g} s after a {args.warmup:g} s warm-up."),
        "",
        ("| keys | msg/s | req/s | msg/req | req KiB | conns max / median / p90 | per worker (median) | conns used "
         "| in flight at server median / p90 / max | replies unread by runtime (median) | body wait p50 / p90 ms "
         "| non-200 |"),
        "|---:|---:|---:|---:|---:|---|---|---:|---|---:|---|---:|",
        *rows,
        "",
        ("msg/req: msg/s over req/s in the window (a request at either edge can tip it past maxNumBatchRequests); "
         "conns: established TCP connections to the server's port (server side, including any not yet accepted); "
         "conns used: distinct connections that carried a request in the row (JVM start to stop); in flight at "
         "server: connections with request bytes the server has not read, or a worker thread in the app for them; "
         "replies unread: the runtime's side of a connection holds reply bytes the JVM has not read yet; body wait: "
         "from the app's start to the end of its last read of the body."),
        "",
        ("Sampling cost (ms of this driver's time per sample, per row): "
         + ", ".join(f"{r['keys']} keys {r['sample_cost_ms']:.1f}" for r in results)
         + ("; on the JVM's CPU." if args.pin else "; on the cores the servers use.")),
        "",
        ("Parallelism 2 was not measured: the harness fixes parallelism 1 in Java (`parallelism.default` 1, "
         "`createLocalEnvironment(1, ...)` and `taskmanager.numberOfTaskSlots` 1 in Main and LocalCluster) and reads "
         "no property or flink-conf.yaml that could raise it."),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 10, 100, 1000, 3000],
                        help="distinct ids per row (default: 1 10 100 1000 3000)")
    parser.add_argument("--seconds", type=float, default=12.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the first egress, not measured")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between samples")
    parser.add_argument("--chunk", type=int, default=20000,
                        help="stdin lines per write; the backlog kept between one and two chunks")
    parser.add_argument("--max-batch", type=int, default=1000, help="maxNumBatchRequests (the runtime's default)")
    parser.add_argument("--pin", action="store_true",
                        help="the JVM on CPU 0 and gunicorn on CPU 1, as if on separate machines (needs 2 CPUs)")
    args = parser.parse_args()
    began = time.monotonic()
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop the JVM and gunicorn.
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    argv_template = build_harness()
    work = Path(tempfile.mkdtemp(prefix="runtime-connections-"))
    request_log = work / "requests.log"
    server = servers.start("bench.runtime_connections:wsgi", *GUNICORN_ARGS,
                           env={REQUEST_LOG_ENV: str(request_log), "STATEFUN_ACCESS_LOG": "off"})
    results = []
    try:
        server.wait_ready("/")
        conf_dir = work / "conf"
        conf_dir.mkdir()
        (conf_dir / "module.yaml").write_text(
            runtime.module_yaml(f"{server.base_url}/statefun", {FUNCTION: ([{"name": "count"}], args.max_batch)},
                                timeouts=""))
        argv = [arg.replace("{conf_dir}", str(conf_dir)) for arg in argv_template]
        if args.pin:
            pin_process_tree(server.process.pid, 1)
            os.sched_setaffinity(0, {0})  # this driver (the feeder thread starts later: it inherits)
            argv = ["taskset", "-c", "0", *argv]
        for keys in args.keys:
            results.append(run_phase(keys, server, argv, work, request_log, args))
    except BaseException:
        print(f"work files (JVM stderr, request log) kept in {work}", file=sys.stderr)
        raise
    finally:
        server.stop()
    shutil.rmtree(work)
    elapsed = time.monotonic() - began
    text = report(results, args, elapsed)
    print("\n" + text)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "runtime-connections.md").write_text(text + "\n")
    (HERE / "results" / "runtime-connections.json").write_text(json.dumps(
        {"settings": {**vars(args), "workers": WORKERS, "threads": THREADS, "parallelism": 1},
         "elapsed_s": elapsed, "rows": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
