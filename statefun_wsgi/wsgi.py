"""The WSGI side of the endpoint: answer the request a WSGI ``environ`` describes.

The core (:class:`statefun_wsgi.endpoint.Endpoint`) answers from a method, a content
type, a content length and a stream; :func:`respond_to_environ` reads those from an
``environ``, with what only WSGI knows:

* the body is ``wsgi.input``, read to exactly ``CONTENT_LENGTH`` bytes; without a
  length, read to its end only where the server says it decoded a chunked body
  (``wsgi.input_terminated``), and otherwise refused with 411;
* a body over :data:`PROMPT_ACK_BODY_SIZE` bytes, or a chunked one, has its connection
  acknowledge promptly (``TCP_QUICKACK``) just before it is read, on the socket
  gunicorn (``gunicorn.socket``) or werkzeug's development server (``werkzeug.socket``)
  puts in the environ: why, in docs/hosting.md, "Batches over 8 KiB: prompt ACKs";
* the path the runtime asks for over a unix socket (:func:`unix_socket_path_info`,
  :func:`is_escaped_path_target`, :func:`raw_request_target`), which the WSGI middleware
  and the Django middleware both match.

:class:`statefun_wsgi.StatefunMiddleware` and, under WSGI,
:class:`statefun_wsgi.django.StatefunMiddleware` call it. A WSGI app of your own can too::

    from statefun_wsgi.endpoint import Endpoint
    from statefun_wsgi.wsgi import respond_to_environ

    endpoint = Endpoint(functions)

    def application(environ, start_response):
        reply = respond_to_environ(endpoint, environ)
        start_response(reply.status_line, reply.headers)
        return [reply.body]
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any, Mapping, Optional

from .endpoint import Endpoint, Readable, Reply

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["PROMPT_ACK_BODY_SIZE", "is_escaped_path_target", "raw_request_target", "respond_to_environ",
           "unix_socket_path_info"]

#: Bodies over this size get a prompt ACK. The runtime's HTTP client writes 8 KiB at a time,
#: headers included, so a body splits from about 8 KiB less its headers; 4 KiB leaves a margin.
PROMPT_ACK_BODY_SIZE = 4096

#: Linux's TCP_QUICKACK (None elsewhere): see _acknowledge_now.
_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def respond_to_environ(endpoint: Endpoint, environ: WSGIEnvironment) -> Reply:
    """Answer the request a WSGI ``environ`` describes with ``endpoint`` (its ``wsgi.input``
    is read): :meth:`Endpoint.respond <statefun_wsgi.endpoint.Endpoint.respond>`, given the
    request's method, ``CONTENT_TYPE``, ``CONTENT_LENGTH`` and body stream (see the module)."""
    method = environ.get("REQUEST_METHOD", "GET")
    content_type = environ.get("CONTENT_TYPE")
    content_length = environ.get("CONTENT_LENGTH") or None
    stream: Optional[Readable] = environ.get("wsgi.input")
    if content_length is None:
        if "wsgi.input_terminated" not in environ:
            stream = None  # where the body ends cannot be known: the core answers 411
        elif _TCP_QUICKACK is not None:  # a chunked body's size is not known yet: it may be large
            stream = _acknowledging(stream, environ)
    elif (
        3 < len(content_length) < 20  # 3 digits are under the size; 20 are over any limit (refused unread)
        and _TCP_QUICKACK is not None
        and content_length.isdigit()
        and content_length.isascii()
    ):
        length = int(content_length)
        if length > PROMPT_ACK_BODY_SIZE:
            if (  # what the runtime sends, which the core reads (its hot path): acknowledged at once
                method == "POST"
                and (content_type == "application/octet-stream" or not content_type)
                and length <= endpoint.max_body_size
            ):
                sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
                if sock is not None:
                    _acknowledge_now(sock)
            else:  # the core may refuse it unread: acknowledged if it is read
                stream = _acknowledging(stream, environ)
    return endpoint.respond(method, content_type, content_length, stream)


def _acknowledging(stream: Optional[Readable], environ: WSGIEnvironment) -> Optional[Readable]:
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if sock is None or stream is None:
        return stream
    return _PromptAckStream(stream, sock)


class _PromptAckStream:
    """``wsgi.input``, asking for a prompt ACK (:func:`_acknowledge_now`) just before its first
    read: so a request the endpoint refuses on its headers, unread, costs no system call."""

    __slots__ = ("_stream", "_socket")

    def __init__(self, stream: Readable, sock: Any) -> None:
        self._stream = stream
        self._socket = sock

    def read(self, size: int = -1, /) -> bytes:
        if self._socket is not None:
            _acknowledge_now(self._socket)
            self._socket = None
        return self._stream.read(size)


def _acknowledge_now(sock: Any) -> None:
    """Have the kernel acknowledge what ``sock``'s connection has received, now
    (``TCP_QUICKACK``), before reading a body the runtime writes in several pieces: each
    piece would otherwise wait for a delayed ACK of the one before (docs/hosting.md,
    "Batches over 8 KiB: prompt ACKs").

    A Unix socket, a wrapper that cannot, or any failure leaves things as they were: this
    is an optimisation, never a reason to fail a batch.
    """
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
