"""Tests for statefun_wsgi.django: the Django middleware, in a real Django.

Django is configured once for the process with the example project's settings
(``examples/django_project/settings.py``) through ``settings.configure``, so no
``DJANGO_SETTINGS_MODULE`` is left in the environment; tests that need other
values use ``override_settings`` (restored after each test) or pass their own
settings object to the middleware.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, List, Optional, Tuple

import django
import pytest
from builders import Delayed, Mutation, Sent, decode_reply, from_v3, request, to_v3
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.middleware.common import CommonMiddleware
from django.test import AsyncClient, AsyncRequestFactory, Client, RequestFactory, override_settings
from google.protobuf.wrappers_pb2 import BytesValue, Int64Value, StringValue
from servers import REPO, Server, start

from examples.greeter.functions import REMINDER_DELAY, functions
from examples.greeter.messages_pb2 import FormatRequest, GreetRequest, Reminder
from statefun_wsgi import ConfigurationError, RequestReplyHandler, StatefulFunctions
from statefun_wsgi.django import StatefunMiddleware, functions_of_django_app, load_object


def configure_django() -> None:
    """Django with the example project's settings, once per process (idempotent)."""
    if not settings.configured:
        from examples.django_project import settings as example

        settings.configure(**{name: getattr(example, name) for name in dir(example) if name.isupper()})
    django.setup()


configure_django()

OCTET = "application/octet-stream"
MIB = 1024 * 1024
#: A 3 MB state value (a serialized Any, as the runtime sends): over DATA_UPLOAD_MAX_MEMORY_SIZE.
BIG_STATE = BytesValue(value=b"s" * (3 * MIB))


def greet_batch(name: str = "alice", seen: int = 0, **state: Any) -> bytes:
    """A greeter batch: one GreetRequest for ``name`` who was seen ``seen`` times."""
    count = Int64Value(value=seen) if seen else None
    return request("example/greeter", name, state={"seen_count": count, **state}, messages=[GreetRequest(name=name)])


def assert_greeted(status: int, content_type: str, body: bytes, name: str = "alice", visits: int = 1) -> None:
    assert status == 200, body
    assert content_type == OCTET
    reply = decode_reply(body)
    assert reply.sent == [Sent.to("example/formatter", name, FormatRequest(name=name, visits=visits))]
    expected_delayed = [] if visits > 1 else [
        Delayed.to(int(REMINDER_DELAY.total_seconds() * 1000), "example/greeter", name, Reminder(name=name))
    ]
    assert reply.delayed == expected_delayed
    assert reply.mutations["seen_count"].message == Int64Value(value=visits)


def post_batch(client: Client, body: bytes, path: str = "/statefun") -> Any:
    return client.post(path, data=body, content_type=OCTET)


# -- the example project through Django's test client ------------------------------------


@pytest.fixture
def client() -> Client:
    # enforce_csrf_checks: the test client skips CSRF unless told otherwise.
    return Client(enforce_csrf_checks=True)


def test_a_batch_is_served_by_the_middleware(client: Client) -> None:
    response = post_batch(client, greet_batch())
    assert_greeted(response.status_code, response["Content-Type"], response.content)
    assert response["Content-Length"] == str(len(response.content))


def test_a_2x_and_a_3x_batch_through_the_same_middleware(client: Client) -> None:
    response = post_batch(client, greet_batch())
    assert_greeted(response.status_code, response["Content-Type"], response.content)
    response = post_batch(client, to_v3(greet_batch("bob", seen=1)))
    assert response.content != from_v3(response.content)
    assert_greeted(response.status_code, response["Content-Type"], from_v3(response.content), "bob", visits=2)


