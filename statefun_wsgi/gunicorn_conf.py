"""gunicorn settings we recommend for serving StateFun functions, shipped in the package.

    gunicorn -c python:statefun_wsgi.gunicorn_conf app:wsgi    # wherever statefun-wsgi is installed
    gunicorn -c gunicorn.conf.py app:wsgi                      # the repository's file, which reads this one

Every setting can be overridden by an environment variable (named beside it) or
on the command line. To change one in a file of your own, import these and assign after::

    # my_gunicorn.conf.py (gunicorn -c my_gunicorn.conf.py app:wsgi)
    from statefun_wsgi.gunicorn_conf import *   # noqa: F401,F403 (settings and hooks)
    timeout = 120

(A module is imported once per process; a file that must read the environment anew each
time gunicorn reads it, on SIGHUP, runs this module instead: see the repository's
gunicorn.conf.py.)

 The numbers follow the StateFun runtime's HTTP client (OkHttp):
it keeps pooled keep-alive connections (idle up to 1 minute) and waits for a batch
up to the function's ``timeout`` (1 minute by default) before retrying it.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import shutil
import tempfile

import gunicorn


#: How errors and warnings name these settings.
_NAME = "statefun_wsgi.gunicorn_conf"


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


# Two listeners. The app's users reach STATEFUN_BIND (port 8000). The StateFun runtime
# reaches STATEFUN_RUNTIME_BIND (port 9000: module.yaml's endpoint is
# http://<host>:9000/statefun), the only listener where the functions path runs functions:
# the middleware reads the same variable, which this module sets when it is unset. On the
# public listener that path is the app's like any other. Keep port 9000 private (a Service
# port, a network and a NetworkPolicy only the runtime reaches: docs/hosting.md, Security).
# Either may list several binds, separated by commas; an empty STATEFUN_RUNTIME_BIND binds
# no runtime listener, and the functions then answer on every listener (with a warning).
# STATEFUN_SERVE picks which of the two this gunicorn binds: both (the default), public
# (the functions are served by another gunicorn, on STATEFUN_RUNTIME_BIND), or runtime (that
# other gunicorn; with STATEFUN_RUNTIME_CERTFILE, _KEYFILE and _CA_CERTS it requires the
# runtime's client certificate, and TLS stays off the public listener).
# A --bind on the command line replaces these binds: bind the runtime's listener there too,
# or this module (when STATEFUN_RUNTIME_BIND is unset) warns that the functions answer on every
# listener, or (when it is set) refuses to start.
def _binds(name: str, default: str) -> list:
    return os.environ.get(name, default).replace(",", " ").split()


_public_binds = _binds("STATEFUN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
_runtime_bind_set = "STATEFUN_RUNTIME_BIND" in os.environ
_runtime_binds = _binds("STATEFUN_RUNTIME_BIND", "0.0.0.0:9000")
_serve = os.environ.get("STATEFUN_SERVE", "").strip().lower() or "both"
if _serve not in ("both", "public", "runtime"):
    raise ValueError(f"STATEFUN_SERVE={os.environ['STATEFUN_SERVE']!r}: expected both, public or runtime")
if _serve != "both" and not _runtime_binds:
    raise ValueError(f"STATEFUN_SERVE={_serve} needs STATEFUN_RUNTIME_BIND: the listener the runtime calls")
bind = {"both": _public_binds + _runtime_binds, "public": _public_binds, "runtime": _runtime_binds}[_serve]
if not bind:
    raise ValueError("STATEFUN_BIND and STATEFUN_RUNTIME_BIND are both empty: nothing to listen on")
os.environ["STATEFUN_RUNTIME_BIND"] = ",".join(_runtime_binds)  # what the middleware reads

# Mutual TLS on the runtime's listener (the 3.2+ runtime's async transport presents a client
# certificate: trust_cacerts, client_cert, client_key in module.yaml). gunicorn's TLS applies
# to every listener it binds, so only a gunicorn with STATEFUN_SERVE=runtime takes these.
_runtime_tls = {
    name: os.environ.get(f"STATEFUN_RUNTIME_{name.upper()}", "") for name in ("certfile", "keyfile", "ca_certs")
}
if any(_runtime_tls.values()):
    if _serve != "runtime":
        raise ValueError(
            "STATEFUN_RUNTIME_CERTFILE/_KEYFILE/_CA_CERTS: gunicorn's TLS covers every listener it binds, the public "
            "one too; serve the runtime's listener from a gunicorn of its own (STATEFUN_SERVE=runtime)"
        )
    _missing = [f"STATEFUN_RUNTIME_{name.upper()}" for name, value in _runtime_tls.items() if not value]
    if _missing:
        raise ValueError(
            f"mutual TLS on the runtime's listener needs a certificate, its key and a CA: {', '.join(_missing)} unset"
        )
    import ssl as _ssl

    certfile, keyfile, ca_certs = _runtime_tls["certfile"], _runtime_tls["keyfile"], _runtime_tls["ca_certs"]
    cert_reqs = _ssl.CERT_REQUIRED  # no certificate signed by ca_certs: no connection

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


def _check_runtime_binds(server) -> None:  # type: ignore[no-untyped-def]
    """The runtime's listeners are bound here (STATEFUN_SERVE both or runtime) or not
    (public), whatever --bind did to the binds; none shares a port with a public one."""
    from statefun_wsgi.errors import ConfigurationError
    from statefun_wsgi.listeners import parse_listener

    def keys(texts: list) -> dict:
        found = {}
        for text in texts:
            try:
                item = parse_listener(text)
            except ConfigurationError:  # fd://N and the like: not ours to match
                continue
            found[(item.path, item.host, item.port)] = text
        return found

    runtime, bound = keys(_runtime_binds), keys(list(server.cfg.bind))
    public = {key: text for key, text in bound.items() if key not in runtime}
    for (_, host, port), text in runtime.items():
        for (_, other_host, other_port), other in public.items():
            if port and port == other_port and (host is None or other_host is None):
                raise RuntimeError(
                    f"{_NAME}: the runtime's listener {text} and the public {other} share port {port}"
                )
    if _serve == "public":
        here = [text for key, text in runtime.items() if key in bound]
        if here:
            raise RuntimeError(
                f"{_NAME}: STATEFUN_SERVE=public, but the runtime's listener {', '.join(here)} is bound here"
            )
        server.log.info(
            "The StateFun runtime's listener (%s) is another gunicorn's: no functions here", ", ".join(_runtime_binds)
        )
        return
    missing = [text for key, text in runtime.items() if key not in bound]
    if missing and (_runtime_bind_set or _serve == "runtime" or server.cfg.preload_app):
        raise RuntimeError(
            f"{_NAME}: the runtime's listener {', '.join(missing)} (STATEFUN_RUNTIME_BIND) is not bound: "
            "--bind on the command line replaces these settings' binds; bind it there too, or set STATEFUN_BIND instead"
        )
    if missing:  # this module's default, replaced by --bind: as with no runtime listener at all
        os.environ.pop("STATEFUN_RUNTIME_BIND", None)  # (imported once, a module reloads without setting it again)
        server.log.warning(
            "The StateFun runtime's listener %s is not bound (--bind replaced %s's binds): the functions "
            "answer on every listener. Bind it too, or set STATEFUN_BIND and STATEFUN_RUNTIME_BIND", ", ".join(missing), _NAME
        )
    elif runtime:
        server.log.info(
            "The StateFun runtime's listener: %s (the only one where functions run)", ", ".join(runtime.values())
        )


def on_reload(server) -> None:  # type: ignore[no-untyped-def]
    """On SIGHUP gunicorn reads its configuration again: check the binds again before new workers load the app."""
    _check_runtime_binds(server)


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """reuse_port is for TCP: a Unix socket (--bind unix:PATH) cannot take SO_REUSEPORT.
    With metrics, an earlier run's counts leave the multiprocess directory (see below)."""
    _check_runtime_binds(server)
    if statefun_metrics:
        _empty_metrics_dir(server)
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


