"""The deployment files (docker/, deploy/kubernetes/) hang together and run real commands.

Offline and fast: no image is built and no cluster starts. Every command line a compose service
or a Kubernetes container runs is parsed by the `diststorage` CLI's own parser (nothing is
invoked), so a renamed flag or a bad value fails here rather than at deploy time. Addresses are
cross-checked: nodes name every gateway, advertise their own stable name, keep their data on a
volume. Every gateway gets the same key material: one master key and one root key, from the
compose file's one-shot key maker (run here for real) or the kustomization's generated Secret
(rendered here with the documented command's keys). The manifests are checked strictly against
the Kubernetes API schema (offline, with kubernetes-validate). The YAML checks need PyYAML;
`docker compose config`, `kubectl kustomize` and `haproxy -c` run where those tools are
installed, and are skipped (saying why) where not. No cluster is started: a compose test with
two live gateways needs a Docker daemon, and its image build alone takes minutes.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.core
import typer.main

from diststorage.cli.main import app
from diststorage.core.cluster_tls import CA_CERT_FILE, CA_KEY_FILE, load_authority
from diststorage.core.credentials import Credentials, read_credentials_file
from diststorage.core.secrets import MASTER_KEY_BYTES, access_refusal, load_master_key
from diststorage.core.settings import (
    CLUSTER_DIR_ENV,
    ROOT_ACCESS_KEY_ENV,
    ROOT_SECRET_KEY_ENV,
    GatewaySettings,
    split_host_port,
)
from diststorage.gateway.auth.bootstrap import load_root_key, open_master_key
from diststorage.meta import MetadataStore

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yml"
HAPROXY = ROOT / "docker" / "haproxy.cfg"
INIT_SECRETS = ROOT / "docker" / "init_secrets.py"
DOCKERIGNORE = ROOT / ".dockerignore"
KUBERNETES = ROOT / "deploy" / "kubernetes"

DAEMONS = ("gateway", "node", "migrate")
HTTP_PORT, GATEWAY_GRPC_PORT, NODE_PORT, S3_PORT = 7001, 7002, 7101, 9000
NODE_DATA_PORT = 7102
ROOT_KEY_ENVS = {ROOT_ACCESS_KEY_ENV, ROOT_SECRET_KEY_ENV}
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
        "gateway": ("listen", "grpc_listen", "s3_listen"),
        "node": ("listen", "advertise", "gateway", "gateway_dns"),
    }
    for name in names.get(subcommand, ()):
        value = params.get(name)
        for address in value if isinstance(value, list) else [value] if value else []:
            split_host_port(address.replace("$(POD_NAME)", "pod-0"))


def tool(
    *argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
        env=env,
    )


def image_user() -> str:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    return str(users[-1])


def mounted_secret_mode(default_mode: int) -> int:
    """What kubelet makes of a Secret volume's file in a pod with an fsGroup: the file is
    root's, in that group, and read-only volumes get 0440 ORed into their mode."""
    return default_mode | 0o440


def file_status(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 1, 1, 1, uid, gid, MASTER_KEY_BYTES, 0, 0, 0))


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
    assert exposed == {HTTP_PORT, GATEWAY_GRPC_PORT, S3_PORT, NODE_PORT, NODE_DATA_PORT}
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
    """Subcommand → service name → (service, parsed options), for the diststorage daemons
    (the services of the image that run its entrypoint)."""
    roles: dict[str, dict[str, tuple[Doc, dict[str, Any]]]] = {}
    for name, service in compose()["services"].items():
        if "build" in service and "entrypoint" not in service:
            subcommand, params = parse_command(compose_argv(service))
            roles.setdefault(subcommand, {})[name] = (service, params)
    return roles


def key_maker() -> tuple[str, Doc, list[str]]:
    """The one service of the image that runs no daemon: it makes the gateways' keys."""
    (name,) = [
        name
        for name, service in compose()["services"].items()
        if "build" in service and "entrypoint" in service
    ]
    service = compose()["services"][name]
    return name, service, compose_argv(service)


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool


def mounts(service: Doc) -> list[Mount]:
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
            read_only = bool(volume.get("read_only"))
        else:
            source, target, *options = volume.split(":")
            read_only = "ro" in options
        found.append(Mount(source, target, read_only))
    return found


