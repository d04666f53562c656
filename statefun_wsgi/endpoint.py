"""The endpoint core: one HTTP request in, one reply out, free of any web framework.

:class:`Endpoint` answers a request from four things, its method, ``Content-Type``,
``Content-Length`` and a stream to read the body from, with a :class:`Reply` (status,
headers, body). It imports no web framework and knows nothing of WSGI, ASGI or sockets:
the hosts translate to and from it, so every status decision lives here.

* :mod:`statefun_wsgi.wsgi` reads the request from a WSGI ``environ``
  (:func:`~statefun_wsgi.wsgi.respond_to_environ`: the server's body stream, chunked
  bodies, prompt TCP ACKs, the runtime's unix-socket path);
* :class:`statefun_wsgi.StatefunMiddleware` (WSGI) and
  :class:`statefun_wsgi.django.StatefunMiddleware` (Django, WSGI or ASGI) match the path
  and the listener, then call it;
* any other server can call :meth:`Endpoint.respond` itself.

Usage::

    endpoint = Endpoint(functions, max_body_size=32 * 1024 * 1024)
    reply = endpoint.respond("POST", "application/octet-stream", "1234", body_stream)
    reply.status, reply.headers, reply.body      # 200, [("Content-Type", ...), ...], b"..."
    reply.status_line                            # "200 OK"

Statuses follow how the StateFun runtime reacts: it retries 5xx, 408, 409, 420, 429
and 499 (with backoff, until the function's timeout), and fails the job at once on any
other 4xx. So a request that can never succeed gets a
4xx, and a failure that may pass on retry (a function raised) gets a 5xx.

=====  ===========================================================================
200    the batch ran; ``application/octet-stream`` body (a ``FromFunction``, in the
       request's protocol: 2.x or 3.x)
400    the body is not a ``ToFunction`` invocation batch, or it ended early
404    no function is bound to the target type
405    not a ``POST`` (``Allow: POST``)
411    no ``Content-Length``, and no stream to read to its end (``stream=None``: a WSGI
       server that gives neither a ``Content-Length`` nor a decoded chunked body)
413    the body is over ``max_body_size``
415    a ``Content-Type`` other than ``application/octet-stream`` / ``application/x-protobuf``;
       or a 2.x (3.x) request to an endpoint serving 3.x (2.x) only (``protocols``)
500    a function raised (the traceback goes to the ``statefun_wsgi`` logger)
503    the handler raised ``OverloadedError`` (a handler of your own, shedding load)
=====  ===========================================================================
"""

from __future__ import annotations

import inspect
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Callable, Dict, List, NamedTuple, Optional, Protocol, Tuple, Union

from .errors import (
    ConfigurationError,
    LengthRequiredError,
    MalformedRequestError,
    MethodNotAllowedError,
    RequestTooLargeError,
    StatefunError,
    UnsupportedMediaTypeError,
)
from .functions import StatefulFunctions, callees
from .handler import AsyncRequestReplyHandler, RequestReplyHandler
from .protocols import DEFAULT_PROTOCOLS, BatchTarget, ProtocolsSetting, batch_target

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_PATH", "BatchHandler", "Endpoint", "Readable", "Reply"]

logger = logging.getLogger("statefun_wsgi")

DEFAULT_PATH = "/statefun"
#: 32 MiB: a batch carries every registered state, so it can be far larger than one message.
DEFAULT_MAX_BODY_SIZE = 32 * 1024 * 1024

#: What the runtime sends (and what some proxies rewrite it to).
ACCEPTED_CONTENT_TYPES = frozenset({"application/octet-stream", "application/x-protobuf"})

#: What a 415 suggests to someone who posted a message by hand (curl, a JSON client).
SEND_BY_HAND = (
    "to send a function a message by hand, start `statefun-wsgi dev APP` (or `statefun-wsgi run`) and use "
    "`statefun-wsgi send NAMESPACE/TYPE/ID JSON`, which posts the JSON to its ingress"
)

Headers = List[Tuple[str, str]]
BatchHandler = Callable[[bytes], bytes]


class Readable(Protocol):
    """What :meth:`Endpoint.respond` reads a body from: ``read(size)`` returns up to ``size``
    bytes, ``b""`` at the end (a WSGI ``wsgi.input``, ``io.BytesIO``, Django's request)."""

    def read(self, size: int = ..., /) -> bytes: ...


