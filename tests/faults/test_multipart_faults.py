"""Objects made of multipart parts under faults, with real processes: a degraded read with a
node killed, repair of every part's chunks back to full distinct placement, a corrupt part
chunk found by a read and rebuilt, and an aborted upload whose part chunks are deleted from the
nodes' disks. Parts are objects of their own to the pipelines (S3.md §3); these tests show it
holds end to end, through boto3."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    MIB,
    ClusterOptions,
    chunk_files,
    node_chunks_dir,
    node_ids,
    random_bytes,
    restore_nodes,
    s3_client,
    upload_in_parts,
    wait_until,
)

from diststorage.client import Client
from diststorage.local import LocalCluster
from diststorage.testing import Faults

BUCKET = "faults"
PART = 5 * MIB
HEAL_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Seven nodes, so that ec:4+2 can be rebuilt in full while one is gone; small stripes so
    # that each 5 MiB part spans several segments.
    return ClusterOptions(
        nodes=7,
        gateway_args=(
            "--stripe-size",
            str(256 * 1024),
            "--node-timeout",
            "3",
            "--node-suspect",
            "1.5",
            "--repair-grace",
            "3",
            "--repair-rate",
            str(200 * MIB),
        ),
    )


@pytest.fixture(scope="module")
def s3(cluster: LocalCluster) -> Any:
    client = s3_client(cluster)
    client.create_bucket(Bucket=BUCKET)
    return client


@dataclass(frozen=True)
class PartChunk:
    part: int
    segment: int
    shard: int
    node: int
    path: Path


def part_chunks(cluster: LocalCluster, key: str) -> list[PartChunk]:
    """The chunks of every part of the committed object under ``key`` (read-only, from the
    gateway's SQLite file)."""
    database = cluster.data_dir / "gateway" / "metadata.db"
    by_node_id = node_ids(cluster)
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            "SELECT p.part_index, c.segment_index, c.shard_index, c.node_id, c.id"
            " FROM objects o JOIN object_parts p ON p.object_id = o.id"
            " JOIN chunks c ON c.object_id = p.part_object_id"
            " WHERE o.key = ? AND o.state = 'committed'"
            " ORDER BY p.part_index, c.segment_index, c.shard_index",
            (key.encode(),),
        ).fetchall()
    finally:
        connection.close()
    return [
        PartChunk(
            part,
            segment,
            shard,
            by_node_id[node_id],
            node_chunks_dir(cluster, by_node_id[node_id]) / chunk_id[:2] / chunk_id,
        )
        for part, segment, shard, node_id, chunk_id in rows
    ]


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_md5(s3: Any, key: str) -> str:
    body: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return md5_of(body)


def wait_fully_redundant(http: Client) -> None:
    last: dict[str, object] = {}

    def done() -> bool:
        last.update(http.repair())
        return last["stripes_below_target"] == 0 and last["segments_queued"] == 0

    assert wait_until(done, HEAL_TIMEOUT_S, 0.5), last


@pytest.fixture
def healed(cluster: LocalCluster, http: Client) -> Iterator[None]:
    yield
    restore_nodes(cluster, http)
    wait_fully_redundant(http)


def assert_fully_placed(chunks: list[PartChunk], shards: int) -> None:
    by_segment: dict[tuple[int, int], list[int]] = {}
    for chunk in chunks:
        assert chunk.path.is_file(), chunk
        by_segment.setdefault((chunk.part, chunk.segment), []).append(chunk.node)
    for where, nodes in by_segment.items():
        assert len(set(nodes)) == len(nodes) == shards, (where, nodes)


@pytest.mark.usefixtures("healed")
def test_a_node_lost_under_a_multipart_object_reads_degraded_and_is_repaired(
    cluster: LocalCluster, http: Client, s3: Any
) -> None:
    parts = [random_bytes(PART), random_bytes(PART), random_bytes(777_777)]
    whole = b"".join(parts)
    upload_in_parts(s3, BUCKET, "lost-node", parts)
    before = part_chunks(cluster, "lost-node")
    assert {chunk.part for chunk in before} == {0, 1, 2}
    victim = before[0].node
    victim_id = next(node_id for node_id, i in node_ids(cluster).items() if i == victim)
    cluster.kill_node(victim)
    assert read_md5(s3, "lost-node") == md5_of(whole)
    # Fully redundant only counts once the gateway has seen the node go: until then, every
    # stripe still looks whole.
    assert wait_until(
        lambda: any(n["id"] == victim_id and n["state"] != "up" for n in http.nodes()),
        HEAL_TIMEOUT_S,
        0.2,
    )
    wait_fully_redundant(http)
    after = part_chunks(cluster, "lost-node")
    assert all(chunk.node != victim for chunk in after)
    assert_fully_placed(after, shards=6)
    assert read_md5(s3, "lost-node") == md5_of(whole)


@pytest.mark.usefixtures("healed")
def test_a_corrupt_part_chunk_is_never_served_and_is_rebuilt(
    cluster: LocalCluster, s3: Any, http: Client
) -> None:
    parts = [random_bytes(PART), random_bytes(PART)]
    whole = b"".join(parts)
    upload_in_parts(s3, BUCKET, "corrupt", parts)
    # A data shard of the second part: the reads ask for the data shards first.
    target = next(
        chunk for chunk in part_chunks(cluster, "corrupt") if chunk.part == 1 and chunk.shard == 0
    )
    Faults.flip_byte(target.path)
    assert read_md5(s3, "corrupt") == md5_of(whole)

    def replaced() -> bool:
        if target.path in {chunk.path for chunk in part_chunks(cluster, "corrupt")}:
            # A read that went around the damaged shard (a node late on a busy machine) did
            # not meet it; the next one may.
            assert read_md5(s3, "corrupt") == md5_of(whole)
            return False
        return True

    assert wait_until(replaced, HEAL_TIMEOUT_S, 0.5), http.repair()
    wait_fully_redundant(http)
    assert_fully_placed(part_chunks(cluster, "corrupt"), shards=6)
    assert read_md5(s3, "corrupt") == md5_of(whole)


def test_an_aborted_upload_leaves_no_chunk_on_any_node(cluster: LocalCluster, s3: Any) -> None:
    before = chunk_files(cluster)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="aborted")["UploadId"]
    for number in (1, 2):
        s3.upload_part(
            Bucket=BUCKET,
            Key="aborted",
            UploadId=upload,
            PartNumber=number,
            Body=random_bytes(PART),
        )
    assert chunk_files(cluster) - before
    s3.abort_multipart_upload(Bucket=BUCKET, Key="aborted", UploadId=upload)
    assert wait_until(lambda: not (chunk_files(cluster) - before), 30.0, 0.2)
