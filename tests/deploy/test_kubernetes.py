"""The Kubernetes manifests keep deploy/README.md's promises: every container runs the Dockerfile's image as its
non-root user with a locked-down security context, ports agree with the settings' defaults and the Procfile, the
metrics are reachable only inside the cluster and only by Prometheus, the API only by the publisher, and the pods
reach only DNS, Redis and (the workers) HTTPS. The manifests are read as YAML; no cluster is contacted."""

from __future__ import annotations

import base64
import json
import re
import secrets
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from joserfc.jwk import ECKey

from tests.deploy.dockerfile import DOCKERFILE, ROOT, stages
from worker.profiles import API_WITHHELD, DEV_DEFAULT_API_SETTINGS, DEV_DEFAULT_SECRETS
from worker.sealing import generate_key_pair
from worker.settings import Profile, Settings, SettingsError

K8S = ROOT / "deploy" / "kubernetes"
APP = {"app.kubernetes.io/name": "provisioner"}
PUBLISHER = ({"kubernetes.io/metadata.name": "signup"}, {"app.kubernetes.io/name": "signup-publisher"})
PROMETHEUS = ({"kubernetes.io/metadata.name": "monitoring"}, {"app.kubernetes.io/name": "prometheus"})
OWN_NAMESPACE = {"kubernetes.io/metadata.name": "provisioner"}
STRANGER = ({"kubernetes.io/metadata.name": "default"}, {"app": "anything"})
Doc = dict[str, Any]


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it: the same documents, parsed some ten times faster (every
test reads the manifests again)."""


def _docs(path: Path) -> list[Doc]:
    return [d for d in yaml.load_all(path.read_text(), Loader=_LOADER) if d is not None]


def _all_docs() -> list[Doc]:
    return [d for path in _manifests() for d in _docs(path)]


def _manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml" and ".example." not in p.name)


def _kustomization() -> Doc:
    (doc,) = _docs(K8S / "kustomization.yaml")
    return doc


def _kind(kind: str) -> list[Doc]:
    return [d for d in _all_docs() if d["kind"] == kind]


def _deployments() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in _kind("Deployment")}


def _containers() -> Iterator[tuple[Doc, Doc]]:
    for deployment in _deployments().values():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            yield pod, container


def _image_user() -> tuple[int, int]:
    (user,) = stages(DOCKERFILE.read_text())[-1].all("USER")
    uid, gid = user.args.split(":")
    return int(uid), int(gid)


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _container(deployment: str) -> Doc:
    containers: list[Doc] = _deployments()[deployment]["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def _default(field: str) -> Any:
    return Settings.model_fields[field].default


# --- files and kustomization ------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_no_template() -> None:
    """Every manifest in deploy/kubernetes is applied by `kubectl apply -k`; the Secret templates are not."""
    resources = _kustomization()["resources"]
    assert _kustomization()["namespace"] == "provisioner"
    assert sorted(resources) == sorted(p.name for p in _manifests())
    assert not [r for r in resources if ".example." in r]
    assert {d["kind"] for d in _all_docs()} >= {"Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget"}


def test_every_document_parses_and_is_named_and_labelled() -> None:
    """Each YAML document is a Kubernetes object with a name and the app label that the NetworkPolicy selects."""
    for path in [*_manifests(), *K8S.glob("*.example.yaml")]:
        for doc in _docs(path):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"], path
            assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "provisioner", path


# --- image --------------------------------------------------------------------------------------------------------


def test_deployments_run_the_dockerfile_image_set_by_kustomization() -> None:
    """Every container names the image that kustomization's `images:` sets, whose repository is the Dockerfile's
    title and whose tag is the project's version."""
    (image,) = _kustomization()["images"]
    labels = " ".join(i.args for i in stages(DOCKERFILE.read_text())[-1].all("LABEL"))
    title = re.search(r'org\.opencontainers\.image\.title="([^"]+)"', labels)
    assert title and image["name"].rsplit("/", 1)[-1] == title[1]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert image.get("newTag") == version or re.fullmatch(r"sha256:[0-9a-f]{64}", image.get("digest", ""))
    for _pod, container in _containers():
        assert container["image"].rsplit(":", 1)[0] == image["name"], container["name"]
        assert ":latest" not in container["image"]