def test_statefun_protocols_is_read_and_a_request_of_another_protocol_gets_415() -> None:
    middleware = make(STATEFUN_FUNCTIONS=FUNCTIONS, STATEFUN_PROTOCOLS="3.x")
    factory = RequestFactory()
    served = middleware(factory.post("/statefun", data=to_v3(greet_batch()), content_type=OCTET))
    assert_greeted(served.status_code, served["Content-Type"], from_v3(served.content))
    refused = middleware(factory.post("/statefun", data=greet_batch(), content_type=OCTET))
    assert refused.status_code == 415
    assert b"this endpoint serves 3.x only (the protocols setting; STATEFUN_PROTOCOLS in Django)" in refused.content


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK is Linux's")
def test_a_large_batch_has_gunicorns_connection_acknowledging_promptly() -> None:
    # The runtime writes a body over ~8 KiB in pieces that each wait for the server's ACK, which
    # Linux would hold 40 ms: through Django too, the endpoint asks gunicorn's socket for prompt
    # ACKs (bench/bench_prompt_ack.py measures the difference under gunicorn).
    middleware = make(STATEFUN_FUNCTIONS=FUNCTIONS)
    body = greet_batch("jay", seen=2, padding=BytesValue(value=b"x" * 48 * 1024))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname()), listener.accept()[0] as server_side:
            server_side.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
            request = RequestFactory().post("/statefun", data=body, content_type=OCTET,
                                            **{"gunicorn.socket": server_side})
            response = middleware(request)
            assert_greeted(response.status_code, response["Content-Type"], response.content, "jay", visits=3)
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) == 1


def test_a_second_visit_mutates_the_count_and_sends_no_reminder(client: Client) -> None:
    response = post_batch(client, greet_batch("bob", seen=4))
    assert_greeted(response.status_code, response["Content-Type"], response.content, "bob", visits=5)


def test_csrf_protects_the_site_but_does_not_block_batches(client: Client) -> None:
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    # The site's own POST without a token is refused: CSRF is on ...
    assert client.post("/hello/", {"name": "eve"}).status_code == 403
    # ... and with one it passes ...
    form = client.get("/hello/")
    token = form.content.decode().split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    assert client.post("/hello/", {"name": "eve", "csrfmiddlewaretoken": token}).content == b"Hello eve, from Django.\n"
    # ... while a batch needs no token, no cookie.
    fresh = Client(enforce_csrf_checks=True)
    response = post_batch(fresh, greet_batch())
    assert_greeted(response.status_code, response["Content-Type"], response.content)


def test_a_batch_over_data_upload_max_memory_size_is_accepted(client: Client) -> None:
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2621440  # Django's default, left alone
    body = greet_batch(big=BIG_STATE)  # a 3 MB state, sent with every batch
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post_batch(client, body)
    assert_greeted(response.status_code, response["Content-Type"], response.content)


def test_the_same_body_through_request_body_would_be_refused() -> None:
    # What the middleware avoids: Django's own body access is capped at 2.5 MB.
    body = greet_batch(big=BIG_STATE)
    django_request = RequestFactory().post("/statefun", data=body, content_type=OCTET)
    with pytest.raises(RequestDataTooBig):
        django_request.body  # noqa: B018


@pytest.mark.parametrize(
    ("path", "status", "content"),
    [
        pytest.param("/", 200, b'"app": "django"', id="index"),
        pytest.param("/hello/", 200, b'name="csrfmiddlewaretoken"', id="form"),
        pytest.param("/nope/", 404, b"", id="not-found-by-django"),
    ],
)
def test_other_urls_reach_the_views(client: Client, path: str, status: int, content: bytes) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert content in response.content


