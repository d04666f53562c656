"""statefun_wsgi.metrics in process: what the endpoint records for each outcome, the
scrape reply, the middleware's and Django's settings, the log line of a failed batch,
the dev summary's arithmetic. Across gunicorn workers: tests/test_metrics_gunicorn.py."""

from __future__ import annotations

import io
import logging
import sys
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory
from google.protobuf.wrappers_pb2 import StringValue
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from builders import request, to_v3
from statefun_wsgi import RequestReplyHandler, StatefulFunctions, StatefunMiddleware
from statefun_wsgi import v3
from statefun_wsgi.endpoint import Endpoint
from statefun_wsgi.errors import ConfigurationError, OverloadedError, UnknownFunctionError
from statefun_wsgi.metrics import (
    METRIC_NAMES,
    FunctionSummary,
    Metrics,
    exception_label,
    make_metrics_app,
    metrics_from_setting,
    metrics_reply,
    quantile,
    summarize,
)
from statefun_wsgi.protocols import BatchTarget, batch_target

functions = StatefulFunctions()


class Declined(Exception):
    pass


@functions.bind("m/ok")
def ok(context: Any, message: StringValue) -> None:
    pass


@functions.bind("m/boom")
def boom(context: Any, message: StringValue) -> None:
    raise Declined("no")


@functions.bind("m/stateful", states=["seen"])
def stateful(context: Any, message: StringValue) -> None:
    pass


v3_functions = v3.StatefulFunctions()


@v3_functions.bind("m/v3")
def official(context: v3.Context, message: v3.Message) -> None:
    if context.address.id == "fail":
        raise KeyError("official")


