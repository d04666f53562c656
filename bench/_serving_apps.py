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

``by_hand`` and ``least_work`` are bounds, not SDKs: they answer only this benchmark's batch
(one ``bench/counter`` invocation, one state), with the same reply bytes as ``ours``, and
check nothing an SDK must check. No SDK serving the counter can beat ``by_hand``, which runs
the counter's own protobuf calls (``scenarios.counter``'s ``Any.Unpack``, ``Any.Pack``, an
egress message) with no dispatch, context or checks around them; ``least_work`` drops the
``Any`` round trips too (parse the count, add one, write it). The two share their opening
lines on purpose, written out in each: a bound calls nothing it does not need.

Every app but ``official`` runs in this repository's environment; ``official`` in a
virtualenv with ``apache-flink-statefun==2.2.2``, Flask and gunicorn.
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


_FACTORIES = {
    "ours": _ours,
    "ours_metrics": _ours_metrics,
    "ours_two_writes": _ours_two_writes,
    "ours_empty": _ours_empty,
    "by_hand": _by_hand,
    "least_work": _least_work,
    "official": _official,
}


def __getattr__(name):
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise AttributeError(name) from None
