"""Shared fixtures and helpers of the integration and fault tests.

One real cluster (a gateway and six nodes, as child processes on free loopback ports) is started
per test module; a module changes how by overriding the ``cluster_options`` fixture. A module
marked ``shared_cluster`` instead gets the cluster an earlier module of its folder started with
the same options (``ClusterPool``), so its tests use only buckets, keys and names of their
own. Every cluster is stopped and its folder removed whatever the tests do (set
``DISTSTORAGE_KEEP_TEST_DATA=1`` to keep the folders and logs for a post-mortem).

The tests talk to the gateway through the project's own client (``diststorage.client``), whose
plain methods hand back exactly the status, headers and bytes the gateway sent; the helpers here
look at the nodes' chunk folders directly on disk. Every cluster's root key is ``TEST_ROOT`` and
the client signs with it; raw requests are signed with ``signed_head``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
import trustme
from botocore.config import Config

from diststorage.client import Client, Credentials, Response, TransportError
from diststorage.core.credentials import new_credentials
from diststorage.core.ids import new_id
from diststorage.core.settings import GatewaySettings
from diststorage.local import LocalCluster, TlsFiles
from diststorage.meta import MetadataStore
from diststorage.s3auth.signer import sign_request
from diststorage.testing import Faults, running_cluster

MIB = 1 << 20
DEFAULT_STRIPE: int = GatewaySettings.model_fields["stripe_size_bytes"].default
DEFAULT_SEGMENT_STRIPES: int = GatewaySettings.model_fields["segment_max_stripes"].default
KEEP_DATA_ENV = "DISTSTORAGE_KEEP_TEST_DATA"
IO_PIECE = 1 * MIB


# -- HTTP ------------------------------------------------------------------------------------

READ_TIMEOUT_S = 120.0
"""No request of a test waits longer than this for its next byte."""
TEST_ROOT = new_credentials()
"""The root key of every cluster the tests start (one per test run)."""
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def gateway_client(url: str, credentials: Credentials | None = TEST_ROOT) -> Client:
    """The project's own client of the gateway at ``url``, with the tests' deadline, signing
    with ``credentials`` (the root key unless told otherwise; None signs nothing)."""
    return Client(url, read_timeout_s=READ_TIMEOUT_S, credentials=credentials)


def error_code(response: Response) -> str:
    """The ``error`` field of a JSON error body, checking the body's shape on the way."""
    assert "application/json" in (response.header("Content-Type") or ""), response.headers
    payload = response.json()
    assert isinstance(payload, dict), payload
    assert set(payload) == {"error", "message", "request_id"}, payload
    assert payload["request_id"] == response.header("X-Request-Id"), payload
    assert isinstance(payload["message"], str), payload
    assert payload["message"], payload
    code = payload["error"]
    assert isinstance(code, str), payload
    return code


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# -- raw sockets -----------------------------------------------------------------------------


def raw_exchange(
    port: int,
    request: bytes,
    *,
    shutdown_write: bool = False,
    close_after_send: bool = False,
    read_timeout_s: float = 10.0,
) -> bytes:
    """Sends raw bytes; returns the response that comes back (b"" if none does).

    Reading stops at the end of the first complete response (by its Content-Length), when the
    server closes, or at the timeout. ``close_after_send`` drops the connection at once.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as sock:
        sock.sendall(request)
        if close_after_send:
            return b""
        if shutdown_write:
            sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        try:
            while piece := sock.recv(65536):
                received += piece
                if _complete_response(bytes(received)):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return bytes(received)


def signed_head(
    method: str,
    path: str,
    port: int,
    headers: Mapping[str, str] | None = None,
    credentials: Credentials = TEST_ROOT,
) -> bytes:
    """A raw request's head (request line, headers, blank line), signed with ``credentials``
    for an unsigned payload: what a test sends a gateway over a raw socket, body after."""
    given = {"Host": f"127.0.0.1:{port}", **(headers or {})}
    url = f"http://127.0.0.1:{port}{path}"
    added = sign_request(
        method,
        url,
        given,
        UNSIGNED_PAYLOAD,
        credentials.access_key_id,
        credentials.secret_access_key,
    )
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in {**given, **added}.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _complete_response(raw: bytes) -> bool:
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        return False
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    return match is not None and len(body) >= int(match.group(1))


def parse_raw_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# -- bodies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BigFile:
    path: Path
    size: int
    md5: str


def write_random_file(path: Path, size: int) -> BigFile:
    """A file of random bytes, written and hashed a piece at a time."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("wb") as f:
        written = 0
        while written < size:
            piece = os.urandom(min(IO_PIECE, size - written))
            f.write(piece)
            digest.update(piece)
            written += len(piece)
    return BigFile(path, size, digest.hexdigest())


