"""WSGI middleware that serves StateFun functions on one path of any WSGI app.

Usage, with any framework (or none)::

    from statefun_wsgi import StatefunMiddleware

    app.wsgi_app = StatefunMiddleware(app.wsgi_app, functions)     # Flask
    application = StatefunMiddleware(get_wsgi_application(), functions)   # Django wsgi.py
    wsgi = StatefunMiddleware(None, functions)                      # functions only

    # gunicorn -c gunicorn.conf.py app:wsgi

Point the runtime's ``module.yaml`` at ``http://<host>:<port>/statefun``: a StateFun
2.x and a 3.x runtime can share the endpoint, each answered in its own protocol
(``protocols`` below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Union

from .endpoint import DEFAULT_MAX_BODY_SIZE, DEFAULT_PATH, BatchHandler, Endpoint, Reply
from .errors import ConfigurationError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .functions import StatefulFunctions
    from .handler import RequestReplyHandler
    from .protocols import ProtocolsSetting

__all__ = ["StatefunMiddleware"]

_NOT_FOUND = Reply(404, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "10")], b"Not Found\n")


class StatefunMiddleware:
    """Answer StateFun batches on ``path``; pass every other request to ``app`` untouched.

    :param app: the WSGI app to wrap, or ``None`` to serve functions only (every
        other path is then ``404``).
    :param functions: a :class:`~statefun_wsgi.StatefulFunctions` registry or a
        :class:`~statefun_wsgi.RequestReplyHandler`.
    :param path: the path (``PATH_INFO``, below whatever ``SCRIPT_NAME`` the server
        mounts the app at) that the runtime's ``module.yaml`` endpoint points to.
    :param max_body_size: the largest batch accepted, in bytes (default 32 MiB).
        Larger bodies get ``413``, which fails the Flink job: size it above your
        largest state plus a batch of messages.
    :param protocols: the StateFun protocol versions served, in order of preference
        (see :mod:`statefun_wsgi.protocols`): ``"2.x,3.x"`` (the default: both; a
        request whose bytes cannot tell is answered in 2.x), ``"3.x,2.x"`` (both;
        such a request in 3.x), ``"2.x"`` or ``"3.x"`` (one only: a request of the
        other gets ``415``, which fails the job). For a registry only.

    Requests on other paths reach ``app`` with the same ``environ`` and
    ``start_response``, and ``app``'s own iterable comes back to the server, so
    ``close()`` and ``wsgi.file_wrapper`` behave as without the middleware.
    """

    def __init__(
        self,
        app: Optional[WSGIApplication],
        functions: Union[StatefulFunctions, RequestReplyHandler, BatchHandler],
        *,
        path: str = DEFAULT_PATH,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        protocols: Optional[ProtocolsSetting] = None,
    ) -> None:
        if app is not None and not callable(app):
            raise ConfigurationError(f"app must be a WSGI application or None, got {type(app).__name__}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"path must start with '/', got {path!r}")
        self.app = app
        self.path = path
        self.endpoint = Endpoint(functions, max_body_size=max_body_size, protocols=protocols)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path:
            if self.app is not None:
                return self.app(environ, start_response)
            reply = _NOT_FOUND
        else:
            reply = self.endpoint.respond_to_environ(environ)
        start_response(reply.status_line, reply.headers)
        return [reply.body]
