"""The monitoring side of deploy/: Prometheus finds and scrapes the app's pods, and the Grafana
dashboard charts only what the code exports.

- every query of deploy/grafana/statefun-dashboard.json names metrics (and labels) that a
  real :class:`~statefun_wsgi.metrics.Metrics` exports after answering batches, and the
  dashboard charts batches, invocations, errors and latency per function type;
- the app's pods carry the scrape annotations (the public port, the metrics path), and the
  Prometheus job (deploy/k8s/monitoring/prometheus.yml) and PodMonitor read them; the
  NetworkPolicy lets a scraper reach that port; metrics are on (STATEFUN_METRICS) with a
  multiprocess directory on an emptyDir; the image installs the metrics extra;
- the container's command with the pod's environment answers GET /metrics with the batch
  it ran on the runtime's listener.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from statefun_wsgi.endpoint import Endpoint
from statefun_wsgi.metrics import DEFAULT_METRICS_PATH, Metrics
from test_deploy import (
    DEPLOY,
    K8S,
    _ingress_batch,
    compose,
    compose_env,
    container_command,
    dockerfile_instructions,
    endpoint,
    exec_form,
    get,
    k8s_env,
    k8s_object,
    k8s_objects,
    only_container,
    selects,
)

DASHBOARD = DEPLOY / "grafana" / "statefun-dashboard.json"
MONITORING = K8S / "monitoring"

#: PromQL's words that look like names: functions, aggregations, keywords.
PROMQL_WORDS = {
    "sum", "by", "without", "rate", "irate", "increase", "histogram_quantile", "avg", "max", "min", "count",
    "label_values", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "topk", "bottomk",
}


def exported() -> Dict[str, Set[str]]:
    """Sample name -> its label names, as a real Metrics exports them once batches ran and failed."""
    from google.protobuf.wrappers_pb2 import StringValue

    from builders import request
    from examples.greeter.functions import functions

    metrics = Metrics(CollectorRegistry())
    endpoint = Endpoint(functions, metrics=metrics)
    for body in (_ingress_batch("alice"), request("example/greeter", "x", messages=[StringValue(value="y")])):
        endpoint.respond("POST", "application/octet-stream", str(len(body)), io.BytesIO(body))  # 200, then 500
    names: Dict[str, Set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    assert any(name.startswith("statefun_function_exceptions") for name in names)  # both ran
    return names


def queries() -> List[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    found += [variable["query"]["query"] for variable in dashboard["templating"]["list"]
              if variable["type"] == "query"]
    return found


def names_and_labels(query: str) -> Tuple[Set[str], Set[str]]:
    """The metric names a PromQL query selects, and the label names it uses."""
    without_strings = re.sub(r'"[^"]*"', '""', query)
    labels = set()
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", without_strings):
        labels.update(name.strip() for name in grouping.split(",") if name.strip())
    for selector in re.findall(r"\{([^}]*)\}", without_strings):
        labels.update(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", selector))
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", without_strings)  # selectors and ranges out
    bare = re.sub(r"(label_values\(\s*[\w:]+)\s*,\s*\w+\s*\)", r"\1)", bare)  # its label is no metric
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    names = {word for word in re.findall(r"(?<![\w$])([A-Za-z_:][\w:]*)", bare) if word not in PROMQL_WORDS}
    label_values = re.findall(r"label_values\(\s*[\w:]+\s*,\s*(\w+)\s*\)", without_strings)
    return names, labels | set(label_values)


def test_every_dashboard_query_names_an_exported_metric_and_its_labels() -> None:
    metrics = exported()
    all_queries = queries()
    assert all_queries
    for query in all_queries:
        names, labels = names_and_labels(query)
        assert names, f"no metric in {query!r}"
        unknown = names - metrics.keys()
        assert not unknown, f"{query!r} names {sorted(unknown)}, which the code does not export"
        allowed = set().union(*(metrics[name] for name in names))
        assert labels <= allowed, f"{query!r} uses labels {sorted(labels - allowed)} that its metrics lack"


def test_the_query_reader_sees_a_wrong_name() -> None:
    names, labels = names_and_labels('sum by (function_type) (rate(statefun_batchs_total{status!="200"}[5m]))')
    assert names == {"statefun_batchs_total"} and labels == {"function_type", "status"}
    assert "statefun_batchs_total" not in exported()


def test_the_dashboard_charts_batches_invocations_errors_and_latency_per_function_type() -> None:
    text = " ".join(queries())
    for needed in ("statefun_batches_total", "statefun_invocations_total", "statefun_function_exceptions_total",
                   'status!="200"', "statefun_batch_duration_seconds_bucket"):
        assert needed in text
    for query in queries():
        if not query.startswith("label_values"):
            assert "function_type" in names_and_labels(query)[1], query  # per function type


# -- Kubernetes ----------------------------------------------------------------------------------------


def app_pod() -> Dict[str, Any]:
    return k8s_object("Deployment", "greeter-app")["spec"]["template"]


def test_the_app_pods_ask_to_be_scraped_on_the_public_port() -> None:
    annotations = app_pod()["metadata"]["annotations"]
    container = only_container(k8s_object("Deployment", "greeter-app"))
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["http"]  # not the runtime's private port
    assert annotations["prometheus.io/path"] == DEFAULT_METRICS_PATH


def test_metrics_are_on_with_a_multiprocess_directory_on_an_emptydir() -> None:
    pod = app_pod()["spec"]
    container = only_container(k8s_object("Deployment", "greeter-app"))
    env = k8s_env(container)
    assert env["STATEFUN_METRICS"] == "1"
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volume = {volume["name"]: volume for volume in pod["volumes"]}[mounts[env["PROMETHEUS_MULTIPROC_DIR"]]]
    assert "emptyDir" in volume
    assert compose_env(compose()["services"]["greeter-app"])["STATEFUN_METRICS"] == "1"
    runs = [args for keyword, args in dockerfile_instructions(DEPLOY / "Dockerfile.app") if keyword == "RUN"]
    assert any('pip install ".[metrics]"' in args for args in runs)


def test_the_network_policy_lets_a_scraper_reach_the_metrics_port() -> None:
    policy = k8s_object("NetworkPolicy", "greeter-app-runtime")
    assert selects(policy["spec"]["podSelector"], app_pod()["metadata"]["labels"])
    open_rules = [rule for rule in policy["spec"]["ingress"] if "from" not in rule]
    assert any(port["port"] == "http" for rule in open_rules for port in rule["ports"])


def test_the_scrape_job_and_the_podmonitor_read_the_same_pods() -> None:
    job = yaml.safe_load((MONITORING / "prometheus.yml").read_text())["scrape_configs"][0]
    sources = {label for rule in job["relabel_configs"] for label in rule.get("source_labels", [])}
    for annotation in app_pod()["metadata"]["annotations"]:
        assert f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-z0-9]', '_', annotation)}" in sources
    [monitor] = k8s_objects(MONITORING)
    assert monitor["kind"] == "PodMonitor"
    assert selects(monitor["spec"]["selector"], app_pod()["metadata"]["labels"])
    [scrape] = monitor["spec"]["podMetricsEndpoints"]
    assert (scrape["port"], scrape["path"]) == ("http", DEFAULT_METRICS_PATH)


def test_the_container_with_the_pods_environment_serves_its_metrics(tmp_path: Path) -> None:
    container = only_container(k8s_object("Deployment", "greeter-app"))
    env = {name: value for name, value in k8s_env(container).items() if not name.startswith("STATEFUN_RUNTIME")}
    env.update(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), STATEFUN_ACCESS_LOG="off")  # the emptyDir, here
    command = exec_form(dict(dockerfile_instructions(DEPLOY / "Dockerfile.app"))["CMD"])
    with container_command(command, env) as (port, runtime_port, log):
        _, _, path = endpoint()
        status, _, _ = get(runtime_port, path, method="POST", body=_ingress_batch("alice"),
                           headers={"Content-Type": "application/octet-stream"})
        assert status == 200, log.read_text(errors="replace")
        status, headers, body = get(port, DEFAULT_METRICS_PATH)
        assert status == 200, log.read_text(errors="replace")
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(body.decode()) for sample in family.samples}
    assert samples[("statefun_batches_total", (("function_type", "example/greeter"), ("status", "200")))] == 1
    assert samples[("statefun_invocations_total", (("function_type", "example/greeter"),))] == 1
    assert list(tmp_path.glob("statefun_*.metrics")), "the workers wrote no counts to PROMETHEUS_MULTIPROC_DIR"


@pytest.mark.parametrize("path", sorted(MONITORING.glob("*")), ids=lambda path: path.name)
def test_the_monitoring_files_parse(path: Path) -> None:
    assert yaml.safe_load(path.read_text(encoding="utf-8"))
