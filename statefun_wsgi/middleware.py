"""WSGI middleware that serves StateFun functions on one path of any WSGI app.

Usage, with any framework (or none)::

    from statefun_wsgi import StatefunMiddleware

    app.wsgi_app = StatefunMiddleware(app.wsgi_app, functions)     # Flask
    application = StatefunMiddleware(get_wsgi_application(), functions)   # Django wsgi.py
    wsgi = StatefunMiddleware(None, functions)                      # functions only

    # gunicorn -c gunicorn.conf.py app:wsgi    (the app on :8000, the runtime's listener on :9000)

Point the runtime's ``module.yaml`` at ``http://<host>:9000/statefun``: the functions run
only for requests that arrive on the runtime's listener (``runtime_listeners``, else
``STATEFUN_RUNTIME_BIND``, which gunicorn.conf.py binds and sets); on the app's public
listener that path is the app's like any other. A unix socket works too:
``http+unix:///run/app.sock/statefun`` with ``--bind unix:/run/app.sock``. A StateFun 2.x
and a 3.x runtime can share the endpoint, each answered in its own protocol (``protocols``
below).

The middleware decides only which requests are batches (the path and the listener); it
reads them with :func:`statefun_wsgi.wsgi.respond_to_environ`, and the framework-free core,
:class:`statefun_wsgi.endpoint.Endpoint`, decides every reply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Union

from . import single_write
from .endpoint import DEFAULT_MAX_BODY_SIZE, DEFAULT_PATH, BatchHandler, Endpoint, Reply
from .errors import ConfigurationError
from .listeners import runtime_listeners_from, warn_every_listener
from .metrics import DEFAULT_METRICS_PATH, MetricsSetting, metrics_from_setting, metrics_reply
from .wsgi import is_escaped_path_target, raw_request_target, respond_to_environ, unix_socket_path_info

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .functions import StatefulFunctions
    from .handler import RequestReplyHandler
    from .protocols import ProtocolsSetting

__all__ = ["StatefunMiddleware", "checked_metrics_path"]

_NOT_FOUND = Reply(404, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "10")], b"Not Found\n")


class StatefunMiddleware:
    """Answer StateFun batches on ``path``; pass every other request to ``app`` untouched.

    :param app: the WSGI app to wrap, or ``None`` to serve functions only (every
        other path is then ``404``).
    :param functions: a :class:`~statefun_wsgi.StatefulFunctions` registry or a
        :class:`~statefun_wsgi.RequestReplyHandler`.
    :param path: the path (``PATH_INFO``, below whatever ``SCRIPT_NAME`` the server
        mounts the app at) that the runtime's ``module.yaml`` endpoint points to.
        Over a unix socket the runtime asks for it as one escaped segment
        (``http+unix:///run/app.sock/statefun`` is ``POST /%2Fstatefun``, decoded to
        ``PATH_INFO = "//statefun"``): that request is answered too, unless the server
        says (``RAW_URI`` / ``REQUEST_URI``) that the client wrote ``//statefun`` itself.
    :param max_body_size: the largest batch accepted, in bytes (default 32 MiB).
        Larger bodies get ``413``, which fails the Flink job: size it above your
        largest state plus a batch of messages.
    :param runtime_listeners: the listening sockets the StateFun runtime calls, in
        gunicorn's bind syntax (``["0.0.0.0:9000", "unix:/run/app/statefun.sock"]``, or
        one string split on commas and whitespace). ``path`` runs functions only for a
        request whose connection was accepted on one of them; on any other listener it
        reaches ``app`` as any other path does (``app``'s own 404; with ``app=None``,
        ours). Left out, ``STATEFUN_RUNTIME_BIND`` is read (gunicorn.conf.py binds it and
        sets it); when that is unset too, the functions answer on every listener, and the
        first batch logs a warning.
    :param protocols: the StateFun protocol versions served, in order of preference
        (see :mod:`statefun_wsgi.protocols`): ``"2.x,3.x"`` (the default: both; a
        request whose bytes cannot tell is answered in 2.x), ``"3.x,2.x"`` (both;
        such a request in 3.x), ``"2.x"`` or ``"3.x"`` (one only: a request of the
        other gets ``415``, which fails the job). For a registry only.
    :param metrics: Prometheus metrics of every batch (:mod:`statefun_wsgi.metrics`; the
        ``metrics`` extra): ``True`` (prometheus_client's default registry), a
        :class:`~statefun_wsgi.metrics.Metrics`, ``False``; ``None`` (the default) reads the
        ``STATEFUN_METRICS`` environment variable (on/off; unset: off), which
        :mod:`statefun_wsgi.gunicorn_conf` also reads to add up its workers' counts.
    :param metrics_path: where ``GET`` answers the metrics when they are on, on every
        listener (``/metrics``; ``None``: nowhere, mount
        :func:`~statefun_wsgi.metrics.make_metrics_app` yourself). The path is the
        middleware's, not ``app``'s.

    Requests on other paths reach ``app`` with the same ``environ`` and
    ``start_response``, and ``app``'s own iterable comes back to the server, so
    ``close()`` and ``wsgi.file_wrapper`` behave as without the middleware.

    The listener is told from the socket the server accepted the connection on
    (``gunicorn.socket``; ``werkzeug.socket`` under werkzeug's development server),
    never from ``Host``, ``SERVER_PORT`` or ``X-Forwarded-*``, which any client writes.
    A server that gives no socket cannot be told apart at construction (WSGI shows the
    app its server only in a request, and tools such as ``statefun-wsgi module-yaml
    check`` import the app outside any server), so the middleware is built all the
    same, and with ``runtime_listeners`` set it runs functions on no listener of such a
    server: the runtime gets the app's 404 (which fails its job at once) and the first
    such request logs an error naming the setting and the servers that work, rather
    than the functions answering everywhere.
    """

    def __init__(
        self,
        app: Optional[WSGIApplication],
        functions: Union[StatefulFunctions, RequestReplyHandler, BatchHandler],
        *,
        path: str = DEFAULT_PATH,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        runtime_listeners: Optional[Union[str, Sequence[str]]] = None,
        protocols: Optional[ProtocolsSetting] = None,
        metrics: MetricsSetting = None,
        metrics_path: Optional[str] = DEFAULT_METRICS_PATH,
    ) -> None:
        if app is not None and not callable(app):
            raise ConfigurationError(f"app must be a WSGI application or None, got {type(app).__name__}")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"path must start with '/', got {path!r}")
        self.app = app
        self.path = path
        self.unix_path_info = unix_socket_path_info(path)
        self.metrics = metrics_from_setting(metrics)
        #: Where scrapes are answered; ``None``: nowhere.
        self.metrics_path = (
            checked_metrics_path(metrics_path, path, "metrics_path") if self.metrics is not None else None
        )
        self.endpoint = Endpoint(functions, max_body_size=max_body_size, protocols=protocols, metrics=self.metrics)
        #: Where the runtime's requests are admitted; ``None``: every listener.
        self.runtime_listeners = runtime_listeners_from(runtime_listeners, "runtime_listeners")
        self._warned = False
        single_write.install_under_gunicorn()  # a killed worker never cuts a reply

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path_info = environ.get("PATH_INFO")
        on_path = path_info == self.path or (
            path_info == self.unix_path_info and is_escaped_path_target(raw_request_target(environ))
        )
        if not on_path or (
            self.runtime_listeners is not None and not self.runtime_listeners.admits(environ)
        ):
            if path_info == self.metrics_path and path_info is not None:
                reply = metrics_reply(environ.get("REQUEST_METHOD", "GET"), environ.get("HTTP_ACCEPT"), self.metrics)
                start_response(reply.status_line, reply.headers)
                return [reply.body]
            if self.app is not None:
                return self.app(environ, start_response)
            reply = _NOT_FOUND
        else:
            if self.runtime_listeners is None and not self._warned:
                self._warned = True
                warn_every_listener("runtime_listeners")
            reply = respond_to_environ(self.endpoint, environ)
        start_response(reply.status_line, reply.headers)
        return [reply.body]


def checked_metrics_path(metrics_path: Optional[str], path: str, setting: str) -> Optional[str]:
    """``metrics_path`` checked: ``None``, or a path other than the functions'."""
    if metrics_path is None:
        return None
    if not isinstance(metrics_path, str) or not metrics_path.startswith("/"):
        raise ConfigurationError(f"{setting} must start with '/' (or be None), got {metrics_path!r}", setting=setting)
    if metrics_path == path:
        raise ConfigurationError(f"{setting} {metrics_path!r} is the functions' path too", setting=setting)
    return metrics_path
