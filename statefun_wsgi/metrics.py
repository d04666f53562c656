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
                                                    its reply (any status once the body is read;
                                                    not the network)
``statefun_request_bytes_total``         counter    request bodies read
``statefun_reply_bytes_total``           counter    reply bodies written
``statefun_function_exceptions_total``   counter    exceptions functions raised, by ``exception``
                                                    (its class: ``ValueError``, ``myapp.errors.Declined``)
=======================================  =========  ==================================================

A batch that fails is retried by the runtime, so its invocations count in
``statefun_invocations_total`` once, when a try of it answers 200; a 3.x batch answered
with the states to declare ran nothing (it counts as a batch, not its invocations).

Under gunicorn every worker is a process with counts of its own: in prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, which :mod:`statefun_wsgi.gunicorn_conf`
sets up with ``STATEFUN_METRICS=1``) each worker writes its counts to a file there
(``statefun_<pid>_<n>.metrics``, beside prometheus_client's ``*.db`` for your app's own metrics),
and a scrape, answered by any worker, adds them all up; a worker that died leaves its file,
so its counts stay in the totals. Without that directory each scrape shows one worker's counts.

A batch adds to one block of doubles per label set, under one lock, copied into the
process's file in one write (prometheus_client's Counter and Histogram would write eight
values one by one, each with a lock and a check of the pid: about 10% of a worker's CPU time
on a one-invocation batch, measured). Off, a batch pays no test for them: the endpoint chooses
its recording path once, when it is built (bench/results/serving-metrics.md).
"""

from __future__ import annotations

import glob
import itertools
import json
import logging
import math
import mmap
import os
import struct
import threading
import weakref
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from .endpoint import Reply
from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = [
    "DEFAULT_METRICS_PATH",
    "MetricsSetting",
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
    "multiprocess_dir",
    "quantile",
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

logger = logging.getLogger(__name__)

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


# -- the counts: one block of doubles per (function type, status) ---------------------------
#
# prometheus_client's Counter and Histogram write each value on its own (in multiprocess mode:
# a lock, a pid check and a write to a memory-mapped file per value, ~0.6 us each): eight
# values a batch cost a worker about 10% of its CPU on a one-invocation batch. Here a batch
# adds to one array of doubles per label set under one lock and, in multiprocess mode, copies
# it into this process's file in one write (~1-1.6 us in all, by machine load). The collector turns the blocks
# into the same counters and histograms; a scrape adds up every process's file.

_BATCHES, _INVOCATIONS, _REQUEST_BYTES, _REPLY_BYTES, _DURATION_SUM, _DURATION_COUNT, _RAN = range(7)
_DURATION_BUCKET = 7  # then one count per duration bucket, +Inf last
_INVOCATION_BUCKET = _DURATION_BUCKET + len(DURATION_BUCKETS) + 1  # then one per invocation bucket, +Inf last
_BLOCK = _INVOCATION_BUCKET + len(INVOCATION_BUCKETS) + 1

#: A file per process in PROMETHEUS_MULTIPROC_DIR (not *.db: prometheus_client's own collector reads those).
_FILE_PATTERN = "statefun_{pid}_{number}.metrics"
_FILE_NUMBERS = itertools.count()
_FILE_GLOB = "statefun_*.metrics"
_FORMAT = 1
_HEADER = struct.Struct("<II")  # bytes used, format
_ENTRY = struct.Struct("<II")  # key length, number of doubles
_INITIAL_SIZE = 1 << 16


class _Slot:
    __slots__ = ("values", "position")

    def __init__(self, size: int, position: int) -> None:
        self.values = array("d", bytes(8 * size))
        self.position = position  # in the file: where its doubles start (-1: no file)


class _ProcessFile:
    """This process's counts in PROMETHEUS_MULTIPROC_DIR: a header (bytes used, format), then
    entries (key length, number of doubles, the key as JSON padded to 8 bytes, the doubles),
    appended as label sets appear and rewritten in place. Readers read up to "used", which is
    written after an entry is complete."""

    def __init__(self, directory: str) -> None:
        # A name no file has yet (O_EXCL): never another Metrics' of this process, nor the file
        # a dead worker of the same pid left (its counts stay in the totals).
        pid, number = os.getpid(), next(_FILE_NUMBERS)
        while True:
            self.path = os.path.join(directory, _FILE_PATTERN.format(pid=pid, number=number))
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                number = next(_FILE_NUMBERS)
        self.capacity = _INITIAL_SIZE
        self.map = self._mapped(descriptor)
        self.used = _HEADER.size
        _HEADER.pack_into(self.map, 0, self.used, _FORMAT)

    def add(self, key: str, size: int) -> int:
        """Append an entry of ``size`` zero doubles; where they start."""
        encoded = key.encode("utf-8")
        padded = encoded + b" " * (-(len(encoded)) % 8)
        entry = _ENTRY.pack(len(encoded), size) + padded + bytes(8 * size)
        while self.used + len(entry) > self.capacity:
            self.capacity *= 2
            grown = self._mapped(os.open(self.path, os.O_RDWR))
            self.map.close()
            self.map = grown
        self.map[self.used:self.used + len(entry)] = entry
        self.used += len(entry)
        _HEADER.pack_into(self.map, 0, self.used, _FORMAT)
        return self.used - 8 * size

    def _mapped(self, descriptor: int) -> mmap.mmap:
        """The file at ``capacity`` bytes, mapped; the descriptor closed (the map is all we keep)."""
        try:
            os.ftruncate(descriptor, self.capacity)
            return mmap.mmap(descriptor, self.capacity)
        finally:
            os.close(descriptor)

    def close(self) -> None:
        self.map.close()


def _read_file(path: str) -> Iterable[Tuple[Tuple[Any, ...], array]]:
    """The (key, doubles) of one process's file; nothing for a file cut short or of another format."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_HEADER.size)
            if len(data) < _HEADER.size:
                return
            used, version = _HEADER.unpack_from(data, 0)
            data += handle.read(max(0, used - _HEADER.size))  # the used part only, not the file's capacity
    except OSError:
        return
    if version != _FORMAT:
        return
    end = min(used, len(data))
    position = _HEADER.size
    while position + _ENTRY.size <= end:
        key_length, size = _ENTRY.unpack_from(data, position)
        start = position + _ENTRY.size
        values_at = start + key_length + (-key_length % 8)
        position = values_at + 8 * size
        if position > end:  # an entry cut short: the rest is not there
            return
        try:
            key = tuple(json.loads(data[start:start + key_length].decode("utf-8")))
        except ValueError:  # (UnicodeDecodeError and JSONDecodeError included): not a file of ours
            return
        values = array("d")
        values.frombytes(data[values_at:position])
        yield key, values