@pytest.mark.parametrize(
    ("method", "body", "content_type", "status", "fragment"),
    [
        pytest.param("get", b"", OCTET, 405, b"GET is not allowed", id="405-get"),
        pytest.param("put", greet_batch(), OCTET, 405, b"PUT is not allowed", id="405-put"),
        pytest.param("post", b"\xff garbage", OCTET, 400, b"not a serialized ToFunction", id="400-garbage"),
        pytest.param("post", greet_batch(), "application/json", 415, b"application/json", id="415-json"),
        pytest.param("post", request("example/nobody", "x", messages=[GreetRequest()]), OCTET, 404,
                     b"no function is bound to example/nobody", id="404-unknown-function"),
    ],
)
def test_errors_are_the_endpoints(client: Client, method: str, body: bytes, content_type: str, status: int,
                                  fragment: bytes) -> None:
    if method == "get":
        response = client.get("/statefun")
    else:
        response = getattr(client, method)("/statefun", data=body, content_type=content_type)
    assert response.status_code == status
    assert fragment in response.content
    assert response.content.count(b"\n") == 1
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    if status == 405:
        assert response["Allow"] == "POST"


@override_settings(STATEFUN_PATH="/functions", STATEFUN_MAX_BODY_SIZE=64 * 1024)
def test_settings_are_read_from_django_settings() -> None:
    client = Client()  # a new client loads the middleware chain with these settings
    response = post_batch(client, greet_batch(), "/functions")
    assert_greeted(response.status_code, response["Content-Type"], response.content)
    assert post_batch(client, greet_batch(), "/statefun").status_code == 404  # now Django's URL
    too_large = greet_batch(big=BytesValue(value=b"x" * 64 * 1024))
    assert post_batch(client, too_large, "/functions").status_code == 413


def test_served_under_asgi_too() -> None:
    # Under ASGI there is no wsgi.input: the middleware reads the request's own stream.
    async def post() -> Any:
        return await AsyncClient().post("/statefun", data=greet_batch(big=BIG_STATE), content_type=OCTET)

    response = asyncio.run(post())
    assert_greeted(response.status_code, response["Content-Type"], response.content)


# -- the middleware alone, with RequestFactory and an injected settings object ---------------


class Views:
    """Stands in for the rest of the chain: records the requests handed on."""

    def __init__(self) -> None:
        self.requests: List[HttpRequest] = []
        self.response = HttpResponse(b"from the view")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.response


def make(**values: Any) -> StatefunMiddleware:
    return StatefunMiddleware(Views(), settings=SimpleNamespace(**values))


@pytest.mark.parametrize(
    "dotted_path",
    [
        pytest.param("examples.greeter.functions:functions", id="colon"),
        pytest.param("examples.greeter.functions.functions", id="dots"),
        pytest.param(f"{__name__}:HOLDER.functions", id="colon-nested-attribute"),
        pytest.param(f"{__name__}:HANDLER", id="request-reply-handler"),
    ],
)
def test_request_factory_batch_is_served(dotted_path: str) -> None:
    middleware = make(STATEFUN_FUNCTIONS=dotted_path)
    response = middleware(RequestFactory().post("/statefun", data=greet_batch(), content_type=OCTET))
    assert_greeted(response.status_code, response["Content-Type"], response.content)
    assert middleware.get_response.requests == []


HOLDER = SimpleNamespace(functions=functions)
HANDLER = RequestReplyHandler(functions)

#: A registry refused for what it holds (an async function) whose error text names
#: "protocols" and "max_body_size": the setting at fault is STATEFUN_FUNCTIONS all the same.
MISLEADING = StatefulFunctions()


@MISLEADING.bind("protocols/max_body_size")
async def _misleading(context, message):  # pragma: no cover - never called
    pass


def test_request_factory_other_paths_are_handed_on_untouched() -> None:
    middleware = make(STATEFUN_FUNCTIONS="examples.greeter.functions:functions")
    django_request = RequestFactory().post("/statefun/", data=greet_batch(), content_type=OCTET)
    response = middleware(django_request)
    assert middleware.get_response.requests == [django_request]
    assert response is middleware.get_response.response


