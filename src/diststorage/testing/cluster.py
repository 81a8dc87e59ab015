"""A loopback cluster on free ports in a folder of the caller's, stopped whatever happens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diststorage.core.credentials import Credentials
from diststorage.local import LocalCluster, TlsFiles, free_port


@contextmanager
def running_cluster(
    data_dir: Path,
    nodes: int = 6,
    redundancy: str = "ec:4+2",
    gateway_args: list[str] | None = None,
    node_args: list[str] | None = None,
    node_capacity_bytes: int | None = None,
    env: dict[str, str] | None = None,
    gateways: int = 1,
    metadata_url: str | None = None,
    root_credentials: Credentials | None = None,
    tls: TlsFiles | None = None,
    insecure_cluster: bool = False,
    gateway_workers: int | None = 1,
) -> Iterator[LocalCluster]:
    """Started and stopped around the block; its gateways' root key is
    ``cluster.root_credentials`` (``root_credentials``, or one generated in ``data_dir``).
    Every gateway serves S3 too (``cluster.s3_urls``); with ``tls``, every listener is HTTPS.
    Its gRPC links run mutual TLS under a CA made in ``data_dir``, unless ``insecure_cluster``.
    ``gateway_workers``: each gateway's worker processes (--workers; None: the gateway's
    default)."""
    cluster = LocalCluster(
        data_dir,
        nodes=nodes,
        http_port=free_port(),
        grpc_port=free_port(),
        node_ports=[free_port() for _ in range(nodes)],
        extra_gateway_ports=[(free_port(), free_port()) for _ in range(gateways - 1)],
        metadata_url=metadata_url,
        redundancy=redundancy,
        gateway_args=gateway_args or [],
        node_args=node_args or [],
        node_capacity_bytes=node_capacity_bytes,
        env=env or {},
        root_credentials=root_credentials,
        s3_ports=[free_port() for _ in range(gateways)],
        tls=tls,
        insecure_cluster=insecure_cluster,
        gateway_workers=gateway_workers,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