def test_deployments_run_the_procfile_processes() -> None:
    """The worker Deployment runs the Procfile's `worker` line and the API Deployment its `api` line."""
    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if ": " in line)
    assert " ".join(_container("provisioner-worker")["command"]) == procfile["worker"]
    assert " ".join(_container("provisioner-api")["command"]) == procfile["api"]


# --- security context ---------------------------------------------------------------------------------------------


def test_every_container_runs_as_the_image_user_locked_down() -> None:
    """Non-root as the Dockerfile's uid/gid, no privilege escalation, read-only root, all capabilities dropped and
    none added, RuntimeDefault seccomp — each container, whatever the pod sets."""
    uid, gid = _image_user()
    for pod, container in _containers():
        pod_ctx, ctx = pod["securityContext"], container["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True and ctx["runAsNonRoot"] is True
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser")) == uid
        assert ctx.get("runAsGroup", pod_ctx.get("runAsGroup")) == gid
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["readOnlyRootFilesystem"] is True
        assert ctx.get("privileged", False) is False
        assert ctx["capabilities"]["drop"] == ["ALL"] and not ctx["capabilities"].get("add")
        seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile"))
        assert seccomp == {"type": "RuntimeDefault"}


def test_pods_share_nothing_with_the_node_and_hold_no_api_token() -> None:
    """No host network, PID or IPC namespace, no hostPort, no hostPath; no service-account token mounted."""
    for deployment in _deployments().values():
        pod = deployment["spec"]["template"]["spec"]
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
        assert pod["automountServiceAccountToken"] is False
        assert all("hostPath" not in v for v in pod.get("volumes", []))
        for container in pod["containers"]:
            assert all("hostPort" not in p for p in container.get("ports", []))


def test_every_writable_path_is_an_emptydir_mount() -> None:
    """With a read-only root, HOME, the metrics folder and the state mirror must lie under an emptyDir mount."""
    for pod, container in _containers():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        assert all("emptyDir" in volumes[m["name"]] for m in container["volumeMounts"])
        env = _env(container)
        for name in ("HOME", "PROMETHEUS_MULTIPROC_DIR", "PROVISIONER_STATE_DIR"):
            if name in env:
                assert any(env[name] == m or env[name].startswith(m + "/") for m in mounts), (container["name"], name)
        assert env["HOME"] == "/tmp"


def test_every_container_has_resources_and_probes() -> None:
    """Requests and limits for CPU and memory; readiness and liveness probes on a port the container declares."""
    for _pod, container in _containers():
        for bound in ("requests", "limits"):
            assert set(container["resources"][bound]) >= {"cpu", "memory"}, container["name"]
        names = {p["name"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in names, (container["name"], probe)


# --- ports ---------------------------------------------------------------------------------------------------------


def test_ports_agree_with_the_settings_defaults() -> None:
    """The ports the pods declare are the ones the processes listen on: the settings' defaults, set explicitly."""
    worker, api = _container("provisioner-worker"), _container("provisioner-api")
    ports = {(c["name"], p["name"]): p["containerPort"] for c in (worker, api) for p in c["ports"]}
    assert ports == {
        ("worker", "metrics"): _default("metrics_port"),
        ("api", "http"): _default("api_port"),
        ("api", "metrics"): _default("api_metrics_port"),
    }
    assert _env(worker)["PROVISIONER_METRICS_PORT"] == str(_default("metrics_port"))
    assert _env(api)["PROVISIONER_API_PORT"] == str(_default("api_port"))
    assert _env(api)["PROVISIONER_API_METRICS_PORT"] == str(_default("api_metrics_port"))


def test_listeners_bind_loopback_by_default_and_the_pods_say_otherwise_explicitly() -> None:
    """Outside Kubernetes every listener defaults to 127.0.0.1; the pods set each host explicitly (their own
    interfaces), so no listener's reach depends on a default."""
    for field in ("metrics_host", "api_host", "api_metrics_host"):
        assert _default(field) == "127.0.0.1", field
    assert _env(_container("provisioner-worker"))["PROVISIONER_METRICS_HOST"] == "0.0.0.0"
    api = _env(_container("provisioner-api"))
    assert api["PROVISIONER_API_HOST"] == "0.0.0.0" and api["PROVISIONER_API_METRICS_HOST"] == "0.0.0.0"


def test_services_are_cluster_internal_and_point_at_declared_ports() -> None:
    """Every Service is ClusterIP (never NodePort or LoadBalancer, no external IPs), selects pods of a Deployment,
    and targets a port those pods name; no Ingress exposes anything."""
    templates = [d["spec"]["template"] for d in _deployments().values()]
    for service in _kind("Service"):
        spec = service["spec"]
        assert spec.get("type", "ClusterIP") == "ClusterIP", service["metadata"]["name"]
        assert not spec.get("externalIPs") and "externalName" not in spec
        (template,) = [t for t in templates if spec["selector"].items() <= t["metadata"]["labels"].items()]
        names = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in spec["ports"]} <= names
    assert not _kind("Ingress") and not _kind("Route")


def test_metrics_and_api_are_separate_services() -> None:
    """The publisher's Service carries only the API port; metrics ports are in metrics Services only."""
    for service in _kind("Service"):
        ports = {p["name"] for p in service["spec"]["ports"]}
        if service["metadata"]["name"].endswith("-metrics"):
            assert ports == {"metrics"}
        else:
            assert "metrics" not in ports


# --- NetworkPolicy -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """One of our pods as a NetworkPolicy sees it: its labels and its named container ports."""

    labels: dict[str, str]
    ports: dict[str, int]


def _pods() -> dict[str, Pod]:
    pods = {}
    for name, deployment in _deployments().items():
        template = deployment["spec"]["template"]
        ports = {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]}
        pods[name] = Pod(template["metadata"]["labels"], ports)
    return pods


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the evaluator reads matchLabels only"
    wanted: dict[str, str] = selector.get("matchLabels", {})
    return wanted.items() <= labels.items()


def _policies(pod: Pod, direction: str) -> list[Doc]:
    return [
        p
        for p in _kind("NetworkPolicy")
        if direction in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod.labels)
    ]