def random_bytes(size: int) -> bytes:
    return os.urandom(size)


# -- cluster ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterOptions:
    nodes: int = 6
    redundancy: str = "ec:4+2"
    gateway_args: tuple[str, ...] = ()
    node_args: tuple[str, ...] = ()
    gateways: int = 1
    metadata_url: str | None = None
    node_capacity_bytes: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    # Every HTTP listener over TLS, with a certificate from a test CA (``tls_files``).
    tls: bool = False
    # The daemons' gRPC links plaintext (--insecure-cluster) instead of mutual TLS.
    insecure_cluster: bool = False


def remove_tree(path: Path) -> None:
    if os.environ.get(KEEP_DATA_ENV):
        print(f"keeping test data in {path}")
        return
    shutil.rmtree(path, ignore_errors=True)


def tls_files(folder: Path) -> TlsFiles:
    """A certificate for 127.0.0.1 and localhost from a throwaway CA, written to ``folder``."""
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(folder / "cert.pem", folder / "key.pem", folder / "ca.pem")
    certificate.cert_chain_pems[0].write_to_path(str(files.cert))
    for pem in certificate.cert_chain_pems[1:]:
        pem.write_to_path(str(files.cert), append=True)
    certificate.private_key_pem.write_to_path(str(files.key))
    authority.cert_pem.write_to_path(str(files.ca))
    return files


@contextmanager
def cluster_in(base: Path, options: ClusterOptions) -> Iterator[LocalCluster]:
    """A running cluster in ``base``; stopped and ``base`` removed on the way out, always.

    Every child, restarted ones too, gets ``options.env`` in its environment.
    """
    try:
        with running_cluster(
            base / "cluster",
            nodes=options.nodes,
            redundancy=options.redundancy,
            gateway_args=list(options.gateway_args),
            node_args=list(options.node_args),
            gateways=options.gateways,
            metadata_url=options.metadata_url,
            node_capacity_bytes=options.node_capacity_bytes,
            env=dict(options.env),
            root_credentials=TEST_ROOT,
            tls=tls_files(base / "tls") if options.tls else None,
            insecure_cluster=options.insecure_cluster,
        ) as cluster:
            yield cluster
    finally:
        remove_tree(base)


SHARED_CLUSTER_MARK = "shared_cluster"
# Shared clusters kept running at once: S3 modules alternate between an http and an https
# cluster (each module runs all its http tests, then all its https ones), so two are enough
# for none of them to start twice.
SHARED_CLUSTERS_KEPT = 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{SHARED_CLUSTER_MARK}: the module's cluster may be one another module already started"
        " with the same options (its tests leave nothing that other modules see: their own"
        " keys, buckets and key names)",
    )


class ClusterPool:
    """Running clusters by the options they started with, for the modules that may share one.

    Starting a cluster (seven processes importing the project) is most of what an S3 module
    costs; modules of one folder whose tests only need a standard cluster, and only touch their
    own buckets, keys and key names, run on one cluster per set of options. The least recently
    asked-for cluster is stopped once more than ``kept`` run; the rest are stopped when the run
    leaves the folder (``pytest_runtest_teardown``), so that no idle cluster loads the machine
    under another folder's timing-sensitive tests.
    """

    def __init__(self, factory: pytest.TempPathFactory, kept: int) -> None:
        self._factory = factory
        self._kept = kept
        # By ``_pool_key`` of the options; least recently used first (dicts keep their order).
        self._running: dict[str, tuple[LocalCluster, contextlib.ExitStack]] = {}

    def get(self, options: ClusterOptions) -> LocalCluster:
        key = _pool_key(options)
        if key in self._running:
            self._running[key] = self._running.pop(key)
            return self._running[key][0]
        while len(self._running) >= self._kept:
            _, (_, stack) = self._oldest()
            stack.close()
        stack = contextlib.ExitStack()
        try:
            started = stack.enter_context(cluster_in(self._factory.mktemp("shared"), options))
        except BaseException:
            stack.close()
            raise
        self._running[key] = (started, stack)
        return started

    def _oldest(self) -> tuple[str, tuple[LocalCluster, contextlib.ExitStack]]:
        oldest = next(iter(self._running))
        return oldest, self._running.pop(oldest)

    def close(self) -> None:
        while self._running:
            _, (_, stack) = self._oldest()
            stack.close()