@pytest.mark.parametrize(
    ("path", "raw", "served"),
    [
        pytest.param("/%2Fstatefun", {"RAW_URI": "/%2Fstatefun"}, True, id="gunicorn"),
        pytest.param("/%2Fstatefun", {"REQUEST_URI": "/%2Fstatefun"}, True, id="request-uri"),
        pytest.param("/%2Fstatefun", {}, True, id="no-raw-target"),
        pytest.param("//statefun", {"RAW_URI": "//statefun"}, False, id="slashes-written-out"),
        pytest.param("/%2F%2Fstatefun", {"RAW_URI": "/%2F%2Fstatefun"}, False, id="other-path"),
    ],
)
def test_the_runtimes_unix_socket_request_is_served(path: str, raw: dict, served: bool) -> None:
    # http+unix:///run/app.sock/statefun: the runtime sends POST /%2Fstatefun (path_info "//statefun").
    middleware = make(STATEFUN_FUNCTIONS="examples.greeter.functions:functions")
    django_request = RequestFactory().post(path, data=greet_batch(), content_type=OCTET, **raw)
    response = middleware(django_request)
    if served:
        assert django_request.path_info == "//statefun"
        assert_greeted(response.status_code, response["Content-Type"], response.content)
        assert middleware.get_response.requests == []
    else:
        assert middleware.get_response.requests == [django_request]


@pytest.mark.parametrize(("raw_path", "served"), [(b"/%2Fstatefun", True), (b"//statefun", False), (None, True)])
def test_the_runtimes_unix_socket_request_under_asgi(raw_path: Any, served: bool) -> None:
    middleware = make(STATEFUN_FUNCTIONS="examples.greeter.functions:functions")
    django_request = AsyncRequestFactory().post("/%2Fstatefun", data=greet_batch(), content_type=OCTET)
    assert "raw_path" not in django_request.scope and django_request.path_info == "//statefun"
    if raw_path is not None:  # the target as written, where the ASGI server gives it (uvicorn does)
        django_request.scope["raw_path"] = raw_path
    response = middleware(django_request)
    if served:
        assert_greeted(response.status_code, response["Content-Type"], response.content)
    else:
        assert middleware.get_response.requests == [django_request]


def test_injected_settings_defaults_and_overrides() -> None:
    default = make(STATEFUN_FUNCTIONS="examples.greeter.functions:functions")
    assert default.path == "/statefun"
    assert default.endpoint.max_body_size == 32 * MIB
    custom = make(STATEFUN_FUNCTIONS="examples.greeter.functions:functions", STATEFUN_PATH="/fn",
                  STATEFUN_MAX_BODY_SIZE=1024)
    factory = RequestFactory()
    served = custom(factory.post("/fn", data=greet_batch(), content_type=OCTET))
    assert_greeted(served.status_code, served["Content-Type"], served.content)
    over = greet_batch(big=BytesValue(value=b"x" * 1024))
    too_large = custom(factory.post("/fn", data=over, content_type=OCTET))
    assert too_large.status_code == 413
    assert b"limit of 1024 bytes" in too_large.content


def test_the_middleware_reads_the_wsgi_stream_not_request_body() -> None:
    middleware = make(STATEFUN_FUNCTIONS="examples.greeter.functions:functions")
    body = greet_batch(big=BIG_STATE)
    response = middleware(RequestFactory().post("/statefun", data=body, content_type=OCTET))
    assert_greeted(response.status_code, response["Content-Type"], response.content)


FUNCTIONS = "examples.greeter.functions:functions"


