"""Prometheus metrics of the batches an endpoint answers (the ``metrics`` extra).

    pip install 'statefun-wsgi[metrics]'       # prometheus_client

Usage::

    wsgi = StatefunMiddleware(app, functions, metrics=True)   # records, and answers GET /metrics
    # gunicorn: STATEFUN_METRICS=1 gunicorn -c python:statefun_wsgi.gunicorn_conf app:wsgi
    #   (STATEFUN_METRICS=1 also turns them on in the middleware; the settings wire
    #    prometheus_client's multiprocess mode, so every worker's counts add up exactly)

    wsgi = StatefunMiddleware(app, functions, metrics=True, metrics_path=None)   # record only, and
    wsgi = DispatcherMiddleware(wsgi, {"/internal/metrics": make_metrics_app()})  # serve them anywhere

The metrics, each labelled by ``function_type`` (``"namespace/name"``; ``"unknown"`` for a
request that names no function this endpoint serves, or none at all):

=======================================  =========  ==================================================
``statefun_batches_total``               counter    requests on the functions path, by ``status``
                                                    answered (200, 400, 404, 500, ...)
``statefun_invocations_total``           counter    invocations of the batches that ran (200)
``statefun_batch_invocations``           histogram  invocations per batch that ran
``statefun_batch_duration_seconds``      histogram  time to answer a batch, from its body read to
                                                    its reply (any status; not the network)
``statefun_request_bytes_total``         counter    request bodies read
``statefun_reply_bytes_total``           counter    reply bodies written
``statefun_function_exceptions_total``   counter    exceptions functions raised, by ``exception``
                                                    (its class: ``ValueError``, ``myapp.errors.Declined``)
=======================================  =========  ==================================================

A batch that fails is retried by the runtime, so its invocations count in
``statefun_invocations_total`` once, when a try of it answers 200; a 3.x batch answered
with the states to declare ran nothing (it counts as a batch, not its invocations).

Under gunicorn every worker is a process with counts of its own: with prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which :mod:`statefun_wsgi.gunicorn_conf`
sets up with ``STATEFUN_METRICS=1``) each worker writes its counts to a file there, and a
scrape, answered by any worker, adds them all up; a worker that died leaves its file, so its
counts stay in the totals. Without that directory each scrape shows one worker's counts.

Recording costs the endpoint a few microseconds a batch (bench/results/serving-metrics.md);
off, nothing: the endpoint then runs the code it ran before metrics existed.
"""

from __future__ import annotations

import math
import os
import threading
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from .endpoint import Reply
from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_METRICS_PATH",
    "DURATION_BUCKETS",
    "INVOCATION_BUCKETS",
    "METRIC_NAMES",
    "UNKNOWN_FUNCTION_TYPE",
    "FunctionSummary",
    "Metrics",
    "default_metrics",
    "exception_label",
    "make_metrics_app",
    "metrics_from_setting",
    "metrics_reply",
    "summarize",
]

#: Where the middleware answers scrapes unless told otherwise (``metrics_path``).
DEFAULT_METRICS_PATH = "/metrics"

#: The ``function_type`` of a request that names no function the endpoint serves.
UNKNOWN_FUNCTION_TYPE = "unknown"

#: Seconds: a one-invocation batch takes tens of microseconds; the runtime gives up at 1 minute.
DURATION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                    1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Invocations per batch: one per busy address up to the runtime's backlog (~1,000 seen).
INVOCATION_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)

#: Every metric this module exports, as a scrape names its samples' families.
METRIC_NAMES = (
    "statefun_batches_total",
    "statefun_invocations_total",
    "statefun_batch_invocations",
    "statefun_batch_duration_seconds",
    "statefun_request_bytes_total",
    "statefun_reply_bytes_total",
    "statefun_function_exceptions_total",
)

_INSTALL_HINT = "metrics need prometheus_client: pip install 'statefun-wsgi[metrics]'"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(_INSTALL_HINT, setting="metrics") from None
    return prometheus_client