def _pool_key(options: ClusterOptions) -> str:
    """The options as a key (their ``env`` is a mapping, which does not hash)."""
    return repr(dataclasses.replace(options, env=dict(sorted(options.env.items()))))


CLUSTER_POOL = pytest.StashKey[ClusterPool]()


@pytest.fixture(scope="session")
def cluster_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterPool]:
    pool = ClusterPool(tmp_path_factory, SHARED_CLUSTERS_KEPT)
    request.config.stash[CLUSTER_POOL] = pool
    try:
        yield pool
    finally:
        pool.close()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stops the shared clusters once the last test of their folder is torn down (trylast:
    after the modules' own fixtures)."""
    pool = item.config.stash.get(CLUSTER_POOL, None)
    if pool is not None and (nextitem is None or nextitem.path.parent != item.path.parent):
        pool.close()


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    """Override in a module to start its cluster differently."""
    return ClusterOptions()


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    cluster_options: ClusterOptions,
) -> Iterator[LocalCluster]:
    """The module's cluster: its own, or with ``pytestmark = pytest.mark.shared_cluster`` one
    from the session's pool (started for an earlier module with the same options, or now)."""
    if request.node.get_closest_marker(SHARED_CLUSTER_MARK) is not None:
        pool: ClusterPool = request.getfixturevalue("cluster_pool")
        yield pool.get(cluster_options)
        return
    with cluster_in(tmp_path_factory.mktemp("cluster"), cluster_options) as running:
        yield running


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Client:
    return gateway_client(cluster.url)


@pytest.fixture(scope="module")
def gateway_port(cluster: LocalCluster) -> int:
    return cluster.http_port


def node_chunks_dir(cluster: LocalCluster, index: int) -> Path:
    return Faults(cluster).node_chunks_dir(index)


def chunk_files(cluster: LocalCluster, nodes: Iterable[int] | None = None) -> set[Path]:
    """Every committed chunk file on the given nodes (default: all)."""
    return Faults(cluster).chunk_files(nodes)


def temp_files(cluster: LocalCluster, nodes: Iterable[int] | None = None) -> set[Path]:
    """Files in the nodes' temp folders (chunks being written)."""
    found: set[Path] = set()
    for index in range(cluster.nodes) if nodes is None else nodes:
        root = cluster.node_data_dir(index) / "tmp"
        if root.is_dir():
            found.update(Path(entry.path) for entry in os.scandir(root))
    return found


def node_of(cluster: LocalCluster, chunk_file: Path) -> int:
    for index in range(cluster.nodes):
        if chunk_file.is_relative_to(cluster.node_data_dir(index)):
            return index
    raise AssertionError(f"{chunk_file} is on no node")


def all_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Polls ``predicate`` until it holds or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def wait_live_nodes(http: Client, count: int, timeout_s: float = 30.0) -> None:
    """Waits until the gateway's health report shows exactly ``count`` live nodes."""
    last: dict[str, Any] = {}

    def live() -> bool:
        nonlocal last
        try:
            _, last = http.health()
        except (TransportError, ValueError) as error:  # the gateway may be starting
            last = {"error": repr(error)}
        return last.get("live_nodes") == count

    assert wait_until(live, timeout_s, 0.2), f"never {count} live nodes: {last}"


def restore_nodes(cluster: LocalCluster, http: Client) -> None:
    """Continues paused nodes, starts stopped ones, and waits until the gateway counts all."""
    Faults(cluster).restore_nodes()
    wait_live_nodes(http, cluster.nodes, timeout_s=30)


def start_stalled_upload(
    http: Client, key: str, mib: int, headers: Mapping[str, str] | None = None
) -> threading.Event:
    """PUTs ``mib`` MiB from a daemon thread, then stalls for 30 s before its last byte (the
    test kills the gateway meanwhile; the cut-off request's error is expected). The event is
    set once the MiBs are sent, which does not yet mean the gateway has read them."""
    sent = threading.Event()

    def body() -> Iterator[bytes]:
        for _ in range(mib):
            yield random_bytes(MIB)
        sent.set()
        time.sleep(30)
        yield b"never"

    def upload() -> None:
        with contextlib.suppress(TransportError):
            http.put(key, body(), headers)

    threading.Thread(target=upload, daemon=True).start()
    return sent


# -- where an object's chunks are ------------------------------------------------------------


@dataclass(frozen=True)
class ChunkLocation:
    segment: int
    shard: int
    node: int
    path: Path