#: The reason phrase of each status (werkzeug's table, written out so that it does not
#: vary with the werkzeug or Python release: Python 3.13 renamed 413, 416 and 422).
_STATUS_PHRASES: Dict[int, str] = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non Authoritative Information", 204: "No Content",
    205: "Reset Content", 206: "Partial Content", 207: "Multi Status", 208: "Already Reported", 226: "IM Used",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
    305: "Use Proxy", 306: "Switch Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request URI Too Long", 415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable", 417: "Expectation Failed", 418: "I'm a teapot",
    421: "Misdirected Request", 422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency",
    425: "Too Early", 426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 449: "Retry With", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported", 506: "Variant Also Negotiates",
    507: "Insufficient Storage", 508: "Loop Detected", 510: "Not Extended", 511: "Network Authentication Failed",
}

_STATUS_LINES = {code: f"{code} {phrase}" for code, phrase in _STATUS_PHRASES.items()}


_OCTET_STREAM = ("Content-Type", "application/octet-stream")

#: What ``Reply(...)`` does, minus the generated Python ``__new__`` frame (for the hot path).
_new_tuple = tuple.__new__

#: A body without a Content-Length is read this many bytes at a time.
_READ_CHUNK = 64 * 1024


class Reply(NamedTuple):
    """An HTTP reply: status code, headers, body."""

    status: int
    headers: Headers
    body: bytes

    @property
    def status_line(self) -> str:
        """``"200 OK"``: the status with its reason phrase (as WSGI's ``start_response`` wants it)."""
        line = _STATUS_LINES.get(self.status)
        return line if line is not None else f"{self.status} Unknown"


#: An error line is cut after this many characters: errors quote the request (a type
#: URL, a function type, an id), which a hostile request can make megabytes long.
MAX_ERROR_TEXT = 1000


def _error_text(error: StatefunError) -> str:
    """The error as one line of at most about MAX_ERROR_TEXT characters."""
    raw = str(error)
    text = " ".join(raw[: 2 * MAX_ERROR_TEXT].split()) or type(error).__name__
    if len(raw) > 2 * MAX_ERROR_TEXT or len(text) > MAX_ERROR_TEXT:
        text = f"{text[:MAX_ERROR_TEXT]}... (cut; {len(raw)} characters in all)"
    return text


def _error_reply(error: StatefunError) -> Reply:
    # One short line, never a traceback: the runtime logs it, people read it.
    text = _error_text(error)
    body = f"{error.status} {_STATUS_PHRASES.get(error.status, 'Error')}: {text}\n".encode("utf-8", "replace")
    headers: Headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if isinstance(error, MethodNotAllowedError):
        headers.append(("Allow", "POST"))
    return Reply(error.status, headers, body)


def as_handler(
    served: Union[StatefulFunctions, RequestReplyHandler, BatchHandler], protocols: Optional[ProtocolsSetting] = None
) -> BatchHandler:
    """A ``bytes -> bytes`` handler from what an endpoint serves (``served``): a registry or a handler.

    ``protocols`` (see :mod:`statefun_wsgi.protocols`) applies to a registry; a handler
    brings its own, so giving both is refused.

    Mistakes that would otherwise answer every batch with a 500 are refused here, at start-up:
    an ``async def`` function (a WSGI server runs plain ones), an AsyncRequestReplyHandler, and
    a callable that cannot take the request bytes (a bound function passed for its registry).
    """
    if isinstance(served, StatefulFunctions):
        _refuse_coroutine_functions(served)
        return RequestReplyHandler(served, protocols=DEFAULT_PROTOCOLS if protocols is None else protocols)
    if protocols is not None:
        raise ConfigurationError(
            f"protocols is a setting for a StatefulFunctions; pass it to the handler itself "
            f"(RequestReplyHandler(functions, protocols=...)), not beside {type(served).__name__}",
            setting="protocols",
        )
    if isinstance(served, RequestReplyHandler):
        _refuse_coroutine_functions(served.functions)
        return served
    if isinstance(served, AsyncRequestReplyHandler):  # callable, but returns a coroutine
        raise ConfigurationError(
            "an AsyncRequestReplyHandler cannot answer WSGI requests: a WSGI server runs plain (def) "
            "functions; pass their StatefulFunctions (or a RequestReplyHandler)"
        )
    if not callable(served):
        raise ConfigurationError(
            f"expected a StatefulFunctions or a RequestReplyHandler, got {type(served).__name__}"
        )
    if any(inspect.iscoroutinefunction(f) for f in callees(served)):
        raise ConfigurationError(
            f"{getattr(served, '__qualname__', served)!r} is an async handler: a WSGI server calls "
            "a plain one (bytes -> bytes)"
        )
    try:
        inspect.signature(served).bind(b"")
    except TypeError as exc:  # a handler is called with the request bytes alone
        raise ConfigurationError(
            f"expected a StatefulFunctions or a RequestReplyHandler, got {getattr(served, '__qualname__', served)!r}, "
            f"a callable that cannot be called with the request bytes alone ({exc}); a bound function "
            "is served through the StatefulFunctions it is bound in"
        ) from None
    except ValueError:  # no signature to read (some builtins): trust it
        pass
    return served