@pytest.mark.parametrize(
    ("values", "match"),
    [
        pytest.param({}, "STATEFUN_FUNCTIONS must name your StatefulFunctions", id="functions-missing"),
        pytest.param({"STATEFUN_FUNCTIONS": None}, "STATEFUN_FUNCTIONS must name", id="functions-none"),
        pytest.param({"STATEFUN_FUNCTIONS": ""}, "STATEFUN_FUNCTIONS must name", id="functions-empty"),
        pytest.param({"STATEFUN_FUNCTIONS": functions}, "STATEFUN_FUNCTIONS must name", id="functions-object"),
        pytest.param({"STATEFUN_FUNCTIONS": "no_such_module_at_all:functions"}, "cannot be imported",
                     id="module-missing"),
        pytest.param({"STATEFUN_FUNCTIONS": "examples.greeter.functions:nope"}, "has no attribute 'nope'",
                     id="attribute-missing-colon"),
        pytest.param({"STATEFUN_FUNCTIONS": "examples.greeter.functions.nope"}, "has no attribute 'nope'",
                     id="attribute-missing-dots"),
        pytest.param({"STATEFUN_FUNCTIONS": "functions"}, "is not a dotted path", id="no-module"),
        pytest.param({"STATEFUN_FUNCTIONS": "examples.greeter.functions:"}, "is not a dotted path",
                     id="no-attribute"),
        pytest.param({"STATEFUN_FUNCTIONS": ".greeter.functions:functions"}, "is not a dotted path",
                     id="relative"),
        pytest.param({"STATEFUN_FUNCTIONS": "examples.greeter.functions:greeter"},
                     "is a function, not a StatefulFunctions", id="a-bound-function"),
        pytest.param({"STATEFUN_FUNCTIONS": "examples.greeter.functions:REMINDER_DELAY"},
                     "is a timedelta, not a StatefulFunctions", id="not-callable"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_PATH": "statefun"}, "STATEFUN_PATH must start",
                     id="path-relative"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_PATH": ""}, "STATEFUN_PATH must start",
                     id="path-empty"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_PATH": None}, "STATEFUN_PATH must start",
                     id="path-none"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_MAX_BODY_SIZE": 0}, "STATEFUN_MAX_BODY_SIZE",
                     id="max-body-size-zero"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_MAX_BODY_SIZE": "32MiB"}, "STATEFUN_MAX_BODY_SIZE",
                     id="max-body-size-string"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_MAX_BODY_SIZE": None}, "STATEFUN_MAX_BODY_SIZE",
                     id="max-body-size-none"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_MAX_BODY_SIZE": 1.5}, "STATEFUN_MAX_BODY_SIZE",
                     id="max-body-size-float"),
        pytest.param({"STATEFUN_FUNCTIONS": FUNCTIONS, "STATEFUN_PROTOCOLS": "3"},
                     "STATEFUN_PROTOCOLS: protocols must be '2.x', '3.x'", id="protocols-bad"),
        pytest.param({"STATEFUN_FUNCTIONS": f"{__name__}:HANDLER", "STATEFUN_PROTOCOLS": "3.x"},
                     "STATEFUN_PROTOCOLS: protocols is a setting for a StatefulFunctions", id="protocols-with-handler"),
        pytest.param({"STATEFUN_FUNCTIONS": f"{__name__}:MISLEADING"},
                     r"^STATEFUN_FUNCTIONS: protocols/max_body_size is an async def function", id="named-by-what-failed"),
    ],
)
def test_bad_settings_are_improperly_configured(values: dict, match: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        make(**values)


@override_settings(STATEFUN_FUNCTIONS="no_such_module_at_all:functions")
def test_bad_django_settings_fail_when_the_chain_is_built() -> None:
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        Client().get("/")


def test_the_registry_behind_a_django_app_is_the_middlewares() -> None:
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    assert functions_of_django_app(app) is functions  # STATEFUN_FUNCTIONS, served by the middleware
    assert functions_of_django_app(object()) is None
    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if "statefun_wsgi" not in m]):
        assert functions_of_django_app(app) is None  # named, but not served
    with override_settings(STATEFUN_FUNCTIONS="no_such_module_at_all:functions"):
        with pytest.raises(ConfigurationError, match=r"^STATEFUN_FUNCTIONS = 'no_such_module_at_all:functions' "
                                                     r"cannot be imported"):
            functions_of_django_app(app)


def make_functions(name: str) -> tuple:
    return ("made", name)


def test_load_object() -> None:
    assert load_object("examples.greeter.functions:functions") is functions
    assert load_object("examples.greeter.functions.functions") is functions
    assert load_object(f"{__name__}:HOLDER.functions") is functions


