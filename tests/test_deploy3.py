"""The StateFun 3.3 deployment files under deploy/statefun-3.3/ agree with each other, with the
example app and with the 2.2 set beside them (deploy/, checked by tests/test_deploy.py).

No Docker engine or Kubernetes cluster runs where these tests run, so they check what can
be checked without one (tests/e2e/test_flink3_deploy.py puts this module.yaml in front of the
real 3.3.0 runtime):

- every file parses; module.yaml holds exactly the ``kind:`` documents the 3.3 runtime reads
  (one ``io.statefun.endpoints.v2/http`` for every bound function, the async transport, a
  ``io.statefun.kafka.v1/ingress`` routing ``GreetRequest`` records to ``example/greeter``, the
  ``io.statefun.kafka.v1/egress`` the functions write to) and no key the runtime ignores;
  the greeter declares its states (with the 2.2 module's expiry) in code, since a 3.x
  module.yaml has none;
- the ConfigMap holds exactly module.yaml and flink-conf.yaml, mounted where the image's
  entry point reads them;
- the endpoint is the app's runtime listener: the same app, image, command and Services as
  the 2.2 set, in compose an alias on an internal network only the worker joins;
- the 3.3 cluster's Kubernetes names and labels never collide with the 2.2 cluster's (both
  can run in one namespace beside one app), and the shared NetworkPolicy admits its workers
  and nobody else of it;
- the image is ``apache/flink-statefun:3.3.0`` in the Dockerfile and k8s, with the roles and
  master the flink-conf names;
- the container's command answers a 3.x batch shaped as the Kafka ingress sends it: first
  ``incomplete_invocation_context`` declaring ``seen_count`` (an Any, expiring 1 day after
  its last use), then, with the state, the greeter's effects.
"""

from __future__ import annotations

import re
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import pytest
import yaml
from test_deploy import (
    APP_COMMAND,
    PUBLIC_PORT,
    REPO,
    RUNTIME_PORT,
    TYPE_URL_PREFIX,
    binds,
    bind_port,
    compose_env,
    container_command,
    container_port,
    copy_sources,
    dockerfile_instructions,
    exec_form,
    get,
    ignore_patterns,
    ignored,
    k8s_env,
    load_tool,
    gunicorn_settings,
    only_container,
    selects,
)

from examples.greeter import messages_pb2
from examples.greeter.functions import GREETS_EGRESS, SEEN_COUNT_EXPIRY, functions
from statefun_wsgi import ValueSpec

DEPLOY = REPO / "deploy"
DEPLOY3 = DEPLOY / "statefun-3.3"
K8S3 = DEPLOY3 / "k8s"
STATEFUN3_IMAGE = "apache/flink-statefun:3.3.0"
ENDPOINT_KIND = "io.statefun.endpoints.v2/http"
INGRESS_KIND = "io.statefun.kafka.v1/ingress"
EGRESS_KIND = "io.statefun.kafka.v1/egress"
ASYNC = "io.statefun.transports.v1/async"
#: The keys the 3.3 runtime reads in each document's spec (HttpFunctionEndpointSpec,
#: NettyRequestReplySpec, RoutableKafkaIngressSpec, GenericKafkaEgressSpec): any other is ignored.
ENDPOINT_KEYS = {"functions", "urlPathTemplate", "maxNumBatchRequests", "transport"}
ASYNC_KEYS = {"type", "call", "connect", "pool_ttl", "pool_size", "payload_max_bytes"}
INGRESS_KEYS = {"id", "address", "consumerGroupId", "topics", "autoOffsetResetPosition", "startupPosition", "properties"}
EGRESS_KEYS = {"id", "address", "deliverySemantic", "properties"}


# ---------------------------------------------------------------------------------------
# Reading the files


def yaml_files() -> List[Path]:
    return sorted(p for p in DEPLOY3.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def compose() -> Dict[str, Any]:
    return yaml.safe_load((DEPLOY3 / "docker-compose.yml").read_text(encoding="utf-8"))


def documents() -> List[Dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY3 / "module.yaml").read_text(encoding="utf-8")) if d is not None]


def of_kind(kind: str) -> List[Dict[str, Any]]:
    return [d["spec"] for d in documents() if d["kind"] == kind]


