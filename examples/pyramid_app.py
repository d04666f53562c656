"""A Pyramid app that serves its own pages and the greeter functions from one process.

    gunicorn examples.pyramid_app:app                        # from the repository root
    gunicorn -c gunicorn.conf.py examples.pyramid_app:app    # the configuration we recommend

The runtime's module.yaml points at ``http://<host>:9000/statefun`` (gunicorn.conf.py's runtime listener); every other
path is Pyramid's, as usual.
"""

from __future__ import annotations

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from examples.greeter.functions import functions
from statefun_wsgi import StatefunMiddleware


def index(request: Request) -> dict:
    """The app's own page: what it serves."""
    return {"app": "pyramid", "functions": functions.typenames, "endpoint": "/statefun"}


def hello(request: Request) -> Response:
    return Response(f"Hello {request.matchdict['name']}, from Pyramid.\n", content_type="text/plain")


def make_app():
    """The Pyramid app wrapped in StatefunMiddleware."""
    with Configurator() as config:
        config.add_route("index", "/")
        config.add_view(index, route_name="index", renderer="json", request_method="GET")
        config.add_route("hello", "/hello/{name}")
        config.add_view(hello, route_name="hello", request_method="GET")
        pyramid_app = config.make_wsgi_app()
    return StatefunMiddleware(pyramid_app, functions)


app = make_app()