# Prometheus metrics (statefun_wsgi.metrics; pip install 'statefun-wsgi[metrics]'). STATEFUN_METRICS=1
# turns them on in the middleware (which reads the same variable) and wires prometheus_client's
# multiprocess mode here, so that a scrape, answered by whichever worker, adds up every worker's counts:
# - PROMETHEUS_MULTIPROC_DIR is where each process writes its counts (a file per process and kind).
#   Set it to a directory of this gunicorn's own (an emptyDir in Kubernetes), or a fresh temporary
#   one is made. It is set here, before a worker imports prometheus_client, which reads it on import.
# - on_starting empties it: an earlier run's counts would add to this one's (SIGHUP keeps them).
# - child_exit: a dead worker's counters stay in the totals (its batches were answered); its live
#   gauges go (prometheus_client's mark_process_dead), as its replacement starts a file of its own.
# - on_exit removes the directory if it made it.
statefun_metrics = _switch("STATEFUN_METRICS", False)  # not a gunicorn setting: read by the hooks
_METRICS_DIR_PREFIX = "statefun-metrics-"
if statefun_metrics:
    if importlib.util.find_spec("prometheus_client") is None:
        raise ValueError("STATEFUN_METRICS=1 needs prometheus_client: pip install 'statefun-wsgi[metrics]'")
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=_METRICS_DIR_PREFIX)
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)


def _empty_metrics_dir(server) -> None:  # type: ignore[no-untyped-def]
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    for name in os.listdir(directory):
        if name.endswith(".db") or (name.startswith("statefun_") and name.endswith(".metrics")):
            os.remove(os.path.join(directory, name))
    server.log.info("Metrics: every worker's counts add up in %s (PROMETHEUS_MULTIPROC_DIR)", directory)


def child_exit(server, worker) -> None:  # type: ignore[no-untyped-def]
    """A worker exited (or was killed): its live gauges leave the metrics; its counts stay."""
    if statefun_metrics:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:  # type: ignore[no-untyped-def]
    """The multiprocess directory this module made goes with the server."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    made = os.path.join(tempfile.gettempdir(), _METRICS_DIR_PREFIX)
    if statefun_metrics and directory.startswith(made):
        shutil.rmtree(directory, ignore_errors=True)


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
