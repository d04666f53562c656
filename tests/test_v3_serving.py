"""statefun_wsgi.v3 registries served as every statefun-wsgi registry is: StatefunMiddleware
(in process, and under gunicorn's gthread workers), the Django middleware
(STATEFUN_FUNCTIONS) and the local runtime. The replies are the golden 3.3.0 ones
(tests/data/v3), byte for byte.
"""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from types import SimpleNamespace
from typing import List, Set, Tuple

import pytest
from builders import request
from google.protobuf.wrappers_pb2 import StringValue
from servers import gunicorn
from werkzeug.test import Client

from statefun_wsgi import StatefunMiddleware, StringWrapper
from statefun_wsgi._proto import request_reply_v3_pb2 as pb
from statefun_wsgi.local import LocalRuntime
from statefun_wsgi.v3 import (
    IntType,
    RequestReplyHandler,
    StatefulFunctions,
    StringType,
    ValueSpec,
    egress_message_builder,
    message_builder,
)
from tests.v3_app import functions

DATA = Path(__file__).resolve().parent / "data" / "v3"
OCTET = "application/octet-stream"


def vector(kind: str, n: int) -> bytes:
    return (DATA / f"{kind}-{n}.bin").read_bytes()


def retarget(request: bytes, function_type: str) -> bytes:
    """The same request, to another function of the example namespace."""
    parsed = pb.ToFunction.FromString(request)
    parsed.invocation.target.type = function_type
    return parsed.SerializeToString()


@pytest.mark.parametrize("function_type", ["greeter", "agreeter"])
def test_statefun_middleware_answers_the_golden_vectors(function_type: str) -> None:
    client = Client(StatefunMiddleware(None, functions, runtime_listeners=None))
    for n in (1, 2):
        response = client.post("/statefun", data=retarget(vector("request", n), function_type), content_type=OCTET)
        assert response.status_code == 200, response.data
        assert response.headers["Content-Type"] == OCTET
        assert response.data == vector("reply", n)


def test_statefun_middleware_takes_a_v3_handler_too() -> None:
    client = Client(StatefunMiddleware(None, RequestReplyHandler(functions), runtime_listeners=None))
    response = client.post("/statefun", data=vector("request", 2), content_type=OCTET)
    assert response.status_code == 200 and response.data == vector("reply", 2)
    two = (DATA.parent / "request-1.bin").read_bytes()  # a 2.x request: the v3 handler serves 3.x only
    assert client.post("/statefun", data=two, content_type=OCTET).status_code == 415


def test_async_functions_in_a_wsgi_server_run_on_one_loop_per_thread() -> None:
    request = retarget(vector("request", 2), "loops")

    def post(server_connection: object) -> Tuple[str, str]:
        connection = server.connection()
        try:
            connection.request("POST", "/statefun", body=request, headers={"Content-Type": OCTET})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 200, body
        record = pb.FromFunction.FromString(body).invocation_result.outgoing_egresses[0]
        thread, loop = StringType.serializer().deserialize(record.argument.value).split(":")
        return thread, loop

    with gunicorn("tests.v3_app:wsgi", "--worker-class", "gthread", "--workers", "1", "--threads", "2") as server:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            seen: List[Tuple[str, str]] = list(pool.map(post, range(24)))
    loops_of: dict = {}
    for thread, loop in seen:
        loops_of.setdefault(thread, set()).add(loop)
    assert all(len(loops) == 1 for loops in loops_of.values()), loops_of  # one loop per thread, kept
    assert 1 <= len(loops_of) <= 2
    every_loop: Set[str] = set().union(*loops_of.values())
    assert len(every_loop) == len(loops_of)  # and not shared between threads


def test_plain_functions_in_a_wsgi_server_run_with_no_event_loop() -> None:
    request = retarget(vector("request", 2), "noloop")
    with gunicorn("tests.v3_app:wsgi", "--worker-class", "gthread", "--workers", "1", "--threads", "2") as server:
        answers = set()
        for _ in range(4):
            connection = server.connection()
            try:
                connection.request("POST", "/statefun", body=request, headers={"Content-Type": OCTET})
                response = connection.getresponse()
                body = response.read()
            finally:
                connection.close()
            assert response.status == 200, body
            record = pb.FromFunction.FromString(body).invocation_result.outgoing_egresses[0]
            answers.add(StringType.serializer().deserialize(record.argument.value))
    assert answers == {"running loop: False"}


