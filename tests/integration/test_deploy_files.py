"""The deployment files (docker/, deploy/kubernetes/) hang together and run real commands.

Offline and fast: no image is built and no cluster starts. Every command line a compose service
or a Kubernetes container runs is parsed by the `diststorage` CLI's own parser (nothing is
invoked), so a renamed flag or a bad value fails here rather than at deploy time. Addresses are
cross-checked: nodes name every gateway, advertise their own stable name, keep their data on a
volume. The manifests are checked strictly against the Kubernetes API schema (offline, with
kubernetes-validate). The YAML checks need PyYAML; `docker compose config`, `kubectl kustomize`
and `haproxy -c` run where those tools are installed, and are skipped (saying why) where not.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.core
import typer.main

from diststorage.cli.main import app
from diststorage.core.settings import GatewaySettings, split_host_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yml"
HAPROXY = ROOT / "docker" / "haproxy.cfg"
DOCKERIGNORE = ROOT / ".dockerignore"
KUBERNETES = ROOT / "deploy" / "kubernetes"

DAEMONS = ("gateway", "node", "migrate")
HTTP_PORT, GATEWAY_GRPC_PORT, NODE_PORT = 7001, 7002, 7101
METADATA_ENV = f"{GatewaySettings.model_config.get('env_prefix')}METADATA_URL"
TOOL_TIMEOUT_S = 60

Doc = dict[str, Any]


# ---- helpers --------------------------------------------------------------------------------


def load_yaml(path: Path) -> list[Doc]:
    """Every document in ``path``; skips the test when PyYAML is not installed."""
    yaml: Any = pytest.importorskip(
        "yaml", reason="PyYAML is not installed (add `pyyaml` to the dev dependency group)"
    )
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), f"{path}: a document is not a mapping"
    return docs


@cache
def entrypoint() -> tuple[str, ...]:
    match = re.search(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match, "the Dockerfile has no exec-form ENTRYPOINT"
    return tuple(json.loads(match.group(1)))


def parse_command(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """``diststorage SUBCOMMAND ...`` → (subcommand, its options as the CLI parsed them, each
    under its flag's name: ``--grpc-listen`` as ``grpc_listen``).

    Fails on an unknown subcommand or flag, a missing or ill-typed value, or a stray argument.
    """
    assert argv and argv[0] == "diststorage", f"{list(argv)} does not run diststorage"
    assert len(argv) > 1 and argv[1] in DAEMONS, f"{list(argv)} runs no daemon ({DAEMONS})"
    root = typer.main.get_command(app)
    assert isinstance(root, typer.core.TyperGroup)
    command = root.commands[argv[1]]
    with command.make_context(f"diststorage {argv[1]}", list(argv[2:])) as ctx:
        # A group (`node`) keeps a stray word as a would-be subcommand instead of failing.
        stray = [*ctx.args, *getattr(ctx, "_protected_args", [])]
        assert not stray, f"{list(argv)}: unexpected arguments {stray}"
        by_flag = {
            param.name: param.opts[0].removeprefix("--").replace("-", "_")
            for param in command.params
            if param.name is not None and param.opts and param.opts[0].startswith("--")
        }
        return argv[1], {by_flag.get(name, name): value for name, value in ctx.params.items()}


def port_of(address: str) -> int:
    return split_host_port(address)[1]


def check_addresses(subcommand: str, params: dict[str, Any]) -> None:
    """Every address option is HOST:PORT (a Kubernetes $(VAR) counts as a host)."""
    names = {
        "gateway": ("listen", "grpc_listen"),
        "node": ("listen", "advertise", "gateway", "gateway_dns"),
    }
    for name in names.get(subcommand, ()):
        value = params.get(name)
        for address in value if isinstance(value, list) else [value] if value else []:
            split_host_port(address.replace("$(POD_NAME)", "pod-0"))


def tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
    )


# ---- image ----------------------------------------------------------------------------------


def test_dockerfile_builds_the_locked_environment_for_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    uv_version = re.search(r"^UV_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert uv_version, "the Makefile pins no uv version"
    assert re.search(rf"^ARG UV_VERSION={re.escape(uv_version.group(1))}$", text, re.M), (
        f"the Dockerfile's uv is not the Makefile's {uv_version.group(1)}"
    )
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}
    assert exposed == {HTTP_PORT, GATEWAY_GRPC_PORT, NODE_PORT}
    assert entrypoint() == ("diststorage",)


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    # .dockerignore lists what goes in (after `*`); each COPY from the context needs its entry.
    ignore = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in ignore
    copied = [
        source
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", DOCKERFILE.read_text(), re.MULTILINE)
        for source in line.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert f"!{source.rstrip('/')}" in ignore, f"COPY {source}: excluded by .dockerignore"


# ---- docker compose -------------------------------------------------------------------------


@cache
def compose() -> Doc:
    (doc,) = load_yaml(COMPOSE)
    return doc


def compose_argv(service: Doc) -> list[str]:
    command = service.get("command", [])
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    entry = service.get("entrypoint")
    return [*(entry if entry is not None else entrypoint()), *args]


def compose_roles() -> dict[str, dict[str, tuple[Doc, dict[str, Any]]]]:
    """Subcommand → service name → (service, parsed options), for the diststorage services."""
    roles: dict[str, dict[str, tuple[Doc, dict[str, Any]]]] = {}
    for name, service in compose()["services"].items():
        if "build" in service:
            subcommand, params = parse_command(compose_argv(service))
            roles.setdefault(subcommand, {})[name] = (service, params)
    return roles


def volume_sources(service: Doc, target: str | None = None) -> list[str]:
    """The sources of ``service``'s volumes (of the one mounted at ``target``, if given)."""
    sources = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, mount = volume.get("source", ""), volume["target"]
        else:
            source, _, rest = volume.partition(":")
            mount = rest.split(":")[0]
        if target is None or mount == target:
            sources.append(source)
    return sources


def test_compose_runs_postgres_two_gateways_six_nodes_and_a_load_balancer() -> None:
    services = compose()["services"]
    roles = compose_roles()
    assert set(roles) == {"gateway", "node"}
    assert len(roles["gateway"]) == 2
    assert len(roles["node"]) == 6
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert volume_sources(postgres, "/var/lib/postgresql/data")
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            assert (COMPOSE.parent / build["context"]).resolve() == ROOT, name
            assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE, name
    images = {services[name]["image"] for role in roles.values() for name in role}
    assert len(images) == 1, f"the daemons run different images: {images}"


def test_compose_volumes_are_named_and_declared_and_never_shared() -> None:
    declared = set(compose().get("volumes") or {})
    used: Counter[str] = Counter()
    for name, service in compose()["services"].items():
        for source in volume_sources(service):
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
                used[source] += 1
    assert [v for v, n in used.items() if n > 1] == [], "one volume mounted by two services"
    for role in compose_roles().values():
        for name, (service, params) in role.items():
            assert volume_sources(service, str(params["data"])), f"{name}: --data on no volume"


def test_compose_gateways_share_postgres_and_are_health_checked() -> None:
    for name, (service, params) in compose_roles()["gateway"].items():
        assert port_of(params["listen"]) == HTTP_PORT, name
        assert port_of(params["grpc_listen"]) == GATEWAY_GRPC_PORT, name
        check_addresses("gateway", params)
        url = params["metadata"] or service["environment"][METADATA_ENV]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url, name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        probe = " ".join(service["healthcheck"]["test"])
        assert "/_/health" in probe and f":{HTTP_PORT}" in probe, name


def test_compose_nodes_heartbeat_to_every_gateway_and_advertise_their_own_name() -> None:
    roles = compose_roles()
    gateways = {f"{name}:{port_of(p['grpc_listen'])}" for name, (_, p) in roles["gateway"].items()}
    for name, (service, params) in roles["node"].items():
        check_addresses("node", params)
        assert set(params["gateway"]) == gateways, name
        assert params["advertise"] == f"{name}:{port_of(params['listen'])}", name
        assert set(service["depends_on"]) >= set(roles["gateway"]), name
        assert service["healthcheck"]["test"], name


def test_compose_publishes_one_port_in_front_of_both_gateways() -> None:
    services = compose()["services"]
    gateways = compose_roles()["gateway"]
    published = [(name, s) for name, s in services.items() if s.get("ports")]
    assert len(published) == 1, [name for name, _ in published]
    name, balancer = published[0]
    assert balancer["image"].startswith("haproxy:"), name
    assert [str(p).rsplit(":", 1)[-1] for p in balancer["ports"]] == [str(HTTP_PORT)]
    config = COMPOSE.parent / volume_sources(balancer, "/usr/local/etc/haproxy/haproxy.cfg")[0]
    assert config.resolve() == HAPROXY
    for gateway in gateways:
        assert balancer["depends_on"][gateway]["condition"] == "service_healthy"
    text = HAPROXY.read_text()
    servers = set(re.findall(r"^\s*server\s+\S+\s+(\S+)", text, re.MULTILINE))
    assert servers == {f"{g}:{port_of(p['listen'])}" for g, (_, p) in gateways.items()}
    assert re.search(rf"^\s*bind\s+:{HTTP_PORT}\s*$", text, re.MULTILINE)
    # Bodies must stream through, not be buffered whole.
    assert not re.search(r"^\s*option\s+http-buffer-request", text, re.MULTILINE)


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is not None and tool(docker, "compose", "version").returncode == 0:
        argv = [docker, "compose"]
    elif shutil.which("docker-compose") is not None:
        argv = ["docker-compose"]
    else:
        pytest.skip("neither `docker compose` (the plugin) nor docker-compose is installed")
    result = tool(*argv, "-f", str(COMPOSE), "-p", "diststorage", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_haproxy_accepts_its_config() -> None:
    haproxy = shutil.which("haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed")
    # Outside Docker the gateways' names do not resolve: haproxy warns and still validates.
    result = tool(haproxy, "-c", "-f", str(HAPROXY))
    assert result.returncode == 0, result.stderr


# ---- Kubernetes -----------------------------------------------------------------------------


@cache
def kustomization() -> Doc:
    (doc,) = load_yaml(KUBERNETES / "kustomization.yaml")
    return doc


@cache
def manifests() -> list[Doc]:
    return [doc for name in kustomization()["resources"] for doc in load_yaml(KUBERNETES / name)]


def find(kind: str, name: str) -> Doc:
    matches = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def diststorage_containers() -> list[tuple[Doc, Doc, tuple[str, dict[str, Any]]]]:
    """(workload, container, parsed command) for every container of the diststorage image."""
    found = []
    for workload in manifests():
        pod = workload.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if container["image"].split(":")[0] == "diststorage":
                argv = [*container.get("command", entrypoint()), *container.get("args", [])]
                found.append((workload, container, parse_command(argv)))
    return found


def role(subcommand: str) -> tuple[Doc, Doc, dict[str, Any]]:
    (match,) = [(w, c, p) for w, c, (s, p) in diststorage_containers() if s == subcommand]
    return match


def headless_service_of(workload: Doc) -> Doc:
    """A StatefulSet's governing Service; for a Deployment, the headless Service over its pods.
    Either has every pod's address, published before the pod is ready."""
    labels = workload["spec"]["template"]["metadata"]["labels"]
    if workload["kind"] == "StatefulSet":
        service = find("Service", workload["spec"]["serviceName"])
    else:
        (service,) = [
            doc
            for doc in manifests()
            if doc["kind"] == "Service"
            and doc["spec"].get("clusterIP") == "None"
            and doc["spec"]["selector"].items() <= labels.items()
        ]
    assert service["spec"]["clusterIP"] == "None", "the pods' own addresses need a headless service"
    assert service["spec"].get("publishNotReadyAddresses") is True
    assert service["spec"]["selector"].items() <= labels.items()
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
    return service


def test_kustomization_lists_every_manifest_and_the_image() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    kinds = Counter(doc["kind"] for doc in manifests())
    assert kinds["StatefulSet"] >= 2 and kinds["Deployment"] >= 1, kinds
    assert kinds["Service"] >= 3 and kinds["Secret"] >= 1, kinds
    assert {image["name"] for image in kustomization()["images"]} >= {"diststorage"}


def test_kubernetes_containers_run_real_daemons_with_probes_and_resources() -> None:
    containers = diststorage_containers()
    assert {subcommand for _, _, (subcommand, _) in containers} == {"gateway", "node"}
    for workload, container, (subcommand, params) in containers:
        name = workload["metadata"]["name"]
        check_addresses(subcommand, params)
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{name}: no {probe}"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{name}: {bound}"
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        assert str(params["data"]) in mounts, f"{name}: --data is on no volume"
        security = workload["spec"]["template"]["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True, name


def test_kubernetes_nodes_are_a_statefulset_with_volumes_and_stable_names() -> None:
    statefulset, container, params = role("node")
    assert statefulset["kind"] == "StatefulSet"
    assert statefulset["spec"]["replicas"] == 6
    service = headless_service_of(statefulset)
    claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
    data = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == str(params["data"])}
    assert data and data <= claims, "--data must be on a volumeClaimTemplate"
    port = port_of(params["listen"])
    assert params["advertise"] == f"$(POD_NAME).{service['metadata']['name']}:{port}"
    pod_name = [e for e in container["env"] if e["name"] == "POD_NAME"]
    assert pod_name[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert port in {p["port"] for p in service["spec"]["ports"]}
    assert container["livenessProbe"]["tcpSocket"]


def test_kubernetes_gateways_are_a_deployment_every_node_heartbeats_to() -> None:
    """Nodes name no gateway pod: they follow the headless Service's addresses, so any number
    of gateway replicas gets every node's heartbeats."""
    gateways, _, gateway_params = role("gateway")
    _, _, node_params = role("node")
    assert gateways["kind"] == "Deployment"
    assert gateways["spec"]["replicas"] == 2
    service = headless_service_of(gateways)
    port = port_of(gateway_params["grpc_listen"])
    assert port in {p["port"] for p in service["spec"]["ports"]}
    assert node_params["gateway_dns"] == [f"{service['metadata']['name']}:{port}"]
    assert not node_params["gateway"], "a listed gateway pod would not follow scaling"


def test_kubernetes_gateways_read_the_database_url_from_a_secret() -> None:
    gateways, container, params = role("gateway")
    assert params["metadata"] is None, "the database URL belongs in the Secret, not the args"
    (env,) = [e for e in container["env"] if e["name"] == METADATA_ENV]
    ref = env["valueFrom"]["secretKeyRef"]
    secret = find("Secret", ref["name"])
    assert ref["key"] in {*secret.get("stringData", {}), *secret.get("data", {})}
    assert port_of(params["listen"]) == HTTP_PORT
    # Readiness follows /_/health (503 with too few nodes); liveness only needs the port.
    assert container["readinessProbe"]["httpGet"]["path"] == "/_/health"
    assert "tcpSocket" in container["livenessProbe"]
    labels = gateways["spec"]["template"]["metadata"]["labels"]
    front = [
        doc
        for doc in manifests()
        if doc["kind"] == "Service"
        and doc["spec"].get("clusterIP") != "None"
        and doc["spec"]["selector"].items() <= labels.items()
    ]
    assert [p["port"] for s in front for p in s["spec"]["ports"]] == [HTTP_PORT]


# The oldest Kubernetes minor release still maintained upstream when the manifests were written;
# the API versions they use (apps/v1, policy/v1, v1) are served from 1.21 on.
KUBERNETES_VERSION = "1.33"


def test_kubernetes_manifests_match_the_api_schema_strictly() -> None:
    """Every manifest against the Kubernetes OpenAPI schema, offline; strict, so a misspelt or
    misplaced field fails here instead of being dropped by the API server."""
    for doc in manifests():
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, desired_version=KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {'.'.join(map(str, error.path))}")


def test_schema_check_catches_a_misplaced_field() -> None:
    """The check above can fail: a probe put on the pod instead of its container is refused."""
    workload = copy.deepcopy(role("gateway")[0])
    workload["spec"]["template"]["spec"]["readinessProbe"] = {"tcpSocket": {"port": 7001}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(workload, desired_version=KUBERNETES_VERSION, strict=True)


def test_kubectl_renders_the_kustomization() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = tool(kubectl, "kustomize", str(KUBERNETES))
    assert result.returncode == 0, result.stderr
    assert "kind: StatefulSet" in result.stdout