def volume_sources(service: Doc, target: str | None = None) -> list[str]:
    """The sources of ``service``'s volumes (of the one mounted at ``target``, if given)."""
    return [m.source for m in mounts(service) if target is None or m.target == target]


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


def test_compose_volumes_are_named_and_declared_and_shared_only_for_the_keys() -> None:
    """Only the gateways' keys and the cluster CA are shared: written by the key maker alone,
    read-only for every gateway (the keys) or every daemon (the cluster CA)."""
    declared = set(compose().get("volumes") or {})
    writers: dict[str, set[str]] = {}
    readers: dict[str, set[str]] = {}
    for name, service in compose()["services"].items():
        for mount in mounts(service):
            if not mount.source.startswith((".", "/")):
                assert mount.source in declared, f"{name}: volume {mount.source} is not declared"
                (readers if mount.read_only else writers).setdefault(mount.source, set()).add(name)
    maker, _, _ = key_maker()
    shared = {v for v in declared if len(writers.get(v, set()) | readers.get(v, set())) > 1}
    assert shared == {v for v, names in writers.items() if names == {maker}}, shared
    assert all(len(names) == 1 for names in writers.values()), writers
    cluster_volume = compose_cluster_volume()
    daemons = {name for role in compose_roles().values() for name in role}
    for volume in shared:
        wanted = daemons if volume == cluster_volume else set(compose_roles()["gateway"])
        assert readers[volume] == wanted, volume
    for role in compose_roles().values():
        for name, (service, params) in role.items():
            assert volume_sources(service, str(params["data"])), f"{name}: --data on no volume"


def test_compose_gateways_share_postgres_and_are_health_checked() -> None:
    for name, (service, params) in compose_roles()["gateway"].items():
        assert port_of(params["listen"]) == HTTP_PORT, name
        assert port_of(params["grpc_listen"]) == GATEWAY_GRPC_PORT, name
        assert port_of(params["s3_listen"]) == S3_PORT, name
        check_addresses("gateway", params)
        url = params["metadata"] or service["environment"][METADATA_ENV]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url, name
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy", name
        probe = " ".join(service["healthcheck"]["test"])
        assert "/_/health" in probe and f":{HTTP_PORT}" in probe, name


def run_key_maker(folder: Path) -> subprocess.CompletedProcess[str]:
    """docker/init_secrets.py as the key maker runs it, giving the files to this user."""
    owner = f"{os.getuid()}:{os.getgid()}"
    return tool(sys.executable, str(INIT_SECRETS), str(folder), "--owner", owner)


def gateway_key_files() -> dict[str, tuple[str, Path, Path]]:
    """Gateway → (the volume its keys come from, its master key file, its root key file), each
    checked to be a read-only mount of the volume the key maker writes, after it ran."""
    maker, service, argv = key_maker()
    assert argv[:2] == ["python", "/init_secrets.py"], argv
    (script,) = [m for m in mounts(service) if m.target == argv[1]]
    assert (COMPOSE.parent / script.source).resolve() == INIT_SECRETS and script.read_only
    assert argv[3:5] == ["--owner", image_user()], "the files must be the gateways' user's"
    (volume,) = [m.source for m in mounts(service) if m.target == argv[2] and not m.read_only]
    assert service["restart"] == "no", "a one-shot service"
    found = {}
    for name, (gateway, params) in compose_roles()["gateway"].items():
        assert gateway["depends_on"][maker]["condition"] == "service_completed_successfully"
        (mount,) = [m for m in mounts(gateway) if m.source == volume]
        assert mount.read_only, name
        key_file, root_file = (
            Path(params["secrets_key_file"]),
            Path(params["root_credentials_file"]),
        )
        assert key_file.parent == root_file.parent == Path(mount.target), name
        # From the shared file, not the environment (nor a default file in its own --data).
        assert not ROOT_KEY_ENVS & set(gateway.get("environment", {})), name
        found[name] = (volume, key_file, root_file)
    return found


def compose_cluster_volume() -> str:
    """The volume the key maker writes the cluster CA into (its --cluster-dir)."""
    _, service, argv = key_maker()
    assert argv[5:6] == ["--cluster-dir"], argv
    (volume,) = [m.source for m in mounts(service) if m.target == argv[6] and not m.read_only]
    return volume