def multiprocess_dir() -> Optional[str]:
    """``PROMETHEUS_MULTIPROC_DIR``, where prometheus_client's multiprocess mode keeps each
    process's counts, or ``None`` (each process counts alone)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exception_label(error: BaseException) -> str:
    """The ``exception`` label of an error: its class, with its module unless a builtin."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class Metrics:
    """The metrics of the module docstring, in ``registry`` (prometheus_client's default
    registry when ``None``; its names can be registered there once per process, so use
    :func:`default_metrics` for that one).

    :meth:`record` is what the endpoint calls, once per request on its path. The children
    of each label set are looked up once and kept, so a batch costs one dict lookup and
    the writes of its values.
    """

    def __init__(self, registry: Optional[Any] = None) -> None:
        prometheus = _prometheus()
        if registry is None:
            registry = prometheus.REGISTRY
        self.registry = registry
        labels = ["function_type"]
        self.batches = prometheus.Counter(
            "statefun_batches", "Requests on the functions path, by the status answered",
            ["function_type", "status"], registry=registry)
        self.invocations = prometheus.Counter(
            "statefun_invocations", "Invocations of the batches that ran (answered 200)", labels, registry=registry)
        self.batch_invocations = prometheus.Histogram(
            "statefun_batch_invocations", "Invocations per batch that ran", labels,
            buckets=INVOCATION_BUCKETS, registry=registry)
        self.duration = prometheus.Histogram(
            "statefun_batch_duration_seconds", "Time to answer a batch, from its body read to its reply",
            labels, buckets=DURATION_BUCKETS, registry=registry)
        self.request_bytes = prometheus.Counter(
            "statefun_request_bytes", "Request bodies read, in bytes", labels, registry=registry)
        self.reply_bytes = prometheus.Counter(
            "statefun_reply_bytes", "Reply bodies written, in bytes", labels, registry=registry)
        self.exceptions = prometheus.Counter(
            "statefun_function_exceptions", "Exceptions raised by functions, by class",
            ["function_type", "exception"], registry=registry)
        # function_type -> the bound methods a batch calls; (function_type, status) -> batches' inc.
        self._per_type: Dict[str, Tuple[Any, Any, Any, Any, Any]] = {}
        self._per_status: Dict[Tuple[str, int], Any] = {}
        self._exposed: Optional[Any] = None

    def _children(self, function_type: str) -> Tuple[Any, Any, Any, Any, Any]:
        children = (
            self.invocations.labels(function_type).inc,
            self.batch_invocations.labels(function_type).observe,
            self.duration.labels(function_type).observe,
            self.request_bytes.labels(function_type).inc,
            self.reply_bytes.labels(function_type).inc,
        )
        self._per_type[function_type] = children
        return children

    def record(
        self,
        function_type: str,
        status: int,
        invocations: int,
        seconds: Optional[float],
        request_size: int,
        reply_size: int,
        exception: Optional[BaseException] = None,
    ) -> None:
        """Count one request answered ``status``: ``invocations`` ran (0: none ran), in
        ``seconds`` (``None``: refused before its body was read), ``exception`` raised by
        the function (or the handler) when the batch failed."""
        children = self._per_type.get(function_type) or self._children(function_type)
        batches = self._per_status.get((function_type, status))
        if batches is None:
            batches = self._per_status[(function_type, status)] = self.batches.labels(function_type, str(status)).inc
        batches()
        if invocations:
            children[0](invocations)
            children[1](invocations)
        if seconds is not None:
            children[2](seconds)
        if request_size:
            children[3](request_size)
        if reply_size:
            children[4](reply_size)
        if exception is not None:
            self.exceptions.labels(function_type, exception_label(exception)).inc()

    def exposition_registry(self) -> Any:
        """What a scrape reads: in multiprocess mode, every process's files (added up);
        else this object's registry."""
        if self._exposed is None:
            self._exposed = _collected_registry(self.registry)
        return self._exposed


def _collected_registry(registry: Any) -> Any:
    directory = multiprocess_dir()
    if directory is None:
        return registry
    prometheus = _prometheus()
    from prometheus_client import multiprocess

    collected = prometheus.CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=directory)  # reads the files at each scrape
    return collected


_DEFAULT: Optional[Metrics] = None
_DEFAULT_LOCK = threading.Lock()


