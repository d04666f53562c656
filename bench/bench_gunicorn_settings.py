"""Which gunicorn worker settings serve StateFun batches best (the numbers behind
gunicorn.conf.py's defaults).

Serves the one-invocation counter batch with our middleware under several worker
settings, interleaved, each driven by wrk over keep-alive connections as the
runtime's pooled OkHttp client does.

    python bench/bench_gunicorn_settings.py [--quick]

Writes bench/results/gunicorn-settings.md (gunicorn-settings-c<N>.md with --connections N).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import bench_serving  # noqa: E402

SETTINGS = {
    "sync (1 thread)": ["--worker-class", "sync", "--threads", "1", "--reuse-port"],
    "gthread, 1 thread": ["--worker-class", "gthread", "--threads", "1", "--reuse-port"],
    "gthread, 4 threads": ["--worker-class", "gthread", "--threads", "4", "--reuse-port"],
    "gthread, 16 threads": ["--worker-class", "gthread", "--threads", "16", "--reuse-port"],
    # One listening socket shared by the workers: whichever wakes first accepts a connection.
    "gthread, 4 threads, shared socket": ["--worker-class", "gthread", "--threads", "4"],
}
COMMON = ["-c", "/dev/null", "--workers", "2", "--keep-alive", "75", "--log-level", "warning",
          "--no-control-socket"]  # + --reuse-port, as gunicorn.conf.py, unless said otherwise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    seconds, rounds = (4, 2) if args.quick else (8, 5)
    bench_serving.raise_open_files_limit(args.connections + 256)  # wrk holds a descriptor per connection
    script = bench_serving.post_script(Path(tempfile.mkdtemp(prefix="bench-settings-")), bench_serving.counter_request())
    running = {}
    for name, flags in SETTINGS.items():
        bench_serving.GUNICORN_SETTINGS[:] = COMMON + flags
        running[name] = bench_serving.start(name, Path(sys.executable), "bench._serving_apps:ours",
                                            {"PYTHONPATH": str(HERE.parent)})
    results = bench_serving.run_rounds(running, script, rounds, seconds, args.connections)
    lines = [
        f"gunicorn {' '.join(COMMON)} + the settings below (each with --reuse-port but the shared socket); "
        f"wrk -t1 -c{args.connections} (keep-alive), "
        f"{rounds} rounds x {seconds} s, median; one-invocation counter batch",
        "",
        "| worker settings | req/s | lowest round | highest round | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        lines.append(
            f"| {name} | {statistics.median(r['rps'] for r in runs):.0f} | {min(r['rps'] for r in runs):.0f} | "
            f"{max(r['rps'] for r in runs):.0f} | "
            f"{statistics.median(r['p50_ms'] for r in runs):.2f} | {statistics.median(r['p99_ms'] for r in runs):.2f} | "
            f"{sum(r['non_2xx'] for r in runs)} |"
        )
    text = "\n".join(lines)
    print("\n" + text)
    (HERE / "results").mkdir(exist_ok=True)
    suffix = "" if args.connections == 16 else f"-c{args.connections}"
    (HERE / "results" / f"gunicorn-settings{suffix}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