def batch(typename: str, identity: str = "i", invocations: int = 1, protocol: str = "2.x") -> bytes:
    body = request(typename, identity, messages=[StringValue(value="x")] * invocations)
    return to_v3(body) if protocol == "3.x" else body


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def samples(registry: Any) -> Samples:
    """Every non-zero sample of the statefun metrics: (name, sorted labels) -> value."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith("statefun_") and not sample.name.endswith("_created") and sample.value:
                if sample.name.endswith("_bucket"):
                    continue
                found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def post(endpoint: Endpoint, body: bytes, content_type: Optional[str] = "application/octet-stream",
         method: str = "POST", length: Optional[str] = None) -> Any:
    return endpoint.respond(method, content_type, str(len(body)) if length is None else length, io.BytesIO(body))


def only(found: Samples, prefix: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    return {labels: value for (name, labels), value in found.items() if name == prefix}


# -- what one request records ------------------------------------------------------------------


OUTCOMES = [
    # (id, path to the request, status, function_type label, invocations that ran, exception)
    ("200 2.x", lambda: ("POST", batch("m/ok", invocations=3), None), 200, "m/ok", 3, None),
    ("200 3.x", lambda: ("POST", batch("m/ok", invocations=2, protocol="3.x"), None), 200, "m/ok", 2, None),
    ("500", lambda: ("POST", batch("m/boom"), None), 500, "m/boom", 0, "test_metrics.Declined"),
    ("3.x declares states", lambda: ("POST", batch("m/stateful", protocol="3.x"), None), 200, "m/stateful", 0, None),
    ("2.x missing state", lambda: ("POST", batch("m/stateful"), None), 500, "m/stateful", 0,
     "statefun_wsgi.errors.MissingStateError"),
    ("404", lambda: ("POST", batch("m/nobody"), None), 404, "unknown", 0, None),
    ("400", lambda: ("POST", b"\xff\xff", None), 400, "unknown", 0, None),
    ("405", lambda: ("GET", b"", None), 405, "unknown", 0, None),
    ("413", lambda: ("POST", b"", str(64 * 1024 * 1024)), 413, "unknown", 0, None),
    ("415", lambda: ("PUT-TYPE", batch("m/ok"), None), 415, "unknown", 0, None),
]


@pytest.mark.parametrize("make, status, label, invocations, exception",
                         [outcome[1:] for outcome in OUTCOMES], ids=[outcome[0] for outcome in OUTCOMES])
def test_each_outcome_is_counted_once_under_its_label(
    metrics: Metrics, make: Any, status: int, label: str, invocations: int, exception: Optional[str]
) -> None:
    endpoint = Endpoint(functions, metrics=metrics)
    method, body, length = make()
    content_type = "text/plain" if method == "PUT-TYPE" else "application/octet-stream"
    reply = post(endpoint, body, content_type, "POST" if method == "PUT-TYPE" else method, length)
    assert reply.status == status
    found = samples(metrics.registry)
    assert only(found, "statefun_batches_total") == {(("function_type", label), ("status", str(status))): 1}
    assert only(found, "statefun_reply_bytes_total") == {(("function_type", label),): len(reply.body)}
    read = len(body) if method == "POST" and status not in (413, 415) else 0
    assert only(found, "statefun_request_bytes_total") == ({(("function_type", label),): read} if read else {})
    timed = {(("function_type", label),): 1} if read else {}
    assert only(found, "statefun_batch_duration_seconds_count") == timed
    ran = {(("function_type", label),): invocations} if invocations else {}
    assert only(found, "statefun_invocations_total") == ran
    assert only(found, "statefun_batch_invocations_sum") == ran
    assert only(found, "statefun_batch_invocations_count") == ({(("function_type", label),): 1} if ran else {})
    raised = {(("exception", exception), ("function_type", label)): 1} if exception else {}
    assert only(found, "statefun_function_exceptions_total") == raised


def test_the_official_api_is_counted_as_the_package_api(metrics: Metrics) -> None:
    endpoint = Endpoint(v3_functions, metrics=metrics)
    assert post(endpoint, batch("m/v3", "ok", 2, "3.x")).status == 200
    assert post(endpoint, batch("m/v3", "fail", 1, "3.x")).status == 500
    assert post(endpoint, batch("m/v3", "ok", 1, "2.x")).status == 200  # its registry serves both protocols
    found = samples(metrics.registry)
    assert only(found, "statefun_batches_total") == {
        (("function_type", "m/v3"), ("status", "200")): 2,
        (("function_type", "m/v3"), ("status", "500")): 1,
    }
    assert only(found, "statefun_invocations_total") == {(("function_type", "m/v3"),): 3}
    assert only(found, "statefun_function_exceptions_total") == {
        (("exception", "KeyError"), ("function_type", "m/v3")): 1}


def test_a_handler_of_your_own_is_counted_from_the_request_bytes(metrics: Metrics) -> None:
    inner = RequestReplyHandler(functions)
    calls = []

    def shedding(body: bytes) -> bytes:
        calls.append(body)
        if len(calls) == 2:
            raise OverloadedError("busy")
        return inner(body)

    endpoint = Endpoint(shedding, metrics=metrics)
    assert post(endpoint, batch("m/ok", invocations=4)).status == 200
    assert post(endpoint, batch("m/ok")).status == 503
    assert post(endpoint, batch("m/nobody")).status == 404
    found = samples(metrics.registry)
    assert only(found, "statefun_batches_total") == {
        (("function_type", "m/ok"), ("status", "200")): 1,
        (("function_type", "m/ok"), ("status", "503")): 1,
        (("function_type", "unknown"), ("status", "404")): 1,
    }
    assert only(found, "statefun_invocations_total") == {(("function_type", "m/ok"),): 4}


def test_without_metrics_the_endpoint_runs_the_code_it_ran_before() -> None:
    plain = Endpoint(functions)
    assert plain.metrics is None and "_run" not in vars(plain)  # the class's _run, no branch added
    measured = Endpoint(functions, metrics=Metrics(CollectorRegistry()))
    assert vars(measured)["_run"] == measured._run_measured


def test_every_exported_name_is_in_metric_names(metrics: Metrics) -> None:
    post(Endpoint(functions, metrics=metrics), batch("m/boom"))
    families = {family.name for family in metrics.registry.collect()}
    # prometheus_client names a counter's family without _total
    assert {name[: -len("_total")] if name.endswith("_total") else name for name in METRIC_NAMES} == families


@pytest.mark.parametrize("error, label", [
    (ValueError("x"), "ValueError"),
    (Declined("x"), "test_metrics.Declined"),
    (UnknownFunctionError("x"), "statefun_wsgi.errors.UnknownFunctionError"),
], ids=["builtin", "the app's", "ours"])
def test_exception_label(error: BaseException, label: str) -> None:
    assert exception_label(error) == label


# -- the scrape ----------------------------------------------------------------------------------


def test_a_scrape_answers_the_text_format(metrics: Metrics) -> None:
    post(Endpoint(functions, metrics=metrics), batch("m/ok"))
    reply = metrics_reply("GET", None, metrics)
    assert reply.status == 200
    assert dict(reply.headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    assert int(dict(reply.headers)["Content-Length"]) == len(reply.body)
    names = {sample.name for family in text_string_to_metric_families(reply.body.decode()) for sample in family.samples}
    assert {"statefun_batches_total", "statefun_batch_duration_seconds_bucket"} <= names


def test_a_scrape_answers_openmetrics_when_asked(metrics: Metrics) -> None:
    reply = metrics_reply("GET", "application/openmetrics-text; version=1.0.0", metrics)
    assert dict(reply.headers)["Content-Type"].startswith("application/openmetrics-text")
    assert reply.body.endswith(b"# EOF\n")


def test_head_has_no_body_and_other_methods_get_405(metrics: Metrics) -> None:
    head = metrics_reply("HEAD", None, metrics)
    assert head.status == 200 and head.body == b""
    post_reply = metrics_reply("POST", None, metrics)
    assert post_reply.status == 405
    assert dict(post_reply.headers)["Allow"] == "GET, HEAD"
    assert post_reply.body == b"405 Method Not Allowed: POST is not allowed here: scrape the metrics with GET\n"


def test_the_metrics_app_mounts_on_any_path(metrics: Metrics) -> None:
    site = StatefunMiddleware(None, functions, metrics=metrics, metrics_path=None)
    app = Client(DispatcherMiddleware(site, {"/internal/metrics": make_metrics_app(metrics)}))
    assert app.post("/statefun", data=batch("m/ok"), content_type="application/octet-stream").status_code == 200
    assert app.get("/metrics").status_code == 404
    scraped = app.get("/internal/metrics").get_data(as_text=True)
    assert 'statefun_batches_total{function_type="m/ok",status="200"} 1.0' in scraped


# -- the middleware's and Django's settings --------------------------------------------------------

@pytest.fixture(autouse=True)
def no_listener_warning(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("STATEFUN_RUNTIME_BIND", raising=False)
    monkeypatch.delenv("STATEFUN_METRICS", raising=False)
    logging.getLogger("statefun_wsgi").disabled = True
    yield
    logging.getLogger("statefun_wsgi").disabled = False


def site(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"the app's " + environ["PATH_INFO"].encode()]


def test_the_middleware_answers_scrapes_on_its_metrics_path(metrics: Metrics) -> None:
    app = Client(StatefunMiddleware(site, functions, metrics=metrics, metrics_path="/ops/metrics"))
    assert app.post("/statefun", data=batch("m/ok"), content_type="application/octet-stream").status_code == 200
    scraped = app.get("/ops/metrics").get_data(as_text=True)
    assert 'statefun_batches_total{function_type="m/ok",status="200"} 1.0' in scraped
    assert app.get("/metrics").get_data(as_text=True) == "the app's /metrics"
    assert app.post("/ops/metrics").status_code == 405


def test_metrics_off_leaves_the_path_to_the_app() -> None:
    middleware = StatefunMiddleware(site, functions, metrics=False)
    assert middleware.metrics is None and middleware.metrics_path is None
    assert Client(middleware).get("/metrics").get_data(as_text=True) == "the app's /metrics"


@pytest.mark.parametrize("value, on", [("1", True), ("on", True), ("0", False), ("", False)])
def test_statefun_metrics_in_the_environment_turns_them_on(monkeypatch: pytest.MonkeyPatch, value: str,
                                                          on: bool) -> None:
    monkeypatch.setenv("STATEFUN_METRICS", value)
    middleware = StatefunMiddleware(site, functions)
    assert (middleware.metrics is not None) is on
    assert middleware.metrics_path == ("/metrics" if on else None)


def test_a_wrong_setting_is_refused_at_start(monkeypatch: pytest.MonkeyPatch, metrics: Metrics) -> None:
    monkeypatch.setenv("STATEFUN_METRICS", "maybe")
    with pytest.raises(ConfigurationError, match="STATEFUN_METRICS='maybe': expected on or off"):
        StatefunMiddleware(site, functions)
    with pytest.raises(ConfigurationError, match="metrics must be True, False or a Metrics, got str"):
        metrics_from_setting("yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="metrics_path '/statefun' is the functions' path too"):
        StatefunMiddleware(site, functions, metrics=metrics, metrics_path="/statefun")
    with pytest.raises(ConfigurationError, match="metrics_path must start with '/'"):
        StatefunMiddleware(site, functions, metrics=metrics, metrics_path="metrics")


def test_without_prometheus_client_turning_them_on_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.raises(ConfigurationError, match=r"pip install 'statefun-wsgi\[metrics\]'"):
        Metrics(CollectorRegistry())
    assert StatefunMiddleware(site, functions, metrics=False).metrics is None  # off needs nothing


class Settings:
    STATEFUN_FUNCTIONS = "test_metrics:functions"
    MIDDLEWARE = ["statefun_wsgi.django.StatefunMiddleware"]

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)


def django_middleware(**settings: Any) -> Any:
    from test_django import configure_django  # Django configured once per process, as there

    from statefun_wsgi.django import StatefunMiddleware as DjangoMiddleware

    configure_django()

    return DjangoMiddleware(lambda request: HttpResponse(f"django's {request.path_info}"), Settings(**settings))


def test_django_answers_scrapes_on_statefun_metrics_path(metrics: Metrics) -> None:
    middleware = django_middleware(STATEFUN_METRICS=metrics, STATEFUN_METRICS_PATH="/ops/metrics")
    factory = RequestFactory()
    body = batch("m/ok")
    assert middleware(factory.post("/statefun", body, content_type="application/octet-stream")).status_code == 200
    scraped = middleware(factory.get("/ops/metrics"))
    assert scraped.status_code == 200
    assert 'statefun_batches_total{function_type="m/ok",status="200"} 1.0' in scraped.content.decode()
    assert middleware(factory.get("/metrics")).content == b"django's /metrics"
    assert django_middleware(STATEFUN_METRICS=False)(factory.get("/metrics")).content == b"django's /metrics"


@pytest.mark.parametrize("settings, message", [
    ({"STATEFUN_METRICS": "yes"}, "STATEFUN_METRICS: metrics must be True, False or a Metrics, got str"),
    ({"STATEFUN_METRICS": True, "STATEFUN_METRICS_PATH": "/statefun"},
     "STATEFUN_METRICS_PATH '/statefun' is the functions' path too"),
    ({"STATEFUN_METRICS": True, "STATEFUN_METRICS_PATH": "metrics"}, "STATEFUN_METRICS_PATH must start with '/'"),
], ids=["not a bool", "the functions' path", "relative"])
def test_django_refuses_wrong_metrics_settings(settings: Dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        django_middleware(**settings)


# -- the log line of a failed batch -------------------------------------------------------------------


FAILURES = [
    ("500", lambda: batch("m/boom", "alice"), logging.ERROR,
     "m/boom (id 'alice') answered 500: raised Declined in invocation 1 of 1: no"),
    ("404", lambda: batch("m/nobody", "bob"), logging.WARNING,
     "m/nobody (id 'bob') answered 404: no function is bound to m/nobody (bound: m/boom, m/ok, m/stateful)"),
    ("415 3.x to a 2.x endpoint", lambda: batch("m/ok", "carol", protocol="3.x"), logging.WARNING,
     "m/ok (id 'carol') answered 415: "),
    ("400", lambda: b"\xff\xff", logging.WARNING, "a request answered 400: the body is not a serialized ToFunction"),
]


@pytest.mark.parametrize("make, level, line", [failure[1:] for failure in FAILURES],
                         ids=[failure[0] for failure in FAILURES])
def test_a_failed_batch_is_one_line_naming_address_status_and_cause(
    caplog: pytest.LogCaptureFixture, make: Any, level: int, line: str
) -> None:
    logging.getLogger("statefun_wsgi").disabled = False
    with caplog.at_level(logging.WARNING, logger="statefun_wsgi"):
        post(Endpoint(functions, protocols="2.x"), make())
    [record] = caplog.records
    assert record.levelno == level
    assert record.getMessage().startswith(line)
    assert "\n" not in record.getMessage()
    assert (record.exc_info is not None) is (level == logging.ERROR)  # the traceback in the same record


def test_an_address_the_request_wrote_stays_on_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("statefun_wsgi").disabled = False
    with caplog.at_level(logging.WARNING, logger="statefun_wsgi"):
        post(Endpoint(functions), batch("m/x\nforged line", "i" * 5000))
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith("'m/x\\nforged line' (id 'iii")
    assert "\n" not in message and len(message) < 2000


def test_a_refusal_before_the_body_names_no_address(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("statefun_wsgi").disabled = False
    with caplog.at_level(logging.WARNING, logger="statefun_wsgi"):
        post(Endpoint(functions), b"", method="GET")
    [record] = caplog.records
    assert record.getMessage() == "a request answered 405: GET is not allowed here: StateFun sends batches with POST"


# -- the bytes read for logs and labels ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["2.x", "3.x"])
def test_batch_target_reads_the_address_and_the_invocations(protocol: str) -> None:
    body = batch("ns/fn", "the id", invocations=7, protocol=protocol)
    assert batch_target(body) == BatchTarget("ns", "fn", "the id", 7)
    assert batch_target(body).typename == "ns/fn"  # type: ignore[union-attr]


@pytest.mark.parametrize("body", [b"", b"\xff\xff", b"\xa2\x06\x05ab"], ids=["empty", "garbage", "cut short"])
def test_batch_target_of_no_batch_is_none(body: bytes) -> None:
    assert batch_target(body) is None


# -- the dev summary -------------------------------------------------------------------------------------


@pytest.mark.parametrize("q, buckets, value", [
    (0.5, [(0.001, 10.0), (0.01, 10.0), (float("inf"), 10.0)], 0.0005),
    (0.5, [(0.001, 0.0), (0.01, 10.0), (float("inf"), 10.0)], 0.0055),
    (0.99, [(0.001, 50.0), (0.01, 100.0), (float("inf"), 100.0)], 0.00982),
    (0.99, [(0.001, 50.0), (0.01, 90.0), (float("inf"), 100.0)], 0.01),
    (0.5, [(0.001, 0.0), (float("inf"), 0.0)], None),
], ids=["first bucket", "second bucket", "interpolated", "in +Inf", "empty"])
def test_quantile_interpolates_as_histogram_quantile(q: float, buckets: Any, value: Optional[float]) -> None:
    found = quantile(q, buckets)
    assert found == value if value is None else found == pytest.approx(value)


def test_summarize_counts_batches_invocations_and_times(metrics: Metrics) -> None:
    endpoint = Endpoint(functions, metrics=metrics)
    for _ in range(3):
        post(endpoint, batch("m/ok", invocations=2))
    post(endpoint, batch("m/boom"))
    [boom, ok] = summarize(metrics.registry)
    assert (ok.function_type, ok.batches, ok.by_status, ok.invocations) == ("m/ok", 3, {"200": 3}, 6)
    assert (boom.function_type, boom.batches, boom.by_status, boom.invocations) == ("m/boom", 1, {"500": 1}, 0)
    assert ok.p50 is not None and ok.p99 is not None and 0 < ok.p50 <= ok.p99
    assert ok.line().startswith("m/ok: 3 batches (200: 3), 6 invocations, p50 ")


def test_one_invocation_is_singular() -> None:
    line = FunctionSummary("ns/fn", 1, {"200": 1}, 1, None, None).line()
    assert line == "ns/fn: 1 batch (200: 1), 1 invocation"


# -- multiprocess files: nothing lost, and metrics never fail a batch ------------------------------


@pytest.fixture
def multiproc_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_two_metrics_of_one_process_keep_their_own_files(multiproc_dir: Any) -> None:
    """A second Metrics (or a new worker with a dead one's pid) never truncates a file: every count stays."""
    first = Metrics(CollectorRegistry())
    assert post(Endpoint(functions, metrics=first), batch("m/ok", invocations=3)).status == 200
    second = Metrics(CollectorRegistry())
    assert post(Endpoint(functions, metrics=second), batch("m/ok", invocations=2)).status == 200
    assert post(Endpoint(functions, metrics=first), batch("m/ok")).status == 200
    assert len(list(multiproc_dir.glob("statefun_*.metrics"))) == 2
    found = samples(first.exposition_registry())
    assert only(found, "statefun_invocations_total") == {(("function_type", "m/ok"),): 6}
    assert only(found, "statefun_batches_total") == {(("function_type", "m/ok"), ("status", "200")): 3}


def test_a_file_cut_short_is_read_up_to_its_last_whole_entry(multiproc_dir: Any) -> None:
    metrics = Metrics(CollectorRegistry())
    assert post(Endpoint(functions, metrics=metrics), batch("m/ok", invocations=2)).status == 200
    [path] = multiproc_dir.glob("statefun_*.metrics")
    whole = path.read_bytes()
    for size in (3, 12, 30, 100):
        (multiproc_dir / f"statefun_1_{size}.metrics").write_bytes(whole[:size])
    (multiproc_dir / "statefun_2_0.metrics").write_bytes(whole[:8] + b"\xff" * 200)
    found = samples(metrics.exposition_registry())  # the scrape still answers, with the whole file's counts
    assert only(found, "statefun_invocations_total") == {(("function_type", "m/ok"),): 2}


def test_a_multiprocess_dir_that_is_not_a_writable_directory_is_refused_at_start(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=r"PROMETHEUS_MULTIPROC_DIR=.*missing' is not a writable directory"):
        Metrics(CollectorRegistry())


def test_a_file_that_cannot_be_written_fails_no_batch(multiproc_dir: Any, caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(CollectorRegistry())
    multiproc_dir.rmdir()  # gone after the start: the counts stay in memory, the batches answer
    endpoint = Endpoint(functions, metrics=metrics)
    with caplog.at_level(logging.ERROR, logger="statefun_wsgi.metrics"):
        assert post(endpoint, batch("m/ok", invocations=2)).status == 200
        assert post(endpoint, batch("m/boom")).status == 500
    errors = [record for record in caplog.records if record.name == "statefun_wsgi.metrics"]
    assert len(errors) == 1 and "counted in memory only" in errors[0].getMessage()


def test_a_handler_subclass_keeps_its_own_call_with_metrics_on(metrics: Metrics) -> None:
    calls = []

    class Audited(RequestReplyHandler):
        def __call__(self, request_bytes: bytes) -> bytes:
            calls.append(len(request_bytes))
            return super().__call__(request_bytes)

    endpoint = Endpoint(Audited(functions), metrics=metrics)
    assert post(endpoint, batch("m/ok", invocations=2)).status == 200
    assert len(calls) == 1
    assert only(samples(metrics.registry), "statefun_invocations_total") == {(("function_type", "m/ok"),): 2}


def test_a_summary_line() -> None:
    line = FunctionSummary("ns/fn", 4, {"500": 1, "200": 3}, 3, 0.00021, 0.0019).line()
    assert line == "ns/fn: 4 batches (200: 3, 500: 1), 3 invocations, p50 0.21 ms, p99 1.9 ms"
