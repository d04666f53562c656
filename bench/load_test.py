"""Load test: gunicorn with 4 gthread workers (the repository's gunicorn.conf.py) serving
``app:wsgi`` (the greeter), driven by wrk for a minute with 64 keep-alive connections.

    python bench/load_test.py                 # 60 s
    python bench/load_test.py --quick         # 10 s
    python bench/load_test.py --seconds 300 --connections 128

The requests are a fixed mix of counter-like batches (the greeter with its visit
count in state, 1 to 50 invocations; the formatter answering its caller; reminders).
Every reply wrk receives is checked in wrk's Lua against the replies the in-process
handler gives for the same bodies (each body has one correct reply), and afterwards a
sample of requests is compared byte for byte over plain HTTP. Meanwhile the workers'
resident memory (VmRSS in /proc/<pid>/status) is sampled every few seconds.

Pass criteria (exit status 1 otherwise): no non-2xx reply, no socket error, no wrong
reply, no worker restarted, and each worker's RSS flat after warm-up (growth over the
last 80% of the run below 2 MiB). Results go to bench/results/load.md.

The access log is off (``STATEFUN_ACCESS_LOG=off``) unless ``--access-log``: at
thousands of requests a second it measures the disk more than the endpoint.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from google.protobuf.any_pb2 import Any  # noqa: E402
from google.protobuf.message import Message  # noqa: E402
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value  # noqa: E402

from examples.greeter.functions import functions  # noqa: E402
from examples.greeter.messages_pb2 import FormatRequest, GreetRequest, Reminder  # noqa: E402
from statefun_wsgi import RequestReplyHandler  # noqa: E402
from statefun_wsgi._proto.request_reply_pb2 import ToFunction  # noqa: E402

WORKERS = 4
RSS_FLAT_LIMIT = 2 * 1024 * 1024  # bytes of growth per worker after warm-up
WARM_UP_SHARE = 0.2

LUA = r"""
-- Posts the bodies in turn; checks that every reply is the one correct reply of some body.
local directory = "%(directory)s"
local count = %(count)d
local bodies, expected = {}, {}
local threads = {}
local headers = {["Content-Type"] = "application/octet-stream"}

local function slurp(path)
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  return data
end

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i = 1, count do
    bodies[i] = slurp(directory .. "/body-" .. i .. ".bin")
    expected[slurp(directory .. "/reply-" .. i .. ".bin")] = true
  end
  sent, checked, wrong, non200 = 0, 0, 0, 0
end

function request()
  sent = sent + 1
  return wrk.format("POST", "/statefun", headers, bodies[(sent %% count) + 1])
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= 200 then
    non200 = non200 + 1
  elseif not expected[body] then
    wrong = wrong + 1
  end
end

function done(summary, latency, requests)
  local checked, wrong, non200 = 0, 0, 0
  for _, thread in ipairs(threads) do
    checked = checked + thread:get("checked")
    wrong = wrong + thread:get("wrong")
    non200 = non200 + thread:get("non200")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "bytes": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "checked": %%d, "wrong": %%d, "non200": %%d, ' ..
    '"p50": %%d, "p90": %%d, "p99": %%d, "p999": %%d, "max": %%d, "mean": %%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    checked, wrong, non200, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def pack(message: Message) -> bytes:
    packed = Any()
    packed.Pack(message)
    return packed.SerializeToString()


def batch(typename: str, identity: str, messages: List[Message], state: Optional[Dict[str, Optional[Message]]] = None,
          caller: Optional[Tuple[str, str, str]] = None) -> bytes:
    request = ToFunction()
    target = request.invocation.target
    target.namespace, target.type = typename.split("/")
    target.id = identity
    for name, value in (state or {}).items():
        request.invocation.state.add(state_name=name, state_value=b"" if value is None else pack(value))
    for message in messages:
        invocation = request.invocation.invocations.add()
        invocation.argument.ParseFromString(pack(message))
        if caller is not None:
            invocation.caller.namespace, invocation.caller.type, invocation.caller.id = caller
    return request.SerializeToString()


