"""The app that tests/test_metrics_gunicorn.py serves under gunicorn with metrics on.

    STATEFUN_METRICS=1 gunicorn -c gunicorn.conf.py --pythonpath tests metrics_app:wsgi
    STATEFUN_METRICS=1 gunicorn -c gunicorn.conf.py --pythonpath tests metrics_app:django_wsgi

Three function types, each failing on purpose for an id that starts with ``fail``:
``metrics/counter`` and ``metrics/other`` (the 2.x API, served on ``/statefun`` to 2.x and
3.x requests alike) and ``metrics/v3`` (the official 3.3 API, ``statefun_wsgi.v3``, on
``/v3``). ``wsgi`` serves them with two StatefunMiddleware; ``django_wsgi`` with Django's
middleware (``metrics_django_settings``) on ``/statefun`` and ``/metrics``, inside a
StatefunMiddleware for ``/v3``. Both record in prometheus_client's default registry.
"""

from __future__ import annotations

import os
from typing import Any

from google.protobuf.wrappers_pb2 import StringValue

from statefun_wsgi import StatefulFunctions, StatefunMiddleware
from statefun_wsgi import v3

__all__ = ["DeclinedError", "functions", "v3_functions", "wsgi"]  # and django_wsgi, made on demand


class DeclinedError(Exception):
    """What ``metrics/other`` raises: an exception class of the app's own."""


functions = StatefulFunctions()


@functions.bind("metrics/counter")
def counter(context: Any, message: StringValue) -> None:
    if context.address.identity.startswith("fail"):
        raise ValueError(f"asked to fail: {message.value}")
    context.pack_and_send_egress("metrics/out", message)


@functions.bind("metrics/other")
def other(context: Any, message: StringValue) -> None:
    if context.address.identity.startswith("fail"):
        raise DeclinedError("asked to fail")


v3_functions = v3.StatefulFunctions()


@v3_functions.bind("metrics/v3")
def official(context: v3.Context, message: v3.Message) -> None:
    if context.address.id.startswith("fail"):
        raise RuntimeError("asked to fail")


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # one per live worker: child_exit must drop a dead one's
    from prometheus_client import Gauge

    Gauge("metrics_app_workers", "Live workers", multiprocess_mode="livesum").set(1)


def _site(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"ok\n"]


wsgi = StatefunMiddleware(StatefunMiddleware(_site, v3_functions, path="/v3", metrics=True, metrics_path=None),
                          functions, metrics=True)


def __getattr__(name: str) -> Any:
    if name == "django_wsgi":  # built on demand: it configures Django
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metrics_django_settings")
        from django.core.wsgi import get_wsgi_application

        return StatefunMiddleware(get_wsgi_application(), v3_functions, path="/v3", metrics=True, metrics_path=None)
    raise AttributeError(name)
