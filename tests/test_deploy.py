"""The deployment files under deploy/ agree with each other and with the example app.

No Docker engine or Kubernetes cluster runs where these tests run, so they check what can
be checked without one:

- every YAML file parses; module.yaml loads and matches the functions' registry;
- the Kubernetes ConfigMap holds exactly deploy/module.yaml and deploy/flink-conf.yaml;
- names, ports and paths agree across module.yaml, docker-compose.yml, k8s/ and
  gunicorn.conf.py (the endpoint is the app's runtime listener: in compose an alias of the
  app on an internal network only the worker joins, where gunicorn binds it; in k8s a
  Service that carries that port alone; the master is the one the workers look for);
- the Kubernetes NetworkPolicy lets only the StateFun worker pods reach the runtime's
  listener, and everyone the public one;
- the images and the app's command are the same in the Dockerfile, compose and k8s;
- the k8s grace period (and compose's stop_grace_period) outlast gunicorn's graceful_timeout;
- the Dockerfiles parse and every COPY source exists in (and is not ignored from) its
  build context;
- the Kafka ingress's typeUrl names a message the greeter accepts, and the producer's
  records decode as that message; the egress id is the one the functions write to;
- the container's command itself, run from the repository root, answers the probes on
  GET / and serves a batch shaped as the ingress sends it at the endpoint's path on the
  runtime's listener, and the app's 404 for it on the public one.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import json
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, Mapping, Tuple
from urllib.parse import urlsplit

import pytest
import yaml
from gunicorn import version_info as gunicorn_version
from servers import free_port

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
#: The StateFun 3.3 cluster's manifests (tests/test_deploy3.py): its workers share the app and
#: its NetworkPolicy.
K8S3 = DEPLOY / "statefun-3.3" / "k8s"

if str(REPO) not in sys.path:  # examples/ and app.py are imported from the repository root
    sys.path.insert(0, str(REPO))

from examples.greeter import messages_pb2  # noqa: E402
from examples.greeter.functions import GREETS_EGRESS, functions  # noqa: E402
from statefun_wsgi.module_yaml import check_module_yaml, load_module_yaml  # noqa: E402

APP_COMMAND = ["gunicorn", "-c", "gunicorn.conf.py", "app:wsgi"]
STATEFUN_IMAGE = "flink-statefun:2.2.2"
TYPE_URL_PREFIX = "type.googleapis.com/"
#: The environment variables gunicorn.conf.py reads: cleared before evaluating it for a container.
GUNICORN_ENV = (
    "PORT", "STATEFUN_BIND", "WEB_CONCURRENCY", "STATEFUN_WORKER_CLASS", "STATEFUN_THREADS",
    "STATEFUN_KEEPALIVE", "STATEFUN_TIMEOUT", "STATEFUN_GRACEFUL_TIMEOUT", "STATEFUN_REUSE_PORT", "STATEFUN_BACKLOG",
    "STATEFUN_ACCESS_LOG", "STATEFUN_LOG_LEVEL", "STATEFUN_ACCESS_LOG_FORMAT",
    "STATEFUN_RUNTIME_BIND", "STATEFUN_SERVE", "STATEFUN_RUNTIME_CERTFILE", "STATEFUN_RUNTIME_KEYFILE",
    "STATEFUN_RUNTIME_CA_CERTS", "STATEFUN_METRICS", "PROMETHEUS_MULTIPROC_DIR",
)


# ---------------------------------------------------------------------------------------
# Reading the files


def yaml_files() -> List[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def compose() -> Dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def k8s_objects(*folders: Path) -> List[Dict[str, Any]]:
    """The objects under deploy/k8s (or under ``folders``)."""
    objects = []
    for folder in folders or (K8S,):
        for path in sorted(folder.glob("*.yaml")):
            objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return objects


def k8s_object(kind: str, name: str) -> Dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name} under deploy/k8s, found {len(found)}"
    return found[0]


def only_container(deployment: Mapping[str, Any]) -> Dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: expected one container"
    return containers[0]


def k8s_env(container: Mapping[str, Any]) -> Dict[str, str]:
    return {item["name"]: str(item["value"]) for item in container.get("env", [])}


def compose_env(service: Mapping[str, Any]) -> Dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def module_spec():
    return load_module_yaml(DEPLOY / "module.yaml")


def endpoint() -> Tuple[str, int, str]:
    """(host, port, path) of the functions' endpoint; every function must use the same one."""
    endpoints = {spec.endpoint for spec in module_spec().functions.values()}
    assert len(endpoints) == 1, f"the example's functions are served by one app, found {sorted(endpoints)}"
    url = urlsplit(endpoints.pop())
    assert url.scheme == "http"
    return url.hostname, url.port or 80, url.path


