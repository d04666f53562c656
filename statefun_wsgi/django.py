"""Django middleware that serves StateFun functions on one path of a Django project.

The only module of statefun-wsgi that imports Django. In ``settings.py``::

    MIDDLEWARE = [
        "statefun_wsgi.django.StatefunMiddleware",   # first: before CSRF and the rest
        "django.middleware.security.SecurityMiddleware",
        ...
    ]
    STATEFUN_FUNCTIONS = "myproject.functions:functions"   # or "myproject.functions.functions"
    STATEFUN_PATH = "/statefun"                            # optional (over a unix socket the
                                                           # runtime's /%2Fstatefun is answered too)
    STATEFUN_MAX_BODY_SIZE = 32 * 1024 * 1024              # optional, bytes
    STATEFUN_RUNTIME_LISTENERS = ["0.0.0.0:9000"]          # optional: else $STATEFUN_RUNTIME_BIND
    STATEFUN_PROTOCOLS = "2.x,3.x"                         # optional: StateFun versions served
    STATEFUN_METRICS = True                                # optional: Prometheus metrics (else
                                                           # $STATEFUN_METRICS; pip install 'statefun-wsgi[metrics]')
    STATEFUN_METRICS_PATH = "/metrics"                     # optional: where GET answers them (None: nowhere)

It must come first in ``MIDDLEWARE``: it answers batches itself, so no later
middleware (CSRF, sessions, authentication) sees them. A middleware listed before it sees
every batch first, and some answer it themselves: ``CommonMiddleware`` answers a ``Host``
that is not in ``ALLOWED_HOSTS`` (the runtime's, ``greeter-app:9000``, rarely is) with a
400, ``SecurityMiddleware`` redirects to HTTPS, and the runtime fails the Flink job on
either. So Django's middlewares that answer requests before the view
(:data:`ANSWERING_MIDDLEWARE`, and subclasses) placed before it raise
``ImproperlyConfigured`` when Django builds the chain; any other middleware before it gets
a warning in the ``statefun_wsgi`` log, once, naming it. It reads the request stream
with its own limit, so ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB by default) does not
cap batches, whose states can be larger.

``STATEFUN_RUNTIME_LISTENERS`` (or, when it is not set, the ``STATEFUN_RUNTIME_BIND``
environment variable that gunicorn.conf.py binds and sets) names the listeners the
StateFun runtime calls, in gunicorn's bind syntax: batches are answered only on a
connection accepted on one of them, and on any other listener ``STATEFUN_PATH`` goes
down the middleware chain like any other path (Django's own 404). With neither, the
functions answer on every listener and the first batch logs a warning. Under ASGI, or a
WSGI server that gives no socket, ``STATEFUN_PATH`` runs no function (see
:class:`statefun_wsgi.StatefunMiddleware`).

``STATEFUN_METRICS`` and ``STATEFUN_METRICS_PATH`` are the ``metrics`` and ``metrics_path``
settings of :class:`statefun_wsgi.StatefunMiddleware` (:mod:`statefun_wsgi.metrics`): the
metrics path is answered before the rest of the chain, on every listener.

``STATEFUN_PROTOCOLS`` is the ``protocols`` setting of :mod:`statefun_wsgi.protocols`:
``"2.x,3.x"`` (the default), ``"3.x,2.x"``, ``"2.x"`` or ``"3.x"``.

Alternatively, wrap the WSGI application in ``wsgi.py`` with
:class:`statefun_wsgi.StatefunMiddleware`; both give the same replies, from the same core
(:meth:`statefun_wsgi.endpoint.Endpoint.respond`): under WSGI through
:func:`statefun_wsgi.wsgi.respond_to_environ`, as the WSGI middleware does; under ASGI with
the request as the body stream.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Union

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from . import single_write
from ._loading import load_object as _load_object
from .endpoint import DEFAULT_MAX_BODY_SIZE, DEFAULT_PATH, Endpoint, Reply
from .errors import ConfigurationError
from .functions import StatefulFunctions
from .handler import RequestReplyHandler
from .listeners import runtime_listeners_from, warn_every_listener
from .metrics import DEFAULT_METRICS_PATH, metrics_from_setting, metrics_reply
from .middleware import checked_metrics_path
from .wsgi import is_escaped_path_target, raw_request_target, respond_to_environ, unix_socket_path_info

__all__ = ["ANSWERING_MIDDLEWARE", "StatefunMiddleware", "load_object"]

logger = logging.getLogger("statefun_wsgi")

#: Django's middlewares that can answer a request before any view, and how: listed before
#: StatefunMiddleware, they answer the runtime's batches, and it fails the job on a 3xx or 4xx.
ANSWERING_MIDDLEWARE: Dict[str, str] = {
    "django.middleware.common.CommonMiddleware": (
        "answers a Host that is not in ALLOWED_HOSTS with a 400 (the runtime's Host need not be there), "
        "PREPEND_WWW with a 301 and DISALLOWED_USER_AGENTS with a 403"
    ),
    "django.middleware.security.SecurityMiddleware": "redirects to HTTPS with a 301 under SECURE_SSL_REDIRECT",
}


def load_object(dotted_path: str) -> Any:
    """Import ``"pkg.module:attr"`` or ``"pkg.module.attr"`` and return the attribute (an
    ``ImportError`` otherwise); the rules are those of the CLI's ``--app`` (a factory call,
    ``"pkg.module:make_functions()"``, too), less a bare module::

        load_object("myproject.functions:functions")
    """
    return _load_object(dotted_path, require_attribute=True)


def functions_from_settings(settings: Optional[Any] = None) -> Union[StatefulFunctions, RequestReplyHandler]:
    """What ``STATEFUN_FUNCTIONS`` names (``django.conf.settings`` by default): a
    StatefulFunctions or a RequestReplyHandler. Raises ``ImproperlyConfigured`` otherwise."""
    if settings is None:
        from django.conf import settings as django_settings

        settings = django_settings
    dotted_path = getattr(settings, "STATEFUN_FUNCTIONS", None)
    if not dotted_path or not isinstance(dotted_path, str):
        raise ImproperlyConfigured(
            "STATEFUN_FUNCTIONS must name your StatefulFunctions, e.g. 'myproject.functions:functions'"
        )
    try:
        functions = load_object(dotted_path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"STATEFUN_FUNCTIONS = {dotted_path!r} cannot be imported: {exc}") from exc
    # A bound function is callable too: catch that mix-up here, not as a 500 on every batch.
    if not isinstance(functions, (StatefulFunctions, RequestReplyHandler)):
        raise ImproperlyConfigured(
            f"STATEFUN_FUNCTIONS = {dotted_path!r} is a {type(functions).__name__}, "
            "not a StatefulFunctions (or a RequestReplyHandler)"
        )
    return functions


def functions_of_django_app(app: Any) -> Optional[Union[StatefulFunctions, RequestReplyHandler]]:
    """The registry a Django WSGI application serves through this module's middleware (what
    ``STATEFUN_FUNCTIONS`` names), or ``None`` when ``app`` is no such application. For tools
    given the app (``statefun-wsgi dev``); a wrong setting raises ``ConfigurationError``."""
    from django.core.handlers.base import BaseHandler

    if not isinstance(app, BaseHandler):
        return None
    from django.conf import settings

    if f"{__name__}.{StatefunMiddleware.__name__}" not in getattr(settings, "MIDDLEWARE", ()):
        return None
    try:
        return functions_from_settings(settings)
    except ImproperlyConfigured as exc:
        raise ConfigurationError(str(exc)) from None


#: Endpoint's arguments (ConfigurationError.setting) and the settings they are read from.
_SETTINGS = {
    "max_body_size": "STATEFUN_MAX_BODY_SIZE",
    "protocols": "STATEFUN_PROTOCOLS",
    "metrics": "STATEFUN_METRICS",
}


class StatefunMiddleware:
    """Answer StateFun batches on ``STATEFUN_PATH``; hand every other request on.

    :param get_response: the rest of the middleware chain, as Django passes it.
    :param settings: a settings object to read ``STATEFUN_*`` from (for tests);
        ``django.conf.settings`` by default. Read once, here.

    ``STATEFUN_RUNTIME_LISTENERS``: a list of gunicorn bind strings, or one string split
    on commas and whitespace; see the module's docstring.

    Raises ``ImproperlyConfigured`` for a missing or wrong setting.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse], settings: Optional[Any] = None) -> None:
        if settings is None:
            from django.conf import settings as django_settings

            settings = django_settings
        self.get_response = get_response
        functions = functions_from_settings(settings)
        self.path = getattr(settings, "STATEFUN_PATH", DEFAULT_PATH)
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise ImproperlyConfigured(f"STATEFUN_PATH must start with '/', got {self.path!r}")
        self.unix_path_info = unix_socket_path_info(self.path)
        max_body_size = getattr(settings, "STATEFUN_MAX_BODY_SIZE", DEFAULT_MAX_BODY_SIZE)
        protocols = getattr(settings, "STATEFUN_PROTOCOLS", None)
        try:
            self.metrics_path = checked_metrics_path(
                getattr(settings, "STATEFUN_METRICS_PATH", DEFAULT_METRICS_PATH), self.path, "STATEFUN_METRICS_PATH")
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        try:
            self.metrics = metrics_from_setting(getattr(settings, "STATEFUN_METRICS", None))
            if self.metrics is None:
                self.metrics_path = None
            self.endpoint = Endpoint(functions, max_body_size=max_body_size, protocols=protocols, metrics=self.metrics)
        except ConfigurationError as exc:  # the argument at fault, named as the setting it came from
            setting = _SETTINGS.get(exc.setting or "", "STATEFUN_FUNCTIONS")
            raise ImproperlyConfigured(f"{setting}: {exc}") from exc
        listeners = getattr(settings, "STATEFUN_RUNTIME_LISTENERS", None)
        try:
            self.runtime_listeners = runtime_listeners_from(listeners, "STATEFUN_RUNTIME_LISTENERS")
        except ConfigurationError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
        self._warned = False
        _check_position(getattr(settings, "MIDDLEWARE", None))
        single_write.install_under_gunicorn()  # a killed worker never cuts a reply

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path_info = request.path_info
        if path_info != self.path and not (
            path_info == self.unix_path_info and is_escaped_path_target(_raw_target(request))
        ):
            if path_info == self.metrics_path:
                return _response(metrics_reply(request.method or "GET", request.META.get("HTTP_ACCEPT"), self.metrics))
            return self.get_response(request)
        meta = request.META
        if self.runtime_listeners is None:
            if not self._warned:
                self._warned = True
                warn_every_listener("STATEFUN_RUNTIME_LISTENERS")
        elif not self.runtime_listeners.admits(meta):  # not the runtime's listener: Django's, as any path
            return self.get_response(request)
        if "wsgi.input" in meta:  # WSGI: read the server's stream, not Django's capped body
            reply = respond_to_environ(self.endpoint, meta)
        else:  # ASGI: Django has spooled the body; read it through the request
            reply = self.endpoint.respond(
                request.method or "GET", meta.get("CONTENT_TYPE"), meta.get("CONTENT_LENGTH") or None, request
            )
        return _response(reply)


