"""Apps for tests/test_runtime_listener.py: a counter function that records every call.

    gunicorn -c gunicorn.conf.py --pythonpath tests listener_app:wsgi           # plain WSGI
    gunicorn -c gunicorn.conf.py --pythonpath tests listener_app:bare           # app=None
    gunicorn -c gunicorn.conf.py --pythonpath tests "listener_app:django_app()" # Django middleware

``test/counter`` appends one line, ``<id>``, to the file ``$LISTENER_RECORD`` every time it
runs (one ``write`` on an ``O_APPEND`` descriptor, so lines from several workers never
mix), and counts in its state ``count``. The site answers every path itself with a page
that names it (``site: ...``), a 404 for any path but ``/``, so a test tells the app's own
answer from the functions' at a glance.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

from google.protobuf.wrappers_pb2 import Int64Value

from statefun_wsgi import StatefulFunctions, StatefunMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["bare", "django_app", "functions", "site", "wsgi"]

functions = StatefulFunctions()


@functions.bind("test/counter", states=["count"])
def counter(context, message: Int64Value) -> None:
    descriptor = os.open(os.environ["LISTENER_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, f"{context.address.identity}\n".encode())
    finally:
        os.close(descriptor)
    count = context.state("count").unpack(Int64Value) or Int64Value()
    count.value += message.value
    context.state("count").pack(count)


def site(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The app's own pages: ``/`` answers 200, every other path 404, both marked ``site:``."""
    path = environ.get("PATH_INFO", "")
    status = "200 OK" if path in ("", "/") else "404 Not Found"
    body = f"site: {status[:3]} {environ.get('REQUEST_METHOD')} {path}\n".encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


wsgi = StatefunMiddleware(site, functions)
bare = StatefunMiddleware(None, functions)


def django_app():  # type: ignore[no-untyped-def]
    """The Django project of ``listener_django_settings`` (our middleware first in MIDDLEWARE)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "listener_django_settings")
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()
