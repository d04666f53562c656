"""tests/e2e/official33_app.py (a counter written for the official StateFun 3.3 SDK), unchanged,
running on statefun_wsgi.v3 in the project's virtualenv (protobuf 4+)::

    python -m gunicorn --worker-class gthread --threads 4 tests.e2e.v3api_app:app    # its own WSGI app, handle_sync
    python -m gunicorn --worker-class gthread --threads 4 tests.e2e.v3api_app:wsgi   # StatefunMiddleware, /statefun

The module names the official app imports (``statefun``, ``statefun.request_reply_pb2``,
``statefun.types_pb2``) are this package's equivalents: the one-import-line migration, done
from outside so that the app's file stays the official SDK's.
"""

from __future__ import annotations

import sys

import statefun_wsgi.v3
from statefun_wsgi import StatefunMiddleware
from statefun_wsgi._proto import builtin_types_pb2, request_reply_v3_pb2

sys.modules["statefun"] = statefun_wsgi.v3
sys.modules["statefun.request_reply_pb2"] = request_reply_v3_pb2
sys.modules["statefun.types_pb2"] = builtin_types_pb2

from tests.e2e.official33_app import app, functions  # noqa: E402

wsgi = StatefunMiddleware(None, functions, runtime_listeners=None)

__all__ = ["app", "functions", "wsgi"]