def request_mix() -> List[bytes]:
    """Counter-like batches of the greeter's two functions, small and large."""
    bodies = []
    for i in range(12):  # a visit: count in state, 1 invocation
        name = f"user{i}"
        bodies.append(batch("example/greeter", name, [GreetRequest(name=name)],
                            {"seen_count": Int64Value(value=i * 7) if i else None}))
    for size in (5, 10, 25, 50):  # a backlog of visits in one batch
        name = f"busy{size}"
        bodies.append(batch("example/greeter", name, [GreetRequest(name=name)] * size,
                            {"seen_count": Int64Value(value=size)}))
    for i in range(8):  # the formatter answering the greeter
        name = f"user{i}"
        bodies.append(batch("example/formatter", name, [FormatRequest(name=name, visits=i + 1)],
                            caller=("example", "greeter", name)))
    bodies.append(batch("example/greeter", "late", [Reminder(name="late")], {"seen_count": Int64Value(value=3)}))
    # A large state: 64 KiB of bytes the greeter never reads (other registered states ride along).
    bodies.append(batch("example/greeter", "heavy", [GreetRequest(name="heavy")],
                        {"seen_count": Int64Value(value=2), "padding": BytesValue(value=b"x" * 65536)}))
    return bodies


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workers_of(master: int) -> List[int]:
    result = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True, check=False)
    return sorted(int(pid) for pid in result.stdout.split())


