"""The three WSGI apps that ``bench_serving.py`` serves with identical gunicorn settings.

    gunicorn bench._serving_apps:ceiling     # reads the body, answers fixed bytes
    gunicorn bench._serving_apps:ours        # statefun-wsgi's middleware, counter function
    gunicorn bench._serving_apps:ours_empty  # the same, with a function that does nothing
    gunicorn bench._serving_apps:official    # the official SDK behind Flask, as its docs show
                                             # (run in the official SDK's virtualenv)

``ceiling``, ``ours`` and ``ours_empty`` run in this repository's environment; ``official`` in a
virtualenv with ``apache-flink-statefun==2.2.2``, Flask and gunicorn.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import scenarios  # noqa: E402

_REPLY = os.environ.get("BENCH_CEILING_REPLY", "")


def ceiling(environ, start_response):
    """The fastest possible endpoint: read the whole body, answer a fixed reply."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    body = _CEILING_BODY
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


_CEILING_BODY = open(_REPLY, "rb").read() if _REPLY else b"\x00"


def _ours():
    from statefun_wsgi import StatefulFunctions, StatefunMiddleware

    functions = StatefulFunctions()
    scenarios.register(functions)
    return StatefunMiddleware(None, functions)


def _ours_empty():
    """The same middleware and batch, and a counter function that does nothing: what the
    SDK itself costs, without the function's protobuf work (Any.Unpack, Any.Pack, egress)."""
    from google.protobuf.wrappers_pb2 import StringValue

    from statefun_wsgi import StatefulFunctions, StatefunMiddleware

    functions = StatefulFunctions()

    @functions.bind("bench/counter")
    def counter(context, message: StringValue):
        pass

    return StatefunMiddleware(None, functions)


def _official():
    from flask import Flask, make_response, request
    from statefun import RequestReplyHandler, StatefulFunctions

    functions = StatefulFunctions()
    scenarios.register(functions)
    handler = RequestReplyHandler(functions)
    app = Flask(__name__)

    @app.route("/statefun", methods=["POST"])
    def handle():
        response_data = handler(request.data)
        response = make_response(response_data)
        response.headers.set("Content-Type", "application/octet-stream")
        return response

    return app


def __getattr__(name):
    if name == "ours":
        return _ours()
    if name == "ours_empty":
        return _ours_empty()
    if name == "official":
        return _official()
    raise AttributeError(name)
