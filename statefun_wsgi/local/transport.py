"""How the local runtime reaches functions: in process, or over HTTP like the real
runtime (one POST per batch, pooled keep-alive connections).

A transport is a callable ``transport(function_spec, request_bytes) -> reply_bytes``
that raises :class:`TransportError`, retryable or not by the runtime's rules.

Both transports keep the function's timeouts as the 2.2.2 runtime's OkHttp client
does (``HttpFunctionProvider``): ``timeout`` bounds each attempt (the call timeout;
retries count against it too, see the runtime), ``connectTimeout``, ``writeTimeout``
and ``readTimeout`` bound each phase. An attempt that runs out of one is a retryable
failure even if the function ran: its reply is lost. In process, only the wait for
the reply exists: a call that takes longer than ``readTimeout`` (or ``timeout``) is
timed out, once it has returned (the retry schedule counts from when the runtime
would have given up; on a virtual clock, the clock moves to then). A 2xx whose body
cannot be read in full (cut short, reset, timed out) is not retried: the runtime
fails the job when the body does not parse.

A 3.x function whose ``transport`` is ``io.statefun.transports.v1/async`` (the 3.3
default, Netty) is called as that transport calls: every failure is retried until the
call timeout runs out (any non-2xx status, a 2xx whose body is cut short: a lost
connection, a wrong ``Content-Type``, a reply over ``payload_max_bytes``), and it has no
read or write timeout of its own
(the call timeout bounds the whole attempt). The ``okhttp`` transport keeps the rules
above.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from datetime import timedelta
from typing import Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import unquote, urlsplit

from ..errors import StatefunError
from ..module_yaml import FunctionSpec, format_duration

__all__ = [
    "RETRYABLE_STATUSES", "HttpTransport", "InProcessTransport", "Transport", "TransportError", "parse_unix_endpoint",
]

#: Statuses the runtime retries (with backoff, until the function's timeout); any
#: other 4xx fails the job at once. (Every 5xx is retried too.)
RETRYABLE_STATUSES = frozenset({408, 409, 420, 429, 499})

Transport = Callable[[FunctionSpec, bytes], bytes]


class TransportError(Exception):
    """A call that did not produce a usable reply. ``retryable`` follows the runtime;
    ``elapsed`` is how long the attempt took, in seconds, when that is part of the
    failure (a timeout): a virtual clock moves by it."""

    def __init__(self, reason: str, *, retryable: bool, elapsed: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.elapsed = elapsed


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


_ASYNC = "io.statefun.transports.v1/async"


def _retries_all(spec: FunctionSpec) -> bool:
    """The 3.x async transport retries every failure until its call timeout."""
    return spec.transport == _ASYNC


def _retryable(spec: FunctionSpec, status: int) -> bool:
    return _retries_all(spec) or is_retryable_status(status)


def _check_payload(spec: FunctionSpec, size: int) -> None:
    """The async transport's ``payload_max_bytes`` (Netty's HttpObjectAggregator): a longer
    reply fails the attempt, which is retried like any other failure."""
    limit = spec.payload_max_bytes
    if _retries_all(spec) and limit is not None and size > limit:
        raise TransportError(f"{spec.endpoint}: the reply's {size} bytes exceed payload_max_bytes {limit} "
                             "(retried by the async transport until its call timeout)", retryable=True)


def _reply_wait(spec: FunctionSpec) -> Tuple[str, float]:
    """The timeout that ends a silent wait for the reply: ``readTimeout``, or ``timeout``
    if that is shorter (the runtime's loader refuses that, a FunctionSpec may not)."""
    if spec.timeout < spec.read_timeout or _retries_all(spec):  # async: the call timeout alone
        return "timeout", spec.timeout.total_seconds()
    return "readTimeout", spec.read_timeout.total_seconds()


class InProcessTransport:
    """Calls a request-reply handler directly: no HTTP, same statuses, same timeouts.

    A call that takes longer than the function's ``readTimeout`` (or ``timeout``) is
    timed out as the runtime would time it out: its reply is dropped and the error is
    retryable, although the function ran (as it does under the real runtime).

    :param handler: ``bytes -> bytes``, e.g. ``RequestReplyHandler(functions)``.
    """

    def __init__(self, handler: Callable[[bytes], bytes]) -> None:
        self.handler = handler

    def __call__(self, spec: FunctionSpec, request: bytes) -> bytes:
        started = time.monotonic()
        failure: Optional[TransportError] = None
        reply = b""
        try:
            reply = self.handler(request)
        except StatefunError as error:
            failure = TransportError(f"{error.status}: {error}", retryable=_retryable(spec, error.status))
        except Exception as error:  # anything else is a server error: retried
            failure = TransportError(f"500: {type(error).__name__}: {error}", retryable=True)
        name, limit = _reply_wait(spec)
        if time.monotonic() - started > limit:  # the runtime gave up before the reply came
            raise TransportError(
                f"in-process: no reply within {name} {format_duration(timedelta(seconds=limit))}"
                " (the function ran; its reply is lost)",
                retryable=True,
                elapsed=limit,
            )
        if failure is not None:
            raise failure
        _check_payload(spec, len(reply))
        return reply


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        # The runtime's client is given the host name "unused" for a unix socket, and says
        # so in its Host header (port 80, the default, is left out): so do we.
        super().__init__(UNIX_SOCKET_HOST, timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


_Target = Tuple[str, str, Optional[int], str, str]  # scheme, host, port, unix socket, request target

#: The Host header of the runtime's requests over a unix socket.
UNIX_SOCKET_HOST = "unused"

#: What OkHttp (the runtime's HTTP client) escapes in a path segment, besides controls,
#: DEL, non-ASCII (as UTF-8) and "%" (HttpUrl.PATH_SEGMENT_ENCODE_SET, OkHttp 3.14).
_SEGMENT_ESCAPED = frozenset(' "<>^`{}|/\\?#%')


def _escape_segment(segment: str) -> str:
    """``segment`` as OkHttp writes one path segment: ``"/statefun"`` -> ``"%2Fstatefun"``."""
    out: List[str] = []
    for char in segment:
        if char in _SEGMENT_ESCAPED or not " " < char < "\x7f":
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def parse_unix_endpoint(endpoint: str) -> Tuple[str, str]:
    """``(socket file, request target)`` of an ``http+unix`` endpoint, as the runtime reads it.

    The runtime (2.2, UnixDomainHttpEndpoint) takes the URL's path alone (percent-escapes
    decoded; the host part, if any, is ignored), drops empty segments, and makes the socket
    file of the segments up to the first one that ENDS in ``.sock``. Everything after it
    becomes ONE path segment, its slashes escaped::

        >>> parse_unix_endpoint("http+unix:///run/app.sock/statefun")
        ('/run/app.sock', '/%2Fstatefun')
        >>> parse_unix_endpoint("http+unix:///run/my.socket.d/app.sock/fn/v2")
        ('/run/my.socket.d/app.sock', '/%2Ffn%2Fv2')
        >>> parse_unix_endpoint("http+unix:///run/app.sock")
        ('/run/app.sock', '/%2F')

    A server decodes that target to ``PATH_INFO = "//statefun"``: the middleware answers it
    on its path ``/statefun``. Raises ``ValueError`` when no segment ends in ``.sock`` (the
    runtime fails the job then), e.g. for ``http+unix://%2Frun%2Fapp.sock/statefun``, whose
    socket is in the host part.
    """
    names = [name for name in unquote(urlsplit(endpoint).path).split("/") if name]
    for index, name in enumerate(names):
        if name.endswith(".sock"):
            segment = "/" + "/".join(names[index + 1 :])
            return "/" + "/".join(names[: index + 1]), "/" + _escape_segment(segment)
    raise ValueError(
        f"{endpoint!r}: a unix endpoint's path names a socket file ending in .sock "
        "(the runtime reads the path alone, e.g. http+unix:///run/app.sock/statefun)"
    )


def _parse_endpoint(endpoint: str) -> _Target:
    parts = urlsplit(endpoint)
    scheme = parts.scheme
    if scheme in ("http+unix", "https+unix"):  # plain HTTP over the socket, https+unix too
        socket_path, target = parse_unix_endpoint(endpoint)
        return scheme, UNIX_SOCKET_HOST, None, socket_path, target
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.hostname or "localhost", parts.port, "", path


class HttpTransport:
    """POSTs batches to the function's endpoint, as the runtime does.

    Connections are kept alive and reused, one pool per thread. A reply counts
    only if the status is 2xx and the ``Content-Type`` is exactly
    ``application/octet-stream``; an empty body is a reply with no effects (the
    runtime reads it as an empty ``FromFunction``). Statuses are retried as the
    runtime retries them. Each phase has its own timeout (``connectTimeout``,
    ``writeTimeout``, ``readTimeout`` for every read), never beyond what is left of
    the attempt's ``timeout``.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._targets: Dict[str, _Target] = {}
        # Every open connection of every thread, so that close() reaches them all.
        self._lock = threading.Lock()
        self._open: Set[http.client.HTTPConnection] = set()

    def _connection(self, spec: FunctionSpec, target: _Target) -> http.client.HTTPConnection:
        pool: Dict[_Target, http.client.HTTPConnection] = self._local.__dict__.setdefault("pool", {})
        connection = pool.get(target)
        if connection is None:
            scheme, host, port, socket_path, _ = target
            timeout = spec.connect_timeout.total_seconds()  # each call sets its own, phase by phase
            if socket_path:
                connection = _UnixHTTPConnection(socket_path, timeout)
            elif scheme.startswith("https"):
                connection = http.client.HTTPSConnection(host, port, timeout=timeout)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            pool[target] = connection
            with self._lock:
                self._open.add(connection)
        return connection

    def _drop(self, target: _Target) -> None:
        connection = self._local.__dict__.get("pool", {}).pop(target, None)
        if connection is not None:
            with self._lock:
                self._open.discard(connection)
            connection.close()

    def close(self) -> None:
        """Close every connection this transport opened, in any thread (call it once
        no call is running, e.g. after the runtime's worker threads stopped)."""
        self._local.__dict__.pop("pool", None)
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    def __call__(self, spec: FunctionSpec, request: bytes) -> bytes:
        target = self._targets.get(spec.endpoint)
        if target is None:
            target = self._targets[spec.endpoint] = _parse_endpoint(spec.endpoint)
        connection = self._connection(spec, target)
        phase = _Phase(spec)
        try:
            if connection.sock is None:
                connection.timeout = phase.enter("connect", spec.connect_timeout)
                connection.connect()
            connection.sock.settimeout(phase.enter("write", spec.write_timeout))
            connection.request("POST", target[4], body=request, headers={"Content-Type": "application/octet-stream"})
            connection.sock.settimeout(phase.enter("read", spec.read_timeout))
            response = connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._drop(target)
            elapsed = phase.elapsed() if isinstance(exc, socket.timeout) else None
            raise TransportError(f"{spec.endpoint}: {phase.describe(exc)}", retryable=True, elapsed=elapsed) from exc
        status = response.status
        try:
            if connection.sock is not None:
                connection.sock.settimeout(phase.enter("read", spec.read_timeout))
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._drop(target)
            if not 200 <= status < 300:  # the status decides; the runtime does not read the body
                retryable = _retryable(spec, status)
                raise TransportError(f"{spec.endpoint} answered {status}", retryable=retryable) from exc
            if _retries_all(spec):  # Netty: the connection was lost before the whole reply came
                raise TransportError(
                    f"{spec.endpoint} answered {status}, but its body could not be read in full ({phase.describe(exc)})"
                    ": the async transport retries it as a lost connection",
                    retryable=True,
                ) from exc
            # OkHttp hands the 2xx to the runtime, whose parsing of the body then fails
            # ("unexpected end of stream"): the job fails, no retry.
            raise TransportError(
                f"{spec.endpoint} answered {status}, but its body could not be read in full ({phase.describe(exc)}):"
                " the runtime fails the job on a reply it cannot parse, without a retry",
                retryable=False,
            ) from exc
        if response.will_close:
            self._drop(target)
        _check_payload(spec, len(body))
        if not 200 <= status < 300:
            # One line, whole for our endpoint's error bodies (at most ~1 KB); longer ones cut at a space.
            text = " ".join(body[:2000].decode("utf-8", "replace").split())
            text = text if len(body) <= 2000 else text.rsplit(" ", 1)[0] + " ... (cut)"
            raise TransportError(f"{spec.endpoint} answered {status}: {text}", retryable=_retryable(spec, status))
        content_type = response.getheader("Content-Type")
        if _retries_all(spec):  # Netty compares the value ignoring case, and retries a mismatch
            if (content_type or "").lower() != "application/octet-stream":
                raise TransportError(f"{spec.endpoint} answered Content-Type {content_type!r}, not "
                                     "'application/octet-stream' (retried by the async transport)", retryable=True)
        elif content_type != "application/octet-stream":
            raise TransportError(
                f"{spec.endpoint} answered Content-Type {content_type!r}, not exactly 'application/octet-stream'",
                retryable=False,
            )
        return body


class _Phase:
    """One attempt's clock: each phase's socket timeout is its own, or what is left of
    the attempt's ``timeout`` (OkHttp's call timeout) if that is less."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + spec.timeout.total_seconds()
        self.call_timeout = spec.timeout
        self.name = "connect"
        self.limit = ""

    def enter(self, name: str, timeout: timedelta) -> float:
        self.name = name
        left = self.deadline - time.monotonic()
        if timeout.total_seconds() <= left:
            self.limit = f"{name}Timeout {format_duration(timeout)}"
            return timeout.total_seconds()
        self.limit = f"the call timeout ({format_duration(self.call_timeout)})"
        return max(left, 0.001)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, socket.timeout):
            return f"{self.name} timed out after {self.limit}"
        return f"{type(exc).__name__} on {self.name}: {exc}"