def test_the_cli_and_the_django_settings_read_references_with_one_loader() -> None:
    import examples.greeter.functions as module

    from statefun_wsgi._loading import LoadError
    from statefun_wsgi._loading import load_object as load
    from statefun_wsgi.cli import CommandError, load_target

    # The CLI's rules reach the Django setting: a factory called with literal arguments.
    assert load_object(f"{__name__}:make_functions('x')") == ("made", "x")
    # Django's reach the CLI: "pkg.module.attr" with no colon; a bare module stays a module.
    assert load_target("examples.greeter.functions.functions") is functions
    assert load_target("examples.greeter.functions") is module
    with pytest.raises(LoadError, match=r"^'examples\.greeter\.functions:' is not a dotted path"):
        load("examples.greeter.functions:", require_attribute=True)
    for refused in (".greeter.functions:functions", ":functions"):
        with pytest.raises(CommandError, match=r"is not a dotted path like 'pkg\.module:attr'"):
            load_target(refused)
    with pytest.raises(CommandError, match=r"^cannot import 'examples\.greeter\.nope\.functions': No module named 'examples\.greeter\.nope'$"):
        load_target("examples.greeter.nope.functions")


def test_only_the_django_adapter_imports_django() -> None:
    code = "import sys, statefun_wsgi, app; assert 'django' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=30)


# -- docs/hosting.md's wsgi.py recipe, under a real gunicorn, with functions that import models ----

#: The order the recipe once had: the functions imported before Django is set up.
FUNCTIONS_FIRST = """import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "modelsproject.settings")
from django.core.wsgi import get_wsgi_application
from statefun_wsgi import StatefunMiddleware
from modelsproject.functions import functions

application = StatefunMiddleware(get_wsgi_application(), functions)
"""


def hosting_recipe() -> str:
    """docs/hosting.md's Django (a) ``wsgi.py``, for the project in tests/modelsproject."""
    text = (REPO / "docs" / "hosting.md").read_text()
    start = text.index("```python\n", text.index("**(a) Wrap the WSGI application in `wsgi.py`.**")) + len("```python\n")
    return text[start:text.index("```", start)].replace("myproject", "modelsproject")


def serve_wsgi_file(tmp_path: Path, source: str) -> Server:
    (tmp_path / "recipe_wsgi.py").write_text(source)
    return start("recipe_wsgi:application", "--pythonpath", f"{tmp_path},{REPO / 'tests'}",
                 env={"WEB_CONCURRENCY": "1", "DJANGO_SETTINGS_MODULE": "modelsproject.settings"})


