"""The three WSGI apps that ``bench_serving.py`` serves with identical gunicorn settings.

    gunicorn bench._serving_apps:ceiling     # reads the body, answers fixed bytes
    gunicorn bench._serving_apps:ours        # statefun-wsgi's middleware, counter function
    gunicorn bench._serving_apps:ours_two_writes  # ours, with gunicorn's own two writes per reply
    gunicorn bench._serving_apps:ours_metrics  # ours, recording Prometheus metrics (statefun_wsgi.metrics)
    gunicorn bench._serving_apps:ours_empty  # the same, with a function that does nothing
    gunicorn bench._serving_apps:by_hand     # no SDK: the counter's work written out by hand
    gunicorn bench._serving_apps:least_work  # no SDK: the least work any counter can do
    gunicorn bench._serving_apps:official    # the official SDK behind Flask, as its docs show
                                             # (run in the official SDK's virtualenv)

and for ``bench_serving_v3.py`` (the 3.x counter, ``bench/scenarios_v3.py``)::

    gunicorn bench._serving_apps:ours_v3            # statefun_wsgi.v3 behind StatefunMiddleware
    gunicorn bench._serving_apps:official3_flask    # official 3.3: Flask calling handle_sync
    gunicorn -k aiohttp.GunicornWebWorker bench._serving_apps:official3_aiohttp
                                                    # official 3.3: aiohttp calling handle_async
    gunicorn -k aiohttp.GunicornWebWorker bench._serving_apps:ours_v3_aiohttp
                                                    # the same app on statefun_wsgi.v3's handle_async

``by_hand`` and ``least_work`` are bounds, not SDKs: they answer only this benchmark's batch
(one ``bench/counter`` invocation, one state), with the same reply bytes as ``ours``, and
check nothing an SDK must check. No SDK serving the counter can beat ``by_hand``, which runs
the counter's own protobuf calls (``scenarios.counter``'s ``Any.Unpack``, ``Any.Pack``, an
egress message) with no dispatch, context or checks around them; ``least_work`` drops the
``Any`` round trips too (parse the count, add one, write it). The two share their opening
lines on purpose, written out in each: a bound calls nothing it does not need.

Every app but ``official`` runs in this repository's environment; ``official`` in a
virtualenv with ``apache-flink-statefun==2.2.2``, Flask and gunicorn, ``official3_*`` in one
with ``apache-flink-statefun==3.3.0``, Flask, aiohttp and gunicorn.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
#: Another tree's statefun_wsgi (bench_serving.py --before REV): imported from there instead.
_SOURCE = os.environ.get("BENCH_STATEFUN_SOURCE")
if _SOURCE:
    sys.path.insert(0, _SOURCE)

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


def _ours(**settings):
    import statefun_wsgi
    from statefun_wsgi import StatefulFunctions, StatefunMiddleware

    if _SOURCE and not statefun_wsgi.__file__.startswith(os.path.abspath(_SOURCE)):
        raise ImportError(f"statefun_wsgi came from {statefun_wsgi.__file__}, not {_SOURCE}")
    functions = StatefulFunctions()
    scenarios.register(functions)
    return StatefunMiddleware(None, functions, **settings)


def _ours_metrics():
    """``ours`` recording every batch in Prometheus metrics; with ``PROMETHEUS_MULTIPROC_DIR``
    set (bench_serving.py sets it), in prometheus_client's multiprocess mode, as under
    gunicorn_conf with ``STATEFUN_METRICS=1``."""
    return _ours(metrics=True)


def _ours_two_writes():
    """``ours`` with gunicorn's own writer put back: headers and body in two ``sendall``
    calls, as before replies left a worker in one write (statefun_wsgi/single_write.py)."""
    from gunicorn.http import wsgi

    app = _ours()
    while getattr(wsgi.Response, "_statefun_single_write", False):
        wsgi.Response = wsgi.Response.__bases__[0]
    return app


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


def _by_hand():
    """``scenarios.counter``'s work and the reply, and nothing else: a bound on any SDK."""
    from google.protobuf.any_pb2 import Any
    from google.protobuf.wrappers_pb2 import Int64Value, StringValue

    from statefun_wsgi._proto.request_reply_view_pb2 import ToFunction
    from statefun_wsgi._wire import append_state_mutation, egress_message, from_function, typename_fields
    from statefun_wsgi._protocol2 import packed

    egress = typename_fields("bench/out")

    def by_hand(environ, start_response):
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        batch = ToFunction.FromString(body).invocation
        target = batch.target
        if (target.namespace, target.type) != ("bench", "counter"):
            raise ValueError("not the benchmark's batch")
        state = batch.state[0]
        argument = batch.invocations[0].argument
        if argument.type_url != "type.googleapis.com/google.protobuf.StringValue":
            raise ValueError("not the benchmark's batch")
        StringValue.FromString(argument.value)  # what type-hint dispatch does
        count = Int64Value()  # scenarios.counter, inlined
        state.state_value.Unpack(count)
        count.value += 1
        box = Any()
        box.Pack(count)
        pieces = []
        append_state_mutation(pieces, state.state_name, box.SerializeToString())
        pieces.append(egress_message(egress, packed(count)))
        reply = from_function(pieces)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(reply)))])
        return [reply]

    return by_hand


