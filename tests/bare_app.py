"""A WSGI app with nothing of statefun-wsgi in it: it answers every request with fixed
bytes, so a test can see how gunicorn writes a reply by itself."""

from __future__ import annotations

BODY = b"a reply body that gunicorn writes by itself\n"


def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))])
    return [BODY]