def default_metrics() -> Metrics:
    """The :class:`Metrics` in prometheus_client's default registry, made on first use (one
    per process: every endpoint of the process counts there)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Metrics()
        return _DEFAULT


def _switch(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigurationError(f"{name}={os.environ[name]!r}: expected on or off (1/0, true/false, yes/no)",
                             setting="metrics")


MetricsSetting = Union[None, bool, Metrics]


def metrics_from_setting(setting: MetricsSetting) -> Optional[Metrics]:
    """The metrics a ``metrics`` setting asks for: ``True`` -> :func:`default_metrics`,
    ``False`` -> none, a :class:`Metrics` -> that one, ``None`` -> as the
    ``STATEFUN_METRICS`` environment variable says (on/off; unset: off)."""
    if setting is None:
        setting = _switch("STATEFUN_METRICS")
    if setting is True:
        return default_metrics()
    if setting is False:
        return None
    if isinstance(setting, Metrics):
        return setting
    raise ConfigurationError(f"metrics must be True, False or a Metrics, got {type(setting).__name__}",
                             setting="metrics")


def metrics_reply(method: str, accept: Optional[str] = None, metrics: Optional[Metrics] = None) -> Reply:
    """The reply to a scrape: ``GET`` (or ``HEAD``) gets the metrics in the text format
    ``accept`` asks for (Prometheus' or OpenMetrics); anything else gets 405.
    ``metrics`` names the registry (:func:`default_metrics` when ``None``)::

        reply = metrics_reply("GET", environ.get("HTTP_ACCEPT"))
        start_response(reply.status_line, reply.headers)
    """
    if method not in ("GET", "HEAD"):
        body = f"405 Method Not Allowed: {method} is not allowed here: scrape the metrics with GET\n".encode()
        return Reply(405, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                           ("Allow", "GET, HEAD")], body)
    _prometheus()
    from prometheus_client.exposition import choose_encoder

    registry = (metrics if metrics is not None else default_metrics()).exposition_registry()
    encoder, content_type = choose_encoder(accept or "")
    body = encoder(registry)
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    return Reply(200, headers, b"" if method == "HEAD" else body)


def make_metrics_app(metrics: Optional[Metrics] = None) -> WSGIApplication:
    """A WSGI app that answers every request with :func:`metrics_reply`: mount it on any path
    of your app (werkzeug's ``DispatcherMiddleware``, a Django URL through
    ``django.core.handlers``, a Flask route's view calling :func:`metrics_reply`)::

        app = DispatcherMiddleware(app, {"/internal/metrics": make_metrics_app()})
    """
    exposed = metrics if metrics is not None else default_metrics()

    def metrics_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        reply = metrics_reply(environ.get("REQUEST_METHOD", "GET"), environ.get("HTTP_ACCEPT"), exposed)
        start_response(reply.status_line, reply.headers)
        return [reply.body]

    return metrics_app


# -- the summary that ``statefun-wsgi dev`` prints --------------------------------------


class FunctionSummary(NamedTuple):
    """One function type's counts, from :func:`summarize`; times in seconds (``None``: no batch)."""

    function_type: str
    batches: int
    by_status: Dict[str, int]
    invocations: int
    p50: Optional[float]
    p99: Optional[float]

    def line(self) -> str:
        """``example/greeter: 4 batches (200: 3, 500: 1), 3 invocations, p50 0.21 ms, p99 1.9 ms``"""
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.by_status.items()))
        times = ", ".join(f"{name} {_milliseconds(value)}" for name, value in (("p50", self.p50), ("p99", self.p99))
                          if value is not None)
        plural = "" if self.batches == 1 else "es"
        text = f"{self.function_type}: {self.batches} batch{plural} ({statuses}), {self.invocations} invocations"
        return f"{text}, {times}" if times else text


def _milliseconds(seconds: float) -> str:
    value = seconds * 1000
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def quantile(q: float, buckets: List[Tuple[float, float]]) -> Optional[float]:
    """The ``q`` quantile from cumulative histogram buckets ``[(upper bound, count), ...]``,
    interpolated within its bucket as Prometheus' ``histogram_quantile`` does (the lowest
    bucket starts at 0; a quantile in the ``+Inf`` bucket is the highest finite bound)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def summarize(registry: Any) -> List[FunctionSummary]:
    """Per function type, what a registry (or a multiprocess directory's path) holds:
    batches by status, invocations, and p50/p99 of the time to answer. Types that served
    no batch are left out::

        for function in summarize(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
            print(function.line())
    """
    if isinstance(registry, (str, os.PathLike)):
        prometheus = _prometheus()
        from prometheus_client import multiprocess

        collected = prometheus.CollectorRegistry()
        multiprocess.MultiProcessCollector(collected, path=os.fspath(registry))
        registry = collected
    by_status: Dict[str, Dict[str, int]] = {}
    invocations: Dict[str, int] = {}
    buckets: Dict[str, List[Tuple[float, float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            function_type = sample.labels.get("function_type")
            if function_type is None:
                continue
            if sample.name == "statefun_batches_total":
                counts = by_status.setdefault(function_type, {})
                counts[sample.labels["status"]] = counts.get(sample.labels["status"], 0) + int(sample.value)
            elif sample.name == "statefun_invocations_total":
                invocations[function_type] = invocations.get(function_type, 0) + int(sample.value)
            elif sample.name == "statefun_batch_duration_seconds_bucket":
                buckets.setdefault(function_type, []).append((float(sample.labels["le"]), sample.value))
    return [
        FunctionSummary(function_type, sum(counts.values()), counts, invocations.get(function_type, 0),
                        quantile(0.5, buckets.get(function_type, [])), quantile(0.99, buckets.get(function_type, [])))
        for function_type, counts in sorted(by_status.items()) if sum(counts.values())
    ]