def vm_rss(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """Samples every worker's VmRSS every ``interval`` seconds."""

    def __init__(self, master: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.interval = interval
        self.samples: List[Tuple[float, Dict[int, int]]] = []
        self.stop = threading.Event()
        self.started = time.monotonic()

    def sample(self) -> None:
        values = {pid: rss for pid in workers_of(self.master) if (rss := vm_rss(pid)) is not None}
        self.samples.append((time.monotonic() - self.started, values))

    def run(self) -> None:
        self.sample()
        while not self.stop.wait(self.interval):
            self.sample()
        self.sample()


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/")
            connection.getresponse().read()
            connection.close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer")


def sample_check(port: int, bodies: List[bytes], handler: RequestReplyHandler) -> Tuple[int, int]:
    """Each body once over HTTP, compared byte for byte with the in-process handler."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    same = 0
    for body in bodies:
        connection.request("POST", "/statefun", body=body, headers={"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        data = response.read()
        if (response.status == 200 and response.getheader("Content-Type") == "application/octet-stream"
                and data == handler(body)):
            same += 1
    connection.close()
    return same, len(bodies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="how long wrk runs (default 60)")
    parser.add_argument("--quick", action="store_true", help="10 s instead")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--interval", type=float, default=0.0, help="RSS sampling interval (default: run / 20, >= 1 s)")
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn.conf.py's access log on")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "load.md")
    args = parser.parse_args()
    seconds = 10 if args.quick else args.seconds
    interval = args.interval or max(1.0, seconds / 20)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    handler = RequestReplyHandler(functions)
    bodies = request_mix()
    replies = [handler(body) for body in bodies]
    assert len(set(replies)) == len(replies), "each body must have its own reply"
    work = Path(tempfile.mkdtemp(prefix="statefun-load-"))
    for number, (body, reply) in enumerate(zip(bodies, replies), start=1):
        (work / f"body-{number}.bin").write_bytes(body)
        (work / f"reply-{number}.bin").write_bytes(reply)
    script = work / "mix.lua"
    script.write_text(LUA % {"directory": work, "count": len(bodies)})

    port = free_port()
    # The load is the runtime's: gunicorn.conf.py binds its listener alone (no public one).
    env = dict(os.environ, WEB_CONCURRENCY=str(WORKERS), STATEFUN_BIND="", STATEFUN_RUNTIME_BIND=f"127.0.0.1:{port}")
    if not args.access_log:
        env["STATEFUN_ACCESS_LOG"] = "off"
    log_path = work / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:wsgi"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_ready(port, process)
        deadline = time.monotonic() + 30
        while len(workers_of(process.pid)) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.1)
        boot_workers = workers_of(process.pid)
        print(f"gunicorn master {process.pid}, workers {boot_workers}; wrk {seconds} s, "
              f"{args.connections} connections, {len(bodies)} bodies", flush=True)
        sampler = RssSampler(process.pid, interval)
        sampler.start()
        wrk = subprocess.run(
            ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{seconds}s", "--timeout", "10s",
             "--latency", "-s", str(script), f"http://127.0.0.1:{port}/statefun"],
            capture_output=True, text=True, check=False, timeout=seconds + 120,
        )
        sampler.stop.set()
        sampler.join()
        if wrk.returncode != 0 or "RESULT " not in wrk.stdout:
            print(wrk.stdout, wrk.stderr)
            raise SystemExit("wrk failed")
        result = json.loads(wrk.stdout.split("RESULT ", 1)[1].splitlines()[0])
        same, total = sample_check(port, bodies, handler)
        end_workers = workers_of(process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=70)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    gunicorn_log = log_path.read_text(errors="replace")
    shutil.rmtree(work, ignore_errors=True)

    socket_errors = result["connect"] + result["read"] + result["write"] + result["timeout"]
    invocations = sum(len(ToFunction.FromString(body).invocation.invocations) for body in bodies)
    invocations_per_request = invocations / len(bodies)
    rate = result["requests"] / (result["duration_us"] / 1e6)
    warm_until = seconds * WARM_UP_SHARE
    growth: Dict[int, int] = {}
    for pid in boot_workers:
        series = [(t, values[pid]) for t, values in sampler.samples if pid in values]
        after = [rss for t, rss in series if t >= warm_until]
        if after:
            growth[pid] = max(after) - after[0]
    restarted = boot_workers != end_workers
    problems = [
        name for name, failed in [
            ("non-2xx replies", result["status"] or result["non200"]),
            ("socket errors", socket_errors),
            ("wrong replies", result["wrong"] or same != total),
            ("every reply checked", result["checked"] < result["requests"]),
            ("a worker restarted", restarted),
            ("RSS not flat", any(g >= RSS_FLAT_LIMIT for g in growth.values())),
            ("errors in the gunicorn log", "Traceback" in gunicorn_log or "WORKER TIMEOUT" in gunicorn_log),
        ] if failed
    ]

    mib = 1024 * 1024
    lines = [
        "# Load test: gunicorn + statefun-wsgi under wrk",
        "",
        f"`python bench/load_test.py{' --quick' if args.quick else f' --seconds {seconds}'}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{cpu_model()}, "
        f"{os.cpu_count()} cores shared by the load generator and the server; Python {platform.python_version()}.",
        "",
        f"Server: `gunicorn -c gunicorn.conf.py app:wsgi` (the greeter) with `WEB_CONCURRENCY={WORKERS}`: "
        f"{WORKERS} gthread workers x 4 threads, keep-alive 75 s; access log "
        f"{'on' if args.access_log else 'off'}. Load: `wrk -t{args.threads} -c{args.connections} -d{seconds}s` "
        f"posting a mix of {len(bodies)} counter-like batches (greeter visits with their count in state, "
        "1 to 50 invocations; formatter replies to a caller; a reminder; one batch with a 64 KiB state) "
        "in turn on keep-alive connections.",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| requests | {result['requests']:,} in {result['duration_us'] / 1e6:.1f} s |",
        f"| requests/s | {rate:,.0f} ({rate * invocations_per_request:,.0f} invocations/s: "
        f"{invocations_per_request:.1f} per request on average) |",
        f"| latency p50 / p90 / p99 / p99.9 / max | {result['p50'] / 1000:.2f} / {result['p90'] / 1000:.2f} / "
        f"{result['p99'] / 1000:.2f} / {result['p999'] / 1000:.2f} / {result['max'] / 1000:.2f} ms |",
        f"| non-2xx replies | {result['status']} |",
        f"| socket errors (connect / read / write / timeout) | {result['connect']} / {result['read']} / "
        f"{result['write']} / {result['timeout']} |",
        f"| replies checked in wrk against the in-process handler | {result['checked']:,}, wrong: {result['wrong']} |",
        f"| sample afterwards, byte for byte over HTTP | {same} / {total} identical |",
        f"| workers restarted | {'yes' if restarted else 'none'} |",
        "",
        f"Worker resident memory (VmRSS, MiB), sampled every {interval:.0f} s; warm-up = the first "
        f"{WARM_UP_SHARE:.0%} ({warm_until:.0f} s):",
        "",
        "| t (s) | " + " | ".join(f"worker {n + 1}" for n in range(len(boot_workers))) + " |",
        "|---:|" + "---:|" * len(boot_workers),
    ]
    for t, values in sampler.samples:
        cells = [f"{values[pid] / mib:.1f}" if pid in values else "-" for pid in boot_workers]
        lines.append(f"| {t:.0f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Growth after warm-up (max minus first sample after it): "
        + ", ".join(f"worker {n + 1} {growth.get(pid, 0) / 1024:+.0f} KiB" for n, pid in enumerate(boot_workers))
        + f" (limit {RSS_FLAT_LIMIT // mib} MiB).",
        "",
        f"**Result: {'pass' if not problems else 'FAIL: ' + ', '.join(problems)}.**",
        "",
    ]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
