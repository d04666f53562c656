"""gunicorn settings we recommend for serving StateFun functions.

    gunicorn -c gunicorn.conf.py app:wsgi

Every setting can be overridden by an environment variable (named beside it) or
on the command line. The numbers follow the StateFun runtime's HTTP client (OkHttp):
it keeps pooled keep-alive connections (idle up to 1 minute) and waits for a batch
up to the function's ``timeout`` (1 minute by default) before retrying it.
"""

from __future__ import annotations

import multiprocessing
import os

import gunicorn


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def _switch(name: str, default: bool) -> bool:
    """An on/off variable: 1/0, true/false, yes/no, on/off (any case); unset or empty: ``default``."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={os.environ[name]!r}: expected on or off (1/0, true/false, yes/no)")


# Where the runtime's module.yaml endpoint points (http://<host>:8000/statefun).
bind = os.environ.get("STATEFUN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")

# A batch is CPU work in Python: one process per core uses every core with no GIL
# contention. (WEB_CONCURRENCY is the variable most platforms set.)
workers = _int("WEB_CONCURRENCY", multiprocessing.cpu_count())

# gthread keeps the runtime's pooled keep-alive connections open (the sync worker
# closes every connection after one request, so each batch would pay a new TCP
# handshake) and lets a worker hold many idle connections while it computes.
# Measured (bench/bench_gunicorn_settings.py, 2 workers, 16 keep-alive clients, medians):
# sync 5,389 req/s, gthread x1 7,678, gthread x4 8,905, gthread x16 8,220.
worker_class = os.environ.get("STATEFUN_WORKER_CLASS", "gthread")
threads = _int("STATEFUN_THREADS", 4)

# Longer than OkHttp's 1-minute idle time, so the runtime always closes an idle
# connection first and never writes a batch into one the server just dropped.
keepalive = _int("STATEFUN_KEEPALIVE", 75)

# A batch may legitimately run until the runtime's call timeout (1 minute by
# default); the runtime gives up on it after that and retries. Kill a worker only
# when it is stuck beyond that.
timeout = _int("STATEFUN_TIMEOUT", 70)

# On SIGTERM, let accepted batches finish: the runtime waits up to its call timeout.
graceful_timeout = _int("STATEFUN_GRACEFUL_TIMEOUT", 60)

# The runtime sends its batches over a handful of pooled keep-alive connections. On one
# shared listening socket, whichever worker wakes first accepts them, and often it takes
# them all: measured (bench/bench_gunicorn_settings.py), all 16 of wrk's connections landed
# on one of two workers in 3 rounds of 5, at 3,000 req/s instead of 8,900. With reuse_port
# each worker listens on its own SO_REUSEPORT socket (gunicorn 24+, Python 3.10+) and the
# kernel spreads connections across them. Older gunicorn sets the flag on the one shared
# socket, which spreads nothing, so there it stays off.
# The cost: a second server started on the same port by mistake shares it silently instead
# of failing with "address in use" (set STATEFUN_REUSE_PORT=0 to get that error back).
reuse_port = _switch("STATEFUN_REUSE_PORT", True) and gunicorn.version_info >= (24,)


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """reuse_port is for TCP: a Unix socket (--bind unix:PATH) cannot take SO_REUSEPORT."""
    if server.cfg.reuse_port and not all(isinstance(address, tuple) for address in server.cfg.address):
        server.cfg.set("reuse_port", False)


def when_ready(server) -> None:  # type: ignore[no-untyped-def]
    """Say where the workers listen: with reuse_port the arbiter binds nothing itself,
    so gunicorn's own "Listening at:" line names no address."""
    if server.cfg.reuse_port:
        for address in server.cfg.bind:
            server.log.info("Workers listen at: http://%s (reuse_port: one socket per worker)", address)


# Large states: glibc's adaptive malloc thresholds can make a worker hand a batch's megabytes
# back to the kernel after each request and fault them in again on the next (a 1 MiB state:
# ~1,000 minor faults a request). post_fork fixes the thresholds in each worker (mmap 32 MiB,
# trim 64 MiB: each heap keeps up to 64 MiB of freed memory for reuse) and caps the heaps its
# threads get at 2; measured over HTTP by bench/bench_large_state.py. A no-op off glibc.
# STATEFUN_TUNE_MALLOC=0 leaves glibc's defaults; MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_
# and MALLOC_ARENA_MAX in the environment win over it.
malloc_tuning = _switch("STATEFUN_TUNE_MALLOC", True)  # not a gunicorn setting: read by post_fork


def post_fork(server, worker) -> None:  # type: ignore[no-untyped-def]
    """In each worker, before it loads the app: fix glibc's malloc thresholds (see above)."""
    if malloc_tuning:
        from statefun_wsgi.malloc import tune_malloc

        applied = tune_malloc()
        server.log.debug("worker %s: malloc thresholds %s", worker.pid, applied or "left as they were")


# More pending connections than the default 2048 is pointless for one runtime;
# fewer drops bursts. Keep gunicorn's default.
backlog = _int("STATEFUN_BACKLOG", 2048)

# Batches carry state: no request line or header limits are relevant, but keep
# gunicorn's defaults for everything that reaches the port.
limit_request_line = 4094

# Logging: access log on stdout with latency in microseconds (%(D)s); errors on stderr.
accesslog = os.environ.get("STATEFUN_ACCESS_LOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("STATEFUN_LOG_LEVEL", "info")
access_log_format = os.environ.get(
    "STATEFUN_ACCESS_LOG_FORMAT", '%(h)s "%(r)s" %(s)s %(B)s %(D)sus'
)
if accesslog == "off":
    accesslog = None

# gunicorn 25+ opens a control socket at one fixed path (~/.gunicorn/gunicorn.ctl), so
# two servers on one host (an app and a dev runtime, tests, blue/green) collide on it.
# Off unless STATEFUN_CONTROL_SOCKET names a path. (Older gunicorn ignores these names.)
control_socket_disable = not os.environ.get("STATEFUN_CONTROL_SOCKET")
if os.environ.get("STATEFUN_CONTROL_SOCKET"):
    control_socket = os.environ["STATEFUN_CONTROL_SOCKET"]