def node_ids(cluster: LocalCluster) -> dict[str, int]:
    """Node id (from each node's identity file) → node index."""
    ids: dict[str, int] = {}
    for index in range(cluster.nodes):
        identity = json.loads((cluster.node_data_dir(index) / "node.json").read_text())
        ids[identity["node_id"]] = index
    return ids


def object_chunks(cluster: LocalCluster, key: str) -> list[ChunkLocation]:
    """The chunks of the committed object under ``key``, read from the gateway's metadata.

    Reads the SQLite database read-only (the gateway keeps writing it); the tests need to know
    which chunk file holds which shard to aim their faults.
    """
    database = cluster.data_dir / "gateway" / "metadata.db"
    by_node_id = node_ids(cluster)
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            "SELECT c.segment_index, c.shard_index, c.node_id, c.id FROM chunks c"
            " JOIN objects o ON o.id = c.object_id"
            " WHERE o.key = ? AND o.state = 'committed'"
            " ORDER BY c.segment_index, c.shard_index",
            (key.encode(),),
        ).fetchall()
    finally:
        connection.close()
    locations = []
    for segment, shard, node_id, chunk_id in rows:
        node = by_node_id[node_id]
        path = node_chunks_dir(cluster, node) / chunk_id[:2] / chunk_id
        locations.append(ChunkLocation(segment, shard, node, path))
    return locations


def wait_writable(cluster: LocalCluster, http: Client, timeout_s: float = 20.0) -> None:
    """Waits until an ec:4+2 write lands whole on six distinct nodes (not degraded);
    removes the probe object.

    Health counts heartbeats; a restarted node can take a moment more before the gateway's
    connection to it works again.
    """
    key = "healthcheck/write-probe"
    last: list[Response] = []
    probe_chunks: set[Path] = set()

    def writable() -> bool:
        response = http.put(key, b"probe", {"X-Redundancy": "ec:4+2"})
        last[:] = [response]
        if response.status != 201:
            return False
        located = object_chunks(cluster, key)
        probe_chunks.update(c.path for c in located)
        return len({c.node for c in located}) == 6

    assert wait_until(writable, timeout_s, 0.5), (last[0].status, last[0].body[:300])
    assert http.delete(key).status == 204
    assert wait_until(lambda: not (probe_chunks & chunk_files(cluster)), timeout_s)


# -- the metadata store on each backend ----------------------------------------------------

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    """A real metadata store on SQLite in the test's folder: what in-process tests of the
    gateway's pipelines run on (never a fake of our own database layer)."""
    opened = await MetadataStore.open(f"sqlite:///{tmp_path / 'metadata.db'}", 10)
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    if request.param == "sqlite":
        opened = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 10)
        yield opened
        await opened.close()
        return
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        opened = await MetadataStore.open(
            f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", 10
        )
        yield opened
        await opened.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


# -- S3 --------------------------------------------------------------------------------------
# ``s3_client(cluster, credentials)`` makes a boto3 client for the cluster's first S3
# endpoint, path-style, trusting the test CA when the cluster serves TLS. botocore signs over
# http with a signed payload hash and a checksum header, and over https with an unsigned
# trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER): modules that test bodies run both.

REGION = "us-east-1"


def s3_client(
    cluster: LocalCluster,
    credentials: Credentials = TEST_ROOT,
    url: str | None = None,
    **config: Any,
) -> Any:
    settings: dict[str, Any] = {
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 1, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 120,
    }
    settings.update(config)
    return boto3.client(
        "s3",
        endpoint_url=url or cluster.s3_url,
        region_name=REGION,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        verify=str(cluster.tls.ca) if cluster.tls is not None else None,
        config=Config(**settings),
    )


@pytest.fixture(scope="module")
def s3(cluster: LocalCluster) -> Any:
    """A boto3 client signing with the root key."""
    return s3_client(cluster)


def error_code_of(error: Any) -> str:
    """The S3 ``<Code>`` of a botocore ClientError (the status for a body-less HEAD)."""
    return str(error.response["Error"]["Code"])


def status_of(error: Any) -> int:
    return int(error.response["ResponseMetadata"]["HTTPStatusCode"])


def upload_in_parts(s3: Any, bucket: str, key: str, parts: list[bytes]) -> str:
    """A multipart upload of ``parts`` (in order, numbered from 1), completed; its upload id."""
    upload: str = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = [
        {
            "PartNumber": number,
            "ETag": s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body
            )["ETag"],
        }
        for number, body in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
    )
    return upload
