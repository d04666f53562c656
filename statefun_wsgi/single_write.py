"""Replies that leave a gunicorn worker in one write, so a killed worker never cuts one.

gunicorn writes a response in two ``sendall`` calls: the status line and headers,
then the body. A worker killed between the two (the OOM killer, a failing node,
Kubernetes at the end of a grace period) leaves the runtime a ``200`` with a
``Content-Length`` and no body. The StateFun runtime accepts the status, fails to
parse the body, and does not retry a parse failure: the Flink job fails and
restarts from its last checkpoint. A worker killed before any byte of the reply
leaves a reset connection instead, which the runtime retries: harmless.

:func:`install` makes gunicorn write the headers and the first body chunk (for a
StateFun reply: the whole body) with one ``sendall``, so a killed worker leaves
either the whole reply or a reset connection::

    from statefun_wsgi import single_write
    single_write.install()          # once per process; idempotent

You rarely call it yourself: :class:`~statefun_wsgi.StatefunMiddleware` and the
Django middleware call it when they are built under gunicorn, for every worker
class that writes through gunicorn's ``Response`` (sync, gthread, gevent,
eventlet, tornado's WSGI path). Every response of the app is written this way;
the bytes on the wire are the same, only the number of system calls changes
(one fewer per response).

What stays cut when a worker dies:

* a reply larger than the kernel's socket send buffer (what one ``sendall``
  can hand the kernel before it blocks: hundreds of KiB to a few MiB on Linux,
  growing with the connection's window): the kernel delivers what it holds, the
  rest is lost. Keep states well below that, or accept the restart.
* other servers: werkzeug's development server (the ingress of
  ``statefun-wsgi dev``, which is not in the runtime's path) and servers this
  project does not configure write as they do.
"""

from __future__ import annotations

import sys
from typing import Any, List

__all__ = ["install", "install_under_gunicorn", "is_installed"]


class _Gather:
    """Stands in for the client socket while gunicorn formats a reply: keeps what it sends."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: List[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(data)


def _single_write_response(base: Any) -> Any:
    class SingleWriteResponse(base):  # type: ignore[misc, valid-type]
        """gunicorn's ``Response`` whose first write sends the headers and that chunk together."""

        sock: Any  # gunicorn's: the client socket

        def write(self, arg: bytes) -> None:
            if self.headers_sent:
                super().write(arg)
                return
            # gunicorn's own write() formats the headers and frames the chunk (length
            # limit, chunked encoding, what this version does for HEAD/204/304): let it, into _Gather.
            sock = self.sock
            gathered = _Gather()
            self.sock = gathered
            try:
                super().write(arg)
            finally:
                self.sock = sock
            # If write() raised, nothing was sent: gunicorn closes the connection, and
            # the runtime sees a reset (retried) rather than headers without a body.
            sock.sendall(b"".join(gathered.parts))

    SingleWriteResponse.__qualname__ = SingleWriteResponse.__name__ = "SingleWriteResponse"
    SingleWriteResponse.__module__ = __name__
    return SingleWriteResponse


def install() -> bool:
    """Make gunicorn send each response's headers and first body chunk in one write.

    Returns ``False`` (and changes nothing) where gunicorn is not installed.
    Safe to call more than once and from any thread before serving starts.
    """
    try:
        from gunicorn.http import wsgi
    except ImportError:
        return False
    if not getattr(wsgi.Response, "_statefun_single_write", False):
        response = _single_write_response(wsgi.Response)
        response._statefun_single_write = True
        wsgi.Response = response  # wsgi.create() builds every HTTP/1 response from this name
    return True


def install_under_gunicorn() -> None:
    """:func:`install`, if this process runs gunicorn (its worker classes import
    ``gunicorn.http.wsgi`` before they load the app); otherwise nothing."""
    if "gunicorn.http.wsgi" in sys.modules:
        install()


def is_installed() -> bool:
    """Whether gunicorn in this process writes responses through :func:`install`'s class."""
    try:
        from gunicorn.http import wsgi
    except ImportError:
        return False
    return bool(getattr(wsgi.Response, "_statefun_single_write", False))