@pytest.mark.parametrize("settings", [
    {"STATEFUN_FUNCTIONS": "tests.v3_app:functions"},
    {"STATEFUN_FUNCTIONS": "tests.v3_app.functions", "STATEFUN_PATH": "/fn", "STATEFUN_PROTOCOLS": "3.x",
     "STATEFUN_MAX_BODY_SIZE": 4096},
    {"STATEFUN_FUNCTIONS": "tests.v3_app:handler", "STATEFUN_PATH": "/fn"},  # a v3 RequestReplyHandler
], ids=["registry", "registry-and-settings", "v3-handler"])
def test_django_middleware_serves_a_v3_registry(settings: dict) -> None:
    from django.test import RequestFactory
    from test_django import Views, configure_django  # noqa: F401  (Django configured once per process)

    from statefun_wsgi.django import StatefunMiddleware as DjangoMiddleware

    middleware = DjangoMiddleware(Views(), settings=SimpleNamespace(**settings))
    path = settings.get("STATEFUN_PATH", "/statefun")
    for n in (1, 2):
        response = middleware(RequestFactory().post(path, data=vector("request", n), content_type=OCTET))
        assert response.status_code == 200
        assert response.content == vector("reply", n)
    two = request("example/noloop", "a", messages=[StringValue(value="x")])  # a 2.x request
    refused = settings.get("STATEFUN_PROTOCOLS") == "3.x" or settings["STATEFUN_FUNCTIONS"].endswith(":handler")
    assert middleware(RequestFactory().post(path, data=two, content_type=OCTET)).status_code == (
        415 if refused else 200)
    if "STATEFUN_MAX_BODY_SIZE" in settings:
        big = retarget(vector("request", 2), "greeter") + b"\0" * 4096
        assert middleware(RequestFactory().post(path, data=big, content_type=OCTET)).status_code == 413


def test_the_local_runtime_runs_v3_functions() -> None:
    local = StatefulFunctions()

    @local.bind("example/counter", specs=[ValueSpec("seen", IntType)])
    def count(context, message):  # type: ignore[no-untyped-def]
        context.storage.seen = (context.storage.seen or 0) + 1
        context.send_egress(
            egress_message_builder("example/out", f"{message.as_string()} {context.storage.seen}", StringType)
        )
        if context.storage.seen < 3:
            context.send(message_builder("example/counter", context.address.id, str_value="again"))

    runtime = LocalRuntime.for_functions(local)
    runtime.send("example/counter", "zed", StringWrapper(value="hello"))
    runtime.run_until_idle()
    texts = [StringWrapper.FromString(record.argument.value).value for record in runtime.egress("example/out")]
    assert texts == ["hello 1", "again 2", "again 3"]
    stored = runtime.state("example/counter", "zed", "seen")
    assert stored is not None and IntType.serializer().deserialize(stored.value) == 3


def test_the_local_runtime_testing_api_speaks_the_official_types() -> None:
    """for_functions(v3 registry) speaks 3.x (the ValueSpecs registered with their type and
    expiry); send(value_type=), state(..., IntType) and EgressRecord.unpack(StringType) take the
    official API's types."""
    from datetime import timedelta

    from statefun_wsgi.errors import UnexpectedMessageTypeError
    from statefun_wsgi.v3 import make_json_type

    point = make_json_type("example/point")
    local = StatefulFunctions()

    @local.bind("example/keeper", specs=[ValueSpec("last", point, expire_after_write=timedelta(seconds=5)),
                                         ValueSpec("seen", IntType)])
    def keep(context, message):  # type: ignore[no-untyped-def]
        context.storage.last = message.as_type(point)
        context.storage.seen = (context.storage.seen or 0) + 1
        context.send_egress(egress_message_builder("example/out", f"x={message.as_type(point)['x']}", StringType))

    runtime = LocalRuntime.for_functions(local)
    assert runtime.protocol == "3.x"
    runtime.send("example/keeper", "k", {"x": 1}, value_type=point)
    runtime.send("example/keeper", "k", {"x": 2}, value_type=point)
    runtime.run_until_idle()
    assert [record.unpack(StringType) for record in runtime.egress("example/out")] == ["x=1", "x=2"]
    assert runtime.state("example/keeper", "k", "last", point) == {"x": 2}
    assert runtime.state("example/keeper", "k", "seen", IntType) == 2
    with pytest.raises(UnexpectedMessageTypeError, match="holds a 'io.statefun.types/int', not a 'example/point'"):
        runtime.state("example/keeper", "k", "seen", point)
    with pytest.raises(UnexpectedMessageTypeError, match="not a 'io.statefun.types/int'"):
        runtime.egress("example/out")[0].unpack(IntType)
    runtime.advance(timedelta(seconds=6))  # the ValueSpec's expiry, as the 3.x runtime registered it
    assert runtime.state("example/keeper", "k", "last", point) is None
    assert runtime.state("example/keeper", "k", "seen", IntType) == 2
    with pytest.raises(TypeError, match="give value_type for dict values"):
        runtime.send("example/keeper", "k", {"x": 3})