def post_to_server(server: Server, body: bytes, host: Optional[str] = None) -> Tuple[int, bytes]:
    connection = server.connection()
    try:
        headers = {"Content-Type": "application/octet-stream", **({"Host": host} if host else {})}
        connection.request("POST", "/statefun", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_docs_wsgi_recipe_boots_functions_that_import_models_under_gunicorn(tmp_path: Path) -> None:
    server = serve_wsgi_file(tmp_path, hosting_recipe())
    try:
        server.wait_ready()
        body = request("test/greeter", "ann", state={"last": None}, messages=[StringValue(value="hello")])
        status, reply = post_to_server(server, body)
        assert status == 200, reply
        assert decode_reply(reply).mutations["last"] == Mutation.modify(StringValue(value="greeting: hello"))
    finally:
        server.stop()


def test_functions_that_import_models_before_django_is_set_up_fail_to_boot(tmp_path: Path) -> None:
    """What the recipe's order avoids (and what the test above would meet with the old order)."""
    server = serve_wsgi_file(tmp_path, FUNCTIONS_FIRST)
    try:
        server.process.wait(timeout=60)
        log = server.log()
        assert "AppRegistryNotReady" in log and "Worker failed to boot" in log, log
    finally:
        server.stop()


# -- the middleware's place in MIDDLEWARE ----------------------------------------------------------

OURS = "statefun_wsgi.django.StatefunMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"
SECURITY = "django.middleware.security.SecurityMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"


class OwnCommonMiddleware(CommonMiddleware):
    """A project's CommonMiddleware: it answers batches as its base does."""


@pytest.mark.parametrize(("before", "named"), [
    pytest.param(COMMON, "which answers a Host that is not in ALLOWED_HOSTS with a 400", id="common"),
    pytest.param(SECURITY, "which redirects to HTTPS with a 301 under SECURE_SSL_REDIRECT", id="security"),
    pytest.param(f"{__name__}.OwnCommonMiddleware", "which answers a Host that is not in ALLOWED_HOSTS", id="subclass"),
])
def test_after_a_middleware_that_answers_requests_it_is_refused(before: str, named: str) -> None:
    with override_settings(MIDDLEWARE=[before, OURS], ALLOWED_HOSTS=["localhost"]):
        with pytest.raises(ImproperlyConfigured) as info:
            Client().post("/statefun", data=greet_batch(), content_type=OCTET, HTTP_HOST="greeter-app:8000")
    assert str(info.value).startswith(f"MIDDLEWARE: {OURS} comes after {before}, {named}")
    assert str(info.value).endswith(f": the StateFun runtime's batches would get that answer and its job fail; "
                                    f"list {OURS} first")


def test_after_another_middleware_it_serves_and_warns_once_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(MIDDLEWARE=[SESSIONS, OURS, COMMON], ALLOWED_HOSTS=["localhost"]):
        client = Client()
        for _ in range(2):
            response = post_batch_with_host(client, "greeter-app:8000")
            assert_greeted(response.status_code, response["Content-Type"], response.content)
    warnings = [record.getMessage() for record in caplog.records if "MIDDLEWARE" in record.getMessage()]
    assert warnings == [f"MIDDLEWARE: {OURS} is not first: {SESSIONS} runs before it and may answer or alter the "
                        "StateFun runtime's batches (the runtime fails its job on a 3xx or 4xx); list it first"]


def test_first_it_answers_a_host_not_in_allowed_hosts_and_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with override_settings(MIDDLEWARE=[OURS, SECURITY, COMMON], ALLOWED_HOSTS=["localhost"]):
        response = post_batch_with_host(Client(), "greeter-app:8000")
        assert_greeted(response.status_code, response["Content-Type"], response.content)
    assert not [record for record in caplog.records if "MIDDLEWARE" in record.getMessage()]


def post_batch_with_host(client: Client, host: str) -> Any:
    return client.post("/statefun", data=greet_batch(), content_type=OCTET, HTTP_HOST=host)


@pytest.mark.parametrize("order", ["first", "after-common"])
def test_under_gunicorn_a_misplaced_middleware_stops_the_start_not_the_job(order: str) -> None:
    """ALLOWED_HOSTS = ["localhost"] and a batch for Host greeter-app:8000: listed first, the
    middleware answers it; after CommonMiddleware, the worker does not boot, saying why."""
    server = start("django.core.wsgi:get_wsgi_application()", "--pythonpath", str(REPO / "tests"),
                   env={"WEB_CONCURRENCY": "1", "DJANGO_SETTINGS_MODULE": "modelsproject.middleware_settings",
                        "STATEFUN_ORDER": order})
    try:
        if order == "first":
            server.wait_ready()
            body = request("test/greeter", "ann", state={"last": None}, messages=[StringValue(value="hi")])
            status, reply = post_to_server(server, body, host="greeter-app:8000")
            assert status == 200, reply
            assert decode_reply(reply).mutations["last"] == Mutation.modify(StringValue(value="greeting: hi"))
        else:
            server.process.wait(timeout=60)
            log = server.log()
            assert (f"django.core.exceptions.ImproperlyConfigured: MIDDLEWARE: {OURS} comes after {COMMON}, which "
                    "answers a Host that is not in ALLOWED_HOSTS with a 400") in log, log
            assert "Worker failed to boot" in log
    finally:
        server.stop()