def test_compose_daemons_all_read_the_cluster_ca_the_key_maker_makes(tmp_path: Path) -> None:
    """Every gateway and node finds the cluster CA (DISTSTORAGE_CLUSTER_DIR) on a read-only
    mount of the volume the key maker writes it into, and none runs --insecure-cluster."""
    volume = compose_cluster_volume()
    for role in compose_roles().values():
        for name, (service, params) in role.items():
            assert not params.get("insecure_cluster"), name
            folder = service["environment"][CLUSTER_DIR_ENV]
            (mount,) = [m for m in mounts(service) if m.target == folder]
            assert mount.source == volume and mount.read_only, name
    _, _, argv = key_maker()
    keys, cluster = tmp_path / "keys", tmp_path / "cluster"
    owner = f"{os.getuid()}:{os.getgid()}"
    made = tool(
        sys.executable, str(INIT_SECRETS), str(keys), "--owner", owner, *argv[5:6], str(cluster)
    )
    assert made.returncode == 0, made.stderr
    assert {p.name for p in cluster.iterdir()} == {CA_CERT_FILE, CA_KEY_FILE}
    for path in cluster.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    load_authority(cluster)


def test_compose_gateways_share_one_master_key_and_one_root_key(tmp_path: Path) -> None:
    """Every gateway reads the same two files of one volume, files the key maker does make."""
    sources = gateway_key_files()
    assert len(sources) == 2 and len(set(sources.values())) == 1, sources
    ((_, key_file, root_file),) = set(sources.values())
    result = run_key_maker(tmp_path / "keys")
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "keys").iterdir()} == {key_file.name, root_file.name}
    for name, service in compose()["services"].items():
        assert not ROOT_KEY_ENVS & set(service.get("environment", {})), name


async def test_compose_gateways_given_the_made_keys_agree_on_one_database(tmp_path: Path) -> None:
    """The gateways' own start-up code over the key maker's files: the second gateway opens
    what the first sealed, and both know the same root key."""
    folder = tmp_path / "keys"
    assert run_key_maker(folder).returncode == 0
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'metadata.db'}", 10)
    try:
        masters, roots = [], []
        for name, (_, key_file, root_file) in gateway_key_files().items():
            settings = GatewaySettings(
                data_dir=tmp_path / name,
                secrets_key_file=folder / key_file.name,
                root_credentials_file=folder / root_file.name,
            )
            masters.append(await open_master_key(settings, store.accounts))
            roots.append(load_root_key(settings).credentials)
    finally:
        await store.close()
    sealed = masters[0].seal(b"an access key's secret", "DSKEY")
    assert masters[1].open(sealed, "DSKEY") == b"an access key's secret"
    assert roots[0] == roots[1]


