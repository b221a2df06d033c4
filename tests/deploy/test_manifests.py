"""The deployment files under ``deploy/`` parse and agree with each other and with lambdakit.

Nothing here needs Docker or a cluster: the files are read as YAML (and the worker's
``lambdakit.toml`` as TOML), and the flags the Compose services pass are checked against what
``lambdakit serve --help`` and ``lambdakit gateway --help`` list.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
NAMESPACE = "lambdakit"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])

Document = dict[str, Any]


def _documents(path: Path) -> list[Document]:
    with path.open(encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc is not None]


def _kubernetes() -> Iterator[tuple[Path, Document]]:
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in _documents(path):
            yield path, document


def _one(kind: str, name: str | None = None) -> Document:
    found = [
        doc
        for _, doc in _kubernetes()
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _worker_functions() -> tuple[Document, dict[str, Any]]:
    """The worker Deployment, and the lambdakit.toml of the ConfigMap it mounts, parsed."""
    deployment = _one("Deployment", "lambdakit-worker")
    pod = deployment["spec"]["template"]["spec"]
    config_maps = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
    assert len(config_maps) == 1
    config_map = _one("ConfigMap", config_maps[0])
    return deployment, tomllib.loads(config_map["data"]["lambdakit.toml"])


@functools.cache
def _help_flags(command: str) -> frozenset[str]:
    """The long options ``lambdakit COMMAND --help`` lists."""
    done = subprocess.run(
        [sys.executable, "-m", "lambdakit", command, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert done.returncode == 0, f"lambdakit {command} --help failed:\n{done.stderr}"
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", done.stdout))


def _used_flags(command: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in command if arg.startswith("--")}


def _urls(value: object) -> Iterator[str]:
    """Every amqp(s):// URL in a parsed YAML value."""
    if isinstance(value, str):
        yield from re.findall(r"amqps?://\S+", value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urls(item)


# --- every file ---------------------------------------------------------------------------------
def test_there_are_deployment_files() -> None:
    names = {path.relative_to(DEPLOY).as_posix() for path in YAML_FILES}
    assert {
        "docker-compose.yml",
        "kubernetes/namespace.yaml",
        "kubernetes/rabbitmq.yaml",
        "kubernetes/secret.yaml",
        "kubernetes/gateway.yaml",
        "kubernetes/worker.yaml",
        "kubernetes/keda.yaml",
    } <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_yaml_file_parses(path: Path) -> None:
    documents = _documents(path)
    assert documents, f"{path} holds no document"
    assert all(isinstance(doc, dict) for doc in documents)


# --- Kubernetes ---------------------------------------------------------------------------------
def test_every_kubernetes_document_has_api_version_kind_and_name() -> None:
    documents = list(_kubernetes())
    assert documents
    for path, doc in documents:
        where = f"{path.name}: {doc.get('kind')}"
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], where
        assert isinstance(doc.get("kind"), str) and doc["kind"], where
        assert isinstance(doc.get("metadata"), dict), where
        assert isinstance(doc["metadata"].get("name"), str) and doc["metadata"]["name"], where
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, where


def test_kubernetes_documents_use_current_api_versions() -> None:
    expected = {
        "Namespace": "v1",
        "Secret": "v1",
        "ConfigMap": "v1",
        "Service": "v1",
        "Deployment": "apps/v1",
        "StatefulSet": "apps/v1",
        "ScaledObject": "keda.sh/v1alpha1",
        "TriggerAuthentication": "keda.sh/v1alpha1",
    }
    kinds = set()
    for path, doc in _kubernetes():
        kinds.add(doc["kind"])
        assert doc["apiVersion"] == expected.get(doc["kind"]), f"{path.name}: {doc['kind']}"
    assert kinds == set(expected)


