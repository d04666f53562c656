"""Tests for the runnable examples: each app serves its own pages and the greeter.

Every example goes through its own framework's test client (werkzeug for the
plain WSGI ``app.py``, Flask's test client, WebTest for Pyramid and for Django's
``wsgi.py``, Django's ``Client`` for the Django middleware), and every one answers
the same greeter batches with the same effects.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, NamedTuple

import django
import pytest
from builders import Delayed, Egress, Sent, decode_reply, request
from django.conf import settings
from google.protobuf.wrappers_pb2 import Int64Value
from werkzeug.test import Client as WerkzeugClient

from examples.greeter.functions import GREETS_EGRESS, REMINDER_DELAY, functions
from examples.greeter.messages_pb2 import FormatRequest, GreetRequest, GreetResponse, Reminder
from statefun_wsgi import RequestReplyHandler
from statefun_wsgi._proto.egress_records_pb2 import KafkaProducerRecord

with warnings.catch_warnings():
    # WebOb 1.8 (the newest release, used by WebTest and Pyramid) imports the stdlib cgi
    # module, deprecated since Python 3.11. Nothing of ours to fix; ignore just that one.
    warnings.filterwarnings("ignore", message="'cgi' is deprecated", category=DeprecationWarning)
    from webtest import TestApp

OCTET = "application/octet-stream"


def configure_django() -> None:
    """Django with the example project's settings, once per process (idempotent)."""
    if not settings.configured:
        from examples.django_project import settings as example

        settings.configure(**{name: getattr(example, name) for name in dir(example) if name.isupper()})
    django.setup()


class Answer(NamedTuple):
    status: int
    content_type: str
    body: bytes


class Host(NamedTuple):
    """One example app, driven through its framework's test client."""

    post: Callable[[str, bytes], Answer]
    get: Callable[[str], Answer]
    page: bytes  # what GET / must contain
    hello: str  # the text of GET /hello/bob, a second page of its own ("": none)


def werkzeug_host(app: Any, page: bytes, hello: str) -> Host:
    client = WerkzeugClient(app)

    def post(path: str, body: bytes) -> Answer:
        response = client.post(path, data=body, content_type=OCTET)
        return Answer(response.status_code, response.headers.get("Content-Type", ""), response.get_data())

    def get(path: str) -> Answer:
        response = client.get(path)
        return Answer(response.status_code, response.headers.get("Content-Type", ""), response.get_data())

    return Host(post, get, page, hello)


def plain_wsgi() -> Host:
    from app import wsgi

    return werkzeug_host(wsgi, b"statefun-wsgi greeter example", "")


def flask() -> Host:
    from examples.flask_app import app

    client = app.test_client()

    def post(path: str, body: bytes) -> Answer:
        response = client.post(path, data=body, content_type=OCTET)
        return Answer(response.status_code, response.headers.get("Content-Type", ""), response.get_data())

    def get(path: str) -> Answer:
        response = client.get(path)
        return Answer(response.status_code, response.headers.get("Content-Type", ""), response.get_data())

    return Host(post, get, b'"app":"flask"', "Hello bob, from Flask.\n")


def webtest_host(app: Any, page: bytes, hello: str) -> Host:
    client = TestApp(app)  # its lint checks every response for WSGI compliance

    def post(path: str, body: bytes) -> Answer:
        response = client.post(path, params=body, content_type=OCTET, expect_errors=True)
        return Answer(response.status_int, response.headers.get("Content-Type", ""), response.body)

    def get(path: str) -> Answer:
        response = client.get(path, expect_errors=True)
        return Answer(response.status_int, response.headers.get("Content-Type", ""), response.body)

    return Host(post, get, page, hello)


def pyramid() -> Host:
    from examples.pyramid_app import app

    return webtest_host(app, b'"app": "pyramid"', "Hello bob, from Pyramid.\n")


def django_wsgi_wrapper(monkeypatch: pytest.MonkeyPatch) -> Host:
    """(a): wsgi.py's ``application``, StatefunMiddleware around Django."""
    configure_django()
    # wsgi.py sets DJANGO_SETTINGS_MODULE with setdefault: keep it out of later tests.
    current = os.environ.get("DJANGO_SETTINGS_MODULE", "examples.django_project.settings")
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", current)
    from examples.django_project.wsgi import application

    return webtest_host(application, b'"app": "django"', "")