def _port_matches(rule: Doc, pod: Pod, port: str | int) -> bool:
    number = pod.ports[port] if isinstance(port, str) else port
    for allowed in rule.get("ports") or [{}]:
        value = allowed.get("port")
        if value is None or value in (port, number) or pod.ports.get(str(value)) == number:
            return True
    return False


def _peer_matches(peer: Doc, namespace: dict[str, str], labels: dict[str, str]) -> bool:
    if "ipBlock" in peer:
        return False  # in-cluster peers here; ipBlocks are checked on their own
    in_namespace = (
        _selects(peer["namespaceSelector"], namespace) if "namespaceSelector" in peer else namespace == OWN_NAMESPACE
    )
    return in_namespace and _selects(peer.get("podSelector", {}), labels)


def may_reach(source: tuple[dict[str, str], dict[str, str]], pod: Pod, port: str) -> bool:
    """Whether the policies admit a connection from the source (namespace labels, pod labels) to a port of the pod.
    A pod that no Ingress policy selects would admit everything."""
    policies = _policies(pod, "Ingress")
    if not policies:
        return True
    return any(
        _port_matches(rule, pod, port) and any(_peer_matches(p, *source) for p in rule.get("from", []))
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
    )


def test_a_default_deny_selects_every_pod_both_ways() -> None:
    """One policy selects every pod of the provisioner for Ingress and Egress and allows nothing itself."""
    deny = [p for p in _kind("NetworkPolicy") if p["spec"]["podSelector"] == {"matchLabels": APP}]
    deny = [p for p in deny if "ingress" not in p["spec"] and "egress" not in p["spec"]]
    assert len(deny) == 1 and sorted(deny[0]["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    for pod in _pods().values():
        assert _selects(deny[0]["spec"]["podSelector"], pod.labels)


def test_no_rule_opens_a_port_or_a_peer_to_all() -> None:
    """Every ingress and egress rule names both its peers and its ports (an empty list means everyone/all ports)."""
    for policy in _kind("NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from") and rule.get("ports"), policy["metadata"]["name"]
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to") and rule.get("ports"), policy["metadata"]["name"]


def test_api_port_only_from_the_publisher_and_metrics_only_from_prometheus() -> None:
    """The publisher reaches the API's http port and nothing else; Prometheus reaches both metrics ports and
    nothing else; any other pod, ours included, reaches nothing."""
    pods = _pods()
    api, worker = pods["provisioner-api"], pods["provisioner-worker"]
    assert may_reach(PUBLISHER, api, "http")
    assert not may_reach(PUBLISHER, api, "metrics") and not may_reach(PUBLISHER, worker, "metrics")
    assert may_reach(PROMETHEUS, api, "metrics") and may_reach(PROMETHEUS, worker, "metrics")
    assert not may_reach(PROMETHEUS, api, "http")
    for stranger in (STRANGER, (OWN_NAMESPACE, worker.labels), (PUBLISHER[0], PROMETHEUS[1])):
        for pod in pods.values():
            for port in pod.ports:
                assert not may_reach(stranger, pod, port), (stranger, port)


def _egress_ports(pod: Pod) -> set[tuple[str, int]]:
    return {
        (p.get("protocol", "TCP"), p["port"])
        for policy in _policies(pod, "Egress")
        for rule in policy["spec"].get("egress", [])
        for p in rule["ports"]
    }


def test_egress_is_dns_redis_and_for_the_workers_https() -> None:
    """The API may reach DNS and Redis only; the workers also HTTPS (443) — KuCoin and the webhook receiver."""
    base = {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 6380)}
    pods = _pods()
    assert _egress_ports(pods["provisioner-api"]) == base
    assert _egress_ports(pods["provisioner-worker"]) == base | {("TCP", 443)}


def test_https_egress_excludes_private_and_metadata_addresses() -> None:
    """The only ipBlocks are the public internet on 443: the cluster's private ranges and the link-local cloud
    metadata address stay unreachable through them."""
    for policy in _kind("NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            blocks = [peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer]
            if not blocks:
                continue
            assert [p["port"] for p in rule["ports"]] == [443]
            (v4,) = [b for b in blocks if ":" not in b["cidr"]]
            assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(v4["except"])
            for block in blocks:
                assert block.get("except"), block


# --- the API's environment ------------------------------------------------------------------------------------------


def _api_environment_names() -> tuple[set[str], set[str]]:
    (secret,) = _docs(K8S / "api-secret.example.yaml")
    (configmap,) = _kind("ConfigMap")
    return set(secret["stringData"]), set(configmap["data"]) | set(_env(_container("provisioner-api")))


def test_api_pod_gets_what_the_api_requires_and_no_withheld_secret() -> None:
    """The API's Secret template names every secret the API requires and none it must not hold; with the shared
    ConfigMap and the pod's env it covers every setting the API needs, each one the code reads."""
    secret, rest = _api_environment_names()
    names = {field.alias for field in Settings.model_fields.values()}
    assert set(DEV_DEFAULT_API_SETTINGS) <= secret
    assert {"REDIS_URL"} <= secret and "PROVISIONER_ENV" in rest
    assert not (secret | rest) & set(API_WITHHELD), "the API's pod would hold a secret it must not"
    assert (secret | rest) - names == {"HOME", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def test_api_pod_environment_is_accepted_in_production() -> None:
    """The ConfigMap, the pod's env and the API Secret (filled with fresh valid values) pass the API profile's
    production checks with nothing left at a development default."""
    (configmap,) = _kind("ConfigMap")
    environ = {**configmap["data"], **_env(_container("provisioner-api"))}
    public_jwk = ECKey.generate_key("P-256").as_dict(private=False) | {"kid": "u1"}
    environ["PROVISIONER_DELIVERY_JWK"] = json.dumps(public_jwk)  # the template's is a placeholder
    environ["PROVISIONER_PERSONAL_DATA_RETENTION_DAYS"] = "1825"  # likewise (the API reads it, needs none)
    environ |= {
        "REDIS_URL": "rediss://:password@redis.example:6380/0",
        "PROVISIONER_NAME_SECRET": secrets.token_urlsafe(48),
        "PROVISIONER_API_SECRETS": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "PROVISIONER_INTAKE_PUBLIC_KEY": generate_key_pair()[1],
        "PROVISIONER_EVENT_SIGNING_KEYS": "k1=" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    settings, defaulted = Settings.from_env(environ, profile=Profile.API)
    assert defaulted == []
    assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8080)


# --- the worker's environment ---------------------------------------------------------------------------------------

WORKER_PRODUCTION_NEEDS = {
    *DEV_DEFAULT_SECRETS,
    "REDIS_URL",
    "PROVISIONER_ENV",
    "PROVISIONER_DELIVERY_JWK",
    "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS",
}
"""What a production worker refuses to start without (``Settings.from_env``, ``Profile.WORKER``)."""


def test_worker_pod_environment_names_what_production_requires() -> None:
    """The ConfigMap, the worker's Secret template and the pod's env together set every setting a production worker
    requires, the personal-data retention period among them (in the ConfigMap: it is not secret), each one the code
    reads."""
    (secret,) = _docs(K8S / "secret.example.yaml")
    (configmap,) = _kind("ConfigMap")
    given = set(secret["stringData"]) | set(configmap["data"]) | set(_env(_container("provisioner-worker")))
    assert WORKER_PRODUCTION_NEEDS - given == set()
    assert configmap["data"]["PROVISIONER_ENV"] == "production"
    assert "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS" in configmap["data"]


def test_worker_pod_environment_is_accepted_in_production_once_its_placeholders_are_filled() -> None:
    """The ConfigMap, the pod's env and the worker's Secret, every placeholder (``<...>``) filled with a fresh valid
    value, pass the worker profile's production checks with nothing left at a development default; the ConfigMap's
    placeholders alone keep a worker from starting (a retention period nobody chose is not one)."""
    (secret,) = _docs(K8S / "secret.example.yaml")
    (configmap,) = _kind("ConfigMap")
    environ = {**configmap["data"], **secret["stringData"], **_env(_container("provisioner-worker"))}
    filled = {
        "REDIS_URL": "rediss://:redis-password-1234@redis.example:6380/0",
        "KUCOIN_API_KEY": "6422da9c97b45100018c6e62",
        "KUCOIN_API_SECRET": secrets.token_hex(18),
        "KUCOIN_API_PASSPHRASE": "Mgmt-pass-2026",
        "KUCOIN_BROKER_PARTNER": "ExamplePartner",
        "KUCOIN_BROKER_KEY": secrets.token_hex(18),
        "KUCOIN_BROKER_NAME": "ExampleND",
        "KUCOIN_TRADING_API_KEY": "6422da9c97b45100018c6e99",
        "KUCOIN_TRADING_API_SECRET": secrets.token_hex(18),
        "KUCOIN_TRADING_API_PASSPHRASE": "Trade-pass-2026",
        "PROVISIONER_NAME_SECRET": secrets.token_urlsafe(48),
        "PROVISIONER_ENCRYPTION_KEYS": "k1=" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "PROVISIONER_WEBHOOK_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "PROVISIONER_INTAKE_PRIVATE_KEYS": generate_key_pair()[0],
        "PROVISIONER_EVENT_SIGNING_KEYS": "k1=" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "PROVISIONER_DELIVERY_JWK": json.dumps(ECKey.generate_key("P-256").as_dict(private=False) | {"kid": "u1"}),
        "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS": "1825",
    }
    placeholders = {name for name, value in environ.items() if "<" in value}
    assert {"PROVISIONER_DELIVERY_JWK", "PROVISIONER_PERSONAL_DATA_RETENTION_DAYS"} <= placeholders
    assert placeholders <= set(filled), "a placeholder this test does not know how to fill"
    with pytest.raises(SettingsError, match="PROVISIONER_PERSONAL_DATA_RETENTION_DAYS"):
        Settings.from_env(
            {**environ, **{k: filled[k] for k in placeholders - {"PROVISIONER_PERSONAL_DATA_RETENTION_DAYS"}}}
        )
    settings, defaulted = Settings.from_env({**environ, **{k: filled[k] for k in placeholders}})
    assert defaulted == []
    assert settings.personal_data_retention_days == 1825