def k8s_objects(folder: Path = K8S3) -> List[Dict[str, Any]]:
    objects = []
    for path in sorted(folder.glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return objects


def k8s_object(kind: str, name: str, folder: Path = K8S3) -> Dict[str, Any]:
    found = [o for o in k8s_objects(folder) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name} under {folder.relative_to(REPO)}, found {len(found)}"
    return found[0]


def pods(name: str, folder: Path = K8S3) -> Dict[str, str]:
    return k8s_object("Deployment", name, folder)["spec"]["template"]["metadata"]["labels"]


def endpoint() -> Tuple[str, int, str]:
    (spec,) = of_kind(ENDPOINT_KIND)
    url = urlsplit(spec["urlPathTemplate"])
    assert url.scheme == "http"
    assert "{" not in spec["urlPathTemplate"], "one URL for every function: app.py serves them all on one path"
    return url.hostname, url.port or 80, url.path


def flink_conf() -> Dict[str, Any]:
    return yaml.safe_load((DEPLOY3 / "flink-conf.yaml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------
# Every file parses; the expected files exist


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY3)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert docs, f"{path} holds no YAML document"


def test_the_expected_files_exist() -> None:
    for name in ("module.yaml", "flink-conf.yaml", "docker-compose.yml", "Dockerfile.statefun",
                 "k8s/statefun-config.yaml", "k8s/statefun-master.yaml", "k8s/statefun-worker.yaml"):
        assert (DEPLOY3 / name).is_file(), f"deploy/statefun-3.3/{name} is missing"


# ---------------------------------------------------------------------------------------
# module.yaml


def test_module_yaml_is_kind_documents_the_runtime_reads() -> None:
    docs = documents()
    assert [d["kind"] for d in docs] == [ENDPOINT_KIND, INGRESS_KIND, EGRESS_KIND]
    for doc in docs:
        assert set(doc) == {"kind", "spec"}, f"{doc['kind']}: only kind and spec are read, got {sorted(doc)}"
    (endpoint_spec,) = of_kind(ENDPOINT_KIND)
    assert set(endpoint_spec) <= ENDPOINT_KEYS, set(endpoint_spec) - ENDPOINT_KEYS
    assert "states" not in endpoint_spec  # 3.x: the endpoint declares them
    transport = endpoint_spec["transport"]
    assert transport["type"] == ASYNC
    assert set(transport) <= ASYNC_KEYS, set(transport) - ASYNC_KEYS
    assert endpoint_spec["maxNumBatchRequests"] == 500
    (ingress,) = of_kind(INGRESS_KIND)
    assert set(ingress) <= INGRESS_KEYS, set(ingress) - INGRESS_KEYS
    (egress,) = of_kind(EGRESS_KIND)
    assert set(egress) <= EGRESS_KEYS, set(egress) - EGRESS_KEYS


def _duration_seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(ms|s|m|min|h)", value)
    assert match, f"cannot read the duration {value!r}"
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]


def test_the_endpoint_routes_every_bound_function_to_the_runtimes_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    (spec,) = of_kind(ENDPOINT_KIND)
    namespace, _, name = spec["functions"].partition("/")
    bound = set(functions.typenames)
    if name == "*":
        assert {t.partition("/")[0] for t in bound} == {namespace}, "the wildcard routes exactly the app's namespace"
    else:
        assert bound == {spec["functions"]}
    host, port, path = endpoint()
    assert (host, port, path) == ("greeter-app-runtime", RUNTIME_PORT, "/statefun")
    import app

    assert app.wsgi.path == path
    public, runtime = binds(gunicorn_settings(monkeypatch, {}))
    assert [bind_port(b) for b in runtime] == [port] and [bind_port(b) for b in public] == [PUBLIC_PORT]
    # The call timeout as in the 2.2 module (1 min): gunicorn's graceful_timeout (60 s) lets a
    # stopping app finish every batch the runtime still waits for.
    call = _duration_seconds(spec["transport"]["call"])
    assert call == 60
    assert _duration_seconds(spec["transport"]["connect"]) <= call
    assert gunicorn_settings(monkeypatch, {})["graceful_timeout"] >= call


def test_the_functions_declare_their_states_with_the_2_2_modules_expiry() -> None:
    """3.x module.yaml has no states: the greeter declares seen_count in code, with the expiry
    the 2.2 module gives it (expireAfter after the last use = expire_after_call)."""
    from statefun_wsgi.module_yaml import load_module_yaml

    greeter = {f.typename: f for f in functions}["example/greeter"]
    assert greeter.value_specs == {"seen_count": ValueSpec("seen_count", expire_after_call=SEEN_COUNT_EXPIRY)}
    assert SEEN_COUNT_EXPIRY == timedelta(days=1)
    (state,) = load_module_yaml(DEPLOY / "module.yaml").functions["example/greeter"].states
    assert (state.name, state.expire_after, state.expire_mode) == ("seen_count", SEEN_COUNT_EXPIRY, "after-invoke")


def test_the_ingress_routes_greet_requests_to_the_greeter() -> None:
    (ingress,) = of_kind(INGRESS_KIND)
    assert ingress["id"] == "example/names"
    bound = {function.typename: function for function in functions}
    (topic,) = ingress["topics"]
    assert set(topic) == {"topic", "valueType", "targets"}
    value_type = topic["valueType"]
    assert value_type == TYPE_URL_PREFIX + messages_pb2.GreetRequest.DESCRIPTOR.full_name
    assert topic["targets"] == ["example/greeter"]
    for target in topic["targets"]:
        assert messages_pb2.GreetRequest in (bound[target].message_types or ())
    # A new consumer group reads the topic from its start (the runtime's own default is the latest
    # offset, which would skip what the producer sent before the job ran).
    assert ingress["startupPosition"] == {"type": "group-offsets"}
    assert ingress["autoOffsetResetPosition"] == "earliest"
    # Its own consumer group: the 2.2 cluster's is another, so both can read one Kafka.
    from statefun_wsgi.module_yaml import load_module_yaml

    (ingress22,) = load_module_yaml(DEPLOY / "module.yaml").ingresses
    assert ingress["consumerGroupId"] != ingress22.spec["consumerGroupId"]
    assert topic["topic"] == ingress22.spec["topics"][0]["topic"] == load_tool("producer").TOPIC


def test_the_egress_is_the_one_the_functions_write_to() -> None:
    (egress,) = of_kind(EGRESS_KIND)
    assert egress["id"] == GREETS_EGRESS
    semantic = egress["deliverySemantic"]
    assert semantic["type"] == "exactly-once"
    # Must not exceed the broker's transaction.max.timeout.ms (15 min by default).
    assert 0 < _duration_seconds(semantic["transactionTimeout"]) <= 900


def test_kafka_addresses_and_topics_match_compose() -> None:
    (ingress,), (egress,) = of_kind(INGRESS_KIND), of_kind(EGRESS_KIND)
    addresses = {ingress["address"], egress["address"]}
    assert len(addresses) == 1, addresses
    host, port = addresses.pop().split(":")
    services = compose()["services"]
    assert host in services
    assert f"//{host}:{port}" in compose_env(services[host])["KAFKA_ADVERTISED_LISTENERS"]
    init = " ".join(services["kafka-init"]["command"])
    for topic in (ingress["topics"][0]["topic"], *load_tool("consumer").TOPICS):
        assert re.search(rf"\b{topic}\b", init), f"kafka-init does not create topic {topic}"


# ---------------------------------------------------------------------------------------
# Kubernetes


@pytest.mark.parametrize("name", ["module.yaml", "flink-conf.yaml"])
def test_the_configmap_holds_the_same_files(name: str) -> None:
    config_map = k8s_object("ConfigMap", "statefun33-config")
    assert config_map["data"][name] == (DEPLOY3 / name).read_text(encoding="utf-8"), (
        f"ConfigMap statefun33-config key {name} differs from deploy/statefun-3.3/{name}"
    )


@pytest.mark.parametrize("name", ["statefun33-master", "statefun33-worker"])
def test_the_runtime_pods_mount_the_module_and_the_flink_conf(name: str) -> None:
    deployment = k8s_object("Deployment", name)
    container = only_container(deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounted: Dict[str, str] = {}
    for mount in container["volumeMounts"]:
        config_map = volumes[mount["name"]].get("configMap")
        if not config_map:
            continue
        assert config_map["name"] == "statefun33-config"
        for item in config_map["items"]:
            if "subPath" in mount:
                if mount["subPath"] == item["path"]:
                    mounted[item["key"]] = mount["mountPath"]
            else:
                mounted[item["key"]] = f"{mount['mountPath'].rstrip('/')}/{item['path']}"
    # The 3.x launcher reads every /opt/statefun/modules/<name>/module.yaml.
    assert re.fullmatch(r"/opt/statefun/modules/[^/]+/module\.yaml", mounted.get("module.yaml", "")), mounted
    assert mounted.get("flink-conf.yaml") == "/opt/flink/conf/flink-conf.yaml", mounted
    assert container["image"] == STATEFUN3_IMAGE


def test_the_master_is_where_the_workers_look_for_it() -> None:
    conf = flink_conf()
    master = conf["jobmanager.rpc.address"]
    assert master == "statefun33-master"
    assert conf["classloader.parent-first-patterns.additional"] == (
        "org.apache.flink.statefun;org.apache.kafka;com.google.protobuf"
    )
    services = compose()["services"]
    assert compose_env(services[master]) == {"ROLE": "master", "MASTER_HOST": master}
    assert compose_env(services["statefun33-worker"]) == {"ROLE": "worker", "MASTER_HOST": master}
    service = k8s_object("Service", master)
    assert {p["port"] for p in service["spec"]["ports"]} >= {conf["jobmanager.rpc.port"], conf["blob.server.port"]}
    assert selects({"matchLabels": service["spec"]["selector"]}, pods(master))
    assert k8s_env(only_container(k8s_object("Deployment", master))) == {"ROLE": "master", "MASTER_HOST": master}
    assert k8s_env(only_container(k8s_object("Deployment", "statefun33-worker"))) == {
        "ROLE": "worker", "MASTER_HOST": master
    }
    worker = only_container(k8s_object("Deployment", "statefun33-worker"))
    assert container_port(worker, "rpc") == conf["taskmanager.rpc.port"]


def test_both_clusters_fit_in_one_namespace_beside_one_app() -> None:
    """Names differ, and no selector of one cluster picks a pod of the other (or the app's)."""
    objects22, objects33 = k8s_objects(DEPLOY / "k8s"), k8s_objects()
    names22 = {(o["kind"], o["metadata"]["name"]) for o in objects22}
    names33 = {(o["kind"], o["metadata"]["name"]) for o in objects33}
    assert not names22 & names33, names22 & names33
    assert not any(o["kind"] in ("Service", "NetworkPolicy") and o["metadata"]["name"].startswith("greeter-app")
                   for o in objects33), "the 3.3 set uses the app's Services and NetworkPolicy of deploy/k8s"
    labels22 = [pods(n, DEPLOY / "k8s") for n in ("statefun-master", "statefun-worker", "greeter-app")]
    labels33 = [pods(n) for n in ("statefun33-master", "statefun33-worker")]
    for mine, others in ((objects33, labels22), (objects22, labels33)):
        for o in mine:
            if o["kind"] == "Deployment":
                selector = o["spec"]["selector"]
            elif o["kind"] == "Service":
                selector = {"matchLabels": o["spec"]["selector"]}
            else:
                continue
            assert "namespace" not in o["metadata"]
            assert not any(selects(selector, labels) for labels in others), f"{o['kind']} {o['metadata']['name']}"
    for o in objects33:
        if o["kind"] == "Deployment":
            assert selects(o["spec"]["selector"], o["spec"]["template"]["metadata"]["labels"])
        if o["kind"] == "Service":
            assert any(o["spec"]["selector"].items() <= labels.items() for labels in labels33), o["metadata"]["name"]


def test_the_network_policy_admits_the_33_workers_only() -> None:
    policies = [o for o in k8s_objects(DEPLOY / "k8s") if o["kind"] == "NetworkPolicy"]
    (policy,) = policies
    app_container = only_container(k8s_object("Deployment", "greeter-app", DEPLOY / "k8s"))
    runtime_peers = []
    for rule in policy["spec"]["ingress"]:
        ports = [container_port(app_container, p["port"]) for p in rule.get("ports", [])]
        if RUNTIME_PORT in ports:
            runtime_peers += rule["from"]
    assert any(selects(peer["podSelector"], pods("statefun33-worker")) for peer in runtime_peers)
    assert not any(selects(peer["podSelector"], pods("statefun33-master")) for peer in runtime_peers)


# ---------------------------------------------------------------------------------------
# docker compose


def _resolved_build(service: Mapping[str, Any], base: Path) -> Dict[str, Any]:
    """The service with its build's context and Dockerfile as absolute paths."""
    service = dict(service)
    build = service.pop("build", None)
    if build is not None:
        context = (base / build["context"]).resolve()
        service["build"] = (context, (context / build["dockerfile"]).resolve())
    return service


def test_compose_runs_the_same_app_kafka_and_tools_as_the_22_set() -> None:
    services, services22 = compose()["services"], yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    assert set(services) == (set(services22) - {"statefun-master", "statefun-worker"}) | {
        "statefun33-master", "statefun33-worker"}
    for name in ("zookeeper", "kafka", "kafka-init", "greeter-app", "producer", "consumer"):
        assert _resolved_build(services[name], DEPLOY3) == _resolved_build(services22[name], DEPLOY), (
            f"service {name} differs from the 2.2 set's")


def test_compose_reaches_the_runtimes_listener_on_an_internal_network_only(monkeypatch: pytest.MonkeyPatch) -> None:
    host, port, _ = endpoint()
    services, networks = compose()["services"], compose().get("networks") or {}
    app_service = services["greeter-app"]
    aliased = [name for name, spec in (app_service.get("networks") or {}).items() if host in ((spec or {}).get("aliases") or [])]
    assert len(aliased) == 1, aliased
    (network,) = aliased
    assert networks[network].get("internal") is True
    members = {name for name, service in services.items() if network in (service.get("networks") or [])}
    assert members == {"greeter-app", "statefun33-worker"}
    public, runtime = binds(gunicorn_settings(monkeypatch, compose_env(app_service)))
    assert runtime == [f"{host}:{port}"]
    for name, service in services.items():
        assert not any(str(mapping).endswith(f":{port}") for mapping in service.get("ports", [])), name
    assert "default" in services["statefun33-worker"]["networks"]


def test_images_and_builds() -> None:
    services = compose()["services"]
    statefun = dockerfile_instructions(DEPLOY3 / "Dockerfile.statefun")
    assert statefun[0] == ("FROM", STATEFUN3_IMAGE)
    copies = {shlex.split(args)[-1]: copy_sources(args) for keyword, args in statefun if keyword == "COPY"}
    assert copies["/opt/statefun/modules/greeter/module.yaml"] == ["module.yaml"]
    assert copies["/opt/flink/conf/flink-conf.yaml"] == ["flink-conf.yaml"]
    for name in ("statefun33-master", "statefun33-worker"):
        build = services[name]["build"]
        assert (DEPLOY3 / build["context"] / build["dockerfile"]).resolve() == DEPLOY3 / "Dockerfile.statefun"
    assert services["statefun33-master"]["image"] == services["statefun33-worker"]["image"]
    assert services["statefun33-master"]["image"] != yaml.safe_load(
        (DEPLOY / "docker-compose.yml").read_text())["services"]["statefun-master"]["image"]
    # The app: the 2.2 set's image and command, in k8s too (one Deployment serves both clusters).
    app_container = only_container(k8s_object("Deployment", "greeter-app", DEPLOY / "k8s"))
    assert services["greeter-app"]["image"] == app_container["image"]
    assert services["greeter-app"].get("command", APP_COMMAND) == APP_COMMAND


@pytest.mark.parametrize("service", ["greeter-app", "statefun33-master", "producer"])
def test_the_dockerfiles_copy_what_their_context_holds(service: str) -> None:
    build = compose()["services"][service]["build"]
    context = (DEPLOY3 / build["context"]).resolve()
    dockerfile = (context / build["dockerfile"]).resolve()
    instructions = dockerfile_instructions(dockerfile)
    assert [k for k, _ in instructions][0] == "FROM"
    for keyword, args in instructions:
        if keyword in ("CMD", "ENTRYPOINT") and args.startswith("["):
            exec_form(args)
    patterns = ignore_patterns(dockerfile, context)
    for keyword, args in instructions:
        if keyword in ("COPY", "ADD"):
            for source in copy_sources(args):
                assert (context / source).exists(), f"{dockerfile.name}: COPY {source}: not in {context}"
                assert not ignored(source.rstrip("/"), patterns), f"{dockerfile.name}: COPY {source} is dockerignored"


# ---------------------------------------------------------------------------------------
# The container's command answers the 3.3 runtime


def _ingress_batch3(name: str, states: bool = True, seen_count: Optional[bytes] = None) -> bytes:
    """A 3.x ToFunction as the 3.3 runtime sends it for one record of the Kafka ingress:
    without states (``states=False``) before the runtime knows them, else with ``seen_count``
    (the serialized Any; ``None``: absent)."""
    from statefun_wsgi._proto import request_reply_v3_pb2 as v3

    producer = load_tool("producer")
    (ingress,) = of_kind(INGRESS_KIND)
    (topic,) = ingress["topics"]
    (target,) = topic["targets"]
    namespace, _, function_type = target.partition("/")
    key, value = next(iter(producer.records([name], count=1)))
    request = v3.ToFunction()
    batch = request.invocation
    batch.target.CopyFrom(v3.Address(namespace=namespace, type=function_type, id=key.decode()))
    if states:
        state = batch.state.add(state_name="seen_count")
        if seen_count is not None:
            state.state_value.CopyFrom(v3.TypedValue(
                typename="type.googleapis.com/google.protobuf.Any", has_value=True, value=seen_count))
    batch.invocations.add().argument.CopyFrom(v3.TypedValue(typename=topic["valueType"], has_value=True, value=value))
    return request.SerializeToString()


def test_the_containers_command_answers_the_33_runtime() -> None:
    from google.protobuf.any_pb2 import Any as AnyMessage
    from google.protobuf.wrappers_pb2 import Int64Value

    from statefun_wsgi._proto import request_reply_v3_pb2 as v3

    command = exec_form(dict(dockerfile_instructions(DEPLOY / "Dockerfile.app"))["CMD"])
    env = {"WEB_CONCURRENCY": "1", "STATEFUN_ACCESS_LOG": "off"}
    _, _, path = endpoint()
    headers = {"Content-Type": "application/octet-stream"}
    with container_command(command, env) as (_, runtime_port, log):
        # The runtime's first request knows no state: the endpoint declares seen_count.
        status, reply_headers, body = get(runtime_port, path, method="POST", body=_ingress_batch3("alice", states=False),
                                          headers=headers)
        assert status == 200, log.read_text(errors="replace")
        assert reply_headers["Content-Type"] == "application/octet-stream"
        reply = v3.FromFunction.FromString(body)
        assert reply.WhichOneof("response") == "incomplete_invocation_context"
        (spec,) = reply.incomplete_invocation_context.missing_values
        assert spec.state_name == "seen_count"
        assert spec.type_typename == "type.googleapis.com/google.protobuf.Any"
        assert spec.expiration_spec.mode == v3.FromFunction.ExpirationSpec.AFTER_INVOKE
        assert spec.expiration_spec.expire_after_millis == 24 * 3600 * 1000

        # The batch again, with the registered state (absent): the greeter counts the visit.
        status, _, body = get(runtime_port, path, method="POST", body=_ingress_batch3("alice"), headers=headers)
        assert status == 200, log.read_text(errors="replace")
        result = v3.FromFunction.FromString(body).invocation_result
        (mutation,) = result.state_mutations
        assert mutation.state_name == "seen_count"
        assert mutation.state_value.typename == "type.googleapis.com/google.protobuf.Any"
        stored = AnyMessage.FromString(mutation.state_value.value)
        assert stored.Unpack(count := Int64Value()) and count.value == 1
        (sent,) = result.outgoing_messages
        assert (sent.target.namespace, sent.target.type, sent.target.id) == ("example", "formatter", "alice")
        assert sent.argument.typename == TYPE_URL_PREFIX + messages_pb2.FormatRequest.DESCRIPTOR.full_name
        assert messages_pb2.FormatRequest.FromString(sent.argument.value) == messages_pb2.FormatRequest(
            name="alice", visits=1)
        (reminder,) = result.delayed_invocations  # first visit

        # A later visit: the count goes on from the stored Any.
        status, _, body = get(runtime_port, path, method="POST", body=_ingress_batch3("alice", seen_count=stored.SerializeToString()),
                              headers=headers)
        assert status == 200, log.read_text(errors="replace")
        result = v3.FromFunction.FromString(body).invocation_result
        AnyMessage.FromString(result.state_mutations[0].state_value.value).Unpack(count)
        assert count.value == 2 and not result.delayed_invocations