def django_middleware(monkeypatch: pytest.MonkeyPatch) -> Host:
    """(b): Django alone, the Django middleware first in MIDDLEWARE."""
    configure_django()
    from django.test import Client

    client = Client(enforce_csrf_checks=True)

    def post(path: str, body: bytes) -> Answer:
        response = client.post(path, data=body, content_type=OCTET)
        return Answer(response.status_code, response.get("Content-Type", ""), response.content)

    def get(path: str) -> Answer:
        response = client.get(path)
        return Answer(response.status_code, response.get("Content-Type", ""), response.content)

    return Host(post, get, b'"app": "django"', "")


HOSTS = {
    "plain-wsgi": lambda monkeypatch: plain_wsgi(),
    "flask": lambda monkeypatch: flask(),
    "pyramid": lambda monkeypatch: pyramid(),
    "django-wsgi-wrapper": django_wsgi_wrapper,
    "django-middleware": django_middleware,
}


@pytest.fixture(params=list(HOSTS))
def host(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Host:
    return HOSTS[request.param](monkeypatch)


# -- the greeter, batch by batch -----------------------------------------------------------

DELAY_MS = int(REMINDER_DELAY.total_seconds() * 1000)
GREETER = ("example/greeter", "alice")


def greeter_batch(message: Any, seen: int = 0, caller: Any = None) -> bytes:
    count = Int64Value(value=seen) if seen else None
    return request(*GREETER, state={"seen_count": count}, messages=[message], caller=caller)


def kafka(topic: str, value: bytes) -> KafkaProducerRecord:
    return KafkaProducerRecord(topic=topic, key="alice", value_bytes=value)


GREETING = GreetResponse(name="alice", greeting="Hello alice! Nice to meet you.", visits=1)

SCENARIOS = [
    # (request body, sent, delayed, egresses, mutations)
    pytest.param(
        greeter_batch(GreetRequest(name="alice")),
        [Sent.to("example/formatter", "alice", FormatRequest(name="alice", visits=1))],
        [Delayed.to(DELAY_MS, "example/greeter", "alice", Reminder(name="alice"))],
        [],
        {"seen_count": Int64Value(value=1)},
        id="first-visit-formats-and-schedules-a-reminder",
    ),
    pytest.param(
        greeter_batch(GreetRequest(name="alice"), seen=2),
        [Sent.to("example/formatter", "alice", FormatRequest(name="alice", visits=3))],
        [],
        [],
        {"seen_count": Int64Value(value=3)},
        id="return-visit-counts-without-reminder",
    ),
    pytest.param(
        request("example/formatter", "alice", messages=[FormatRequest(name="alice", visits=1)], caller=GREETER),
        [Sent.to(*GREETER, GREETING)],
        [],
        [],
        {},
        id="formatter-replies-to-its-caller",
    ),
    pytest.param(
        greeter_batch(GREETING, seen=1, caller=("example/formatter", "alice")),
        [],
        [],
        [Egress.to(GREETS_EGRESS, kafka("greetings", b"Hello alice! Nice to meet you."))],
        {},
        id="greeting-goes-to-kafka",
    ),
    pytest.param(
        greeter_batch(Reminder(name="alice"), seen=1, caller=GREETER),
        [],
        [],
        [Egress.to(GREETS_EGRESS, kafka("reminders", b"Hi alice, still there? Come back soon!"))],
        {},
        id="reminder-goes-to-kafka",
    ),
]


@pytest.mark.parametrize(("body", "sent", "delayed", "egresses", "mutations"), SCENARIOS)
def test_the_greeter_is_served(host: Host, body: bytes, sent: list, delayed: list, egresses: list,
                               mutations: dict) -> None:
    answer = host.post("/statefun", body)
    assert answer.status == 200, answer.body
    assert answer.content_type == OCTET
    assert answer.body == RequestReplyHandler(functions)(body)  # what the handler itself answers
    reply = decode_reply(answer.body)
    assert reply.sent == sent
    assert reply.delayed == delayed
    assert reply.egresses == egresses
    assert {name: mutation.message for name, mutation in reply.mutations.items()} == mutations


def test_the_apps_own_pages_are_served(host: Host) -> None:
    index = host.get("/")
    assert index.status == 200
    assert host.page in index.body
    if host.hello:
        assert host.get("/hello/bob").body.decode() == host.hello


def test_a_get_on_the_function_path_is_405(host: Host) -> None:
    answer = host.get("/statefun")
    assert answer.status == 405
    assert answer.body.startswith(b"405 Method Not Allowed: GET is not allowed")


def test_an_unknown_page_is_the_frameworks_404(host: Host) -> None:
    assert host.get("/no-such-page").status == 404


def test_the_function_list_is_the_greeters() -> None:
    assert functions.typenames == ["example/formatter", "example/greeter"]