class _Counts:
    """The label sets' blocks of this process, in memory and (multiprocess mode) in its file."""

    def __init__(self, directory: Optional[str]) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.slots: Dict[Tuple[Any, ...], _Slot] = {}
        self.file: Optional[_ProcessFile] = None
        self.failed = False  # the file could not be written: counts in memory
        if hasattr(os, "register_at_fork"):
            forked = weakref.WeakMethod(self._forked)
            os.register_at_fork(after_in_child=lambda: (forked() or (lambda: None))())

    def _forked(self) -> None:
        """In a child (gunicorn's preload_app makes the app before forking): counts of its own, from zero."""
        self.lock = threading.Lock()
        self.slots = {}
        self.failed = False
        self.file = None  # the parent's stays open in the parent; the child writes a file of its own

    def slot(self, key: Tuple[Any, ...], size: int) -> _Slot:
        """The block of ``key``, made on first use. Called with the lock held."""
        found = self.slots.get(key)
        if found is None:
            position = -1
            if self.directory is not None and not self.failed:
                try:
                    if self.file is None:
                        self.file = _ProcessFile(self.directory)
                    position = self.file.add(json.dumps(list(key)), size)
                except OSError as exc:  # metrics never fail a batch: this process counts in memory
                    self.failed = True
                    logger.error("metrics: cannot write this process's counts to %s (%s); they are counted in memory "
                                 "only, and scrapes miss them", self.directory, exc)
            found = self.slots[key] = _Slot(size, position)
        return found

    def blocks(self) -> Iterable[Tuple[Tuple[Any, ...], array]]:
        """Every process's blocks (multiprocess mode: every file), else this process's."""
        if self.directory is None:
            with self.lock:
                return [(key, array("d", slot.values)) for key, slot in self.slots.items()]
        return [block for path in sorted(glob.glob(os.path.join(self.directory, _FILE_GLOB)))
                for block in _read_file(path)]