def _refuse_coroutine_functions(functions: StatefulFunctions) -> None:
    for function in functions:
        if function.is_coroutine:
            raise ConfigurationError(
                f"{function.typename} is an async def function, and a WSGI server runs plain (def) functions: "
                "make it a plain function (AsyncRequestReplyHandler serves async ones, from asyncio code)"
            )


class Endpoint:
    """Serves StateFun batches over HTTP, whatever the host framework.

    :param functions: a :class:`~statefun_wsgi.StatefulFunctions` registry, or a
        handler (``bytes -> bytes``) such as :class:`~statefun_wsgi.RequestReplyHandler`.
    :param max_body_size: the largest body accepted, in bytes. Checked against
        ``Content-Length`` before reading, and enforced while reading chunked bodies.
    :param protocols: the StateFun protocol versions served, in order of preference
        (:mod:`statefun_wsgi.protocols`): ``"2.x,3.x"`` (``None``: the default), ``"3.x,2.x"``,
        ``"2.x"``, ``"3.x"``. For a registry only (a handler brings its own).
    :param metrics: a :class:`~statefun_wsgi.metrics.Metrics` that counts every request
        answered (:meth:`_run_measured`, :meth:`_fail`), or ``None``: none, and no cost.

    Every failure is logged in one line naming the address (when the body names one), the
    status answered and the cause; a 5xx at ``ERROR`` with the function's traceback in the
    same record, a 4xx at ``WARNING``.
    """

    def __init__(
        self,
        functions: Union[StatefulFunctions, RequestReplyHandler, BatchHandler],
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        protocols: Optional[ProtocolsSetting] = None,
        metrics: Optional[Metrics] = None,
    ) -> None:
        if not isinstance(max_body_size, int) or isinstance(max_body_size, bool) or max_body_size <= 0:
            raise ConfigurationError(
                f"max_body_size must be a positive number of bytes, got {max_body_size!r}", setting="max_body_size"
            )
        self.handler = as_handler(functions, protocols)
        self.max_body_size = max_body_size
        self.metrics = metrics
        if metrics is not None:  # decided once: without metrics a batch runs the same code as before
            self._run = self._run_measured  # type: ignore[method-assign]
            # (a subclass with a __call__ of its own keeps it: _answer calls the handler)
            handler_call = type(self.handler).__call__
            if isinstance(self.handler, RequestReplyHandler) and handler_call is RequestReplyHandler.__call__:
                self._answer = self.handler.answer  # type: ignore[method-assign,assignment]

    def respond(
        self,
        method: str,
        content_type: Optional[str],
        content_length: Optional[str],
        stream: Optional[Readable],
    ) -> Reply:
        """Answer one request: the core's only entry point, whatever the host.

        :param method: the request method (``"POST"``; any other gets 405).
        :param content_type: the ``Content-Type`` header, or ``None`` when there is none.
        :param content_length: the ``Content-Length`` header as sent (a string, checked
            here), or ``None`` when there is none.
        :param stream: where the body is read from. With a ``content_length``, exactly that
            many bytes are read (a shorter body is a 400); without one, ``stream`` is read
            to its end (a chunked body the server decoded), and no further than one byte past
            ``max_body_size`` (413). ``None``: the body cannot be read, as from a WSGI server
            that gives neither a ``Content-Length`` nor a decoded chunked body (411).

        The headers are checked before the body is read (405, then 415, then 400 for a
        ``Content-Length`` that is not a number, then 413 by ``Content-Length``, then 411), so
        a request refused on its headers is never read::

            reply = endpoint.respond(request.method, content_type, content_length, request.stream)

        A stream that raises ``OSError`` or ``ValueError`` (the client left mid-body) gives a
        400, and so does one that raises an exception whose HTTP ``code`` is 400 (werkzeug's
        ``ClientDisconnected``); one whose ``code`` is 413 (werkzeug's ``RequestEntityTooLarge``,
        from a stream capped upstream) gives a 413.
        """
        if (  # what the runtime sends, answered without the checks' calls (a hot path)
            method == "POST"
            and (content_type == "application/octet-stream" or not content_type)
            and content_length is not None
            and content_length.isdigit()
            and content_length.isascii()
            and stream is not None
            and len(content_length) < 19  # int() of a longer one may be slow or refused; checked below
            and int(content_length) <= self.max_body_size
        ):
            return self._read_and_run(stream, content_length)
        try:
            self._check_headers(method, content_type, content_length)
            if stream is None:
                raise LengthRequiredError(
                    "the body needs a Content-Length (or chunked encoding on a server that decodes it)"
                )
        except StatefunError as error:
            return self._fail(error)
        return self._read_and_run(stream, content_length)

    def _read_and_run(self, stream: Readable, content_length: Optional[str]) -> Reply:
        expected = None if content_length is None else _byte_count(content_length)
        try:
            if expected is None:
                # One byte over the limit: reading to the end of a stream capped at exactly the
                # limit stops there silently, so a larger body would look complete.
                body = _read_to_end(stream, self.max_body_size + 1)
            else:
                body = _read_exactly(stream, expected)
        except (OSError, ValueError):  # the client left mid-body
            return self._fail(_ended_early(content_length))
        except Exception as exc:
            code = getattr(exc, "code", None)  # werkzeug's HTTPException, from a stream of its own
            if code == 413:
                return self._fail(self._too_large("the body"))
            if code == 400:
                return self._fail(_ended_early(content_length))
            raise
        if len(body) > self.max_body_size:
            return self._fail(self._too_large("the body"))
        if expected is not None and len(body) < expected:  # the stream ended early
            return self._fail(_ended_early(content_length))
        return self._run(body)

    def _check_headers(self, method: str, content_type: Optional[str], content_length: Optional[str]) -> None:
        if method != "POST":
            raise MethodNotAllowedError(f"{method} is not allowed here: StateFun sends batches with POST")
        if content_type and content_type != "application/octet-stream":  # that one is what the runtime sends
            media_type = content_type.split(";", 1)[0].strip().lower()
            if media_type not in ACCEPTED_CONTENT_TYPES:
                raise UnsupportedMediaTypeError(
                    f"Content-Type {content_type!r} is not application/octet-stream: this path takes the StateFun "
                    f"runtime's batches (serialized ToFunction) only; {SEND_BY_HAND}"
                )
        if content_length is not None:
            if not content_length.isdigit() or not content_length.isascii():
                raise MalformedRequestError(f"Content-Length {content_length!r} is not a number of bytes")
            if _byte_count(content_length) > self.max_body_size:
                shown = content_length if len(content_length) <= 40 else f"{content_length[:20]}... ({len(content_length)} digits)"
                raise self._too_large(f"the body of {shown} bytes")

    def _too_large(self, what: str) -> RequestTooLargeError:
        return RequestTooLargeError(
            f"{what} is larger than the limit of {self.max_body_size} bytes; raise it with max_body_size "
            "(StatefunMiddleware, Endpoint) or STATEFUN_MAX_BODY_SIZE (the Django middleware's setting), "
            "above your largest state plus a batch of messages"
        )

    def _run(self, body: bytes) -> Reply:
        try:
            reply = self.handler(body)
            length = str(len(reply))  # in the try: a handler of your own may return anything
        except StatefunError as error:
            return self._fail(error, body)
        except Exception as exc:
            return self._fail(_unexpected(exc), body)
        return _new_tuple(Reply, (200, [_OCTET_STREAM, ("Content-Length", length)], reply))

    def _run_measured(self, body: bytes) -> Reply:
        """:meth:`_run`, recording the batch in ``metrics`` (the endpoint's only place that
        records, with :meth:`_fail`; it replaces ``_run`` when the endpoint has metrics)."""
        started = perf_counter()
        try:
            reply, function_type, invocations = self._answer(body)
            length = str(len(reply))
        except StatefunError as error:
            return self._fail(error, body, started)
        except Exception as exc:
            return self._fail(_unexpected(exc), body, started)
        assert self.metrics is not None
        self.metrics.record(function_type, 200, invocations, perf_counter() - started, len(body), len(reply))
        return _new_tuple(Reply, (200, [_OCTET_STREAM, ("Content-Length", length)], reply))

    def _answer(self, body: bytes) -> Tuple[bytes, str, int]:
        """A handler of your own's reply, with the function type and invocations read from the
        request's bytes (a RequestReplyHandler's ``answer`` replaces this: it knows them)."""
        reply = self.handler(body)
        target = batch_target(body)
        return (reply, target.typename, target.invocations) if target else (reply, "unknown", 0)

    def _fail(self, error: StatefunError, body: Optional[bytes] = None, started: Optional[float] = None) -> Reply:
        """The error reply, logged in one line (and counted in ``metrics``): ``body``, when
        read, names the address; ``started`` is when the batch started running."""
        seconds = None if started is None else perf_counter() - started
        target = batch_target(body) if body else None
        where = _address_text(target)
        text = _error_text(error)
        if target is not None and text.startswith(where + " "):  # the handler's errors open with the address
            text = text[len(where) + 1:]
        if error.status >= 500:
            cause = error.__cause__
            exc_info = (type(cause), cause, cause.__traceback__) if cause else None
            logger.error("%s answered %s: %s", where, error.status, text, exc_info=exc_info)
        else:
            logger.warning("%s answered %s: %s", where, error.status, text)
        reply = _error_reply(error)
        if self.metrics is not None:
            self.metrics.record(
                self._function_type(target, error), error.status, 0,
                seconds, len(body) if body else 0, len(reply.body),
                error.__cause__ if error.status >= 500 and error.__cause__ is not None else None,
            )
        return reply

    def _function_type(self, target: Optional[BatchTarget], error: StatefunError) -> str:
        """A failed request's ``function_type`` label: a type this endpoint serves, else
        ``"unknown"`` (a label per type that anyone can name would grow without bound)."""
        if target is None:
            return "unknown"
        handler = self.handler
        if isinstance(handler, RequestReplyHandler):
            served = (target.namespace, target.type) in handler.functions.by_type
        else:  # a handler of your own: what it did not refuse as a bad request
            served = error.status >= 500
        return target.typename if served else "unknown"


