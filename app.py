"""A plain WSGI app that serves a page and the greeter functions from one process.

    gunicorn -w 4 app:wsgi                       # reads ./gunicorn.conf.py: functions on http://127.0.0.1:9000/statefun
    gunicorn -c gunicorn.conf.py app:wsgi        # the configuration we recommend

Any WSGI app works the same: wrap it in StatefunMiddleware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from examples.greeter.functions import functions
from statefun_wsgi import StatefunMiddleware

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


def site(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """The app's own pages: here, one page that lists the functions served."""
    if environ.get("PATH_INFO") not in ("", "/"):
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"Not Found\n"]
    body = ("statefun-wsgi greeter example; functions at /statefun: " + ", ".join(functions.typenames) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]


wsgi = StatefunMiddleware(site, functions)