def test_the_gateway_runs_two_replicas_behind_a_service_with_a_tcp_readiness_probe() -> None:
    deployment = _one("Deployment", "lambdakit-gateway")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "gateway"
    port = container["readinessProbe"]["tcpSocket"]["port"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named.get(port, port) == 8080
    service = _one("Service", "lambdakit-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_scaled_object_scales_the_worker_on_a_function_the_worker_declares() -> None:
    deployment, toml = _worker_functions()
    scaled = _one("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert target["name"] == deployment["metadata"]["name"]
    assert target.get("kind", "Deployment") == "Deployment"
    triggers = scaled["spec"]["triggers"]
    assert triggers
    for trigger in triggers:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["protocol"] == "amqp"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) > 0
        assert trigger["metadata"]["queueName"] in toml["functions"]
        auth = _one("TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            secret = _one("Secret", ref["name"])
            assert ref["key"] in secret["stringData"]


def test_scaling_to_zero_only_with_queues_that_outlive_their_consumers() -> None:
    _, toml = _worker_functions()
    scaled = _one("ScaledObject")
    if scaled["spec"].get("minReplicaCount", 0) == 0:
        assert toml.get("service", {}).get("amqp_queue") in ("durable", "quorum")


def test_the_worker_config_map_holds_each_functions_handler_code() -> None:
    deployment, toml = _worker_functions()
    pod = deployment["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    paths = {item["path"]: item["key"] for item in volume["configMap"]["items"]}
    config_map = _one("ConfigMap", volume["configMap"]["name"])
    assert "amqp" not in toml.get("service", {}), "the broker URL never goes in a file"
    for name, function in toml["functions"].items():
        assert function.get("runtime") == "python", name
        module = function["handler"].rsplit(".", 1)[0]
        path = f"{function.get('code_dir', '.')}/{module}.py".removeprefix("./")
        assert path in paths, f"{name}: no ConfigMap item mounted at {path}"
        source = config_map["data"][paths[path]]
        compile(source, path, "exec")
        assert f"def {function['handler'].rsplit('.', 1)[1]}(" in source


def test_secrets_the_pods_read_exist_with_their_keys() -> None:
    for path, doc in _kubernetes():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = _one("Secret", ref["name"])
                    assert ref["key"] in secret["stringData"], f"{path.name}: {variable['name']}"


def test_no_url_outside_the_secret_carries_credentials() -> None:
    for path, doc in _kubernetes():
        if doc["kind"] == "Secret":
            continue
        for url in _urls(doc):
            assert "@" not in url, f"{path.name}: credentials in {url}"
    for url in _urls(_documents(COMPOSE)[0]):
        assert "@" not in url, f"docker-compose.yml: credentials in {url}"


# --- Docker Compose -----------------------------------------------------------------------------
def _compose_services() -> dict[str, Document]:
    services: dict[str, Document] = _documents(COMPOSE)[0]["services"]
    return services


def test_the_compose_services_exist_and_wait_for_a_healthy_broker() -> None:
    services = _compose_services()
    assert {"rabbitmq", "gateway", "worker"} <= set(services)
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3.13")
    assert services["rabbitmq"]["healthcheck"]["test"]
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 3
    for name in ("gateway", "worker"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        depends = services[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy"
        assert {"AMQP_USERNAME", "AMQP_PASSWORD"} <= set(services[name]["environment"])
    published = [str(port).split(":")[-1] for port in services["gateway"]["ports"]]
    assert published == ["8080"]
    assert "/functions" in {str(v).split(":")[1] for v in services["worker"]["volumes"]}


@pytest.mark.parametrize("service, command", [("gateway", "gateway"), ("worker", "serve")])
def test_compose_commands_use_only_flags_lambdakit_lists(service: str, command: str) -> None:
    argv = _compose_services()[service]["command"]
    assert isinstance(argv, list)
    assert argv[0] == command
    used = _used_flags(argv)
    assert "--amqp" in used
    unknown = used - _help_flags(command)
    assert not unknown, f"{service}: lambdakit {command} does not list {sorted(unknown)}"


# --- Dockerfile ---------------------------------------------------------------------------------
def _instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line.removesuffix(chr(92)).strip()}".strip()
        if not line.endswith("\\"):
            lines.append(pending)
            pending = ""
    if pending:
        lines.append(pending)
    return lines


def test_the_dockerfile_installs_the_source_as_a_non_root_user_and_downloads_nothing() -> None:
    instructions = _instructions()
    assert instructions[0] == "FROM python:3.12-slim"
    text = "\n".join(instructions)
    assert not re.search(r"\b(curl|wget)\b", text)
    assert not re.search(r"^ADD\s+\S*https?://", text, re.MULTILINE)
    assert re.search(r"\bpip install \.(\s|$)", text)
    users = [line.split(None, 1)[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entrypoints = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    assert [json.loads(line.split(None, 1)[1]) for line in entrypoints] == [["lambdakit"]]