def _least_work():
    """The least a counter can do: parse the count from the state's bytes, add one, write it."""
    from google.protobuf.wrappers_pb2 import Int64Value, StringValue

    from statefun_wsgi._proto.request_reply_view_pb2 import ToFunction
    from statefun_wsgi._wire import append_state_mutation, egress_message, from_function, typename_fields
    from statefun_wsgi._protocol2 import packed

    egress = typename_fields("bench/out")

    def least_work(environ, start_response):
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        batch = ToFunction.FromString(body).invocation
        target = batch.target
        if (target.namespace, target.type) != ("bench", "counter"):
            raise ValueError("not the benchmark's batch")
        state = batch.state[0]
        stored = state.state_value
        argument = batch.invocations[0].argument
        if (argument.type_url != "type.googleapis.com/google.protobuf.StringValue"
                or stored.type_url != "type.googleapis.com/google.protobuf.Int64Value"):
            raise ValueError("not the benchmark's batch")
        StringValue.FromString(argument.value)
        count = Int64Value.FromString(stored.value)
        count.value += 1
        value = packed(count)
        pieces = []
        append_state_mutation(pieces, state.state_name, value)
        pieces.append(egress_message(egress, value))
        reply = from_function(pieces)
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(reply)))])
        return [reply]

    return least_work


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


def _scenarios_v3_on_ours():
    """``scenarios_v3`` registered in a ``statefun_wsgi.v3.StatefulFunctions`` (its import changed only)."""
    import statefun_wsgi.v3

    sys.modules["statefun"] = statefun_wsgi.v3  # scenarios_v3's ``from statefun import ...``
    import scenarios_v3

    functions = statefun_wsgi.v3.StatefulFunctions()
    scenarios_v3.register(functions)
    return functions


def _ours_v3():
    """``bench/scenarios_v3.py`` (written for the official 3.3 SDK) on ``statefun_wsgi.v3``, its
    import changed and nothing else, behind the middleware."""
    from statefun_wsgi import StatefunMiddleware

    return StatefunMiddleware(None, _scenarios_v3_on_ours())


def _official3():
    import scenarios_v3
    from statefun import RequestReplyHandler, StatefulFunctions

    if "statefun_wsgi" in sys.modules["statefun"].__name__:
        raise RuntimeError("official3_*: run in the official SDK's virtualenv, not on statefun_wsgi.v3")
    functions = StatefulFunctions()
    scenarios_v3.register(functions)
    return RequestReplyHandler(functions)


def _official3_flask():
    """The official 3.3 SDK behind Flask, calling ``handle_sync`` (an event loop per request)."""
    from flask import Flask, make_response, request

    handler = _official3()
    app = Flask(__name__)

    @app.route("/statefun", methods=["POST"])
    def handle():
        response_data = handler.handle_sync(request.data)
        response = make_response(response_data)
        response.headers.set("Content-Type", "application/octet-stream")
        return response

    return app


def _official3_aiohttp(handler=None):
    """The official 3.3 SDK behind aiohttp, calling ``handle_async``, as the SDK's docs show."""
    from aiohttp import web

    handler = handler or _official3()

    async def handle(request):
        req = await request.read()
        res = await handler.handle_async(req)
        return web.Response(body=res, content_type="application/octet-stream")

    app = web.Application()
    app.add_routes([web.post("/statefun", handle)])
    return app


def _ours_v3_aiohttp():
    """``official3_aiohttp``'s app with ``statefun_wsgi.v3``'s handler: the same server, another SDK."""
    from statefun_wsgi.v3 import RequestReplyHandler

    return _official3_aiohttp(RequestReplyHandler(_scenarios_v3_on_ours()))


_FACTORIES = {
    "ours": _ours,
    "ours_metrics": _ours_metrics,
    "ours_two_writes": _ours_two_writes,
    "ours_empty": _ours_empty,
    "by_hand": _by_hand,
    "least_work": _least_work,
    "official": _official,
    "ours_v3": _ours_v3,
    "official3_flask": _official3_flask,
    "official3_aiohttp": _official3_aiohttp,
    "ours_v3_aiohttp": _ours_v3_aiohttp,
}


def _timed(app):
    """``app`` with the CPU time of its own calls counted (``time.thread_time_ns``, this thread's
    CPU only, so GIL waits are left out); each worker writes ``<pid> <calls> <ns>`` to a file in
    ``$BENCH_APP_TIMES`` when it exits. For ``bench_serving_v3.py --profile``: a worker's CPU
    time (from /proc) less this is what gunicorn spent around the app."""
    import atexit
    import threading
    import time

    lock = threading.Lock()
    totals = [0, 0]

    def timed(environ, start_response):
        start = time.thread_time_ns()
        result = app(environ, start_response)
        body = list(result)  # the app's iterable consumed here, so its work counts as the app's
        if hasattr(result, "close"):
            result.close()
        elapsed = time.thread_time_ns() - start
        with lock:
            totals[0] += 1
            totals[1] += elapsed
        return body

    def report():
        if totals[0]:
            path = os.path.join(os.environ["BENCH_APP_TIMES"], str(os.getpid()))
            with open(path, "w") as handle:
                handle.write(f"{os.getpid()} {totals[0]} {totals[1]}\n")

    atexit.register(report)
    return timed


def __getattr__(name):
    if name == "ceiling_app":  # the ceiling by way of a factory, so that it can be timed too
        app = ceiling
    else:
        try:
            app = _FACTORIES[name]()
        except KeyError:
            raise AttributeError(name) from None
    return _timed(app) if os.environ.get("BENCH_APP_TIMES") else app