def _response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status)
    for name, value in reply.headers:
        response[name] = value
    return response


_OURS = f"{__name__}.{StatefunMiddleware.__name__}"


def _middleware_class(entry: str) -> Optional[type]:
    try:
        found = load_object(entry)
    except Exception:  # Django reports a bad entry itself, right after
        return None
    return found if isinstance(found, type) else None


def _check_position(middleware: Any) -> None:
    """Refuse a middleware of ANSWERING_MIDDLEWARE (or a subclass) before this one in
    ``MIDDLEWARE``, and log a warning for any other: see the module's docstring."""
    if not isinstance(middleware, (list, tuple)):
        return
    entries = [entry for entry in middleware if isinstance(entry, str)]
    classes = {entry: _middleware_class(entry) for entry in entries}

    def is_a(entry: str, base: Optional[type]) -> bool:
        cls = classes[entry]
        return cls is not None and base is not None and issubclass(cls, base)

    position = next((index for index, entry in enumerate(entries) if entry == _OURS or is_a(entry, StatefunMiddleware)),
                    None)
    if not position:  # first, or not listed (built by hand)
        return
    before = entries[:position]
    answering = {name: _middleware_class(name) for name in ANSWERING_MIDDLEWARE}
    for entry in before:
        for name, how in ANSWERING_MIDDLEWARE.items():
            if entry == name or is_a(entry, answering[name]):
                raise ImproperlyConfigured(
                    f"MIDDLEWARE: {entries[position]} comes after {entry}, which {how}: the StateFun runtime's "
                    f"batches would get that answer and its job fail; list {entries[position]} first"
                )
    logger.warning(
        "MIDDLEWARE: %s is not first: %s run%s before it and may answer or alter the StateFun runtime's batches "
        "(the runtime fails its job on a 3xx or 4xx); list it first",
        entries[position], ", ".join(before), "s" if len(before) == 1 else "",
    )


def _raw_target(request: HttpRequest) -> Optional[str]:
    """The request target as the client wrote it: from the WSGI environ, or the ASGI scope's
    ``raw_path`` (``None`` where neither says)."""
    target = raw_request_target(request.META)
    if target is None:
        raw_path = getattr(request, "scope", {}).get("raw_path")
        if isinstance(raw_path, bytes):
            target = raw_path.decode("latin-1")
    return target
