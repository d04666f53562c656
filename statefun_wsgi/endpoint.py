"""The HTTP face of the request-reply handler, free of any web framework.

:class:`Endpoint` turns one request (method, content type, content length, body
stream) into one :class:`Reply` (status, headers, body). The WSGI middleware and the
Django middleware only translate to and from it, so every status decision lives here.

Usage::

    endpoint = Endpoint(functions, max_body_size=32 * 1024 * 1024)
    reply = endpoint.respond_to_environ(environ)    # from any WSGI environ
    start_response(reply.status_line, reply.headers)
    return [reply.body]

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
411    neither ``Content-Length`` nor a server-decoded chunked body
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
import socket
from time import perf_counter
from typing import IO, TYPE_CHECKING, Any, Callable, List, Mapping, NamedTuple, Optional, Tuple, Union, cast

from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import LimitedStream, get_input_stream

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
    from _typeshed.wsgi import WSGIEnvironment

    from .metrics import Metrics

__all__ = ["DEFAULT_MAX_BODY_SIZE", "DEFAULT_PATH", "Endpoint", "Reply", "is_escaped_path_target", "raw_request_target",
           "unix_socket_path_info"]

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


_STATUS_LINES = {code: f"{code} {phrase}" for code, phrase in HTTP_STATUS_CODES.items()}


_OCTET_STREAM = ("Content-Type", "application/octet-stream")

#: What ``Reply(...)`` does, minus the generated Python ``__new__`` frame (for the hot path).
_new_tuple = tuple.__new__


#: Linux's TCP_QUICKACK (None elsewhere): see _acknowledge_now.
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)

#: Bodies over this size get a prompt ACK. The runtime's HTTP client writes 8 KiB at a time,
#: headers included, so a body splits from about 8 KiB less its headers; 4 KiB leaves a margin.
PROMPT_ACK_BODY_SIZE = 4096


def _acknowledge_now(environ: WSGIEnvironment) -> None:
    """Have the kernel acknowledge what this request's connection has received, now
    (``TCP_QUICKACK``), before reading a body the runtime writes in several pieces: each
    piece would otherwise wait for a delayed ACK of the one before. Why, and what it
    measured: docs/hosting.md, "Batches over 8 KiB: prompt ACKs".

    The socket is the one gunicorn (or werkzeug's development server) puts in the
    environ; a Unix socket, another server, or any failure leaves things as they were:
    this is an optimisation, never a reason to fail a batch.
    """
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
        except Exception:  # not a TCP socket, or a wrapper that cannot
            pass


def unix_socket_path_info(path: str) -> str:
    """The ``PATH_INFO`` a server gives for the runtime's requests to ``path`` over a unix socket.

    For an endpoint ``http+unix:///run/app.sock/statefun`` the runtime (2.2, OkHttp) sends
    what follows the ``.sock`` segment as ONE path segment, its slashes escaped:
    ``POST /%2Fstatefun``, which servers decode to ``PATH_INFO = "//statefun"``. (Empty
    segments and a trailing slash are dropped first; the socket alone is ``/%2F``.)::

        unix_socket_path_info("/statefun")      # "//statefun"
        unix_socket_path_info("/fn/v2/")        # "//fn/v2"  (sent as /%2Ffn%2Fv2)
    """
    return "//" + "/".join(name for name in path.split("/") if name)


def is_escaped_path_target(target: Optional[str]) -> bool:
    """Whether a raw request target (``RAW_URI`` / ``REQUEST_URI``, as the client wrote it)
    is one escaped path segment, as the runtime writes it for a unix socket (``/%2Fstatefun``),
    rather than the same path with its slashes written out (``//statefun``).
    ``None`` (a server that does not give the raw target) cannot tell them apart: ``True``.
    """
    if target is None:
        return True
    path = target.partition("?")[0]
    if not path.startswith("/"):  # absolute form: http://unused/%2Fstatefun
        scheme_end = path.find("://")
        if scheme_end < 0:
            return False
        slash = path.find("/", scheme_end + 3)
        if slash < 0:
            return False
        path = path[slash:]
    return "/" not in path[1:]


def raw_request_target(environ: Mapping[str, Any]) -> Optional[str]:
    """The request target as the client wrote it, where the server says: ``RAW_URI``
    (gunicorn, werkzeug) or ``REQUEST_URI`` (uWSGI, waitress, mod_wsgi, werkzeug)."""
    target = environ.get("RAW_URI")
    if target is None:
        target = environ.get("REQUEST_URI")
    return target if isinstance(target, str) else None


class Reply(NamedTuple):
    """An HTTP reply: status code, headers, body."""

    status: int
    headers: Headers
    body: bytes

    @property
    def status_line(self) -> str:
        """``"200 OK"``: the status as WSGI's ``start_response`` wants it."""
        line = _STATUS_LINES.get(self.status)
        return line if line is not None else f"{self.status} {HTTP_STATUS_CODES.get(self.status, 'Unknown')}"


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
    body = f"{error.status} {HTTP_STATUS_CODES.get(error.status, 'Error')}: {text}\n".encode("utf-8", "replace")
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
            if isinstance(self.handler, RequestReplyHandler):
                self._answer = self.handler.answer  # type: ignore[method-assign,assignment]

    def respond(
        self,
        method: str,
        content_type: Optional[str],
        content_length: Optional[str],
        stream: IO[bytes],
    ) -> Reply:
        """Answer a request whose body is read from ``stream``.

        With a ``content_length``, exactly that many bytes are read; without one,
        ``stream`` is read to its end, and no further than one byte past ``max_body_size`` (413).
        :meth:`respond_to_environ` does the same from a WSGI ``environ``.
        """
        try:
            self._check_headers(method, content_type, content_length)
        except StatefunError as error:
            return self._fail(error)
        if content_length is None:
            stream = cast(IO[bytes], LimitedStream(stream, self.max_body_size + 1, is_max=True))
        return self._read_and_run(stream, content_length)

    def respond_to_environ(self, environ: WSGIEnvironment) -> Reply:
        """Answer the request a WSGI ``environ`` describes (its ``wsgi.input`` is read)."""
        method = environ.get("REQUEST_METHOD", "GET")
        content_type = environ.get("CONTENT_TYPE")
        content_length = environ.get("CONTENT_LENGTH") or None
        if (  # what the runtime sends, answered without the checks' calls (a hot path)
            method == "POST"
            and (content_type == "application/octet-stream" or not content_type)
            and content_length is not None
            and content_length.isdigit()
            and content_length.isascii()
        ):
            length = int(content_length)
            if length <= self.max_body_size:
                if length > PROMPT_ACK_BODY_SIZE and _TCP_QUICKACK is not None:
                    _acknowledge_now(environ)
                return self._read_and_run(environ["wsgi.input"], content_length)
        try:
            self._check_headers(method, content_type, content_length)
            if content_length is None and "wsgi.input_terminated" not in environ:
                raise LengthRequiredError(
                    "the body needs a Content-Length (or chunked encoding on a server that decodes it)"
                )
            # A chunked body's size is not known yet: it may be large.
            if _TCP_QUICKACK is not None and (content_length is None or int(content_length) > PROMPT_ACK_BODY_SIZE):
                _acknowledge_now(environ)
            if content_length is not None:
                # Exactly Content-Length bytes are read, never more (PEP 3333): the server's
                # stream needs no wrapper, and a hot path is spared werkzeug's (~10 us).
                return self._read_and_run(environ["wsgi.input"], content_length)
            try:
                # One byte over the limit: reading to the end of a stream capped at exactly the
                # limit stops there silently, so a larger body would look complete.
                stream = get_input_stream(environ, safe_fallback=False, max_content_length=self.max_body_size + 1)
            except RequestEntityTooLarge:
                raise self._too_large("the body") from None
        except StatefunError as error:
            return self._fail(error)
        return self._read_and_run(stream, content_length)

    def _read_and_run(self, stream: IO[bytes], content_length: Optional[str]) -> Reply:
        expected = None if content_length is None else int(content_length)
        try:
            body = _read_all(stream, expected)
        except RequestEntityTooLarge:
            body = None
        except (ClientDisconnected, OSError, ValueError):  # the client left mid-body
            return self._fail(_ended_early(content_length))
        if body is None or len(body) > self.max_body_size:
            return self._fail(self._too_large("the body"))
        if expected is not None and len(body) < expected:  # a stream the server terminates ended early
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
            if int(content_length) > self.max_body_size:
                raise self._too_large(f"the body of {content_length} bytes")

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
    return MalformedRequestError(f"the body ended before its Content-Length of {content_length} bytes")


def _read_all(stream: IO[bytes], expected: Optional[int]) -> bytes:
    if expected is None:
        return stream.read()
    body = stream.read(expected)
    while len(body) < expected:  # a short read: gather the rest, never past `expected`
        more = stream.read(expected - len(body))
        if not more:  # the stream ended early; the caller answers 400
            break
        body += more
    return body
