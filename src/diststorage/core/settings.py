"""Typed, frozen settings for each daemon: flags > environment > defaults.

The composition root of each daemon builds one of these once and passes it down; nothing reads
the environment anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from diststorage.core.policy import RedundancyPolicy, parse_policy

MIB = 1 << 20


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); raises ValueError on anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _check_address(value: str) -> str:
    split_host_port(value)
    return value


class NodeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DISTSTORAGE_NODE_", frozen=True)

    listen: str = "127.0.0.1:7101"
    advertise: str | None = Field(
        default=None, description="address gateways dial; defaults to --listen"
    )
    data_dir: Path = Path("./data/node")
    gateways: tuple[str, ...] = ("127.0.0.1:7002",)
    gateway_dns: tuple[str, ...] = Field(
        default=(), description="HOST:PORT names whose every address is a gateway"
    )
    gateway_lookup_interval_s: float = Field(default=10.0, gt=0)
    capacity_bytes: int | None = Field(default=None, ge=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    heartbeat_timeout_s: float = Field(default=2.0, gt=0)
    max_message_bytes: int = Field(default=80 * MIB, gt=0)
    scrub_bytes_per_s: int = Field(
        default=32 * MIB, ge=0, description="scrubber read rate; 0 disables the scrubber"
    )
    scrub_interval_s: float = Field(
        default=3600.0, ge=0, description="pause between two scrub passes over every chunk"
    )

    _check_listen = field_validator("listen")(_check_address)

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
    model_config = SettingsConfigDict(env_prefix="DISTSTORAGE_GATEWAY_", frozen=True)

    listen: str = "127.0.0.1:7001"
    grpc_listen: str = "127.0.0.1:7002"
    data_dir: Path = Path("./data/gateway")
    metadata_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite in data_dir"
    )
    redundancy: str = "ec:4+2"
    # 2 MiB, not 4: encoding a stripe briefly holds it about four times over (the stripe, the
    # codec's buffers, its blocks, their framed copies), and the queues hold blocks. Halving it
    # took the bench's 4 GiB upload gateway peak from 163 to 132-135 MiB and its 1 GiB download
    # peak from 204 to 156-174 MiB. Uploads pay for twice the blocks: about 5 % of the upload
    # rate in alternating runs (uploads here are mostly bound by the nodes' disks). 3 MiB
    # stripes peaked at 148 MiB and uploaded no faster.
    stripe_size_bytes: int = Field(default=2 * MIB, ge=4096, le=64 * MIB)
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
    write_stripes_in_flight: int = Field(default=4, ge=1, le=64)
    read_stripes_in_flight: int = Field(default=4, ge=1, le=64)
    max_object_bytes: int = Field(default=5 << 40, gt=0)
    node_timeout_s: float = Field(default=10.0, gt=0, description="heartbeat silence → down")
    node_suspect_s: float = Field(
        default=3.0,
        gt=0,
        description="heartbeat silence → suspect (no new writes); capped at 3/4 of the timeout",
    )
    repair_grace_s: float = Field(
        default=300.0, ge=0, description="how long a node may be down before repair rebuilds"
    )
    repair_enabled: bool = Field(
        default=True, description="off pauses repair and rebalancing (maintenance windows)"
    )
    repair_bytes_per_s: int = Field(
        default=64 * MIB, gt=0, description="bandwidth of repair, moves and rebalancing"
    )
    lease_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="the workers' leadership lapses this long after its holder stops renewing",
    )
    gc_grace_s: float = Field(
        default=900.0,
        gt=0,
        description="age before an abandoned upload or an unreferenced chunk is deleted",
    )
    rpc_timeout_s: float = Field(default=5.0, gt=0, description="deadline of small RPCs")
    block_timeout_s: float = Field(
        default=2.0, gt=0, description="longest wait for one block from a node before falling back"
    )
    db_timeout_s: float = Field(default=10.0, gt=0)
    max_message_bytes: int = Field(default=80 * MIB, gt=0)

    _check_listen = field_validator("listen", "grpc_listen")(_check_address)

    @field_validator("redundancy")
    @classmethod
    def _check_redundancy(cls, value: str) -> str:
        parse_policy(value)
        return value

    @property
    def effective_suspect_s(self) -> float:
        return min(self.node_suspect_s, self.node_timeout_s * 0.75)

    @property
    def default_policy(self) -> RedundancyPolicy:
        return parse_policy(self.redundancy)

    @property
    def database_url(self) -> str:
        if self.metadata_url:
            return self.metadata_url
        return f"sqlite:///{(self.data_dir / 'metadata.db').resolve()}"