def test_the_key_maker_makes_private_keys_once_and_keeps_them(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    first = run_key_maker(folder)
    assert first.returncode == 0, first.stderr
    made = {p.name: p.read_bytes() for p in folder.iterdir()}
    for path in folder.iterdir():
        status = path.stat()
        assert stat.S_IMODE(status.st_mode) == 0o600 and status.st_uid == os.getuid(), path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    load_master_key(folder / "secrets.key")
    root = read_credentials_file(folder / "root-credentials")
    assert root.access_key_id in first.stdout
    assert root.secret_access_key not in first.stdout + first.stderr
    again = run_key_maker(folder)
    assert again.returncode == 0, again.stderr
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == made, "the keys changed"
    (folder / "secrets.key").chmod(0o644)
    refused = run_key_maker(folder)
    assert refused.returncode != 0 and "0644" in refused.stderr, refused


def test_compose_nodes_heartbeat_to_every_gateway_and_advertise_their_own_name() -> None:
    roles = compose_roles()
    gateways = {f"{name}:{port_of(p['grpc_listen'])}" for name, (_, p) in roles["gateway"].items()}
    for name, (service, params) in roles["node"].items():
        check_addresses("node", params)
        assert set(params["gateway"]) == gateways, name
        assert params["advertise"] == f"{name}:{port_of(params['listen'])}", name
        assert set(service["depends_on"]) >= set(roles["gateway"]), name
        assert service["healthcheck"]["test"], name


def haproxy_sections() -> dict[tuple[str, str], list[str]]:
    """(kind, name) → the section's lines, stripped, for haproxy.cfg's named sections."""
    sections: dict[tuple[str, str], list[str]] = {}
    lines: list[str] = []
    for line in HAPROXY.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            kind, _, name = line.partition(" ")
            lines = sections.setdefault((kind, name.strip()), [])
        else:
            lines.append(line.strip())
    return sections


def haproxy_backend_of_port(port: int) -> list[str]:
    """The lines of the backend behind the frontend bound to ``port``."""
    sections = haproxy_sections()
    (frontend,) = [
        lines
        for (kind, _), lines in sections.items()
        if kind == "frontend" and f"bind :{port}" in lines
    ]
    (backend,) = [line.split()[1] for line in frontend if line.startswith("default_backend ")]
    return sections["backend", backend]


def test_compose_publishes_http_and_s3_in_front_of_both_gateways() -> None:
    services = compose()["services"]
    gateways = compose_roles()["gateway"]
    published = [(name, s) for name, s in services.items() if s.get("ports")]
    assert len(published) == 1, [name for name, _ in published]
    name, balancer = published[0]
    assert balancer["image"].startswith("haproxy:"), name
    container_ports = [str(p).rsplit(":", 1)[-1] for p in balancer["ports"]]
    assert container_ports == [str(HTTP_PORT), str(S3_PORT)]
    config = COMPOSE.parent / volume_sources(balancer, "/usr/local/etc/haproxy/haproxy.cfg")[0]
    assert config.resolve() == HAPROXY
    for gateway in gateways:
        assert balancer["depends_on"][gateway]["condition"] == "service_healthy"
    for port, listener in ((HTTP_PORT, "listen"), (S3_PORT, "s3_listen")):
        backend = haproxy_backend_of_port(port)
        servers = {line.split()[2] for line in backend if line.startswith("server ")}
        assert servers == {f"{g}:{port_of(p[listener])}" for g, (_, p) in gateways.items()}
        # Health is asked of the HTTP listener (the S3 one has no health route).
        assert "option httpchk GET /_/health" in backend, port
        if port != HTTP_PORT:
            assert any(f"check port {HTTP_PORT}" in line for line in backend), port
    # Bodies must stream through, not be buffered whole.
    text = HAPROXY.read_text()
    assert not re.search(r"^\s*option\s+http-buffer-request", text, re.MULTILINE)


def test_docker_compose_accepts_the_file() -> None:
    docker = shutil.which("docker")
    if docker is not None and tool(docker, "compose", "version").returncode == 0:
        argv = [docker, "compose"]
    elif shutil.which("docker-compose") is not None:
        argv = ["docker-compose"]
    else:
        pytest.skip("neither `docker compose` (the plugin) nor docker-compose is installed")
    config = (*argv, "-f", str(COMPOSE), "-p", "diststorage", "config", "-q")
    unset = {k: v for k, v in os.environ.items() if k != "DISTSTORAGE_DB_PASSWORD"}
    result = tool(*config, env={**unset, "DISTSTORAGE_DB_PASSWORD": "from-the-operator"})
    assert result.returncode == 0, result.stderr
    # There is no default password: without one, compose refuses to start anything.
    refused = tool(*config, env=unset)
    assert refused.returncode != 0 and "DISTSTORAGE_DB_PASSWORD" in refused.stderr


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
    assert kinds["Service"] >= 3 and kinds["NetworkPolicy"] >= 3, kinds
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
    assert ref["name"] in generated_secrets(), "the URL's Secret is made from keys/, not committed"
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
    ports = {p["name"]: p for s in front for p in s["spec"]["ports"]}
    assert {name: p["port"] for name, p in ports.items()} == {"http": HTTP_PORT, "s3": S3_PORT}
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for name, port in ((p["targetPort"], p["port"]) for p in ports.values()):
        assert container_ports[name] == port, name
    assert port_of(params["s3_listen"]) == S3_PORT


def gateway_key_sources() -> tuple[str, Doc, Doc]:
    """The Secret every gateway's keys come from, checked to hold both: (its name, the
    gateways' pod spec, the volume the master key file is mounted from)."""
    gateways, container, params = role("gateway")
    pod = gateways["spec"]["template"]["spec"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if e["name"] in ROOT_KEY_ENVS]
    assert len(refs) == len(ROOT_KEY_ENVS), "the root key comes from the environment"
    assert params["root_credentials_file"] is None
    key_file = str(params["secrets_key_file"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == key_file]
    assert mount["readOnly"] is True
    # The file itself: a Secret volume's own entries are links, which the gateway refuses.
    assert mount.get("subPath"), "mount the key file with subPath"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    (item,) = [i for i in volume["secret"]["items"] if i["path"] == mount["subPath"]]
    names = {ref["name"] for ref in refs} | {volume["secret"]["secretName"]}
    assert len(names) == 1, f"the gateways' keys come from several Secrets: {names}"
    (generator,) = [g for g in kustomization()["secretGenerator"] if g["name"] in names]
    files = {entry.partition("=")[0] for entry in generator.get("files", [])}
    assert item["key"] in files
    return generator["name"], pod, volume


def test_kubernetes_gateways_share_the_keys_of_one_generated_secret() -> None:
    """One pod template (a Deployment) whose master key file and root key all come from one
    Secret, made by the kustomization from files it never holds itself; and the key file, as
    kubelet mounts it, is one the gateway's user accepts."""
    gateways, _, _ = role("gateway")
    assert gateways["kind"] == "Deployment"
    _, pod, volume = gateway_key_sources()
    security = pod["securityContext"]
    uid, group = security["runAsUser"], security["fsGroup"]
    assert uid != 0 and security["runAsNonRoot"] is True
    mode = mounted_secret_mode(volume["secret"]["defaultMode"])
    assert access_refusal(file_status(mode, 0, group), uid) is None, f"{mode:04o}"
    # Without the fsGroup the file would be root's alone, which the gateway could not read.
    assert mode & 0o040


def test_kubernetes_daemons_all_mount_the_generated_cluster_ca() -> None:
    """Every gateway and node container finds the cluster CA (DISTSTORAGE_CLUSTER_DIR) on a
    read-only mount of one Secret, made by the kustomization from keys/ with both CA files."""
    generators = {g["name"]: g for g in kustomization()["secretGenerator"]}
    secrets = set()
    for workload, container, (subcommand, params) in diststorage_containers():
        name = f"{workload['metadata']['name']} ({subcommand})"
        assert not params.get("insecure_cluster"), name
        (folder,) = [e["value"] for e in container["env"] if e["name"] == CLUSTER_DIR_ENV]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
        assert mount["readOnly"] is True and not mount.get("subPath"), name
        pod = workload["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        secrets.add(volume["secret"]["secretName"])
        mode = mounted_secret_mode(volume["secret"]["defaultMode"])
        assert mode & 0o040 and pod["securityContext"]["fsGroup"], name
    (secret,) = secrets
    files = {entry.partition("=")[0] for entry in generators[secret]["files"]}
    assert files == {CA_CERT_FILE, CA_KEY_FILE}


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


def make_keys_as_documented(root: Path) -> subprocess.CompletedProcess[str]:
    """Runs the key command kustomization.yaml documents, from ``root`` (a repository root)."""
    text = (KUBERNETES / "kustomization.yaml").read_text()
    (command,) = [line.lstrip("# ") for line in text.splitlines() if "/dev/urandom" in line]
    made = tool("bash", "-c", command, cwd=root)
    if made.returncode != 0:
        return made
    # The cluster CA's line runs the diststorage CLI: this interpreter's.
    (cluster,) = [line.lstrip("# ") for line in text.splitlines() if "cluster init" in line]
    argv = [sys.executable, "-m", "diststorage", *cluster.split()[1:]]
    return tool(*argv, cwd=root)


def test_the_documented_key_command_makes_private_keys_once(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    result = make_keys_as_documented(tmp_path)
    assert result.returncode == 0, result.stderr
    keys = tmp_path / KUBERNETES.relative_to(ROOT) / "keys"
    generators = kustomization()["secretGenerator"]
    # A `files` entry is KEY=PATH or PATH, an `envs` entry a PATH.
    sources = [e for g in generators for e in [*g.get("files", []), *g.get("envs", [])]]
    wanted = {entry.rpartition("=")[2] for entry in sources}
    files = [p for p in keys.rglob("*") if p.is_file()]
    made = {str(p.relative_to(keys.parent)): p.read_bytes() for p in files}
    assert set(made) == wanted
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert len(made["keys/secrets.key"]) == MASTER_KEY_BYTES
    again = make_keys_as_documented(tmp_path)
    assert again.returncode != 0, "the command overwrote keys that existed"
    assert {str(p.relative_to(keys.parent)): p.read_bytes() for p in files} == made
    if shutil.which("git") is not None and (ROOT / ".git").exists():
        ignored = tool("git", "check-ignore", "-q", str(KUBERNETES / "keys" / "secrets.key"))
        assert ignored.returncode == 0, "git would commit the keys"


def test_kubectl_renders_the_kustomization_with_one_key_secret(tmp_path: Path) -> None:
    """Rendered with keys from the documented command: every reference names the generated
    Secret (kustomize adds a hash to its name), which holds a master key and a root key the
    gateway takes, and everything rendered passes the strict schema check."""
    kubectl = shutil.which("kubectl")
    if kubectl is None or shutil.which("bash") is None:
        pytest.skip("kubectl or bash is not installed")
    copy_dir = tmp_path / KUBERNETES.relative_to(ROOT)
    shutil.copytree(KUBERNETES, copy_dir)
    assert make_keys_as_documented(tmp_path).returncode == 0
    result = tool(kubectl, "kustomize", str(copy_dir))
    assert result.returncode == 0, result.stderr
    yaml: Any = pytest.importorskip("yaml")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    for doc in docs:
        kubernetes_validate.validate(doc, desired_version=KUBERNETES_VERSION, strict=True)
    name, _, _ = gateway_key_sources()
    (secret,) = [
        d
        for d in docs
        if d["kind"] == "Secret"
        and d["metadata"]["name"] != name
        and d["metadata"]["name"].startswith(f"{name}-")
    ]
    (gateways,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = gateways["spec"]["template"]["spec"]
    # The keys' Secret; the cluster CA's has a test of its own.
    refs = {
        v["secret"]["secretName"]
        for v in pod["volumes"]
        if "secret" in v and not v["secret"]["secretName"].startswith("diststorage-cluster-ca-")
    }
    for container in pod["containers"]:
        refs |= {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in container["env"]
            if e["name"] in ROOT_KEY_ENVS
        }
    assert refs == {secret["metadata"]["name"]}
    data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
    assert len(data["secrets.key"]) == MASTER_KEY_BYTES
    ref_keys = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for c in pod["containers"]
        for e in c["env"]
        if e["name"] in ROOT_KEY_ENVS
    }
    Credentials(
        data[ref_keys[ROOT_ACCESS_KEY_ENV]].decode(), data[ref_keys[ROOT_SECRET_KEY_ENV]].decode()
    )


# ---- secrets and network boundaries ---------------------------------------------------------

KEYS_DIR = "keys/"
DB_PASSWORD_VARIABLE = "DISTSTORAGE_DB_PASSWORD"
# A URL that carries a password of its own: scheme://user:password@host.
URL_WITH_PASSWORD = re.compile(r"[a-z+]+://[^:/@\s]+:(?P<password>[^@\s]+)@")


def generated_secrets() -> dict[str, list[str]]:
    """The kustomization's generated Secrets: name → the files they are made from."""
    return {
        generator["name"]: [
            entry.rpartition("=")[2]
            for entry in [*generator.get("files", []), *generator.get("envs", [])]
        ]
        for generator in kustomization()["secretGenerator"]
    }


def secret_refs() -> list[tuple[str, str, Doc]]:
    """(workload, env variable, its secretKeyRef) for every container of every workload."""
    found = []
    for workload in manifests():
        pod = workload.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    found.append((workload["metadata"]["name"], env["name"], ref))
    return found


def test_no_password_is_committed() -> None:
    """The repository holds no Secret and no password: Kubernetes' come from files the
    documented command makes in keys/ (which git ignores), compose's from the operator."""
    assert not [doc for doc in manifests() if doc["kind"] == "Secret"]
    generated = generated_secrets()
    for name, sources in generated.items():
        assert all(source.startswith(KEYS_DIR) for source in sources), (name, sources)
    refs = secret_refs()
    assert {variable for _, variable, _ in refs} >= {METADATA_ENV, "POSTGRES_PASSWORD"}
    for workload, variable, ref in refs:
        assert ref["name"] in generated, f"{workload}: {variable} from a Secret nobody makes"
    for path in [*KUBERNETES.glob("*.yaml"), COMPOSE]:
        literal = [
            match.group(0)
            for match in URL_WITH_PASSWORD.finditer(path.read_text())
            # A variable or a placeholder of the key command (``$p``, ``%s``) is no password.
            if not re.match(r"[$%]", match.group("password"))
        ]
        assert not literal, f"{path.name}: {literal}"
    # Compose: the password has no default, so nobody runs with a known one.
    uses = re.findall(r"\$\{" + DB_PASSWORD_VARIABLE + r"([^}]*)\}", COMPOSE.read_text())
    assert uses and all(use.startswith(":?") for use in uses), uses
    services = compose()["services"]
    assert DB_PASSWORD_VARIABLE in services["postgres"]["environment"]["POSTGRES_PASSWORD"]


def documented_database_secret(root: Path) -> dict[str, str]:
    root.mkdir()
    assert make_keys_as_documented(root).returncode == 0
    (source,) = generated_secrets()["diststorage-metadata"]
    path = root / KUBERNETES.relative_to(ROOT) / source
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


def test_the_documented_command_makes_a_random_database_password(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    first = documented_database_secret(tmp_path / "one")
    second = documented_database_secret(tmp_path / "two")
    password = first["postgres-password"]
    assert re.fullmatch(r"[0-9a-f]{48}", password), "24 random bytes, URL-safe"
    assert password != second["postgres-password"]
    match = URL_WITH_PASSWORD.match(first["metadata-url"])
    assert match is not None and match.group("password") == password
    service = find("Service", "diststorage-postgres")
    (port,) = [p["port"] for p in service["spec"]["ports"]]
    assert f"@{service['metadata']['name']}:{port}/" in first["metadata-url"]
    # Every reference to either key names the one Secret made from that file.
    refs = {(variable, ref["name"], ref["key"]) for _, variable, ref in secret_refs()}
    assert {("POSTGRES_PASSWORD", "diststorage-metadata", "postgres-password"),
            (METADATA_ENV, "diststorage-metadata", "metadata-url")} <= refs  # fmt: skip


def pod_templates() -> list[tuple[str, dict[str, str], dict[str, int]]]:
    """(workload, its pods' labels, their named container ports) for every workload."""
    found = []
    for workload in manifests():
        template = workload.get("spec", {}).get("template")
        if template is not None:
            ports = {
                port["name"]: port["containerPort"]
                for container in template["spec"]["containers"]
                for port in container.get("ports", [])
                if "name" in port
            }
            found.append((workload["metadata"]["name"], template["metadata"]["labels"], ports))
    return found


def admitted_peers(
    docs: list[Doc], labels: dict[str, str], ports: dict[str, int], port: int
) -> list[Doc | None]:
    """The peers the NetworkPolicies in ``docs`` admit to ``port`` of pods with ``labels``
    (None: anyone). No policy selecting the pods admits anyone; a rule without ``ports``
    admits every port."""
    selecting = [
        doc
        for doc in docs
        if doc["kind"] == "NetworkPolicy"
        and "Ingress" in doc["spec"].get("policyTypes", ["Ingress"])
        and doc["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
    ]
    if not selecting:
        return [None]
    peers: list[Doc | None] = []
    for policy in selecting:
        assert "matchExpressions" not in policy["spec"]["podSelector"], policy["metadata"]
        for rule in policy["spec"].get("ingress", []):
            numbers = {ports.get(p["port"], p["port"]) for p in rule.get("ports", [])}
            if rule.get("ports") and port not in numbers:
                continue
            peers.extend(rule.get("from") or [None])
    return peers


# (component, port, the only components whose pods may connect; None: clients, from anywhere)
BOUNDARIES = (
    ("node", NODE_PORT, {"gateway"}),
    ("node", NODE_DATA_PORT, {"gateway"}),
    ("gateway", GATEWAY_GRPC_PORT, {"node"}),
    ("postgres", 5432, {"gateway"}),
    ("gateway", HTTP_PORT, None),
    ("gateway", S3_PORT, None),
)


def boundary_problems(docs: list[Doc]) -> list[str]:
    """Where the NetworkPolicies in ``docs`` miss ``BOUNDARIES``; empty when they hold."""
    problems = []
    templates = {labels.get("app.kubernetes.io/component"): (labels, ports)
                 for _, labels, ports in pod_templates()}  # fmt: skip
    for component, port, allowed in BOUNDARIES:
        labels, ports = templates[component]
        assert port in ports.values(), (component, port)
        peers = admitted_peers(docs, labels, ports, port)
        if allowed is None:
            if None not in peers:
                problems.append(f"{component}:{port} is closed to clients")
            continue
        if not peers:
            problems.append(f"{component}:{port} admits nobody")
        for peer in peers:
            selector = (peer or {}).get("podSelector", {})
            wanted = selector.get("matchLabels", {})
            if (
                peer is None
                or set(peer) != {"podSelector"}
                or "matchExpressions" in selector
                or wanted.get("app.kubernetes.io/name") != "diststorage"
                or wanted.get("app.kubernetes.io/component") not in allowed
            ):
                problems.append(f"{component}:{port} admits {peer}")
    return problems


def test_network_policies_admit_grpc_and_the_database_only_from_the_clusters_pods() -> None:
    assert boundary_problems(manifests()) == []


@pytest.mark.parametrize(
    "opening",
    [
        {"ipBlock": {"cidr": "0.0.0.0/0"}},
        {"namespaceSelector": {}},
        {"podSelector": {}},
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": "postgres"}}},
    ],
)
def test_the_network_policy_check_can_fail(opening: Doc) -> None:
    """One more peer on the nodes' policy, a rule without `from`, or a port left out, is
    found."""
    docs = copy.deepcopy(manifests())
    (nodes,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "diststorage-node"
    ]
    nodes_peers = copy.deepcopy(nodes["spec"]["ingress"][0]["from"])
    nodes["spec"]["ingress"][0]["from"].append(opening)
    assert any(problem.startswith("node:7101 admits") for problem in boundary_problems(docs))
    nodes["spec"]["ingress"] = [{"ports": [{"port": "grpc"}, {"port": "data"}]}]
    assert boundary_problems(docs) == ["node:7101 admits None", "node:7102 admits None"]
    nodes["spec"]["ingress"] = [{"from": nodes_peers, "ports": [{"port": "grpc"}]}]
    assert boundary_problems(docs) == ["node:7102 admits nobody"]
    docs.remove(nodes)
    assert boundary_problems(docs) == ["node:7101 admits None", "node:7102 admits None"]


def published_address(entry: str) -> tuple[str, str, str]:
    """A compose short-syntax ``ports`` entry with its ${VAR:-default}s at their defaults:
    (host address, host port, container port)."""
    resolved = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", entry)
    assert "$" not in resolved, entry
    host, host_port, container = (
        resolved.rsplit(":", 2) if resolved.count(":") >= 2 else ("", *resolved.split(":"))
    )
    return host, host_port, container


def test_compose_publishes_on_this_host_only_by_default() -> None:
    published = [
        (name, published_address(str(entry)))
        for name, service in compose()["services"].items()
        for entry in service.get("ports", [])
    ]
    assert published
    for name, (host, _, _) in published:
        assert host == "127.0.0.1", name
    # ... and says how to open them.
    assert "0.0.0.0 to open them" in COMPOSE.read_text()


def test_kubectl_renders_one_database_secret_for_postgres_and_the_gateways(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None or shutil.which("bash") is None:
        pytest.skip("kubectl or bash is not installed")
    copy_dir = tmp_path / KUBERNETES.relative_to(ROOT)
    shutil.copytree(KUBERNETES, copy_dir)
    assert make_keys_as_documented(tmp_path).returncode == 0
    result = tool(kubectl, "kustomize", str(copy_dir))
    assert result.returncode == 0, result.stderr
    yaml: Any = pytest.importorskip("yaml")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    (secret,) = [
        d
        for d in docs
        if d["kind"] == "Secret" and d["metadata"]["name"].startswith("diststorage-metadata-")
    ]
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    url = URL_WITH_PASSWORD.match(data["metadata-url"])
    assert url is not None and url.group("password") == data["postgres-password"]
    refs = {
        env["name"]: env["valueFrom"]["secretKeyRef"]["name"]
        for doc in docs
        for container in doc.get("spec", {})
        .get("template", {})
        .get("spec", {})
        .get("containers", [])
        for env in container.get("env", [])
        if env["name"] in (METADATA_ENV, "POSTGRES_PASSWORD")
    }
    assert refs == dict.fromkeys((METADATA_ENV, "POSTGRES_PASSWORD"), secret["metadata"]["name"])
    assert boundary_problems(docs) == []
