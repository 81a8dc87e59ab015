"""Typed, frozen settings for each daemon: flags > environment > defaults.

The composition root of each daemon builds one of these once and passes it down; nothing reads
the environment anywhere else. These models are the one source of each setting's name, type,
default and help: every field is a ``DISTSTORAGE_NODE_*`` / ``DISTSTORAGE_GATEWAY_*`` variable
(pydantic-settings) and a flag of its daemon's command (cli/flags.py), named after the field
unless ``_flag`` gives it a shorter name.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from diststorage.core.logs import LogFormat
from diststorage.core.policy import MAX_SHARDS, RedundancyPolicy, parse_policy
from diststorage.core.policy_limits import PolicyLimits

MIB = 1 << 20
# One block (at most a 64 MiB stripe, replicated whole) and the few bytes that frame it.
MAX_BLOCK_MESSAGE_BYTES = 64 * MIB + 64 * 1024


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); raises ValueError on anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _flag(name: str, metavar: str | None = None) -> dict[str, Any]:
    """A field's command-line flag where it is not the field's own name (``--data`` for
    ``data_dir``); read by the CLI, which derives every daemon flag from these models."""
    extra: dict[str, str] = {"flag": name}
    if metavar is not None:
        extra["metavar"] = metavar
    return {"json_schema_extra": extra}


def _secret(env: str) -> dict[str, Any]:
    """A secret field: read from exactly the ``env`` variable (no daemon prefix), never a
    flag (the CLI generates none for it, so a secret is never in a process's argv)."""
    return {"validation_alias": env, "json_schema_extra": {"secret": True}}


def is_secret(extra: Any) -> bool:
    """Whether a field's ``json_schema_extra`` marks it secret (see ``_secret``)."""
    return isinstance(extra, dict) and extra.get("secret") is True


class NodeAdmission(StrEnum):
    """How a node the metadata has never seen joins: ``open``, on its first heartbeat (a local
    or trusted setup, where holding the cluster's credential is enough); ``manual``, only once an
    operator accepts it (``diststorage node accept ID``), pending until then."""

    OPEN = "open"
    MANUAL = "manual"


# A gateway's worker processes when --workers is not given: one per core, at most this many
# (past a few, the metadata database and the nodes bound a gateway, not its CPU).
MAX_DEFAULT_GATEWAY_WORKERS = 8
MAX_GATEWAY_WORKERS = 64

# cgroup v2: "QUOTA PERIOD" (or "max PERIOD") of the CPU time this container may use.
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), fewer if a cgroup CPU limit (a
    container's, Kubernetes' ``resources.limits.cpu``) allows less, rounded up."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()
    except (OSError, ValueError):
        return cpus
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return cpus
    return max(1, min(cpus, -(-int(quota) // int(period))))


ROOT_ACCESS_KEY_ENV = "DISTSTORAGE_ROOT_ACCESS_KEY"
ROOT_SECRET_KEY_ENV = "DISTSTORAGE_ROOT_SECRET_KEY"


def _check_address(value: str) -> str:
    split_host_port(value)
    return value


# -- cluster links (core/cluster_tls.py) --------------------------------------------------------
# Read from this one variable by gateways and nodes alike (no daemon prefix): compose and
# Kubernetes set it once for every daemon, beside the volume the folder is mounted from.
CLUSTER_DIR_ENV = "DISTSTORAGE_CLUSTER_DIR"


def _cluster_dir_field() -> Any:
    return Field(
        default=None,
        validation_alias=CLUSTER_DIR_ENV,
        description="folder made by `diststorage cluster init` (the cluster CA): every gRPC "
        "link runs mutual TLS under it; required unless --insecure-cluster",
        **_flag("cluster-dir", metavar="DIR"),
    )


def _log_format_field() -> Any:
    return Field(
        default=LogFormat.TEXT,
        description="log lines as text, or as one JSON object per line (ts, level, logger, msg, "
        "request_id and the line's own fields)",
    )


def _insecure_cluster_field() -> Any:
    return Field(
        default=False,
        description="without --cluster-dir, run the cluster's gRPC links plaintext and "
        "unauthenticated (local experiments only)",
        # A switch one turns on, with no --no- twin: nobody needs to say "secure" explicitly.
        json_schema_extra={"flag": "insecure-cluster", "negatable": False},
    )


class NodeSettings(BaseSettings):
    # populate_by_name: cluster_dir is read from its own variable (its alias) and still built
    # by field name in code.
    model_config = SettingsConfigDict(
        env_prefix="DISTSTORAGE_NODE_", frozen=True, populate_by_name=True
    )

    listen: str = Field(default="127.0.0.1:7101", description="HOST:PORT to serve gRPC on")
    advertise: str | None = Field(
        default=None, description="address gateways dial; defaults to --listen"
    )
    data_listen: str | None = Field(
        default=None,
        description="HOST:PORT of the data link that reads' bytes go over; defaults to "
        "--listen's host and any free port (gateways learn it over gRPC)",
    )
    data_dir: Path = Field(
        default=Path("./data/node"), description="folder for chunks and identity", **_flag("data")
    )
    gateways: tuple[str, ...] = Field(
        default=("127.0.0.1:7002",),
        description="gateway gRPC HOST:PORT (repeatable)",
        **_flag("gateway"),
    )
    gateway_dns: tuple[str, ...] = Field(
        default=(),
        description="a HOST:PORT name whose every address is a gateway (repeatable)",
        **_flag("gateway-dns", metavar="NAME:PORT"),
    )
    gateway_lookup_interval_s: float = Field(
        default=10.0, gt=0, description="pause between two lookups of each --gateway-dns name"
    )
    capacity_bytes: int | None = Field(
        default=None, ge=0, description="bytes this node may store", **_flag("capacity")
    )
    heartbeat_interval_s: float = Field(
        default=1.0, gt=0, description="pause between two heartbeats to each gateway"
    )
    heartbeat_timeout_s: float = Field(
        default=2.0, gt=0, description="deadline of one heartbeat to a gateway"
    )
    # Limits on what any caller can make a node hold: one message is at most one block (64 MiB,
    # the largest stripe replicated whole) and its framing; the rest bound calls and streams.
    max_message_bytes: int = Field(
        default=MAX_BLOCK_MESSAGE_BYTES, gt=0, description="largest gRPC message sent or received"
    )
    # Above what the gateways open by design: each of a gateway's uploads (max_uploads, 512)
    # holds one stream per node, and its reads, repairs and deletes a few more. Streams past the
    # per-connection limit wait for a free one, so a lower limit would let stalled uploads hold
    # up every read of that gateway until their body deadline.
    max_concurrent_rpcs: int = Field(
        default=4096, ge=1, description="calls served at once; more are refused RESOURCE_EXHAUSTED"
    )
    max_concurrent_streams: int = Field(
        default=2048, ge=1, description="HTTP/2 streams open at once on one gRPC connection"
    )
    scrub_bytes_per_s: int = Field(
        default=32 * MIB,
        ge=0,
        description="scrubber read rate; 0 disables the scrubber",
        **_flag("scrub-rate"),
    )
    scrub_interval_s: float = Field(
        default=3600.0,
        ge=0,
        description="pause between two scrub passes over every chunk",
        **_flag("scrub-interval"),
    )
    # Shorter than a gateway's: a chunk call cut off here fails over to another shard or node
    # on the gateway's side, so waiting longer only delays the node's restart.
    shutdown_grace_s: float = Field(
        default=2.0, ge=0, description="on SIGTERM, how long calls in flight may run to the end"
    )
    cluster_dir: Path | None = _cluster_dir_field()
    insecure_cluster: bool = _insecure_cluster_field()
    log_format: LogFormat = _log_format_field()

    _check_listen = field_validator("listen")(_check_address)

    @field_validator("data_listen")
    @classmethod
    def _check_data_listen(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)

    @model_validator(mode="before")
    @classmethod
    def _names_replace_the_default_gateway(cls, data: Any) -> Any:
        # Gateways given only by name (Kubernetes): no beats to the local default address.
        if isinstance(data, dict) and data.get("gateway_dns") and "gateways" not in data:
            return {**data, "gateways": ()}
        return data

    @field_validator("gateways", "gateway_dns")
    @classmethod
    def _check_gateways(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            split_host_port(address)
        return value


class GatewaySettings(BaseSettings):
    # populate_by_name: the secret fields are read from their own variables (their aliases)
    # and still built by field name in code.
    model_config = SettingsConfigDict(
        env_prefix="DISTSTORAGE_GATEWAY_", frozen=True, populate_by_name=True
    )

    listen: str = Field(default="127.0.0.1:7001", description="HTTP HOST:PORT")
    grpc_listen: str = Field(default="127.0.0.1:7002", description="gRPC HOST:PORT for heartbeats")
    data_dir: Path = Field(
        default=Path("./data/gateway"),
        description="folder for metadata and identity",
        **_flag("data"),
    )
    metadata_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; default SQLite in --data",
        **_flag("metadata"),
    )
    redundancy: str = Field(default="ec:4+2", description="default ec:K+M or replicate:N")
    # What a client may ask for with X-Redundancy (core/policy_limits.py says why these
    # defaults): the default policy always; otherwise the listed ones, or any within the bounds.
    allowed_policies: tuple[str, ...] = Field(
        default=(),
        description="the only policies a client may ask for (repeatable; the default policy "
        "always is one); none given: any within --min-spare-shards and --max-policy-overhead",
        **_flag("allow-policy", metavar="SPEC"),
    )
    min_spare_shards: int = Field(
        default=1,
        ge=0,
        le=MAX_SHARDS - 1,
        description="fewest lost nodes a policy a client asks for must survive "
        "(M of ec:K+M, N-1 of replicate:N)",
    )
    max_policy_overhead: float = Field(
        default=3.0,
        ge=1.0,
        le=MAX_SHARDS,
        description="most bytes stored per byte of object under a policy a client asks for "
        "(replicate:3 costs 3, ec:4+2 1.5)",
    )
    # 2 MiB, not 4: encoding a stripe briefly holds it about four times over (the stripe, the
    # codec's buffers, its blocks, their framed copies), and the queues hold blocks. Halving it
    # took the bench's 4 GiB upload gateway peak from 163 to 132-135 MiB and its 1 GiB download
    # peak from 204 to 156-174 MiB. Uploads pay for twice the blocks: about 5 % of the upload
    # rate in alternating runs (uploads here are mostly bound by the nodes' disks). 3 MiB
    # stripes peaked at 148 MiB and uploaded no faster.
    stripe_size_bytes: int = Field(
        default=2 * MIB, ge=4096, le=64 * MIB, description="stripe size", **_flag("stripe-size")
    )
    small_object_bytes: int = Field(
        default=128 * 1024,
        ge=0,
        description="objects up to this size under a default ec:K+M are stored replicate:M+1",
    )
    inline_object_bytes: int = Field(
        default=16 * 1024,
        ge=0,
        le=MIB,
        description="objects up to this size under the default policy are kept in the "
        "metadata database instead of on nodes; 0 keeps every object on nodes",
    )
    # 128 stripes of 2 MiB: a segment is 256 MiB of body, its chunks 64 MiB each under ec:4+2.
    segment_max_stripes: int = Field(
        default=128, ge=1, description="stripes per chunk before a new set of nodes is chosen"
    )
    write_stripes_in_flight: int = Field(
        default=4, ge=1, le=64, description="stripes of one upload encoded and sent at once"
    )
    read_stripes_in_flight: int = Field(
        default=4, ge=1, le=64, description="stripes of one download fetched at once"
    )
    max_object_bytes: int = Field(default=5 << 40, gt=0, description="largest object accepted")
    node_timeout_s: float = Field(
        default=10.0, gt=0, description="heartbeat silence → down", **_flag("node-timeout")
    )
    node_suspect_s: float = Field(
        default=3.0,
        gt=0,
        description="heartbeat silence → suspect (no new writes); capped at 3/4 of the timeout",
        **_flag("node-suspect"),
    )
    node_admission: NodeAdmission = Field(
        default=NodeAdmission.OPEN,
        description="open: a new node joins on its first heartbeat; manual: it waits, pending "
        "(no shards), until `diststorage node accept ID`",
        **_flag("node-admission", metavar="MODE"),
    )
    repair_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="how long a node may be down before repair rebuilds",
        **_flag("repair-grace"),
    )
    repair_enabled: bool = Field(
        default=True,
        description="off pauses repair and rebalancing (maintenance windows)",
        **_flag("repair"),
    )
    repair_bytes_per_s: int = Field(
        default=64 * MIB,
        gt=0,
        description="bandwidth of repair, moves and rebalancing",
        **_flag("repair-rate"),
    )
    durability_totals_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="longest time before the stripes stored per policy (the durability "
        "histogram's full bar) are counted again, a pass over every object row; while a "
        "count is quick it is repeated sooner, as long as counting takes under 1 % of the time",
        **_flag("durability-totals-interval"),
    )
    lease_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="the workers' leadership lapses this long after its holder stops renewing",
        **_flag("lease-ttl"),
    )
    gc_grace_s: float = Field(
        default=900.0,
        gt=0,
        description="age before an abandoned upload or an unreferenced chunk is deleted",
        **_flag("gc-grace"),
    )
    multipart_min_part_bytes: int = Field(
        default=5 * MIB,
        ge=0,
        description="smallest size of a multipart upload's parts but the last (S3: 5 MiB)",
    )
    multipart_expiry_s: float = Field(
        default=7 * 24 * 3600.0,
        ge=0,
        description="idle time after which an open multipart upload is aborted; 0 never",
        **_flag("multipart-expiry"),
    )
    rpc_timeout_s: float = Field(default=5.0, gt=0, description="deadline of small RPCs")
    block_timeout_s: float = Field(
        default=2.0, gt=0, description="longest wait for one block from a node before falling back"
    )
    db_timeout_s: float = Field(
        default=10.0, gt=0, description="deadline of one metadata database operation"
    )
    max_message_bytes: int = Field(
        default=MAX_BLOCK_MESSAGE_BYTES, gt=0, description="largest gRPC message sent or received"
    )
    # Slow and greedy HTTP clients: how long each may keep the gateway waiting, and how many
    # connections and uploads it may hold open.
    header_read_timeout_s: float = Field(
        default=10.0, gt=0, description="a request's headers must arrive within this"
    )
    body_idle_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="an upload whose body sends nothing for this long is answered 408 and "
        "rolled back",
        **_flag("body-idle-timeout"),
    )
    keepalive_timeout_s: float = Field(
        default=75.0, gt=0, description="an idle keep-alive connection is closed after this"
    )
    max_connections: int = Field(
        default=4096,
        ge=1,
        description="HTTP connections open at once per listener; more are answered 503 and closed",
    )
    max_uploads: int = Field(
        default=512, ge=1, description="requests with a body served at once by this gateway"
    )
    max_uploads_per_client: int = Field(
        default=64,
        ge=1,
        description="requests with a body served at once for one access key (or, unsigned, "
        "one peer address)",
    )
    upload_retry_after_s: int = Field(
        default=1, ge=0, description="Retry-After of an upload refused for the limits above"
    )
    # Longer than a node's by history only: a heartbeat is answered in milliseconds, so either
    # grace is ample. HTTP requests in flight get aiohttp's own 60 s.
    shutdown_grace_s: float = Field(
        default=5.0,
        ge=0,
        description="on SIGTERM, how long gRPC calls in flight (heartbeats) may run to the end",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=MAX_GATEWAY_WORKERS,
        description="worker processes serving the same ports (HTTP, S3, gRPC), each taking "
        "its share of --max-connections and --max-uploads; default: one per usable CPU "
        "(affinity, cgroup limit) up to "
        f"{MAX_DEFAULT_GATEWAY_WORKERS} on PostgreSQL, 1 on SQLite",
    )
    cluster_dir: Path | None = _cluster_dir_field()
    insecure_cluster: bool = _insecure_cluster_field()

    anonymous: bool = Field(
        default=False,
        description="serve the native object API to unauthenticated requests too (local "
        "experiments only; the admin routes still need an admin key)",
    )
    s3_region: str = Field(
        default="us-east-1",
        description="the region requests are signed for (their credential scope's)",
    )
    s3_listen: str | None = Field(
        default=None,
        description="HOST:PORT to serve the S3 API on; none serves no S3 API",
        **_flag("s3-listen"),
    )
    s3_domain: str | None = Field(
        default=None,
        description="root domain of virtual-host-style S3 requests (BUCKET.DOMAIN); "
        "path-style requests work either way",
        **_flag("s3-domain"),
    )
    tls_cert: Path | None = Field(
        default=None,
        description="PEM certificate (chain) to serve every HTTP listener over TLS with",
        **_flag("tls-cert"),
    )
    tls_key: Path | None = Field(
        default=None, description="PEM private key of --tls-cert", **_flag("tls-key")
    )
    secrets_key_file: Path | None = Field(
        default=None,
        description="32-byte master key that seals access-key secrets in the database; "
        "default secrets.key in --data, created (mode 0600) if absent",
    )
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="how long a gateway trusts what it read of a key or grant: a disabled key "
        "or a removed grant takes effect on every gateway within this",
    )
    root_credentials_file: Path | None = Field(
        default=None,
        description="JSON or INI file with the root access key (every right), read when the "
        "environment gives none; without either, one is generated into root-credentials in "
        "--data",
    )
    root_access_key: str | None = Field(default=None, **_secret(ROOT_ACCESS_KEY_ENV))
    root_secret_key: SecretStr | None = Field(default=None, **_secret(ROOT_SECRET_KEY_ENV))
    log_format: LogFormat = _log_format_field()

    _check_listen = field_validator("listen", "grpc_listen")(_check_address)

    @field_validator("s3_listen")
    @classmethod
    def _check_s3_listen(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)

    @model_validator(mode="after")
    def _check_tls(self) -> GatewaySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        return self

    @field_validator("redundancy")
    @classmethod
    def _check_redundancy(cls, value: str) -> str:
        parse_policy(value)
        return value

    @field_validator("allowed_policies")
    @classmethod
    def _check_allowed_policies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for spec in value:
            parse_policy(spec)
        return value

    @property
    def policy_limits(self) -> PolicyLimits:
        """What a client may ask for with X-Redundancy."""
        return PolicyLimits(
            default=self.default_policy,
            allowed=frozenset(parse_policy(spec) for spec in self.allowed_policies),
            min_spare_shards=self.min_spare_shards,
            max_overhead=self.max_policy_overhead,
        )

    @property
    def effective_suspect_s(self) -> float:
        return min(self.node_suspect_s, self.node_timeout_s * 0.75)

    @property
    def default_policy(self) -> RedundancyPolicy:
        return parse_policy(self.redundancy)

    @property
    def secrets_key_path(self) -> Path:
        return self.secrets_key_file or self.data_dir / "secrets.key"

    @property
    def generated_root_credentials_path(self) -> Path:
        """Where a gateway given no root key keeps the one it generated."""
        return self.data_dir / "root-credentials"

    @property
    def worker_count(self) -> int:
        """Worker processes: --workers, else one per core (capped) on PostgreSQL and one on
        SQLite, whose writes serialise on one file lock: its writer's deferred transactions
        fail at once (SQLITE_BUSY, no busy wait) when another process commits between their
        first read and first write, so several writing processes are a choice, not a default."""
        if self.workers is not None:
            return self.workers
        if self.database_url.startswith("sqlite"):
            return 1
        return max(1, min(usable_cpus(), MAX_DEFAULT_GATEWAY_WORKERS))

    @property
    def database_url(self) -> str:
        if self.metadata_url:
            return self.metadata_url
        return f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"


# The variable a gateway (and `diststorage migrate`) reads its metadata URL from: how a URL with
# a password is handed to a child process, out of its argv.
METADATA_URL_ENV = f"{GatewaySettings.model_config.get('env_prefix')}METADATA_URL"