def _collect(blocks: Iterable[Tuple[Tuple[Any, ...], array]]) -> List[Any]:
    """The metric families of the blocks, summed over processes (and statuses, per function type)."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    batches: Dict[Tuple[str, str], float] = {}
    per_type: Dict[str, array] = {}
    exceptions: Dict[Tuple[str, str], float] = {}
    for key, values in blocks:
        if key[0] == "batch" and len(values) == _BLOCK:
            labelled = (key[1], str(key[2]))
            batches[labelled] = batches.get(labelled, 0.0) + values[_BATCHES]
            total = per_type.get(key[1])
            if total is None:
                per_type[key[1]] = array("d", values)
            else:
                for index in range(_BLOCK):
                    total[index] += values[index]
        elif key[0] == "exception" and len(values) == 1:
            exceptions[(key[1], key[2])] = exceptions.get((key[1], key[2]), 0.0) + values[0]
    labels = ["function_type"]
    families: Dict[str, Any] = {
        "batches": CounterMetricFamily("statefun_batches", "Requests on the functions path, by the status answered",
                                       labels=["function_type", "status"]),
        "invocations": CounterMetricFamily("statefun_invocations", "Invocations of the batches that ran (answered 200)",
                                           labels=labels),
        "batch_invocations": HistogramMetricFamily("statefun_batch_invocations", "Invocations per batch that ran",
                                                   labels=labels),
        "duration": HistogramMetricFamily("statefun_batch_duration_seconds",
                                          "Time to answer a batch, from its body read to its reply", labels=labels),
        "request_bytes": CounterMetricFamily("statefun_request_bytes", "Request bodies read, in bytes", labels=labels),
        "reply_bytes": CounterMetricFamily("statefun_reply_bytes", "Reply bodies written, in bytes", labels=labels),
        "exceptions": CounterMetricFamily("statefun_function_exceptions", "Exceptions raised by functions, by class",
                                          labels=["function_type", "exception"]),
    }
    for (function_type, status), value in sorted(batches.items()):
        families["batches"].add_metric([function_type, status], value)
    for function_type, values in sorted(per_type.items()):
        families["invocations"].add_metric([function_type], values[_INVOCATIONS])
        families["request_bytes"].add_metric([function_type], values[_REQUEST_BYTES])
        families["reply_bytes"].add_metric([function_type], values[_REPLY_BYTES])
        families["batch_invocations"].add_metric(
            [function_type], _cumulative(INVOCATION_BUCKETS, values, _INVOCATION_BUCKET), values[_INVOCATIONS])
        families["duration"].add_metric(
            [function_type], _cumulative(DURATION_BUCKETS, values, _DURATION_BUCKET), values[_DURATION_SUM])
    for (function_type, exception), value in sorted(exceptions.items()):
        families["exceptions"].add_metric([function_type, exception], value)
    return list(families.values())


def _cumulative(bounds: Tuple[float, ...], values: array, first: int) -> List[Tuple[str, float]]:
    buckets, running = [], 0.0
    for index, bound in enumerate(bounds):
        running += values[first + index]
        buckets.append((_float_text(bound), running))
    buckets.append(("+Inf", running + values[first + len(bounds)]))
    return buckets


def _float_text(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(bound))


class _Collector:
    """A prometheus_client collector of :class:`Metrics`' counts (every process's, in multiprocess mode)."""

    def __init__(self, counts: _Counts) -> None:
        self.counts = counts

    def collect(self) -> Iterable[Any]:
        return _collect(self.counts.blocks())


class Metrics:
    """The metrics of the module docstring, collected into ``registry`` (prometheus_client's
    default registry when ``None``; its names can be registered there once per process, so
    use :func:`default_metrics` for that one).

    With ``PROMETHEUS_MULTIPROC_DIR`` set when it is made (gunicorn_conf sets it with
    ``STATEFUN_METRICS=1``), each process writes its counts to a file of its own there, and
    :meth:`exposition_registry` (what :func:`metrics_reply` serves) adds up every process's,
    beside prometheus_client's own multiprocess metrics (your app's).

    :meth:`record` is what the endpoint calls, once per request on its path.
    """

    def __init__(self, registry: Optional[Any] = None) -> None:
        prometheus = _prometheus()
        if registry is None:
            registry = prometheus.REGISTRY
        self.registry = registry
        directory = multiprocess_dir()
        if directory is not None and not (os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)):
            raise ConfigurationError(
                f"PROMETHEUS_MULTIPROC_DIR={directory!r} is not a writable directory: create it before the "
                "app starts (statefun_wsgi.gunicorn_conf does with STATEFUN_METRICS=1), or unset it",
                setting="PROMETHEUS_MULTIPROC_DIR",
            )
        self._counts = _Counts(directory)
        self._collector = _Collector(self._counts)
        registry.register(self._collector)
        self._exposed: Optional[Any] = None

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
        counts = self._counts
        with counts.lock:
            slot = counts.slots.get((_BATCH, function_type, status))
            if slot is None:
                slot = counts.slot((_BATCH, function_type, status), _BLOCK)
            values = slot.values
            values[_BATCHES] += 1
            if invocations:
                values[_INVOCATIONS] += invocations
                values[_RAN] += 1
                values[_INVOCATION_BUCKET + bisect_left(INVOCATION_BUCKETS, invocations)] += 1
            if seconds is not None:
                values[_DURATION_SUM] += seconds
                values[_DURATION_COUNT] += 1
                values[_DURATION_BUCKET + bisect_left(DURATION_BUCKETS, seconds)] += 1
            values[_REQUEST_BYTES] += request_size
            values[_REPLY_BYTES] += reply_size
            if slot.position >= 0:
                file = counts.file
                assert file is not None
                file.map[slot.position:slot.position + 8 * _BLOCK] = values  # one write: the whole block
            if exception is not None:
                raised = counts.slot(("exception", function_type, exception_label(exception)), 1)
                raised.values[0] += 1
                if raised.position >= 0:
                    file = counts.file
                    assert file is not None
                    file.map[raised.position:raised.position + 8] = raised.values

    def exposition_registry(self) -> Any:
        """What a scrape reads: in multiprocess mode, every process's counts (ours and
        prometheus_client's), added up; else this object's registry."""
        if self._exposed is None:
            directory = self._counts.directory
            if directory is None:
                self._exposed = self.registry
            else:
                prometheus = _prometheus()
                from prometheus_client import multiprocess

                collected = prometheus.CollectorRegistry()
                multiprocess.MultiProcessCollector(collected, path=directory)  # your app's metrics
                collected.register(self._collector)
                self._exposed = collected
        return self._exposed


_BATCH = "batch"


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
        invocations = f"{self.invocations} invocation{'' if self.invocations == 1 else 's'}"
        text = f"{self.function_type}: {self.batches} batch{plural} ({statuses}), {invocations}"
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
    families: Iterable[Any]
    if isinstance(registry, (str, os.PathLike)):
        _prometheus()
        families = _collect(_Counts(os.fspath(registry)).blocks())
    else:
        families = registry.collect()
    by_status: Dict[str, Dict[str, int]] = {}
    invocations: Dict[str, int] = {}
    buckets: Dict[str, List[Tuple[float, float]]] = {}
    for family in families:
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