def gunicorn_settings(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Dict[str, Any]:
    """gunicorn.conf.py's settings as a container with environment ``env`` sees them."""
    with monkeypatch.context() as patch:
        for name in GUNICORN_ENV:
            patch.setenv(name, "")  # recorded, so that what the file sets (STATEFUN_RUNTIME_BIND) is undone
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return runpy.run_path(str(REPO / "gunicorn.conf.py"))


@pytest.mark.parametrize("value", ["0", "off", "OFF", "false", "False", "no", " no "])
def test_reuse_port_turns_off_with_any_usual_word(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert gunicorn_settings(monkeypatch, {"STATEFUN_REUSE_PORT": value})["reuse_port"] is False


@pytest.mark.skipif(gunicorn_version < (24,), reason="gunicorn < 24 keeps reuse_port off")
@pytest.mark.parametrize("value", ["", "1", "on", "True", "yes"])
def test_reuse_port_stays_on_with_gunicorn_24(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert gunicorn_settings(monkeypatch, {"STATEFUN_REUSE_PORT": value})["reuse_port"] is True


def test_a_switch_that_is_neither_on_nor_off_stops_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"^STATEFUN_REUSE_PORT='maybe': expected on or off \(1/0, true/false, yes/no\)$"):
        gunicorn_settings(monkeypatch, {"STATEFUN_REUSE_PORT": "maybe"})


def binds(settings: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    """(public, runtime) binds of gunicorn.conf.py's settings; ``bind`` is both."""
    public, runtime = list(settings["_public_binds"]), list(settings["_runtime_binds"])
    assert settings["bind"] == public + runtime
    return public, runtime


def bind_port(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


def load_tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"deploy_tools_{name}", DEPLOY / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------
# Dockerfiles


def dockerfile_instructions(path: Path) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: List[Tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, f"{path.name}: ends inside a continued line"
    return instructions


def exec_form(arguments: str) -> List[str]:
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


def copy_sources(arguments: str) -> List[str]:
    if arguments.startswith("["):
        parts = exec_form(arguments)
    else:
        parts = shlex.split(arguments)
    flags = [p for p in parts if p.startswith("--")]
    assert not any(f.startswith("--from") for f in flags), "COPY --from is not expected here"
    parts = [p for p in parts if not p.startswith("--")]
    assert len(parts) >= 2, f"COPY needs a source and a destination: {arguments}"
    return parts[:-1]


def _ignore_regex(pattern: str) -> "re.Pattern[str]":
    pattern = pattern.strip("/")
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            regex += ".*"
            index += 2
        elif pattern[index] == "*":
            regex += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            regex += "[^/]"
            index += 1
        else:
            regex += re.escape(pattern[index])
            index += 1
    return re.compile(regex + r"\Z")


def ignored(path: str, patterns: List[str]) -> bool:
    """Whether a .dockerignore keeps ``path`` (relative to the context) out of the build."""
    parts = Path(path).parts
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _ignore_regex(pattern[1:] if negated else pattern)
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def ignore_patterns(dockerfile: Path, context: Path) -> List[str]:
    """BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile, else the context's."""
    for candidate in (dockerfile.with_name(dockerfile.name + ".dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            lines = candidate.read_text(encoding="utf-8").splitlines()
            return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return []


def dockerfile_builds() -> Iterator[Tuple[str, Path, Path]]:
    """(compose service, Dockerfile, build context) for every service that builds an image."""
    for name, service in compose()["services"].items():
        build = service.get("build")
        if build is None:
            continue
        if isinstance(build, str):
            build = {"context": build}
        context = (DEPLOY / build.get("context", ".")).resolve()
        yield name, (context / build.get("dockerfile", "Dockerfile")).resolve(), context


# ---------------------------------------------------------------------------------------
# Every file parses


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert documents, f"{path} holds no YAML document"


def test_the_expected_files_exist() -> None:
    for name in (
        "module.yaml", "flink-conf.yaml", "docker-compose.yml", "README.md",
        "Dockerfile.app", "Dockerfile.statefun", "Dockerfile.tools",
        "tools/producer.py", "tools/consumer.py",
    ):
        assert (DEPLOY / name).is_file(), f"deploy/{name} is missing"
    assert list(K8S.glob("*.yaml")), "deploy/k8s has no manifests"


# ---------------------------------------------------------------------------------------
# module.yaml


def test_module_yaml_loads_and_agrees_with_the_registry() -> None:
    spec = module_spec()
    assert spec.version == "2.0"
    assert check_module_yaml(spec, functions) == []
    greeter = spec.functions["example/greeter"]
    (seen_count,) = greeter.states
    assert seen_count.name == "seen_count" and seen_count.expire_after is not None
    assert greeter.max_batch_size == 500
    assert greeter.timeout.total_seconds() == 60


def test_the_ingress_type_url_is_a_message_the_greeter_accepts() -> None:
    (ingress,) = module_spec().ingresses
    assert ingress.id == "example/names"
    assert ingress.type == "statefun.kafka.io/routable-protobuf-ingress"
    bound = {function.typename: function for function in functions}
    for topic in ingress.spec["topics"]:
        type_url = topic["typeUrl"]
        assert type_url.startswith(TYPE_URL_PREFIX), type_url
        full_name = type_url.rsplit("/", 1)[1]
        package, _, message_name = full_name.rpartition(".")
        assert package == messages_pb2.DESCRIPTOR.package
        assert message_name in messages_pb2.DESCRIPTOR.message_types_by_name, f"no message {full_name}"
        message_class = getattr(messages_pb2, message_name)
        assert topic["targets"], "a routable topic needs targets"
        for target in topic["targets"]:
            assert target in bound, f"ingress routes to {target}, which nobody binds"
            assert message_class in (bound[target].message_types or ()), (
                f"{target} does not accept {full_name}"
            )


def test_the_egress_is_the_one_the_functions_write_to() -> None:
    (egress,) = module_spec().egresses
    assert egress.id == GREETS_EGRESS
    assert egress.type == "statefun.kafka.io/generic-egress"
    semantic = egress.spec["deliverySemantic"]
    assert semantic["type"] == "exactly-once"
    # Must not exceed the broker's transaction.max.timeout.ms (15 min by default).
    assert isinstance(semantic["transactionTimeoutMillis"], int)
    assert 0 < semantic["transactionTimeoutMillis"] <= 900_000


def test_kafka_addresses_and_topics_match_compose() -> None:
    spec = module_spec()
    addresses = {io.spec["address"] for io in (*spec.ingresses, *spec.egresses)}
    assert len(addresses) == 1, addresses
    host, port = addresses.pop().split(":")
    services = compose()["services"]
    assert host in services, f"module.yaml reads Kafka at {host}, which compose does not run"
    listeners = compose_env(services[host])["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{host}:{port}" in listeners

    producer, consumer = load_tool("producer"), load_tool("consumer")
    (ingress,) = spec.ingresses
    assert [topic["topic"] for topic in ingress.spec["topics"]] == [producer.TOPIC]
    init = " ".join(services["kafka-init"]["command"])
    for topic in (producer.TOPIC, *consumer.TOPICS):
        assert re.search(rf"\b{topic}\b", init), f"kafka-init does not create topic {topic}"
    assert set(consumer.TOPICS) == {"greetings", "reminders"}  # what example/greeter writes


# ---------------------------------------------------------------------------------------
# Kubernetes ConfigMap


@pytest.mark.parametrize("name", ["module.yaml", "flink-conf.yaml"])
def test_the_configmap_holds_the_same_files(name: str) -> None:
    config_map = k8s_object("ConfigMap", "statefun-config")
    assert config_map["data"][name] == (DEPLOY / name).read_text(encoding="utf-8"), (
        f"deploy/k8s ConfigMap statefun-config key {name} differs from deploy/{name}"
    )


@pytest.mark.parametrize("name", ["statefun-master", "statefun-worker"])
def test_the_runtime_pods_mount_the_module_and_the_flink_conf(name: str) -> None:
    deployment = k8s_object("Deployment", name)
    container = only_container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounted: Dict[str, str] = {}
    for mount in container["volumeMounts"]:
        config_map = volumes[mount["name"]].get("configMap")
        if not config_map:
            continue
        assert config_map["name"] == "statefun-config"
        for item in config_map["items"]:
            if "subPath" in mount:
                if mount["subPath"] == item["path"]:
                    mounted[item["key"]] = mount["mountPath"]
            else:
                mounted[item["key"]] = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
    assert re.fullmatch(r"/opt/statefun/modules/[^/]+/module\.yaml", mounted.get("module.yaml", "")), mounted
    assert mounted.get("flink-conf.yaml") == "/opt/flink/conf/flink-conf.yaml", mounted


# ---------------------------------------------------------------------------------------
# Names and ports agree


PUBLIC_PORT, RUNTIME_PORT = 8000, 9000


def test_the_endpoint_is_the_runtimes_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, path = endpoint()
    assert (host, port, path) == ("greeter-app-runtime", RUNTIME_PORT, "/statefun")

    import app

    assert app.wsgi.path == path, "app.py serves the functions elsewhere than module.yaml says"
    public, runtime = binds(gunicorn_settings(monkeypatch, {}))
    assert [bind_port(b) for b in public] == [PUBLIC_PORT] and [bind_port(b) for b in runtime] == [port]


def container_port(container: Mapping[str, Any], port: Any) -> int:
    """A container port given by number or by name."""
    named = {p.get("name"): p["containerPort"] for p in container["ports"]}
    return named[port] if isinstance(port, str) else int(port)


def test_compose_reaches_the_runtimes_listener_on_an_internal_network_only(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, _ = endpoint()
    services, networks = compose()["services"], compose().get("networks") or {}
    app_service = services["greeter-app"]
    # The endpoint host is the app's alias on one network; gunicorn binds the runtime's
    # listener there (at the app's address on that network), nowhere else.
    aliased = [name for name, spec in (app_service.get("networks") or {}).items() if host in ((spec or {}).get("aliases") or [])]
    assert len(aliased) == 1, f"{host} must be the app's alias on exactly one network, found {aliased}"
    (network,) = aliased
    assert networks[network].get("internal") is True, f"network {network} must be internal"
    members = {name for name, service in services.items() if network in (service.get("networks") or [])}
    assert members == {"greeter-app", "statefun-worker"}, f"only the app and the worker may join {network}"
    public, runtime = binds(gunicorn_settings(monkeypatch, compose_env(app_service)))
    assert runtime == [f"{host}:{port}"]
    assert [bind_port(b) for b in public] == [PUBLIC_PORT]
    assert host not in services, "a service named like the alias would resolve on every network"
    # Published: the public port only.
    published = [str(mapping).rsplit(":", 1)[-1].split("/")[0] for mapping in app_service.get("ports", [])]
    assert published == [str(PUBLIC_PORT)], published
    for name, service in services.items():
        assert not any(str(mapping).endswith(f":{port}") for mapping in service.get("ports", [])), name
    # The worker still reaches Kafka and the master on the default network.
    assert "default" in services["statefun-worker"]["networks"]


def test_k8s_reaches_the_runtimes_listener_through_a_service_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, _ = endpoint()
    deployment = k8s_object("Deployment", "greeter-app")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = only_container(deployment)
    public, runtime = binds(gunicorn_settings(monkeypatch, k8s_env(container)))
    assert k8s_env(container).get("STATEFUN_RUNTIME_BIND") == runtime[0]

    runtime_service = k8s_object("Service", host)
    assert runtime_service["spec"]["selector"].items() <= labels.items()
    (service_port,) = runtime_service["spec"]["ports"]  # the runtime's listener alone
    assert service_port["port"] == port
    assert container_port(container, service_port.get("targetPort", port)) == bind_port(runtime[0]) == port

    public_service = k8s_object("Service", "greeter-app")
    assert public_service["spec"]["selector"].items() <= labels.items()
    targets = {container_port(container, p.get("targetPort", p["port"])) for p in public_service["spec"]["ports"]}
    assert targets == {bind_port(public[0])} == {PUBLIC_PORT}


def pods(name: str) -> Dict[str, str]:
    return k8s_object("Deployment", name)["spec"]["template"]["metadata"]["labels"]


def pods3(name: str) -> Dict[str, str]:
    """The pod labels of a Deployment of the 3.3 cluster (deploy/statefun-3.3/k8s)."""
    (found,) = [o for o in k8s_objects(K8S3) if o["kind"] == "Deployment" and o["metadata"]["name"] == name]
    return found["spec"]["template"]["metadata"]["labels"]


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"only matchLabels is read here: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_the_network_policy_lets_only_the_workers_reach_the_runtimes_listener() -> None:
    app_container = only_container(k8s_object("Deployment", "greeter-app"))
    policies = [o for o in k8s_objects() if o["kind"] == "NetworkPolicy" and selects(o["spec"]["podSelector"], pods("greeter-app"))]
    assert len(policies) == 1, "one NetworkPolicy selects the app's pods"
    (policy,) = policies
    assert "namespace" not in policy["metadata"]
    assert "Ingress" in policy["spec"]["policyTypes"]
    reachable: Dict[int, List[Any]] = {PUBLIC_PORT: [], RUNTIME_PORT: []}  # port -> peers (None: anyone)
    for rule in policy["spec"].get("ingress", []):
        ports = [container_port(app_container, p["port"]) for p in rule.get("ports", [])] or list(reachable)
        for port in ports:
            reachable.setdefault(port, []).extend(rule.get("from") or [None])
    assert None in reachable[PUBLIC_PORT], "the public port must stay open to everyone"
    peers = reachable[RUNTIME_PORT]
    assert peers, "nothing may reach the runtime's listener"
    # The workers of the 2.2 cluster and of the 3.3 one (deploy/statefun-3.3/k8s), nobody else.
    workers = {"statefun-worker": pods("statefun-worker"), "statefun33-worker": pods3("statefun33-worker")}
    others = {"statefun-master": pods("statefun-master"), "greeter-app": pods("greeter-app"),
              "statefun33-master": pods3("statefun33-master")}
    for peer in peers:
        assert peer is not None, "the runtime's listener is open to everyone"
        assert set(peer) == {"podSelector"}, f"only pods of this namespace, by label: {peer}"
        assert any(selects(peer["podSelector"], labels) for labels in workers.values()), peer
        for other, labels in others.items():
            assert not selects(peer["podSelector"], labels), f"{other} may reach the runtime's listener"
    for worker, labels in workers.items():
        assert any(selects(peer["podSelector"], labels) for peer in peers), f"{worker} cannot reach the functions"


def test_every_k8s_selector_matches() -> None:
    objects = k8s_objects(K8S, K8S3)  # the NetworkPolicy admits the workers of both clusters
    pod_labels = []
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert "namespace" not in deployment["metadata"]
        pod_labels.append(labels)
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]["name"]
        assert "namespace" not in service["metadata"]
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        selector = policy["spec"]["podSelector"]
        assert any(selects(selector, labels) for labels in pod_labels), policy["metadata"]["name"]
        for rule in policy["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                assert any(selects(peer["podSelector"], labels) for labels in pod_labels), peer


def test_the_master_is_where_the_workers_look_for_it() -> None:
    services = compose()["services"]
    flink_conf = yaml.safe_load((DEPLOY / "flink-conf.yaml").read_text(encoding="utf-8"))
    master = flink_conf["jobmanager.rpc.address"]
    assert master == "statefun-master"
    assert compose_env(services[master]) == {"ROLE": "master", "MASTER_HOST": master}
    assert compose_env(services["statefun-worker"]) == {"ROLE": "worker", "MASTER_HOST": master}

    k8s_service = k8s_object("Service", master)
    assert {p["port"] for p in k8s_service["spec"]["ports"]} >= {
        flink_conf["jobmanager.rpc.port"], flink_conf["blob.server.port"]
    }
    assert k8s_env(only_container(k8s_object("Deployment", master))) == {"ROLE": "master", "MASTER_HOST": master}
    assert k8s_env(only_container(k8s_object("Deployment", "statefun-worker"))) == {
        "ROLE": "worker", "MASTER_HOST": master
    }


def test_images_and_commands_agree() -> None:
    services = compose()["services"]
    app_dockerfile = dockerfile_instructions(DEPLOY / "Dockerfile.app")
    cmd = [exec_form(args) for keyword, args in app_dockerfile if keyword == "CMD"]
    assert cmd[-1:] == [APP_COMMAND]

    app_service = services["greeter-app"]
    assert app_service.get("command", APP_COMMAND) == APP_COMMAND
    app_container = only_container(k8s_object("Deployment", "greeter-app"))
    assert app_container.get("command", APP_COMMAND) == APP_COMMAND
    assert "args" not in app_container
    assert app_container["image"] == app_service["image"]
    assert (DEPLOY / app_service["build"]["context"] / app_service["build"]["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile.app"
    )

    # The runtime: the same StateFun release everywhere, with the module under /opt/statefun/modules/.
    statefun = dockerfile_instructions(DEPLOY / "Dockerfile.statefun")
    assert statefun[0] == ("FROM", STATEFUN_IMAGE)
    copies = {shlex.split(args)[-1]: copy_sources(args) for keyword, args in statefun if keyword == "COPY"}
    assert copies["/opt/statefun/modules/greeter/module.yaml"] == ["module.yaml"]
    assert copies["/opt/flink/conf/flink-conf.yaml"] == ["flink-conf.yaml"]
    for name in ("statefun-master", "statefun-worker"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile.statefun"
        assert only_container(k8s_object("Deployment", name))["image"] == STATEFUN_IMAGE
    assert services["statefun-master"]["image"] == services["statefun-worker"]["image"]

    # The tools.
    assert services["producer"]["command"] == ["python", "producer.py"]
    assert services["consumer"]["command"] == ["python", "consumer.py"]


def test_the_app_image_runs_as_documented() -> None:
    instructions = dockerfile_instructions(DEPLOY / "Dockerfile.app")
    assert instructions[0] == ("FROM", "python:3.11-slim")
    keywords = dict(instructions)
    assert keywords["EXPOSE"].split() == [str(PUBLIC_PORT), str(RUNTIME_PORT)]
    assert keywords["STOPSIGNAL"] == "SIGTERM"
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0"), "the app must not run as root"
    assert any(keyword == "RUN" and re.search(r"pip install \"?\.", args) for keyword, args in instructions)
    # k8s runs it as the image's user, and checks that it is not root.
    pod = k8s_object("Deployment", "greeter-app")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == users[-1]


# ---------------------------------------------------------------------------------------
# Graceful termination and probes


def _seconds(value: Any) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value))
    assert match and any(match.groups()), f"cannot read the duration {value!r}"
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_k8s_termination_outlasts_gunicorns_graceful_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = k8s_object("Deployment", "greeter-app")
    pod = deployment["spec"]["template"]["spec"]
    container = only_container(deployment)
    settings = gunicorn_settings(monkeypatch, k8s_env(container))
    graceful = settings["graceful_timeout"]
    assert graceful == 60

    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep" and 1 <= int(pre_stop[1]) <= 10, pre_stop
    grace = pod["terminationGracePeriodSeconds"]
    assert grace == 75
    assert grace > int(pre_stop[1]) + graceful, "SIGKILL would cut off batches gunicorn is finishing"

    for probe in ("readinessProbe", "livenessProbe"):
        http_get = container[probe]["httpGet"]
        assert (http_get["path"], http_get["port"]) == ("/", PUBLIC_PORT), probe

    # docker compose: the same margin before Docker's SIGKILL.
    service = compose()["services"]["greeter-app"]
    compose_graceful = gunicorn_settings(monkeypatch, compose_env(service))["graceful_timeout"]
    assert _seconds(service["stop_grace_period"]) > compose_graceful


# ---------------------------------------------------------------------------------------
# Dockerfiles parse; COPY sources are in the build context


def test_every_dockerfile_is_built_by_compose() -> None:
    built = {dockerfile for _, dockerfile, _ in dockerfile_builds()}
    assert set(DEPLOY.glob("Dockerfile.*")) - set(DEPLOY.glob("*.dockerignore")) <= built


@pytest.mark.parametrize(
    "service,dockerfile,context", list(dockerfile_builds()), ids=[name for name, _, _ in dockerfile_builds()]
)
def test_dockerfile_parses_and_copies_what_its_context_holds(service: str, dockerfile: Path, context: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    keywords = [keyword for keyword, _ in instructions]
    assert keywords[0] in ("FROM", "ARG") and "FROM" in keywords, f"{dockerfile.name}: FROM must come first"
    assert keywords[: keywords.index("FROM")] == ["ARG"] * keywords.index("FROM")
    known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
             "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
    assert set(keywords) <= known, f"{dockerfile.name}: unknown instructions {set(keywords) - known}"
    for keyword, args in instructions:
        if keyword in ("CMD", "ENTRYPOINT") and args.startswith("["):
            exec_form(args)

    patterns = ignore_patterns(dockerfile, context)
    for keyword, args in instructions:
        if keyword not in ("COPY", "ADD"):
            continue
        for source in copy_sources(args):
            path = context / source
            assert path.exists(), f"{dockerfile.name}: COPY {source}: no such file in the context {context}"
            assert not ignored(source.rstrip("/"), patterns), f"{dockerfile.name}: COPY {source} is dockerignored"


def test_dockerignore_reading() -> None:
    patterns = ["**/__pycache__", "deploy", "!deploy/tools", "*.egg-info"]
    assert ignored("deploy/module.yaml", patterns)
    assert not ignored("deploy/tools/producer.py", patterns)
    assert ignored("examples/greeter/__pycache__", patterns)
    assert ignored("statefun_wsgi.egg-info", patterns)
    assert not ignored("examples/greeter/messages_pb2.py", patterns)


# ---------------------------------------------------------------------------------------
# The tools


def test_the_producer_sends_what_the_ingress_expects() -> None:
    producer = load_tool("producer")
    (ingress,) = module_spec().ingresses
    message_name = ingress.spec["topics"][0]["typeUrl"].rsplit(".", 1)[1]
    key, value = next(iter(producer.records(["alice"], count=1)))
    assert key == b"alice"  # the function id
    decoded = getattr(messages_pb2, message_name).FromString(value)
    assert decoded.name == "alice"
    assert list(producer.records(["a", "b"], count=3)) == [
        (b"a", producer.encode("a")), (b"b", producer.encode("b")), (b"a", producer.encode("a"))
    ]


def test_the_consumer_prints_a_line_per_record() -> None:
    consumer = load_tool("consumer")
    line = consumer.render("greetings", b"alice", "Hello alice! Nice to meet you.".encode())
    assert line.split() == ["greetings", "alice:", "Hello", "alice!", "Nice", "to", "meet", "you."]
    assert consumer.render("reminders", None, b"x").split() == ["reminders", "-:", "x"]


# ---------------------------------------------------------------------------------------
# The container's command, run here

#: Bounds on every wait, in seconds.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def get(port: int, path: str, timeout: float = 10.0, **request: Any) -> Tuple[int, Dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(request.pop("method", "GET"), path, **request)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def _no_control_socket() -> Tuple[str, ...]:
    # gunicorn 25+ opens a control socket at one fixed path under $HOME: servers that run at
    # the same time on one machine would fight over it. (The image gives its user a home.)
    from gunicorn.config import KNOWN_SETTINGS

    names = {setting.name for setting in KNOWN_SETTINGS}
    return ("--no-control-socket",) if "control_socket_disable" in names else ()


@contextlib.contextmanager
def container_command(command: List[str], env: Mapping[str, str]) -> Iterator[Tuple[int, int, Path]]:
    """Run the image's command from the repository root (as the image runs it from /app)
    with the Python running the tests, its public and runtime listeners on 127.0.0.1; yield
    (public port, runtime port, log) once GET / answers; always stop it: SIGTERM, then
    SIGKILL of its process group, every wait bounded."""
    assert command[0] == "gunicorn"
    port, runtime_port = free_port(), free_port()
    environment = {name: value for name, value in os.environ.items() if name not in GUNICORN_ENV}
    environment.update(env)
    environment["STATEFUN_BIND"] = f"127.0.0.1:{port}"
    environment["STATEFUN_RUNTIME_BIND"] = f"127.0.0.1:{runtime_port}"
    # A short graceful timeout so that stopping never waits the production 60 s.
    argv = [sys.executable, "-m", "gunicorn", "--graceful-timeout", "3", *_no_control_socket(), *command[1:]]
    with tempfile.TemporaryDirectory(prefix="statefun-deploy-") as directory:
        log_path = Path(directory) / "gunicorn.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv, cwd=REPO, env=environment, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if process.poll() is not None:
                    output = log_path.read_text(errors="replace")
                    pytest.fail(f"gunicorn exited with {process.returncode}:\n{output}")
                try:
                    get(port, "/", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        output = log_path.read_text(errors="replace")
                        pytest.fail(f"gunicorn did not answer in {START_TIMEOUT} s:\n{output}")
                    time.sleep(0.1)
            yield port, runtime_port, log_path
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its own group: workers left behind too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_TIMEOUT)


def _ingress_batch(name: str) -> bytes:
    """A ToFunction as the runtime sends it for one record from the Kafka ingress."""
    from google.protobuf.any_pb2 import Any as AnyMessage

    from statefun_wsgi._proto.request_reply_pb2 import Address, ToFunction

    producer = load_tool("producer")
    spec = module_spec()
    (ingress,) = spec.ingresses
    topic = ingress.spec["topics"][0]
    (target,) = topic["targets"]
    namespace, _, function_type = target.partition("/")
    key, value = next(iter(producer.records([name], count=1)))
    request = ToFunction()
    batch = request.invocation
    batch.target.CopyFrom(Address(namespace=namespace, type=function_type, id=key.decode()))
    for state in spec.functions[target].states:  # every registered state, absent: name only
        batch.state.add(state_name=state.name)
    batch.invocations.add().argument.CopyFrom(AnyMessage(type_url=topic["typeUrl"], value=value))
    return request.SerializeToString()


def test_the_containers_command_serves_the_probe_and_the_functions() -> None:
    from statefun_wsgi._proto.request_reply_pb2 import FromFunction

    command = exec_form(dict(dockerfile_instructions(DEPLOY / "Dockerfile.app"))["CMD"])
    assert command == APP_COMMAND
    env = {"WEB_CONCURRENCY": "1", "STATEFUN_ACCESS_LOG": "off"}
    with container_command(command, env) as (port, runtime_port, log):
        # The k8s probes and the compose healthcheck: GET / answers 200.
        status, _, body = get(port, "/")
        assert status == 200, log.read_text(errors="replace")
        assert b"example/greeter" in body

        healthcheck = compose()["services"]["greeter-app"]["healthcheck"]["test"]
        assert healthcheck[:3] == ["CMD", "python", "-c"]
        script = healthcheck[3].replace(f"localhost:{PUBLIC_PORT}", f"127.0.0.1:{port}")
        assert script != healthcheck[3]
        result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, timeout=20)
        assert result.returncode == 0, result.stderr.decode()

        # The endpoint path from module.yaml, on the runtime's listener, answers a batch shaped
        # as the Kafka ingress sends it.
        _, _, path = endpoint()
        status, headers, body = get(
            runtime_port, path, method="POST", body=_ingress_batch("alice"),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert status == 200, log.read_text(errors="replace")
        assert headers["Content-Type"] == "application/octet-stream"
        reply = FromFunction.FromString(body).invocation_result
        assert [m.state_name for m in reply.state_mutations] == ["seen_count"]
        assert [(m.target.namespace, m.target.type, m.target.id) for m in reply.outgoing_messages] == [
            ("example", "formatter", "alice")
        ]

        # The same batch on the public listener, even naming the runtime's: the page's own 404.
        status, _, body = get(
            port, path, method="POST", body=_ingress_batch("alice"),
            headers={"Content-Type": "application/octet-stream", "Host": f"greeter-app-runtime:{runtime_port}"},
        )
        assert (status, body) == (404, b"Not Found\n"), log.read_text(errors="replace")