def _address_text(target: Optional[BatchTarget]) -> str:
    """How a log line names the request: ``example/greeter (id 'alice')``, or ``a request``
    (on one line, and short: the request wrote these)."""
    if target is None or not (target.namespace or target.type):
        return "a request"
    typename = _short(target.typename)
    typename = typename if typename.isprintable() else repr(typename)
    return f"{typename} (id {_short(target.id)!r})"


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _unexpected(exc: Exception) -> StatefunError:
    error = _UnexpectedError("the request-reply handler failed unexpectedly; see the server log")
    error.__cause__ = exc
    return error


class _UnexpectedError(StatefunError):
    status = 500


def _ended_early(content_length: Optional[str]) -> MalformedRequestError:
    if content_length is None:
        return MalformedRequestError("the body ended early: the client stopped sending in the middle of it")
    return MalformedRequestError(f"the body ended before its Content-Length of {content_length} bytes")


def _byte_count(content_length: str) -> int:
    """A Content-Length of ASCII digits as a number; one too long for ``int()`` (Python refuses
    over 4,300 digits) counts as larger than any body, leading zeros aside."""
    digits = content_length.lstrip("0") or "0"
    return int(digits) if len(digits) < 19 else 1 << 64


def _read_exactly(stream: Readable, expected: int) -> bytes:
    """``expected`` bytes from ``stream``, or fewer if it ends first; never more."""
    body = stream.read(expected)
    while len(body) < expected:  # a short read: gather the rest, never past `expected`
        more = stream.read(expected - len(body))
        if not more:  # the stream ended early; the caller answers 400
            break
        body += more
    return body


def _read_to_end(stream: Readable, limit: int) -> bytes:
    """``stream`` to its end, but no more than ``limit`` bytes."""
    chunks = []
    size = 0
    while size < limit:
        data = stream.read(min(_READ_CHUNK, limit - size))
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


#: Names that moved to :mod:`statefun_wsgi.wsgi` (they read a WSGI environ, or serve the
#: hosts' path matching), still importable from here.
_MOVED_TO_WSGI = frozenset({"PROMPT_ACK_BODY_SIZE", "is_escaped_path_target", "raw_request_target",
                            "unix_socket_path_info"})


def __getattr__(name: str) -> object:
    if name in _MOVED_TO_WSGI:
        from . import wsgi

        return getattr(wsgi, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
